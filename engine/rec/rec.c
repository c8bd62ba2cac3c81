/* rec.c: the C recommendation path (see rec.h). */
#include <string.h>
#include "rec/rec.h"

const char *const rec_strategy_names[] = {
	[REC_PERSONALIZED] = "personalized",
	[REC_SIMILAR] = "similar",
	[REC_POPULAR] = "popular",
	NULL,
};

/* Sixteen independent lanes: the compiler maps this onto whatever vector
 * width the clone targets (2x AVX, 4x SSE) without reassociating a
 * floating-point sum, which it would refuse to do for a scalar loop. The
 * haswell clone adds FMA; glibc's ifunc picks the clone once at load. */
typedef float v16sf __attribute__((vector_size(64), aligned(4)));

__attribute__((target_clones("arch=haswell", "default")))
float rec_dot(const float *a, const float *b, uint32_t stride)
{
	v16sf acc = {0};
	for (uint32_t i = 0; i < stride; i += 16) {
		v16sf va, vb;
		memcpy(&va, a + i, sizeof(va));
		memcpy(&vb, b + i, sizeof(vb));
		acc += va * vb;
	}
	float sum = 0;
	for (int j = 0; j < 16; j++)
		sum += acc[j];
	return sum;
}

/* A min-heap of the best k so far: out[0] is the weakest, so a candidate
 * costs one compare unless it beats the current k-th best. Ties go to the
 * lower item index, which makes results independent of scan order. */
static inline bool rec_better(struct rec_item a, struct rec_item b)
{
	return a.score > b.score || (a.score == b.score && a.item < b.item);
}

static void heap_sift_down(struct rec_item *h, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && rec_better(h[m], h[l]))
			m = l;
		if (r < n && rec_better(h[m], h[r]))
			m = r;
		if (m == i)
			return;
		struct rec_item t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void heap_push(struct rec_item *h, uint32_t *n, uint32_t k, struct rec_item it)
{
	if (*n < k) {
		uint32_t i = (*n)++;
		h[i] = it;
		while (i > 0) {
			uint32_t p = (i - 1) / 2;
			if (!rec_better(h[p], h[i]))
				break;
			struct rec_item t = h[i];
			h[i] = h[p];
			h[p] = t;
			i = p;
		}
	} else if (rec_better(it, h[0])) {
		h[0] = it;
		heap_sift_down(h, *n, 0);
	}
}

/* Heap to best-first order, in place (heap sort of a min-heap). */
static void heap_sort_best_first(struct rec_item *h, uint32_t n)
{
	for (uint32_t end = n; end > 1; end--) {
		struct rec_item t = h[0];
		h[0] = h[end - 1];
		h[end - 1] = t;
		heap_sift_down(h, end - 1, 0);
	}
}

uint32_t rec_topk_exact(const struct snap *s, const float *query, uint32_t k, int64_t exclude,
			struct rec_item *out)
{
	uint32_t n = 0;
	if (k == 0)
		return 0;
	for (uint32_t i = 0; i < s->n_items; i++) {
		if (unlikely(!snap_item_servable(s, i)) || (int64_t)i == exclude)
			continue;
		struct rec_item it = { i, rec_dot(query, snap_item_vec(s, i), s->stride) };
		heap_push(out, &n, k, it);
	}
	heap_sort_best_first(out, n);
	return n;
}

uint32_t rec_popular(const struct snap *s, uint32_t k, int64_t exclude, struct rec_item *out)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->n_popular && n < k; i++) {
		uint32_t item = s->popular[i];
		if (!snap_item_servable(s, item) || (int64_t)item == exclude)
			continue;
		out[n].item = item;
		out[n].score = s->item_popularity[item];
		n++;
	}
	return n;
}

uint32_t rec_recommend(const struct rec_query *q, struct rec_item *out, enum rec_strategy *strategy)
{
	const struct snap *s = q->snap;
	if (q->item >= 0) {
		*strategy = REC_SIMILAR;
		return rec_topk_exact(s, snap_item_vec(s, (uint32_t)q->item), q->n, q->item, out);
	}
	if (q->user >= 0 && s->user_emb) {
		*strategy = REC_PERSONALIZED;
		return rec_topk_exact(s, snap_user_vec(s, (uint32_t)q->user), q->n, -1, out);
	}
	*strategy = REC_POPULAR;
	return rec_popular(s, q->n, -1, out);
}
