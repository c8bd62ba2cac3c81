/* exp_gauge.h: online quality gauges of served recommendations, per cell
 * (one (placement, variant) pair; the caller maps pairs to small ids),
 * over a sliding time window:
 *
 *  - catalogue coverage: distinct items served / n_items of the snapshot;
 *  - intra-list diversity: distinct categories per list, and mean pairwise
 *    embedding distance (1 - cosine) within a list, over the first
 *    EXP_GAUGE_DIV_ITEMS items of each list (what a shopper sees);
 *  - popularity bias: mean popularity percentile of served items (1.0 =
 *    the most popular item of the catalogue), and the share of served
 *    items in the popular head (top 1% of the catalogue by popularity);
 *  - tier mix: lists per strategy id (the caller names the strategies).
 *
 * Window. Time is cut in slices of slice_s; each cell keeps a ring of
 * window_s / slice_s slices, each with plain sums and a HyperLogLog sketch.
 * A read sums the slices of the window (the current, partial slice and the
 * ones before it, so the window covers between window - slice and window)
 * and merges their sketches; a slice that fell out of the window is reset
 * when the ring comes round to it, never by a sweep.
 *
 * Coverage uses HyperLogLog (precision 12: 4096 one-byte registers per
 * slice) because its memory per cell is fixed whatever the catalogue size
 * (an exact set would need a bit per item per slice per cell: 1M items x
 * 256 cells x 10 slices = 320 MB), and sketches of slices merge by register
 * max. Standard error 1.04 / sqrt(4096) ~ 1.6%. The estimate is Ertl's
 * (exp_gauge.c says why not the classic one): it acts as linear counting
 * while most registers are empty, so small counts are close to exact.
 *
 * Threads: one thread calls everything (observe, snapshot, read); another
 * module publishes views to other threads. Nothing here locks.
 *
 * Memory: init allocates n_cells x window/slice slices (~4.3 KB each: 256
 * cells x 10 slices ~ 11 MB); exp_gauge_snapshot allocates the per-item
 * table (16 B per item); observe and read never allocate.
 */
#ifndef RECD_EXP_GAUGE_H
#define RECD_EXP_GAUGE_H

#include "core/common.h"
#include "core/simd.h"
#include "snap/snap.h"

#define EXP_GAUGE_MAX_CELLS 256u
#define EXP_GAUGE_MAX_STRATEGIES 16u
#define EXP_GAUGE_MAX_SLICES 240u
#define EXP_GAUGE_WINDOW_S_DEFAULT 600u
#define EXP_GAUGE_SLICE_S_DEFAULT 60u
#define EXP_GAUGE_DIV_ITEMS 20u          /* items of a list the diversity gauges look at */
#define EXP_GAUGE_DIST_EVERY 4u          /* pairwise distance: one list in this many per slice */
#define EXP_GAUGE_HLL_P 12u
#define EXP_GAUGE_HLL_M (1u << EXP_GAUGE_HLL_P)

/* What a read returns: sums over the window, and the means built from them
 * (0 when their denominator is 0). */
struct exp_gauge_view {
	uint64_t span_ms;                   /* time the summed slices cover, up to now */
	uint64_t lists;                     /* lists observed (also the empty ones) */
	uint64_t items;                     /* served items (indexes < n_items) */
	double distinct_items;              /* HyperLogLog estimate */
	double coverage;                    /* distinct_items / n_items, at most 1 */
	double mean_categories_per_list;    /* over lists with an item */
	double mean_pairwise_distance;      /* over lists with two items of nonzero norm */
	uint64_t ranked_items;              /* items served from the ranked snapshot */
	double mean_popularity_percentile;  /* over ranked_items */
	double popular_head_share;          /* of ranked_items */
	uint64_t strategy[EXP_GAUGE_MAX_STRATEGIES];   /* lists per strategy id */
};

/* One slice of one cell. */
struct exp_gauge_slice {
	uint64_t epoch;            /* now_ms / slice_ms of the data held (0 with no data) */
	uint64_t lists, items;
	uint64_t div_lists, categories;      /* lists with an item; sum of distinct categories */
	uint64_t dist_lists;                 /* lists with a pair */
	double dist_sum;                     /* sum over those lists of their mean pair distance */
	uint64_t ranked_items, head_items;
	double pct_sum;
	uint64_t strategy[EXP_GAUGE_MAX_STRATEGIES];
	uint8_t hll[EXP_GAUGE_HLL_M];
};

/* Per item of the ranked snapshot. */
struct exp_gauge_item {
	uint64_t hll_hash;         /* XXH3_64bits of the item key (XXH3 of its id) */
	float pct;                 /* popularity percentile, ties at their mid-rank */
	uint32_t rank;             /* 0 = most popular (ties: lower index first) */
};

struct exp_gauge {
	uint32_t n_cells, n_slices;
	uint64_t slice_ms;
	struct exp_gauge_slice *slices;      /* n_cells * n_slices */
	/* The ranked snapshot: which one the table is for. Observing a list of
	 * another snapshot still counts it, but not its popularity. */
	const struct snap *rs;
	uint64_t rs_generation;
	uint32_t rs_n_items, head_n;         /* head: rank < head_n (1% of n_items, at least 1) */
	struct exp_gauge_item *table;
	const struct simd_ops *ops;
	float *acc;                          /* a row of the largest stride: the pair-distance sum */
};

/* window_s and slice_s 0 = the defaults; window_s must be a multiple of
 * slice_s, at most EXP_GAUGE_MAX_SLICES of them. n_cells 1..MAX_CELLS.
 * 0, -EINVAL or -ENOMEM. */
int exp_gauge_init(struct exp_gauge *g, uint32_t n_cells, uint32_t window_s, uint32_t slice_s);
void exp_gauge_free(struct exp_gauge *g);

/* Build the per-item table (keys, popularity ranks) for `s`, the snapshot
 * now current; NULL drops it. About 50 ms per million items. On -ENOMEM
 * the previous table is dropped too (observe then skips popularity). */
int exp_gauge_snapshot(struct exp_gauge *g, const struct snap *s);

/* One served list: `items` are indexes into `s` (those >= n_items are
 * ignored), `strategy` the id of what produced it (>= MAX_STRATEGIES: the
 * list counts, under no strategy). `now_ms` from a monotonic clock (one
 * that steps back adds into the newer slice it lands on, never erases it).
 * A cell out of range is ignored. Allocation-free. */
void exp_gauge_observe(struct exp_gauge *g, uint32_t cell, const struct snap *s, const uint32_t *items,
		       uint32_t n, uint32_t strategy, uint64_t now_ms);

/* The window ending at now_ms; coverage is against s->n_items (s may be
 * NULL: coverage 0). A cell out of range reads as empty. */
void exp_gauge_read(const struct exp_gauge *g, uint32_t cell, const struct snap *s, uint64_t now_ms,
		    struct exp_gauge_view *out);

/* The sketch itself (tests, tools): add a 64-bit key to registers of
 * EXP_GAUGE_HLL_M bytes (zeroed = empty), and estimate their cardinality. */
void exp_gauge_hll_add(uint8_t *reg, uint64_t key);
double exp_gauge_hll_estimate(const uint8_t *reg);

#endif
