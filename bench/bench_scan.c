/* bench_scan.c: latency of the C recommendation path per request, one
 * query at a time on one thread, over a snapshot built by the tools.
 *
 *   bench_scan SNAPSHOT [--queries N] [--n K] [--seed S] [--json FILE]
 *
 * Known users are drawn uniformly (seeded) from the snapshot; each query is
 * timed alone with the monotonic clock; the report gives p50/p90/p99/max
 * in microseconds and the throughput of one core.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rec/rec.h"
#include "snap/snap.h"

static uint64_t pct(const uint64_t *sorted, size_t n, double p)
{
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return sorted[i];
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help")) {
		fprintf(stderr, "usage: bench_scan SNAPSHOT [--queries N] [--n K] [--seed S] [--json FILE] "
				"[--hugepages 0|1]\n");
		return 2;
	}
	const char *path = argv[1], *json = NULL;
	long queries = 2000, k = 10;
	unsigned long long seed = 1;
	struct snap_open_opts so = { 0 };
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--queries"))
			queries = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--n"))
			k = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--json"))
			json = argv[i + 1];
		else if (!strcmp(argv[i], "--hugepages"))
			so.hugepages = atoi(argv[i + 1]) != 0;
		else {
			fprintf(stderr, "bench_scan: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (queries < 1 || k < 1 || k > 1000) {
		fprintf(stderr, "bench_scan: --queries must be >= 1 and --n within 1..1000\n");
		return 2;
	}
	char err[256];
	struct snap *s;
	uint64_t t_open = now_ns();
	if (snap_open_opts(path, &so, &s, err, sizeof(err))) {
		fprintf(stderr, "bench_scan: %s: %s\n", path, err);
		return 1;
	}
	t_open = now_ns() - t_open;
	if (!s->n_users) {
		fprintf(stderr, "bench_scan: %s has no users\n", path);
		return 1;
	}
	snap_warm(s);
	struct rec_item *out = calloc((size_t)k, sizeof(*out));
	uint64_t *lat = calloc((size_t)queries, sizeof(*lat));
	if (!out || !lat)
		return 1;
	/* Warm the page cache and the branch predictors with a few queries.
	 * No scratch: rec_recommend scans exactly even when the snapshot has an
	 * ANN index (bench_ann measures the index). */
	enum rec_strategy st;
	for (int i = 0; i < 3; i++) {
		struct rec_query q = { s, i % s->n_users, -1, (uint32_t)k };
		rec_recommend(&q, NULL, out, &st);
	}
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1, total = now_ns();
	double checksum = 0;
	for (long i = 0; i < queries; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		struct rec_query q = { s, (int64_t)(x % s->n_users), -1, (uint32_t)k };
		uint64_t t0 = now_ns();
		uint32_t n = rec_recommend(&q, NULL, out, &st);
		lat[i] = now_ns() - t0;
		checksum += n ? out[0].score : 0;
	}
	total = now_ns() - total;
	qsort(lat, (size_t)queries, sizeof(*lat), cmp_u64);
	double us = 1e-3;
	printf("exact-scan top-%ld: %u items x %u dims, %ld queries, 1 thread\n", k, s->n_items, s->dim, queries);
	printf("  snapshot open+validate: %.1f ms (%.1f MB)\n", (double)t_open / 1e6, (double)s->size / 1e6);
	printf("  latency us: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", (double)pct(lat, (size_t)queries, 50) * us,
	       (double)pct(lat, (size_t)queries, 90) * us, (double)pct(lat, (size_t)queries, 99) * us,
	       (double)lat[queries - 1] * us);
	printf("  throughput: %.0f queries/s on one core (checksum %.3f)\n", (double)queries * 1e9 / (double)total,
	       checksum);
	if (json) {
		FILE *f = fopen(json, "w");
		if (!f) {
			fprintf(stderr, "bench_scan: %s: %s\n", json, strerror(errno));
			return 1;
		}
		fprintf(f, "{\"bench\":\"exact_scan\",\"items\":%u,\"dim\":%u,\"k\":%ld,\"queries\":%ld,"
			   "\"open_ms\":%.3f,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f,"
			   "\"qps_one_core\":%.1f}\n",
			s->n_items, s->dim, k, queries, (double)t_open / 1e6, (double)pct(lat, (size_t)queries, 50) * us,
			(double)pct(lat, (size_t)queries, 90) * us, (double)pct(lat, (size_t)queries, 99) * us,
			(double)lat[queries - 1] * us, (double)queries * 1e9 / (double)total);
		fclose(f);
	}
	free(out);
	free(lat);
	snap_close(s);
	return 0;
}
