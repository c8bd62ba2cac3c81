/* test_rb_zipf.c: the workload's Zipf sampler draws ranks with the
 * theoretical frequencies (chi-square over all ranks, and each of the
 * top ranks within 5 standard deviations), for several exponents, and a
 * seed always gives the same sequence.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "rb/rb_rng.h"
#include "rb/rb_zipf.h"

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

static void check_freqs(size_t n, double s)
{
	enum { DRAWS = 1000000 };
	struct rb_zipf z;
	CHECK(rb_zipf_init(&z, n, s) == 0, "init");
	uint64_t *hits = calloc(n, sizeof(*hits));
	struct rb_rng r;
	rb_rng_seed(&r, 42, (uint64_t)(s * 100));
	for (int i = 0; i < DRAWS; i++) {
		size_t k = rb_zipf_sample(&z, &r);
		CHECK(k < n, "rank %zu out of range", k);
		hits[k]++;
	}
	/* theory, computed here independently of the table */
	double h = 0;
	for (size_t k = 1; k <= n; k++)
		h += pow((double)k, -s);
	double chi2 = 0;
	for (size_t k = 0; k < n; k++) {
		double p = pow((double)(k + 1), -s) / h, expect = p * DRAWS;
		CHECK(fabs(rb_zipf_prob(&z, k) - p) < 1e-9, "table probability of rank %zu", k);
		chi2 += ((double)hits[k] - expect) * ((double)hits[k] - expect) / expect;
		if (k < 10) {
			double sd = sqrt(DRAWS * p * (1 - p));
			CHECK(fabs((double)hits[k] - expect) < 5 * sd, "s=%g rank %zu: %llu draws, expected %.0f", s, k,
			      (unsigned long long)hits[k], expect);
		}
	}
	/* n-1 degrees of freedom: mean n-1, sd sqrt(2(n-1)); 6 sd is a flake-free bound */
	double df = (double)n - 1, bound = df + 6 * sqrt(2 * df);
	printf("zipf n=%zu s=%.2f: chi2 %.1f (df %.0f, bound %.1f), top rank %.4f\n", n, s, chi2, df, bound,
	       (double)hits[0] / DRAWS);
	CHECK(chi2 < bound, "s=%g: chi-square %.1f over %.1f", s, chi2, bound);
	free(hits);
	rb_zipf_free(&z);
}

static void check_determinism(void)
{
	struct rb_zipf z;
	rb_zipf_init(&z, 100000, 0.99);
	struct rb_rng a, b;
	rb_rng_seed(&a, 7, 3);
	rb_rng_seed(&b, 7, 3);
	for (int i = 0; i < 10000; i++)
		CHECK(rb_zipf_sample(&z, &a) == rb_zipf_sample(&z, &b), "same seed, same draw");
	rb_rng_seed(&b, 7, 4);
	int same = 0;
	for (int i = 0; i < 1000; i++)
		same += rb_zipf_sample(&z, &a) == rb_zipf_sample(&z, &b);
	CHECK(same < 900, "another stream draws differently (%d/1000 equal)", same);
	rb_zipf_free(&z);
	CHECK(rb_zipf_init(&z, 0, 1) < 0, "n = 0 is refused");
	CHECK(rb_zipf_init(&z, 10, -1) < 0, "a negative exponent is refused");
}

int main(void)
{
	check_freqs(200, 0.0);
	check_freqs(200, 0.99);
	check_freqs(1000, 1.2);
	check_freqs(50, 2.0);
	check_determinism();
	return failures ? 1 : 0;
}
