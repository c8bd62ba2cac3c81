/* bench_ann.c: recall and latency of the ANN index against the exact scan,
 * one query at a time on one thread, over a snapshot built by the tools.
 *
 *   bench_ann SNAPSHOT [--queries N] [--k K] [--nprobe a,b,c] [--rerank R]
 *                      [--seed S] [--build] [--json FILE]
 *
 * Queries are user vectors drawn uniformly (seeded) from the snapshot.
 * recall@k = |ANN top-k ∩ exact top-k| / k, averaged over the queries.
 * --build also times ann_build over the snapshot's item vectors (the same
 * code the snapshot builder runs).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ann/ann.h"
#include "rec/rec.h"
#include "snap/snap.h"

static int cmp_item(const void *a, const void *b)
{
	uint32_t x = ((const struct rec_item *)a)->item, y = ((const struct rec_item *)b)->item;
	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *sorted, size_t n, double p)
{
	return (double)sorted[(size_t)(p / 100.0 * (double)(n - 1) + 0.5)] / 1e3;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help")) {
		fprintf(stderr, "usage: bench_ann SNAPSHOT [--queries N] [--k K] [--nprobe a,b,c] [--rerank R] "
				"[--seed S] [--build] [--repeat R] [--json FILE]\n");
		return 2;
	}
	const char *path = argv[1], *json = NULL, *sweep = "4,8,16,24,32,48,64,96,128";
	long queries = 500, k = 100, rerank = 0, repeat = 1;
	unsigned long long seed = 7;
	bool build = false;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--build")) {
			build = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "bench_ann: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--queries"))
			queries = atol(v);
		else if (!strcmp(a, "--k"))
			k = atol(v);
		else if (!strcmp(a, "--nprobe"))
			sweep = v;
		else if (!strcmp(a, "--repeat"))
			repeat = atol(v);
		else if (!strcmp(a, "--rerank"))
			rerank = atol(v);
		else if (!strcmp(a, "--seed"))
			seed = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--json"))
			json = v;
		else {
			fprintf(stderr, "bench_ann: unknown option %s\n", a);
			return 2;
		}
	}
	if (queries < 1 || k < 1 || k > 1000) {
		fprintf(stderr, "bench_ann: --queries >= 1, --k within 1..1000\n");
		return 2;
	}
	char err[256];
	struct snap *s;
	if (snap_open(path, &s, err, sizeof(err))) {
		fprintf(stderr, "bench_ann: %s: %s\n", path, err);
		return 1;
	}
	if (!s->n_users || !s->ann.nlist) {
		fprintf(stderr, "bench_ann: %s needs users and an ANN index (recd-snapshot build --ann)\n", path);
		return 1;
	}
	snap_warm(s);
	uint64_t index_bytes = 0;
	for (uint32_t i = 0; i < s->hdr->n_sections; i++) {
		uint32_t id = s->hdr->sections[i].id;
		if (id >= SNAP_SEC_ANN_PARAMS && id <= SNAP_SEC_ANN_CODE_SCALES)
			index_bytes += s->hdr->sections[i].length;
	}
	double raw_bytes = (double)s->dim * 4.0;

	double build_s = -1;
	if (build) {
		float *flat = malloc((size_t)s->n_items * s->dim * sizeof(float));
		if (!flat)
			return 1;
		for (uint32_t i = 0; i < s->n_items; i++)
			memcpy(flat + (size_t)i * s->dim, snap_item_vec(s, i), s->dim * sizeof(float));
		struct ann_built b;
		struct ann_build_params bp = { .nlist = s->ann.nlist, .seed = 1, .quant = s->ann.quant };
		uint64_t t0 = now_ns();
		if (ann_build(flat, s->n_items, s->dim, &bp, false, &b, err, sizeof(err))) {
			fprintf(stderr, "bench_ann: build: %s\n", err);
			return 1;
		}
		build_s = (double)(now_ns() - t0) / 1e9;
		ann_built_free(&b);
		free(flat);
	}

	uint32_t *users = malloc((size_t)queries * sizeof(*users));
	struct rec_item *truth = malloc((size_t)queries * k * sizeof(*truth));
	struct rec_item *out = malloc((size_t)k * sizeof(*out));
	uint64_t *lat = malloc((size_t)queries * sizeof(*lat));
	struct rec_scratch *sc = rec_scratch_new((uint32_t)k);
	if (!users || !truth || !out || !lat || !sc)
		return 1;
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1, t_exact = now_ns();
	for (long q = 0; q < queries; q++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		users[q] = (uint32_t)(x % s->n_users);
		struct rec_item *t = truth + (size_t)q * k;
		uint32_t n = rec_topk_exact(s, snap_user_vec(s, users[q]), (uint32_t)k, -1, t);
		for (uint32_t j = n; j < (uint32_t)k; j++)
			t[j].item = UINT32_MAX;
		qsort(t, (size_t)k, sizeof(*t), cmp_item);
	}
	double exact_us = (double)(now_ns() - t_exact) / 1e3 / (double)queries;

	printf("ann: %u items x %u dims, %u lists (longest %u), %s codes; %ld user queries, top-%ld, 1 thread\n",
	       s->n_items, s->dim, s->ann.nlist, s->ann.max_list,
	       s->ann.quant == SNAP_ANN_QUANT_DIM ? "per-dim int8" : "per-vector int8", queries, k);
	printf("index: %.1f bytes/item (raw float32 %.0f; with the float rows used to re-rank %.2fx raw)\n",
	       (double)index_bytes / s->n_items, raw_bytes, ((double)index_bytes / s->n_items + raw_bytes) / raw_bytes);
	if (build_s >= 0)
		printf("build: %.2f s (k-means, lists, codes)\n", build_s);
	printf("exact scan: %.1f us/query (mean)\n", exact_us);
	printf("  %7s %9s %9s %9s %9s %10s\n", "nprobe", "recall", "p50_us", "p99_us", "mean_us", "scanned");

	FILE *jf = NULL;
	if (json) {
		jf = fopen(json, "w");
		if (!jf) {
			fprintf(stderr, "bench_ann: %s: %s\n", json, strerror(errno));
			return 1;
		}
		fprintf(jf, "{\"bench\":\"ann\",\"items\":%u,\"dim\":%u,\"nlist\":%u,\"quant\":\"%s\",\"k\":%ld,"
			    "\"queries\":%ld,\"index_bytes_per_item\":%.2f,\"build_s\":%.3f,\"exact_us\":%.1f,\"sweep\":[",
			s->n_items, s->dim, s->ann.nlist, s->ann.quant == SNAP_ANN_QUANT_DIM ? "dim" : "vector", k,
			queries, (double)index_bytes / s->n_items, build_s, exact_us);
	}
	char *list = strdup(sweep);
	bool first = true;
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		uint32_t nprobe = (uint32_t)atol(tok);
		if (!nprobe)
			continue;
		double hits = 0, total_ns = 0, scanned = 0;
		/* --repeat: extra untimed passes (for a profiler). */
		for (long r = 1; r < repeat; r++)
			for (long q = 0; q < queries; q++)
				rec_topk_ann(s, snap_user_vec(s, users[q]), (uint32_t)k, -1, nprobe, sc, out);
		for (long q = 0; q < queries; q++) {
			struct ann_query aq = { .vec = snap_user_vec(s, users[q]), .k = (uint32_t)k, .nprobe = nprobe,
						.rerank = (uint32_t)rerank, .exclude = -1 };
			(void)aq;
			uint64_t t0 = now_ns();
			uint32_t n = rerank ? ann_search(s, &aq, rec_scratch_ann(sc), (struct topk_item *)out)
					    : rec_topk_ann(s, aq.vec, (uint32_t)k, -1, nprobe, sc, out);
			lat[q] = now_ns() - t0;
			total_ns += (double)lat[q];
			scanned += ann_scratch_stats(rec_scratch_ann(sc))->scanned;
			const struct rec_item *t = truth + (size_t)q * k;
			for (uint32_t j = 0; j < n; j++)
				hits += bsearch(&out[j], t, (size_t)k, sizeof(*t), cmp_item) != NULL;
		}
		qsort(lat, (size_t)queries, sizeof(*lat), cmp_u64);
		double recall = hits / ((double)queries * k);
		printf("  %7u %9.4f %9.1f %9.1f %9.1f %10.0f\n", nprobe, recall, pct(lat, (size_t)queries, 50),
		       pct(lat, (size_t)queries, 99), total_ns / 1e3 / (double)queries, scanned / (double)queries);
		if (jf)
			fprintf(jf, "%s{\"nprobe\":%u,\"recall\":%.4f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"mean_us\":%.1f,"
				    "\"codes_scanned\":%.0f}",
				first ? "" : ",", nprobe, recall, pct(lat, (size_t)queries, 50),
				pct(lat, (size_t)queries, 99), total_ns / 1e3 / (double)queries, scanned / (double)queries);
		first = false;
	}
	if (jf) {
		fprintf(jf, "]}\n");
		fclose(jf);
	}
	free(list);
	rec_scratch_free(sc);
	free(users);
	free(truth);
	free(out);
	free(lat);
	snap_close(s);
	return 0;
}
