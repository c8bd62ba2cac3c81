/* snapb.h: snapshot builder. Turns in-memory catalogue, embeddings and
 * popularity into a snapshot file (snap_format.h), written to a temporary
 * name, fsync'ed and renamed into place so readers never see a partial
 * file. Used by `recd-snapshot build`, by `recd --demo` and by the tests.
 */
#ifndef RECD_SNAPB_H
#define RECD_SNAPB_H

#include "core/common.h"
#include "ann/ann.h"

struct snapb_item {
	const char *id;        /* unique, 1..255 bytes */
	const char *title;     /* may be "" */
	const char *category;  /* may be ""; interned into CATEGORY_NAMES */
	float price;
	uint32_t stock;
	bool available;
};

/* One interaction, for co-visitation neighbours: `user` is any stable key
 * (e.g. a hash of the user id), `item` an index into the items. */
struct snapb_event {
	uint64_t user;
	int64_t ts_ms;
	uint32_t item;
};

/* What the optional stages cost (filled when snapb_input.stats is set). */
struct snapb_stats {
	double ann_s;               /* index build (k-means, lists, codes) */
	double neighbors_s;         /* co-visitation and embedding neighbours */
	uint64_t covisit_pairs;     /* directed pairs counted */
	uint32_t nlist;             /* lists in the written index (0 = none) */
};

struct snapb_input {
	const char *model_version;   /* <= 63 bytes; NULL = "unversioned" */
	uint64_t build_time;         /* unix seconds; 0 = now */
	uint32_t dim;                /* 1..SNAP_MAX_DIM */
	uint32_t n_items;
	const struct snapb_item *items;
	const float *item_emb;       /* n_items * dim, row-major (not padded) */
	uint32_t n_users;            /* may be 0 */
	const char *const *user_ids;
	const float *user_emb;       /* n_users * dim */
	/* Popularity score per item (e.g. decayed interaction counts); NULL
	 * = all zero. POPULAR lists the top `popular_k` items by this score
	 * (ties: lower index first), servable items only (available, stock>0)
	 * — popular_k 0 means min(n_items, 1000). */
	const float *item_popularity;
	uint32_t popular_k;
	/* CATEGORY_POPULAR is always written: per category, its top popular_k
	 * servable items by the same score and order as POPULAR. */

	/* ANN index (ann.h) over the item embeddings, written when ann_enabled;
	 * ann.nlist 0 = 4 * sqrt(n_items). */
	bool ann_enabled;
	struct ann_build_params ann;
	/* ITEM_NEIGHBORS with neighbors_k entries per item (0 = none): items
	 * the same user touched within covisit_window_ms of each other (0 =
	 * one hour; at most COVISIT_LOOKBACK events apart) in `events`, most
	 * often first, then embedding neighbours by inner product (computed
	 * with an index built for the purpose if ann_enabled is false). */
	uint32_t neighbors_k;
	const struct snapb_event *events;
	uint64_t n_events;
	int64_t covisit_window_ms;
	struct snapb_stats *stats;   /* optional, out */
};

/* Events before the current one (same user, in time order) that pair with
 * it: bounds the work per event. */
#define SNAPB_COVISIT_LOOKBACK 10u
#define SNAPB_COVISIT_WINDOW_MS 3600000

/* Weight of an interaction type in popularity: view/click 1, rating 1,
 * add_to_cart 3, purchase 5; -1 for an unknown type. One table for the
 * builder, the generator and the importers. */
float snapb_event_weight(const char *type, size_t len);

/* Write the snapshot to `path` (atomically). Duplicate item or user ids,
 * empty ids, bad dims, NaN/inf in embeddings are refused with a message in
 * err naming the offending row. Returns 0 or -errno/-EINVAL. */
int snapb_write(const struct snapb_input *in, const char *path, char *err, size_t errlen);

#endif
