/* rb_zipf.h: Zipf-distributed ranks for the workload (a few users and
 * items draw most of the traffic, as on a real shop). Exact inverse-CDF
 * sampling over a precomputed table: P(rank k) = (k+1)^-s / H(n, s).
 */
#ifndef RB_ZIPF_H
#define RB_ZIPF_H

#include <stddef.h>
#include <stdint.h>
#include "rb_rng.h"

struct rb_zipf {
	size_t n;
	double s;
	double *cdf; /* cdf[k] = P(rank <= k); cdf[n-1] == 1 */
};

/* n >= 1 ranks, exponent s >= 0 (0 is uniform). 0 or -ENOMEM / -EINVAL. */
int rb_zipf_init(struct rb_zipf *z, size_t n, double s);
void rb_zipf_free(struct rb_zipf *z);

/* Probability of rank k under the distribution (for tests and reports). */
double rb_zipf_prob(const struct rb_zipf *z, size_t k);

/* A rank in [0, n): 0 is the most frequent. */
static inline size_t rb_zipf_sample(const struct rb_zipf *z, struct rb_rng *r)
{
	double u = rb_rng_unit(r);
	size_t lo = 0, hi = z->n - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

#endif
