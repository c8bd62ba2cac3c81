/* rec.h: candidate retrieval and ranking in C, the path every request
 * takes when no Lua policy changes it.
 *
 *  - a known user: top-n items by inner product of the user's embedding
 *    with the item embeddings: through the snapshot's ANN index when it
 *    has one (ann.h), else an exact scan (SIMD kernel chosen at run time);
 *  - a context item (`item_id`): its ITEM_NEIGHBORS row when the snapshot
 *    has one, completed by the top items by inner product with its
 *    embedding (ANN or exact), the item itself excluded ("similar");
 *  - anyone else: the snapshot's popularity list.
 * Items that are unavailable or out of stock are never returned.
 * Nothing here allocates: callers pass the output array and a scratch
 * made once per worker by rec_scratch_new.
 */
#ifndef RECD_REC_H
#define RECD_REC_H

#include "core/common.h"
#include "snap/snap.h"
#include "ann/ann.h"

enum rec_strategy {
	REC_PERSONALIZED = 0,
	REC_SIMILAR,
	REC_POPULAR,
	REC__STRATEGY_COUNT,
};

/* Names as they appear in responses and metrics; NULL-terminated. */
extern const char *const rec_strategy_names[];

struct rec_item {
	uint32_t item;   /* index into the snapshot */
	float score;
};

struct rec_query {
	const struct snap *snap;
	int64_t user;    /* snapshot user index or -1 */
	int64_t item;    /* context item index or -1 */
	uint32_t n;      /* 1..max */
	uint32_t nprobe; /* ANN lists probed first (config ann_nprobe); 0 = default */
};

/* Per-worker scratch for requests of up to max_n results (the ANN
 * search's buffers). NULL on ENOMEM. */
struct rec_scratch;
struct rec_scratch *rec_scratch_new(uint32_t max_n);
void rec_scratch_free(struct rec_scratch *sc);
/* The ANN part of the scratch (benchmarks call ann_search directly). */
struct ann_scratch *rec_scratch_ann(struct rec_scratch *sc);

/* Fill out[0..n) best first; returns how many (may be < n when fewer
 * servable items exist) and sets *strategy. `sc` NULL: exact scans only
 * (tests, tools). */
uint32_t rec_recommend(const struct rec_query *q, struct rec_scratch *sc, struct rec_item *out,
		       enum rec_strategy *strategy);

/* Exact top-k by inner product with `query` (stride floats, 64-byte
 * rows), skipping unservable items and `exclude` (-1 for none). */
uint32_t rec_topk_exact(const struct snap *s, const float *query, uint32_t k, int64_t exclude,
			struct rec_item *out);
/* Top-k by inner product with `query` through the ANN index (which the
 * snapshot must have), same contract as rec_topk_exact. */
uint32_t rec_topk_ann(const struct snap *s, const float *query, uint32_t k, int64_t exclude, uint32_t nprobe,
		      struct rec_scratch *sc, struct rec_item *out);
/* Top-k by inner product through the index when the snapshot has one
 * (and sc is given), else exactly; only items for which keep(ctx, item)
 * is true (keep NULL: every servable item). k <= the scratch's max_n. */
uint32_t rec_topk_keep(const struct snap *s, const float *query, uint32_t k, int64_t exclude, uint32_t nprobe,
		       struct rec_scratch *sc, ann_keep_fn keep, void *ctx, struct rec_item *out);
/* Top-k of the popularity list. */
uint32_t rec_popular(const struct snap *s, uint32_t k, int64_t exclude, struct rec_item *out);
/* Top-k most popular servable items of one category: CATEGORY_POPULAR,
 * or for a snapshot without it, the popularity list filtered by category.
 * A category out of range gives 0 items. */
uint32_t rec_popular_category(const struct snap *s, uint32_t category, uint32_t k, int64_t exclude,
			      struct rec_item *out);

/* Which scan kernel this CPU runs ("avx2+fma" or "sse"). */
const char *rec_kernel_name(void);
/* Inner product of two rows of `stride` floats (a multiple of 16); `b`
 * must be 64-byte aligned like every snapshot row. */
float rec_dot(const float *a, const float *b, uint32_t stride);

#endif
