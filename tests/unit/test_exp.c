/* test_exp.c: experiment assignment and experiments.lua.
 *  - the documented formula on published vectors (docs/policies.md; the
 *    same vectors recomputed with python3-xxhash);
 *  - 1M synthetic shoppers split within ±0.5% of the weights, holdout
 *    and exposure included;
 *  - ramping exposure moves only the shoppers it adds;
 *  - guardrail switch-off and adaptive weights as the workers see them;
 *  - placements, first-declared-wins, route source overrides;
 *  - experiments.lua: a good file, and each kind of mistake refused with
 *    a message naming the file and the problem.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ck_pr.h>
#include "exp/exp.h"
#include "exp/exp_lua.h"
#include "pipe/pipe.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static char dir[] = "/tmp/recd-test-exp-XXXXXX";

static void write_file(const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/experiments.lua", dir);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

static int models(void *ctx, const char *name)
{
	(void)ctx;
	return !strcmp(name, "challenger") ? 1 : !strcmp(name, "default") ? 0 : -1;
}

static struct exp_set *load(const char *text, char *err, size_t len)
{
	write_file(text);
	struct exp_set *s = NULL;
	err[0] = 0;
	if (exp_lua_load(dir, "plugins", models, NULL, &s, err, len))
		return NULL;
	return s;
}

static void test_vectors(void)
{
	/* bucket, exposure bucket: docs/policies.md, "Assignment". */
	static const struct { const char *salt, *user; uint32_t bucket, exposure; } v[] = {
		{ "rerank_diversity", "u1", 4124, 1963 },
		{ "rerank_diversity", "u2", 1252, 7379 },
		{ "rerank_diversity", "shopper-42", 959, 2862 },
		{ "checkout-2026", "u1", 4508, 5294 },
		{ "exp1", "u1", 1801, 422 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		CHECK(exp_bucket(v[i].salt, strlen(v[i].salt), "", v[i].user, strlen(v[i].user)) == v[i].bucket);
		CHECK(exp_bucket(v[i].salt, strlen(v[i].salt), "exposure:", v[i].user, strlen(v[i].user)) ==
		      v[i].exposure);
	}
}

#define N_USERS 1000000

static void test_split(void)
{
	char err[512];
	struct exp_set *s = load("return { { name = 'split', holdout = 0.1, variants = {"
				 " { name = 'control', weight = 50 }, { name = 'b', weight = 30 },"
				 " { name = 'c', weight = 20 }, { name = 's', shadow = true } } } }",
				 err, sizeof(err));
	CHECK(s != NULL);
	if (!s) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	const struct exp_experiment *e = &s->e[0];
	CHECK(e->n_variants == 4 && e->control == 0 && e->n_shadow == 1 && e->holdout_slot != EXP_NO_SLOT);
	uint64_t count[5] = { 0 }, none = 0;
	char id[32];
	for (int u = 0; u < N_USERS; u++) {
		int n = snprintf(id, sizeof(id), "user-%d", u);
		struct exp_pick p;
		if (!exp_assign(s, id, (size_t)n, NULL, 0, &p)) {
			none++;
			continue;
		}
		CHECK(p.variant != 3);   /* the shadow is never served */
		count[p.flags & EXP_PICK_HOLDOUT ? 4 : p.variant]++;
	}
	CHECK(none == 0);   /* exposure 1: everyone is in */
	double share[] = { 0.9 * 0.5, 0.9 * 0.3, 0.9 * 0.2, 0, 0.1 };
	for (int i = 0; i < 5; i++) {
		double got = (double)count[i] / N_USERS;
		if (!(got > share[i] - 0.005 && got < share[i] + 0.005))
			fprintf(stderr, "variant %d: %.4f, want %.4f\n", i, got, share[i]);
		CHECK(got > share[i] - 0.005 && got < share[i] + 0.005);
	}
	free(s);
}

/* Raising exposure from 10% to 30%: nobody leaves, nobody changes
 * variant; about 20% join. Lowering it back: exactly the joiners leave. */
static void test_ramp(void)
{
	char err[512];
	struct exp_set *lo = load("return { { name = 'ramp', exposure = 0.1, variants = {"
				  " { name = 'control' }, { name = 'b' } } } }", err, sizeof(err));
	struct exp_set *hi = load("return { { name = 'ramp', exposure = 0.3, variants = {"
				  " { name = 'control' }, { name = 'b' } } } }", err, sizeof(err));
	CHECK(lo && hi);
	if (!lo || !hi)
		return;
	uint64_t in_lo = 0, in_hi = 0, moved = 0, left = 0;
	char id[32];
	for (int u = 0; u < N_USERS; u++) {
		int n = snprintf(id, sizeof(id), "user-%d", u);
		struct exp_pick a, b;
		bool was = exp_assign(lo, id, (size_t)n, NULL, 0, &a), is = exp_assign(hi, id, (size_t)n, NULL, 0, &b);
		in_lo += was;
		in_hi += is;
		if (was && !is)
			left++;
		if (was && is && a.variant != b.variant)
			moved++;
	}
	CHECK(left == 0 && moved == 0);
	double joined = (double)(in_hi - in_lo) / N_USERS;
	CHECK(joined > 0.195 && joined < 0.205);
	CHECK((double)in_lo / N_USERS > 0.095 && (double)in_lo / N_USERS < 0.105);
	free(lo);
	free(hi);
}

static void test_runtime(void)
{
	char err[512];
	struct exp_set *s = load("return { { name = 'rt', placements = { 'home' }, variants = {"
				 " { name = 'control', weight = 1 }, { name = 'b', weight = 1 } } },"
				 " { name = 'second', variants = { { name = 'x' }, { name = 'y' } } } }",
				 err, sizeof(err));
	CHECK(s && s->n == 2 && s->n_lua == 4);
	if (!s)
		return;
	const struct exp_experiment *e = &s->e[0];
	CHECK(e->v[0].lua_index == 0 && e->v[1].lua_index == 1 && s->e[1].v[1].lua_index == 3);
	/* Placements: 'home' gets the first experiment, others the second. */
	struct exp_pick p;
	CHECK(exp_assign(s, "u1", 2, "home", 4, &p) && p.experiment == 0);
	CHECK(exp_assign(s, "u1", 2, "pdp", 3, &p) && p.experiment == 1);
	CHECK(exp_assign(s, "u1", 2, NULL, 0, &p) && p.experiment == 1);
	CHECK(!exp_assign(s, NULL, 0, "home", 4, &p));   /* anonymous: no experiment */
	/* Find a shopper in b; switch b off: control is served, flagged. */
	char id[32];
	int n = 0;
	for (int u = 0; u < 1000; u++) {
		n = snprintf(id, sizeof(id), "g-%d", u);
		if (exp_assign(s, id, (size_t)n, "home", 4, &p) && p.variant == 1)
			break;
	}
	CHECK(p.variant == 1 && p.slot == e->v[1].slot && !p.flags);
	ck_pr_store_32(&exp_slots[e->v[1].slot].disabled, 1);
	CHECK(exp_assign(s, id, (size_t)n, "home", 4, &p) && p.variant == 0 && p.assigned == 1 &&
	      p.flags == EXP_PICK_GUARDED && p.slot == e->v[0].slot);
	CHECK(!strcmp(exp_pick_variant_name(s, &p), "control"));
	ck_pr_store_32(&exp_slots[e->v[1].slot].disabled, 0);
	free(s);

	/* Adaptive weights: 90% to b once the ledger says so. */
	s = load("return { { name = 'ts', allocation = 'thompson', floor = 0.05, variants = {"
		 " { name = 'control' }, { name = 'b' } } } }", err, sizeof(err));
	CHECK(s && s->e[0].thompson && s->e[0].thompson_floor == 0.05);
	if (!s)
		return;
	ck_pr_store_32(&exp_slots[s->e[0].v[0].slot].alloc_bp, 1000);
	ck_pr_store_32(&exp_slots[s->e[0].v[1].slot].alloc_bp, 9000);
	uint64_t b = 0;
	for (int u = 0; u < 100000; u++) {
		n = snprintf(id, sizeof(id), "t-%d", u);
		CHECK(exp_assign(s, id, (size_t)n, NULL, 0, &p));
		b += p.variant == 1;
	}
	CHECK(b > 89000 && b < 91000);
	free(s);
}

static void test_sources(void)
{
	struct lua_route rt = { .n_sources = 3, .sources = { { LUA_SRC_PERSONALIZED, 40, 1 }, { LUA_SRC_SESSION, 40, 1 },
							     { LUA_SRC_POPULAR, 10, 0.3f } } };
	struct exp_variant v = { .n_sources = 3,
				 .sources = { { LUA_SRC_SESSION, 0 }, { LUA_SRC_POPULAR, 0.9f }, { LUA_SRC_TRENDING, 0.5f } } };
	pipe_apply_sources(&rt, &v);
	CHECK(rt.n_sources == 3);
	CHECK(rt.sources[0].source == LUA_SRC_PERSONALIZED && rt.sources[0].weight == 1);
	CHECK(rt.sources[1].source == LUA_SRC_POPULAR && rt.sources[1].weight == 0.9f && rt.sources[1].n == 10);
	CHECK(rt.sources[2].source == LUA_SRC_TRENDING && rt.sources[2].n == 40 && rt.sources[2].weight == 0.5f);
	/* The last source stays. */
	struct lua_route one = { .n_sources = 1, .sources = { { LUA_SRC_POPULAR, 10, 1 } } };
	struct exp_variant drop = { .n_sources = 1, .sources = { { LUA_SRC_POPULAR, 0 } } };
	pipe_apply_sources(&one, &drop);
	CHECK(one.n_sources == 1);
}

static void refused(const char *text, const char *want)
{
	char err[512];
	struct exp_set *s = load(text, err, sizeof(err));
	CHECK(s == NULL);
	free(s);
	bool ok = strstr(err, "plugins/experiments.lua") && strstr(err, want);
	if (!ok)
		fprintf(stderr, "want '%s' in: %s\n", want, err);
	CHECK(ok);
}

static void test_loader(void)
{
	char err[512];
	struct exp_set *s = load("return { experiments = { { name = 'm', salt = 'salt-1', exposure = 0.5,"
				 " min_detectable_effect = 0.1, guardrails = { fallback_rate = 0.2, min_requests = 10 },"
				 " variants = { { name = 'a' }, { name = 'control', model = 'challenger',"
				 " sources = { trending = 1 } } } } } }",
				 err, sizeof(err));
	CHECK(s && s->n == 1);
	if (s) {
		const struct exp_experiment *e = &s->e[0];
		CHECK(!strcmp(e->salt, "salt-1") && e->salt_len == 6 && e->exposure_bp == 5000 && e->control == 1);
		CHECK(e->v[1].model_slot == 1 && e->v[1].n_sources == 1 && e->v[1].sources[0].source == LUA_SRC_TRENDING);
		CHECK(e->guard.fallback_rate == 0.2 && e->guard.min_requests == 10 && e->min_detectable_effect == 0.1);
		free(s);
	}
	/* No file: an empty set. */
	char path[256];
	snprintf(path, sizeof(path), "%s/experiments.lua", dir);
	unlink(path);
	s = NULL;
	CHECK(exp_lua_load(dir, "plugins", models, NULL, &s, err, sizeof(err)) == 0 && s && s->n == 0);
	free(s);

	refused("return 42", "must return a list of experiments");
	refused("return { { variants = {} } }", "needs a name");
	refused("return { { name = 'x', variants = { { name = 'a' } } } }", "variants must be a list of 2..");
	refused("return { { name = 'x', variants = { { name = 'a' }, { name = 'a' } } } }", "declared twice");
	refused("return { { name = 'x', exposure = 2, variants = { { name = 'a' }, { name = 'b' } } } }",
		"exposure must be between 0 and 1");
	refused("return { { name = 'x', variants = { { name = 'a' }, { name = 'b', sources = { foo = 1 } } } } }",
		"unknown source 'foo'");
	refused("return { { name = 'x', variants = { { name = 'a' }, { name = 'b', shadow = true, weight = 5 } } } }",
		"takes no weight");
	refused("return { { name = 'x', variants = { { name = 'a' }, { name = 'b', model = 'nope' } } } }",
		"model 'nope' is not configured");
	refused("return { { name = 'x', variants = { { name = 'control', shadow = true }, { name = 'b' } } } }",
		"cannot be a shadow");
	refused("return { { name = 'x', allocation = 'greedy', variants = { { name = 'a' }, { name = 'b' } } } }",
		"allocation must be");
	refused("return { { name = 'bad name!', variants = { { name = 'a' }, { name = 'b' } } } }", "name must be");
	refused("return { { name = 'x', variants = { { name = 'a' }, { name = 'b', hooks = { score = 'x' } } } } }",
		"unknown hook 'score'");
	refused("return { { name = 'x', variants = { { name = 'a' }, { name = 'b', hooks = { rerank = 'nope' } } } } }",
		"the set has no rerank.lua");   /* the test dir has no rerank.lua at all */
	/* With the set's rerank.lua and a variant's rerank_b.lua present. */
	char f1[256], f2[256];
	snprintf(f1, sizeof(f1), "%s/rerank.lua", dir);
	snprintf(f2, sizeof(f2), "%s/rerank_b.lua", dir);
	fclose(fopen(f1, "w"));
	fclose(fopen(f2, "w"));
	s = load("return { { name = 'h', variants = { { name = 'a' }, { name = 'b', hooks = { rerank = 'rerank_b' } } } } }",
		 err, sizeof(err));
	CHECK(s && !strcmp(s->e[0].v[1].hooks[2], "rerank_b") && !s->e[0].v[1].hooks[0][0] && !s->e[0].v[0].hooks[2][0]);
	free(s);
	refused("return { { name = 'x', variants = { { name = 'a' }, { name = 'b', hooks = { rerank = 'rerank_c' } } } } }",
		"no rerank_c.lua in the plugins directory");
	refused("return { { name = 'x', variants = { { name = 'a' }, { name = 'b', hooks = { rerank = '../x' } } } } }",
		"hooks.rerank must name a file");
	unlink(f1);
	unlink(f2);
	refused("while true do end", "runs too long");
	refused("return {", "plugins/experiments.lua:1:");
	refused("os.exit(1)", "attempt to index");   /* no os in a data file */
}

static void test_publish(void)
{
	struct exp_set *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b)), *c = calloc(1, sizeof(*c));
	a->generation = 1;
	b->generation = 2;
	c->generation = 3;
	CHECK(exp_set_publish(a) == NULL);
	CHECK(exp_set_for(1) == a && exp_set_for(2) == NULL);
	CHECK(exp_set_publish(b) == NULL);
	CHECK(exp_set_for(2) == b && exp_set_for(1) == a);   /* a worker one turn behind */
	CHECK(exp_set_publish(c) == a);                      /* a is unreachable now */
	CHECK(exp_set_for(3) == c && exp_set_for(2) == b && exp_set_for(1) == NULL);
	free(a);
	for (struct exp_set *s = exp_set_take_all(), *next; s; s = next) {
		next = s->prev;
		free(s);
	}
	CHECK(exp_set_current() == NULL);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	test_vectors();
	test_split();
	test_ramp();
	test_runtime();
	test_sources();
	test_loader();
	test_publish();
	char path[256];
	snprintf(path, sizeof(path), "%s/experiments.lua", dir);
	unlink(path);
	rmdir(dir);
	if (failures)
		fprintf(stderr, "test_exp: %d failures\n", failures);
	return failures ? 1 : 0;
}
