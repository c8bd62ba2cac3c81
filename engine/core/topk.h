/* topk.h: keeping the best k (item, score) pairs of a stream, shared by
 * the exact scan, the ANN search and the snapshot builder.
 *
 * A min-heap on "better": h[0] is the weakest kept, so a candidate costs
 * one compare unless it beats the current k-th best. Ties go to the lower
 * item index, which makes every result independent of scan order.
 */
#ifndef RECD_TOPK_H
#define RECD_TOPK_H

#include "core/common.h"

struct topk_item {
	uint32_t item;
	float score;
};

static inline bool topk_better(struct topk_item a, struct topk_item b)
{
	return a.score > b.score || (a.score == b.score && a.item < b.item);
}

static inline void topk_sift_down(struct topk_item *h, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && topk_better(h[m], h[l]))
			m = l;
		if (r < n && topk_better(h[m], h[r]))
			m = r;
		if (m == i)
			return;
		struct topk_item t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/* Would `it` enter a heap of n (of capacity k)? */
static inline bool topk_admits(const struct topk_item *h, uint32_t n, uint32_t k, struct topk_item it)
{
	return n < k || topk_better(it, h[0]);
}

static inline void topk_push(struct topk_item *h, uint32_t *n, uint32_t k, struct topk_item it)
{
	if (*n < k) {
		uint32_t i = (*n)++;
		h[i] = it;
		while (i > 0) {
			uint32_t p = (i - 1) / 2;
			if (!topk_better(h[p], h[i]))
				break;
			struct topk_item t = h[i];
			h[i] = h[p];
			h[p] = t;
			i = p;
		}
	} else if (topk_better(it, h[0])) {
		h[0] = it;
		topk_sift_down(h, *n, 0);
	}
}

/* Heap to best-first order, in place (heap sort of a min-heap). */
static inline void topk_sort(struct topk_item *h, uint32_t n)
{
	for (uint32_t end = n; end > 1; end--) {
		struct topk_item t = h[0];
		h[0] = h[end - 1];
		h[end - 1] = t;
		topk_sift_down(h, end - 1, 0);
	}
}

#endif
