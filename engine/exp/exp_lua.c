/* exp_lua.c: plugins/experiments.lua → struct exp_set (see exp_lua.h). */
#include "exp/exp_lua.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define EXP_LUA_HOOK_COUNT 10000
#define EXP_LUA_MAX_HOOKS 1000        /* 10M instructions: a data file needs a tiny fraction */

extern const char *const lua_source_names[];

struct loader {
	lua_State *L;
	const char *dir;              /* where the set's files are (staged) */
	const char *file;             /* as shown in messages */
	char *err;
	size_t errlen;
	char where[EXP_NAME_LEN + 32];
	exp_model_lookup models;
	void *models_ctx;
	int hooks;
};

static int fail(struct loader *ld, const char *fmt, ...)
{
	char msg[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(ld->err, ld->errlen, "%s: %s%s", ld->file, ld->where, msg);
	return -EINVAL;
}

static struct loader *hook_owner;     /* control thread only: one load at a time */

static void count_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	if (hook_owner && ++hook_owner->hooks > EXP_LUA_MAX_HOOKS)
		luaL_error(L, "experiments.lua runs too long (it should only return a table)");
}

static bool valid_name(const char *s, size_t n)
{
	if (!n || n >= EXP_NAME_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* Field `key` of the table at the top: pushed; its Lua type returned. */
static int field(struct loader *ld, const char *key)
{
	lua_getfield(ld->L, -1, key);
	return lua_type(ld->L, -1);
}

/* Optional number field in [lo, hi]; absent: def. */
static int num_field(struct loader *ld, const char *key, double lo, double hi, double def, double *out)
{
	int t = field(ld, key);
	*out = def;
	if (t == LUA_TNUMBER)
		*out = lua_tonumber(ld->L, -1);
	lua_pop(ld->L, 1);
	if (t != LUA_TNIL && t != LUA_TNUMBER)
		return fail(ld, "%s must be a number", key);
	if (!(*out >= lo && *out <= hi))
		return fail(ld, "%s must be between %g and %g (got %g)", key, lo, hi, *out);
	return 0;
}

/* Optional string field (name rules unless any); absent: "". */
static int str_field(struct loader *ld, const char *key, char *dst, size_t cap, bool name_rules)
{
	int t = field(ld, key);
	dst[0] = 0;
	int rc = 0;
	if (t == LUA_TSTRING) {
		size_t n;
		const char *s = lua_tolstring(ld->L, -1, &n);
		if (name_rules ? !valid_name(s, n) : (n == 0 || n >= cap))
			rc = name_rules ? fail(ld, "%s must be 1..%u characters of [A-Za-z0-9_.-]", key, EXP_NAME_LEN - 1)
					: fail(ld, "%s must be 1..%zu bytes", key, cap - 1);
		else
			memcpy(dst, s, n + 1);
	} else if (t != LUA_TNIL) {
		rc = fail(ld, "%s must be a string", key);
	}
	lua_pop(ld->L, 1);
	return rc;
}

static int source_code(const char *name)
{
	for (int i = 1; lua_source_names[i]; i++)
		if (!strcmp(lua_source_names[i], name))
			return i;
	return -1;
}

/* variant.sources = { popular = 0.5, trending = 0, ... } */
static int load_sources(struct loader *ld, struct exp_variant *v)
{
	int t = field(ld, "sources");
	int rc = 0;
	if (t == LUA_TTABLE) {
		lua_pushnil(ld->L);
		while (!rc && lua_next(ld->L, -2)) {
			const char *name = lua_type(ld->L, -2) == LUA_TSTRING ? lua_tostring(ld->L, -2) : NULL;
			int code = name ? source_code(name) : -1;
			double w = lua_type(ld->L, -1) == LUA_TNUMBER ? lua_tonumber(ld->L, -1) : -1;
			if (code < 0)
				rc = fail(ld, "sources: unknown source '%s' (popular, trending, similar, content, "
					  "personalized, session)", name ? name : "?");
			else if (!(w >= 0 && w <= 1))
				rc = fail(ld, "sources.%s must be a weight in [0, 1] (0 drops the source)", name);
			else if (v->n_sources == LUA_ROUTE_MAX_SOURCES)
				rc = fail(ld, "sources: at most %u", LUA_ROUTE_MAX_SOURCES);
			else
				v->sources[v->n_sources++] = (struct exp_source_weight){ (uint8_t)code, (float)w };
			lua_pop(ld->L, 1);
		}
		if (rc)
			lua_pop(ld->L, 1);   /* the key lua_next left */
	} else if (t != LUA_TNIL) {
		rc = fail(ld, "sources must be a table { <source> = <weight>, ... }");
	}
	lua_pop(ld->L, 1);
	return rc;
}

static bool file_in_set(const struct loader *ld, const char *name)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s.lua", ld->dir, name);
	return access(path, R_OK) == 0;
}

/* variant.hooks = { rerank = "rerank_b" }: rerank_b.lua in the set stands
 * in for rerank.lua for the variant's shoppers (only a hook the set has). */
static int load_hooks(struct loader *ld, struct exp_variant *v)
{
	static const char *const names[LUA_HOOK_SLOTS] = { "route", "rules", "rerank" };
	int t = field(ld, "hooks");
	int rc = 0;
	if (t == LUA_TTABLE) {
		lua_pushnil(ld->L);
		while (!rc && lua_next(ld->L, -2)) {
			const char *hook = lua_type(ld->L, -2) == LUA_TSTRING ? lua_tostring(ld->L, -2) : "?";
			size_t n = 0;
			const char *file = lua_type(ld->L, -1) == LUA_TSTRING ? lua_tolstring(ld->L, -1, &n) : NULL;
			int h = -1;
			for (int i = 0; i < (int)LUA_HOOK_SLOTS; i++)
				if (!strcmp(hook, names[i]))
					h = i;
			if (h < 0)
				rc = fail(ld, "hooks: unknown hook '%s' (route, rules, rerank)", hook);
			else if (!file || !valid_name(file, n) || strchr(file, '.'))
				rc = fail(ld, "hooks.%s must name a file of the set without .lua, e.g. \"%s_b\"", hook, hook);
			else if (!file_in_set(ld, names[h]))
				rc = fail(ld, "hooks.%s: the set has no %s.lua for it to replace", hook, names[h]);
			else if (!file_in_set(ld, file))
				rc = fail(ld, "hooks.%s: no %s.lua in the plugins directory", hook, file);
			else
				memcpy(v->hooks[h], file, n + 1);
			lua_pop(ld->L, 1);
		}
		if (rc)
			lua_pop(ld->L, 1);   /* the key lua_next left */
	} else if (t != LUA_TNIL) {
		rc = fail(ld, "hooks must be a table { rerank = \"rerank_b\", ... }");
	}
	lua_pop(ld->L, 1);
	return rc;
}

static int load_variant(struct loader *ld, struct exp_experiment *e, struct exp_variant *v, int index)
{
	if (lua_type(ld->L, -1) != LUA_TTABLE)
		return fail(ld, "variants[%d] must be a table { name = ..., weight = ... }", index);
	int rc = str_field(ld, "name", v->name, sizeof(v->name), true);
	if (rc)
		return rc;
	if (!v->name[0])
		return fail(ld, "variants[%d] needs a name", index);
	if (!strcmp(v->name, "holdout"))
		return fail(ld, "variants[%d]: 'holdout' is reserved (use holdout = <share>)", index);
	for (uint32_t i = 0; i < e->n_variants; i++)
		if (!strcmp(e->v[i].name, v->name))
			return fail(ld, "variant '%s' is declared twice", v->name);
	char at[EXP_NAME_LEN + 32];
	snprintf(at, sizeof(at), "%s", ld->where);
	snprintf(ld->where + strlen(ld->where), sizeof(ld->where) - strlen(ld->where), "variant '%s': ", v->name);
	int t = field(ld, "shadow");
	v->shadow = t == LUA_TBOOLEAN && lua_toboolean(ld->L, -1);
	lua_pop(ld->L, 1);
	double w = 0;
	if (t != LUA_TNIL && t != LUA_TBOOLEAN)
		rc = fail(ld, "shadow must be true or false");
	if (!rc)
		rc = num_field(ld, "weight", 0, 1e6, v->shadow ? 0 : 1, &w);
	if (!rc && v->shadow && w > 0)
		rc = fail(ld, "a shadow variant is never served: it takes no weight");
	v->weight = (uint32_t)llround(w * 100);   /* weights to 1/100 */
	if (!rc)
		rc = str_field(ld, "model", v->model, sizeof(v->model), true);
	v->model_slot = 0;
	if (!rc && v->model[0]) {
		v->model_slot = ld->models ? ld->models(ld->models_ctx, v->model) : -1;
		if (v->model_slot < 0)
			rc = fail(ld, "model '%s' is not configured (see `models` in recd.conf)", v->model);
	}
	if (!rc) {
		t = field(ld, "params");
		v->has_params = t == LUA_TTABLE;
		lua_pop(ld->L, 1);
		if (t != LUA_TNIL && t != LUA_TTABLE)
			rc = fail(ld, "params must be a table of settings sections, e.g. { rerank = { ... } }");
	}
	if (!rc)
		rc = load_sources(ld, v);
	if (!rc)
		rc = load_hooks(ld, v);
	if (!rc) {
		v->slot = exp_slot_get(e->name, v->name);
		if (v->slot == EXP_NO_SLOT)
			rc = fail(ld, "too many experiment variants in this process (%u)", EXP_MAX_SLOTS);
	}
	if (!rc)
		snprintf(ld->where, sizeof(ld->where), "%s", at);
	return rc;
}

static int load_experiment(struct loader *ld, struct exp_set *set, struct exp_experiment *e, int index)
{
	lua_State *L = ld->L;
	snprintf(ld->where, sizeof(ld->where), "experiment %d: ", index);
	if (lua_type(L, -1) != LUA_TTABLE)
		return fail(ld, "must be a table { name = ..., variants = { ... } }");
	int rc = str_field(ld, "name", e->name, sizeof(e->name), true);
	if (rc)
		return rc;
	if (!e->name[0])
		return fail(ld, "needs a name");
	for (uint32_t i = 0; i < set->n; i++)
		if (!strcmp(set->e[i].name, e->name))
			return fail(ld, "'%s' is declared twice", e->name);
	snprintf(ld->where, sizeof(ld->where), "experiment '%s': ", e->name);
	if ((rc = str_field(ld, "salt", e->salt, sizeof(e->salt), false)))
		return rc;
	if (!e->salt[0])
		memcpy(e->salt, e->name, strlen(e->name) + 1);   /* both fit: names are shorter */
	e->salt_len = (uint32_t)strlen(e->salt);
	double exposure, holdout, floor;
	if ((rc = num_field(ld, "exposure", 0, 1, 1, &exposure)) || (rc = num_field(ld, "holdout", 0, 0.5, 0, &holdout)))
		return rc;
	/* The holdout is carved out first; exposure is a share of the rest. */
	e->holdout_bp = (uint32_t)llround(holdout * EXP_BUCKETS);
	e->exposure = exposure;
	e->exposure_bp = (uint32_t)llround(exposure * (EXP_BUCKETS - e->holdout_bp));
	if ((rc = num_field(ld, "min_detectable_effect", 1e-4, 100, 0.05, &e->min_detectable_effect)) ||
	    (rc = num_field(ld, "alpha", 1e-6, 0.5, 0.05, &e->alpha)) ||
	    (rc = num_field(ld, "power", 0.5, 0.9999, 0.8, &e->power)))
		return rc;
	char alloc[16];
	if ((rc = str_field(ld, "allocation", alloc, sizeof(alloc), true)))
		return rc;
	if (alloc[0] && strcmp(alloc, "fixed") && strcmp(alloc, "thompson"))
		return fail(ld, "allocation must be \"fixed\" or \"thompson\"");
	e->thompson = !strcmp(alloc, "thompson");
	if ((rc = num_field(ld, "floor", 0, 0.5, 0.1, &floor)))
		return rc;
	e->thompson_floor = floor;

	/* placements = { "home", "pdp" } */
	int t = field(ld, "placements");
	if (t == LUA_TTABLE) {
		int np = (int)lua_objlen(L, -1);
		for (int i = 1; i <= np && !rc; i++) {
			lua_rawgeti(L, -1, i);
			size_t n;
			const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
			if (!p || !valid_name(p, n))
				rc = fail(ld, "placements[%d] must be a placement name", i);
			else if (e->n_placements == EXP_MAX_PLACEMENTS)
				rc = fail(ld, "at most %u placements", EXP_MAX_PLACEMENTS);
			else
				memcpy(e->placements[e->n_placements++], p, n + 1);
			lua_pop(L, 1);
		}
	} else if (t != LUA_TNIL) {
		rc = fail(ld, "placements must be a list of names");
	}
	lua_pop(L, 1);
	if (rc)
		return rc;

	/* guardrails = { error_rate = 0.01, fallback_rate = 0.05, p99_ratio = 2, min_requests = 200 } */
	t = field(ld, "guardrails");
	double minreq = 200;
	e->guard = (struct exp_guardrail){ 0.01, 0.05, 0, 200 };
	if (t == LUA_TTABLE) {
		if (!(rc = num_field(ld, "error_rate", 0, 1, 0.01, &e->guard.error_rate)) &&
		    !(rc = num_field(ld, "fallback_rate", 0, 1, 0.05, &e->guard.fallback_rate)) &&
		    !(rc = num_field(ld, "p99_ratio", 0, 100, 0, &e->guard.p99_ratio)))
			rc = num_field(ld, "min_requests", 1, 1e12, 200, &minreq);
		e->guard.min_requests = (uint64_t)minreq;
	} else if (t != LUA_TNIL) {
		rc = fail(ld, "guardrails must be a table");
	}
	lua_pop(L, 1);
	if (rc)
		return rc;

	t = field(ld, "variants");
	int nv = t == LUA_TTABLE ? (int)lua_objlen(L, -1) : 0;
	if (nv < 2 || nv > (int)EXP_MAX_VARIANTS) {
		lua_pop(L, 1);
		return fail(ld, "variants must be a list of 2..%u variants", EXP_MAX_VARIANTS);
	}
	for (int i = 1; i <= nv && !rc; i++) {
		lua_rawgeti(L, -1, i);
		struct exp_variant *v = &e->v[e->n_variants];
		rc = load_variant(ld, e, v, i);
		lua_pop(L, 1);
		if (rc)
			break;
		v->lua_index = set->n_lua++;
		e->n_variants++;
		if (v->shadow)
			e->n_shadow++;
		else
			e->total_weight += v->weight;
	}
	lua_pop(L, 1);
	if (rc)
		return rc;
	e->control = UINT32_MAX;
	for (uint32_t i = 0; i < e->n_variants; i++)
		if (!strcmp(e->v[i].name, "control"))
			e->control = i;
	if (e->control == UINT32_MAX)
		e->control = 0;
	if (e->v[e->control].shadow)
		return fail(ld, "the control variant ('%s') cannot be a shadow", e->v[e->control].name);
	if (!e->total_weight)
		return fail(ld, "the served variants' weights add up to 0");
	if (e->holdout_bp) {
		e->holdout_slot = exp_slot_get(e->name, "holdout");
		if (e->holdout_slot == EXP_NO_SLOT)
			return fail(ld, "too many experiment variants in this process (%u)", EXP_MAX_SLOTS);
	} else {
		e->holdout_slot = EXP_NO_SLOT;
	}
	return 0;
}

/* Runs in protected mode: the whole load, so a Lua error anywhere
 * (memory, the budget) comes back as a message. */
static int load_all(lua_State *L)
{
	struct loader *ld = lua_touserdata(L, 1);
	struct exp_set *set = lua_touserdata(L, 2);
	const char *path = lua_tostring(L, 3);
	lua_settop(L, 0);
	lua_pushcfunction(L, luaopen_base);
	lua_call(L, 0, 0);
	lua_pushcfunction(L, luaopen_string);
	lua_call(L, 0, 0);
	lua_pushcfunction(L, luaopen_math);
	lua_call(L, 0, 0);
	lua_pushcfunction(L, luaopen_table);
	lua_call(L, 0, 0);
	lua_settop(L, 0);
	if (luaL_loadfile(L, path))
		return lua_error(L);
	/* A data file: its own environment, a few pure functions in it. */
	lua_newtable(L);
	static const char *const globals[] = { "string", "math", "table", "tonumber", "tostring", "ipairs",
					       "pairs", "type", "select", "unpack" };
	for (size_t i = 0; i < ARRAY_SIZE(globals); i++) {
		lua_getglobal(L, globals[i]);
		lua_setfield(L, -2, globals[i]);
	}
	lua_setfenv(L, -2);
	lua_call(L, 0, 1);
	if (lua_type(L, -1) != LUA_TTABLE) {
		fail(ld, "must return a list of experiments");
		return 0;
	}
	lua_getfield(L, -1, "experiments");
	if (lua_type(L, -1) != LUA_TTABLE)
		lua_pop(L, 1);
	int n = (int)lua_objlen(L, -1);
	if (n > (int)EXP_MAX_EXPERIMENTS) {
		fail(ld, "at most %u experiments", EXP_MAX_EXPERIMENTS);
		return 0;
	}
	for (int i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		int rc = load_experiment(ld, set, &set->e[set->n], i);
		lua_pop(L, 1);
		if (rc)
			return 0;
		set->n++;
	}
	ld->where[0] = 0;
	ld->err[0] = 0;
	return 0;
}

int exp_lua_load(const char *dir, const char *display_dir, exp_model_lookup models, void *models_ctx,
		 struct exp_set **out, char *err, size_t errlen)
{
	char path[PATH_MAX + 32], shown[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/experiments.lua", dir);
	snprintf(shown, sizeof(shown), "%s/experiments.lua", display_dir ? display_dir : dir);
	*out = NULL;
	struct exp_set *set = calloc(1, sizeof(*set));
	if (!set) {
		snprintf(err, errlen, "%s: out of memory", shown);
		return -ENOMEM;
	}
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (errno == ENOENT) {
			*out = set;   /* no experiments */
			return 0;
		}
		snprintf(err, errlen, "%s: %s", shown, strerror(errno));
		free(set);
		return -EINVAL;
	}
	int c = fgetc(f);
	fclose(f);
	if (c == 0x1b) {   /* LUA_SIGNATURE */
		snprintf(err, errlen, "%s: bytecode is not accepted", shown);
		free(set);
		return -EINVAL;
	}
	struct loader ld = { .dir = dir, .file = shown, .err = err, .errlen = errlen, .models = models, .models_ctx = models_ctx };
	err[0] = 0;
	lua_State *L = luaL_newstate();
	if (!L) {
		snprintf(err, errlen, "%s: cannot create a Lua state", shown);
		free(set);
		return -ENOMEM;
	}
	ld.L = L;
	hook_owner = &ld;
	lua_sethook(L, count_hook, LUA_MASKCOUNT, EXP_LUA_HOOK_COUNT);
	lua_pushcfunction(L, load_all);
	lua_pushlightuserdata(L, &ld);
	lua_pushlightuserdata(L, set);
	lua_pushstring(L, path);
	if (lua_pcall(L, 3, 0, 0)) {
		const char *m = lua_tostring(L, -1);
		/* Lua names the file by the path it loaded: show the operator's. */
		const char *rest = m && !strncmp(m, path, strlen(path)) ? m + strlen(path) : NULL;
		if (rest)
			snprintf(err, errlen, "%s%s", shown, rest);
		else
			snprintf(err, errlen, "%s: %s", shown, m ? m : "error");
	}
	hook_owner = NULL;
	lua_close(L);
	if (err[0]) {
		free(set);
		return -EINVAL;
	}
	*out = set;
	return 0;
}
