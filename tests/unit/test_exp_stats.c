/* test_exp_stats.c: experiment statistics against reference values
 * computed in Python (3.11, /usr/bin/python3): normal CDF and inverse,
 * Wilson intervals, the two-proportion z-test, sample sizes; the
 * generator's stream and its distributions' moments; Thompson weights. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include "exp/exp_stats.h"

static int failures;
#define CHECK(cond) do { \
	if (!(cond)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); failures++; } \
} while (0)

/* |got - want| <= tol * max(1, |want|): relative for large values,
 * absolute near zero. */
static void near(double got, double want, double tol, const char *what, int line)
{
	double scale = fabs(want) > 1.0 ? fabs(want) : 1.0;
	if (!(fabs(got - want) <= tol * scale)) {
		fprintf(stderr, "%s:%d: %s: got %.17g want %.17g (tol %g)\n", __FILE__, line, what,
			got, want, tol);
		failures++;
	}
}
#define NEAR(got, want, tol) near((got), (want), (tol), #got, __LINE__)

/* Relative error, for values spanning many decades (tail probabilities). */
static void near_rel(double got, double want, double rel, const char *what, int line)
{
	if (!(fabs(got - want) <= rel * fabs(want))) {
		fprintf(stderr, "%s:%d: %s: got %.17g want %.17g (rel %g)\n", __FILE__, line, what,
			got, want, rel);
		failures++;
	}
}
#define NEAR_REL(got, want, rel) near_rel((got), (want), (rel), #got, __LINE__)

static void test_norm_cdf(void)
{
	/* From NormalDist().cdf(z) for z >= -1, where it agrees with erfc.
	 * Below that NormalDist.cdf computes 0.5 * (1 + erf(...)), which
	 * cancels (it says 6.106e-16 at -8 and 0.0 at -20), so those
	 * references are 0.5 * math.erfc(-z / math.sqrt(2)); their inverses are
	 * checked against NormalDist().inv_cdf in test_norm_round_trip. */
	static const struct { double z, p; } ref[] = {
		{ -37.5, 4.605353009582584e-308 },
		{ -20, 2.7536241186063314e-89 },
		{ -8, 6.220960574271819e-16 },
		{ -5, 2.866515718791946e-07 },
		{ -3, 0.0013498980316300957 },
		{ -1, 0.15865525393145707 },
		{ -0.5, 0.3085375387259869 },
		{ 0, 0.5 },
		{ 0.5, 0.6914624612740131 },
		{ 1, 0.8413447460685429 },
		{ 3, 0.9986501019683699 },
		{ 5, 0.9999997133484281 },
		{ 8, 0.9999999999999993 },
	};
	for (size_t i = 0; i < sizeof(ref) / sizeof(ref[0]); i++)
		NEAR_REL(exp_norm_cdf(ref[i].z), ref[i].p, 1e-13);
	CHECK(exp_norm_cdf(-INFINITY) == 0.0);
	CHECK(exp_norm_cdf(INFINITY) == 1.0);
	CHECK(isnan(exp_norm_cdf(NAN)));
}

static void test_norm_ppf(void)
{
	/* NormalDist().inv_cdf(p) (Wichura's AS241, ~1e-16). 1 - 1e-6 and
	 * 1 - 1e-10 are not symmetric to 1e-6 and 1e-10 because those doubles
	 * are not exactly 1 - 1e-6 and 1 - 1e-10; the upper tail must follow
	 * the double it is given. 0.02425 is Acklam's region boundary. */
	static const struct { double p, z; } ref[] = {
		{ 1e-300, -37.0470962993612 },
		{ 1e-100, -21.27345356096532 },
		{ 1e-10, -6.361340902404056 },
		{ 1e-06, -4.753424308822899 },
		{ 0.001, -3.090232306167813 },
		{ 0.01, -2.3263478740408408 },
		{ 0.02425, -1.9729610513118845 },
		{ 0.025, -1.9599639845400538 },
		{ 0.1, -1.2815515655446008 },
		{ 0.3, -0.5244005127080407 },
		{ 0.5, 0.0 },
		{ 0.7, 0.5244005127080407 },
		{ 0.9, 1.2815515655446008 },
		{ 0.975, 1.9599639845400536 },
		{ 0.97575, 1.9729610513118847 },
		{ 0.999, 3.090232306167813 },
		{ 1 - 1e-6, 4.753424308817089 },
		{ 1 - 1e-10, 6.361340889697421 },
	};
	for (size_t i = 0; i < sizeof(ref) / sizeof(ref[0]); i++)
		NEAR(exp_norm_ppf(ref[i].p), ref[i].z, 1e-12);

	CHECK(exp_norm_ppf(0.0) == -INFINITY);
	CHECK(exp_norm_ppf(1.0) == INFINITY);
	CHECK(isnan(exp_norm_ppf(-0.1)));
	CHECK(isnan(exp_norm_ppf(1.1)));
	CHECK(isnan(exp_norm_ppf(NAN)));
	/* Subnormal p: still finite, still in the right place. */
	double tiny = exp_norm_ppf(4.9406564584124654e-324);
	CHECK(isfinite(tiny) && tiny < -38.0 && tiny > -39.0);
	/* Symmetry, exact by construction for p = 1 - q with q exact. */
	CHECK(exp_norm_ppf(0.75) == -exp_norm_ppf(0.25));
}

static void test_norm_round_trip(void)
{
	/* ppf(cdf(x)) = x where cdf(x) keeps enough digits: every x <= 0, and
	 * x up to 3 (beyond, cdf(x) is within a few ulps of 1 and x is lost). */
	double worst = 0.0;
	for (double x = -37.0; x <= 3.0; x += 0.0625) {
		double back = exp_norm_ppf(exp_norm_cdf(x));
		double err = fabs(back - x) / (fabs(x) > 1.0 ? fabs(x) : 1.0);
		if (err > worst)
			worst = err;
	}
	if (!(worst <= 1e-13)) {
		fprintf(stderr, "round trip x -> cdf -> ppf: worst relative error %g\n", worst);
		failures++;
	}
	/* cdf(ppf(p)) = p over the decades of the lower tail. d(ln cdf)/dx is
	 * about |x| there, so one rounding of x (relative eps) moves p by
	 * x^2 * eps relative: 1.5e-13 at x = -37. The bound is a few times that. */
	for (int e = -300; e <= -1; e++) {
		double p = pow(10.0, e);
		double x = exp_norm_ppf(p);
		NEAR_REL(exp_norm_cdf(x), p, 4 * DBL_EPSILON * (1 + x * x));
	}
}

static void test_wilson(void)
{
	/* Python:
	 *   def wilson(s, n, conf):
	 *       z = NormalDist().inv_cdf(1 - (1 - conf) / 2)
	 *       p = s / n
	 *       den = 1 + z*z/n
	 *       c = (p + z*z/(2*n)) / den
	 *       h = z*sqrt(p*(1-p)/n + z*z/(4*n*n)) / den
	 *       return max(0.0, c-h), min(1.0, c+h) */
	static const struct { uint64_t s, n; double conf, lo, hi; } ref[] = {
		{ 120, 10000, 0.95, 0.010045476139717912, 0.014329306270062445 },
		{ 0, 50, 0.95, 0.0, 0.07134759913335868 },
		{ 50, 50, 0.95, 0.9286524008666414, 1.0 },
		{ 7, 20, 0.99, 0.14639344137693885, 0.6283381789526871 },
		{ 1, 1, 0.9, 0.2698659487840544, 1.0 },
		{ 3, 1000000, 0.95, 1.0202712409681232e-06, 8.821149774312435e-06 },
	};
	for (size_t i = 0; i < sizeof(ref) / sizeof(ref[0]); i++) {
		struct exp_interval iv = exp_wilson_interval(ref[i].s, ref[i].n, ref[i].conf);
		if (ref[i].lo == 0.0)
			CHECK(iv.lo == 0.0);
		else
			NEAR_REL(iv.lo, ref[i].lo, 1e-12);
		NEAR_REL(iv.hi, ref[i].hi, 1e-12);
	}
	struct exp_interval iv = exp_wilson_interval(0, 0, 0.95);
	CHECK(iv.lo == 0.0 && iv.hi == 1.0);
	iv = exp_wilson_interval(5, 4, 0.95);
	CHECK(isnan(iv.lo) && isnan(iv.hi));
	iv = exp_wilson_interval(1, 4, 1.0);
	CHECK(isnan(iv.lo) && isnan(iv.hi));
	iv = exp_wilson_interval(1, 4, 0.0);
	CHECK(isnan(iv.lo) && isnan(iv.hi));
	/* Higher confidence, wider interval. */
	struct exp_interval narrow = exp_wilson_interval(30, 100, 0.8);
	struct exp_interval wide = exp_wilson_interval(30, 100, 0.99);
	CHECK(wide.lo < narrow.lo && wide.hi > narrow.hi);
}

static void test_ztest(void)
{
	/* Python:
	 *   pc, pv = sc/nc, sv/nv; pp = (sc+sv)/(nc+nv)
	 *   z = (pv-pc) / sqrt(pp*(1-pp)*(1/nc+1/nv))
	 *   p = math.erfc(abs(z)/sqrt(2))   # == 2*NormalDist().cdf(-abs(z)) */
	static const struct { uint64_t sc, nc, sv, nv; double diff, z, p; } ref[] = {
		{ 120, 10000, 150, 10000, 0.002999999999999999, 1.8381918144783853,
		  0.06603414554615447 },
		{ 150, 10000, 120, 10000, -0.002999999999999999, -1.8381918144783853,
		  0.06603414554615447 },
		{ 500, 4000, 540, 4100, 0.006707317073170738, 0.9021821920145268,
		  0.366960093031683 },
		{ 30, 1000, 30, 1000, 0.0, 0.0, 1.0 },
		{ 1, 10, 9, 10, 0.8, 3.577708763999664, 0.00034661935113466686 },
	};
	for (size_t i = 0; i < sizeof(ref) / sizeof(ref[0]); i++) {
		struct exp_ztest t =
			exp_two_proportion_ztest(ref[i].sc, ref[i].nc, ref[i].sv, ref[i].nv);
		CHECK(t.valid);
		NEAR(t.diff, ref[i].diff, 1e-15);
		NEAR(t.z, ref[i].z, 1e-12);
		NEAR_REL(t.p_value, ref[i].p, 1e-12);
	}

	struct exp_ztest t = exp_two_proportion_ztest(0, 0, 5, 10);
	CHECK(!t.valid && t.z == 0.0 && t.p_value == 1.0);
	t = exp_two_proportion_ztest(5, 10, 0, 0);
	CHECK(!t.valid);
	t = exp_two_proportion_ztest(11, 10, 5, 10);
	CHECK(!t.valid);
	/* Pooled variance 0: nobody converted, or everybody did. */
	t = exp_two_proportion_ztest(0, 100, 0, 200);
	CHECK(!t.valid && t.diff == 0.0 && t.p_value == 1.0);
	t = exp_two_proportion_ztest(100, 100, 200, 200);
	CHECK(!t.valid);
	/* Counts near 2^64: no overflow in n_control + n_variant. */
	t = exp_two_proportion_ztest(UINT64_MAX / 4, UINT64_MAX / 2, UINT64_MAX / 4,
				     UINT64_MAX / 2);
	CHECK(t.valid && fabs(t.z) < 1e-9);
}

static void test_sample_size(void)
{
	/* Python:
	 *   za = NormalDist().inv_cdf(1-alpha/2); zb = NormalDist().inv_cdf(power)
	 *   p1 = b; p2 = b*(1+mde); pa = (p1+p2)/2
	 *   int((za+zb)**2 * 2*pa*(1-pa) / (p2-p1)**2)
	 * The unrounded values (31234.62, 77329.38, 31410.58, 3554.23, 81.17)
	 * are all far from an integer, so truncation cannot flip on rounding. */
	CHECK(exp_sample_size(0.05, 0.10, 0.05, 0.8) == 31234);
	CHECK(exp_sample_size(0.10, 0.05, 0.05, 0.9) == 77329);
	CHECK(exp_sample_size(0.02, 0.20, 0.01, 0.8) == 31410);
	CHECK(exp_sample_size(0.30, -0.10, 0.05, 0.8) == 3554); /* a drop is detectable too */
	CHECK(exp_sample_size(0.5, 0.5, 0.1, 0.95) == 81);

	CHECK(exp_sample_size(0.0, 0.1, 0.05, 0.8) == 0);
	CHECK(exp_sample_size(1.0, 0.1, 0.05, 0.8) == 0);
	CHECK(exp_sample_size(0.05, 0.0, 0.05, 0.8) == 0);
	CHECK(exp_sample_size(0.6, 1.0, 0.05, 0.8) == 0);  /* p2 = 1.2 */
	CHECK(exp_sample_size(0.5, 1.0, 0.05, 0.8) == 0);  /* p2 = 1 exactly */
	CHECK(exp_sample_size(0.5, -1.0, 0.05, 0.8) == 0); /* p2 = 0 */
	CHECK(exp_sample_size(0.05, 0.1, 0.0, 0.8) == 0);
	CHECK(exp_sample_size(0.05, 0.1, 0.05, 1.0) == 0);
	CHECK(exp_sample_size(0.05, NAN, 0.05, 0.8) == 0);
	CHECK(exp_sample_size(0.05, INFINITY, 0.05, 0.8) == 0);
	/* A lift too small to ever detect saturates instead of wrapping. */
	CHECK(exp_sample_size(0.5, 1e-12, 0.05, 0.8) == UINT64_MAX);

	CHECK(exp_samples_still_needed(31234, 0) == 31234);
	CHECK(exp_samples_still_needed(31234, 31000) == 234);
	CHECK(exp_samples_still_needed(31234, 31234) == 0);
	CHECK(exp_samples_still_needed(31234, 99999) == 0);
}

static void test_rng_stream(void)
{
	/* Reference splitmix64 + xoshiro256** written in Python from the
	 * published C (Vigna); splitmix64(0)'s first output 0xe220a8397b1dcdaf
	 * is the well-known one. */
	struct exp_rng r;
	exp_rng_seed(&r, 0);
	CHECK(r.s[0] == 0xe220a8397b1dcdafULL && r.s[1] == 0x6e789e6aa1b965f4ULL &&
	      r.s[2] == 0x06c45d188009454fULL && r.s[3] == 0xf88bb8a8724c81ecULL);
	CHECK(exp_rng_next(&r) == 0x99ec5f36cb75f2b4ULL);
	CHECK(exp_rng_next(&r) == 0xbf6e1f784956452aULL);
	CHECK(exp_rng_next(&r) == 0x1a5f849d4933e6e0ULL);
	CHECK(exp_rng_next(&r) == 0x6aa594f1262d2d2cULL);

	exp_rng_seed(&r, 42);
	CHECK(exp_rng_next(&r) == 0x15780b2e0c2ec716ULL);
	CHECK(exp_rng_next(&r) == 0x6104d9866d113a7eULL);
	exp_rng_seed(&r, 42);
	NEAR(exp_rng_uniform(&r), 0.08386297105988216, 0.0);

	/* Same seed, same stream, through every sampler; another seed differs. */
	struct exp_rng a, b, c;
	exp_rng_seed(&a, 12345);
	exp_rng_seed(&b, 12345);
	exp_rng_seed(&c, 12346);
	int same = 1, differ = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = exp_rng_next(&a), y = exp_rng_next(&b), z = exp_rng_next(&c);
		same &= x == y;
		differ += x != z;
		same &= exp_rng_beta(&a, 2.5, 0.7) == exp_rng_beta(&b, 2.5, 0.7);
		same &= exp_rng_normal(&a) == exp_rng_normal(&b);
	}
	CHECK(same);
	CHECK(differ == 1000);
}

static void test_rng_moments(void)
{
	struct exp_rng r;
	exp_rng_seed(&r, 7);

	/* Uniform: mean 1/2 (sd of the mean 2.9e-4 over 1e6), variance 1/12
	 * (sd 7.5e-5); bounds are ~5 sd. */
	const int n = 1000000;
	double sum = 0, sum2 = 0, lo = 1, hi = 0;
	for (int i = 0; i < n; i++) {
		double u = exp_rng_uniform(&r);
		sum += u;
		sum2 += u * u;
		lo = u < lo ? u : lo;
		hi = u > hi ? u : hi;
	}
	double mean = sum / n, var = sum2 / n - mean * mean;
	NEAR(mean, 0.5, 0.0015);
	NEAR(var, 1.0 / 12.0, 0.0004);
	CHECK(lo >= 0.0 && hi < 1.0);

	/* Standard normal: mean 0, variance 1 (sd 1.4e-3 over 1e6). */
	sum = sum2 = 0;
	for (int i = 0; i < n; i++) {
		double x = exp_rng_normal(&r);
		sum += x;
		sum2 += x * x;
	}
	mean = sum / n;
	NEAR(mean, 0.0, 0.005);
	NEAR(sum2 / n - mean * mean, 1.0, 0.007);

	/* Beta(2, 5): mean 2/7, variance 10/392 (sd of the mean 3.6e-4). */
	const int m = 200000;
	sum = sum2 = 0;
	int inside = 1;
	for (int i = 0; i < m; i++) {
		double x = exp_rng_beta(&r, 2.0, 5.0);
		inside &= x > 0.0 && x < 1.0;
		sum += x;
		sum2 += x * x;
	}
	mean = sum / m;
	CHECK(inside);
	NEAR(mean, 2.0 / 7.0, 0.005);
	NEAR(sum2 / m - mean * mean, 10.0 / 392.0, 0.001);

	/* Gamma(0.5) exercises the shape < 1 boost: mean 0.5, variance 0.5
	 * (sd of the mean 1.6e-3). Gamma(3): mean 3, variance 3. */
	sum = sum2 = 0;
	for (int i = 0; i < m; i++) {
		double x = exp_rng_gamma(&r, 0.5);
		sum += x;
		sum2 += x * x;
	}
	mean = sum / m;
	NEAR(mean, 0.5, 0.008);
	NEAR(sum2 / m - mean * mean, 0.5, 0.03);
	sum = sum2 = 0;
	for (int i = 0; i < m; i++) {
		double x = exp_rng_gamma(&r, 3.0);
		sum += x;
		sum2 += x * x;
	}
	mean = sum / m;
	NEAR(mean, 3.0, 0.02);
	NEAR(sum2 / m - mean * mean, 3.0, 0.1);

	/* Gamma(1) is Exp(1), the shape Thompson uses for an arm with no
	 * successes: mean 1 (sd of the mean 1e-3 over 1e6), and the median is
	 * ln 2 (sd of the fraction below it 5e-4). */
	sum = 0;
	int below_median = 0;
	for (int i = 0; i < n; i++) {
		double x = exp_rng_gamma(&r, 1.0);
		sum += x;
		below_median += x < M_LN2;
	}
	NEAR(sum / n, 1.0, 0.005);
	NEAR((double)below_median / n, 0.5, 0.0025);

	CHECK(isnan(exp_rng_gamma(&r, 0.0)));
	CHECK(isnan(exp_rng_gamma(&r, -1.0)));
	CHECK(isnan(exp_rng_beta(&r, 0.0, 1.0)));
	CHECK(isnan(exp_rng_beta(&r, 1.0, NAN)));
	/* Shapes so small both gammas underflow: still a value in [0, 1]. */
	double x = exp_rng_beta(&r, 1e-300, 1e-300);
	CHECK(x >= 0.0 && x <= 1.0);
}

static double weight_sum(const double *w, uint32_t n)
{
	double s = 0;
	for (uint32_t i = 0; i < n; i++)
		s += w[i];
	return s;
}

static void test_thompson(void)
{
	struct exp_rng r;
	exp_rng_seed(&r, 2024);
	double w[EXP_STATS_MAX_ARMS + 1];

	/* A clearly better arm (15% vs 5% over 1000 trials: ~8 sd apart) wins
	 * nearly every round, so it gets 1 - floor * (n - 1). */
	{
		uint64_t s[] = { 50, 50, 150 }, n[] = { 1000, 1000, 1000 };
		exp_thompson_weights(3, s, n, 0.05, 10000, &r, w);
		NEAR(w[2], 1.0 - 0.05 * 2, 1e-3);
		NEAR(w[0], 0.05, 1e-3);
		NEAR(w[1], 0.05, 1e-3);
		CHECK(w[0] >= 0.05 && w[1] >= 0.05);
		NEAR(weight_sum(w, 3), 1.0, 1e-12);
	}
	/* Equal arms split evenly (sd of each share 3e-3 at 20000 draws). */
	{
		uint64_t s[] = { 100, 100, 100, 100 }, n[] = { 1000, 1000, 1000, 1000 };
		exp_thompson_weights(4, s, n, 0.05, 20000, &r, w);
		for (int i = 0; i < 4; i++)
			NEAR(w[i], 0.25, 0.015);
		NEAR(weight_sum(w, 4), 1.0, 1e-12);
	}
	/* An exact value: Beta(2, 1) beats Beta(1, 1) with probability
	 * E[X ~ Beta(2, 1)] = 2/3 (sd 1.5e-3 at 100000 draws). No floor. */
	{
		uint64_t s[] = { 0, 1 }, n[] = { 0, 1 };
		exp_thompson_weights(2, s, n, 0.0, 100000, &r, w);
		NEAR(w[1], 2.0 / 3.0, 0.008);
		NEAR(w[0], 1.0 / 3.0, 0.008);
	}
	/* A hopeless arm gets the floor exactly, no less. */
	{
		uint64_t s[] = { 0, 500, 520 }, n[] = { 10000, 1000, 1000 };
		exp_thompson_weights(3, s, n, 0.1, 5000, &r, w);
		CHECK(w[0] == 0.1);
		CHECK(w[1] > 0.1 && w[2] > 0.1);
		NEAR(weight_sum(w, 3), 1.0, 1e-12);
	}
	/* A floor above 1/n is clamped to 1/n: everyone gets the same. */
	{
		uint64_t s[] = { 1, 900, 5, 30 }, n[] = { 1000, 1000, 1000, 1000 };
		exp_thompson_weights(4, s, n, 0.5, 1000, &r, w);
		for (int i = 0; i < 4; i++)
			NEAR(w[i], 0.25, 1e-15);
		exp_thompson_weights(4, s, n, NAN, 1000, &r, w); /* NaN floor: none */
		NEAR(w[1], 1.0, 1e-15);
		exp_thompson_weights(4, s, n, -1.0, 1000, &r, w);
		NEAR(w[1], 1.0, 1e-15);
	}
	/* Sixteen arms: all at or above the floor, the best-looking ahead, sum 1. */
	{
		uint64_t s[EXP_STATS_MAX_ARMS], n[EXP_STATS_MAX_ARMS];
		for (int i = 0; i < EXP_STATS_MAX_ARMS; i++) {
			s[i] = (uint64_t)(10 + 3 * i);
			n[i] = 1000;
		}
		exp_thompson_weights(EXP_STATS_MAX_ARMS, s, n, 0.02, 3000, &r, w);
		int floored = 1;
		for (int i = 0; i < EXP_STATS_MAX_ARMS; i++)
			floored &= w[i] >= 0.02;
		CHECK(floored);
		CHECK(w[EXP_STATS_MAX_ARMS - 1] > w[0]);
		NEAR(weight_sum(w, EXP_STATS_MAX_ARMS), 1.0, 1e-12);
	}
	/* Edges: one arm, no draws, successes above trials, too many arms,
	 * deterministic for a seed. */
	{
		uint64_t s[EXP_STATS_MAX_ARMS + 1] = { 3 }, n[EXP_STATS_MAX_ARMS + 1] = { 10 };
		exp_thompson_weights(1, s, n, 0.05, 100, &r, w);
		NEAR(w[0], 1.0, 1e-15);

		uint64_t s2[] = { 10, 900 }, n2[] = { 1000, 1000 };
		exp_thompson_weights(2, s2, n2, 0.05, 0, &r, w);
		NEAR(w[0], 0.5, 1e-15);
		NEAR(w[1], 0.5, 1e-15);

		uint64_t s3[] = { 5000, 900 }, n3[] = { 1000, 1000 }; /* arm 0: 1000/1000 */
		exp_thompson_weights(2, s3, n3, 0.05, 1000, &r, w);
		NEAR(w[0], 0.95, 1e-15);

		exp_thompson_weights(EXP_STATS_MAX_ARMS + 1, s, n, 0.05, 100, &r, w);
		CHECK(isnan(w[0]) && isnan(w[EXP_STATS_MAX_ARMS]));

		uint64_t s4[] = { 100, 105 }, n4[] = { 1000, 1000 };
		double w1[2], w2[2];
		struct exp_rng r1, r2;
		exp_rng_seed(&r1, 99);
		exp_rng_seed(&r2, 99);
		exp_thompson_weights(2, s4, n4, 0.05, 2000, &r1, w1);
		exp_thompson_weights(2, s4, n4, 0.05, 2000, &r2, w2);
		CHECK(w1[0] == w2[0] && w1[1] == w2[1]);
	}
}

int main(void)
{
	test_norm_cdf();
	test_norm_ppf();
	test_norm_round_trip();
	test_wilson();
	test_ztest();
	test_sample_size();
	test_rng_stream();
	test_rng_moments();
	test_thompson();
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
