/* snap.h: a loaded, validated, read-only snapshot (the arena).
 *
 * snap_open mmaps the file MAP_SHARED read-only, so every process on the
 * box shares one copy of the pages, and validates every offset, length and
 * checksum before returning. A struct snap never changes after it is
 * returned; readers use it without locks. Publication to workers (atomic
 * pointer swap, epoch reclamation) is the job of the engine, not of this
 * module.
 */
#ifndef RECD_SNAP_H
#define RECD_SNAP_H

#include <limits.h>
#include "core/common.h"
#include "snap/snap_format.h"
#include "ann/ann.h"

struct snap_strtab {
	const uint32_t *offsets;
	const char *pool;
	uint32_t count;
};

struct snap_hindex {
	const struct snap_hash_slot *slots;
	uint64_t mask;  /* capacity - 1 */
};

struct snap {
	const uint8_t *base;
	size_t size;
	bool mapped;                   /* base came from mmap (else borrowed) */
	const struct snap_header *hdr;
	uint32_t dim, stride;
	uint32_t n_items, n_users, n_categories, n_popular;
	struct snap_strtab item_ids, item_titles, user_ids, category_names;
	struct snap_hindex item_index, user_index;
	const uint32_t *item_category;
	const float *item_price;
	const float *item_popularity;
	const uint32_t *item_stock;
	const uint32_t *item_flags;
	const float *item_emb;         /* n_items * stride */
	const float *user_emb;         /* n_users * stride (NULL if no users) */
	const uint32_t *popular;       /* n_popular item indexes */
	struct ann_index ann;          /* ANN_* sections; nlist 0 = none (exact scan) */
	uint32_t neighbors_k;          /* 0 = no ITEM_NEIGHBORS */
	const struct snap_neighbor *neighbors;   /* n_items * neighbors_k */
	const uint32_t *cat_popular_off;         /* n_categories + 1; NULL = no CATEGORY_POPULAR */
	const uint32_t *cat_popular;             /* item indexes, per category best first */
	uint64_t generation;           /* set by the engine when published */
	uint64_t loaded_at_ms;         /* wall clock, set by snap_open */
	char path[PATH_MAX];
};

/* Map and validate `path`. On failure returns -errno/-EINVAL and writes a
 * message naming the section and the problem into err
 * (e.g. "section ITEM_EMB: checksum mismatch"). */
int snap_open(const char *path, struct snap **out, char *err, size_t errlen);
struct snap_open_opts {
	bool hugepages;   /* map 2 MiB-aligned with MADV_HUGEPAGE (docs/operations.md) */
};
int snap_open_opts(const char *path, const struct snap_open_opts *opts, struct snap **out, char *err,
		   size_t errlen);
/* Validate an image already in memory (no copy; `s` borrows `base`).
 * Used by snap_open and by the fuzzer. Same errors as snap_open. */
int snap_validate(const void *base, size_t size, struct snap *s, char *err, size_t errlen);
void snap_close(struct snap *s);
/* Ask the kernel to read the embeddings in ahead of first use. */
void snap_warm(const struct snap *s);

const char *snap_section_name(uint32_t id);

/* Lookups by external id: index or -1. Hash collisions are resolved by
 * comparing the stored id. */
int64_t snap_item_find(const struct snap *s, const char *id, size_t len);
int64_t snap_user_find(const struct snap *s, const char *id, size_t len);
/* Lookup by the id's XXH3-64 (the key live state uses); -1 if absent. Two
 * ids with the same 64-bit hash are not told apart here. */
int64_t snap_item_find_key(const struct snap *s, uint64_t key);

static inline struct str snap_strtab_get(const struct snap_strtab *t, uint32_t i)
{
	struct str r = { t->pool + t->offsets[i], t->offsets[i + 1] - t->offsets[i] };
	return r;
}
static inline struct str snap_item_id(const struct snap *s, uint32_t i) { return snap_strtab_get(&s->item_ids, i); }
static inline struct str snap_user_id(const struct snap *s, uint32_t i) { return snap_strtab_get(&s->user_ids, i); }
static inline const float *snap_item_vec(const struct snap *s, uint32_t i) { return s->item_emb + (size_t)i * s->stride; }
static inline const float *snap_user_vec(const struct snap *s, uint32_t i) { return s->user_emb + (size_t)i * s->stride; }
/* Item i's neighbour row (neighbors_k entries, padding SNAP_EMPTY_SLOT). */
static inline const struct snap_neighbor *snap_item_neighbors(const struct snap *s, uint32_t i)
{
	return s->neighbors + (size_t)i * s->neighbors_k;
}
static inline bool snap_item_servable(const struct snap *s, uint32_t i)
{
	return (s->item_flags[i] & SNAP_ITEM_AVAILABLE) && s->item_stock[i] > 0;
}

#endif
