/* rb_hist.c: percentiles and merging of the log-linear histogram
 * (recording is inline in rb_hist.h).
 */
#include "rb_hist.h"
#include <math.h>
#include <string.h>

void rb_hist_init(struct rb_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void rb_hist_bucket(unsigned idx, uint64_t *low, uint64_t *width)
{
	if (idx < 2 * RB_HIST_HALF) {
		*low = idx;
		*width = 1;
		return;
	}
	unsigned e = idx / RB_HIST_HALF - 1;
	*low = (uint64_t)(idx - e * RB_HIST_HALF) << e;
	*width = 1ull << e;
}

void rb_hist_merge(struct rb_hist *dst, const struct rb_hist *src)
{
	if (!src->total)
		return;
	for (unsigned i = 0; i < RB_HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->saturated += src->saturated;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t rb_hist_percentile(const struct rb_hist *h, double p)
{
	if (!h->total)
		return 0;
	if (p >= 100.0)
		return h->max;
	if (p <= 0.0)
		return h->min;
	/* rank in 1..total; the small epsilon keeps 99.9% of 1000 at 999 */
	uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total - 1e-9);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < RB_HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t low, width;
			rb_hist_bucket(i, &low, &width);
			uint64_t v = low + width / 2;
			if (v < h->min)
				v = h->min;
			if (v > h->max)
				v = h->max;
			return v;
		}
	}
	return h->max;
}

double rb_hist_mean(const struct rb_hist *h)
{
	return h->total ? h->sum / (double)h->total : 0.0;
}

uint64_t rb_hist_count_above(const struct rb_hist *h, uint64_t ns)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < RB_HIST_BUCKETS; i++) {
		uint64_t low, width;
		rb_hist_bucket(i, &low, &width);
		if (low + width / 2 >= ns)
			n += h->counts[i];
	}
	return n;
}
