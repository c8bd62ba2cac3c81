/* rb_hist.h: the load generator's latency histogram: log-linear buckets
 * in the HDR style (each power of two split into 128 linear steps), so
 * every value from 1 ns to 17 s is kept within 0.4% relative error in a
 * fixed 28 KiB array. Recording is an index computation and an increment;
 * histograms of the same shape merge by adding counts, which is how the
 * per-thread and per-second histograms are combined.
 */
#ifndef RB_HIST_H
#define RB_HIST_H

#include <stdbool.h>
#include <stdint.h>

#define RB_HIST_SUB_BITS 8                         /* 2^8 values below the first doubling */
#define RB_HIST_HALF (1u << (RB_HIST_SUB_BITS - 1)) /* linear steps per power of two */
#define RB_HIST_MAX_NS ((1ull << 34) - 1)           /* ~17.2 s: above the 10 s goal */
#define RB_HIST_BUCKETS (28 * RB_HIST_HALF)         /* index of RB_HIST_MAX_NS, plus one */

struct rb_hist {
	uint64_t total;     /* values recorded */
	uint64_t saturated; /* values above RB_HIST_MAX_NS, recorded as the maximum */
	uint64_t min, max;  /* exact, in ns (min is UINT64_MAX while empty) */
	double sum;         /* for the mean */
	uint64_t counts[RB_HIST_BUCKETS];
};

void rb_hist_init(struct rb_hist *h);

static inline unsigned rb_hist_index(uint64_t v)
{
	if (v < 2 * RB_HIST_HALF)
		return (unsigned)v;
	unsigned e = (unsigned)(63 - __builtin_clzll(v)) - (RB_HIST_SUB_BITS - 1);
	return e * RB_HIST_HALF + (unsigned)(v >> e);
}

/* Record one value in nanoseconds. */
static inline void rb_hist_record(struct rb_hist *h, uint64_t ns)
{
	if (ns > RB_HIST_MAX_NS) {
		h->saturated++;
		ns = RB_HIST_MAX_NS;
	}
	h->counts[rb_hist_index(ns)]++;
	h->total++;
	h->sum += (double)ns;
	if (ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
}

/* Lowest value and width of bucket `idx`. */
void rb_hist_bucket(unsigned idx, uint64_t *low, uint64_t *width);

/* Add every count of `src` into `dst`. */
void rb_hist_merge(struct rb_hist *dst, const struct rb_hist *src);

/* The value at percentile p (0..100) in ns: the midpoint of the bucket that
 * holds the rank ceil(p% of total), clamped to the exact min and max;
 * p = 100 is the exact max. 0 when empty. */
uint64_t rb_hist_percentile(const struct rb_hist *h, double p);

double rb_hist_mean(const struct rb_hist *h);

/* How many values were recorded at or above `ns`, to bucket precision
 * (a bucket counts when its midpoint is >= ns). */
uint64_t rb_hist_count_above(const struct rb_hist *h, uint64_t ns);

#endif
