/* foldin.c: ALS fold-in, the Gram matrix and the shared Cholesky solve
 * (see foldin.h for the maths and the contract).
 *
 * The Gram kernels keep a 4 x 8 tile of the lower triangle in registers
 * while they run over a block of rows, so each entry is read and written
 * once per block instead of once per row. Within a tile every entry still
 * adds its products in row order, and float x float is exact in double (48
 * significant bits), so a fused multiply-add rounds exactly as a multiply
 * then an add: both kernels, and any split into steps, give the same bits
 * as the plain triple loop recd-train used to run.
 *
 * The solve is plain C on purpose: recd-train's output must not depend on
 * the CPU, and contracting ya * y[b] + A (not exact) into an FMA would.
 */
#include <errno.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include "live/foldin.h"

const struct foldin_params foldin_default_params = { .lambda = 0.1, .alpha = 10, .prior = 0, .log_eps = 0 };

/* ------------------------------------------------------------- Y'Y */

int foldin_gram_init(struct foldin_gram *g, uint32_t dim)
{
	memset(g, 0, sizeof(*g));
	if (!dim)
		return -EINVAL;
	uint32_t ld = (dim + 7u) & ~7u;
	g->dim = dim;
	g->ld = ld;
	g->m = malloc(sizeof(double) * dim * dim);
	g->acc = aligned_alloc(32, sizeof(double) * ld * ld);
	g->rows = aligned_alloc(32, sizeof(double) * ld * FOLDIN_GRAM_BLOCK);
	if (!g->m || !g->acc || !g->rows) {
		foldin_gram_free(g);
		return -ENOMEM;
	}
	foldin_gram_reset(g);
	return 0;
}

void foldin_gram_free(struct foldin_gram *g)
{
	free(g->m);
	free(g->acc);
	free(g->rows);
	memset(g, 0, sizeof(*g));
}

void foldin_gram_reset(struct foldin_gram *g)
{
	memset(g->acc, 0, sizeof(double) * g->ld * g->ld);
	g->ready = false;
	g->snap = NULL;
	g->generation = 0;
	g->next = 0;
}

/* Tiles: rows a0..a0+3 of the triangle, columns b0..b0+7, for every
 * b0 <= a0 + 3 (the part above the diagonal is summed and ignored). */
static void tiles_portable(double *acc, const double *rows, uint32_t ld, uint32_t dim, uint32_t nr)
{
	for (uint32_t a0 = 0; a0 < dim; a0 += 4)
		for (uint32_t b0 = 0; b0 <= a0 + 3 && b0 < dim; b0 += 8) {
			double t[4][8];
			for (uint32_t i = 0; i < 4; i++)
				memcpy(t[i], acc + (size_t)(a0 + i) * ld + b0, sizeof(t[i]));
			for (uint32_t r = 0; r < nr; r++) {
				const double *y = rows + (size_t)r * ld;
				for (uint32_t i = 0; i < 4; i++)
					for (uint32_t j = 0; j < 8; j++)
						t[i][j] += y[a0 + i] * y[b0 + j];
			}
			for (uint32_t i = 0; i < 4; i++)
				memcpy(acc + (size_t)(a0 + i) * ld + b0, t[i], sizeof(t[i]));
		}
}

__attribute__((target("avx2,fma")))
static void tiles_avx2(double *acc, const double *rows, uint32_t ld, uint32_t dim, uint32_t nr)
{
	for (uint32_t a0 = 0; a0 < dim; a0 += 4)
		for (uint32_t b0 = 0; b0 <= a0 + 3 && b0 < dim; b0 += 8) {
			double *c0 = acc + (size_t)a0 * ld + b0, *c1 = c0 + ld, *c2 = c1 + ld, *c3 = c2 + ld;
			__m256d t00 = _mm256_load_pd(c0), t01 = _mm256_load_pd(c0 + 4);
			__m256d t10 = _mm256_load_pd(c1), t11 = _mm256_load_pd(c1 + 4);
			__m256d t20 = _mm256_load_pd(c2), t21 = _mm256_load_pd(c2 + 4);
			__m256d t30 = _mm256_load_pd(c3), t31 = _mm256_load_pd(c3 + 4);
			for (uint32_t r = 0; r < nr; r++) {
				const double *y = rows + (size_t)r * ld;
				__m256d b0v = _mm256_load_pd(y + b0), b1v = _mm256_load_pd(y + b0 + 4);
				__m256d a = _mm256_broadcast_sd(y + a0);
				t00 = _mm256_fmadd_pd(a, b0v, t00);
				t01 = _mm256_fmadd_pd(a, b1v, t01);
				a = _mm256_broadcast_sd(y + a0 + 1);
				t10 = _mm256_fmadd_pd(a, b0v, t10);
				t11 = _mm256_fmadd_pd(a, b1v, t11);
				a = _mm256_broadcast_sd(y + a0 + 2);
				t20 = _mm256_fmadd_pd(a, b0v, t20);
				t21 = _mm256_fmadd_pd(a, b1v, t21);
				a = _mm256_broadcast_sd(y + a0 + 3);
				t30 = _mm256_fmadd_pd(a, b0v, t30);
				t31 = _mm256_fmadd_pd(a, b1v, t31);
			}
			_mm256_store_pd(c0, t00), _mm256_store_pd(c0 + 4, t01);
			_mm256_store_pd(c1, t10), _mm256_store_pd(c1 + 4, t11);
			_mm256_store_pd(c2, t20), _mm256_store_pd(c2 + 4, t21);
			_mm256_store_pd(c3, t30), _mm256_store_pd(c3 + 4, t31);
		}
}

static bool have_avx2(void)
{
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

void foldin_gram_add(struct foldin_gram *g, const float *rows, size_t stride, uint64_t n)
{
	uint32_t dim = g->dim, ld = g->ld;
	bool fast = !g->portable && have_avx2();
	g->ready = false;
	for (uint64_t r0 = 0; r0 < n; r0 += FOLDIN_GRAM_BLOCK) {
		uint32_t nr = (uint32_t)MIN((uint64_t)FOLDIN_GRAM_BLOCK, n - r0);
		/* Converted once here, read by every tile; the padding stays 0. */
		for (uint32_t r = 0; r < nr; r++) {
			const float *src = rows + (size_t)(r0 + r) * stride;
			double *dst = g->rows + (size_t)r * ld;
			for (uint32_t d = 0; d < dim; d++)
				dst[d] = (double)src[d];
			for (uint32_t d = dim; d < ld; d++)
				dst[d] = 0;
		}
		if (fast)
			tiles_avx2(g->acc, g->rows, ld, dim, nr);
		else
			tiles_portable(g->acc, g->rows, ld, dim, nr);
	}
}

void foldin_gram_finish(struct foldin_gram *g)
{
	uint32_t d = g->dim;
	for (uint32_t a = 0; a < d; a++)
		for (uint32_t b = 0; b <= a; b++) {
			double v = g->acc[(size_t)a * g->ld + b];
			g->m[(size_t)a * d + b] = v;
			g->m[(size_t)b * d + a] = v;
		}
	g->ready = true;
}

int foldin_gram_begin(struct foldin_gram *g, const struct snap *s)
{
	if (g->dim != s->dim || !g->m) {
		foldin_gram_free(g);
		int r = foldin_gram_init(g, s->dim);
		if (r)
			return r;
	} else {
		foldin_gram_reset(g);
	}
	g->snap = s;
	g->generation = s->generation;
	return 0;
}

int foldin_gram_step(struct foldin_gram *g, const struct snap *s, uint32_t max_rows)
{
	if (g->snap != s || g->generation != s->generation || g->dim != s->dim)
		return -ESTALE;
	if (g->ready)
		return 1;
	uint32_t n = MIN(max_rows, s->n_items - g->next);
	foldin_gram_add(g, snap_item_vec(s, g->next), s->stride, n);
	g->next += n;
	if (g->next < s->n_items)
		return 0;
	foldin_gram_finish(g);
	return 1;
}

int foldin_gram_build(const struct snap *s, struct foldin_gram *g)
{
	int r = foldin_gram_begin(g, s);
	return r ? r : foldin_gram_step(g, s, UINT32_MAX) == 1 ? 0 : -ESTALE;
}

bool foldin_gram_matches(const struct foldin_gram *g, const struct snap *s)
{
	return g->ready && g->snap == s && g->generation == s->generation && g->dim == s->dim &&
	       g->next == s->n_items;
}

/* ----------------------------------------------------------- solve */

/* In-place Cholesky of the lower triangle of a (d x d, row-major), then
 * a x = b into x. false when a is not positive definite.
 *
 * Right-looking: once column j of L is known, it is subtracted from the
 * rest of the triangle at once. Each entry still loses its terms
 * l_ik l_jk in the order k = 0, 1, ..., as in the textbook dot-product
 * form (recd-train's former solver: same bits), but the updates of one
 * step are independent of each other and run along rows, so they
 * vectorise instead of waiting on one long chain of dependent
 * subtractions. col: d doubles of scratch. */
static bool chol_solve(double *a, const double *b, double *x, double *col, uint32_t d)
{
	for (uint32_t j = 0; j < d; j++) {
		double s = a[(size_t)j * d + j];
		if (!(s > 0))
			return false;
		double l = sqrt(s);
		a[(size_t)j * d + j] = l;
		for (uint32_t i = j + 1; i < d; i++)
			col[i] = a[(size_t)i * d + j] = a[(size_t)i * d + j] / l;
		for (uint32_t i = j + 1; i < d; i++) {
			double *ai = a + (size_t)i * d;
			double lij = col[i];
			for (uint32_t k = j + 1; k <= i; k++)
				ai[k] -= lij * col[k];
		}
	}
	for (uint32_t i = 0; i < d; i++) {      /* L z = b */
		double t = b[i];
		for (uint32_t k = 0; k < i; k++)
			t -= a[(size_t)i * d + k] * x[k];
		x[i] = t / a[(size_t)i * d + i];
	}
	for (uint32_t i = d; i-- > 0;) {        /* L' x = z */
		double t = x[i];
		for (uint32_t k = i + 1; k < d; k++)
			t -= a[(size_t)k * d + i] * x[k];
		x[i] = t / a[(size_t)i * d + i];
	}
	return true;
}

int foldin_solve_rows(const double *gram, uint32_t dim, const float *emb, size_t stride, const uint32_t *items,
		      const float *strength, uint32_t n, const float *x0, const struct foldin_params *p,
		      double *scratch, float *out)
{
	size_t d = dim;
	double *A = scratch, *bv = A + d * d, *x = bv + d, *yd = x + d;
	bool pull = x0 && p->prior > 0;
	double reg = p->lambda + (pull ? p->prior : 0.0);
	memcpy(A, gram, sizeof(double) * d * d);
	for (size_t a = 0; a < d; a++) {
		A[a * d + a] += reg;
		bv[a] = pull ? p->prior * (double)x0[a] : 0;
	}
	/* Only the lower triangle: chol_solve reads nothing else. */
	for (uint32_t k = 0; k < n; k++) {
		const float *y = emb + (size_t)items[k] * stride;
		double c = foldin_confidence(p, strength[k]);
		for (size_t a = 0; a < d; a++)
			yd[a] = (double)y[a];
		for (size_t a = 0; a < d; a++) {
			double ya = (c - 1.0) * yd[a];
			double *Ar = A + a * d;
			for (size_t b = 0; b <= a; b++)
				Ar[b] += ya * yd[b];
			bv[a] += c * yd[a];
		}
	}
	if (!chol_solve(A, bv, x, yd, dim)) {
		memset(out, 0, sizeof(float) * d);
		return -EDOM;
	}
	for (size_t a = 0; a < d; a++)
		out[a] = (float)x[a];
	return 0;
}

int foldin_solve(const struct foldin_gram *g, const struct snap *s, const uint32_t *items, const float *strength,
		 uint32_t n, const float *x0, const struct foldin_params *p, double *scratch, float *out)
{
	if (!foldin_gram_matches(g, s))
		return -ESTALE;
	for (uint32_t k = 0; k < n; k++)
		if (items[k] >= s->n_items)
			return -EINVAL;
	if (!n && !(x0 && p->prior > 0)) {
		memset(out, 0, sizeof(float) * s->dim);
		return -ENODATA;
	}
	return foldin_solve_rows(g->m, s->dim, s->item_emb, s->stride, items, strength, n, x0, p, scratch, out);
}

/* ---------------------------------------------------- live touches */

float foldin_touch_strength(uint8_t type)
{
	switch (type) {
	case EVENT_PURCHASE: return 1.0f;
	case EVENT_ADD_TO_CART: return 0.6f;
	case EVENT_CLICK: return 0.3f;
	case EVENT_VIEW: return 0.2f;
	default: return 0.0f;
	}
}

static bool recent_has(const struct live_user *u, uint64_t key, uint8_t type)
{
	for (uint32_t i = 0; i < u->n_recent; i++)
		if (u->recent[i].item_key == key && u->recent[i].type == type)
			return true;
	return false;
}

/* Add r to item `key`'s pair among the first `search` (merge) or append
 * one; returns the new count. */
static uint32_t put(const struct snap *s, uint64_t key, float r, uint32_t *items, float *strength, uint32_t n,
		    uint32_t search, uint32_t cap)
{
	int64_t idx = snap_item_find_key(s, key);
	if (idx < 0)
		return n;
	for (uint32_t k = 0; k < search; k++)
		if (items[k] == (uint32_t)idx) {
			strength[k] += r;
			return n;
		}
	if (n == cap)
		return n;
	items[n] = (uint32_t)idx;
	strength[n] = r;
	return n + 1;
}

uint32_t foldin_user_inputs(const struct snap *s, const struct live_user *u, uint32_t *items, float *strength,
			    uint32_t cap)
{
	if (!u)
		return 0;
	uint32_t n = 0;
	for (uint32_t i = 0; i < u->n_recent; i++) {
		float r = foldin_touch_strength(u->recent[i].type);
		if (r > 0)
			n = put(s, u->recent[i].item_key, r, items, strength, n, n, cap);
	}
	for (uint32_t i = 0; i < u->n_cart; i++)
		if (!recent_has(u, u->cart[i], EVENT_ADD_TO_CART))
			n = put(s, u->cart[i], foldin_touch_strength(EVENT_ADD_TO_CART), items, strength, n, n, cap);
	/* Purchased keys are distinct: each merges only with what recent[]
	 * and the cart gave, which bounds the search at 64 pairs. */
	uint32_t touched = n;
	const struct live_keyset *ks = u->purchased;
	for (uint32_t i = ks ? ks->n : 0; i-- > 0;)
		if (!recent_has(u, ks->order[i], EVENT_PURCHASE))
			n = put(s, ks->order[i], foldin_touch_strength(EVENT_PURCHASE), items, strength, n, touched, cap);
	return n;
}
