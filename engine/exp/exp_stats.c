/* exp_stats.c: A/B experiment statistics and the Thompson sampler (see
 * exp_stats.h for the contract). */
#include <math.h>
#include "exp/exp_stats.h"
#include "core/rng.h"

#define SQRT_2PI 2.50662827463100050242

double exp_norm_cdf(double z)
{
	/* erfc rather than 1 + erf: the lower tail stays accurate instead of
	 * cancelling to 0 below about z = -8. */
	return 0.5 * erfc(-z / M_SQRT2);
}

/* Acklam's approximation for 0 < p <= 0.5, relative error below 1.15e-9. */
static double acklam_lower(double p)
{
	static const double a[] = { -3.969683028665376e+01, 2.209460984245205e+02,
				    -2.759285104469687e+02, 1.383577518672690e+02,
				    -3.066479806614716e+01, 2.506628277459239e+00 };
	static const double b[] = { -5.447609879822406e+01, 1.615858368580409e+02,
				    -1.556989798598866e+02, 6.680131188771972e+01,
				    -1.328068155288572e+01 };
	static const double c[] = { -7.784894002430293e-03, -3.223964580411365e-01,
				    -2.400758277161838e+00, -2.549732539343734e+00,
				    4.374664141464968e+00, 2.938163982698783e+00 };
	static const double d[] = { 7.784695709041462e-03, 3.224671290700398e-01,
				    2.445134137142996e+00, 3.754408661907416e+00 };
	const double p_low = 0.02425;

	if (p < p_low) {
		double q = sqrt(-2.0 * log(p));
		return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
		       ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
	}
	double q = p - 0.5, r = q * q;
	return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
	       (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
}

double exp_norm_ppf(double p)
{
	if (!(p >= 0.0 && p <= 1.0))
		return NAN;
	if (p == 0.0)
		return -INFINITY;
	if (p == 1.0)
		return INFINITY;
	/* Work in the lower half only: 1 - p is exact for p >= 0.5, whereas
	 * cdf(x) - p near p = 1 would lose every digit of the tail. */
	if (p > 0.5)
		return -exp_norm_ppf(1.0 - p);

	double x = acklam_lower(p);
	/* One Halley step on cdf(x) - p, with u = e / pdf(x). Written as
	 * (e / p) * sqrt(2 pi) * exp(x^2/2 + log p) because exp(x^2/2) alone
	 * overflows once p is subnormal (|x| > 37.7). */
	double e = exp_norm_cdf(x) - p;
	double u = (e / p) * SQRT_2PI * exp(0.5 * x * x + log(p));
	return x - u / (1.0 + 0.5 * x * u);
}

struct exp_interval exp_wilson_interval(uint64_t successes, uint64_t trials, double confidence)
{
	if (successes > trials || !(confidence > 0.0 && confidence < 1.0))
		return (struct exp_interval){ NAN, NAN };
	if (trials == 0)
		return (struct exp_interval){ 0.0, 1.0 };

	double n = (double)trials;
	double phat = (double)successes / n;
	double z = exp_norm_ppf(1.0 - (1.0 - confidence) / 2.0);
	double z2 = z * z;
	double denom = 1.0 + z2 / n;
	double center = (phat + z2 / (2.0 * n)) / denom;
	double half = z * sqrt(phat * (1.0 - phat) / n + z2 / (4.0 * n * n)) / denom;

	/* The ends are analytically 0 and 1 at the extremes; rounding would
	 * otherwise leave crumbs like 1e-18 there. */
	struct exp_interval iv = { center - half, center + half };
	if (successes == 0 || iv.lo < 0.0)
		iv.lo = 0.0;
	if (successes == trials || iv.hi > 1.0)
		iv.hi = 1.0;
	return iv;
}

struct exp_ztest exp_two_proportion_ztest(uint64_t s_control, uint64_t n_control,
					  uint64_t s_variant, uint64_t n_variant)
{
	struct exp_ztest t = { .diff = 0.0, .z = 0.0, .p_value = 1.0, .valid = false };
	if (n_control == 0 || n_variant == 0 || s_control > n_control || s_variant > n_variant)
		return t;

	/* Doubles from the start: n_control + n_variant may not fit in 64 bits. */
	double sc = (double)s_control, nc = (double)n_control;
	double sv = (double)s_variant, nv = (double)n_variant;
	t.diff = sv / nv - sc / nc;
	double pooled = (sc + sv) / (nc + nv);
	double var = pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / nv);
	if (!(var > 0.0))
		return t;
	t.z = t.diff / sqrt(var);
	t.p_value = erfc(fabs(t.z) / M_SQRT2); /* 2 * cdf(-|z|) */
	t.valid = true;
	return t;
}

uint64_t exp_sample_size(double baseline_rate, double min_detectable_effect, double alpha,
			 double power)
{
	if (!(baseline_rate > 0.0 && baseline_rate < 1.0) || !(alpha > 0.0 && alpha < 1.0) ||
	    !(power > 0.0 && power < 1.0) || !isfinite(min_detectable_effect) ||
	    min_detectable_effect == 0.0)
		return 0;

	double p1 = baseline_rate;
	double p2 = baseline_rate * (1.0 + min_detectable_effect);
	if (!(p2 > 0.0 && p2 < 1.0) || p2 == p1)
		return 0;
	double z_a = exp_norm_ppf(1.0 - alpha / 2.0);
	double z_b = exp_norm_ppf(power);
	double p_avg = (p1 + p2) / 2.0;
	double zsum = z_a + z_b;
	double n = zsum * zsum * 2.0 * p_avg * (1.0 - p_avg) / ((p2 - p1) * (p2 - p1));

	if (!(n < 18446744073709551616.0)) /* 2^64 */
		return UINT64_MAX;
	return (uint64_t)n; /* conversion truncates toward zero, like int() */
}

uint64_t exp_samples_still_needed(uint64_t needed, uint64_t have)
{
	return needed > have ? needed - have : 0;
}

/* The samplers are written out here rather than taken from a library:
 * each is a few lines of published algorithm over core/rng.h's stream,
 * deterministic and seedable per caller, and nothing in Debian's set
 * offers that without a dependency (GSL) far larger than what is used. */

void exp_rng_seed(struct exp_rng *rng, uint64_t seed)
{
	/* splitmix64 is a bijection of its counter, so four consecutive
	 * outputs are never all zero (the one state xoshiro cannot leave). */
	for (int i = 0; i < 4; i++)
		rng->s[i] = rng_splitmix64(&seed);
}

uint64_t exp_rng_next(struct exp_rng *rng)
{
	return rng_xoshiro_next(rng->s);
}

double exp_rng_uniform(struct exp_rng *rng)
{
	return rng_uniform53(rng->s);
}

double exp_rng_normal(struct exp_rng *rng)
{
	double u, v, s;
	do {
		u = 2.0 * exp_rng_uniform(rng) - 1.0;
		v = 2.0 * exp_rng_uniform(rng) - 1.0;
		s = u * u + v * v;
	} while (s >= 1.0 || s == 0.0);
	return u * sqrt(-2.0 * log(s) / s);
}

double exp_rng_gamma(struct exp_rng *rng, double shape)
{
	if (!(shape > 0.0))
		return NAN;
	if (shape < 1.0) {
		/* Marsaglia-Tsang needs shape >= 1; Gamma(a) = Gamma(a + 1) * U^(1/a).
		 * 1 - uniform lies in (0, 1], so the power is never of 0. */
		double u = 1.0 - exp_rng_uniform(rng);
		return exp_rng_gamma(rng, shape + 1.0) * pow(u, 1.0 / shape);
	}
	double d = shape - 1.0 / 3.0;
	double c = 1.0 / sqrt(9.0 * d);
	for (;;) {
		double x = exp_rng_normal(rng);
		double v = 1.0 + c * x;
		if (v <= 0.0)
			continue;
		v = v * v * v;
		double u = exp_rng_uniform(rng);
		double x2 = x * x;
		/* The cheap squeeze accepts ~98% without a log. */
		if (u < 1.0 - 0.0331 * x2 * x2)
			return d * v;
		if (log(u) < 0.5 * x2 + d * (1.0 - v + log(v)))
			return d * v;
	}
}

double exp_rng_beta(struct exp_rng *rng, double a, double b)
{
	if (!(a > 0.0) || !(b > 0.0))
		return NAN;
	double x = exp_rng_gamma(rng, a);
	double y = exp_rng_gamma(rng, b);
	if (x + y > 0.0)
		return x / (x + y);
	/* Both underflowed (tiny shapes): Beta(a, b) is then all but a coin
	 * between 0 and 1 with P(1) = a / (a + b). */
	return exp_rng_uniform(rng) < a / (a + b) ? 1.0 : 0.0;
}

void exp_thompson_weights(uint32_t n_arms, const uint64_t *successes, const uint64_t *trials,
			  double weight_floor, uint32_t draws, struct exp_rng *rng, double *weights_out)
{
	if (n_arms == 0)
		return;
	if (n_arms > EXP_STATS_MAX_ARMS) {
		for (uint32_t i = 0; i < n_arms; i++)
			weights_out[i] = NAN;
		return;
	}

	double alpha[EXP_STATS_MAX_ARMS], beta[EXP_STATS_MAX_ARMS];
	for (uint32_t i = 0; i < n_arms; i++) {
		uint64_t s = successes[i] < trials[i] ? successes[i] : trials[i];
		alpha[i] = 1.0 + (double)s;
		beta[i] = 1.0 + (double)(trials[i] - s);
		weights_out[i] = 0.0; /* counts of rounds won, until the end */
	}

	for (uint32_t r = 0; r < draws; r++) {
		uint32_t best = 0;
		double best_sample = -1.0;
		for (uint32_t i = 0; i < n_arms; i++) {
			double sample = exp_rng_beta(rng, alpha[i], beta[i]);
			if (sample > best_sample) {
				best_sample = sample;
				best = i;
			}
		}
		weights_out[best] += 1.0;
	}

	double n = (double)n_arms;
	double f = weight_floor > 0.0 ? weight_floor : 0.0; /* NaN fails the test too */
	if (f > 1.0 / n)
		f = 1.0 / n;
	double spread = 1.0 - n * f;
	if (spread < 0.0) /* n * (1/n) may round just above 1 */
		spread = 0.0;
	for (uint32_t i = 0; i < n_arms; i++) {
		double p_best = draws ? weights_out[i] / (double)draws : 1.0 / n;
		weights_out[i] = f + spread * p_best;
	}
}
