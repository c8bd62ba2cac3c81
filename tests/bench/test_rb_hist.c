/* test_rb_hist.c: the load generator's histogram keeps every value from
 * 1 µs to 10 s within 1% (the contract in bench/rb/rb_hist.h), its
 * percentiles agree with the exact ones of a sorted sample, and merging
 * per-thread histograms equals recording everything in one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rb/rb_hist.h"
#include "rb/rb_rng.h"

static int failures;
#define CHECK(c, ...)                                                   \
	do {                                                            \
		if (!(c)) {                                             \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                   \
			fputc('\n', stderr);                            \
			failures++;                                     \
		}                                                       \
	} while (0)

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static struct rb_hist h1, h2, all;

/* Every single value over 1 µs .. 10 s (geometric sweep plus random
 * points) comes back within 1%. */
static void test_single_values(void)
{
	struct rb_rng r;
	rb_rng_seed(&r, 1, 1);
	double worst = 0;
	for (int i = 0; i < 20000; i++) {
		uint64_t v = i < 10000 ? (uint64_t)(1000.0 * pow(1e7, i / 9999.0))      /* 1 µs .. 10 s */
				       : 1000 + rb_rng_below(&r, 10000000000ull - 1000);
		rb_hist_init(&h1);
		rb_hist_record(&h1, v);
		rb_hist_record(&h1, 1); /* so min/max clamping does not hide the bucket error */
		rb_hist_record(&h1, RB_HIST_MAX_NS);
		uint64_t got = rb_hist_percentile(&h1, 50);
		double err = fabs((double)got - (double)v) / (double)v;
		if (err > worst)
			worst = err;
		CHECK(err <= 0.01, "value %llu came back as %llu (%.3f%%)", (unsigned long long)v,
		      (unsigned long long)got, 100 * err);
	}
	printf("single values 1us..10s: worst relative error %.3f%%\n", 100 * worst);
	CHECK(worst <= 0.005, "worst error %.4f over the 0.4%% design bound", worst);
}

/* Percentiles of a log-uniform sample against the exact order statistics. */
static void test_percentiles_vs_exact(void)
{
	enum { N = 200000 };
	uint64_t *v = malloc(N * sizeof(*v));
	struct rb_rng r;
	rb_rng_seed(&r, 2, 1);
	rb_hist_init(&h1);
	for (int i = 0; i < N; i++) {
		v[i] = (uint64_t)(1000.0 * pow(1e7, rb_rng_unit(&r)));
		rb_hist_record(&h1, v[i]);
	}
	qsort(v, N, sizeof(*v), cmp_u64);
	static const double ps[] = {1, 10, 50, 90, 99, 99.9, 99.99, 100};
	for (unsigned i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		size_t rank = (size_t)ceil(ps[i] / 100.0 * N - 1e-9);
		uint64_t exact = v[rank ? rank - 1 : 0], got = rb_hist_percentile(&h1, ps[i]);
		double err = fabs((double)got - (double)exact) / (double)exact;
		CHECK(err <= 0.01, "p%g: %llu vs exact %llu", ps[i], (unsigned long long)got, (unsigned long long)exact);
	}
	CHECK(rb_hist_percentile(&h1, 100) == v[N - 1], "max is exact");
	CHECK(h1.min == v[0], "min is exact");
	CHECK(h1.total == N, "total");
	free(v);
}

/* Two halves merged equal the whole, bucket for bucket. */
static void test_merge(void)
{
	struct rb_rng r;
	rb_rng_seed(&r, 3, 1);
	rb_hist_init(&h1);
	rb_hist_init(&h2);
	rb_hist_init(&all);
	for (int i = 0; i < 100000; i++) {
		uint64_t x = 500 + rb_rng_below(&r, 50000000);
		rb_hist_record(i & 1 ? &h1 : &h2, x);
		rb_hist_record(&all, x);
	}
	rb_hist_record(&h2, RB_HIST_MAX_NS + 5); /* saturation is merged too */
	rb_hist_record(&all, RB_HIST_MAX_NS + 5);
	struct rb_hist *m = calloc(1, sizeof(*m));
	rb_hist_init(m);
	rb_hist_merge(m, &h1);
	rb_hist_merge(m, &h2);
	CHECK(!memcmp(m->counts, all.counts, sizeof(all.counts)), "merged counts differ");
	CHECK(m->total == all.total && m->min == all.min && m->max == all.max && m->saturated == 1,
	      "merged totals / min / max / saturated");
	for (double p = 1; p <= 100; p += 0.5)
		CHECK(rb_hist_percentile(m, p) == rb_hist_percentile(&all, p), "p%g differs after merge", p);
	rb_hist_merge(m, &(struct rb_hist){.min = UINT64_MAX}); /* merging an empty one changes nothing */
	CHECK(m->total == all.total && m->min == all.min, "empty merge");
	free(m);
}

static void test_edges(void)
{
	rb_hist_init(&h1);
	CHECK(rb_hist_percentile(&h1, 99) == 0, "empty histogram answers 0");
	rb_hist_record(&h1, 0);
	CHECK(rb_hist_percentile(&h1, 50) == 0, "zero is a value");
	/* bucket boundaries are contiguous and increasing */
	uint64_t prev_end = 0;
	for (unsigned i = 0; i < RB_HIST_BUCKETS; i++) {
		uint64_t low, width;
		rb_hist_bucket(i, &low, &width);
		CHECK(low == prev_end, "bucket %u starts at %llu, previous ended at %llu", i, (unsigned long long)low,
		      (unsigned long long)prev_end);
		CHECK(rb_hist_index(low) == i && rb_hist_index(low + width - 1) == i, "bucket %u round trip", i);
		prev_end = low + width;
		if (failures > 10)
			break;
	}
	CHECK(prev_end == RB_HIST_MAX_NS + 1, "the last bucket ends at the maximum");
	rb_hist_init(&h1);
	for (int i = 0; i < 1000; i++)
		rb_hist_record(&h1, i < 900 ? 1000 : 1000000);
	uint64_t above = rb_hist_count_above(&h1, 500000);
	CHECK(above == 100, "count above: %llu", (unsigned long long)above);
	CHECK(rb_hist_percentile(&h1, 90) <= 1010 && rb_hist_percentile(&h1, 90.1) >= 990000, "rank boundary");
}

int main(void)
{
	test_single_values();
	test_percentiles_vs_exact();
	test_merge();
	test_edges();
	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
