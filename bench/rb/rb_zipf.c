/* rb_zipf.c: the Zipf table (see rb_zipf.h). */
#include "rb_zipf.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>

int rb_zipf_init(struct rb_zipf *z, size_t n, double s)
{
	if (n < 1 || !(s >= 0.0))
		return -EINVAL;
	z->cdf = malloc(n * sizeof(*z->cdf));
	if (!z->cdf)
		return -ENOMEM;
	z->n = n;
	z->s = s;
	/* Kahan summation: a million small terms would otherwise drift. */
	double sum = 0.0, c = 0.0;
	for (size_t k = 0; k < n; k++) {
		double y = pow((double)(k + 1), -s) - c, t = sum + y;
		c = (t - sum) - y;
		sum = t;
		z->cdf[k] = sum;
	}
	for (size_t k = 0; k < n; k++)
		z->cdf[k] /= sum;
	z->cdf[n - 1] = 1.0; /* u < 1 always lands on a rank */
	return 0;
}

void rb_zipf_free(struct rb_zipf *z)
{
	free(z->cdf);
	z->cdf = NULL;
	z->n = 0;
}

double rb_zipf_prob(const struct rb_zipf *z, size_t k)
{
	return k == 0 ? z->cdf[0] : z->cdf[k] - z->cdf[k - 1];
}
