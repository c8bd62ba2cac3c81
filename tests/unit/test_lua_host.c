/* test_lua_host.c: the Lua policy layer — FFI layout agreement, each
 * hook's effect with the default policies, sandbox escapes, every kind of
 * failure (error, endless loop, memory, garbage) with its counter, the
 * restored fallback list and the breaker, reload, and compile_check's
 * file:line. Runs from the source root (meson workdir): lua/ and plugins/
 * are the shipped ones. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ftw.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lua/lua_host.h"
#include "snap/snap.h"
#include "snap/snapb.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

#define N_ITEMS 60
#define N_CATS 6
#define DIM 8

static struct snap *snap;
static char tmproot[] = "/tmp/test_lua_host.XXXXXX";

/* Item i: id "i<i>", category "c<i % 6>", price i + 1, out of stock when
 * i % 10 == 9, popularity decreasing with i. */
static void make_snapshot(void)
{
	static struct snapb_item items[N_ITEMS];
	static char ids[N_ITEMS][8], cats[N_CATS][8], uids[20][8];
	static const char *uid_ptrs[20];
	static float emb[N_ITEMS * DIM], uemb[20 * DIM], pop[N_ITEMS];
	for (int c = 0; c < N_CATS; c++)
		snprintf(cats[c], sizeof(cats[c]), "c%d", c);
	for (int i = 0; i < N_ITEMS; i++) {
		snprintf(ids[i], sizeof(ids[i]), "i%d", i);
		items[i] = (struct snapb_item){ ids[i], "t", cats[i % N_CATS], (float)(i + 1),
						(uint32_t)(i % 10 == 9 ? 0 : 5), true };
		for (int d = 0; d < DIM; d++)
			emb[i * DIM + d] = (d == i % N_CATS ? 1.0f : 0.0f) + 0.01f * (float)((i * 7 + d) % 5);
		pop[i] = (float)(N_ITEMS - i);
	}
	for (int u = 0; u < 20; u++) {
		snprintf(uids[u], sizeof(uids[u]), "u%d", u);
		uid_ptrs[u] = uids[u];
		for (int d = 0; d < DIM; d++)
			uemb[u * DIM + d] = d == u % DIM ? 1.0f : 0.0f;
	}
	struct snapb_input in = { .model_version = "test-lua", .dim = DIM, .n_items = N_ITEMS, .items = items,
				  .item_emb = emb, .n_users = 20, .user_ids = uid_ptrs, .user_emb = uemb,
				  .item_popularity = pop };
	char path[PATH_MAX], err[256];
	snprintf(path, sizeof(path), "%s/snap.bin", tmproot);
	if (snapb_write(&in, path, err, sizeof(err)) || snap_open(path, &snap, err, sizeof(err))) {
		fprintf(stderr, "snapshot: %s\n", err);
		exit(1);
	}
	unlink(path);
}

/* A fresh plugin directory with the given files (NULL-terminated name,
 * text pairs). */
static const char *plugin_dir(const char *const *files)
{
	static int seq;
	static char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/p%d", tmproot, seq++);
	mkdir(dir, 0755);
	for (int i = 0; files[i]; i += 2) {
		char path[PATH_MAX + 64];
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		FILE *f = fopen(path, "w");
		fputs(files[i + 1], f);
		fclose(f);
	}
	return dir;
}

static struct lua_host *host_for(const char *const *files, const struct lua_host_limits *lim)
{
	struct lua_host *h;
	char err[512];
	const char *dir = plugin_dir(files);
	if (lua_host_create(&h, dir, "lua", lim, NULL, 1, err, sizeof(err))) {
		fprintf(stderr, "lua_host_create: %s\n", err);
		failures++;
		return NULL;
	}
	return h;
}

/* ------------------------------------------------------------ fixtures */

static uint32_t recent[16], purchased[4], cart[4];

static struct lua_req req_for(uint32_t interactions)
{
	struct lua_req r;
	memset(&r, 0, sizeof(r));
	r.user = r.context_item = LUA_NO_ITEM;
	r.n = 10;
	r.placement = "home", r.placement_len = 4;
	r.interactions = interactions;
	if (interactions) {
		r.user_id = "u3", r.user_id_len = 2;
		r.known = interactions >= 10;
		r.user = interactions >= 10 ? 3 : LUA_NO_ITEM;   /* a trained embedding = returning */
		for (uint32_t i = 0; i < 16; i++)
			recent[i] = 40 + i % 20;
		r.recent = recent, r.n_recent = MIN(interactions, 16u);
		purchased[0] = 5;
		r.purchased = purchased, r.n_purchased = 1;
		cart[0] = 6;
		r.cart = cart, r.n_cart = 1;
	}
	return r;
}

/* 40 candidates: items 0..39, best first, with mixed sources. */
static uint32_t cands_for(struct lua_cand *c)
{
	for (uint32_t i = 0; i < 40; i++) {
		c[i] = (struct lua_cand){ .item = i, .score = 1.0f - (float)i * 0.01f,
					  .source = (uint8_t)(i % 3 == 0 ? LUA_SRC_SIMILAR : LUA_SRC_POPULAR),
					  .reason_item = i % 3 == 0 ? 41 : LUA_NO_ITEM,
					  .flags = (uint16_t)(i == 20 ? LUA_CAND_ON_SALE : 0) };
	}
	return 40;
}

static bool has_item(const struct lua_cand *c, uint32_t n, uint32_t item)
{
	for (uint32_t i = 0; i < n; i++)
		if (c[i].item == item)
			return true;
	return false;
}

/* -------------------------------------------------------------- tests */

static void test_layout(void)
{
	/* Plain state: declare the cdefs and compare with C row by row. */
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	static const char check[] =
		"local ffi = require 'ffi'\n"
		"local tab = ffi.new('const struct lua_layout *[1]')\n"
		"local n, bad = ffi.C.lua_host_ffi_layout(tab), 0\n"
		"for i = 0, n - 1 do\n"
		"  local e = tab[0][i]\n"
		"  local t = 'struct ' .. ffi.string(e.type)\n"
		"  if e.field == nil then\n"
		"    if ffi.sizeof(t) ~= e.size then bad = bad + 1 end\n"
		"  elseif ffi.offsetof(t, ffi.string(e.field)) ~= e.offset then bad = bad + 1 end\n"
		"end\n"
		"return n, bad\n";
	int st = luaL_dofile(L, "lua/recd_ffi.lua");
	if (st)
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
	CHECK(st == 0);
	st = luaL_loadstring(L, check) || lua_pcall(L, 0, 2, 0);
	if (st)
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
	CHECK(st == 0);
	const struct lua_layout *rows;
	int n = lua_host_ffi_layout(&rows);
	CHECK(n > 50);
	CHECK(lua_tointeger(L, -2) == n);
	CHECK(lua_tointeger(L, -1) == 0);
	lua_close(L);
}

static void test_defaults(void)
{
	struct lua_host *h;
	char err[512];
	int rc = lua_host_create(&h, "plugins", "lua", NULL, NULL, 7, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "default plugins: %s\n", err);
		failures++;
		return;
	}
	CHECK(!strcmp(lua_host_policy_name(h), "default@7"));

	/* route: the three tiers and a product page. */
	struct lua_route r0, r3, r15, rp;
	struct lua_req q0 = req_for(0), q3 = req_for(3), q15 = req_for(15), qp = req_for(0);
	qp.context_item = 2;
	CHECK(lua_host_route(h, snap, &q0, &r0) == 0);
	CHECK(lua_host_route(h, snap, &q3, &r3) == 0);
	CHECK(lua_host_route(h, snap, &q15, &r15) == 0);
	CHECK(lua_host_route(h, snap, &qp, &rp) == 0);
	CHECK(r0.tier == LUA_TIER_ANONYMOUS && !strcmp(r0.policy, "cold_start_popular"));
	CHECK(r0.n_sources == 2 && r0.sources[0].source == LUA_SRC_TRENDING && r0.sources[0].n == 40);
	CHECK(r3.tier == LUA_TIER_NEW && !strcmp(r3.policy, "content_based"));
	CHECK(r3.sources[0].source == LUA_SRC_SIMILAR);
	CHECK(r15.tier == LUA_TIER_RETURNING && !strcmp(r15.policy, "collaborative"));
	CHECK(r15.sources[0].source == LUA_SRC_PERSONALIZED);
	CHECK(!strcmp(rp.policy, "similar_items"));

	/* rules + rerank on 40 candidates. */
	struct lua_cand c[64];
	uint32_t n = cands_for(c);
	rc = lua_host_rank(h, snap, &q15, c, &n, 10);
	CHECK(rc == 0);
	CHECK(n == 10);
	int per_cat[N_CATS] = { 0 };
	for (uint32_t i = 0; i < n; i++) {
		CHECK(c[i].item % 10 != 9);           /* out of stock dropped */
		CHECK(c[i].item != 5 && c[i].item != 6); /* purchased, in cart */
		per_cat[c[i].item % N_CATS]++;
		CHECK(c[i].reason != LUA_REASON_NONE);
	}
	for (int k = 0; k < N_CATS; k++)
		CHECK(per_cat[k] <= 3);
	/* Sorted by score within the diversity cap: item 0 (best) first,
	 * item 20 (on sale) boosted above its neighbours. */
	CHECK(c[0].item == 0);
	/* A similar item whose source item was viewed says so. */
	char why[64];
	bool byv = false;
	for (uint32_t i = 0; i < n; i++) {
		lua_host_reason_string(snap, &c[i], why, sizeof(why));
		if (!strcmp(why, "because_you_viewed:i41"))
			byv = true;
		CHECK(why[0]);
	}
	CHECK(byv);
	CHECK(lua_host_stats(h)->failures[LUA_HOOK_RULES][LUA_FAIL_ERROR] == 0);
	lua_host_destroy(h);
}

static void test_hook_effects(void)
{
	const char *files[] = {
		"rules.lua",
		"local recd = require 'recd'\n"
		"function rules(req, cands)\n"
		"  cands:filter(function(item) return recd.id(item) ~= 'i3' end)\n"
		"end\n",
		"rerank.lua",
		"local recd = require 'recd'\n"
		"return function(req, cands)\n"  /* a returned function works too */
		"  cands:boost(function(item) if recd.id(item) == 'i7' then return 100 end end)\n"
		"  cands:sort()\n"
		"  cands:explain(1, 'because_you_viewed:i2')\n"
		"end\n",
		NULL,
	};
	struct lua_host *h = host_for(files, NULL);
	if (!h)
		return;
	struct lua_cand c[64];
	struct lua_req q = req_for(3);
	uint32_t n = cands_for(c);
	CHECK(lua_host_rank(h, snap, &q, c, &n, 10) == 0);
	CHECK(n == 39);
	CHECK(!has_item(c, n, 3));
	CHECK(c[0].item == 7 && (c[0].flags & LUA_CAND_BOOSTED));
	CHECK(c[1].item == 0 && c[2].item == 1);
	char why[64];
	lua_host_reason_string(snap, &c[0], why, sizeof(why));
	CHECK(!strcmp(why, "because_you_viewed:i2"));
	/* No route.lua: the C default. */
	struct lua_route r;
	CHECK(lua_host_route(h, snap, &q, &r) == -ENOENT);
	lua_host_destroy(h);

	/* No hooks at all: rank leaves the list alone. */
	const char *none[] = { NULL };
	h = host_for(none, NULL);
	n = cands_for(c);
	CHECK(lua_host_rank(h, snap, &q, c, &n, 10) == 0 && n == 40 && c[3].item == 3);
	lua_host_destroy(h);

	/* diversify / mmr / top / price_between / drop_categories. */
	const char *ops[] = {
		"rerank.lua",
		"local recd = require 'recd'\n"
		"function rerank(req, cands)\n"
		"  cands:drop_categories({ 'c1' })\n"
		"  cands:price_between(nil, 30)\n"
		"  cands:mmr { lambda = 0.5, k = 6 }\n"
		"  assert(cands:count() == 25, cands:count())\n"
		"  local seen = {}\n"
		"  for i = 1, 5 do seen[cands:category(i)] = true end\n"
		"  local k = 0 for _ in pairs(seen) do k = k + 1 end\n"
		"  assert(k == 5, 'mmr should spread over the 5 categories left')\n"
		"  cands:top(req.n)\n"
		"end\n",
		NULL,
	};
	h = host_for(ops, NULL);
	n = cands_for(c);
	int rc = lua_host_rank(h, snap, &q, c, &n, 10);
	if (rc)
		fprintf(stderr, "ops: %s\n", lua_host_stats(h)->last_error);
	CHECK(rc == 0 && n == 10);
	for (uint32_t i = 0; i < n; i++)
		CHECK(c[i].item % N_CATS != 1 && c[i].item < 30);
	lua_host_destroy(h);
}

/* Each snippet is the body of rules(); every one must fail as an error
 * (nothing reachable), leaving the list as it was. */
static void test_sandbox(void)
{
	static const char *const escapes[] = {
		"io.open('/etc/passwd')",
		"os.execute('true')",
		"os.getenv('HOME')",
		"require 'ffi'",
		"require 'jit'",
		"local f = string.dump(function() end)",
		"local f = ('x').dump(function() end)",
		"assert(load('\\27LJ\\2\\0'))",
		"assert(load(string.char(27) .. 'LuaQ'))",
		"debug.getinfo(1)",
		"setfenv(1, {})",
		"getfenv(0).io.open('/etc/passwd')",
		"dofile('/etc/passwd')",
		"loadfile('/etc/passwd')",
		"collectgarbage('stop')",
		"package.loaded.ffi.C.abort()",
		"getmetatable('').__index.dump(print)",
		"newproxy(true)",
		"jit.off()",
		"local recd = require 'recd'; recd.id = nil",
		"local r = require 'recd'; getmetatable(r).__index.x = 1",
		"cands.filter = nil",
		"local s = string.rep('x', 1e9)",
		"assert(load('return io'))().open('/etc/passwd')",
		"assert(load('return getfenv'))()(0)",
	};
	for (size_t i = 0; i < ARRAY_SIZE(escapes); i++) {
		char src[512];
		snprintf(src, sizeof(src), "function rules(req, cands)\n  %s\nend\n", escapes[i]);
		const char *files[] = { "rules.lua", src, NULL };
		struct lua_host *h = host_for(files, NULL);
		if (!h)
			continue;
		struct lua_cand c[64], orig[64];
		struct lua_req q = req_for(3);
		uint32_t n = cands_for(c);
		memcpy(orig, c, sizeof(c));
		int rc = lua_host_rank(h, snap, &q, c, &n, 10);
		if (rc != -EIO)
			fprintf(stderr, "escape not refused (%d): %s\n", rc, escapes[i]);
		CHECK(rc == -EIO);
		CHECK(n == 40);
		CHECK(!memcmp(c, orig, 40 * sizeof(*c)) || c[0].orig == 0);
		CHECK(strstr(lua_host_stats(h)->last_error, "rules.lua:2:") != NULL);
		lua_host_destroy(h);
	}
	/* What is allowed still works. */
	const char *ok[] = {
		"rules.lua",
		"local recd = require 'recd'\n"
		"local f = assert(load('return 1 + 1'))\n"
		"function rules(req, cands)\n"
		"  assert(f() == 2 and math.floor(2.5) == 2 and string.format('%d', 3) == '3')\n"
		"  assert(pcall(error, 'x') == false and os.time() > 0 and type(os.clock()) == 'number')\n"
		"  assert(('abc'):upper() == 'ABC' and #table.concat({ 'a', 'b' }) == 2)\n"
		"  assert(recd.category_name(cands:item(1)) == 'c0' and recd.price(2) == 3)\n"
		"  assert(recd.item('i9') == 9 and recd.stock(9) == 0 and not recd.available(60 - 1) == false)\n"
		"  assert(req.user_id == 'u3' and req.interactions == 3 and req.placement == 'home')\n"
		"  assert(req:viewed(41) and not req:viewed(1) and req:has_purchased(5))\n"
		"  assert(not pcall(cands.item, cands, 41), 'out of range position')\n"
		"  assert(not pcall(recd.price, -1) and not pcall(recd.price, 60))\n"
		"end\n",
		NULL,
	};
	struct lua_host *h = host_for(ok, NULL);
	if (h) {
		struct lua_cand c[64];
		struct lua_req q = req_for(3);
		uint32_t n = cands_for(c);
		int rc = lua_host_rank(h, snap, &q, c, &n, 10);
		if (rc)
			fprintf(stderr, "allowed: %s\n", lua_host_stats(h)->last_error);
		CHECK(rc == 0);
		lua_host_destroy(h);
	}
}

/* A failing hook: negative code, its counter moves, the list is restored
 * (so the caller's fallback is the list it passed). */
static void expect_failure(const char *file, const char *src, int want_rc, enum lua_hook hook, enum lua_fail kind,
			   const struct lua_host_limits *lim)
{
	const char *files[] = { file, src, NULL };
	struct lua_host *h = host_for(files, lim);
	if (!h)
		return;
	struct lua_cand c[64], orig[64];
	struct lua_req q = req_for(15);
	uint32_t n = cands_for(c);
	for (uint32_t i = 0; i < n; i++)
		c[i].orig = i;
	memcpy(orig, c, sizeof(c));
	uint64_t t0 = now_ns();
	int rc;
	if (hook == LUA_HOOK_ROUTE) {
		struct lua_route r;
		rc = lua_host_route(h, snap, &q, &r);
	} else {
		rc = lua_host_rank(h, snap, &q, c, &n, 10);
	}
	uint64_t took_ms = (now_ns() - t0) / 1000000;
	if (rc != want_rc)
		fprintf(stderr, "%s: rc %d, want %d: %s\n", file, rc, want_rc, lua_host_stats(h)->last_error);
	CHECK(rc == want_rc);
	CHECK(took_ms < 500);
	CHECK(lua_host_stats(h)->failures[hook][kind] == 1);
	CHECK(strstr(lua_host_stats(h)->last_error, file) != NULL);
	CHECK(n == 40 && !memcmp(c, orig, 40 * sizeof(*c)));
	lua_host_destroy(h);
}

static void test_failures(void)
{
	struct lua_host_limits lim = { .budget_us = 2000, .memory_mb = 8 };
	expect_failure("rules.lua", "function rules() error('boom') end", -EIO, LUA_HOOK_RULES, LUA_FAIL_ERROR, &lim);
	/* Interpreted endless loop (closure creation keeps it out of the JIT). */
	expect_failure("rerank.lua", "function rerank() while true do local f = function() end end end", -ETIME,
		       LUA_HOOK_RERANK, LUA_FAIL_BUDGET, &lim);
	/* ... even when the policy tries to swallow the error. */
	expect_failure("rerank.lua",
		       "function rerank() while true do pcall(function() while true do local f = function() end end end) end end",
		       -ETIME, LUA_HOOK_RERANK, LUA_FAIL_BUDGET, &lim);
	/* An API loop over a long list checks the budget itself. */
	expect_failure("rules.lua",
		       "function rules(req, cands)\n"
		       "  while true do cands:filter(function() return true end) end\n"
		       "end\n",
		       -ETIME, LUA_HOOK_RULES, LUA_FAIL_BUDGET, &lim);
	/* Memory kept across calls, over the ceiling. */
	expect_failure("rules.lua",
		       "HOARD = {}\n"
		       "function rules() for i = 1, 400000 do HOARD[i] = { i } end end\n",
		       -ENOMEM, LUA_HOOK_RULES, LUA_FAIL_MEMORY, &lim);
	/* Garbage of every kind. */
	expect_failure("rerank.lua", "function rerank() return 42 end", -EBADMSG, LUA_HOOK_RERANK, LUA_FAIL_GARBAGE,
		       &lim);
	expect_failure("rerank.lua", "function rerank(req, cands) cands:top(2) end", -EBADMSG, LUA_HOOK_RERANK,
		       LUA_FAIL_GARBAGE, &lim);
	expect_failure("route.lua", "function route() return { policy = 'x', sources = { { 'nope', 3 } } } end",
		       -EBADMSG, LUA_HOOK_ROUTE, LUA_FAIL_GARBAGE, &lim);
	expect_failure("route.lua", "function route() return 7 end", -EBADMSG, LUA_HOOK_ROUTE, LUA_FAIL_GARBAGE,
		       &lim);
	expect_failure("route.lua", "function route() return { policy = 'x', sources = { { 'popular', 1e9 } } } end",
		       -EBADMSG, LUA_HOOK_ROUTE, LUA_FAIL_GARBAGE, &lim);

	/* Over the hard ceiling: the state is rebuilt between requests. */
	const char *big[] = { "rules.lua",
			      "HOARD = {}\nfunction rules() for i = 1, 1000000 do HOARD[i] = { i } end end\n", NULL };
	struct lua_host *h = host_for(big, &lim);
	struct lua_cand c[64];
	struct lua_req q = req_for(3);
	uint32_t n = cands_for(c);
	CHECK(lua_host_rank(h, snap, &q, c, &n, 10) == -ENOMEM);
	CHECK(lua_host_rank(h, snap, &q, c, &n, 10) == -ESTALE);
	CHECK(lua_host_maybe_reload(&h, 1) == 1);
	CHECK(lua_host_stats(h)->rebuilds == 1);
	CHECK(lua_host_stats(h)->failures[LUA_HOOK_RULES][LUA_FAIL_MEMORY] == 1);
	lua_host_destroy(h);
}

static void test_breaker_and_reload(void)
{
	struct lua_host_limits lim = { .breaker_threshold = 3 };
	const char *files[] = { "rules.lua", "function rules(req) if req.n == 10 then error('bad n') end end", NULL };
	struct lua_host_stats stats;
	memset(&stats, 0, sizeof(stats));
	const char *dir = plugin_dir(files);
	char dirc[PATH_MAX], err[512];
	snprintf(dirc, sizeof(dirc), "%s", dir);
	struct lua_host *h;
	uint64_t g = lua_host_published();
	CHECK(lua_host_create(&h, dirc, "lua", &lim, &stats, g, err, sizeof(err)) == 0);
	struct lua_cand c[64];
	struct lua_req q = req_for(3);
	uint32_t n;
	for (int i = 0; i < 3; i++) {
		n = cands_for(c);
		CHECK(lua_host_rank(h, snap, &q, c, &n, 10) == -EIO);
	}
	CHECK(stats.breaker_open == 1 && stats.breaker_trips == 1);
	n = cands_for(c);
	CHECK(lua_host_rank(h, snap, &q, c, &n, 10) == -ECANCELED);
	CHECK(stats.breaker_skips == 1);
	char last[256];
	lua_host_stats_last_error(&stats, last, sizeof(last));
	CHECK(strstr(last, "rules.lua:1: bad n") != NULL);

	/* Nothing published: no swap. */
	CHECK(lua_host_maybe_reload(&h, g) == 0);
	/* A fixed policy set is published: the worker swaps, breaker closed. */
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/rules.lua", dirc);
	FILE *f = fopen(path, "w");
	fputs("function rules(req, cands) cands:top(30) end\n", f);
	fclose(f);
	CHECK(lua_host_compile_check(dirc, "lua", &lim, snap, err, sizeof(err)) == 0);
	uint64_t g2 = lua_host_publish();
	CHECK(g2 == g + 1 && lua_host_published() == g2);
	CHECK(lua_host_maybe_reload(&h, g2) == 1);
	CHECK(stats.breaker_open == 0 && stats.reloads == 1 && stats.generation == g2);
	char want[64];
	snprintf(want, sizeof(want), "%s@%llu", strrchr(dirc, '/') + 1, (unsigned long long)g2);
	CHECK(!strcmp(lua_host_policy_name(h), want));
	n = cands_for(c);
	CHECK(lua_host_rank(h, snap, &q, c, &n, 10) == 0 && n == 30);
	CHECK(lua_host_maybe_reload(&h, g2) == 0);

	/* A broken set on disk: the swap fails, the old state keeps serving. */
	f = fopen(path, "w");
	fputs("function rules(req, cands)\n  cands:top(30\nend\n", f);
	fclose(f);
	CHECK(lua_host_compile_check(dirc, "lua", &lim, snap, err, sizeof(err)) < 0);
	CHECK(strstr(err, "rules.lua:3:") != NULL);
	CHECK(lua_host_maybe_reload(&h, g2 + 1) < 0);
	CHECK(stats.reload_failures == 1);
	CHECK(lua_host_maybe_reload(&h, g2 + 1) == 0);  /* not retried every turn */
	n = cands_for(c);
	CHECK(lua_host_rank(h, snap, &q, c, &n, 10) == 0 && n == 30);
	lua_host_destroy(h);
}

static void test_compile_check(void)
{
	struct lua_host_limits lim = { .preflight_ms = 700 };
	char err[512];
	CHECK(lua_host_compile_check("plugins", "lua", &lim, snap, err, sizeof(err)) == 0);
	CHECK(lua_host_compile_check("plugins", "lua", &lim, NULL, err, sizeof(err)) == 0);

	/* Syntax error: file:line. */
	const char *syn[] = { "rerank.lua", "-- a comment\n\nfunction rerank(req, cands\nend\n", NULL };
	const char *dir = plugin_dir(syn);
	CHECK(lua_host_compile_check(dir, "lua", &lim, snap, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "rerank.lua:4:") != NULL);

	/* Runtime error on a fixture. */
	const char *rt[] = { "rules.lua", "function rules(req)\n  if req.interactions > 10 then error('no') end\nend\n",
			     NULL };
	dir = plugin_dir(rt);
	CHECK(lua_host_compile_check(dir, "lua", &lim, snap, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "rules.lua:2: no") != NULL);

	/* A JIT-compiled endless loop: the count hook never fires inside
	 * the trace; the forked pre-flight's deadline catches it. */
	const char *jit[] = { "rerank.lua", "function rerank(req, cands)\n  local i = 0\n  while true do i = i + 1 end\nend\n",
			      NULL };
	dir = plugin_dir(jit);
	uint64_t t0 = now_ns();
	int rc = lua_host_compile_check(dir, "lua", &lim, snap, err, sizeof(err));
	CHECK(rc == -ETIMEDOUT);
	CHECK(strstr(err, "rerank.lua:1: rerank() did not finish") != NULL);
	CHECK((now_ns() - t0) / 1000000 < 3000);

	/* Endless loop in top-level code, and a memory bomb. */
	const char *top[] = { "route.lua", "while true do end\n", NULL };
	dir = plugin_dir(top);
	CHECK(lua_host_compile_check(dir, "lua", &lim, snap, err, sizeof(err)) < 0);
	const char *bomb[] = { "rules.lua", "T = {}\nfunction rules() for i = 1, 3e7 do T[i] = { i } end end\n", NULL };
	dir = plugin_dir(bomb);
	struct lua_host_limits small = { .preflight_ms = 2000, .memory_mb = 16 };
	rc = lua_host_compile_check(dir, "lua", &small, snap, err, sizeof(err));
	CHECK(rc < 0);
	if (rc < 0)
		fprintf(stderr, "(expected) memory bomb refused: %s\n", err);

	/* A settings file that is not a table. */
	const char *bad[] = { "settings.lua", "return 3\n", NULL };
	dir = plugin_dir(bad);
	CHECK(lua_host_compile_check(dir, "lua", &lim, snap, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "settings.lua: must return a table") != NULL);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p);
}

int main(void)
{
	if (!mkdtemp(tmproot)) {
		perror("mkdtemp");
		return 1;
	}
	make_snapshot();
	test_layout();
	test_defaults();
	test_hook_effects();
	test_sandbox();
	test_failures();
	test_breaker_and_reload();
	test_compile_check();
	snap_close(snap);
	nftw(tmproot, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
