/* api.h: the HTTP endpoints of recd: routing, request validation, and the
 * JSON responses (docs/api.md is the user-facing description).
 *
 * One struct api_worker per worker thread holds every scratch buffer a
 * request needs, allocated once at start: handling a request appends to
 * the connection's output buffer and allocates nothing in the common case.
 */
#ifndef RECD_API_H
#define RECD_API_H

#include "core/buf.h"
#include "core/srv.h"
#include "exp/exp_ledger.h"
#include "events/event.h"
#include "http/http_parse.h"
#include "json/json.h"
#include "metrics/metrics.h"
#include "rec/rec.h"

/* User and item ids: the same bound as in events, so any id a request
 * names can also have live state. */
#define API_MAX_ID_LEN (EVENT_ID_MAX - 1)
/* JSON tokens for a recommendation body; event bodies get
 * max_events_per_request * API_TOKENS_PER_EVENT more. */
#define API_MAX_JSON_TOKENS 512
#define API_TOKENS_PER_EVENT 32
#define API_MAX_WORKERS 1024           /* request workers with a Lua state (= cfg max) */

struct pipe_worker;
struct lua_host;
struct lua_host_stats;
struct lua_host_limits;

struct api_worker {
	struct recd_server *srv;
	uint32_t id;
	bool admin;                    /* serves the admin listener */
	struct metrics_worker *metrics;
	struct buf body;               /* response body scratch */
	struct rec_item *items;        /* cfg.max_n */
	struct rec_scratch *rec_scratch; /* ANN search buffers for cfg.max_n */
	struct pipe_worker *pipe;      /* the recommendation path's scratch */
	struct lua_host *lua;          /* this worker's policy state; NULL: C policies */
	struct lua_host_stats *lua_stats; /* its counters (survive reloads) */
	struct json_tok *toks;         /* n_toks */
	uint32_t n_toks;
	uint64_t seq;                  /* request ids */
	bool wake_updater;             /* events were queued and the updater sleeps:
	                                  the network layer queues an eventfd write */
	uint32_t backlog;              /* completions queued at the start of this loop turn */
	uint64_t hold_seq;             /* the answer just written must wait until this
	                                  worker's events up to here are applied */
	struct exp_impression imp;     /* scratch: the impression being recorded */
};

/* The experiment ledger workers record impressions into (main, before
 * the workers start; NULL: none). */
struct exp_ledger;
void api_set_ledger(struct exp_ledger *l);

int api_worker_init(struct api_worker *w, struct recd_server *srv, uint32_t id, bool admin);
void api_worker_free(struct api_worker *w);
/* Once per event-loop turn, between requests: swap to a newly published
 * policy generation (or rebuild a state over its memory ceiling). */
void api_worker_turn(struct api_worker *w);
/* Control thread, after the policy set staged in `dir` passed its checks:
 * build one state per request worker for `generation` (before it is
 * published), for the
 * workers to adopt at their next turn, so no worker compiles Lua. 0, or
 * the last build error (those workers then build their own). */
int api_policies_stage(struct recd_server *srv, const char *dir, uint64_t generation, char *err, size_t errlen);
/* Control thread: destroy the states workers swapped out; `all` (after
 * the workers stopped) also the ones never adopted. */
void api_policies_collect(bool all);
/* Request worker id's policy counters (NULL beyond API_MAX_WORKERS). */
const struct lua_host_stats *api_worker_lua_stats(uint32_t id);
/* The config's plugin_* limits as the Lua host takes them. */
void api_lua_limits(const struct recd_config *cfg, struct lua_host_limits *lim);

/* Handle one complete request and append the whole HTTP response to out.
 * `closing`: the connection closes after this response (drain, client
 * asked). Returns the status code; *ep tells the metrics endpoint. */
int api_handle(struct api_worker *w, const struct http_request *req, bool closing, struct buf *out,
	       enum metrics_endpoint *ep);

/* Shared by the endpoint modules (api.c, api_explain.c). */
/* A whole response with this body. */
void api_write(struct buf *out, int status, const char *ctype, const struct buf *body, bool close,
	       const char *extra_headers);
/* An error response with a formatted detail (bounded: long input is cut);
 * returns the status. */
int api_fail(struct buf *out, bool close, int status, const char *error, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* 1..64 characters of [A-Za-z0-9_.-] (placement, device, region). */
bool api_word_valid(const char *p, size_t n);
/* 1..API_MAX_ID_LEN bytes without control characters (user and item ids). */
bool api_id_valid(const char *p, size_t n);

/* Append an error response with body {"error": ..., "detail": ...}. */
void api_write_error(struct buf *out, int status, const char *error, const char *detail, bool close,
		     const char *extra_headers);

/* Free this thread's error-body buffer (call when a thread ends). */
void api_thread_exit(void);

#endif
