/* exp_ledger.h: what recd served and what came of it — impressions,
 * attribution of clicks, add-to-carts and purchases to the experiment
 * variant and position that showed the item, per-variant statistics,
 * guardrails, adaptive (Thompson) allocation, shadow comparisons and the
 * online quality gauges.
 *
 * Theory of operation:
 *  - producers: each request worker records its served lists (and its
 *    shadow lists) into its own single-producer ring
 *    (exp_ledger_impression; no lock, no system call: a full ring drops
 *    the record and counts it). The updater thread forwards every applied
 *    click / add_to_cart / purchase (exp_ledger_outcome) through its own
 *    ring.
 *  - the ledger thread is the only consumer and the only writer of
 *    everything below. It keeps the last `capacity` impressions in a ring,
 *    indexed by request id and by shopper. An outcome carrying a
 *    request_id is attributed to that impression when it listed the item;
 *    one without is attributed to the shopper's newest impression within
 *    the attribution window that listed it. An outcome matching nothing
 *    is counted as unattributed. A list counts once as clicked, carted or
 *    converted, however many outcomes it gets.
 *  - per (experiment, variant) slot (exp.h): lists, items, clicks (by
 *    position), add-to-carts, purchases, revenue, errors, fallbacks and a
 *    latency histogram; counters are ck_pr stores, so other threads
 *    (admin, metrics) read them without locks.
 *  - once a second: guardrails (a variant whose error or fallback rate
 *    exceeds control's by the configured margin, or whose p99 exceeds
 *    control's by the configured ratio, once both have min_requests, is
 *    switched off: exp_slot.disabled, logged), Thompson weights for
 *    experiments with allocation "thompson" (exp_slot.alloc_bp), and the
 *    quality gauges' views, published under a ck_sequence.
 */
#ifndef RECD_EXP_LEDGER_H
#define RECD_EXP_LEDGER_H

#include <ck_epoch.h>
#include <ck_ring.h>
#include <ck_sequence.h>
#include <pthread.h>
#include "core/buf.h"
#include "core/common.h"
#include "exp/exp.h"
#include "exp/exp_gauge.h"
#include "exp/exp_stats.h"

struct recd_server;
struct event;

#define EXP_IMP_ITEMS 20u              /* items of a list kept for attribution and gauges */
#define EXP_LAT_BUCKETS 96u            /* latency: 4 buckets per power of two of µs */
#define EXP_POSITIONS EXP_IMP_ITEMS
#define EXP_PLACEMENT_LEN 32u
#define EXP_GAUGE_PLACEMENTS 15u       /* distinct placements with their own gauges (+ "other") */

enum exp_imp_kind { EXP_IMP_SERVED = 0, EXP_IMP_SHADOW };
#define EXP_IMP_FALLBACK 1u            /* a Lua hook failed: the C policy served */
#define EXP_IMP_EMPTY 2u               /* nothing to show */
#define EXP_IMP_KEYED 4u               /* item_keys are filled (else the ledger hashes the ids) */

/* One list a worker served (or computed in shadow). */
struct exp_impression {
	uint64_t request_key;      /* XXH3 of the response's request_id */
	uint64_t user_key;         /* 0: anonymous */
	uint64_t ts_ms;
	uint64_t snap_generation;
	uint32_t slot;             /* exp slot, or EXP_NO_SLOT outside experiments */
	uint32_t took_us;
	uint8_t kind, flags, strategy, tier;
	uint8_t n;                 /* items kept (<= EXP_IMP_ITEMS) */
	uint8_t overlap;           /* shadow: items also in the served list's first n */
	uint8_t placement_len;
	char placement[EXP_PLACEMENT_LEN];
	uint32_t items[EXP_IMP_ITEMS];        /* indexes into the snapshot of snap_generation */
	uint64_t item_keys[EXP_IMP_ITEMS];    /* XXH3 of the ids: by the ledger unless EXP_IMP_KEYED */
};

struct exp_outcome {
	uint64_t user_key, item_key, request_key, ts_ms;
	float price;               /* NaN: the snapshot's */
	uint8_t type;              /* EVENT_CLICK, EVENT_ADD_TO_CART, EVENT_PURCHASE */
};

CK_RING_PROTOTYPE(exp_impression, exp_impression)
CK_RING_PROTOTYPE(exp_outcome, exp_outcome)

/* Counters of one slot; one writer (the ledger thread), ck_pr stores. */
struct exp_counts {
	uint64_t lists, items, errors, fallbacks;
	uint64_t clicks, add_to_carts, purchases;
	uint64_t clicked_lists, carted_lists, converted_lists;
	uint64_t by_request, by_window;         /* how outcomes were matched */
	double revenue;                          /* written as bits with ck_pr_store_64 */
	uint64_t clicks_at[EXP_POSITIONS];
	uint64_t latency[EXP_LAT_BUCKETS];
	/* shadow variants */
	uint64_t shadow_lists, shadow_overlap, shadow_items, shadow_took_us;
	char disabled_reason[96];               /* written before exp_slot.disabled is set */
} cacheline_aligned;

struct exp_ledger_stats {
	uint64_t impressions, dropped, outcomes, outcomes_dropped, unattributed;
};

struct exp_ledger_opts {
	uint32_t capacity;             /* impressions kept for attribution (power of two) */
	uint32_t window_s;             /* attribution window without request_id */
	uint32_t ring_size;            /* per producer (power of two) */
	uint32_t gauge_window_s, gauge_slice_s;
};

struct exp_ledger_worker_ring {
	ck_ring_t ring;
	struct exp_impression *buf;
	uint64_t dropped;              /* the worker's count (ck_pr) */
} cacheline_aligned;

struct exp_ledger {
	struct recd_server *srv;
	struct exp_ledger_worker_ring *wr;     /* one per request worker */
	uint32_t n_workers;
	ck_ring_t out_ring cacheline_aligned;  /* from the updater */
	struct exp_outcome *out_buf;
	uint64_t out_dropped;                  /* the updater's count (ck_pr) */
	int stop;
	bool started;
	pthread_t thread;
	ck_epoch_record_t rec cacheline_aligned;
	bool rec_registered;
	struct exp_ledger_opts o;
	struct exp_counts counts[EXP_MAX_SLOTS];
	struct exp_ledger_stats st;            /* ck_pr stores */
	/* ledger thread private */
	struct exp_impression *imp;            /* capacity */
	uint64_t imp_head;                     /* absolute position of the next impression */
	uint64_t *req_index, *user_index;      /* key -> absolute position + 1; 4 x capacity */
	uint64_t *imp_prev;                    /* same shopper's previous impression (abs + 1) */
	uint8_t *imp_done;                     /* per impression: clicked / carted / converted bits */
	uint64_t index_mask;
	struct exp_gauge gauge;
	bool gauge_ready;
	uint64_t gauge_generation;
	/* gauge cells: placement (0 none, 1..15 named, 16 other) x (slot + 1, 0 = no experiment) */
	char placements[EXP_GAUGE_PLACEMENTS][EXP_PLACEMENT_LEN];
	uint32_t n_placements;
	uint32_t cell_key[EXP_GAUGE_MAX_CELLS];   /* (placement << 16) | (slot + 1) */
	uint32_t n_cells;
	/* published views */
	ck_sequence_t view_seq;
	struct exp_gauge_view views[EXP_GAUGE_MAX_CELLS];
	uint32_t view_keys[EXP_GAUGE_MAX_CELLS];
	uint32_t n_views;
	char pub_placements[EXP_GAUGE_PLACEMENTS][EXP_PLACEMENT_LEN];
	uint32_t n_pub_placements;
	struct exp_rng rng;
	uint64_t next_tick_ms;
};

void exp_ledger_opts_default(struct exp_ledger_opts *o);
/* Start the thread; the struct must stay in place for the epoch record
 * (static). 0 or -errno. */
int exp_ledger_start(struct exp_ledger *l, struct recd_server *srv, uint32_t n_workers,
		     const struct exp_ledger_opts *o);
void exp_ledger_stop(struct exp_ledger *l);

/* Request worker `worker` (its own ring only). */
void exp_ledger_impression(struct exp_ledger *l, uint32_t worker, const struct exp_impression *imp);
/* The updater, for an applied event of any type (others are ignored). */
void exp_ledger_outcome(struct exp_ledger *l, const struct event *ev);

/* Readers (any thread). */
void exp_ledger_stats_read(const struct exp_ledger *l, struct exp_ledger_stats *out);
/* Latency percentile (0..1) of a slot's served lists, µs (upper bound of its bucket); 0 without data. */
uint64_t exp_ledger_latency_quantile(const struct exp_ledger *l, uint32_t slot, double q);
/* A consistent-enough copy of a slot's counters (each field loaded
 * atomically; fields may be from different instants). */
void exp_ledger_counts_read(const struct exp_ledger *l, uint32_t slot, struct exp_counts *out);
/* The gauges' views published last tick: returns how many (<= cap),
 * each with its cell key ((placement index << 16) | (slot + 1)). */
uint32_t exp_ledger_views(struct exp_ledger *l, struct exp_gauge_view *views, uint32_t *keys, uint32_t cap,
			  char placements[][EXP_PLACEMENT_LEN], uint32_t *n_placements);

/* Latency bucket of a duration in µs (exposed for tests). */
uint32_t exp_latency_bucket(uint64_t us);
uint64_t exp_latency_bucket_upper(uint32_t b);

#endif
