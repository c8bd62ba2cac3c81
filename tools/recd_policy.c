/* recd_policy.c: `recd-policy`, the offline test bench for Lua policies.
 *
 *   recd-policy check   PLUGINS_DIR            compile + pre-flight, as a reload does
 *   recd-policy test    PLUGINS_DIR [--fixtures DIR]   run fixture cases, PASS/FAIL
 *   recd-policy explain PLUGINS_DIR --user ID ...      one request through each hook
 *
 * No daemon: the policies run in the same lua_host the workers use, on a
 * small generated snapshot (gen_generate: items "i<N>", users "u<N>",
 * categories "c<N>") or on --snapshot FILE. Fixture files are Lua: each
 * `case { name = ..., request = {...}, candidates = {...}, expect = {...} }`
 * is one case (docs/policies.md lists the fields). Exit 0 all passed, 1 a
 * case failed, 2 usage or setup error.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "gen/gen.h"
#include "lua/lua_host.h"
#include "pipe/pipe.h"
#include "rec/rec.h"
#include "snap/snap.h"
#include "snap/snapb.h"

#define MAX_CANDS 2000
#define MAX_LIST 256

static const char *lua_dir;
static struct snap *snap;

static void usage(FILE *out)
{
	fprintf(out,
		"usage: recd-policy check   PLUGINS_DIR [options]\n"
		"       recd-policy test    PLUGINS_DIR [--fixtures DIR] [options]\n"
		"       recd-policy explain PLUGINS_DIR [--user ID] [--interactions N] [--recent ID,ID..]\n"
		"                           [--cart ID,..] [--purchased ID,..] [--item ID] [--placement P]\n"
		"                           [--device D] [--region R] [--n N] [options]\n"
		"options: --snapshot FILE (default: a generated one), --lua DIR (the policy API;\n"
		"         default ./lua when present, else the installed copy)\n");
}

/* ------------------------------------------------------------ snapshot */

static int make_snapshot(const char *path)
{
	char err[256];
	if (path) {
		if (snap_open(path, &snap, err, sizeof(err))) {
			fprintf(stderr, "recd-policy: %s: %s\n", path, err);
			return -1;
		}
		return 0;
	}
	struct gen_params p = { .seed = 7, .n_items = 2000, .n_users = 200, .dim = 16, .n_categories = 20,
				.out_of_stock_share = 0.05 };
	struct gen_data d;
	struct snapb_input in;
	char dir[] = "/tmp/recd-policy.XXXXXX", file[64];
	if (gen_generate(&p, &d, err, sizeof(err))) {
		fprintf(stderr, "recd-policy: generate: %s\n", err);
		return -1;
	}
	gen_snapb_input(&d, &in);
	int rc = -1;
	if (!mkdtemp(dir)) {
		perror("recd-policy: mkdtemp");
		goto out;
	}
	snprintf(file, sizeof(file), "%s/snap", dir);
	if (snapb_write(&in, file, err, sizeof(err)) || snap_open(file, &snap, err, sizeof(err)))
		fprintf(stderr, "recd-policy: snapshot: %s\n", err);
	else
		rc = 0;
	unlink(file);
	rmdir(dir);
out:
	gen_free(&d);
	return rc;
}

/* ------------------------------------------------------------ requests */

struct request {
	struct lua_req req;
	uint32_t recent[MAX_LIST], cart[MAX_LIST], purchased[MAX_LIST];
	char user[256], placement[65], device[65], region[65];
};

static int item_index(const char *id, uint32_t *out)
{
	int64_t i = snap_item_find(snap, id, strlen(id));
	if (i < 0) {
		fprintf(stderr, "recd-policy: unknown item '%s' (generated items are i0..i%u)\n", id,
			snap->n_items - 1);
		return -1;
	}
	*out = (uint32_t)i;
	return 0;
}

/* Comma-separated ids into indexes. */
static int parse_ids(const char *csv, uint32_t *out, uint32_t *n)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", csv);
	*n = 0;
	for (char *save, *t = strtok_r(buf, ",", &save); t && *n < MAX_LIST; t = strtok_r(NULL, ",", &save))
		if (item_index(t, &out[(*n)++]))
			return -1;
	return 0;
}

static void request_init(struct request *r)
{
	memset(r, 0, sizeof(*r));
	r->req.user = r->req.context_item = LUA_NO_ITEM;
	r->req.n = 10;
	r->req.recent = r->recent, r->req.cart = r->cart, r->req.purchased = r->purchased;
}

static void request_finish(struct request *r)
{
	struct lua_req *q = &r->req;
	if (r->user[0]) {
		q->user_id = r->user, q->user_id_len = (uint32_t)strlen(r->user);
		int64_t u = snap_user_find(snap, r->user, strlen(r->user));
		q->user = u >= 0 ? (uint32_t)u : LUA_NO_ITEM;
		q->known = u >= 0 || q->interactions > 0;
	}
	if (r->placement[0])
		q->placement = r->placement, q->placement_len = (uint32_t)strlen(r->placement);
	if (r->device[0])
		q->device = r->device, q->device_len = (uint32_t)strlen(r->device);
	if (r->region[0])
		q->region = r->region, q->region_len = (uint32_t)strlen(r->region);
	if (!q->interactions)
		q->interactions = q->n_recent;
}

/* ---------------------------------------------------------- candidates */

/* What the engine's C sources bring for this route: the same code the
 * daemon runs (engine/pipe), without live state (so "trending" and
 * "session" bring nothing offline). */
static struct pipe_worker *pw;

static bool cand_has(const struct lua_cand *c, uint32_t n, uint32_t item)
{
	for (uint32_t i = 0; i < n; i++)
		if (c[i].item == item)
			return true;
	return false;
}

static uint32_t assemble(const struct lua_route *rt, const struct lua_req *q, struct lua_cand *c)
{
	struct pipe_request rq = { .snap = snap, .context_item = -1, .n = q->n, .personalize = true };
	pipe_resolve_given(pw, &rq, q);
	struct lua_cand *got;
	uint32_t n = MIN(pipe_gather(pw, &rq, rt, &got), (uint32_t)MAX_CANDS);
	memcpy(c, got, n * sizeof(*c));
	return n;
}

static void default_route(const struct lua_req *q, struct lua_route *rt)
{
	pipe_default_route(q, rt);
}

/* ------------------------------------------------------- fixture files */

static void lget_str(lua_State *L, int t, const char *k, char *dst, size_t len)
{
	lua_getfield(L, t, k);
	if (lua_isstring(L, -1))
		snprintf(dst, len, "%s", lua_tostring(L, -1));
	lua_pop(L, 1);
}

static int lget_ids(lua_State *L, int t, const char *k, uint32_t *out, uint32_t *n)
{
	int rc = 0;
	lua_getfield(L, t, k);
	if (lua_istable(L, -1)) {
		*n = 0;
		for (int i = 1; *n < MAX_LIST; i++) {
			lua_rawgeti(L, -1, i);
			if (!lua_isstring(L, -1)) {
				lua_pop(L, 1);
				break;
			}
			rc |= item_index(lua_tostring(L, -1), &out[(*n)++]);
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	return rc;
}

static int read_request(lua_State *L, int t, struct request *r)
{
	request_init(r);
	lget_str(L, t, "user", r->user, sizeof(r->user));
	lget_str(L, t, "placement", r->placement, sizeof(r->placement));
	lget_str(L, t, "device", r->device, sizeof(r->device));
	lget_str(L, t, "region", r->region, sizeof(r->region));
	lua_getfield(L, t, "interactions");
	r->req.interactions = (uint32_t)lua_tointeger(L, -1);
	lua_getfield(L, t, "n");
	if (lua_isnumber(L, -1))
		r->req.n = (uint32_t)lua_tointeger(L, -1);
	lua_pop(L, 2);
	char item[256] = "";
	lget_str(L, t, "item", item, sizeof(item));
	if (item[0] && item_index(item, &r->req.context_item))
		return -1;
	if (lget_ids(L, t, "recent", r->recent, &r->req.n_recent) || lget_ids(L, t, "cart", r->cart, &r->req.n_cart) ||
	    lget_ids(L, t, "purchased", r->purchased, &r->req.n_purchased))
		return -1;
	request_finish(r);
	return 0;
}

/* candidates = { "i1", { "i2", 0.5, "similar", on_sale = true }, ... } */
static int read_cands(lua_State *L, int t, struct lua_cand *c, uint32_t *n)
{
	*n = 0;
	for (int i = 1; *n < MAX_CANDS; i++) {
		lua_rawgeti(L, t, i);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			break;
		}
		struct lua_cand x = { .score = 1.0f - (float)i * 0.001f, .source = LUA_SRC_POPULAR,
				      .reason_item = LUA_NO_ITEM };
		const char *id = NULL;
		if (lua_istable(L, -1)) {
			int e = lua_gettop(L);
			lua_rawgeti(L, e, 1);
			id = lua_tostring(L, -1);
			lua_rawgeti(L, e, 2);
			if (lua_isnumber(L, -1))
				x.score = (float)lua_tonumber(L, -1);
			lua_rawgeti(L, e, 3);
			for (uint32_t s = 0; lua_isstring(L, -1) && lua_source_names[s]; s++)
				if (!strcmp(lua_source_names[s], lua_tostring(L, -1)))
					x.source = (uint8_t)s;
			lua_getfield(L, e, "on_sale");
			if (lua_toboolean(L, -1))
				x.flags |= LUA_CAND_ON_SALE;
			lua_getfield(L, e, "out_of_stock");
			if (lua_toboolean(L, -1))
				x.flags |= LUA_CAND_OUT_OF_STOCK;
			char ref[256] = "";
			lget_str(L, e, "ref", ref, sizeof(ref));
			if (ref[0] && item_index(ref, &x.reason_item))
				return -1;
			id = id ? id : "";
			if (item_index(id, &x.item))
				return -1;
			lua_settop(L, e);
		} else if (lua_isstring(L, -1)) {
			if (item_index(lua_tostring(L, -1), &x.item))
				return -1;
		}
		lua_pop(L, 1);
		c[(*n)++] = x;
	}
	return 0;
}

struct tally {
	int pass, fail;
};

static void verdict(struct tally *t, const char *where, const char *name, const char *why)
{
	if (why) {
		t->fail++;
		printf("%s: FAIL %s: %s\n", where, name, why);
	} else {
		t->pass++;
		printf("%s: PASS %s\n", where, name);
	}
}

/* Check expect{} against the route and the final list; NULL = all good. */
static const char *check_expect(lua_State *L, int e, const struct lua_route *rt, const struct lua_cand *c, uint32_t n,
				char *why, size_t len)
{
	char s[256] = "";
	lget_str(L, e, "tier", s, sizeof(s));
	if (s[0] && strcmp(s, lua_tier_names[rt->tier]))
		return snprintf(why, len, "tier is %s, expected %s", lua_tier_names[rt->tier], s), why;
	s[0] = 0;
	lget_str(L, e, "policy", s, sizeof(s));
	if (s[0] && strcmp(s, rt->policy))
		return snprintf(why, len, "policy is %s, expected %s", rt->policy, s), why;
	lua_getfield(L, e, "sources");
	for (int i = 1; lua_istable(L, -1); i++) {
		lua_rawgeti(L, -1, i);
		const char *want = lua_tostring(L, -1);
		lua_pop(L, 1);
		if (!want)
			break;
		if ((uint32_t)i > rt->n_sources || strcmp(want, lua_source_names[rt->sources[i - 1].source])) {
			lua_pop(L, 1);
			return snprintf(why, len, "source %d is %s, expected %s", i,
					(uint32_t)i > rt->n_sources ? "(none)" :
					lua_source_names[rt->sources[i - 1].source], want), why;
		}
	}
	lua_pop(L, 1);
	static const char *const counts[] = { "count", "min_count", "max_count" };
	for (int k = 0; k < 3; k++) {
		lua_getfield(L, e, counts[k]);
		if (lua_isnumber(L, -1)) {
			uint32_t v = (uint32_t)lua_tointeger(L, -1);
			if ((k == 0 && n != v) || (k == 1 && n < v) || (k == 2 && n > v)) {
				lua_pop(L, 1);
				return snprintf(why, len, "%u items, expected %s %u", n, counts[k], v), why;
			}
		}
		lua_pop(L, 1);
	}
	uint32_t ids[MAX_LIST], ni = 0;
	if (lget_ids(L, e, "absent", ids, &ni))
		return "bad item id in expect.absent";
	for (uint32_t i = 0; i < ni; i++)
		if (cand_has(c, n, ids[i]))
			return snprintf(why, len, "%s is in the list", snap_item_id(snap, ids[i]).p), why;
	ni = 0;
	if (lget_ids(L, e, "present", ids, &ni))
		return "bad item id in expect.present";
	for (uint32_t i = 0; i < ni; i++)
		if (!cand_has(c, n, ids[i]))
			return snprintf(why, len, "%.*s is not in the list", (int)snap_item_id(snap, ids[i]).len,
					snap_item_id(snap, ids[i]).p), why;
	s[0] = 0;
	lget_str(L, e, "first", s, sizeof(s));
	if (s[0]) {
		struct str f = n ? snap_item_id(snap, c[0].item) : (struct str){ "(empty)", 7 };
		if (!n || f.len != strlen(s) || memcmp(f.p, s, f.len))
			return snprintf(why, len, "first is %.*s, expected %s", (int)f.len, f.p, s), why;
	}
	lua_getfield(L, e, "in_stock");
	bool in_stock = lua_toboolean(L, -1);
	lua_getfield(L, e, "reasons");
	bool reasons = lua_toboolean(L, -1);
	lua_getfield(L, e, "max_per_category");
	uint32_t cap = lua_isnumber(L, -1) ? (uint32_t)lua_tointeger(L, -1) : 0;
	lua_pop(L, 3);
	for (uint32_t i = 0; i < n; i++) {
		struct str id = snap_item_id(snap, c[i].item);
		if (in_stock && !snap_item_servable(snap, c[i].item))
			return snprintf(why, len, "%.*s is out of stock", (int)id.len, id.p), why;
		if (reasons && c[i].reason == LUA_REASON_NONE)
			return snprintf(why, len, "%.*s has no reason", (int)id.len, id.p), why;
		uint32_t same = 0;
		for (uint32_t j = 0; cap && j <= i; j++)
			same += snap->item_category[c[j].item] == snap->item_category[c[i].item];
		if (cap && same > cap)
			return snprintf(why, len, "more than %u items of one category (at %.*s)", cap, (int)id.len,
					id.p), why;
	}
	/* reason = { i6 = "because_you_viewed:i1" } */
	lua_getfield(L, e, "reason");
	if (lua_istable(L, -1)) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			uint32_t it;
			const char *want = lua_tostring(L, -1);
			if (item_index(lua_tostring(L, -2), &it) == 0 && want) {
				char got[300] = "(not in the list)";
				for (uint32_t i = 0; i < n; i++)
					if (c[i].item == it)
						lua_host_reason_string(snap, &c[i], got, sizeof(got));
				if (strcmp(got, want)) {
					snprintf(why, len, "reason of %s is '%s', expected '%s'", lua_tostring(L, -2), got,
						 want);
					lua_pop(L, 3);
					return why;
				}
			}
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	return NULL;
}

/* The fixture file's `case` function: records each case with its line. */
static int l_case(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Debug ar;
	int line = lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar) ? ar.currentline : 0;
	lua_getfield(L, LUA_REGISTRYINDEX, "cases");
	size_t n = lua_objlen(L, -1);
	lua_createtable(L, 2, 0);
	lua_pushvalue(L, 1);
	lua_rawseti(L, -2, 1);
	lua_pushinteger(L, line);
	lua_rawseti(L, -2, 2);
	lua_rawseti(L, -2, (int)n + 1);
	return 0;
}

static void run_file(struct lua_host *h, const char *path, struct tally *t)
{
	lua_State *L = luaL_newstate();
	luaopen_base(L);
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, "cases");
	lua_pushcfunction(L, l_case);
	lua_setglobal(L, "case");
	if (luaL_loadfile(L, path) || lua_pcall(L, 0, 0, 0)) {
		verdict(t, path, "(loading)", lua_tostring(L, -1));
		lua_close(L);
		return;
	}
	lua_getfield(L, LUA_REGISTRYINDEX, "cases");
	int cases = lua_gettop(L);
	static struct lua_cand c[MAX_CANDS];
	for (int k = 1; k <= (int)lua_objlen(L, cases); k++) {
		lua_settop(L, cases);
		lua_rawgeti(L, cases, k);
		lua_rawgeti(L, -1, 1);
		int tc = lua_gettop(L);
		lua_rawgeti(L, -2, 2);
		char where[2 * PATH_MAX + 16], name[200] = "(unnamed)", why[400];
		snprintf(where, sizeof(where), "%s:%d", path, (int)lua_tointeger(L, -1));
		lget_str(L, tc, "name", name, sizeof(name));

		struct request r;
		lua_getfield(L, tc, "request");
		int ok = lua_istable(L, -1) ? read_request(L, lua_gettop(L), &r) : (request_init(&r), 0);
		if (ok) {
			verdict(t, where, name, "bad request (unknown item id?)");
			continue;
		}
		struct lua_route rt;
		int rc = lua_host_route(h, snap, &r.req, &rt);
		if (rc == -ENOENT)
			default_route(&r.req, &rt);
		else if (rc) {
			snprintf(why, sizeof(why), "route failed: %s", lua_host_stats(h)->last_error);
			verdict(t, where, name, why);
			continue;
		}
		uint32_t n;
		lua_getfield(L, tc, "candidates");
		if (lua_istable(L, -1)) {
			if (read_cands(L, lua_gettop(L), c, &n)) {
				verdict(t, where, name, "bad candidate id");
				continue;
			}
		} else {
			n = assemble(&rt, &r.req, c);
		}
		rc = lua_host_rank(h, snap, &r.req, c, &n, r.req.n);
		if (rc) {
			snprintf(why, sizeof(why), "rules/rerank failed (%s): %s", strerror(-rc),
				 lua_host_stats(h)->last_error);
			verdict(t, where, name, why);
			continue;
		}
		n = MIN(n, r.req.n);
		lua_getfield(L, tc, "expect");
		const char *bad = lua_istable(L, -1) ? check_expect(L, lua_gettop(L), &rt, c, n, why, sizeof(why)) : NULL;
		verdict(t, where, name, bad);
	}
	lua_close(L);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_test(struct lua_host *h, const char *fixtures)
{
	DIR *d = opendir(fixtures);
	if (!d) {
		fprintf(stderr, "recd-policy: %s: %s\n", fixtures, strerror(errno));
		return 2;
	}
	char *names[256];
	int nn = 0;
	for (struct dirent *e; (e = readdir(d)) && nn < 256;) {
		size_t l = strlen(e->d_name);
		if (l > 4 && !strcmp(e->d_name + l - 4, ".lua"))
			names[nn++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)nn, sizeof(*names), cmp_str);
	struct tally t = { 0, 0 };
	for (int i = 0; i < nn; i++) {
		char path[2 * PATH_MAX];
		snprintf(path, sizeof(path), "%.4000s/%.255s", fixtures, names[i]);
		run_file(h, path, &t);
		free(names[i]);
	}
	printf("%d passed, %d failed (policy set %s)\n", t.pass, t.fail, lua_host_policy_name(h));
	return t.fail ? 1 : 0;
}

/* ------------------------------------------------------------- explain */

static int cmd_explain(struct lua_host *h, struct request *r)
{
	static struct lua_cand c[MAX_CANDS], start[MAX_CANDS], after_rules[MAX_CANDS];
	struct lua_route rt;
	int rc = lua_host_route(h, snap, &r->req, &rt);
	const char *src = "route.lua";
	if (rc == -ENOENT) {
		default_route(&r->req, &rt);
		src = "built-in default";
	} else if (rc) {
		printf("route: FAILED (%s): %s\n  -> the engine would use its built-in route\n", strerror(-rc),
		       lua_host_stats(h)->last_error);
		default_route(&r->req, &rt);
		src = "built-in default (after failure)";
	}
	printf("request: user=%s interactions=%u known=%d placement=%s n=%u recent=%u cart=%u purchased=%u\n",
	       r->user[0] ? r->user : "(anonymous)", r->req.interactions, r->req.known,
	       r->placement[0] ? r->placement : "-", r->req.n, r->req.n_recent, r->req.n_cart, r->req.n_purchased);
	printf("route (%s): policy=%s tier=%s sources=", src, rt.policy, lua_tier_names[rt.tier]);
	for (uint32_t i = 0; i < rt.n_sources; i++)
		printf("%s%s:%u", i ? "," : "", lua_source_names[rt.sources[i].source], rt.sources[i].n);
	printf("\n");

	uint32_t n = assemble(&rt, &r->req, c), n0 = n, n1;
	for (uint32_t i = 0; i < n; i++)
		c[i].orig = i;
	memcpy(start, c, n * sizeof(*c));
	rc = lua_host_run(h, LUA_HOOK_RULES, snap, &r->req, c, &n, r->req.n);
	if (rc && rc != -ENOENT)
		printf("rules: FAILED (%s): %s\n", strerror(-rc), lua_host_stats(h)->last_error);
	n1 = n;
	memcpy(after_rules, c, n * sizeof(*c));
	rc = lua_host_run(h, LUA_HOOK_RERANK, snap, &r->req, c, &n, r->req.n);
	if (rc && rc != -ENOENT)
		printf("rerank: FAILED (%s): %s\n", strerror(-rc), lua_host_stats(h)->last_error);
	/* lua_host_run tags positions afresh per call: map back by item. */
	printf("candidates: %u from the sources, %u after rules, %u after rerank (%u shown)\n\n", n0, n1, n,
	       MIN(n, r->req.n));
	printf("%4s  %-14s %-10s %9s  %-12s %9s %9s %9s  %s\n", "pos", "item", "category", "price", "source",
	       "score.in", "rules", "rerank", "reason");
	for (uint32_t i = 0; i < MIN(n, r->req.n); i++) {
		float s0 = 0, s1 = 0;
		for (uint32_t j = 0; j < n0; j++)
			if (start[j].item == c[i].item)
				s0 = start[j].score;
		for (uint32_t j = 0; j < n1; j++)
			if (after_rules[j].item == c[i].item)
				s1 = after_rules[j].score;
		struct str id = snap_item_id(snap, c[i].item);
		struct str cat = snap_strtab_get(&snap->category_names, snap->item_category[c[i].item]);
		char why[300];
		lua_host_reason_string(snap, &c[i], why, sizeof(why));
		printf("%4u  %-14.*s %-10.*s %9.2f  %-12s %9.4f %9.4f %9.4f  %s\n", i + 1, (int)id.len, id.p,
		       (int)cat.len, cat.p, (double)snap->item_price[c[i].item], lua_source_names[c[i].source],
		       (double)s0, (double)s1, (double)c[i].score, why[0] ? why : "-");
	}
	uint32_t shown = 0;
	for (uint32_t j = 0; j < n0 && shown < 10; j++) {
		if (!cand_has(after_rules, n1, start[j].item)) {
			struct str id = snap_item_id(snap, start[j].item);
			printf("%s%.*s", shown++ ? ", " : "\ndropped by rules: ", (int)id.len, id.p);
		}
	}
	if (shown)
		printf("%s\n", n0 - n1 > 10 ? ", ..." : "");
	return 0;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	if (argc < 3 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 3 ? stderr : stdout);
		return argc < 3 ? 2 : 0;
	}
	const char *cmd = argv[1], *plugins = argv[2], *fixtures = "tests/lua/fixtures", *snapshot = NULL;
	struct request r;
	request_init(&r);
	char recent[4096] = "", cart[4096] = "", purchased[4096] = "", item[256] = "";
	static const struct option opts[] = {
		{ "fixtures", required_argument, 0, 'f' }, { "snapshot", required_argument, 0, 's' },
		{ "lua", required_argument, 0, 'l' },      { "user", required_argument, 0, 'u' },
		{ "interactions", required_argument, 0, 'i' }, { "recent", required_argument, 0, 'r' },
		{ "cart", required_argument, 0, 'c' },     { "purchased", required_argument, 0, 'p' },
		{ "item", required_argument, 0, 'I' },     { "placement", required_argument, 0, 'P' },
		{ "device", required_argument, 0, 'd' },   { "region", required_argument, 0, 'R' },
		{ "n", required_argument, 0, 'n' },        { 0, 0, 0, 0 },
	};
	optind = 3;
	for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		switch (o) {
		case 'f': fixtures = optarg; break;
		case 's': snapshot = optarg; break;
		case 'l': lua_dir = optarg; break;
		case 'u': snprintf(r.user, sizeof(r.user), "%s", optarg); break;
		case 'i': r.req.interactions = (uint32_t)atoi(optarg); break;
		case 'r': snprintf(recent, sizeof(recent), "%s", optarg); break;
		case 'c': snprintf(cart, sizeof(cart), "%s", optarg); break;
		case 'p': snprintf(purchased, sizeof(purchased), "%s", optarg); break;
		case 'I': snprintf(item, sizeof(item), "%s", optarg); break;
		case 'P': snprintf(r.placement, sizeof(r.placement), "%s", optarg); break;
		case 'd': snprintf(r.device, sizeof(r.device), "%s", optarg); break;
		case 'R': snprintf(r.region, sizeof(r.region), "%s", optarg); break;
		case 'n': r.req.n = (uint32_t)MAX(1, atoi(optarg)); break;
		default: usage(stderr); return 2;
		}
	}
	if (!lua_dir)
		lua_dir = access("lua/recd_host.lua", R_OK) == 0 ? "lua" : "/usr/share/recd/lua";
	if (make_snapshot(snapshot))
		return 2;
	if (!(pw = pipe_worker_new())) {
		fprintf(stderr, "recd-policy: out of memory\n");
		return 2;
	}
	char err[512];
	int ret = 2;
	if (!strcmp(cmd, "check")) {
		if (lua_host_compile_check(plugins, lua_dir, NULL, snap, err, sizeof(err))) {
			printf("FAIL %s\n", err);
			ret = 1;
		} else {
			printf("OK %s: compiles and passes the pre-flight\n", plugins);
			ret = 0;
		}
		goto out;
	}
	struct lua_host *h;
	if (lua_host_create(&h, plugins, lua_dir, NULL, NULL, 1, err, sizeof(err))) {
		printf("FAIL %s\n", err);
		ret = 1;
		goto out;
	}
	if (!strcmp(cmd, "test")) {
		ret = cmd_test(h, fixtures);
	} else if (!strcmp(cmd, "explain")) {
		if ((recent[0] && parse_ids(recent, r.recent, &r.req.n_recent)) ||
		    (cart[0] && parse_ids(cart, r.cart, &r.req.n_cart)) ||
		    (purchased[0] && parse_ids(purchased, r.purchased, &r.req.n_purchased)) ||
		    (item[0] && item_index(item, &r.req.context_item)))
			ret = 2;
		else {
			request_finish(&r);
			ret = cmd_explain(h, &r);
		}
	} else {
		usage(stderr);
	}
	lua_host_destroy(h);
out:
	snap_close(snap);
	return ret;
}
