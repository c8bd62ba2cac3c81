/* api_explain.h: the admin listener's look inside the engine (docs/api.md).
 *
 *   GET /admin/explain?user_id=&item_id=&placement=&device=&region=&n=&personalize=
 *       runs the real request path for that request on the admin worker —
 *       resolve, route (Lua or built-in), gather, rules, rerank — and
 *       answers every stage: what the request resolved to, the route, the
 *       candidates as gathered, what rules dropped, the final list.
 *   GET /admin/items/{id}
 *       an item's snapshot columns, live state, trending rank, neighbours.
 *
 * The admin worker runs the hooks in a Lua state of its own (its own
 * counters, never those of the request workers, so an explain is not in
 * the request metrics). The control thread stages states for request
 * workers only; the admin worker builds its own at its loop turn when a
 * new generation is published, from the set the control thread recorded
 * here (api_explain_policies_staged).
 *
 * Admin worker only (one thread), inside its epoch section, except
 * api_explain_policies_staged (control thread).
 */
#ifndef RECD_API_EXPLAIN_H
#define RECD_API_EXPLAIN_H

#include "api/api.h"

/* api_worker_init of the admin worker: its Lua state (w->lua) from
 * srv->policy_dir, counted in its own stats. Failure to build one is
 * logged and leaves w->lua NULL (explain then shows the C policies). */
void api_explain_worker_init(struct api_worker *w);
/* The admin worker's loop turn: follow a newly published policy
 * generation, or rebuild a state over its memory ceiling. */
void api_explain_worker_turn(struct api_worker *w);
/* Control thread, from api_policies_stage: the set `dir` is about to be
 * published as `generation`, with these limits. */
void api_explain_policies_staged(const char *dir, uint64_t generation, const struct lua_host_limits *lim);

/* Endpoints (their paths are matched by api_handle). */
int api_admin_explain(struct api_worker *w, const struct http_request *req, bool close, struct buf *out);
int api_admin_item(struct api_worker *w, const struct http_request *req, bool close, struct buf *out);

#endif
