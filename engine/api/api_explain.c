/* api_explain.c: GET /admin/explain, GET /admin/items/{id}, and the admin
 * worker's own Lua state (see api_explain.h; docs/api.md). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/api_explain.h"
#include "core/log.h"
#include "live/live.h"
#include "live/trend.h"
#include "live/updater.h"
#include "lua/lua_host.h"
#include "pipe/pipe.h"

#define JSON_CT "application/json"
#define EX_NEIGHBORS 10            /* neighbours shown by /admin/items/{id} */

/* ------------------------------------------------- the admin Lua state */

/* The admin worker's policy counters: its own, so explains never show in
 * the request workers' policy metrics (api_lua_stats[] are summed there). */
static struct lua_host_stats ex_lua_stats;

/* What the control thread is about to publish (api_policies_stage), for
 * the admin worker to build from. A lock is fine: the admin worker takes
 * it at a turn after a publish, the control thread once per reload. */
static struct {
	pthread_mutex_t mu;
	char dir[PATH_MAX];
	uint64_t generation;
	struct lua_host_limits lim;
} ex_staged = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* Admin thread only. */
static bool ex_policies;           /* a policy set is configured */
static uint64_t ex_generation;     /* generation of w->lua */
static uint64_t ex_failed;         /* a generation that failed to build here: not retried */

void api_explain_worker_init(struct api_worker *w)
{
	struct recd_server *srv = w->srv;
	ex_policies = srv->policy_dir[0] != 0;
	ex_generation = lua_host_published();
	if (!ex_policies)
		return;
	char err[384];
	struct lua_host_limits lim;
	api_lua_limits(&srv->cfg, &lim);
	w->lua_stats = &ex_lua_stats;
	if (lua_host_create(&w->lua, srv->policy_dir, srv->cfg.lua_dir, &lim, &ex_lua_stats, ex_generation, err,
			    sizeof(err))) {
		log_error("policy_load_failed", "worker=%u admin=true err=\"%s\" detail=\"explain shows the built-in policies\"",
			  w->id, err);
		w->lua = NULL;
	}
}

void api_explain_policies_staged(const char *dir, uint64_t generation, const struct lua_host_limits *lim)
{
	pthread_mutex_lock(&ex_staged.mu);
	snprintf(ex_staged.dir, sizeof(ex_staged.dir), "%s", dir);
	ex_staged.generation = generation;
	ex_staged.lim = *lim;
	pthread_mutex_unlock(&ex_staged.mu);
}

void api_explain_worker_turn(struct api_worker *w)
{
	if (!ex_policies)
		return;
	uint64_t pub = lua_host_published();
	if (pub != ex_generation && pub != ex_failed) {
		/* A new generation: build it from the staged copy (not from the
		 * running state's directory, which holds the old files). */
		char dir[PATH_MAX], err[384];
		struct lua_host_limits lim;
		uint64_t gen;
		pthread_mutex_lock(&ex_staged.mu);
		memcpy(dir, ex_staged.dir, sizeof(dir));
		gen = ex_staged.generation;
		lim = ex_staged.lim;
		pthread_mutex_unlock(&ex_staged.mu);
		if (gen != pub)
			return;   /* staged, not published yet (or the next one is being staged) */
		uint64_t t0 = now_ns();
		struct lua_host *n;
		if (lua_host_create(&n, dir, w->srv->cfg.lua_dir, &lim, &ex_lua_stats, pub, err, sizeof(err))) {
			log_error("policy_reload_failed", "worker=%u admin=true generation=%llu err=\"%s\"", w->id,
				  (unsigned long long)pub, err);
			ex_failed = pub;   /* the old state (if any) serves on */
			return;
		}
		if (w->lua)
			lua_host_destroy(w->lua);
		w->lua = n;
		w->lua_stats = &ex_lua_stats;
		ex_generation = pub;
		log_debug("policy_swapped", "worker=%u admin=true policy=%s took_us=%llu", w->id, lua_host_policy_name(n),
			  (unsigned long long)((now_ns() - t0) / 1000));
		return;
	}
	/* Over its memory ceiling: rebuilt from its own directory. */
	if (w->lua)
		lua_host_maybe_reload(&w->lua, ex_generation);
}

/* ------------------------------------------------------------ helpers */

static void put_key(struct buf *b, bool comma, const char *key)
{
	if (comma)
		buf_putc(b, ',');
	buf_putc(b, '"');
	buf_puts(b, key);
	buf_puts_lit(b, "\":");
}

static void put_str_or_null(struct buf *b, const char *s, int len)
{
	if (len >= 0)
		buf_put_json_str(b, s, (size_t)len);
	else
		buf_puts_lit(b, "null");
}

static void put_item(struct buf *b, const struct snap *s, uint32_t item)
{
	if (item != LUA_NO_ITEM && item < s->n_items) {
		struct str id = snap_item_id(s, item);
		buf_put_json_str(b, id.p, id.len);
	} else {
		buf_puts_lit(b, "null");
	}
}

static void put_flags(struct buf *b, uint16_t flags)
{
	static const struct { uint16_t bit; const char *name; } names[] = {
		{ LUA_CAND_ON_SALE, "on_sale" }, { LUA_CAND_OUT_OF_STOCK, "out_of_stock" },
		{ LUA_CAND_BOOSTED, "boosted" }, { LUA_CAND_DEMOTED, "demoted" },
	};
	buf_puts_lit(b, ",\"flags\":[");
	bool first = true;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (flags & names[i].bit) {
			if (!first)
				buf_putc(b, ',');
			buf_putc(b, '"');
			buf_puts(b, names[i].name);
			buf_putc(b, '"');
			first = false;
		}
	buf_putc(b, ']');
}

static const struct lua_cand *find_cand(const struct lua_cand *c, uint32_t n, uint32_t item)
{
	for (uint32_t i = 0; i < n; i++)
		if (c[i].item == item)
			return &c[i];
	return NULL;
}

/* -------------------------------------------------------------- explain */

struct ex_params {
	char user[API_MAX_ID_LEN + 1], item[API_MAX_ID_LEN + 1];
	int user_len, item_len;         /* -1: absent */
	char placement[65], device[65], region[65];
	int64_t n;
	bool personalize;
};

/* The query as GET /v1/recommendations reads it; 0 or the status written. */
static int ex_parse(struct api_worker *w, const struct http_request *req, bool close, struct buf *out,
		    struct ex_params *p)
{
	const struct recd_config *cfg = &w->srv->cfg;
	char tmp[32];
	int r;
	p->n = cfg->default_n;
	p->personalize = true;
	r = http_query_get(req->query, "user_id", p->user, sizeof(p->user));
	p->user_len = r;
	if (r != -ENOENT && (r < 0 || !api_id_valid(p->user, (size_t)r)))
		return api_fail(out, close, 400, "bad_request", "user_id must be 1..%d bytes of printable text",
			       API_MAX_ID_LEN);
	r = http_query_get(req->query, "item_id", p->item, sizeof(p->item));
	p->item_len = r;
	if (r != -ENOENT && (r < 0 || !api_id_valid(p->item, (size_t)r)))
		return api_fail(out, close, 400, "bad_request", "item_id must be 1..%d bytes of printable text",
			       API_MAX_ID_LEN);
	if (p->user_len < 0)
		p->user_len = -1;
	if (p->item_len < 0)
		p->item_len = -1;
	r = http_query_get(req->query, "n", tmp, sizeof(tmp));
	if (r != -ENOENT) {
		char *end;
		long long v = r > 0 && r < 12 ? strtoll(tmp, &end, 10) : 0;
		if (r <= 0 || r >= 12 || *end || v < 1 || v > cfg->max_n)
			return api_fail(out, close, 400, "bad_request", "n must be an integer between 1 and %lld",
				       (long long)cfg->max_n);
		p->n = v;
	}
	static const char *const words[] = { "placement", "device", "region" };
	char *dst[] = { p->placement, p->device, p->region };
	for (int i = 0; i < 3; i++) {
		r = http_query_get(req->query, words[i], dst[i], sizeof(p->placement));
		if (r == -ENOENT)
			dst[i][0] = 0;
		else if (r < 0 || !api_word_valid(dst[i], (size_t)r))
			return api_fail(out, close, 400, "bad_request", "%s must be 1..64 characters of [A-Za-z0-9_.-]",
				       words[i]);
	}
	r = http_query_get(req->query, "personalize", tmp, sizeof(tmp));
	if (r >= 0 && (!strcmp(tmp, "false") || !strcmp(tmp, "0")))
		p->personalize = false;
	else if (r != -ENOENT && !(r >= 0 && (!strcmp(tmp, "true") || !strcmp(tmp, "1"))))
		return api_fail(out, close, 400, "bad_request", "personalize must be true or false");
	return 0;
}

/* One hook's outcome, as explain reports it. */
struct ex_hook {
	const char *status;             /* ok, absent, failed, skipped */
	char error[256];
};

/* The lua_host codes (lua_host.h) in words. */
static const char *ex_rc_name(int rc)
{
	switch (rc) {
	case -ECANCELED: return "breaker open";
	case -ESTALE: return "state over its memory ceiling, being rebuilt";
	case -EIO: return "error";
	case -ETIME: return "over plugin_budget_us";
	case -ENOMEM: return "over plugin_memory_mb";
	case -EBADMSG: return "garbage result";
	default: return "failed";
	}
}

static void ex_hook_failed(struct ex_hook *hk, struct lua_host *h, int rc)
{
	hk->status = "failed";
	char e[200];
	lua_host_stats_last_error(lua_host_stats(h), e, sizeof(e));
	if (rc == -ECANCELED || rc == -ESTALE || !e[0])
		snprintf(hk->error, sizeof(hk->error), "%s", ex_rc_name(rc));
	else
		snprintf(hk->error, sizeof(hk->error), "%s: %s", ex_rc_name(rc), e);
}

static void put_hook(struct buf *b, const char *key, const struct ex_hook *hk)
{
	put_key(b, true, key);
	buf_puts_lit(b, "{\"status\":\"");
	buf_puts(b, hk->status);
	buf_putc(b, '"');
	if (hk->error[0]) {
		buf_puts_lit(b, ",\"error\":");
		buf_put_json_str(b, hk->error, strlen(hk->error));
	}
}

int api_admin_explain(struct api_worker *w, const struct http_request *req, bool close, struct buf *out)
{
	uint64_t t0 = now_ns();
	const struct recd_config *cfg = &w->srv->cfg;
	struct ex_params p;
	int st = ex_parse(w, req, close, out, &p);
	if (st)
		return st;
	struct snap *s = srv_snapshot(w->srv);
	if (!s)
		return api_fail(out, close, 503, "not_ready", "no snapshot loaded yet");

	/* The request exactly as api_recommend builds it; worker is the
	 * admin's id, which has no refresh hint ring (no hint is sent). */
	struct updater *u = w->srv->updater;
	struct pipe_request rq = {
		.snap = s,
		.live = u ? &u->live : NULL,
		.trend = u ? &u->trend : NULL,
		.refresh = u && u->refresh.started ? &u->refresh : NULL,
		.worker = w->id,
		.context_item = -1,
		.n = (uint32_t)p.n,
		.nprobe = (uint32_t)cfg->ann_nprobe,
		.nprobe_miss = (uint32_t)cfg->ann_nprobe_miss,
		.personalize = p.personalize,
	};
	if (p.item_len >= 0) {
		rq.context_item = snap_item_find(s, p.item, (size_t)p.item_len);
		if (rq.context_item < 0)
			return api_fail(out, close, 400, "bad_request", "unknown item_id '%.64s'", p.item);
	}
	if (p.user_len >= 0)
		rq.user_id = p.user, rq.user_id_len = (uint32_t)p.user_len;
	if (p.placement[0])
		rq.placement = p.placement, rq.placement_len = (uint32_t)strlen(p.placement);
	if (p.device[0])
		rq.device = p.device, rq.device_len = (uint32_t)strlen(p.device);
	if (p.region[0])
		rq.region = p.region, rq.region_len = (uint32_t)strlen(p.region);

	/* pipe_recommend, one stage at a time. */
	struct lua_host *h = w->lua;
	const struct lua_req *q = pipe_resolve(w->pipe, &rq);
	struct lua_route rt;
	struct ex_hook route = { .status = "absent" };
	int lua_rc = 0;
	uint8_t failed_hook = 0;
	int rc = h ? lua_host_route(h, s, q, &rt) : -ENOENT;
	if (rc == 0) {
		route.status = "ok";
	} else {
		if (rc != -ENOENT) {
			ex_hook_failed(&route, h, rc);
			lua_rc = rc;
			failed_hook = LUA_HOOK_ROUTE;
		}
		pipe_default_route(q, &rt);
	}

	struct lua_cand *c;
	uint32_t n0 = pipe_gather(w->pipe, &rq, &rt, &c);
	uint8_t cache = pipe_cache_status(w->pipe);
	struct lua_cand *gathered = malloc((size_t)MAX(n0, 1u) * sizeof(*c));
	struct lua_cand *after_rules = malloc((size_t)MAX(n0, 1u) * sizeof(*c));
	if (!gathered || !after_rules) {
		free(gathered);
		free(after_rules);
		return api_fail(out, close, 500, "internal", "out of memory");
	}
	memcpy(gathered, c, n0 * sizeof(*c));

	/* lua_host_rank runs rules then rerank and, if either fails, puts the
	 * list back as gathered; here they run one by one, and the outcome of
	 * the real path is rebuilt from theirs. */
	bool has_rules = h && lua_host_has_hook(h, LUA_HOOK_RULES);
	bool has_rerank = h && lua_host_has_hook(h, LUA_HOOK_RERANK);
	struct ex_hook rules = { .status = "absent" }, rerank = { .status = "absent" };
	uint32_t n = n0, m = n0, k = 0;
	bool rules_ok = true, ranked = false;
	if (has_rules) {
		rc = lua_host_run(h, LUA_HOOK_RULES, s, q, c, &m, rq.n);
		if (rc) {
			ex_hook_failed(&rules, h, rc);
			rules_ok = false;
			m = n0;
			if (!lua_rc)
				lua_rc = rc, failed_hook = LUA_HOOK_RULES;
		} else {
			rules.status = "ok";
			n = m;
		}
	}
	memcpy(after_rules, c, m * sizeof(*c));
	if (has_rerank && !rules_ok) {
		rerank.status = "skipped";
	} else if (has_rerank) {
		k = m;
		rc = lua_host_run(h, LUA_HOOK_RERANK, s, q, c, &k, rq.n);
		if (rc) {
			ex_hook_failed(&rerank, h, rc);
			if (!lua_rc)
				lua_rc = rc, failed_hook = LUA_HOOK_RERANK;
			/* The real path ranks the list as gathered. */
			memcpy(c, gathered, n0 * sizeof(*c));
			n = n0;
		} else {
			rerank.status = "ok";
			ranked = true;
			n = k;
		}
	}
	if (!ranked)
		n = pipe_default_rank(c, n, rq.n);
	n = MIN(n, rq.n);
	pipe_default_reasons(c, n, q);

	/* ---- the answer ---- */
	struct buf *b = &w->body;
	buf_reset(b);
	buf_puts_lit(b, "{\"request\":{\"user_id\":");
	put_str_or_null(b, p.user, p.user_len);
	buf_puts_lit(b, ",\"item_id\":");
	put_str_or_null(b, p.item, p.item_len);
	const char *words[] = { "placement", "device", "region" };
	const char *vals[] = { p.placement, p.device, p.region };
	for (int i = 0; i < 3; i++) {
		put_key(b, true, words[i]);
		put_str_or_null(b, vals[i], vals[i][0] ? (int)strlen(vals[i]) : -1);
	}
	buf_printf(b, ",\"n\":%u,\"personalize\":%s,\"known\":%s,\"snapshot_user\":%s,\"interactions\":%u,"
		      "\"recent\":%u,\"cart\":%u,\"purchased\":%u}",
		   rq.n, p.personalize ? "true" : "false", q->known ? "true" : "false",
		   q->user != LUA_NO_ITEM ? "true" : "false", q->interactions, q->n_recent, q->n_cart, q->n_purchased);
	const char *pol = h ? lua_host_policy_name(h) : "builtin";
	buf_puts_lit(b, ",\"policy\":");
	buf_put_json_str(b, pol, strlen(pol));

	buf_puts_lit(b, ",\"route\":{\"name\":");
	buf_put_json_str(b, rt.policy, strnlen(rt.policy, LUA_POLICY_NAME_LEN));
	buf_printf(b, ",\"tier\":\"%s\",\"chosen_by\":\"%s\",\"hook\":\"%s\"",
		   lua_tier_names[rt.tier < LUA_TIER__COUNT ? rt.tier : 0], strcmp(route.status, "ok") ? "builtin" : "lua",
		   route.status);
	if (route.error[0]) {
		buf_puts_lit(b, ",\"error\":");
		buf_put_json_str(b, route.error, strlen(route.error));
	}
	buf_puts_lit(b, ",\"sources\":[");
	for (uint32_t i = 0; i < rt.n_sources && i < LUA_ROUTE_MAX_SOURCES; i++) {
		const struct lua_route_source *src = &rt.sources[i];
		buf_printf(b, "%s{\"source\":\"%s\",\"n\":%u,\"weight\":", i ? "," : "",
			   src->source < LUA_SRC__COUNT ? lua_source_names[src->source] : "?", src->n);
		buf_put_double(b, src->weight);
		buf_putc(b, '}');
	}
	buf_puts_lit(b, "]}");
	if (cache != PIPE_CACHE_NONE && cache < PIPE_CACHE__COUNT) {
		buf_puts_lit(b, ",\"candidates\":\"");
		buf_puts(b, pipe_cache_names[cache]);
		buf_putc(b, '"');
	}

	buf_printf(b, ",\"gathered\":{\"count\":%u,\"items\":[", n0);
	for (uint32_t i = 0; i < n0; i++) {
		const struct lua_cand *g = &gathered[i];
		buf_puts(b, i ? ",{\"id\":" : "{\"id\":");
		put_item(b, s, g->item);
		buf_printf(b, ",\"source\":\"%s\",\"score\":", g->source < LUA_SRC__COUNT ? lua_source_names[g->source] : "?");
		buf_put_double(b, g->score);
		buf_puts_lit(b, ",\"reason_item\":");
		put_item(b, s, g->reason_item);
		if (g->flags)
			put_flags(b, g->flags);
		buf_putc(b, '}');
	}
	buf_puts_lit(b, "]}");

	put_hook(b, "rules", &rules);
	if (has_rules && rules_ok) {
		buf_printf(b, ",\"count\":%u,\"dropped\":[", m);
		bool first = true;
		for (uint32_t i = 0; i < n0; i++)
			if (!find_cand(after_rules, m, gathered[i].item)) {
				if (!first)
					buf_putc(b, ',');
				put_item(b, s, gathered[i].item);
				first = false;
			}
		buf_puts_lit(b, "],\"items\":[");
		for (uint32_t i = 0; i < m; i++) {
			buf_puts(b, i ? ",{\"id\":" : "{\"id\":");
			put_item(b, s, after_rules[i].item);
			buf_puts_lit(b, ",\"score\":");
			buf_put_double(b, after_rules[i].score);
			buf_putc(b, '}');
		}
		buf_putc(b, ']');
	}
	buf_putc(b, '}');
	put_hook(b, "rerank", &rerank);
	if (ranked)
		buf_printf(b, ",\"count\":%u", k);
	buf_putc(b, '}');
	buf_printf(b, ",\"ranked_by\":\"%s\"", ranked ? "rerank" : "builtin");
	if (lua_rc)
		buf_printf(b, ",\"fallback\":\"%s\"", lua_hook_names[failed_hook]);

	buf_puts_lit(b, ",\"items\":[");
	for (uint32_t i = 0; i < n; i++) {
		char reason[API_MAX_ID_LEN + 32];
		size_t rl = lua_host_reason_string(s, &c[i], reason, sizeof(reason));
		buf_puts(b, i ? ",{\"id\":" : "{\"id\":");
		put_item(b, s, c[i].item);
		buf_puts_lit(b, ",\"score\":");
		buf_put_double(b, c[i].score);
		buf_puts_lit(b, ",\"reason\":");
		buf_put_json_str(b, reason, rl);
		buf_printf(b, ",\"source\":\"%s\",\"score_gathered\":",
			   c[i].source < LUA_SRC__COUNT ? lua_source_names[c[i].source] : "?");
		const struct lua_cand *g = find_cand(gathered, n0, c[i].item);
		if (g)
			buf_put_double(b, g->score);
		else
			buf_puts_lit(b, "null");
		buf_puts_lit(b, ",\"score_after_rules\":");
		const struct lua_cand *a = has_rules && rules_ok ? find_cand(after_rules, m, c[i].item) : NULL;
		if (a)
			buf_put_double(b, a->score);
		else
			buf_puts_lit(b, "null");
		buf_putc(b, '}');
	}
	buf_printf(b, "],\"strategy\":\"%s\",\"tier\":\"%s\",\"snapshot\":",
		   n && c[0].source < LUA_SRC__COUNT ? lua_source_names[c[0].source] : "none",
		   lua_tier_names[rt.tier < LUA_TIER__COUNT ? rt.tier : 0]);
	char snapname[SNAP_MODEL_VERSION_LEN + 24];
	int sl = snprintf(snapname, sizeof(snapname), "%s@%llu", s->hdr->model_version, (unsigned long long)s->generation);
	buf_put_json_str(b, snapname, (size_t)MIN(sl, (int)sizeof(snapname) - 1));
	buf_puts_lit(b, ",\"took_us\":");
	buf_put_u64(b, (now_ns() - t0) / 1000);
	buf_puts_lit(b, "}\n");
	free(gathered);
	free(after_rules);
	if (b->oom)
		return api_fail(out, close, 500, "internal", "out of memory");
	api_write(out, 200, JSON_CT, b, close, NULL);
	return 200;
}

/* ----------------------------------------------------------------- items */

int api_admin_item(struct api_worker *w, const struct http_request *req, bool close, struct buf *out)
{
	static const char prefix[] = "/admin/items/";
	struct str raw = { req->path.p + sizeof(prefix) - 1, req->path.len - (sizeof(prefix) - 1) };
	char idbuf[EVENT_ID_MAX];
	int il = memchr(raw.p, '/', raw.len) ? -EINVAL : http_path_decode(raw, idbuf, sizeof(idbuf));
	if (il <= 0)
		return api_fail(out, close, 400, "bad_request",
			       "expected /admin/items/{item_id}: a percent-encoded id of 1..%d bytes", EVENT_ID_MAX - 1);
	uint64_t key = event_key(idbuf, (size_t)il);
	const struct snap *s = srv_snapshot(w->srv);
	struct updater *u = w->srv->updater;
	int64_t ix = s ? snap_item_find(s, idbuf, (size_t)il) : -1;
	const struct live_item *li = u ? live_item_get(&u->live, key) : NULL;
	if (ix < 0 && !li)
		return api_fail(out, close, 404, "not_found", "neither the snapshot nor live state knows this item");

	struct buf *b = &w->body;
	buf_reset(b);
	buf_puts_lit(b, "{\"item_id\":");
	buf_put_json_str(b, idbuf, (size_t)il);
	bool servable = ix >= 0 && snap_item_servable(s, (uint32_t)ix) && !live_item_blocked(li);
	buf_printf(b, ",\"servable\":%s,\"snapshot\":", servable ? "true" : "false");
	if (ix >= 0) {
		uint32_t i = (uint32_t)ix;
		struct str title = snap_strtab_get(&s->item_titles, i);
		uint32_t cat = s->item_category[i];
		buf_printf(b, "{\"index\":%u,\"title\":", i);
		buf_put_json_str(b, title.p, title.len);
		buf_puts_lit(b, ",\"category\":");
		if (cat < s->n_categories) {
			struct str cn = snap_strtab_get(&s->category_names, cat);
			buf_put_json_str(b, cn.p, cn.len);
		} else {
			buf_puts_lit(b, "null");
		}
		buf_puts_lit(b, ",\"price\":");
		buf_put_double(b, s->item_price[i]);
		buf_printf(b, ",\"stock\":%u,\"flags\":%u,\"available\":%s,\"popularity\":", s->item_stock[i],
			   s->item_flags[i], s->item_flags[i] & SNAP_ITEM_AVAILABLE ? "true" : "false");
		buf_put_double(b, s->item_popularity[i]);
		int64_t prank = -1;
		for (uint32_t j = 0; j < s->n_popular && prank < 0; j++)
			if (s->popular[j] == i)
				prank = j;
		buf_puts_lit(b, ",\"popular_rank\":");
		if (prank >= 0)
			buf_put_i64(b, prank);
		else
			buf_puts_lit(b, "null");
		buf_printf(b, ",\"servable\":%s}", snap_item_servable(s, i) ? "true" : "false");
	} else {
		buf_puts_lit(b, "null");
	}
	buf_puts_lit(b, ",\"live\":");
	if (li) {
		buf_puts_lit(b, "{\"stock\":");
		if (li->stock != LIVE_UNSET_STOCK)
			buf_put_i64(b, li->stock);
		else
			buf_puts_lit(b, "null");
		buf_puts_lit(b, ",\"price\":");
		buf_put_double(b, li->price);   /* NaN (unset) is null */
		buf_printf(b, ",\"available\":%s,\"boost\":",
			   li->available < 0 ? "null" : li->available ? "true" : "false");
		if (li->boost != 0)
			buf_put_double(b, li->boost);
		else
			buf_puts_lit(b, "null");
		buf_printf(b, ",\"updated_ms\":%llu,\"blocked\":%s}", (unsigned long long)li->updated_ms,
			   live_item_blocked(li) ? "true" : "false");
	} else {
		buf_puts_lit(b, "null");
	}
	buf_puts_lit(b, ",\"trending\":");
	float tscore = 0;
	int64_t trank = u ? trend_rank(&u->trend, key, &tscore) : -1;
	if (trank >= 0) {
		buf_printf(b, "{\"rank\":%lld,\"score\":", (long long)trank);
		buf_put_double(b, tscore);
		buf_putc(b, '}');
	} else {
		buf_puts_lit(b, "null");
	}
	buf_puts_lit(b, ",\"neighbors\":[");
	if (ix >= 0 && s->neighbors_k) {
		const struct snap_neighbor *row = snap_item_neighbors(s, (uint32_t)ix);
		for (uint32_t j = 0, shown = 0; j < s->neighbors_k && shown < EX_NEIGHBORS; j++) {
			if (row[j].item == SNAP_EMPTY_SLOT || row[j].item >= s->n_items)
				continue;
			if (shown++)
				buf_putc(b, ',');
			put_item(b, s, row[j].item);
		}
	}
	buf_puts_lit(b, "]}\n");
	if (b->oom)
		return api_fail(out, close, 500, "internal", "out of memory");
	api_write(out, 200, JSON_CT, b, close, NULL);
	return 200;
}
