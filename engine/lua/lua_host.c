/* lua_host.c: one LuaJIT state per worker running the policy hooks, the
 * functions policies reach through the FFI (lua_host_ffi_*), limits,
 * breaker, pre-flight and reload.
 *
 * Theory of operation
 *  - A state is built from files (lua/recd_host.lua loads the FFI cdefs,
 *    the API and the plugins into sandboxes) and is then only ever used by
 *    its worker thread, between two requests or inside one. The per-call
 *    data (request, candidate array, snapshot) reach Lua through one
 *    struct lua_ctx that Lua holds a pointer to since load: no copy, no
 *    Lua table per candidate.
 *  - Limits. (a) A count hook (every LH_HOOK_COUNT VM instructions) raises
 *    an error once the call's deadline has passed or the Lua heap is over
 *    the hard ceiling; it does not fire inside JIT-compiled loops
 *    (Debian's LuaJIT lacks LUAJIT_ENABLE_CHECKHOOK). (b) Every API
 *    function that loops checks the deadline itself, in C or every 64
 *    items in Lua. (c) After each call the heap is measured: over the soft
 *    ceiling a full GC runs and, if still over, the call fails; over the
 *    hard ceiling the state is marked broken and rebuilt at the next
 *    lua_host_maybe_reload. (d) compile_check runs a new set in a forked
 *    child with a wall-clock deadline, which is the only defence against a
 *    JIT-compiled endless loop (docs/policies.md says so).
 *  - Failures never reach the client: the candidate array is restored and
 *    the caller serves its C fallback. N consecutive failures open a
 *    breaker that stays open until the next reload.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <ck_pr.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "core/log.h"
#include "lua/lua_host.h"
#include "rec/rec.h"
#include "snap/snap.h"

#define LH_HOOK_COUNT 1000          /* VM instructions between budget checks */
#define LH_DEF_BUDGET_US 2000
#define LH_DEF_MEMORY_MB 64
#define LH_DEF_BREAKER 20
#define LH_DEF_PREFLIGHT_MS 1000
#define LH_PREFLIGHT_BUDGET_X 10    /* cold JIT in the child: looser per-call budget */

const char *const lua_hook_names[] = { "route", "rules", "rerank", NULL };
const char *const lua_fail_names[] = { "error", "budget", "memory", "garbage", NULL };
const char *const lua_source_names[] = {
	"none", "popular", "trending", "similar", "content", "personalized", "session", NULL,
};
const char *const lua_reason_names[] = {
	"", "popular", "trending", "similar", "personalized", "because_you_viewed", "same_category",
	"on_sale", NULL,
};
const char *const lua_tier_names[] = { "anonymous", "new", "returning", NULL };

_Static_assert(ARRAY_SIZE(lua_source_names) == LUA_SRC__COUNT + 1, "source names");
_Static_assert(ARRAY_SIZE(lua_reason_names) == LUA_REASON__COUNT + 1, "reason names");
_Static_assert(ARRAY_SIZE(lua_tier_names) == LUA_TIER__COUNT + 1, "tier names");

struct lua_host {
	struct lua_ctx ctx;            /* first: Lua holds &ctx */
	lua_State *L;
	struct lua_host_stats *stats;
	struct lua_host_stats own_stats;
	struct lua_host_limits lim;
	uint64_t budget_ns;
	size_t soft_kb, hard_kb;
	uint64_t generation;
	uint64_t failed_generation;    /* a build of this generation failed: don't retry */
	uint64_t retry_at_ns;          /* next rebuild attempt of a broken state */
	uint64_t log_at_ns;            /* next failure worth a log line */
	bool broken;                   /* over the hard memory ceiling */
	bool grace_used;               /* this call's one budget extension */
	int ref[LUA_HOOK__COUNT];      /* registry refs of the dispatch functions */
	enum lua_hook failed_hook;     /* of the last failure (lua_host_failed_hook) */
	char where[LUA_HOOK__COUNT][128]; /* "file:line" of each hook */
	char name[96];                 /* "<set>@<generation>" */
	char plugins_dir[PATH_MAX], lua_dir[PATH_MAX];
	char shown_dir[PATH_MAX];      /* lim.shown_dir points here */
	/* what the current snapshot looked like, to bump ctx.snap_seq */
	const struct snap *seen_snap;
	const void *seen_base;
	uint64_t seen_gen;
	/* scratch, grown on demand, never shrunk */
	uint32_t cap;                  /* candidates */
	struct lua_cand *saved, *tmp;
	uint8_t *seen;
	float *f1, *f2, *f3;
	uint32_t cat_cap;
	uint16_t *cat_count;
	uint32_t set_cap;
	uint32_t *set;
};

static __thread struct lua_host *tls_host;   /* the host whose call is running */

static struct lua_host *ctx_host(const struct lua_ctx *ctx)
{
	return (struct lua_host *)(void *)ctx;  /* ctx is the first member */
}

/* ------------------------------------------------------------ layout */

#define LO_STRUCT(t) { #t, NULL, 0, sizeof(struct t) }
#define LO_FIELD(t, f) { #t, #f, offsetof(struct t, f), sizeof(((struct t *)0)->f) }

static const struct lua_layout lh_layout[] = {
	LO_STRUCT(lua_cand),
	LO_FIELD(lua_cand, item), LO_FIELD(lua_cand, score), LO_FIELD(lua_cand, source),
	LO_FIELD(lua_cand, reason), LO_FIELD(lua_cand, flags), LO_FIELD(lua_cand, reason_item),
	LO_FIELD(lua_cand, orig),
	LO_STRUCT(lua_req),
	LO_FIELD(lua_req, user_id), LO_FIELD(lua_req, recent), LO_FIELD(lua_req, cart),
	LO_FIELD(lua_req, purchased), LO_FIELD(lua_req, placement), LO_FIELD(lua_req, device),
	LO_FIELD(lua_req, region), LO_FIELD(lua_req, user_id_len), LO_FIELD(lua_req, n_recent),
	LO_FIELD(lua_req, n_cart), LO_FIELD(lua_req, n_purchased), LO_FIELD(lua_req, placement_len),
	LO_FIELD(lua_req, device_len), LO_FIELD(lua_req, region_len), LO_FIELD(lua_req, user),
	LO_FIELD(lua_req, interactions), LO_FIELD(lua_req, context_item), LO_FIELD(lua_req, n),
	LO_FIELD(lua_req, known), LO_FIELD(lua_req, reserved), LO_FIELD(lua_req, variant),
	LO_STRUCT(lua_route_source),
	LO_FIELD(lua_route_source, source), LO_FIELD(lua_route_source, n),
	LO_FIELD(lua_route_source, weight),
	LO_STRUCT(lua_route),
	LO_FIELD(lua_route, tier), LO_FIELD(lua_route, n_sources), LO_FIELD(lua_route, sources),
	LO_FIELD(lua_route, policy),
	LO_STRUCT(lua_cols),
	LO_FIELD(lua_cols, category), LO_FIELD(lua_cols, price), LO_FIELD(lua_cols, popularity),
	LO_FIELD(lua_cols, stock), LO_FIELD(lua_cols, flags), LO_FIELD(lua_cols, emb),
	LO_FIELD(lua_cols, user_emb), LO_FIELD(lua_cols, n_items), LO_FIELD(lua_cols, n_categories),
	LO_FIELD(lua_cols, n_users), LO_FIELD(lua_cols, dim), LO_FIELD(lua_cols, stride),
	LO_FIELD(lua_cols, reserved),
	LO_STRUCT(lua_ctx),
	LO_FIELD(lua_ctx, req), LO_FIELD(lua_ctx, cands), LO_FIELD(lua_ctx, route),
	LO_FIELD(lua_ctx, snap), LO_FIELD(lua_ctx, deadline_ns), LO_FIELD(lua_ctx, snap_seq),
	LO_FIELD(lua_ctx, n_cands), LO_FIELD(lua_ctx, n_wanted), LO_FIELD(lua_ctx, tripped),
	LO_STRUCT(lua_layout),
	LO_FIELD(lua_layout, type), LO_FIELD(lua_layout, field), LO_FIELD(lua_layout, offset),
	LO_FIELD(lua_layout, size),
};

RECD_EXPORT int lua_host_ffi_layout(const struct lua_layout **out)
{
	*out = lh_layout;
	return (int)ARRAY_SIZE(lh_layout);
}

/* ------------------------------------------------------------- stats */

static void lh_inc(uint64_t *c)
{
	ck_pr_store_64(c, *c + 1);  /* single writer: a plain store, never torn */
}

static void lh_set_error(struct lua_host_stats *st, const char *msg)
{
	ck_pr_store_32(&st->err_seq, st->err_seq + 1);
	ck_pr_fence_store();  /* odd seq visible before the text changes */
	snprintf(st->last_error, sizeof(st->last_error), "%s", msg);
	ck_pr_fence_store();
	ck_pr_store_32(&st->err_seq, st->err_seq + 1);
}

void lua_host_stats_last_error(const struct lua_host_stats *st, char *out, size_t len)
{
	for (int tries = 0; tries < 100; tries++) {
		uint32_t s1 = ck_pr_load_32(&st->err_seq);
		ck_pr_fence_load();
		snprintf(out, len, "%s", st->last_error);
		ck_pr_fence_load();
		if (!(s1 & 1) && ck_pr_load_32(&st->err_seq) == s1)
			return;
	}
	snprintf(out, len, "(being updated)");
}

const struct lua_host_stats *lua_host_stats(const struct lua_host *h) { return h->stats; }
const char *lua_host_policy_name(const struct lua_host *h) { return h->name; }
bool lua_host_has_hook(const struct lua_host *h, enum lua_hook hook) { return h->ref[hook] != LUA_NOREF; }
enum lua_hook lua_host_failed_hook(const struct lua_host *h) { return h->failed_hook; }
uint64_t lua_host_generation(const struct lua_host *h) { return h->generation; }

static void lh_fail(struct lua_host *h, enum lua_hook hook, enum lua_fail kind, const char *msg)
{
	struct lua_host_stats *st = h->stats;
	h->failed_hook = hook;
	lh_inc(&st->failures[hook][kind]);
	lh_set_error(st, msg);
	ck_pr_store_32(&st->consecutive, st->consecutive + 1);
	/* At most one log line a second per worker, not one per request. */
	uint64_t now = now_ns();
	if (now >= h->log_at_ns) {
		h->log_at_ns = now + 1000000000ull;
		log_warn("policy_failed", "hook=%s kind=%s policy=%s", lua_hook_names[hook], lua_fail_names[kind],
			 h->name);
	}
	if (st->consecutive >= h->lim.breaker_threshold && !st->breaker_open) {
		ck_pr_store_32(&st->breaker_open, 1);
		lh_inc(&st->breaker_trips);
		log_error("policy_breaker_open", "policy=%s failures=%u", h->name, st->consecutive);
	}
}

/* ------------------------------------------------------------ limits */

/* The budget is wall-clock time (a vDSO clock read; CPU-time clocks are
 * system calls). A worker descheduled for a tick mid-call would look like
 * a runaway policy, so the first expiry grants one more budget from now:
 * a policy is stopped once it has run past its budget twice. */
static bool lh_over_budget(struct lua_host *h)
{
	uint64_t now = now_ns();
	if (likely(now <= h->ctx.deadline_ns))
		return false;
	if (!h->grace_used) {
		h->grace_used = true;
		h->ctx.deadline_ns = now + h->budget_ns;
		return false;
	}
	h->ctx.tripped = LUA_TRIP_BUDGET;
	return true;
}

static void lh_count_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	struct lua_host *h = tls_host;
	if (!h)
		return;
	const char *what = NULL;
	if (lh_over_budget(h)) {
		what = "time budget exceeded";
	} else if ((size_t)lua_gc(L, LUA_GCCOUNT, 0) > h->hard_kb) {
		h->ctx.tripped = LUA_TRIP_MEMORY;
		what = "memory ceiling exceeded";
	}
	if (!what)
		return;
	/* Blame the innermost policy line, not the API function it called. */
	lua_Debug d;
	for (int lvl = 0; lvl < 32 && lua_getstack(L, lvl, &d); lvl++) {
		if (!lua_getinfo(L, "Sl", &d) || d.currentline <= 0 || strstr(d.short_src, "recd.lua") ||
		    strstr(d.short_src, "recd_host.lua"))
			continue;
		lua_pushfstring(L, "%s:%d: %s", d.short_src, d.currentline, what);
		lua_error(L);
	}
	lua_pushstring(L, what);
	lua_error(L);
}

static void lh_begin(struct lua_host *h, uint64_t budget_ns)
{
	h->ctx.tripped = LUA_TRIP_NONE;
	h->ctx.deadline_ns = now_ns() + budget_ns;
	h->grace_used = false;
	tls_host = h;
}

static void lh_end(struct lua_host *h)
{
	h->ctx.deadline_ns = UINT64_MAX;
	tls_host = NULL;
}

/* ------------------------------------------------------------- build */

static void lh_free_scratch(struct lua_host *h)
{
	free(h->saved);
	free(h->tmp);
	free(h->seen);
	free(h->f1);
	free(h->f2);
	free(h->f3);
	free(h->cat_count);
	free(h->set);
}

void lua_host_destroy(struct lua_host *h)
{
	if (!h)
		return;
	if (h->L)
		lua_close(h->L);
	lh_free_scratch(h);
	free(h);
}

static void lh_limits(struct lua_host_limits *dst, const struct lua_host_limits *src)
{
	struct lua_host_limits z = { 0 };
	*dst = src ? *src : z;
	if (!dst->budget_us)
		dst->budget_us = LH_DEF_BUDGET_US;
	if (!dst->memory_mb)
		dst->memory_mb = LH_DEF_MEMORY_MB;
	if (!dst->breaker_threshold)
		dst->breaker_threshold = LH_DEF_BREAKER;
	if (!dst->preflight_ms)
		dst->preflight_ms = LH_DEF_PREFLIGHT_MS;
}

static int lh_err(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int lh_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int lua_host_create(struct lua_host **out, const char *plugins_dir, const char *lua_dir,
		    const struct lua_host_limits *lim, struct lua_host_stats *stats, uint64_t generation,
		    char *err, size_t errlen)
{
	*out = NULL;
	if (strlen(plugins_dir) >= PATH_MAX - 32 || strlen(lua_dir) >= PATH_MAX - 32)
		return lh_err(err, errlen, -ENAMETOOLONG, "plugins or lua directory name too long");
	struct lua_host *h = calloc(1, sizeof(*h));
	if (!h)
		return lh_err(err, errlen, -ENOMEM, "out of memory");
	strcpy(h->plugins_dir, plugins_dir);
	strcpy(h->lua_dir, lua_dir);
	lh_limits(&h->lim, lim);
	snprintf(h->shown_dir, sizeof(h->shown_dir), "%s", h->lim.shown_dir ? h->lim.shown_dir : plugins_dir);
	h->lim.shown_dir = h->shown_dir;
	h->budget_ns = (uint64_t)h->lim.budget_us * 1000;
	h->soft_kb = (size_t)h->lim.memory_mb * 1024;
	h->hard_kb = 2 * h->soft_kb;
	h->generation = generation;
	h->stats = stats ? stats : &h->own_stats;
	h->ctx.deadline_ns = UINT64_MAX;
	for (int i = 0; i < LUA_HOOK__COUNT; i++)
		h->ref[i] = LUA_NOREF;

	int rc = -EINVAL;
	char path[PATH_MAX + 32];
	lua_State *L = h->L = luaL_newstate();
	if (!L) {
		rc = lh_err(err, errlen, -ENOMEM, "cannot create a Lua state");
		goto fail;
	}
	luaL_openlibs(L);
	lua_sethook(L, lh_count_hook, LUA_MASKCOUNT, LH_HOOK_COUNT);

	snprintf(path, sizeof(path), "%s/recd_host.lua", lua_dir);
	/* Loading runs the plugins' top-level code: bounded like a call, with
	 * the pre-flight's allowance. */
	lh_begin(h, (uint64_t)h->lim.preflight_ms * 1000000);
	int st = luaL_loadfile(L, path);
	if (st == 0) {
		lua_pushlightuserdata(L, &h->ctx);
		lua_pushstring(L, lua_dir);
		lua_pushstring(L, plugins_dir);
		lua_pushstring(L, h->shown_dir);
		st = lua_pcall(L, 4, 1, 0);
	}
	lh_end(h);
	if (st) {
		const char *m = lua_tostring(L, -1);
		rc = lh_err(err, errlen, st == LUA_ERRMEM ? -ENOMEM : -EINVAL, "%s", m ? m : "error loading policies");
		goto fail;
	}
	if (!lua_istable(L, -1)) {
		rc = lh_err(err, errlen, -EINVAL, "%s: did not return the hook table", path);
		goto fail;
	}
	for (int i = 0; i < LUA_HOOK__COUNT; i++) {
		char key[32];
		lua_getfield(L, -1, lua_hook_names[i]);
		if (lua_isfunction(L, -1))
			h->ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
		else
			lua_pop(L, 1);
		snprintf(key, sizeof(key), "%s_at", lua_hook_names[i]);
		lua_getfield(L, -1, key);
		snprintf(h->where[i], sizeof(h->where[i]), "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
		lua_pop(L, 1);
	}
	lua_getfield(L, -1, "name");
	snprintf(h->name, sizeof(h->name), "%.60s@%llu", lua_isstring(L, -1) ? lua_tostring(L, -1) : "plugins",
		 (unsigned long long)generation);
	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT, 0);

	ck_pr_store_64(&h->stats->generation, generation);
	ck_pr_store_32(&h->stats->consecutive, 0);
	ck_pr_store_32(&h->stats->breaker_open, 0);
	*out = h;
	return 0;
fail:
	lua_host_destroy(h);
	return rc;
}

/* ----------------------------------------------------------- scratch */

static int lh_reserve(struct lua_host *h, uint32_t n)
{
	if (n <= h->cap && h->cap)
		return 0;
	uint32_t cap = h->cap ? h->cap : 256;
	while (cap < n)
		cap *= 2;
	lh_free_scratch(h);
	h->cat_count = NULL, h->set = NULL, h->cat_cap = h->set_cap = 0;
	h->saved = malloc(cap * sizeof(*h->saved));
	h->tmp = malloc(cap * sizeof(*h->tmp));
	h->seen = malloc(cap);
	h->f1 = malloc(cap * sizeof(float));
	h->f2 = malloc(cap * sizeof(float));
	h->f3 = malloc(cap * sizeof(float));
	if (!h->saved || !h->tmp || !h->seen || !h->f1 || !h->f2 || !h->f3) {
		lh_free_scratch(h);
		h->saved = h->tmp = NULL, h->seen = NULL, h->f1 = h->f2 = h->f3 = NULL;
		h->cap = 0;
		return -ENOMEM;
	}
	h->cap = cap;
	return 0;
}

/* Point the context at this call's snapshot; bump snap_seq when it is a
 * different one so Lua drops its name caches. */
static void lh_set_snap(struct lua_host *h, const struct snap *s)
{
	if (s != h->seen_snap || (s && (s->base != h->seen_base || s->generation != h->seen_gen))) {
		h->ctx.snap_seq++;
		h->seen_snap = s;
		h->seen_base = s ? s->base : NULL;
		h->seen_gen = s ? s->generation : 0;
	}
	h->ctx.snap = s;
}

/* -------------------------------------------------------------- calls */

/* Run one dispatch function; classify and count the outcome. */
static int lh_call(struct lua_host *h, enum lua_hook hook)
{
	lua_State *L = h->L;
	lh_inc(&h->stats->calls[hook]);
	lua_settop(L, 0);
	lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref[hook]);
	lh_begin(h, h->budget_ns);
	int st = lua_pcall(L, 0, 2, 0);
	uint32_t tripped = h->ctx.tripped;
	lh_end(h);

	int rc = 0;
	enum lua_fail kind = LUA_FAIL_ERROR;
	char msg[256];
	if (st) {
		const char *m = lua_tostring(L, -1);
		snprintf(msg, sizeof(msg), "%s", m ? m : "error object is not a string");
		if (st == LUA_ERRMEM)
			snprintf(msg, sizeof(msg), "%s: %s: not enough memory", h->where[hook], lua_hook_names[hook]);
		if (st == LUA_ERRMEM || tripped == LUA_TRIP_MEMORY)
			kind = LUA_FAIL_MEMORY, rc = -ENOMEM;
		else if (tripped == LUA_TRIP_BUDGET)
			kind = LUA_FAIL_BUDGET, rc = -ETIME;
		else
			kind = LUA_FAIL_ERROR, rc = -EIO;
	} else if (tripped) {
		/* The hook caught the limit's error and went on: still a failure. */
		snprintf(msg, sizeof(msg), "%s: %s limit hit (error swallowed)", h->where[hook],
			 tripped == LUA_TRIP_BUDGET ? "time" : "memory");
		kind = tripped == LUA_TRIP_BUDGET ? LUA_FAIL_BUDGET : LUA_FAIL_MEMORY;
		rc = tripped == LUA_TRIP_BUDGET ? -ETIME : -ENOMEM;
	} else if (lua_tointeger(L, -2) != 0) {
		const char *m = lua_tostring(L, -1);
		snprintf(msg, sizeof(msg), "%s", m ? m : "garbage");
		kind = LUA_FAIL_GARBAGE, rc = -EBADMSG;
	}

	size_t kb = (size_t)lua_gc(L, LUA_GCCOUNT, 0);
	if (kb > h->soft_kb) {
		lua_gc(L, LUA_GCCOLLECT, 0);
		kb = (size_t)lua_gc(L, LUA_GCCOUNT, 0);
		if (kb > h->hard_kb)
			h->broken = true;  /* rebuilt between requests, never here */
		if (kb > h->soft_kb && !rc) {
			snprintf(msg, sizeof(msg), "%s: Lua heap %zu KiB over the %u MiB ceiling", h->where[hook], kb,
				 h->lim.memory_mb);
			kind = LUA_FAIL_MEMORY, rc = -ENOMEM;
		}
	}
	ck_pr_store_64(&h->stats->memory_kb, kb);
	lua_settop(L, 0);
	if (rc)
		lh_fail(h, hook, kind, msg);
	return rc;
}

/* -ENOENT without the hook; else the breaker and the broken state. */
static int lh_gate(struct lua_host *h, bool have_hook)
{
	if (!have_hook)
		return -ENOENT;
	if (unlikely(h->stats->breaker_open)) {
		lh_inc(&h->stats->breaker_skips);
		return -ECANCELED;
	}
	if (unlikely(h->broken))
		return -ESTALE;
	return 0;
}

int lua_host_route(struct lua_host *h, const struct snap *snap, const struct lua_req *req, struct lua_route *out)
{
	int rc = lh_gate(h, h->ref[LUA_HOOK_ROUTE] != LUA_NOREF);
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	lh_set_snap(h, snap);
	h->ctx.req = req;
	h->ctx.route = out;
	h->ctx.cands = NULL;
	h->ctx.n_cands = 0;
	h->ctx.n_wanted = req->n;
	rc = lh_call(h, LUA_HOOK_ROUTE);
	h->ctx.route = NULL;
	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* After rules/rerank: the list must be a subset of what went in, without
 * duplicates (orig tags), and rerank must not shrink it below what the
 * client asked for. */
static int lh_validate(struct lua_host *h, enum lua_hook hook, uint32_t n_orig, uint32_t n_before, char *msg,
		       size_t len)
{
	uint32_t n = h->ctx.n_cands;
	const struct lua_cand *c = h->ctx.cands;
	if (n > n_before)
		return snprintf(msg, len, "%s: %s left %u candidates of %u", h->where[hook], lua_hook_names[hook], n,
				n_before), -1;
	memset(h->seen, 0, n_orig);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t o = c[i].orig;
		if (o >= n_orig || h->seen[o] || h->saved[o].item != c[i].item)
			return snprintf(msg, len, "%s: %s: candidate %u is unknown or duplicated", h->where[hook],
					lua_hook_names[hook], i + 1), -1;
		h->seen[o] = 1;
	}
	uint32_t want = MIN(n_before, h->ctx.n_wanted);
	if (hook == LUA_HOOK_RERANK && n < want)
		return snprintf(msg, len, "%s: rerank kept %u of %u candidates, %u wanted", h->where[hook], n,
				n_before, h->ctx.n_wanted), -1;
	return 0;
}

static int lh_rank(struct lua_host *h, const enum lua_hook *hooks, int n_hooks, const struct snap *snap,
		   const struct lua_req *req, struct lua_cand *cands, uint32_t *n_cands, uint32_t n_wanted)
{
	uint32_t n = *n_cands;
	bool any = false;
	for (int i = 0; i < n_hooks; i++)
		any |= h->ref[hooks[i]] != LUA_NOREF;
	/* What a refusal by the gate names: the first hook that would run. */
	h->failed_hook = hooks[0];
	for (int i = n_hooks - 1; i >= 0; i--)
		if (h->ref[hooks[i]] != LUA_NOREF)
			h->failed_hook = hooks[i];
	int rc = lh_gate(h, any);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	if (lh_reserve(h, n))
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		cands[i].orig = i;
	memcpy(h->saved, cands, n * sizeof(*cands));
	lh_set_snap(h, snap);
	h->ctx.req = req;
	h->ctx.cands = cands;
	h->ctx.n_cands = n;
	h->ctx.n_wanted = n_wanted;
	h->ctx.route = NULL;
	rc = 0;
	for (int i = 0; i < n_hooks && !rc; i++) {
		enum lua_hook hk = hooks[i];
		if (h->ref[hk] == LUA_NOREF)
			continue;
		uint32_t before = h->ctx.n_cands;
		rc = lh_call(h, hk);
		char msg[256];
		if (!rc && lh_validate(h, hk, n, before, msg, sizeof(msg))) {
			lh_fail(h, hk, LUA_FAIL_GARBAGE, msg);
			rc = -EBADMSG;
		}
	}
	if (rc) {
		memcpy(cands, h->saved, n * sizeof(*cands));
		*n_cands = n;
	} else {
		*n_cands = h->ctx.n_cands;
		ck_pr_store_32(&h->stats->consecutive, 0);
	}
	h->ctx.cands = NULL;
	h->ctx.n_cands = 0;
	return rc;
}

int lua_host_rank(struct lua_host *h, const struct snap *snap, const struct lua_req *req, struct lua_cand *cands,
		  uint32_t *n_cands, uint32_t n_wanted)
{
	static const enum lua_hook both[] = { LUA_HOOK_RULES, LUA_HOOK_RERANK };
	return lh_rank(h, both, 2, snap, req, cands, n_cands, n_wanted);
}

int lua_host_run(struct lua_host *h, enum lua_hook hook, const struct snap *snap, const struct lua_req *req,
		 struct lua_cand *cands, uint32_t *n_cands, uint32_t n_wanted)
{
	if (hook == LUA_HOOK_ROUTE || hook >= LUA_HOOK__COUNT)
		return -EINVAL;
	if (h->ref[hook] == LUA_NOREF)
		return -ENOENT;
	return lh_rank(h, &hook, 1, snap, req, cands, n_cands, n_wanted);
}

/* ------------------------------------------- functions Lua calls (FFI) */

RECD_EXPORT int lua_host_ffi_budget_check(struct lua_ctx *ctx)
{
	return unlikely(lh_over_budget(ctx_host(ctx))) ? -ETIME : 0;
}

RECD_EXPORT int lua_host_ffi_enum_name(int kind, uint32_t value, const char **name)
{
	const char *const *t = kind == 0 ? lua_source_names : kind == 1 ? lua_reason_names :
			       kind == 2 ? lua_tier_names : NULL;
	size_t n = kind == 0 ? LUA_SRC__COUNT : kind == 1 ? LUA_REASON__COUNT : kind == 2 ? LUA_TIER__COUNT : 0;
	if (!t || value >= n)
		return -ERANGE;
	*name = t[value];
	return 0;
}

RECD_EXPORT int lua_host_ffi_snap_columns(const struct lua_ctx *ctx, struct lua_cols *out)
{
	const struct snap *s = ctx->snap;
	memset(out, 0, sizeof(*out));
	if (!s)
		return -ENOENT;
	out->category = s->item_category;
	out->price = s->item_price;
	out->popularity = s->item_popularity;
	out->stock = s->item_stock;
	out->flags = s->item_flags;
	out->emb = s->item_emb;
	out->user_emb = s->user_emb;
	out->n_items = s->n_items;
	out->n_categories = s->n_categories;
	out->n_users = s->n_users;
	out->dim = s->dim;
	out->stride = s->stride;
	return 0;
}

RECD_EXPORT int lua_host_ffi_item_id(const struct lua_ctx *ctx, uint32_t item, const char **p, uint32_t *len)
{
	const struct snap *s = ctx->snap;
	if (!s || item >= s->n_items)
		return -ERANGE;
	struct str id = snap_item_id(s, item);
	*p = id.p;
	*len = (uint32_t)id.len;
	return 0;
}

RECD_EXPORT int lua_host_ffi_item_find(const struct lua_ctx *ctx, const char *id, uint32_t len, uint32_t *item)
{
	if (!ctx->snap)
		return -ENOENT;
	int64_t i = snap_item_find(ctx->snap, id, len);
	if (i < 0)
		return -ENOENT;
	*item = (uint32_t)i;
	return 0;
}

RECD_EXPORT int lua_host_ffi_category_name(const struct lua_ctx *ctx, uint32_t cat, const char **p, uint32_t *len)
{
	const struct snap *s = ctx->snap;
	if (!s || cat >= s->n_categories)
		return -ERANGE;
	struct str n = snap_strtab_get(&s->category_names, cat);
	*p = n.p;
	*len = (uint32_t)n.len;
	return 0;
}

RECD_EXPORT int lua_host_ffi_category_find(const struct lua_ctx *ctx, const char *name, uint32_t len,
					   uint32_t *cat)
{
	const struct snap *s = ctx->snap;
	if (!s)
		return -ENOENT;
	for (uint32_t c = 0; c < s->n_categories; c++) {
		struct str n = snap_strtab_get(&s->category_names, c);
		if (n.len == len && !memcmp(n.p, name, len)) {
			*cat = c;
			return 0;
		}
	}
	return -ENOENT;
}

RECD_EXPORT int lua_host_ffi_item_similarity(const struct lua_ctx *ctx, uint32_t a, uint32_t b, float *out)
{
	const struct snap *s = ctx->snap;
	if (!s || a >= s->n_items || b >= s->n_items)
		return -ERANGE;
	const float *va = snap_item_vec(s, a), *vb = snap_item_vec(s, b);
	float na = rec_dot(va, va, s->stride), nb = rec_dot(vb, vb, s->stride);
	*out = na > 0 && nb > 0 ? rec_dot(va, vb, s->stride) / sqrtf(na * nb) : 0.0f;
	return 0;
}

RECD_EXPORT int lua_host_ffi_time_now(double *wall_s, double *mono_s)
{
	if (wall_s)
		*wall_s = (double)now_wall_ms() / 1000.0;
	if (mono_s)
		*mono_s = (double)now_ns() / 1e9;
	return 0;
}

RECD_EXPORT int lua_host_ffi_log(const struct lua_ctx *ctx, const char *msg, uint32_t len)
{
	if (LOG_LVL_DEBUG > log_threshold)
		return 0;
	char text[512], q[600];
	snprintf(text, sizeof(text), "%.*s", (int)MIN(len, sizeof(text) - 1), msg);
	log_debug("policy_log", "policy=%s msg=%s", ctx_host(ctx)->name, log_quote(q, sizeof(q), text));
	return 0;
}

/* Stable, best score first. Lists arrive mostly sorted (retrieval order),
 * so check that first; else insertion-sort runs of 16 and merge. */
RECD_EXPORT int lua_host_ffi_cands_sort(struct lua_ctx *ctx)
{
	struct lua_host *h = ctx_host(ctx);
	struct lua_cand *a = ctx->cands;
	uint32_t n = ctx->n_cands;
	if (lua_host_ffi_budget_check(ctx))
		return -ETIME;
	uint32_t i = 1;
	while (i < n && a[i - 1].score >= a[i].score)
		i++;
	if (i >= n)
		return 0;
	for (uint32_t lo = 0; lo < n; lo += 16) {
		uint32_t hi = MIN(lo + 16, n);
		for (uint32_t j = lo + 1; j < hi; j++) {
			struct lua_cand x = a[j];
			uint32_t k = j;
			while (k > lo && a[k - 1].score < x.score) {
				a[k] = a[k - 1];
				k--;
			}
			a[k] = x;
		}
	}
	struct lua_cand *src = a, *dst = h->tmp;
	for (uint32_t w = 16; w < n; w *= 2) {
		for (uint32_t lo = 0; lo < n; lo += 2 * w) {
			uint32_t mid = MIN(lo + w, n), hi = MIN(lo + 2 * w, n), l = lo, r = mid, o = lo;
			while (l < mid && r < hi)
				dst[o++] = src[l].score >= src[r].score ? src[l++] : src[r++];
			while (l < mid)
				dst[o++] = src[l++];
			while (r < hi)
				dst[o++] = src[r++];
		}
		struct lua_cand *t = src;
		src = dst, dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof(*a));
	return 0;
}

RECD_EXPORT int lua_host_ffi_cands_diversify(struct lua_ctx *ctx, uint32_t max_per_category)
{
	struct lua_host *h = ctx_host(ctx);
	const struct snap *s = ctx->snap;
	struct lua_cand *a = ctx->cands;
	uint32_t n = ctx->n_cands;
	if (lua_host_ffi_budget_check(ctx))
		return -ETIME;
	if (!s || n == 0)
		return n ? -ENOENT : 0;
	if (s->n_categories > h->cat_cap) {
		uint16_t *c = calloc(s->n_categories, sizeof(*c));
		if (!c)
			return -ENOMEM;
		free(h->cat_count);
		h->cat_count = c;
		h->cat_cap = s->n_categories;
	}
	uint16_t *cnt = h->cat_count;
	uint16_t cap = (uint16_t)MIN(max_per_category, 65535u);
	uint32_t w = 0, d = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t c = s->item_category[a[i].item];
		if (cnt[c] < cap) {
			cnt[c]++;
			a[w++] = a[i];
		} else {
			h->tmp[d++] = a[i];
		}
	}
	memcpy(a + w, h->tmp, d * sizeof(*a));
	for (uint32_t i = 0; i < n; i++)  /* reset only what was touched */
		cnt[s->item_category[a[i].item]] = 0;
	return 0;
}

RECD_EXPORT int lua_host_ffi_cands_mmr(struct lua_ctx *ctx, float lambda, uint32_t k)
{
	struct lua_host *h = ctx_host(ctx);
	const struct snap *s = ctx->snap;
	struct lua_cand *a = ctx->cands;
	uint32_t n = ctx->n_cands;
	if (lua_host_ffi_budget_check(ctx))
		return -ETIME;
	if (!s || n == 0)
		return n ? -ENOENT : 0;
	k = MIN(k, n);
	float *rel = h->f1, *norm = h->f2, *maxsim = h->f3;
	uint8_t *picked = h->seen;
	float lo = a[0].score, hi = a[0].score;
	for (uint32_t i = 1; i < n; i++)
		lo = MIN(lo, a[i].score), hi = MAX(hi, a[i].score);
	for (uint32_t i = 0; i < n; i++) {
		const float *v = snap_item_vec(s, a[i].item);
		rel[i] = hi > lo ? (a[i].score - lo) / (hi - lo) : 1.0f;
		norm[i] = sqrtf(rec_dot(v, v, s->stride));
		maxsim[i] = 0.0f;
		picked[i] = 0;
	}
	uint32_t o = 0;
	for (uint32_t step = 0; step < k; step++) {
		if (lua_host_ffi_budget_check(ctx))
			return -ETIME;
		uint32_t best = UINT32_MAX;
		float bv = -INFINITY;
		for (uint32_t i = 0; i < n; i++) {
			if (picked[i])
				continue;
			float v = lambda * rel[i] - (1.0f - lambda) * maxsim[i];
			if (v > bv)
				bv = v, best = i;
		}
		if (best == UINT32_MAX)
			break;
		picked[best] = 1;
		h->tmp[o++] = a[best];
		const float *vb = snap_item_vec(s, a[best].item);
		for (uint32_t i = 0; i < n; i++) {
			if (picked[i] || norm[i] == 0 || norm[best] == 0)
				continue;
			float sim = rec_dot(vb, snap_item_vec(s, a[i].item), s->stride) / (norm[i] * norm[best]);
			maxsim[i] = MAX(maxsim[i], sim);
		}
	}
	for (uint32_t i = 0; i < n; i++)
		if (!picked[i])
			h->tmp[o++] = a[i];
	memcpy(a, h->tmp, n * sizeof(*a));
	return 0;
}

/* Open-addressing set of item indexes (stored +1; 0 = empty). */
static int lh_set_build(struct lua_host *h, const uint32_t *items, uint32_t n, uint32_t *mask)
{
	uint32_t cap = 16;
	while (cap < 2 * n)
		cap *= 2;
	if (cap > h->set_cap) {
		uint32_t *t = malloc(cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		free(h->set);
		h->set = t;
		h->set_cap = cap;
	}
	memset(h->set, 0, cap * sizeof(*h->set));
	*mask = cap - 1;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t x = items[i] + 1, j = (x * 2654435761u) & *mask;
		while (h->set[j] && h->set[j] != x)
			j = (j + 1) & *mask;
		h->set[j] = x;
	}
	return 0;
}

static bool lh_set_has(const struct lua_host *h, uint32_t mask, uint32_t item)
{
	uint32_t x = item + 1, j = (x * 2654435761u) & mask;
	while (h->set[j]) {
		if (h->set[j] == x)
			return true;
		j = (j + 1) & mask;
	}
	return false;
}

RECD_EXPORT int lua_host_ffi_cands_drop_items(struct lua_ctx *ctx, const uint32_t *items, uint32_t n_items)
{
	struct lua_host *h = ctx_host(ctx);
	struct lua_cand *a = ctx->cands;
	uint32_t n = ctx->n_cands, w = 0, mask;
	if (lua_host_ffi_budget_check(ctx))
		return -ETIME;
	if (!n_items || !n)
		return 0;
	if (n_items > (1u << 20))
		return -E2BIG;
	if (lh_set_build(h, items, n_items, &mask))
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		if (!lh_set_has(h, mask, a[i].item))
			a[w++] = a[i];
	ctx->n_cands = w;
	return 0;
}

RECD_EXPORT int lua_host_ffi_cands_drop_unservable(struct lua_ctx *ctx)
{
	const struct snap *s = ctx->snap;
	struct lua_cand *a = ctx->cands;
	uint32_t n = ctx->n_cands, w = 0;
	if (lua_host_ffi_budget_check(ctx))
		return -ETIME;
	if (!n)
		return 0;
	if (!s)
		return -ENOENT;
	for (uint32_t i = 0; i < n; i++)
		if (snap_item_servable(s, a[i].item) && !(a[i].flags & LUA_CAND_OUT_OF_STOCK))
			a[w++] = a[i];
	ctx->n_cands = w;
	return 0;
}

size_t lua_host_reason_string(const struct snap *snap, const struct lua_cand *c, char *out, size_t len)
{
	if (!len)
		return 0;
	out[0] = '\0';
	if (c->reason == LUA_REASON_NONE || c->reason >= LUA_REASON__COUNT)
		return 0;
	const char *name = lua_reason_names[c->reason];
	int r;
	if (c->reason_item != LUA_NO_ITEM && snap && c->reason_item < snap->n_items) {
		struct str id = snap_item_id(snap, c->reason_item);
		r = snprintf(out, len, "%s:%.*s", name, (int)id.len, id.p);
	} else {
		r = snprintf(out, len, "%s", name);
	}
	return r < 0 ? 0 : MIN((size_t)r, len - 1);
}

/* ----------------------------------------------------------- reload */

static uint64_t lh_generation = 1;

uint64_t lua_host_publish(void)
{
	return ck_pr_faa_64(&lh_generation, 1) + 1;
}

uint64_t lua_host_published(void)
{
	return ck_pr_load_64(&lh_generation);
}

int lua_host_maybe_reload(struct lua_host **hp, uint64_t generation)
{
	struct lua_host *h = *hp;
	bool rebuild = h->broken;
	/* Generations only grow; a state adopted just before its generation
	 * was published is not behind. A rebuild keeps the state's own. */
	if (h->generation >= generation && !rebuild)
		return 0;
	if (generation < h->generation)
		generation = h->generation;
	if (!rebuild && h->failed_generation == generation)
		return 0;  /* that set failed to build here: keep serving the old one */
	uint64_t now = now_ns();
	if (rebuild && h->generation == generation && now < h->retry_at_ns)
		return 0;
	struct lua_host_stats *st = h->stats;
	bool own = st == &h->own_stats;
	char err[256];
	struct lua_host *n;
	int rc = lua_host_create(&n, h->plugins_dir, h->lua_dir, &h->lim, own ? NULL : st, generation, err,
				 sizeof(err));
	if (rc) {
		lh_inc(&st->reload_failures);
		lh_set_error(st, err);
		log_error("policy_reload_failed", "generation=%llu error=\"%s\"", (unsigned long long)generation, err);
		if (h->generation != generation)
			h->failed_generation = generation;
		h->retry_at_ns = now + 1000000000ull;
		return rc;
	}
	if (own) {
		n->own_stats = h->own_stats;   /* counters keep counting */
		n->own_stats.generation = generation;
		n->own_stats.breaker_open = 0;
		n->own_stats.consecutive = 0;
		st = &n->own_stats;
	}
	lh_inc(h->generation == generation ? &st->rebuilds : &st->reloads);
	log_info("policy_loaded", "policy=%s", n->name);
	lua_host_destroy(h);
	*hp = n;
	return 1;
}

struct lua_host *lua_host_adopt(struct lua_host **hp, struct lua_host *n, struct lua_host_stats *stats)
{
	struct lua_host *h = *hp;
	struct lua_host_stats *st = h ? h->stats : stats ? stats : &n->own_stats;
	if (h && st == &h->own_stats) {
		n->own_stats = h->own_stats;
		st = &n->own_stats;
	}
	n->stats = st;
	ck_pr_store_64(&st->generation, n->generation);
	ck_pr_store_32(&st->consecutive, 0);
	ck_pr_store_32(&st->breaker_open, 0);
	lh_inc(&st->reloads);
	*hp = n;
	return h;
}

/* -------------------------------------------------------- pre-flight */

struct lh_fixture {
	const char *name;
	struct lua_req req;
	uint32_t items[16];
};

/* Requests covering each tier and a product page, built from `s`. */
static uint32_t lh_fixtures(const struct snap *s, struct lh_fixture *fx)
{
	static const char *const names[] = { "anonymous shopper", "new shopper (3 views)",
					     "returning shopper (15 interactions)", "product page" };
	uint32_t n_items = s ? s->n_items : 0;
	for (uint32_t f = 0; f < 4; f++) {
		struct lh_fixture *x = &fx[f];
		memset(x, 0, sizeof(*x));
		x->name = names[f];
		for (uint32_t i = 0; i < 16; i++)
			x->items[i] = n_items ? (s->n_popular > i ? s->popular[i] : (i * 7919u) % n_items) : 0;
		struct lua_req *r = &x->req;
		r->user = r->context_item = r->variant = LUA_NO_ITEM;
		r->n = 10;
		r->placement = f == 3 ? "pdp" : "home";
		r->placement_len = (uint32_t)strlen(r->placement);
		r->device = "mobile", r->device_len = 6;
		if (f == 0)
			continue;
		r->user_id = f == 1 ? "preflight-new" : "preflight-returning";
		r->user_id_len = (uint32_t)strlen(r->user_id);
		r->interactions = f == 1 ? 3 : 15;
		r->known = f >= 2;
		if (f >= 2 && s && s->n_users)
			r->user = 0;
		if (n_items) {
			r->recent = x->items;
			r->n_recent = f == 1 ? 3 : 10;
			r->cart = x->items + 10;
			r->n_cart = 1;
			r->purchased = x->items + 11;
			r->n_purchased = f >= 2 ? 2 : 0;
			if (f == 3)
				r->context_item = x->items[0];
		}
	}
	return 4;
}

static uint32_t lh_fixture_cands(const struct snap *s, struct lua_cand *c, uint32_t max)
{
	uint32_t n = 0;
	if (!s || !s->n_items)
		return 0;
	for (uint32_t i = 0; i < s->n_popular && n < max; i++, n++)
		c[n].item = s->popular[i];
	/* Then spread over the catalogue (possibly repeating popular items:
	 * skip those). */
	for (uint32_t i = 0; n < max && i < s->n_items; i++) {
		uint32_t it = (uint32_t)(((uint64_t)i * 2654435761u) % s->n_items);
		bool dup = false;
		for (uint32_t j = 0; j < n && !dup; j++)
			dup = c[j].item == it;
		if (!dup)
			c[n++].item = it;
	}
	static const uint8_t srcs[] = { LUA_SRC_POPULAR, LUA_SRC_SIMILAR, LUA_SRC_PERSONALIZED, LUA_SRC_TRENDING,
					LUA_SRC_CONTENT, LUA_SRC_SESSION };
	for (uint32_t i = 0; i < n; i++) {
		c[i].score = 1.0f - (float)i * 0.001f;
		c[i].source = srcs[i % ARRAY_SIZE(srcs)];
		c[i].reason = LUA_REASON_NONE;
		c[i].flags = i % 5 == 0 ? LUA_CAND_ON_SALE : 0;
		c[i].reason_item = c[i].source == LUA_SRC_SIMILAR ? c[0].item : LUA_NO_ITEM;
	}
	return n;
}

static void lh_say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lh_say(int fd, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n = MIN(n, (int)sizeof(line) - 2);
	line[n++] = '\n';
	ssize_t w = write(fd, line, (size_t)n);
	(void)w;
}

/* In the child: run every hook on every fixture, twice (cold, then with
 * traces compiled). Progress lines "S <where> <hook> <fixture>" tell the
 * parent where a hang happened; "E <message>" reports a failure. */
static int lh_preflight_child(const char *plugins_dir, const char *lua_dir, const struct lua_host_limits *lim,
			      const struct snap *s, int fd)
{
	struct lua_host_limits l = *lim;
	l.budget_us *= LH_PREFLIGHT_BUDGET_X;
	l.breaker_threshold = UINT32_MAX;
	struct lua_host *h;
	char err[512];
	if (lua_host_create(&h, plugins_dir, lua_dir, &l, NULL, 0, err, sizeof(err))) {
		lh_say(fd, "E %s", err);
		return 1;
	}
	struct lh_fixture fx[4];
	uint32_t nf = lh_fixtures(s, fx);
	static struct lua_cand cands[256];
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t f = 0; f < nf; f++) {
			struct lua_route route;
			int rc = 0;
			uint32_t n = lh_fixture_cands(s, cands, ARRAY_SIZE(cands));
			for (int k = 0; k < LUA_HOOK__COUNT && (!rc || rc == -ENOENT); k++) {
				lh_say(fd, "S %s\t%s\t%s", h->where[k], lua_hook_names[k], fx[f].name);
				if (k == LUA_HOOK_ROUTE)
					rc = lua_host_route(h, s, &fx[f].req, &route);
				else
					rc = lua_host_run(h, (enum lua_hook)k, s, &fx[f].req, cands, &n, fx[f].req.n);
			}
			if (rc && rc != -ENOENT) {
				lh_say(fd, "E %s (pre-flight, fixture '%s')", h->stats->last_error, fx[f].name);
				lua_host_destroy(h);
				return 1;
			}
		}
	}
	lua_host_destroy(h);
	lh_say(fd, "OK");
	return 0;
}

/* Cap the child's data segment (LuaJIT allocates with mmap, which
 * RLIMIT_DATA counts) so a memory bomb fails there, not on the box.
 * Sanitizer runtimes reserve terabytes of shadow: leave them alone. */
static void lh_child_limit_memory(uint32_t memory_mb)
{
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	FILE *f = fopen("/proc/self/status", "r");
	unsigned long long data_kb = 0;
	char line[128];
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmData: %llu kB", &data_kb) == 1)
			break;
	if (f)
		fclose(f);
	if (data_kb) {
		rlim_t lim = (rlim_t)(data_kb * 1024 + (unsigned long long)memory_mb * 4 * 1048576 + (256ull << 20));
		struct rlimit rl = { lim, lim };
		setrlimit(RLIMIT_DATA, &rl);
	}
#else
	(void)memory_mb;
#endif
}

/* Compile every file without running it: syntax errors with file:line. */
static int lh_syntax_check(const char *plugins_dir, const char *lua_dir, char *err, size_t errlen)
{
	static const char *const libs[] = { "recd_ffi", "recd", "recd_host" };
	static const char *const plugins[] = { "settings", "route", "rules", "rerank" };
	lua_State *L = luaL_newstate();
	if (!L)
		return lh_err(err, errlen, -ENOMEM, "cannot create a Lua state");
	int rc = 0;
	for (size_t i = 0; i < ARRAY_SIZE(libs) + ARRAY_SIZE(plugins) && !rc; i++) {
		bool lib = i < ARRAY_SIZE(libs);
		char path[PATH_MAX + 32];
		snprintf(path, sizeof(path), "%s/%s.lua", lib ? lua_dir : plugins_dir,
			 lib ? libs[i] : plugins[i - ARRAY_SIZE(libs)]);
		FILE *f = fopen(path, "rb");
		if (!f) {
			if (lib || errno != ENOENT)
				rc = lh_err(err, errlen, -errno, "%s: %s", path, strerror(errno));
			continue;
		}
		int c = fgetc(f);
		fclose(f);
		if (c == 0x1b) {  /* LUA_SIGNATURE: policies are source text only */
			rc = lh_err(err, errlen, -EINVAL, "%s: bytecode is not accepted", path);
		} else if (luaL_loadfile(L, path)) {
			rc = lh_err(err, errlen, -EINVAL, "%s", lua_tostring(L, -1));
		}
		lua_settop(L, 0);
	}
	lua_close(L);
	return rc;
}

int lua_host_compile_check(const char *plugins_dir, const char *lua_dir, const struct lua_host_limits *lim,
			   const struct snap *snap, char *err, size_t errlen)
{
	struct lua_host_limits l;
	lh_limits(&l, lim);
	/* Parse here; run (top-level code included, which may loop) only in
	 * the child. */
	int rc = lh_syntax_check(plugins_dir, lua_dir, err, errlen);
	if (rc)
		return rc;

	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC))
		return lh_err(err, errlen, -errno, "pre-flight: pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		rc = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return lh_err(err, errlen, rc, "pre-flight: fork: %s", strerror(-rc));
	}
	if (pid == 0) {
		close(pfd[0]);
		log_set_level(LOG_LVL_ERROR);  /* failures are reported through the pipe */
		lh_child_limit_memory(l.memory_mb);
		_exit(lh_preflight_child(plugins_dir, lua_dir, &l, snap, pfd[1]));
	}
	close(pfd[1]);

	/* Read progress until EOF or the deadline. */
	char buf[8192];
	size_t len = 0;
	bool eof = false;
	uint64_t deadline = now_ns() + (uint64_t)l.preflight_ms * 1000000;
	while (!eof) {
		uint64_t now = now_ns();
		if (now >= deadline)
			break;
		struct pollfd p = { pfd[0], POLLIN, 0 };
		int pr = poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0)
			continue;
		if (len == sizeof(buf) - 1) /* keep the tail: the last lines matter */
			memmove(buf, buf + sizeof(buf) / 2, len -= sizeof(buf) / 2);
		ssize_t r = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
		if (r > 0)
			len += (size_t)r;
		else if (r == 0 || errno != EINTR)
			eof = true;
	}
	close(pfd[0]);
	buf[len] = '\0';
	int status = 0;
	if (!eof) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	} else {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	/* The last complete line says where the child was. */
	char *last = NULL, *errline = NULL;
	for (char *p = buf, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		if (p[0] == 'S')
			last = p + 2;
		else if (p[0] == 'E')
			errline = p + 2;
	}
	/* "S where\thook\tfixture" */
	char *hook = last ? strchr(last, '\t') : NULL, *fixture = hook ? strchr(hook + 1, '\t') : NULL;
	if (fixture)
		*hook++ = '\0', *fixture++ = '\0';
	else
		last = (char *)plugins_dir, hook = (char *)"policies", fixture = (char *)"loading";
	if (!eof)
		return lh_err(err, errlen, -ETIMEDOUT,
			      "%s: %s() did not finish within %u ms on fixture '%s' (an endless loop?)", last, hook,
			      l.preflight_ms, fixture);
	if (errline)
		return lh_err(err, errlen, -EINVAL, "%s", errline);
	if (WIFSIGNALED(status))
		return lh_err(err, errlen, -EFAULT, "%s: %s() crashed (signal %d) on fixture '%s'", last, hook,
			      WTERMSIG(status), fixture);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return lh_err(err, errlen, -EINVAL, "%s: %s() pre-flight failed on fixture '%s' (exit %d)", last,
			      hook, fixture, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
