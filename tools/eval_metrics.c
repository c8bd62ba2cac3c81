/* eval_metrics.c: see eval_metrics.h. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include "eval_metrics.h"

static bool has(const uint32_t *rel, uint32_t n, uint32_t item)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (rel[mid] < item)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && rel[lo] == item;
}

void qm_score(const uint32_t *list, uint32_t n, const uint32_t *rel, uint32_t n_rel, uint32_t n_rel_total,
	      uint32_t k, struct qm_scores *out)
{
	*out = (struct qm_scores){ 0, 0, 0, 0 };
	if (!n_rel_total || !k)
		return;
	uint32_t m = n < k ? n : k, hits = 0;
	double dcg = 0, ap = 0;
	for (uint32_t r = 0; r < m; r++) {
		bool dup = false;
		for (uint32_t q = 0; q < r && !dup; q++)
			dup = list[q] == list[r];
		if (dup || !has(rel, n_rel, list[r]))
			continue;   /* a repeated item is never a second hit */
		hits++;
		dcg += 1.0 / log2((double)r + 2.0);
		ap += (double)hits / (double)(r + 1);
	}
	uint32_t ideal = n_rel_total < k ? n_rel_total : k;
	double idcg = 0;
	for (uint32_t r = 0; r < ideal; r++)
		idcg += 1.0 / log2((double)r + 2.0);
	out->hr = hits ? 1.0 : 0.0;
	out->ndcg = dcg / idcg;
	out->ap = ap / (double)ideal;
	out->recall = (double)hits / (double)n_rel_total;
}

uint32_t qm_distinct(const uint32_t *cats, uint32_t n)
{
	uint32_t d = 0;
	for (uint32_t i = 0; i < n; i++) {
		bool seen = false;
		for (uint32_t j = 0; j < i && !seen; j++)
			seen = cats[j] == cats[i];
		d += !seen;
	}
	return d;
}

/* A min-heap of the k best so far, root = the worst kept. */
static bool worse(const double *s, uint32_t a, uint32_t b)
{
	return s[a] < s[b] || (s[a] == s[b] && a > b);
}

static void sift_down(const double *s, uint32_t *h, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, w = i;
		if (l < n && worse(s, h[l], h[w]))
			w = l;
		if (r < n && worse(s, h[r], h[w]))
			w = r;
		if (w == i)
			return;
		uint32_t t = h[i];
		h[i] = h[w];
		h[w] = t;
		i = w;
	}
}

uint32_t qm_topk(const double *score, uint32_t n, const uint8_t *skip, uint32_t k, uint32_t *out)
{
	uint32_t m = 0;
	if (!k)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		if ((skip && skip[i]) || score[i] == -INFINITY || score[i] != score[i])
			continue;
		if (m < k) {
			out[m++] = i;
			if (m == k)
				for (uint32_t j = k / 2 + 1; j-- > 0;)
					sift_down(score, out, m, j);
		} else if (worse(score, out[0], i)) {
			out[0] = i;
			sift_down(score, out, m, 0);
		}
	}
	/* Sort best first (insertion: k is small). */
	for (uint32_t i = 1; i < m; i++) {
		uint32_t v = out[i], j = i;
		while (j > 0 && worse(score, out[j - 1], v)) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = v;
	}
	return m;
}
