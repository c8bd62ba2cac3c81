/* exp_stats.h: the statistics behind A/B experiments.
 *
 * Normal CDF and its inverse, Wilson intervals for a conversion rate, the
 * pooled two-proportion z-test, the per-variant sample size, and Thompson
 * sampling weights for bandit-style traffic allocation (with the small
 * seedable generator it needs).
 *
 * Everything here is a pure function of its arguments (the generator's
 * state is the caller's), allocates nothing and keeps no globals, so any
 * thread may call it.
 */
#ifndef RECD_EXP_STATS_H
#define RECD_EXP_STATS_H

#include <stdbool.h>
#include <stdint.h>

/* Arms exp_thompson_weights accepts: bounds its cost (draws * arms beta
 * samples) and lets callers size their arrays. */
#define EXP_STATS_MAX_ARMS 16

/* P(Z <= z) for a standard normal Z, accurate in both tails (erfc). */
double exp_norm_cdf(double z);
/* The z with P(Z <= z) = p: Acklam's rational approximation refined with
 * one Halley step. Error within 1e-15 * max(1, |z|) over all of (0, 1),
 * subnormal p included (checked against Python's NormalDist.inv_cdf).
 * p = 0 gives -INFINITY, p = 1 +INFINITY; p < 0, p > 1 or NaN give NAN. */
double exp_norm_ppf(double p);

struct exp_interval {
	double lo, hi;
};

/* Wilson score interval for a rate of `successes` out of `trials` at
 * `confidence` (e.g. 0.95), clipped to [0, 1]; lo is exactly 0 when there
 * are no successes and hi exactly 1 when every trial succeeded.
 * trials 0 gives {0, 1} (nothing is known); successes > trials or
 * confidence outside (0, 1) give {NAN, NAN}. */
struct exp_interval exp_wilson_interval(uint64_t successes, uint64_t trials, double confidence);

struct exp_ztest {
	double diff;    /* p_variant - p_control */
	double z;       /* diff / pooled standard error */
	double p_value; /* two-sided */
	bool valid;
};

/* Pooled two-proportion z-test of variant against control. valid is false
 * when a side has no trials, has more successes than trials, or the pooled
 * variance is 0 (both sides all-success or all-failure); then z = 0 and
 * p_value = 1, and diff is still filled when both sides have trials. */
struct exp_ztest exp_two_proportion_ztest(uint64_t s_control, uint64_t n_control,
					  uint64_t s_variant, uint64_t n_variant);

/* Per-variant sample size to detect a RELATIVE lift `min_detectable_effect`
 * (0.10: +10%) over `baseline_rate` with a two-sided test at `alpha` and
 * the given `power`:
 *   z_a = ppf(1 - alpha/2), z_b = ppf(power),
 *   p1 = baseline, p2 = baseline * (1 + mde), p_avg = (p1 + p2) / 2,
 *   n = (z_a + z_b)^2 * 2 * p_avg * (1 - p_avg) / (p2 - p1)^2,
 * truncated toward zero (Python's int()). 0.05, 0.10, 0.05, 0.8 -> 31234.
 * Invalid input gives 0: baseline, alpha or power outside (0, 1), mde 0 or
 * not finite, p2 outside (0, 1). An n too large for uint64_t gives
 * UINT64_MAX. */
uint64_t exp_sample_size(double baseline_rate, double min_detectable_effect, double alpha,
			 double power);
/* needed - have, or 0 once enough samples are in. */
uint64_t exp_samples_still_needed(uint64_t needed, uint64_t have);

/* xoshiro256** state. Seed it with exp_rng_seed; one per thread. */
struct exp_rng {
	uint64_t s[4];
};

/* Expand `seed` into the state with splitmix64 (any seed, 0 included). */
void exp_rng_seed(struct exp_rng *rng, uint64_t seed);
/* Next 64 random bits (xoshiro256**). */
uint64_t exp_rng_next(struct exp_rng *rng);
/* Uniform in [0, 1), 53 random bits. */
double exp_rng_uniform(struct exp_rng *rng);
/* Standard normal (Marsaglia polar; the second value is dropped so the
 * state stays four words). */
double exp_rng_normal(struct exp_rng *rng);
/* Gamma(shape, scale 1) (Marsaglia-Tsang; shape < 1 via the
 * Gamma(shape + 1) * U^(1/shape) boost). shape <= 0 or NaN gives NAN. */
double exp_rng_gamma(struct exp_rng *rng, double shape);
/* Beta(a, b) as X / (X + Y), X ~ Gamma(a), Y ~ Gamma(b). a or b <= 0 or
 * NaN gives NAN. */
double exp_rng_beta(struct exp_rng *rng, double a, double b);

/* Thompson sampling traffic weights for `n_arms` arms.
 *
 * Arm i's posterior is Beta(1 + s_i, 1 + n_i - s_i) (successes above trials
 * count as trials). In each of `draws` rounds every arm draws one sample;
 * p_best_i is the fraction of rounds arm i's sample was the largest (ties,
 * which need equal doubles, go to the lower index). draws 0 gives
 * p_best_i = 1 / n_arms. Then, with f = `weight_floor` (e.g. 0.05)
 * clamped to [0, 1/n_arms] (NaN: 0),
 *   weights_out[i] = f + (1 - n_arms * f) * p_best_i,
 * so every arm gets at least f and the weights sum to 1.
 * n_arms 0 writes nothing; n_arms > EXP_STATS_MAX_ARMS is a caller bug and
 * writes NAN into every weight so it cannot pass unnoticed. */
void exp_thompson_weights(uint32_t n_arms, const uint64_t *successes, const uint64_t *trials,
			  double weight_floor, uint32_t draws, struct exp_rng *rng, double *weights_out);

#endif
