/* ann.h: the approximate nearest-neighbour index for inner-product search
 * (IVF: a k-means coarse quantiser, inverted lists, int8 residual codes,
 * exact re-ranking). Built offline by the snapshot builder, stored in the
 * snapshot's ANN_* sections (layout in snap/snap_format.h) and searched in
 * place from the mapping by the request workers.
 *
 * A search allocates nothing: each worker owns a struct ann_scratch sized
 * once for the largest k it will ask for.
 */
#ifndef RECD_ANN_H
#define RECD_ANN_H

#include "core/common.h"
#include "core/topk.h"
#include "snap/snap_format.h"

struct snap;

/** Lists probed when the caller gives 0 (chosen from bench/bench_ann.c). */
#define ANN_DEFAULT_NPROBE 96u
/** Approximate candidates re-scored exactly per result asked for. */
#define ANN_DEFAULT_RERANK 2u
/** Fewest candidates re-scored, whatever k (small k needs slack too). */
#define ANN_MIN_CANDIDATES 64u
/** Best lists kept per item for its embedding neighbours at build time;
 * the search stops once two lists and max(4k, 256) codes were scanned. */
#define ANN_NEIGHBOR_PROBES 8u

/** A view of an index: into a snapshot mapping, or into ann_built memory. */
struct ann_index {
	uint32_t nlist;             /** 0 = no index */
	uint32_t dim, code_dim, quant, max_list;
	const float *centroids;     /** ceil(nlist/8) blocks of [dim][8] */
	const uint32_t *list_off;   /** nlist + 1 positions */
	const uint32_t *list_items; /** item at each position */
	const int8_t *codes;        /** code_dim bytes per position */
	const float *code_scale;    /** per position (QUANT_VECTOR), else NULL */
	const float *dim_scale;     /** code_dim (QUANT_DIM) */
	const float *dim_offset;    /** code_dim (QUANT_DIM) */
};

struct ann_build_params {
	uint32_t nlist;         /** 0 = 2 * sqrt(n), at least 1 (docs/performance.md) */
	uint64_t seed;          /** sample and initial centroids */
	uint32_t iters;         /** Lloyd iterations; 0 = 8 */
	uint32_t sample;        /** training points per list; 0 = 32 */
	uint32_t quant;         /** enum snap_ann_quant; 0 = QUANT_DIM */
};

/** An index built in memory (owns every array the view points to). */
struct ann_built {
	struct snap_ann_params params;
	struct ann_index ix;
	float *centroids;       /** blocked, as in the file */
	float *centroids_rows;  /** nlist x dim, row-major */
	uint32_t *list_off, *list_items;
	int8_t *codes;
	float *code_scale;      /** QUANT_VECTOR only */
	float *dim_quant;       /** scale[code_dim] then offset[code_dim] */
	uint32_t *probes;       /** ANN_NEIGHBOR_PROBES best lists per item, by inner product (if asked) */
};

/** Build an index of `n` rows of `dim` floats (row-major, unpadded).
 * Deterministic: the same input and params give the same bytes. With
 * `want_probes`, also keeps each item's best lists for ann_fill_neighbors.
 * Returns 0 or -ENOMEM / -EINVAL with a message in err. */
int ann_build(const float *emb, uint32_t n, uint32_t dim, const struct ann_build_params *p, bool want_probes,
	      struct ann_built *out, char *err, size_t errlen);
void ann_built_free(struct ann_built *b);

/** Complete each item's row of `k` neighbours (rows[i*k ..]) whose first
 * filled[i] entries are set, with its embedding neighbours by inner
 * product (approximate candidates from the item's best lists, re-scored
 * exactly), skipping the item itself and entries already present. Rows
 * that stay short are padded with SNAP_EMPTY_SLOT. Needs b->probes.
 * `filled` may be NULL (all 0). Returns 0 or -ENOMEM. */
int ann_fill_neighbors(const struct ann_built *b, const float *emb, uint32_t n, uint32_t k,
		       struct snap_neighbor *rows, const uint32_t *filled);

/** Exclusion predicate: false drops the item. Called only for items whose
 * approximate score would enter the candidate list, so its cost scales
 * with the candidates, not with the items scanned. */
typedef bool (*ann_keep_fn)(void *ctx, uint32_t item);

struct ann_query {
	const float *vec;       /** stride floats, padding 0 (a snapshot row is) */
	uint32_t k;             /** results wanted, 1..scratch max_k */
	uint32_t nprobe;        /** lists probed first; 0 = ANN_DEFAULT_NPROBE */
	uint32_t rerank;        /** candidates per result; 0 = ANN_DEFAULT_RERANK */
	int64_t exclude;        /** item never returned, or -1 */
	ann_keep_fn keep;       /** NULL = keep every servable item */
	void *ctx;
};

/** What the last search did (for benchmarks and tests). */
struct ann_stats {
	uint32_t lists;         /** lists probed */
	uint32_t scanned;       /** codes scored */
	uint32_t candidates;    /** re-scored exactly */
	uint32_t widened;       /** extra probing rounds to find k valid items */
};

struct ann_scratch;

/** Scratch for queries of up to max_k results (centroid scores, list
 * order, candidate heap, query codes); NULL on ENOMEM. */
struct ann_scratch *ann_scratch_new(uint32_t max_k);
void ann_scratch_free(struct ann_scratch *sc);
const struct ann_stats *ann_scratch_stats(const struct ann_scratch *sc);

/** Top-k items of snapshot `s` by inner product with q->vec, best first
 * (ties: lower index), using s->ann (which must be present). Unservable
 * items, q->exclude and items q->keep refuses are never returned; when
 * the first nprobe lists hold fewer than k such items, further lists are
 * probed (best centroid first) until k are found or every list was
 * scanned. Returns the count (< k only when fewer valid items exist). */
uint32_t ann_search(const struct snap *s, const struct ann_query *q, struct ann_scratch *sc,
		    struct topk_item *out);

#endif
