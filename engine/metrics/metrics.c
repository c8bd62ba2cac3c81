/* metrics.c: per-worker metric blocks, the log-linear latency histogram
 * and the Prometheus text renderer.
 *
 * Theory of operation: block i is written only by worker i (block n by the
 * admin listener), with plain loads and volatile 64-bit stores (metrics.h).
 * The scraper, on any thread, reads every block with ck_pr_load_64 and sums.
 * Aligned 64-bit stores and loads are single instructions on the targets
 * recd supports, so a value is never torn; it may lag by the increments in
 * flight, and fields of one block may be mutually a little inconsistent
 * (a histogram's count vs its buckets). The renderer therefore derives
 * every histogram's _count from the buckets it read, so +Inf == _count.
 * Blocks are cacheline-aligned so two workers never share a line.
 *
 * Histogram buckets: values are whole microseconds, and a bucket is the
 * interval (lower, upper]: bucket 0 is [0, 1], buckets 1..7 are exactly
 * 2..8, and above that each power of two (2^p, 2^(p+1)] is split into 8
 * equal sub-buckets (index from p and the next 3 bits of v - 1). Working on
 * v - 1 makes every power of two an upper edge, so the Prometheus `le`
 * boundaries (1 µs .. 2^24 µs) are exact sums of whole buckets. Sub-bucket
 * width is 2^(p-3) over values > 2^p: relative width <= 12.5%. The last
 * regular bucket ends at 2^27 µs (134 s); above is the overflow bucket.
 */
#include <ck_pr.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"
#include "metrics/metrics.h"
#include "recd_build.h"

#define HIST_OVERFLOW (METRICS_HIST_BUCKETS - 1)
/* Highest power whose sub-buckets exist: rows 1..POW-1 hold p = row + 2. */
#define HIST_MAX_POW (METRICS_HIST_POW + 1)
/* Rendered `le` edges: 2^0 .. 2^24 µs (16.777216 s). */
#define HIST_LE_EDGES 25

static struct metrics_worker *metrics_blocks;
static uint32_t metrics_n_blocks;

int metrics_init(uint32_t n_workers)
{
	size_t n = (size_t)n_workers + 1;
	/* sizeof is a multiple of CACHELINE thanks to the aligned attribute,
	 * as aligned_alloc requires. */
	struct metrics_worker *w = aligned_alloc(CACHELINE, n * sizeof(*w));
	if (!w)
		return -ENOMEM;
	memset(w, 0, n * sizeof(*w));
	metrics_blocks = w;
	metrics_n_blocks = (uint32_t)n;
	return 0;
}

void metrics_shutdown(void)
{
	free(metrics_blocks);
	metrics_blocks = NULL;
	metrics_n_blocks = 0;
}

struct metrics_worker *metrics_worker(uint32_t idx)
{
	return idx < metrics_n_blocks ? &metrics_blocks[idx] : NULL;
}

enum metrics_status metrics_status_index(int status)
{
	switch (status) {
	case 200: return MST_200;
	case 202: return MST_202;
	case 400: return MST_400;
	case 401: return MST_401;
	case 404: return MST_404;
	case 405: return MST_405;
	case 408: return MST_408;
	case 411: return MST_411;
	case 413: return MST_413;
	case 414: return MST_414;
	case 415: return MST_415;
	case 422: return MST_422;
	case 431: return MST_431;
	case 500: return MST_500;
	case 501: return MST_501;
	case 503: return MST_503;
	case 505: return MST_505;
	default: return MST_OTHER;
	}
}

static const char *const metrics_status_names[MST__COUNT] = {
	"200", "202", "400", "401", "404", "405", "408", "411",
	"413", "414", "415", "422", "431", "500", "501", "503", "505", "other",
};

static const char *const metrics_endpoint_names[MEP__COUNT] = {
	[MEP_RECOMMENDATIONS] = "recommendations",
	[MEP_EVENTS] = "events",
	[MEP_HEALTH] = "health",
	[MEP_READY] = "ready",
	[MEP_METRICS] = "metrics",
	[MEP_ADMIN] = "admin",
	[MEP_OTHER] = "other",
};

const char *metrics_endpoint_name(enum metrics_endpoint ep)
{
	return (unsigned)ep < MEP__COUNT ? metrics_endpoint_names[ep] : "other";
}

uint32_t metrics_hist_bucket(uint64_t us)
{
	if (us <= 1)
		return 0;
	uint64_t u = us - 1;
	if (u < METRICS_HIST_SUB)
		return (uint32_t)u;
	uint32_t p = 63u - (uint32_t)__builtin_clzll(u);
	if (p > HIST_MAX_POW)
		return HIST_OVERFLOW;
	return (p - 2) * METRICS_HIST_SUB + (uint32_t)((u >> (p - 3)) & (METRICS_HIST_SUB - 1));
}

uint64_t metrics_hist_bucket_upper(uint32_t b)
{
	if (b >= HIST_OVERFLOW)
		return UINT64_MAX;
	if (b < METRICS_HIST_SUB)
		return b + 1;
	uint32_t p = b / METRICS_HIST_SUB + 2, sub = b % METRICS_HIST_SUB;
	return (1ull << p) + ((uint64_t)(sub + 1) << (p - 3));
}

void metrics_hist_record(struct metrics_hist *h, uint64_t us)
{
	metrics_inc(&h->buckets[metrics_hist_bucket(us)]);
	metrics_add(&h->sum_us, us);
	metrics_inc(&h->count);
}

void metrics_request_done(struct metrics_worker *w, enum metrics_endpoint ep, int status,
			  uint64_t latency_ns)
{
	if ((unsigned)ep >= MEP__COUNT)
		ep = MEP_OTHER;
	metrics_inc(&w->requests[ep][metrics_status_index(status)]);
	/* Round up: a request of t ns lands in the bucket whose (lower, upper]
	 * holds t, so the rendered `le` counts are exact, not off by < 1 µs. */
	metrics_hist_record(&w->latency[ep], (latency_ns + 999) / 1000);
}

/* ---- rendering ---- */

static uint64_t metrics_sum(size_t field_off)
{
	uint64_t s = 0;
	for (uint32_t i = 0; i < metrics_n_blocks; i++)
		s += ck_pr_load_64((const uint64_t *)((const char *)&metrics_blocks[i] + field_off));
	return s;
}
#define SUM(field) metrics_sum(offsetof(struct metrics_worker, field))

void metrics_family(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the exposition format asks: \\, \" and \n. */
void metrics_label(struct buf *out, const char *s)
{
	buf_putc(out, '"');
	for (; s && *s; s++) {
		switch (*s) {
		case '\\': buf_puts_lit(out, "\\\\"); break;
		case '"': buf_puts_lit(out, "\\\""); break;
		case '\n': buf_puts_lit(out, "\\n"); break;
		default: buf_putc(out, *s);
		}
	}
	buf_putc(out, '"');
}

/* Microseconds as exact decimal seconds (no float rounding). */
static void metrics_put_seconds(struct buf *out, uint64_t us)
{
	buf_printf(out, "%llu.%06llu", (unsigned long long)(us / 1000000),
		   (unsigned long long)(us % 1000000));
}

static void metrics_scalar(struct buf *out, const char *name, const char *type, const char *help,
			   uint64_t v)
{
	metrics_family(out, name, type, help);
	buf_puts(out, name);
	buf_putc(out, ' ');
	buf_put_u64(out, v);
	buf_putc(out, '\n');
}

static void metrics_render_requests(struct buf *out)
{
	static const char name[] = "recd_http_requests_total";
	metrics_family(out, name, "counter", "HTTP requests answered, by endpoint and status code.");
	for (int ep = 0; ep < MEP__COUNT; ep++) {
		for (int st = 0; st < MST__COUNT; st++) {
			uint64_t v = SUM(requests[ep][st]);
			if (!v)
				continue;
			buf_printf(out, "%s{endpoint=\"%s\",code=\"%s\"} ", name,
				   metrics_endpoint_names[ep], metrics_status_names[st]);
			buf_put_u64(out, v);
			buf_putc(out, '\n');
		}
	}
}

static void metrics_render_latency(struct buf *out)
{
	static const char name[] = "recd_http_request_duration_seconds";
	metrics_family(out, name, "histogram", "Time from request parsed to response queued.");
	for (int ep = 0; ep < MEP__COUNT; ep++) {
		uint64_t b[METRICS_HIST_BUCKETS], total = 0;
		for (uint32_t i = 0; i < METRICS_HIST_BUCKETS; i++) {
			b[i] = SUM(latency[ep].buckets[i]);
			total += b[i];
		}
		if (!total)
			continue;
		const char *epn = metrics_endpoint_names[ep];
		uint64_t cum = 0;
		uint32_t i = 0;
		for (int k = 0; k < HIST_LE_EDGES; k++) {
			uint64_t edge = 1ull << k;
			while (i < HIST_OVERFLOW && metrics_hist_bucket_upper(i) <= edge)
				cum += b[i++];
			buf_printf(out, "%s_bucket{endpoint=\"%s\",le=\"", name, epn);
			metrics_put_seconds(out, edge);
			buf_puts_lit(out, "\"} ");
			buf_put_u64(out, cum);
			buf_putc(out, '\n');
		}
		buf_printf(out, "%s_bucket{endpoint=\"%s\",le=\"+Inf\"} ", name, epn);
		buf_put_u64(out, total);
		buf_printf(out, "\n%s_sum{endpoint=\"%s\"} ", name, epn);
		metrics_put_seconds(out, SUM(latency[ep].sum_us));
		buf_printf(out, "\n%s_count{endpoint=\"%s\"} ", name, epn);
		buf_put_u64(out, total);
		buf_putc(out, '\n');
	}
}

static void metrics_render_policies(struct buf *out, const struct metrics_gauges *g)
{
	const char *set = g->policy_set ? g->policy_set : "builtin";
	metrics_family(out, "recd_recommendations_tier_total", "counter",
		       "Recommendation requests by cold-start tier.");
	const size_t n_tier = ARRAY_SIZE(((struct metrics_worker *)0)->tier);
	for (size_t i = 0; g->tier_names && i < n_tier && g->tier_names[i]; i++) {
		buf_puts_lit(out, "recd_recommendations_tier_total{tier=");
		metrics_label(out, g->tier_names[i]);
		buf_puts_lit(out, "} ");
		buf_put_u64(out, SUM(tier[i]));
		buf_putc(out, '\n');
	}
	metrics_scalar(out, "recd_policy_fallbacks_total", "counter",
		       "Lists ranked by the built-in C policy because a Lua hook failed.", SUM(policy_fallbacks));
	metrics_scalar(out, "recd_policy_generation", "gauge",
		       "Policy generation published (increments on each accepted reload).", g->policy_generation);
	if (g->hook_names) {
		metrics_family(out, "recd_plugin_calls_total", "counter", "Policy hook calls, by plugin set and hook.");
		for (int h = 0; h < METRICS_HOOKS; h++) {
			buf_puts_lit(out, "recd_plugin_calls_total{plugin=");
			metrics_label(out, set);
			buf_puts_lit(out, ",hook=");
			metrics_label(out, g->hook_names[h]);
			buf_puts_lit(out, "} ");
			buf_put_u64(out, g->policy_calls[h]);
			buf_putc(out, '\n');
		}
	}
	if (g->hook_names && g->fail_names) {
		metrics_family(out, "recd_plugin_errors_total", "counter",
			       "Policy hook failures (the C fallback served), by plugin set, hook and kind.");
		for (int h = 0; h < METRICS_HOOKS; h++)
			for (int k = 0; k < METRICS_FAILS; k++) {
				buf_puts_lit(out, "recd_plugin_errors_total{plugin=");
				metrics_label(out, set);
				buf_puts_lit(out, ",hook=");
				metrics_label(out, g->hook_names[h]);
				buf_puts_lit(out, ",kind=");
				metrics_label(out, g->fail_names[k]);
				buf_puts_lit(out, "} ");
				buf_put_u64(out, g->policy_failures[h][k]);
				buf_putc(out, '\n');
			}
	}
	metrics_scalar(out, "recd_plugin_breaker_open", "gauge",
		       "Workers whose policy breaker is open (C policies until the next reload).",
		       g->policy_breaker_open);
	metrics_scalar(out, "recd_plugin_breaker_trips_total", "counter",
		       "Times a worker's policy breaker opened.", g->policy_breaker_trips);
	metrics_scalar(out, "recd_plugin_breaker_skips_total", "counter",
		       "Hook calls skipped while a breaker was open.", g->policy_breaker_skips);
	metrics_scalar(out, "recd_plugin_state_rebuilds_total", "counter",
		       "Lua states rebuilt after crossing the hard memory ceiling.", g->policy_rebuilds);
	metrics_scalar(out, "recd_plugin_swap_failures_total", "counter",
		       "Worker-side policy state builds that failed (the old state kept serving).",
		       g->policy_swap_failures);
	metrics_scalar(out, "recd_policy_load_failures_total", "counter",
		       "Policy sets refused at reload (the running set kept serving).", g->policy_load_failures);
	metrics_scalar(out, "recd_trending_items", "gauge", "Items with live trending counts.", g->trending_items);
	metrics_family(out, "recd_personal_candidates_total", "counter",
		       "Requests with a personal source, by where its candidates came from: fresh = the precomputed "
		       "list, stale/miss = searched on demand, no_vector = nothing to personalise with.");
	const size_t n_cache = ARRAY_SIZE(((struct metrics_worker *)0)->cache);
	for (size_t i = 1; g->cache_names && i < n_cache && g->cache_names[i]; i++) {
		buf_puts_lit(out, "recd_personal_candidates_total{source=");
		metrics_label(out, g->cache_names[i]);
		buf_puts_lit(out, "} ");
		buf_put_u64(out, SUM(cache[i]));
		buf_putc(out, '\n');
	}
	metrics_scalar(out, "recd_refresh_lists", "gauge", "Precomputed per-user candidate lists held.",
		       g->refresh_lists);
	metrics_scalar(out, "recd_refresh_computed_total", "counter",
		       "Per-user candidate lists computed in the background.", g->refresh_computed);
	metrics_scalar(out, "recd_refresh_requested_total", "counter",
		       "Background list computations asked for by events.", g->refresh_requested);
	metrics_scalar(out, "recd_refresh_dropped_total", "counter",
		       "Background computations not queued (queue full: the request path searches instead).",
		       g->refresh_dropped + g->refresh_hints_dropped);
	metrics_scalar(out, "recd_refresh_foldin_total", "counter",
		       "Per-user lists whose query was an ALS fold-in of the shopper's live events.", g->refresh_folded);
	metrics_scalar(out, "recd_refresh_rebuilt_total", "counter",
		       "Per-user lists recomputed on a new snapshot after a swap.", g->refresh_rebuilt);
	metrics_scalar(out, "recd_refresh_rebuild_backlog", "gauge",
		       "Lists the rebuild pass after the last swap has yet to look at.", g->refresh_rebuild_left);
	metrics_family(out, "recd_refresh_compute_seconds", "summary", "Time to compute one per-user list.");
	buf_puts_lit(out, "recd_refresh_compute_seconds_sum ");
	metrics_put_seconds(out, g->refresh_compute_ns_total / 1000);
	buf_puts_lit(out, "\nrecd_refresh_compute_seconds_count ");
	buf_put_u64(out, g->refresh_computed);
	buf_putc(out, '\n');
}

/* One series per model slot (the main snapshot included). */
static void metrics_render_models(struct buf *out, const struct metrics_gauges *g)
{
	uint32_t n = g->n_models < METRICS_MODELS ? g->n_models : METRICS_MODELS;
	metrics_family(out, "recd_model_generation", "gauge",
		       "Generation each model serves (one counter for all models; 0: not loaded).");
	for (uint32_t i = 0; i < n; i++) {
		buf_puts_lit(out, "recd_model_generation{model=");
		metrics_label(out, g->model_names[i] ? g->model_names[i] : "");
		buf_puts_lit(out, "} ");
		buf_put_u64(out, g->model_generation[i]);
		buf_putc(out, '\n');
	}
	metrics_family(out, "recd_model_load_failures_total", "counter",
		       "Loads of each model's snapshot that failed (the previous one kept serving).");
	for (uint32_t i = 0; i < n; i++) {
		buf_puts_lit(out, "recd_model_load_failures_total{model=");
		metrics_label(out, g->model_names[i] ? g->model_names[i] : "");
		buf_puts_lit(out, "} ");
		buf_put_u64(out, g->model_load_failures[i]);
		buf_putc(out, '\n');
	}
}

void metrics_render(struct buf *out, const struct metrics_gauges *g)
{
	metrics_family(out, "recd_build_info", "gauge", "Build information; always 1.");
	buf_puts_lit(out, "recd_build_info{version=");
	metrics_label(out, g->version ? g->version : RECD_VERSION);
	buf_puts_lit(out, "} 1\n");
	metrics_scalar(out, "recd_start_time_seconds", "gauge",
		       "Process start time in seconds since the epoch.", g->start_time_s);
	metrics_scalar(out, "recd_workers", "gauge", "Worker threads serving requests.", g->workers);

	if (metrics_blocks) {
		metrics_render_requests(out);
		metrics_render_latency(out);
	} else {
		metrics_family(out, "recd_http_requests_total", "counter",
			       "HTTP requests answered, by endpoint and status code.");
		metrics_family(out, "recd_http_request_duration_seconds", "histogram",
			       "Time from request parsed to response queued.");
	}
	metrics_scalar(out, "recd_connections_accepted_total", "counter",
		       "Client connections accepted.", SUM(conn_accepted));
	metrics_scalar(out, "recd_connections_closed_total", "counter",
		       "Client connections closed.", SUM(conn_closed));
	metrics_scalar(out, "recd_connections_refused_total", "counter",
		       "Connections refused over max_connections.", SUM(conn_refused));
	metrics_scalar(out, "recd_connections_timeouts_total", "counter",
		       "Connections closed for idling or a slow request head.", SUM(conn_timeouts));
	metrics_family(out, "recd_connections_open", "gauge", "Client connections open now.");
	buf_puts_lit(out, "recd_connections_open ");
	buf_put_i64(out, g->connections_open);
	buf_putc(out, '\n');
	metrics_scalar(out, "recd_http_bytes_received_total", "counter",
		       "Bytes read from client connections.", SUM(bytes_in));
	metrics_scalar(out, "recd_http_bytes_sent_total", "counter",
		       "Bytes written to client connections.", SUM(bytes_out));

	metrics_family(out, "recd_recommendations_total", "counter",
		       "Recommendation lists served, by strategy.");
	const size_t n_strat = ARRAY_SIZE(((struct metrics_worker *)0)->strategy);
	for (size_t i = 0; g->strategy_names && i < n_strat && g->strategy_names[i]; i++) {
		buf_puts_lit(out, "recd_recommendations_total{strategy=");
		metrics_label(out, g->strategy_names[i]);
		buf_puts_lit(out, "} ");
		buf_put_u64(out, SUM(strategy[i]));
		buf_putc(out, '\n');
	}

	if (g->event_type_names) {
		const size_t n_types = ARRAY_SIZE(((struct metrics_worker *)0)->events_accepted);
		metrics_family(out, "recd_events_accepted_total", "counter",
			       "Events accepted into the queue, by type.");
		for (size_t i = 1; i < n_types && g->event_type_names[i]; i++) {
			buf_puts_lit(out, "recd_events_accepted_total{type=");
			metrics_label(out, g->event_type_names[i]);
			buf_puts_lit(out, "} ");
			buf_put_u64(out, SUM(events_accepted[i]));
			buf_putc(out, '\n');
		}
		metrics_family(out, "recd_events_applied_total", "counter",
			       "Events applied to live state by the updater, by type.");
		for (size_t i = 1; i < n_types && g->event_type_names[i]; i++) {
			buf_puts_lit(out, "recd_events_applied_total{type=");
			metrics_label(out, g->event_type_names[i]);
			buf_puts_lit(out, "} ");
			buf_put_u64(out, g->events_applied ? ck_pr_load_64((uint64_t *)&g->events_applied[i]) : 0);
			buf_putc(out, '\n');
		}
	}
	metrics_scalar(out, "recd_events_rejected_total", "counter",
		       "Events refused with a per-event error.", SUM(events_rejected));
	metrics_scalar(out, "recd_events_queue_full_total", "counter",
		       "Event requests answered 503 because the queue was full.", SUM(events_ring_full));
	metrics_scalar(out, "recd_events_queued", "gauge",
		       "Events accepted but not yet applied (updater lag).", g->events_queued);
	metrics_scalar(out, "recd_live_users", "gauge", "Users in live state.", g->live_users);
	metrics_scalar(out, "recd_live_items", "gauge", "Items with live updates.", g->live_items);
	metrics_scalar(out, "recd_live_users_evicted_total", "counter",
		       "Users dropped from live state for idleness or the size cap.", g->live_users_evicted);

	metrics_render_policies(out, g);
	metrics_scalar(out, "recd_events_recovered_total", "counter",
		       "Events replayed from the event log at start.", g->events_recovered);
	metrics_scalar(out, "recd_event_log_records_total", "counter",
		       "Events appended to the event log since start.", g->event_log_records);
	metrics_scalar(out, "recd_event_log_bytes_total", "counter",
		       "Bytes appended to the event log since start.", g->event_log_bytes);
	metrics_scalar(out, "recd_event_log_syncs_total", "counter",
		       "fdatasync calls on the event log (group commits).", g->event_log_syncs);
	metrics_scalar(out, "recd_event_log_rotations_total", "counter",
		       "Event log segments started.", g->event_log_rotations);
	metrics_scalar(out, "recd_event_log_errors_total", "counter",
		       "Failed event log writes, syncs or rotations (events wait, or 503).", g->event_log_errors);
	metrics_scalar(out, "recd_checkpoints_total", "counter",
		       "Checkpoints of live state written since start.", g->checkpoints);
	metrics_scalar(out, "recd_checkpoint_errors_total", "counter",
		       "Checkpoints that could not be written (the log is kept whole).", g->checkpoint_errors);
	metrics_family(out, "recd_checkpoint_seconds", "gauge",
		       "Duration of the last checkpoint (the event path pauses this long).");
	buf_puts_lit(out, "recd_checkpoint_seconds ");
	metrics_put_seconds(out, g->checkpoint_ms * 1000);
	buf_putc(out, '\n');
	metrics_scalar(out, "recd_checkpoint_timestamp_seconds", "gauge",
		       "Unix time of the newest checkpoint (written or loaded at start); 0: none.",
		       g->checkpoint_wall_ms / 1000);
	metrics_scalar(out, "recd_event_log_disk_bytes", "gauge",
		       "Event log segment bytes on disk, as of the last checkpoint or start.", g->event_log_disk_bytes);
	metrics_family(out, "recd_recovery_seconds", "gauge",
		       "Time the start took to load the checkpoint and replay the event log.");
	buf_puts_lit(out, "recd_recovery_seconds ");
	metrics_put_seconds(out, g->recovery_ms * 1000);
	buf_putc(out, '\n');
	if (g->kafka) {
		metrics_scalar(out, "recd_kafka_lag", "gauge",
			       "Kafka messages not yet applied, summed over the assigned partitions.", g->kafka_lag);
		metrics_scalar(out, "recd_kafka_partitions", "gauge", "Kafka partitions assigned to this consumer.",
			       g->kafka_partitions);
		metrics_scalar(out, "recd_kafka_messages_total", "counter",
			       "Kafka messages taken (invalid and already applied ones included).", g->kafka_messages);
		metrics_scalar(out, "recd_kafka_events_total", "counter", "Events from Kafka queued for the updater.",
			       g->kafka_events);
		metrics_scalar(out, "recd_kafka_events_rejected_total", "counter",
			       "Invalid events (or messages that are no events) from Kafka, skipped.",
			       g->kafka_events_rejected);
		metrics_scalar(out, "recd_kafka_duplicates_total", "counter",
			       "Redelivered Kafka messages (or parts) already in live state, skipped.", g->kafka_duplicates);
		metrics_scalar(out, "recd_kafka_commits_total", "counter", "Kafka offset commits confirmed.",
			       g->kafka_commits);
		metrics_scalar(out, "recd_kafka_errors_total", "counter", "Kafka consumer, fetch and commit errors.",
			       g->kafka_errors);
	}

	metrics_scalar(out, "recd_snapshot_generation", "gauge",
		       "Generation of the snapshot being served (increments on each load).",
		       g->snapshot_generation);
	metrics_scalar(out, "recd_snapshot_items", "gauge", "Items in the served snapshot.",
		       g->snapshot_items);
	metrics_scalar(out, "recd_snapshot_users", "gauge", "Users in the served snapshot.",
		       g->snapshot_users);
	metrics_scalar(out, "recd_snapshot_build_time_seconds", "gauge",
		       "When the served snapshot was built, seconds since the epoch.",
		       g->snapshot_build_time_s);
	metrics_scalar(out, "recd_snapshot_loaded_time_seconds", "gauge",
		       "When the served snapshot was loaded, seconds since the epoch.",
		       g->snapshot_loaded_time_s);
	metrics_scalar(out, "recd_snapshot_bytes", "gauge", "Size of the served snapshot file.",
		       g->snapshot_bytes);
	metrics_family(out, "recd_snapshot_info", "gauge",
		       "Model version of the served snapshot; always 1.");
	if (g->snapshot_model_version) {
		buf_puts_lit(out, "recd_snapshot_info{model_version=");
		metrics_label(out, g->snapshot_model_version);
		buf_puts_lit(out, "} 1\n");
	}
	metrics_scalar(out, "recd_snapshot_load_failures_total", "counter",
		       "Snapshot loads that failed (the previous snapshot kept serving).",
		       g->snapshot_load_failures);
	metrics_render_models(out, g);
}
