/* api.c: routing and the endpoints (see api.h; docs/api.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/api.h"
#include "api/api_explain.h"
#include "api/api_models.h"
#include "exp/exp.h"
#include "exp/exp_ledger.h"
#include "exp/exp_report.h"
#include <xxhash.h>
#include "core/log.h"
#include "ctl/ctl.h"
#include "events/kafka.h"
#include "live/trend.h"
#include "live/updater.h"
#include "lua/lua_host.h"
#include "pipe/pipe.h"
#include "recd_build.h"

#define API_MAX_CART 32

/* Each request worker's policy counters: the worker writes, a scrape
 * reads (see lua_host.h); outlive the worker's Lua states. */
static struct lua_host_stats api_lua_stats[API_MAX_WORKERS];
/* Policy states built by the control thread for each worker (next) and
 * the ones workers swapped out (old): single pointers exchanged with
 * ck_pr_fas, so each state has exactly one owner at any time. */
static struct lua_host *api_lua_next[API_MAX_WORKERS];
static struct lua_host *api_lua_old[API_MAX_WORKERS];

/* Everything a recommendation request says, whichever way it came in. */
struct rec_params {
	char user_id[API_MAX_ID_LEN + 1];
	int user_len;                  /* -1: anonymous */
	char item_id[API_MAX_ID_LEN + 1];
	int item_len;                  /* -1: none */
	char placement[65];
	char device[65];
	char region[65];
	int64_t n;
	bool personalize;              /* false: "personalize": false (consent withdrawn) */
	uint32_t n_cart;
	char cart[API_MAX_CART][API_MAX_ID_LEN + 1];
	int cart_len[API_MAX_CART];
};

static void params_init(struct rec_params *p, const struct recd_config *cfg)
{
	p->user_len = p->item_len = -1;
	p->placement[0] = p->device[0] = p->region[0] = 0;
	p->n = cfg->default_n;
	p->personalize = true;
	p->n_cart = 0;
}

int api_worker_init(struct api_worker *w, struct recd_server *srv, uint32_t id, bool admin)
{
	memset(w, 0, sizeof(*w));
	w->srv = srv;
	w->id = id;
	w->admin = admin;
	w->metrics = metrics_worker(id);
	w->items = calloc((size_t)srv->cfg.max_n, sizeof(*w->items));
	w->rec_scratch = rec_scratch_new((uint32_t)srv->cfg.max_n);
	w->pipe = pipe_worker_new();
	w->n_toks = API_MAX_JSON_TOKENS + (uint32_t)srv->cfg.max_events_per_request * API_TOKENS_PER_EVENT;
	w->toks = calloc(w->n_toks, sizeof(*w->toks));
	if (!w->items || !w->rec_scratch || !w->pipe || !w->toks || buf_init(&w->body, 64 * 1024))
		goto fail;
	if (!admin && srv->policy_dir[0] && id < API_MAX_WORKERS) {
		/* main.c pre-flighted this set before the workers started, so a
		 * failure here is a resource problem: serve the C policies. */
		char err[384];
		struct lua_host_limits lim;
		api_lua_limits(&srv->cfg, &lim);
		w->lua_stats = &api_lua_stats[id];
		int r = lua_host_create(&w->lua, srv->policy_dir, srv->cfg.lua_dir, &lim, w->lua_stats,
					lua_host_published(), err, sizeof(err));
		if (r) {
			log_error("policy_load_failed", "worker=%u err=\"%s\" detail=\"serving the built-in policies\"",
				  id, err);
			w->lua = NULL;
		}
	}
	if (admin)   /* its own state, for /admin/explain */
		api_explain_worker_init(w);
	return 0;
fail:
	api_worker_free(w);
	return -ENOMEM;
}

void api_worker_free(struct api_worker *w)
{
	free(w->items);
	w->items = NULL;
	rec_scratch_free(w->rec_scratch);
	w->rec_scratch = NULL;
	pipe_worker_free(w->pipe);
	w->pipe = NULL;
	if (w->lua)
		lua_host_destroy(w->lua);
	w->lua = NULL;
	free(w->toks);
	w->toks = NULL;
	buf_free(&w->body);
}

void api_lua_limits(const struct recd_config *cfg, struct lua_host_limits *lim)
{
	lim->budget_us = (uint32_t)cfg->plugin_budget_us;
	lim->memory_mb = (uint32_t)cfg->plugin_memory_mb;
	lim->breaker_threshold = (uint32_t)cfg->plugin_breaker_threshold;
	lim->preflight_ms = (uint32_t)cfg->plugin_preflight_ms;
	/* States load a staged copy; messages name the operator's files. */
	lim->shown_dir = cfg->plugins_dir[0] ? cfg->plugins_dir : NULL;
}

void api_worker_turn(struct api_worker *w)
{
	if (w->admin) {
		api_explain_worker_turn(w);
		return;
	}
	if (w->id >= API_MAX_WORKERS)
		return;
	/* The fast path: a state the control thread built for us. */
	struct lua_host *n = ck_pr_load_ptr(&api_lua_next[w->id]);
	if (unlikely(n != NULL)) {
		n = ck_pr_fas_ptr(&api_lua_next[w->id], NULL);
		ck_pr_fence_load();   /* pairs with the builder's store fence: see the whole state */
		if (n) {
			struct lua_host *old = lua_host_adopt(&w->lua, n, &api_lua_stats[w->id]);
			w->lua_stats = &api_lua_stats[w->id];
			ck_pr_fence_store();
			struct lua_host *prev = old ? ck_pr_fas_ptr(&api_lua_old[w->id], old) : NULL;
			if (prev)   /* the control thread has not collected the last one yet */
				lua_host_destroy(prev);
			log_debug("policy_swapped", "worker=%u policy=%s", w->id, lua_host_policy_name(w->lua));
		}
	}
	if (!w->lua)
		return;
	/* Only the memory rebuild happens here (same generation, from the
	 * state's own staged files). A generation whose state could not be
	 * staged for this worker is not built here from other files under
	 * its number: the worker keeps its set (its generation in /ready
	 * shows it) until the next reload stages one. */
	uint64_t t0 = now_ns();
	if (lua_host_maybe_reload(&w->lua, lua_host_generation(w->lua)) > 0)
		log_info("policy_rebuilt", "worker=%u policy=%s took_us=%llu", w->id, lua_host_policy_name(w->lua),
			 (unsigned long long)((now_ns() - t0) / 1000));
}

int api_policies_stage(struct recd_server *srv, const char *dir, uint64_t generation, char *err, size_t errlen)
{
	struct lua_host_limits lim;
	api_lua_limits(&srv->cfg, &lim);
	api_explain_policies_staged(dir, generation, &lim);   /* the admin worker builds its own */
	int rc = 0;
	for (uint32_t i = 0; i < srv->n_workers && i < API_MAX_WORKERS; i++) {
		struct lua_host *h;
		int r = lua_host_create(&h, dir, srv->cfg.lua_dir, &lim, NULL, generation, err, errlen);
		if (r) {
			rc = r;   /* that worker builds its own at the swap, and says why */
			continue;
		}
		ck_pr_fence_store();   /* the state is complete before a worker can see it */
		struct lua_host *prev = ck_pr_fas_ptr(&api_lua_next[i], h);
		if (prev)   /* a worker that did not turn since the last reload */
			lua_host_destroy(prev);
	}
	return rc;
}

void api_policies_collect(bool all)
{
	for (uint32_t i = 0; i < API_MAX_WORKERS; i++) {
		struct lua_host *old = ck_pr_fas_ptr(&api_lua_old[i], NULL);
		if (old) {
			ck_pr_fence_load();
			lua_host_destroy(old);
		}
		if (all && (old = ck_pr_fas_ptr(&api_lua_next[i], NULL)))
			lua_host_destroy(old);
	}
}

const struct lua_host_stats *api_worker_lua_stats(uint32_t id)
{
	return id < API_MAX_WORKERS ? &api_lua_stats[id] : NULL;
}

static void api_write_head(struct buf *out, int status, const char *ctype, size_t body_len, bool close,
			   const char *extra_headers)
{
	buf_printf(out, "HTTP/1.1 %d %s\r\n", status, http_reason(status));
	buf_puts_lit(out, "Content-Type: ");
	buf_puts(out, ctype);
	buf_puts_lit(out, "\r\nContent-Length: ");
	buf_put_u64(out, body_len);
	buf_puts_lit(out, "\r\n");
	if (close)
		buf_puts_lit(out, "Connection: close\r\n");
	if (extra_headers)
		buf_puts(out, extra_headers);
	buf_puts_lit(out, "\r\n");
}

void api_write(struct buf *out, int status, const char *ctype, const struct buf *body, bool close,
		      const char *extra_headers)
{
	api_write_head(out, status, ctype, body->len, close, extra_headers);
	buf_put(out, body->data, body->len);
}

/* One error-body buffer per thread, grown once and reused: error paths are
 * reached from the network layer too, which has no api_worker. */
static __thread struct buf err_body;

void api_write_error(struct buf *out, int status, const char *error, const char *detail, bool close,
		     const char *extra_headers)
{
	struct buf b = err_body;
	buf_reset(&b);
	buf_puts_lit(&b, "{\"error\":");
	buf_put_json_str(&b, error, strlen(error));
	buf_puts_lit(&b, ",\"detail\":");
	buf_put_json_str(&b, detail, strnlen(detail, 512));
	buf_puts_lit(&b, "}\n");
	api_write(out, status, "application/json", &b, close, extra_headers);
	err_body = b;
}

void api_thread_exit(void)
{
	buf_free(&err_body);
}

#define JSON_CT "application/json"

/* Format a bounded error detail; long user input is cut, never echoed whole. */
int api_fail(struct buf *out, bool close, int status, const char *error, const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	api_write_error(out, status, error, detail, close, NULL);
	return status;
}

bool api_word_valid(const char *p, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

bool api_id_valid(const char *p, size_t n)
{
	if (n == 0 || n > API_MAX_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20)
			return false;
	return true;
}

/* Parse a decimal integer that must be the whole string. */
static bool parse_int(const char *s, int64_t *out)
{
	if (!*s || strlen(s) > 18)
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || (*s != '-' && (*s < '0' || *s > '9')))
		return false;
	*out = v;
	return true;
}

static void put_opt_str(struct buf *b, const char *key, const char *v)
{
	if (!v[0])
		return;
	buf_putc(b, ',');
	buf_put_json_str(b, key, strlen(key));
	buf_putc(b, ':');
	buf_put_json_str(b, v, strlen(v));
}

static struct exp_ledger *api_ledger;   /* set once before the workers start */

void api_set_ledger(struct exp_ledger *l)
{
	api_ledger = l;
}

/* The request's item ids as indexes of snapshot `s` (the page's item
 * must exist; cart items it lacks are left out). 0 or -1. */
static int resolve_items(const struct rec_params *p, const struct snap *s, struct pipe_request *rq, uint32_t *cart)
{
	rq->snap = s;
	rq->context_item = -1;
	rq->n_cart = 0;
	if (p->item_len >= 0) {
		rq->context_item = snap_item_find(s, p->item_id, (size_t)p->item_len);
		if (rq->context_item < 0)
			return -1;
	}
	for (uint32_t i = 0; i < p->n_cart; i++) {
		/* Items the snapshot does not know yet cannot be candidates anyway. */
		int64_t idx = snap_item_find(s, p->cart[i], (size_t)p->cart_len[i]);
		if (idx >= 0)
			cart[rq->n_cart++] = (uint32_t)idx;
	}
	rq->cart = cart;
	return 0;
}

/* What the ledger keeps of a list: its first EXP_IMP_ITEMS items. */
static void impression_fill(struct exp_impression *imp, const struct snap *s, const struct pipe_result *res,
			    const struct rec_params *p, uint32_t slot, uint64_t request_key, uint64_t user_key,
			    uint64_t took_us, uint8_t kind)
{
	imp->request_key = request_key;
	imp->user_key = user_key;
	imp->ts_ms = now_wall_ms();
	imp->snap_generation = s->generation;
	imp->slot = slot;
	imp->took_us = (uint32_t)MIN(took_us, (uint64_t)UINT32_MAX);
	imp->kind = kind;
	imp->flags = (res->lua_rc ? EXP_IMP_FALLBACK : 0) | (res->n ? 0 : EXP_IMP_EMPTY);
	imp->strategy = res->n ? res->strategy : 0;
	imp->tier = (uint8_t)res->tier;
	imp->overlap = 0;
	size_t pl = strnlen(p->placement, EXP_PLACEMENT_LEN);
	imp->placement_len = (uint8_t)pl;
	memcpy(imp->placement, p->placement, pl);
	imp->n = (uint8_t)MIN(res->n, EXP_IMP_ITEMS);
	for (uint32_t i = 0; i < imp->n; i++)
		imp->items[i] = res->items[i].item;
	/* The ids are hashed by the ledger thread, off the request path. */
}

/* Item keys here, where two lists from different models are compared. */
static void impression_key(struct exp_impression *imp, const struct snap *s)
{
	for (uint32_t i = 0; i < imp->n; i++) {
		struct str id = snap_item_id(s, imp->items[i]);
		imp->item_keys[i] = XXH3_64bits(id.p, id.len);
	}
	imp->flags |= EXP_IMP_KEYED;
}

/* Shadow variants of the shopper's experiment: computed, compared with
 * what was served, recorded, never returned. After the response is
 * written (the pipe's arrays are reused). */
static void run_shadows(struct api_worker *w, const struct rec_params *p, const struct pipe_request *served_rq,
			const struct exp_experiment *e, const struct exp_impression *served)
{
	for (uint32_t i = 0; i < e->n_variants; i++) {
		const struct exp_variant *v = &e->v[i];
		if (!v->shadow || ck_pr_load_32(&exp_slots[v->slot].disabled))
			continue;
		uint64_t t0 = now_ns();
		struct pipe_request rq = *served_rq;
		uint32_t cart[API_MAX_CART];
		struct snap *s = srv_model_snapshot(w->srv, v->model_slot);
		if (!s || resolve_items(p, s, &rq, cart))
			continue;
		if (s != srv_snapshot(w->srv))
			rq.refresh = NULL;   /* the lists are the main model's */
		rq.variant = v;
		struct pipe_result res;
		pipe_recommend(w->pipe, w->lua, &rq, &res);
		struct exp_impression *imp = &w->imp;
		impression_fill(imp, s, &res, p, v->slot, 0, served->user_key, (now_ns() - t0) / 1000, EXP_IMP_SHADOW);
		impression_key(imp, s);
		uint32_t same = 0;
		for (uint32_t a = 0; a < imp->n; a++)
			for (uint32_t b = 0; b < served->n; b++)
				same += imp->item_keys[a] == served->item_keys[b];
		imp->overlap = (uint8_t)same;
		exp_ledger_impression(api_ledger, w->id, imp);
	}
}

/* Run a recommendation and write the response. */
static int api_recommend(struct api_worker *w, const struct rec_params *p, bool close, struct buf *out,
			 uint64_t t0)
{
	const struct recd_config *cfg = &w->srv->cfg;
	if (p->n < 1 || p->n > cfg->max_n)
		return api_fail(out, close, 400, "bad_request", "n must be an integer between 1 and %lld",
				(long long)cfg->max_n);
	struct snap *s = srv_snapshot(w->srv);
	if (unlikely(!s))
		return api_fail(out, close, 503, "not_ready", "no snapshot loaded yet");

	/* The shopper's experiment, from the set of this worker's policies. */
	const struct exp_set *es = NULL;
	const struct exp_variant *variant = NULL;
	struct exp_pick pick;
	if (p->user_len > 0 && p->personalize && w->lua && (es = exp_set_for(lua_host_generation(w->lua))) && es->n &&
	    exp_assign(es, p->user_id, (size_t)p->user_len, p->placement[0] ? p->placement : NULL, strlen(p->placement),
		       &pick)) {
		variant = &es->e[pick.experiment].v[pick.variant];
		struct snap *ms = variant->model_slot > 0 ? srv_model_snapshot(w->srv, variant->model_slot) : NULL;
		if (ms)
			s = ms;
	}

	struct updater *u = w->srv->updater;
	struct pipe_request rq = {
		.snap = s,
		.live = u ? &u->live : NULL,
		.trend = u ? &u->trend : NULL,
		.refresh = u && u->refresh.started ? &u->refresh : NULL,
		.worker = w->id,
		.context_item = -1,
		.n = (uint32_t)p->n,
		.nprobe = (uint32_t)cfg->ann_nprobe,
		.nprobe_miss = (uint32_t)cfg->ann_nprobe_miss,
		.personalize = p->personalize,
		/* Behind: a shopper without a precomputed list gets the other
		 * sources instead of a search now (and a list is asked for). */
		.shed = cfg->shed_backlog > 0 && w->backlog >= (uint32_t)cfg->shed_backlog,
		.variant = variant,
	};
	/* Per-user lists are computed on the main model only. */
	if (s != srv_snapshot(w->srv))
		rq.refresh = NULL;
	uint32_t cart[API_MAX_CART];
	if (resolve_items(p, s, &rq, cart))
		return api_fail(out, close, 400, "bad_request", "unknown item_id '%.64s'", p->item_id);
	if (p->user_len >= 0)
		rq.user_id = p->user_id, rq.user_id_len = (uint32_t)p->user_len;
	if (p->placement[0])
		rq.placement = p->placement, rq.placement_len = (uint32_t)strlen(p->placement);
	if (p->device[0])
		rq.device = p->device, rq.device_len = (uint32_t)strlen(p->device);
	if (p->region[0])
		rq.region = p->region, rq.region_len = (uint32_t)strlen(p->region);
	struct pipe_result res;
	pipe_recommend(w->pipe, w->lua, &rq, &res);
	struct metrics_worker *m = w->metrics;
	metrics_inc(&m->strategy[res.strategy < ARRAY_SIZE(m->strategy) ? res.strategy : 0]);
	metrics_inc(&m->tier[res.tier < ARRAY_SIZE(m->tier) ? res.tier : 0]);
	if (res.cache != PIPE_CACHE_NONE)
		metrics_inc(&m->cache[res.cache < ARRAY_SIZE(m->cache) ? res.cache : 0]);
	if (res.lua_rc)
		metrics_inc(&m->policy_fallbacks);

	struct buf *b = &w->body;
	buf_reset(b);
	w->seq++;
	char request_id[32];
	int rid_len = snprintf(request_id, sizeof(request_id), "%08llx-%02x-%08llx",
			       (unsigned long long)(w->srv->start_time_ms / 1000) & 0xffffffffull, w->id,
			       (unsigned long long)w->seq);
	buf_puts_lit(b, "{\"request_id\":\"");
	buf_put(b, request_id, (size_t)rid_len);
	buf_puts_lit(b, "\",\"user_id\":");
	if (p->user_len >= 0)
		buf_put_json_str(b, p->user_id, (size_t)p->user_len);
	else
		buf_puts_lit(b, "null");
	put_opt_str(b, "placement", p->placement);
	buf_puts_lit(b, ",\"items\":[");
	for (uint32_t i = 0; i < res.n; i++) {
		const struct lua_cand *c = &res.items[i];
		struct str id = snap_item_id(s, c->item);
		char reason[API_MAX_ID_LEN + 32];
		size_t rl = lua_host_reason_string(s, c, reason, sizeof(reason));
		if (i)
			buf_putc(b, ',');
		buf_puts_lit(b, "{\"id\":");
		buf_put_json_str(b, id.p, id.len);
		buf_puts_lit(b, ",\"score\":");
		buf_put_double(b, c->score);
		buf_puts_lit(b, ",\"reason\":");
		buf_put_json_str(b, reason, rl);
		buf_putc(b, '}');
	}
	buf_puts_lit(b, "],\"strategy\":\"");
	buf_puts(b, res.n ? lua_source_names[res.strategy] : "none");
	buf_puts_lit(b, "\",\"tier\":\"");
	buf_puts(b, lua_tier_names[res.tier]);
	buf_puts_lit(b, "\",\"route\":");
	buf_put_json_str(b, res.route, strnlen(res.route, LUA_POLICY_NAME_LEN));
	buf_puts_lit(b, ",\"policy\":");
	const char *pol = w->lua ? lua_host_policy_name(w->lua) : "builtin";
	buf_put_json_str(b, pol, strlen(pol));
	if (res.cache != PIPE_CACHE_NONE) {
		/* Where the personal candidates came from: recd's cache. */
		buf_puts_lit(b, ",\"candidates\":\"");
		buf_puts(b, pipe_cache_names[res.cache]);
		buf_putc(b, '"');
	}
	if (res.lua_rc) {
		/* The list is the C ranking because a hook failed. */
		buf_puts_lit(b, ",\"fallback\":\"");
		buf_puts(b, lua_hook_names[res.failed_hook]);
		buf_puts_lit(b, "\"");
	}
	if (variant) {
		buf_puts_lit(b, ",\"experiment\":");
		const struct exp_experiment *e = &es->e[pick.experiment];
		buf_put_json_str(b, e->name, strlen(e->name));
		buf_puts_lit(b, ",\"variant\":");
		const char *vn = exp_pick_variant_name(es, &pick);
		buf_put_json_str(b, vn, strlen(vn));
	}
	buf_puts_lit(b, ",\"snapshot\":");
	char snapname[SNAP_MODEL_VERSION_LEN + 24];
	int sl = snprintf(snapname, sizeof(snapname), "%s@%llu", s->hdr->model_version,
			  (unsigned long long)s->generation);
	buf_put_json_str(b, snapname, (size_t)sl);
	uint64_t took_us = (now_ns() - t0) / 1000;
	buf_puts_lit(b, ",\"took_us\":");
	buf_put_u64(b, took_us);
	buf_puts_lit(b, "}\n");
	if (unlikely(b->oom))
		return api_fail(out, close, 500, "internal", "out of memory");
	api_write(out, 200, JSON_CT, b, close, NULL);
	if (api_ledger) {
		/* The engine's own impression log: what it served, to whom, in
		 * which variant; clicks and purchases are matched to it. */
		uint64_t user_key = p->user_len > 0 && p->personalize ? XXH3_64bits(p->user_id, (size_t)p->user_len) : 0;
		impression_fill(&w->imp, s, &res, p, variant ? pick.slot : EXP_NO_SLOT,
				XXH3_64bits(request_id, (size_t)rid_len), user_key, took_us, EXP_IMP_SERVED);
		exp_ledger_impression(api_ledger, w->id, &w->imp);
		if (variant && es->e[pick.experiment].n_shadow && !(pick.flags & EXP_PICK_HOLDOUT)) {
			struct exp_impression served = w->imp;
			impression_key(&served, s);
			run_shadows(w, p, &rq, &es->e[pick.experiment], &served);
		}
	}
	return 200;
}

static int api_recommend_get(struct api_worker *w, const struct http_request *req, bool close, struct buf *out,
			     uint64_t t0)
{
	struct rec_params p;
	char tmp[32];
	int r;
	params_init(&p, &w->srv->cfg);

	r = http_query_get(req->query, "user_id", p.user_id, sizeof(p.user_id));
	if (r == -ENOENT)
		p.user_len = -1;
	else if (r < 0 || !api_id_valid(p.user_id, (size_t)r))
		return api_fail(out, close, 400, "bad_request",
				"user_id must be 1..%d bytes of printable text", API_MAX_ID_LEN);
	else
		p.user_len = r;

	r = http_query_get(req->query, "item_id", p.item_id, sizeof(p.item_id));
	if (r == -ENOENT)
		p.item_len = -1;
	else if (r < 0 || !api_id_valid(p.item_id, (size_t)r))
		return api_fail(out, close, 400, "bad_request",
				"item_id must be 1..%d bytes of printable text", API_MAX_ID_LEN);
	else
		p.item_len = r;

	r = http_query_get(req->query, "n", tmp, sizeof(tmp));
	if (r != -ENOENT && (r < 0 || !parse_int(tmp, &p.n)))
		return api_fail(out, close, 400, "bad_request", "n must be an integer between 1 and %lld",
				(long long)w->srv->cfg.max_n);

	r = http_query_get(req->query, "placement", p.placement, sizeof(p.placement));
	if (r == -ENOENT)
		p.placement[0] = 0;
	else if (r < 0 || !api_word_valid(p.placement, (size_t)r))
		return api_fail(out, close, 400, "bad_request",
				"placement must be 1..64 characters of [A-Za-z0-9_.-]");
	static const char *const ctx_keys[] = { "device", "region" };
	for (int i = 0; i < 2; i++) {
		char *dst = i ? p.region : p.device;
		r = http_query_get(req->query, ctx_keys[i], dst, sizeof(p.device));
		if (r == -ENOENT)
			dst[0] = 0;
		else if (r < 0 || !api_word_valid(dst, (size_t)r))
			return api_fail(out, close, 400, "bad_request",
					"%s must be 1..64 characters of [A-Za-z0-9_.-]", ctx_keys[i]);
	}
	r = http_query_get(req->query, "personalize", tmp, sizeof(tmp));
	if (r >= 0 && (!strcmp(tmp, "false") || !strcmp(tmp, "0")))
		p.personalize = false;
	else if (r != -ENOENT && !(r >= 0 && (!strcmp(tmp, "true") || !strcmp(tmp, "1"))))
		return api_fail(out, close, 400, "bad_request", "personalize must be true or false");
	return api_recommend(w, &p, close, out, t0);
}

/* Copy a JSON string field into dst; 0, or an error detail written to err. */
static int json_string_field(const char *s, const struct json_tok *t, const char *name, char *dst,
			     size_t dstlen, int *len, char *err, size_t errlen)
{
	if (t->type != JSON_STRING) {
		snprintf(err, errlen, "%s must be a string", name);
		return -EINVAL;
	}
	int r = json_str_decode(s, t, dst, dstlen);
	if (r < 0) {
		snprintf(err, errlen, "%s is too long or badly escaped", name);
		return -EINVAL;
	}
	*len = r;
	return 0;
}

static int api_recommend_post(struct api_worker *w, const struct http_request *req, bool close,
			      struct buf *out, uint64_t t0)
{
	if (!req->has_content_length)
		return api_fail(out, close, 411, "length_required", "POST needs a Content-Length body");
	if (req->content_type.len < 16 || strncasecmp(req->content_type.p, "application/json", 16) != 0)
		return api_fail(out, close, 415, "unsupported_media_type",
				"POST /v1/recommendations takes Content-Type: application/json");

	struct json_err jerr;
	const char *s = req->body.p;
	int ntok = json_parse(s, req->body.len, w->toks, API_MAX_JSON_TOKENS, &jerr);
	if (ntok == -ENOSPC)
		return api_fail(out, close, 413, "too_large", "request body has more than %d JSON values",
				API_MAX_JSON_TOKENS);
	if (ntok < 0)
		return api_fail(out, close, 400, "bad_json", "invalid JSON at byte %u: %s", jerr.offset,
				jerr.msg ? jerr.msg : "syntax error");
	if (w->toks[0].type != JSON_OBJECT)
		return api_fail(out, close, 400, "bad_request", "body must be a JSON object");

	struct rec_params p;
	params_init(&p, &w->srv->cfg);
	char err[160];
	char key[64];
	int plen;

	/* Walk key/value pairs: every field is known, typed and checked, so a
	 * typo ("userid") is an error and not a silent anonymous request. */
	int k = 1;
	for (uint32_t i = 0; i < w->toks[0].count; i++) {
		const struct json_tok *kt = &w->toks[k];
		const struct json_tok *vt = &w->toks[k + 1];
		int kl = json_str_decode(s, kt, key, sizeof(key));
		if (kl < 0)
			return api_fail(out, close, 400, "bad_request", "unknown field");
		if (!strcmp(key, "user_id")) {
			if (vt->type != JSON_NULL) {
				if (json_string_field(s, vt, "user_id", p.user_id, sizeof(p.user_id), &p.user_len,
						      err, sizeof(err)) ||
				    !api_id_valid(p.user_id, (size_t)p.user_len))
					return api_fail(out, close, 400, "bad_request",
							"user_id must be 1..%d bytes of printable text",
							API_MAX_ID_LEN);
			}
		} else if (!strcmp(key, "item_id")) {
			if (vt->type != JSON_NULL) {
				if (json_string_field(s, vt, "item_id", p.item_id, sizeof(p.item_id), &p.item_len,
						      err, sizeof(err)) ||
				    !api_id_valid(p.item_id, (size_t)p.item_len))
					return api_fail(out, close, 400, "bad_request",
							"item_id must be 1..%d bytes of printable text",
							API_MAX_ID_LEN);
			}
		} else if (!strcmp(key, "n")) {
			if (json_get_i64(s, vt, &p.n))
				return api_fail(out, close, 400, "bad_request",
						"n must be an integer between 1 and %lld",
						(long long)w->srv->cfg.max_n);
		} else if (!strcmp(key, "placement")) {
			if (json_string_field(s, vt, "placement", p.placement, sizeof(p.placement), &plen, err,
					      sizeof(err)) ||
			    !api_word_valid(p.placement, (size_t)plen))
				return api_fail(out, close, 400, "bad_request",
						"placement must be 1..64 characters of [A-Za-z0-9_.-]");
		} else if (!strcmp(key, "personalize")) {
			if (vt->type != JSON_TRUE && vt->type != JSON_FALSE)
				return api_fail(out, close, 400, "bad_request", "personalize must be true or false");
			p.personalize = vt->type == JSON_TRUE;
		} else if (!strcmp(key, "context")) {
			if (vt->type != JSON_OBJECT)
				return api_fail(out, close, 400, "bad_request", "context must be an object");
			/* Context (cart, device, region) is checked for shape here;
			 * the Lua policies are what read it. */
			int c = k + 2;
			for (uint32_t j = 0; j < vt->count; j++) {
				const struct json_tok *ck = &w->toks[c], *cv = &w->toks[c + 1];
				char ckey[16];
				if (json_str_decode(s, ck, ckey, sizeof(ckey)) < 0)
					return api_fail(out, close, 400, "bad_request",
							"context has an unknown field");
				if (!strcmp(ckey, "cart")) {
					if (cv->type != JSON_ARRAY)
						return api_fail(out, close, 400, "bad_request",
								"context.cart must be an array of item ids");
					for (int e = c + 2; e < (int)cv->next; e = (int)w->toks[e].next) {
						if (w->toks[e].type != JSON_STRING)
							return api_fail(out, close, 400, "bad_request",
									"context.cart must be an array of item ids");
						if (p.n_cart == API_MAX_CART)
							return api_fail(out, close, 400, "bad_request",
									"context.cart has more than %d items", API_MAX_CART);
						int cl = json_str_decode(s, &w->toks[e], p.cart[p.n_cart], API_MAX_ID_LEN + 1);
						if (cl <= 0)
							return api_fail(out, close, 400, "bad_request",
									"context.cart ids must be 1..%d bytes", API_MAX_ID_LEN);
						p.cart_len[p.n_cart++] = cl;
					}
				} else if (!strcmp(ckey, "device") || !strcmp(ckey, "region")) {
					char *dst = ckey[0] == 'd' ? p.device : p.region;
					int dl;
					if (cv->type != JSON_STRING ||
					    json_string_field(s, cv, ckey, dst, sizeof(p.device), &dl, err, sizeof(err)) ||
					    !api_word_valid(dst, (size_t)dl))
						return api_fail(out, close, 400, "bad_request",
								"context.%s must be 1..64 characters of [A-Za-z0-9_.-]", ckey);
				} else {
					return api_fail(out, close, 400, "bad_request",
							"context has an unknown field '%s'", ckey);
				}
				c = (int)cv->next;
			}
		} else {
			return api_fail(out, close, 400, "bad_request", "unknown field '%s'", key);
		}
		k = (int)vt->next;
	}
	return api_recommend(w, &p, close, out, t0);
}

static int api_health(struct api_worker *w, bool close, struct buf *out)
{
	struct buf *b = &w->body;
	buf_reset(b);
	buf_puts_lit(b, "{\"status\":\"ok\"}\n");
	api_write(out, 200, JSON_CT, b, close, NULL);
	return 200;
}

/* ,"policies":{...}: the published generation, and per worker whose
 * breaker is open or whose last call failed, the last error (file:line). */
static void api_put_policy_state(struct recd_server *srv, struct buf *b)
{
	buf_printf(b, ",\"policies\":{\"plugins_dir\":");
	buf_put_json_str(b, srv->cfg.plugins_dir, strlen(srv->cfg.plugins_dir));
	buf_printf(b, ",\"generation\":%llu,\"workers\":[", (unsigned long long)lua_host_published());
	for (uint32_t i = 0; srv->cfg.plugins_dir[0] && i < srv->n_workers && i < API_MAX_WORKERS; i++) {
		const struct lua_host_stats *st = &api_lua_stats[i];
		char e[256];
		lua_host_stats_last_error(st, e, sizeof(e));
		buf_printf(b, "%s{\"worker\":%u,\"generation\":%llu,\"breaker_open\":%s,\"consecutive_failures\":%u,"
			   "\"last_error\":", i ? "," : "", i, (unsigned long long)ck_pr_load_64((uint64_t *)&st->generation),
			   ck_pr_load_32((uint32_t *)&st->breaker_open) ? "true" : "false",
			   ck_pr_load_32((uint32_t *)&st->consecutive));
		if (e[0])
			buf_put_json_str(b, e, strlen(e));
		else
			buf_puts_lit(b, "null");
		buf_putc(b, '}');
	}
	buf_puts_lit(b, "]}");
}

static int api_ready(struct api_worker *w, bool close, struct buf *out)
{
	struct snap *s = srv_snapshot(w->srv);
	struct buf *b = &w->body;
	buf_reset(b);
	if (!s || ck_pr_load_int(&w->srv->stopping)) {
		buf_printf(b, "{\"ready\":false,\"reason\":\"%s\"}\n", s ? "draining" : "no snapshot loaded");
		api_write(out, 503, JSON_CT, b, close, NULL);
		return 503;
	}
	buf_printf(b, "{\"ready\":true,\"snapshot\":{\"model_version\":");
	buf_put_json_str(b, s->hdr->model_version, strnlen(s->hdr->model_version, SNAP_MODEL_VERSION_LEN));
	buf_printf(b, ",\"generation\":%llu,\"items\":%u}", (unsigned long long)s->generation, s->n_items);
	api_put_policy_state(w->srv, b);
	buf_puts_lit(b, "}\n");
	api_write(out, 200, JSON_CT, b, close, NULL);
	return 200;
}

_Static_assert(METRICS_HOOKS == LUA_HOOK__COUNT && METRICS_FAILS == LUA_FAIL__COUNT, "policy metric shapes");

/* The plugin label is the plugins directory's name ("plugins" for the
 * default set), so it stays the same across reloads. */
static void api_fill_policy_gauges(struct recd_server *srv, struct metrics_gauges *g)
{
	static __thread char set[64];
	const char *dir = srv->cfg.plugins_dir;
	size_t end = strlen(dir), beg;
	while (end > 1 && dir[end - 1] == '/')
		end--;
	for (beg = end; beg > 0 && dir[beg - 1] != '/'; beg--)
		;
	snprintf(set, sizeof(set), "%.*s", (int)(end - beg), dir + beg);
	g->policy_set = set[0] ? set : "builtin";
	g->tier_names = lua_tier_names;
	g->hook_names = lua_hook_names;
	g->fail_names = lua_fail_names;
	g->policy_generation = lua_host_published();
	g->policy_load_failures = ck_pr_load_64(&srv->policy_load_failures);
	for (uint32_t w = 0; w < srv->n_workers && w < API_MAX_WORKERS; w++) {
		const struct lua_host_stats *st = &api_lua_stats[w];
		for (int h = 0; h < LUA_HOOK__COUNT; h++) {
			g->policy_calls[h] += ck_pr_load_64((uint64_t *)&st->calls[h]);
			for (int k = 0; k < LUA_FAIL__COUNT; k++)
				g->policy_failures[h][k] += ck_pr_load_64((uint64_t *)&st->failures[h][k]);
		}
		g->policy_breaker_open += ck_pr_load_32((uint32_t *)&st->breaker_open);
		g->policy_breaker_trips += ck_pr_load_64((uint64_t *)&st->breaker_trips);
		g->policy_breaker_skips += ck_pr_load_64((uint64_t *)&st->breaker_skips);
		g->policy_rebuilds += ck_pr_load_64((uint64_t *)&st->rebuilds);
		g->policy_swap_failures += ck_pr_load_64((uint64_t *)&st->reload_failures);
	}
}

static void api_fill_gauges(struct recd_server *srv, struct metrics_gauges *g)
{
	struct snap *s = srv_snapshot(srv);
	memset(g, 0, sizeof(*g));
	g->version = RECD_VERSION;
	g->start_time_s = srv->start_time_ms / 1000;
	g->workers = srv->n_workers;
	g->connections_open = (int64_t)ck_pr_load_64(&srv->conn_open);
	g->snapshot_load_failures = ck_pr_load_64(&srv->snapshot_load_failures);
	api_models_gauges(srv, g);
	g->strategy_names = lua_source_names;
	struct updater *u = srv->updater;
	if (u) {
		g->event_type_names = event_type_names;
		g->events_applied = u->stats.applied;
		for (uint32_t i = 0; i < u->n_rings; i++)
			g->events_queued += ck_ring_size(&u->rings[i].ring);
		g->live_users = ck_pr_load_64(&u->live.stats.users);
		g->live_items = ck_pr_load_64(&u->live.stats.items);
		g->live_users_evicted = ck_pr_load_64(&u->live.stats.evicted_users);
		g->trending_items = trend_size(&u->trend);
		g->cache_names = pipe_cache_names;
		if (u->refresh.started) {
			struct refresh_stats rs;
			refresh_stats_read(&u->refresh, &rs);
			g->refresh_lists = rs.lists;
			g->refresh_computed = rs.computed;
			g->refresh_requested = rs.requested;
			g->refresh_dropped = rs.dropped + rs.overflow;
			g->refresh_compute_ns_total = rs.compute_ns_total;
			g->refresh_rebuilt = rs.rebuilt;
			g->refresh_rebuild_left = rs.rebuild_left;
			g->refresh_folded = rs.folded;
			for (uint32_t i = 0; i < u->refresh.n_hints; i++)
				g->refresh_hints_dropped += ck_pr_load_64(&u->refresh.hints[i].dropped);
		}
		g->events_recovered = ck_pr_load_64(&u->stats.recovered);
		g->event_log_errors = ck_pr_load_64(&u->stats.log_errors);
		g->checkpoints = ck_pr_load_64(&u->stats.checkpoints);
		g->checkpoint_errors = ck_pr_load_64(&u->stats.checkpoint_errors);
		g->checkpoint_ms = ck_pr_load_64(&u->stats.checkpoint_ms);
		g->checkpoint_wall_ms = ck_pr_load_64(&u->stats.checkpoint_wall_ms);
		g->event_log_disk_bytes = ck_pr_load_64(&u->stats.log_disk_bytes);
		g->recovery_ms = ck_pr_load_64(&u->stats.recovery_ms);
		if (u->log) {
			const struct evlog_stats *ls = &u->log->stats;
			g->event_log_records = ck_pr_load_64((uint64_t *)&ls->records);
			g->event_log_bytes = ck_pr_load_64((uint64_t *)&ls->bytes);
			g->event_log_syncs = ck_pr_load_64((uint64_t *)&ls->syncs);
			g->event_log_rotations = ck_pr_load_64((uint64_t *)&ls->rotations);
		}
	}
	if (srv->kafka) {
		struct kafka_stats ks;
		kafka_stats_read(srv->kafka, &ks);
		g->kafka = true;
		g->kafka_lag = ks.lag;
		g->kafka_partitions = ks.partitions;
		g->kafka_messages = ks.messages;
		g->kafka_events = ks.events;
		g->kafka_events_rejected = ks.rejected;
		g->kafka_duplicates = ks.duplicates;
		g->kafka_commits = ks.commits;
		g->kafka_errors = ks.errors;
	}
	api_fill_policy_gauges(srv, g);
	if (s) {
		g->snapshot_generation = s->generation;
		g->snapshot_items = s->n_items;
		g->snapshot_users = s->n_users;
		g->snapshot_build_time_s = s->hdr->build_time;
		g->snapshot_loaded_time_s = s->loaded_at_ms / 1000;
		g->snapshot_model_version = s->hdr->model_version;
		g->snapshot_bytes = s->size;
	}
}

static int api_metrics(struct api_worker *w, bool close, struct buf *out)
{
	struct metrics_gauges g;
	api_fill_gauges(w->srv, &g);
	buf_reset(&w->body);
	metrics_render(&w->body, &g);
	if (api_ledger)
		exp_report_metrics(api_ledger, &w->body);
	if (w->body.oom)
		return api_fail(out, close, 500, "internal", "out of memory");
	api_write(out, 200, "text/plain; version=0.0.4; charset=utf-8", &w->body, close, NULL);
	return 200;
}

/* GET /admin/experiments (quality false) or /admin/quality. */
static int api_admin_experiments(struct api_worker *w, bool quality, bool close, struct buf *out)
{
	if (!api_ledger)
		return api_fail(out, close, 503, "not_ready", "the experiment ledger is not running");
	buf_reset(&w->body);
	if (quality)
		exp_report_quality_json(api_ledger, &w->body);
	else
		exp_report_json(api_ledger, &w->body);
	if (w->body.oom)
		return api_fail(out, close, 500, "internal", "out of memory");
	api_write(out, 200, JSON_CT, &w->body, close, NULL);
	return 200;
}

static int api_admin_status(struct api_worker *w, bool close, struct buf *out)
{
	struct recd_server *srv = w->srv;
	struct snap *s = srv_snapshot(srv);
	struct buf *b = &w->body;
	buf_reset(b);
	buf_printf(b, "{\"version\":\"%s\",\"uptime_s\":%llu,\"started_at_ms\":%llu,\"workers\":%u,"
		      "\"connections\":%llu,\"listen\":",
		   RECD_VERSION, (unsigned long long)((now_ns() - srv->start_mono_ns) / 1000000000ull),
		   (unsigned long long)srv->start_time_ms, srv->n_workers,
		   (unsigned long long)ck_pr_load_64(&srv->conn_open));
	buf_put_json_str(b, srv->bound_addr, strlen(srv->bound_addr));
	buf_puts_lit(b, ",\"admin_listen\":");
	buf_put_json_str(b, srv->bound_admin, strlen(srv->bound_admin));
	buf_puts_lit(b, ",\"snapshot\":");
	if (s) {
		buf_puts_lit(b, "{\"path\":");
		buf_put_json_str(b, s->path, strlen(s->path));
		buf_puts_lit(b, ",\"model_version\":");
		buf_put_json_str(b, s->hdr->model_version, strnlen(s->hdr->model_version, SNAP_MODEL_VERSION_LEN));
		buf_printf(b, ",\"generation\":%llu,\"build_time\":%llu,\"loaded_at_ms\":%llu,\"items\":%u,"
			      "\"users\":%u,\"categories\":%u,\"dim\":%u,\"bytes\":%zu}",
			   (unsigned long long)s->generation, (unsigned long long)s->hdr->build_time,
			   (unsigned long long)s->loaded_at_ms, s->n_items, s->n_users, s->n_categories, s->dim,
			   s->size);
	} else {
		buf_puts_lit(b, "null");
	}
	api_models_status(srv, b);
	buf_printf(b, ",\"snapshot_load_failures\":%llu,\"config\":",
		   (unsigned long long)ck_pr_load_64(&srv->snapshot_load_failures));
	cfg_dump_json(&srv->cfg, b);
	buf_puts_lit(b, "}\n");
	if (b->oom)
		return api_fail(out, close, 500, "internal", "out of memory");
	api_write(out, 200, JSON_CT, b, close, NULL);
	return 200;
}

static void event_reject(struct buf *rej, uint32_t *n_rej, uint32_t index, const char *error)
{
	if ((*n_rej)++)
		buf_putc(rej, ',');
	buf_printf(rej, "{\"index\":%u,\"error\":", index);
	buf_put_json_str(rej, error, strlen(error));
	buf_putc(rej, '}');
}

/* POST /v1/events: one JSON object, a JSON array, or NDJSON. Every event
 * is validated on its own: valid ones go to this worker's ring, invalid
 * ones are listed with their index and reason. */
static int api_events(struct api_worker *w, const struct http_request *req, bool close, struct buf *out)
{
	struct updater *u = w->srv->updater;
	if (!req->has_content_length)
		return api_fail(out, close, 411, "length_required", "POST needs a Content-Length body");
	bool ndjson = req->content_type.len >= 20 && !strncasecmp(req->content_type.p, "application/x-ndjson", 20);
	if (!ndjson && (req->content_type.len < 16 || strncasecmp(req->content_type.p, "application/json", 16)))
		return api_fail(out, close, 415, "unsupported_media_type",
				"POST /v1/events takes application/json or application/x-ndjson");
	/* Split as the Kafka consumer splits a message (events/event.h). The
	 * events are counted first, so a request can be refused whole (503)
	 * before any of it is queued. */
	struct event_batch eb;
	struct json_err jerr;
	int br = event_batch_init(&eb, req->body.p, req->body.len, ndjson, w->toks, w->n_toks, &jerr);
	if (br == -ENOSPC)
		return api_fail(out, close, 413, "too_large",
				"the body has more JSON values than %lld events may hold (max_events_per_request)",
				(long long)w->srv->cfg.max_events_per_request);
	if (br < 0)
		return api_fail(out, close, 400, "bad_json", "invalid JSON at byte %u: %s", jerr.offset,
				jerr.msg ? jerr.msg : "syntax error");
	int64_t n = eb.n;
	if (n > w->srv->cfg.max_events_per_request)
		return api_fail(out, close, 413, "too_large", "%lld events; at most %lld in one request",
				(long long)n, (long long)w->srv->cfg.max_events_per_request);
	if (n == 0)
		return api_fail(out, close, 400, "bad_request", "no events in the body");
	if (upd_room(u, w->id) < (uint64_t)n) {
		metrics_inc(&w->metrics->events_ring_full);
		char hdr[] = "Retry-After: 1\r\n";
		api_write_error(out, 503, "overloaded", "the event queue is full; retry shortly", close, hdr);
		return 503;
	}

	/* Rejections are collected in the body buffer after a gap left for
	 * the head of the answer, then moved into place. */
	struct buf *b = &w->body;
	buf_reset(b);
	uint32_t accepted = 0, n_rej = 0, index = 0;
	char err[160];
	uint64_t now = now_wall_ms();
	const char *src;
	int obj, got;
	for (; (got = event_batch_next(&eb, &src, &obj, err, sizeof(err))) >= 0; index++) {
		if (!got) {
			event_reject(b, &n_rej, index, err);
			continue;
		}
		struct event *ev = upd_reserve(u, w->id);
		if (!ev || event_from_json(src, w->toks, obj, now, ev, err, sizeof(err))) {
			event_reject(b, &n_rej, index, ev ? err : "event queue full");
			continue;
		}
		upd_commit(u, w->id, ev);
		metrics_inc(&w->metrics->events_accepted[ev->type]);
		accepted++;
	}
	if (ndjson && eb.n_json == 0)
		return api_fail(out, close, 400, "bad_json", "no line of the body is JSON");
	if (n_rej)
		metrics_add(&w->metrics->events_rejected, n_rej);
	if (accepted) {
		w->hold_seq = upd_produced(u, w->id);
		w->wake_updater = upd_needs_wake(u);
	}
	/* {"accepted":N,"rejected":[...]} around what is in b */
	char head[48];
	int hl = snprintf(head, sizeof(head), "{\"accepted\":%u,\"rejected\":[", accepted);
	if (buf_reserve(b, (size_t)hl + 4) == 0) {
		memmove(b->data + hl, b->data, b->len);
		memcpy(b->data, head, (size_t)hl);
		b->len += (size_t)hl;
	}
	buf_puts_lit(b, "]}\n");
	if (b->oom)
		return api_fail(out, close, 500, "internal", "out of memory");
	api_write(out, 202, JSON_CT, b, close, NULL);
	return 202;
}

/* DELETE /v1/users/{id} (admin): forget a user's live state now. Goes
 * through the admin worker's ring like any event, so the updater stays
 * the only writer. */
static int api_forget_user(struct api_worker *w, const struct http_request *req, bool close, struct buf *out)
{
	struct updater *u = w->srv->updater;
	struct str raw = { req->path.p + 10, req->path.len - 10 };
	char idbuf[EVENT_ID_MAX];
	int il = memchr(raw.p, '/', raw.len) ? -EINVAL : http_path_decode(raw, idbuf, sizeof(idbuf));
	struct str id = { idbuf, il > 0 ? (size_t)il : 0 };
	struct event *ev;
	if (il <= 0)
		return api_fail(out, close, 400, "bad_request",
				"expected /v1/users/{user_id}: a percent-encoded id of 1..%d bytes", EVENT_ID_MAX - 1);
	if (upd_room(u, w->id) < 1 || !(ev = upd_reserve(u, w->id))) {
		api_write_error(out, 503, "overloaded", "the event queue is full; retry shortly", close,
				"Retry-After: 1\r\n");
		return 503;
	}
	memset(ev, 0, offsetof(struct event, user_id));
	ev->type = EVENT_FORGET_USER;
	ev->flags = EVENT_HAS_USER;
	memcpy(ev->user_id, id.p, id.len);
	ev->user_id[id.len] = 0;
	ev->user_len = (uint8_t)id.len;
	ev->user_key = event_key(id.p, id.len);
	ev->ts_ms = now_wall_ms();
	upd_commit(u, w->id, ev);
	w->hold_seq = upd_produced(u, w->id);
	w->wake_updater = upd_needs_wake(u);
	struct buf *b = &w->body;
	buf_reset(b);
	buf_puts_lit(b, "{\"user_id\":");
	buf_put_json_str(b, id.p, id.len);
	buf_puts_lit(b, ",\"forgotten\":true}\n");
	api_write(out, 202, JSON_CT, b, close, NULL);
	return 202;
}

/* POST /admin/checkpoint: ask the updater for a checkpoint now (before a
 * backup, or to trim the log). Answers at once; recd_checkpoints_total
 * and the msg=checkpoint log line say when it is written. */
static int api_admin_checkpoint(struct api_worker *w, bool close, struct buf *out)
{
	struct updater *u = w->srv->updater;
	uint64_t done = ck_pr_load_64(&u->stats.checkpoints);
	int r = upd_checkpoint_request(u);
	if (r == -ENOTSUP)
		return api_fail(out, close, 409, "no_event_log", "checkpoints need the event log (event_log = true)");
	if (r)
		return api_fail(out, close, 503, "unavailable", "could not wake the updater (%s)", strerror(-r));
	struct buf *b = &w->body;
	buf_reset(b);
	buf_printf(b, "{\"requested\":true,\"checkpoints\":%llu}\n", (unsigned long long)done);
	api_write(out, 202, JSON_CT, b, close, NULL);
	return 202;
}

/* POST /admin/reload?what=snapshot|policies|all: the control thread does
 * the work; this admin worker waits for its answer (admin traffic only). */
/* "a,b" as a JSON array of strings. */
static void put_name_list(struct buf *b, const char *list)
{
	buf_putc(b, '[');
	for (const char *p = list; *p;) {
		size_t l = strcspn(p, ",");
		if (p != list)
			buf_putc(b, ',');
		buf_put_json_str(b, p, l);
		p += l + (p[l] == ',');
	}
	buf_putc(b, ']');
}

static int api_admin_reload(struct api_worker *w, const struct http_request *req, bool close, struct buf *out)
{
	char what_s[16];
	unsigned what = CTL_RELOAD_ALL;
	int r = http_query_get(req->query, "what", what_s, sizeof(what_s));
	if (r >= 0) {
		if (!strcmp(what_s, "snapshot"))
			what = CTL_RELOAD_SNAPSHOT;
		else if (!strcmp(what_s, "policies"))
			what = CTL_RELOAD_POLICIES;
		else if (!strcmp(what_s, "settings"))
			what = CTL_RELOAD_SETTINGS;
		else if (strcmp(what_s, "all"))
			r = -EINVAL;
	}
	if (r < 0 && r != -ENOENT)
		return api_fail(out, close, 400, "bad_request", "what must be snapshot, policies, settings or all");
	/* model=<name>: the snapshot part reloads that model only. */
	unsigned models = CTL_MODELS_ALL;
	char model_s[CFG_MODEL_NAME_MAX + 2];
	int mr = http_query_get(req->query, "model", model_s, sizeof(model_s));
	if (mr != -ENOENT) {
		int ms = mr >= 0 ? srv_model_find(w->srv, model_s, (size_t)mr) : -1;
		if (ms < 0)
			return api_fail(out, close, 404, "unknown_model", "no model named '%.*s' (see `models`)",
					mr > 0 ? mr : 0, model_s);
		if (r >= 0 && what != CTL_RELOAD_SNAPSHOT)
			return api_fail(out, close, 400, "bad_request", "model needs what=snapshot");
		what = CTL_RELOAD_SNAPSHOT;
		models = 1u << ms;
	}
	struct ctl_reload_result res;
	/* The admin worker waits for the control thread here (admin traffic
	 * only); the watchdog must not take that for a stuck worker. */
	struct srv_thread_slot *slot = w->srv->slots && w->id < w->srv->n_threads ? &w->srv->slots[w->id] : NULL;
	if (slot)
		ck_pr_store_int(&slot->waiting, 1);
	r = ctl_request_reload_models(w->srv, what, models, &res);
	if (slot)
		ck_pr_store_int(&slot->waiting, 0);
	if (r)
		return api_fail(out, close, 503, "unavailable", "the control thread did not answer (%s)",
				r == -ETIMEDOUT ? "timeout" : "shutting down");
	static const char *const st[] = { "reloaded", "unchanged", "refused" };
	struct buf *b = &w->body;
	buf_reset(b);
	/* Every part that was asked for is reported, refused or not; the
	 * status is 422 when any part was refused (it kept what it had). */
	bool refused = res.status == CTL_REFUSED || res.policy_status == CTL_REFUSED ||
		       res.settings_status == CTL_REFUSED;
	buf_putc(b, '{');
	if (refused) {
		const char *e = res.status == CTL_REFUSED ? "snapshot_refused" :
				res.policy_status == CTL_REFUSED ? "policies_refused" : "settings_refused";
		const char *d = res.status == CTL_REFUSED ? res.error :
				res.policy_status == CTL_REFUSED ? res.policy_error : res.settings_error;
		buf_puts_lit(b, "\"error\":");
		buf_put_json_str(b, e, strlen(e));
		buf_puts_lit(b, ",\"detail\":");
		buf_put_json_str(b, d, strlen(d));
		buf_printf(b, ",\"generation\":%llu,\"policy_generation\":%llu,", (unsigned long long)res.generation,
			   (unsigned long long)res.policy_generation);
	}
	buf_printf(b, "\"snapshot\":{\"status\":\"%s\",\"generation\":%llu,\"model_version\":",
		   what & CTL_RELOAD_SNAPSHOT ? st[res.status] : "unchanged", (unsigned long long)res.generation);
	buf_put_json_str(b, res.model_version, strlen(res.model_version));
	if (res.status == CTL_REFUSED) {
		buf_puts_lit(b, ",\"detail\":");
		buf_put_json_str(b, res.error, strlen(res.error));
	}
	buf_putc(b, '}');
	api_models_reload(w->srv, &res, b);
	buf_printf(b, ",\"policies\":{\"status\":\"%s\",\"generation\":%llu", st[res.policy_status],
		   (unsigned long long)res.policy_generation);
	if (res.policy_error[0]) {
		buf_puts_lit(b, ",\"detail\":");
		buf_put_json_str(b, res.policy_error, strlen(res.policy_error));
	}
	buf_printf(b, "},\"settings\":{\"status\":\"%s\",\"applied\":", st[res.settings_status]);
	put_name_list(b, res.settings_applied);
	buf_puts_lit(b, ",\"need_restart\":");
	put_name_list(b, res.settings_restart);
	if (res.settings_error[0]) {
		buf_puts_lit(b, ",\"detail\":");
		buf_put_json_str(b, res.settings_error, strlen(res.settings_error));
	}
	buf_puts_lit(b, "}}\n");
	api_write(out, refused ? 422 : 200, JSON_CT, b, close, NULL);
	return refused ? 422 : 200;
}

/* POST /admin/debug/stall?worker=N&ms=M (debug_endpoints only): make a
 * worker stop turning for M ms, to test the systemd watchdog. */
static int api_admin_stall(struct api_worker *w, const struct http_request *req, bool close, struct buf *out)
{
	char tmp[24];
	int64_t worker = -1, ms = -1;
	if (http_query_get(req->query, "worker", tmp, sizeof(tmp)) < 0 || !parse_int(tmp, &worker) ||
	    http_query_get(req->query, "ms", tmp, sizeof(tmp)) < 0 || !parse_int(tmp, &ms) || worker < 0 ||
	    worker >= (int64_t)w->srv->n_threads || ms < 1 || ms > 600000)
		return api_fail(out, close, 400, "bad_request", "worker must be 0..%u and ms 1..600000",
				w->srv->n_threads - 1);
	ck_pr_store_64(&w->srv->slots[worker].stall_ms, (uint64_t)ms);
	struct buf *b = &w->body;
	buf_reset(b);
	buf_printf(b, "{\"stalled\":%lld,\"ms\":%lld}\n", (long long)worker, (long long)ms);
	api_write(out, 200, JSON_CT, b, close, NULL);
	return 200;
}

/* Constant-time compare so the token cannot be guessed byte by byte. */
static bool token_matches(const struct http_request *req, const char *token)
{
	size_t tl = strlen(token);
	struct str a = req->authorization;
	if (a.len != 7 + tl || strncasecmp(a.p, "Bearer ", 7) != 0)
		return false;
	unsigned char diff = 0;
	for (size_t i = 0; i < tl; i++)
		diff |= (unsigned char)(a.p[7 + i] ^ token[i]);
	return diff == 0;
}

static int method_not_allowed(struct buf *out, bool close, const char *allow)
{
	char hdr[64];
	snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
	api_write_error(out, 405, "method_not_allowed", "this endpoint does not take that method", close, hdr);
	return 405;
}

/* GET /admin/users/{id} (admin): what live state remembers of one user
 * right now (operators; the crash test checks recovery with it). Read in
 * this loop turn's epoch section like any live lookup. Items are shown by
 * id, or as "#<key hex>" when the snapshot does not know them. */
static int api_admin_user(struct api_worker *w, const struct http_request *req, bool close, struct buf *out,
			  enum metrics_endpoint *ep)
{
	*ep = MEP_ADMIN;
	if (req->method != HTTP_M_GET)
		return method_not_allowed(out, close, "GET");
	struct str raw = { req->path.p + 13, req->path.len - 13 };
	char idbuf[EVENT_ID_MAX];
	int il = memchr(raw.p, '/', raw.len) ? -EINVAL : http_path_decode(raw, idbuf, sizeof(idbuf));
	struct str id = { idbuf, il > 0 ? (size_t)il : 0 };
	if (il <= 0)
		return api_fail(out, close, 400, "bad_request",
				"expected /admin/users/{user_id}: a percent-encoded id of 1..%d bytes", EVENT_ID_MAX - 1);
	const struct live_user *lu = live_user_get(&w->srv->updater->live, event_key(id.p, id.len));
	if (!lu)
		return api_fail(out, close, 404, "not_found", "no live state for this user");
	const struct snap *s = srv_snapshot(w->srv);
	struct buf *b = &w->body;
#define PUT_ITEM(key) do { \
		int64_t ix_ = s ? snap_item_find_key(s, (key)) : -1; \
		if (ix_ >= 0) { \
			struct str is_ = snap_item_id(s, (uint32_t)ix_); \
			buf_put_json_str(b, is_.p, is_.len); \
		} else { \
			buf_printf(b, "\"#%016llx\"", (unsigned long long)(key)); \
		} \
	} while (0)
	buf_reset(b);
	buf_puts_lit(b, "{\"user_id\":");
	buf_put_json_str(b, id.p, id.len);
	buf_printf(b, ",\"interactions\":%u,\"first_seen_ms\":%llu,\"last_seen_ms\":%llu,\"recent\":[",
		   lu->n_interactions, (unsigned long long)lu->first_seen_ms, (unsigned long long)lu->last_seen_ms);
	for (uint32_t i = 0; i < lu->n_recent; i++) {
		buf_puts(b, i ? ",{\"item_id\":" : "{\"item_id\":");
		PUT_ITEM(lu->recent[i].item_key);
		const char *t = lu->recent[i].type < EVENT__TYPE_COUNT ? event_type_names[lu->recent[i].type] : NULL;
		buf_printf(b, ",\"type\":\"%s\",\"ts_ms\":%llu}", t ? t : "?",
			   (unsigned long long)lu->recent[i].ts_ms);
	}
	buf_puts_lit(b, "],\"cart\":[");
	for (uint32_t i = 0; i < lu->n_cart; i++) {
		if (i)
			buf_putc(b, ',');
		PUT_ITEM(lu->cart[i]);
	}
	buf_puts_lit(b, "],\"purchased\":[");
	for (uint32_t i = 0; lu->purchased && i < lu->purchased->n; i++) {
		if (i)
			buf_putc(b, ',');
		PUT_ITEM(lu->purchased->order[i]);
	}
#undef PUT_ITEM
	buf_puts_lit(b, "]}\n");
	if (b->oom)
		return api_fail(out, close, 500, "internal", "out of memory");
	api_write(out, 200, JSON_CT, b, close, NULL);
	return 200;
}

int api_handle(struct api_worker *w, const struct http_request *req, bool closing, struct buf *out,
	       enum metrics_endpoint *ep)
{
	uint64_t t0 = now_ns();
	bool close = closing || !req->keep_alive;
	struct str path = req->path;
	bool get = req->method == HTTP_M_GET;

	if (w->admin) {
		if (w->srv->cfg.admin_token[0] && !token_matches(req, w->srv->cfg.admin_token)) {
			*ep = MEP_ADMIN;
			api_write_error(out, 401, "unauthorized", "admin endpoints need Authorization: Bearer <token>",
					close, "WWW-Authenticate: Bearer\r\n");
			return 401;
		}
		if (STR_EQ(path, "/admin/status")) {
			*ep = MEP_ADMIN;
			return get ? api_admin_status(w, close, out) : method_not_allowed(out, close, "GET");
		}
		if (STR_EQ(path, "/admin/experiments") || STR_EQ(path, "/admin/quality")) {
			*ep = MEP_ADMIN;
			if (!get)
				return method_not_allowed(out, close, "GET");
			return api_admin_experiments(w, path.len == strlen("/admin/quality"), close, out);
		}
		if (path.len > 13 && !memcmp(path.p, "/admin/users/", 13))
			return api_admin_user(w, req, close, out, ep);
		if (STR_EQ(path, "/admin/explain")) {
			*ep = MEP_ADMIN;
			return get ? api_admin_explain(w, req, close, out) : method_not_allowed(out, close, "GET");
		}
		if (path.len > 13 && !memcmp(path.p, "/admin/items/", 13)) {
			*ep = MEP_ADMIN;
			return get ? api_admin_item(w, req, close, out) : method_not_allowed(out, close, "GET");
		}
		if (STR_EQ(path, "/v1/events")) {   /* recdctl events send: the admin worker's own ring */
			*ep = MEP_EVENTS;
			return req->method == HTTP_M_POST ? api_events(w, req, close, out)
							  : method_not_allowed(out, close, "POST");
		}
		if (path.len > 10 && !memcmp(path.p, "/v1/users/", 10)) {
			*ep = MEP_ADMIN;
			return req->method == HTTP_M_DELETE ? api_forget_user(w, req, close, out)
							    : method_not_allowed(out, close, "DELETE");
		}
		if (STR_EQ(path, "/admin/reload")) {
			*ep = MEP_ADMIN;
			return req->method == HTTP_M_POST ? api_admin_reload(w, req, close, out)
							  : method_not_allowed(out, close, "POST");
		}
		if (STR_EQ(path, "/admin/checkpoint")) {
			*ep = MEP_ADMIN;
			return req->method == HTTP_M_POST ? api_admin_checkpoint(w, close, out)
							  : method_not_allowed(out, close, "POST");
		}
		if (STR_EQ(path, "/admin/debug/stall") && w->srv->cfg.debug_endpoints) {
			*ep = MEP_ADMIN;
			return req->method == HTTP_M_POST ? api_admin_stall(w, req, close, out)
							  : method_not_allowed(out, close, "POST");
		}
	} else if (STR_EQ(path, "/v1/events")) {
		*ep = MEP_EVENTS;
		return req->method == HTTP_M_POST ? api_events(w, req, close, out)
						  : method_not_allowed(out, close, "POST");
	} else if (STR_EQ(path, "/v1/recommendations")) {
		*ep = MEP_RECOMMENDATIONS;
		if (get)
			return api_recommend_get(w, req, close, out, t0);
		if (req->method == HTTP_M_POST)
			return api_recommend_post(w, req, close, out, t0);
		return method_not_allowed(out, close, "GET, POST");
	}
	if (STR_EQ(path, "/health")) {
		*ep = MEP_HEALTH;
		return get ? api_health(w, close, out) : method_not_allowed(out, close, "GET");
	}
	if (STR_EQ(path, "/ready")) {
		*ep = MEP_READY;
		return get ? api_ready(w, close, out) : method_not_allowed(out, close, "GET");
	}
	if (STR_EQ(path, "/metrics")) {
		*ep = MEP_METRICS;
		return get ? api_metrics(w, close, out) : method_not_allowed(out, close, "GET");
	}
	*ep = MEP_OTHER;
	api_write_error(out, 404, "not_found", "no such endpoint", close, NULL);
	return 404;
}
