/* metrics.h: lock-free per-worker counters and latency histograms,
 * merged when scraped and rendered as Prometheus text (format 0.0.4).
 *
 * Each worker owns one struct metrics_worker and is its only writer: it
 * updates with plain loads and ck_pr stores (no atomic read-modify-write,
 * no shared cache lines). The scraper reads every worker's struct with
 * ck_pr loads; a value may be one increment behind, never torn (64-bit
 * aligned stores on the platforms recd targets).
 *
 * Histograms are log-linear (HDR-style): values in microseconds, 8
 * sub-buckets per power of two from 1 µs to ~16.7 s (relative error
 * <= 12.5%), rendered as cumulative Prometheus buckets at fixed `le`
 * boundaries that coincide with internal bucket edges.
 */
#ifndef RECD_METRICS_H
#define RECD_METRICS_H

#include "core/common.h"

struct buf;

enum metrics_endpoint {
	MEP_RECOMMENDATIONS = 0,
	MEP_EVENTS,
	MEP_HEALTH,
	MEP_READY,
	MEP_METRICS,
	MEP_ADMIN,
	MEP_OTHER,         /* 404s, parse errors before routing */
	MEP__COUNT,
};

/* The status codes recd answers with; anything else counts as "other". */
enum metrics_status {
	MST_200 = 0, MST_202, MST_400, MST_401, MST_404, MST_405, MST_408, MST_411,
	MST_413, MST_414, MST_415, MST_422, MST_431, MST_500, MST_501, MST_503, MST_505, MST_OTHER,
	MST__COUNT,
};

#define METRICS_HIST_SUB 8            /* sub-buckets per power of two */
#define METRICS_HIST_POW 25           /* 2^0 .. 2^24 µs */
#define METRICS_HIST_BUCKETS (METRICS_HIST_SUB * METRICS_HIST_POW + 1) /* + overflow */

struct metrics_hist {
	uint64_t count;
	uint64_t sum_us;
	uint64_t buckets[METRICS_HIST_BUCKETS];
};

struct metrics_worker {
	uint64_t requests[MEP__COUNT][MST__COUNT];
	struct metrics_hist latency[MEP__COUNT];
	uint64_t conn_accepted;
	uint64_t conn_closed;
	uint64_t conn_refused;      /* over the connection cap */
	uint64_t conn_timeouts;     /* idle or slow-header closes */
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t strategy[8];       /* by enum lua_source of the first item, for recd_recommendations_total */
	uint64_t tier[4];           /* by enum lua_tier */
	uint64_t policy_fallbacks;  /* lists ranked by C because a policy hook failed */
	uint64_t cache[8];          /* by enum pipe_cache: where personal candidates came from */
	uint64_t events_accepted[16]; /* by enum event_type */
	uint64_t events_rejected;
	uint64_t events_ring_full;  /* requests answered 503: queue full */
} cacheline_aligned;

#define METRICS_MODELS 9  /* model slots: the main snapshot + SRV_MAX_MODELS */
#define METRICS_HOOKS 3   /* route, rules, rerank */
#define METRICS_FAILS 4   /* error, budget, memory, garbage */

/* Process-wide gauges the caller fills at scrape time. */
struct metrics_gauges {
	const char *version;
	uint64_t start_time_s;
	uint32_t workers;
	int64_t connections_open;
	uint64_t snapshot_generation;
	uint64_t snapshot_items;
	uint64_t snapshot_users;
	uint64_t snapshot_build_time_s;
	uint64_t snapshot_loaded_time_s;
	const char *snapshot_model_version;
	uint64_t snapshot_bytes;
	uint64_t snapshot_load_failures;
	/* Every model slot (core/srv.h), the main snapshot first. */
	uint32_t n_models;
	const char *model_names[METRICS_MODELS];
	uint64_t model_generation[METRICS_MODELS];      /* 0: not loaded */
	uint64_t model_load_failures[METRICS_MODELS];
	const char *const *strategy_names; /* names for worker.strategy[i], NULL-terminated */
	const char *const *event_type_names; /* index 0 unused, NULL-terminated */
	const uint64_t *events_applied;    /* by event type (the updater's counters) */
	uint64_t events_queued;
	uint64_t live_users;
	uint64_t live_items;
	uint64_t live_users_evicted;
	/* Policies (summed over the workers' Lua hosts by the caller). */
	const char *const *tier_names;       /* for worker.tier[i], NULL-terminated */
	const char *policy_set;              /* plugin set name ("builtin" without Lua) */
	const char *const *hook_names;       /* METRICS_HOOKS */
	const char *const *fail_names;       /* METRICS_FAILS */
	uint64_t policy_generation;
	uint64_t policy_calls[METRICS_HOOKS];
	uint64_t policy_failures[METRICS_HOOKS][METRICS_FAILS];
	uint64_t policy_breaker_open;        /* workers whose breaker is open */
	uint64_t policy_breaker_trips;
	uint64_t policy_breaker_skips;
	uint64_t policy_rebuilds;
	uint64_t policy_swap_failures;       /* worker-side state builds that failed */
	uint64_t policy_load_failures;       /* sets refused at reload */
	uint64_t trending_items;
	/* Precomputed per-user lists (live/refresh.h). */
	const char *const *cache_names;      /* for worker.cache[i], NULL-terminated */
	uint64_t refresh_lists, refresh_computed, refresh_requested, refresh_dropped, refresh_hints_dropped;
	uint64_t refresh_compute_ns_total;
	uint64_t refresh_rebuilt, refresh_rebuild_left;
	uint64_t refresh_folded;             /* lists whose query was a fold-in */
	/* The event log (events/evlog.h); all 0 when it is off. */
	uint64_t events_recovered;
	uint64_t event_log_records, event_log_bytes, event_log_syncs, event_log_rotations;
	uint64_t event_log_errors;
	/* Checkpoints (live/checkpoint.h). */
	uint64_t checkpoints, checkpoint_errors;
	uint64_t checkpoint_ms;              /* duration of the last one */
	uint64_t checkpoint_wall_ms;         /* when the newest was written; 0: none */
	uint64_t event_log_disk_bytes;       /* segments on disk at the last checkpoint or start */
	uint64_t recovery_ms;                /* checkpoint load + replay at start */
	/* The Kafka event source (events/kafka.h); rendered only when on. */
	bool kafka;
	uint64_t kafka_lag, kafka_partitions, kafka_messages, kafka_events, kafka_events_rejected;
	uint64_t kafka_duplicates, kafka_commits, kafka_errors;
};

/* Allocate n zeroed per-worker blocks (+1 for the admin listener, which is
 * worker index n). Not thread-safe; call once at start. */
int metrics_init(uint32_t n_workers);
void metrics_shutdown(void);
struct metrics_worker *metrics_worker(uint32_t idx);

enum metrics_status metrics_status_index(int status);
const char *metrics_endpoint_name(enum metrics_endpoint ep);

/* Index of the bucket for a value in µs (exported for tests). */
uint32_t metrics_hist_bucket(uint64_t us);
/* Upper edge (inclusive, µs) of bucket b. */
uint64_t metrics_hist_bucket_upper(uint32_t b);
void metrics_hist_record(struct metrics_hist *h, uint64_t us);

/* One request done: count it by endpoint and status, and its latency. */
void metrics_request_done(struct metrics_worker *w, enum metrics_endpoint ep, int status,
			  uint64_t latency_ns);

static inline void metrics_inc(uint64_t *ctr)
{
	/* Single writer: a plain load + store is enough; the volatile store
	 * keeps the compiler from caching it in a register across calls. */
	*(volatile uint64_t *)ctr = *ctr + 1;
}
static inline void metrics_add(uint64_t *ctr, uint64_t v)
{
	*(volatile uint64_t *)ctr = *ctr + v;
}

/* Render every metric as Prometheus text into out. */
void metrics_render(struct buf *out, const struct metrics_gauges *g);
/* For modules that render their own families: "# HELP/# TYPE" lines, and
 * a quoted, escaped label value. */
void metrics_family(struct buf *out, const char *name, const char *type, const char *help);
void metrics_label(struct buf *out, const char *s);

#endif
