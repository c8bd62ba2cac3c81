/* rec.c: the C recommendation path (see rec.h). */
#include <string.h>
#include <ck_pr.h>
#include <immintrin.h>
#include "rec/rec.h"

const char *const rec_strategy_names[] = {
	[REC_PERSONALIZED] = "personalized",
	[REC_SIMILAR] = "similar",
	[REC_POPULAR] = "popular",
	NULL,
};

/* Dot products over rows padded to 16 floats (64-byte aligned rows), with
 * independent vector accumulators: the compiler will not reassociate a
 * scalar float sum, so the lanes are spelled out with intrinsics. Two
 * kernels: AVX2+FMA (two 8-lane accumulators) and SSE (x86-64 baseline,
 * four 4-lane accumulators); the choice is made once, from CPUID. A whole
 * block of rows is scored per call so dispatch costs nothing per item.
 * The query may be unaligned (a caller's vector); rows never are. */
__attribute__((target("avx2,fma")))
static void score_rows_avx2(const float *q, const float *rows, uint32_t stride, uint32_t count, float *out)
{
	for (uint32_t r = 0; r < count; r++) {
		const float *row = rows + (size_t)r * stride;
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
		for (uint32_t i = 0; i < stride; i += 16) {
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_load_ps(row + i), a0);
			a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_load_ps(row + i + 8), a1);
		}
		__m256 a = _mm256_add_ps(a0, a1);
		__m128 t = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
		t = _mm_add_ps(t, _mm_movehl_ps(t, t));
		t = _mm_add_ss(t, _mm_shuffle_ps(t, t, 1));
		out[r] = _mm_cvtss_f32(t);
	}
}

static void score_rows_sse(const float *q, const float *rows, uint32_t stride, uint32_t count, float *out)
{
	for (uint32_t r = 0; r < count; r++) {
		const float *row = rows + (size_t)r * stride;
		__m128 a0 = _mm_setzero_ps(), a1 = _mm_setzero_ps(), a2 = _mm_setzero_ps(), a3 = _mm_setzero_ps();
		for (uint32_t i = 0; i < stride; i += 16) {
			a0 = _mm_add_ps(a0, _mm_mul_ps(_mm_loadu_ps(q + i), _mm_load_ps(row + i)));
			a1 = _mm_add_ps(a1, _mm_mul_ps(_mm_loadu_ps(q + i + 4), _mm_load_ps(row + i + 4)));
			a2 = _mm_add_ps(a2, _mm_mul_ps(_mm_loadu_ps(q + i + 8), _mm_load_ps(row + i + 8)));
			a3 = _mm_add_ps(a3, _mm_mul_ps(_mm_loadu_ps(q + i + 12), _mm_load_ps(row + i + 12)));
		}
		__m128 t = _mm_add_ps(_mm_add_ps(a0, a1), _mm_add_ps(a2, a3));
		t = _mm_add_ps(t, _mm_movehl_ps(t, t));
		t = _mm_add_ss(t, _mm_shuffle_ps(t, t, 1));
		out[r] = _mm_cvtss_f32(t);
	}
}

typedef void (*score_rows_fn)(const float *, const float *, uint32_t, uint32_t, float *);

static score_rows_fn score_rows_pick(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return score_rows_avx2;
	return score_rows_sse;
}

static void rec_score_rows(const float *q, const float *rows, uint32_t stride, uint32_t count, float *out)
{
	/* Racing first calls store the same value: benign. */
	static score_rows_fn fn;
	score_rows_fn f = ck_pr_load_ptr(&fn);
	if (unlikely(!f)) {
		f = score_rows_pick();
		ck_pr_store_ptr(&fn, (void *)f);
	}
	f(q, rows, stride, count, out);
}

const char *rec_kernel_name(void)
{
	return score_rows_pick() == score_rows_avx2 ? "avx2+fma" : "sse";
}

float rec_dot(const float *a, const float *b, uint32_t stride)
{
	float r;
	rec_score_rows(a, b, stride, 1, &r);
	return r;
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

#define REC_SCAN_BLOCK 256

uint32_t rec_topk_exact(const struct snap *s, const float *query, uint32_t k, int64_t exclude,
			struct rec_item *out)
{
	float scores[REC_SCAN_BLOCK];
	uint32_t n = 0;
	if (k == 0)
		return 0;
	for (uint32_t base = 0; base < s->n_items; base += REC_SCAN_BLOCK) {
		uint32_t count = MIN(REC_SCAN_BLOCK, s->n_items - base);
		rec_score_rows(query, snap_item_vec(s, base), s->stride, count, scores);
		for (uint32_t j = 0; j < count; j++) {
			uint32_t i = base + j;
			struct rec_item it = { i, scores[j] };
			/* Cheap rejection first: most items lose to the k-th best. */
			if (n == k && !rec_better(it, out[0]))
				continue;
			if (unlikely(!snap_item_servable(s, i)) || (int64_t)i == exclude)
				continue;
			heap_push(out, &n, k, it);
		}
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
