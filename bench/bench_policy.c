/* bench_policy.c: cost of the Lua stage per request — rules + rerank of
 * the default policies (plugins/) on 200 candidates, and route() alone —
 * one call at a time on one thread, over a generated catalogue.
 *
 *   bench_policy [--calls N] [--plugins DIR] [--lua DIR]
 *
 * Run from the source root. Reports p50/p90/p99/max in microseconds; the
 * target for rules + rerank is p99 <= 20 us.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "gen/gen.h"
#include "lua/lua_host.h"
#include "snap/snap.h"
#include "snap/snapb.h"

#define N_CANDS 200

static void report(const char *what, uint64_t *ns, size_t n)
{
	qsort(ns, n, sizeof(*ns), cmp_u64);
#define PCT(p) ((double)ns[(size_t)((p) / 100.0 * (double)(n - 1) + 0.5)] / 1000.0)
	printf("%-14s calls=%zu p50=%.2fus p90=%.2fus p99=%.2fus max=%.2fus\n", what, n, PCT(50), PCT(90), PCT(99),
	       (double)ns[n - 1] / 1000.0);
#undef PCT
}

int main(int argc, char **argv)
{
	size_t calls = 20000;
	const char *plugins = "plugins", *lua = "lua";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--calls"))
			calls = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--plugins"))
			plugins = argv[i + 1];
		else if (!strcmp(argv[i], "--lua"))
			lua = argv[i + 1];
	}
	char err[512], dir[] = "/tmp/bench_policy.XXXXXX", path[64];
	struct gen_params gp = { .seed = 3, .n_items = 20000, .n_users = 1000, .dim = 32, .n_categories = 100 };
	struct gen_data d;
	struct snapb_input in;
	struct snap *s;
	if (gen_generate(&gp, &d, err, sizeof(err)) || !mkdtemp(dir)) {
		fprintf(stderr, "bench_policy: %s\n", err);
		return 1;
	}
	gen_snapb_input(&d, &in);
	snprintf(path, sizeof(path), "%s/snap", dir);
	if (snapb_write(&in, path, err, sizeof(err)) || snap_open(path, &s, err, sizeof(err))) {
		fprintf(stderr, "bench_policy: %s\n", err);
		return 1;
	}
	unlink(path);
	rmdir(dir);
	gen_free(&d);

	struct lua_host *h;
	if (lua_host_create(&h, plugins, lua, NULL, NULL, 1, err, sizeof(err))) {
		fprintf(stderr, "bench_policy: %s\n", err);
		return 1;
	}
	uint32_t recent[10], purchased[2] = { 7, 11 }, cart[1] = { 13 };
	for (int i = 0; i < 10; i++)
		recent[i] = (uint32_t)(100 + i * 37);
	struct lua_req q = { .user_id = "u42", .user_id_len = 3, .recent = recent, .n_recent = 10, .cart = cart,
			     .n_cart = 1, .purchased = purchased, .n_purchased = 2, .placement = "home",
			     .placement_len = 4, .user = 42, .interactions = 25, .context_item = LUA_NO_ITEM, .n = 10,
			     .known = 1 };
	static struct lua_cand base[N_CANDS], c[N_CANDS];
	for (uint32_t i = 0; i < N_CANDS; i++) {
		/* Retrieval order with some noise, mixed sources, a few on sale. */
		base[i] = (struct lua_cand){ .item = (uint32_t)((i * 2654435761u) % s->n_items),
					     .score = 1.0f - (float)i * 0.004f + (float)(i % 7) * 0.001f,
					     .source = (uint8_t)(1 + i % 6), .reason_item = i % 6 == 2 ? recent[0] : LUA_NO_ITEM,
					     .flags = (uint16_t)(i % 9 == 0 ? LUA_CAND_ON_SALE : 0) };
	}
	uint64_t *rank_ns = malloc(calls * sizeof(uint64_t)), *route_ns = malloc(calls * sizeof(uint64_t));
	struct lua_route rt;
	size_t failed = 0;
	for (size_t i = 0; i < calls + 2000; i++) {  /* the first 2000 warm the JIT */
		memcpy(c, base, sizeof(c));
		uint32_t n = N_CANDS;
		uint64_t t0 = now_ns();
		int rc = lua_host_route(h, s, &q, &rt);
		uint64_t t1 = now_ns();
		rc |= lua_host_rank(h, s, &q, c, &n, q.n);
		uint64_t t2 = now_ns();
		if (rc)  /* e.g. the worker descheduled past twice the budget */
			failed++;
		if (i >= 2000) {
			route_ns[i - 2000] = t1 - t0;
			rank_ns[i - 2000] = t2 - t1;
		}
	}
	printf("policy set %s, %u candidates, n=%u, Lua heap %llu KiB, failed calls %zu\n", lua_host_policy_name(h),
	       N_CANDS, q.n, (unsigned long long)lua_host_stats(h)->memory_kb, failed);
	report("rules+rerank", rank_ns, calls);
	report("route", route_ns, calls);
	free(rank_ns);
	free(route_ns);
	lua_host_destroy(h);
	snap_close(s);
	return 0;
}
