/* ann.c: building and searching the IVF index (contract in ann.h, layout
 * in snap/snap_format.h).
 *
 * Theory of operation.
 *  Build (offline, deterministic): k-means on a seeded sample of the
 *  items gives nlist centroids; every item joins the list of its nearest
 *  centroid in L2, and what is stored is its residual (vector minus
 *  centroid) quantised to int8. L2 assignment rather than inner-product
 *  assignment: for an item x in list c, <q,x> = <q,c> + <q,x-c>, and
 *  |<q,x-c>| <= |q| |x-c|, so the list that minimises |x-c| is the one
 *  whose centroid score predicts the item's score best; assigning by
 *  <x,c> favours long centroids, which swell into a few huge lists and
 *  make that error term larger (reasoned, not yet measured here: the
 *  1M x 64 lists come out balanced enough, longest 2,437 of mean 500).
 *  Search: score every centroid (blocked kernel, no horizontal sums),
 *  probe the best nprobe lists, score their codes with an int8 kernel
 *  (the query is quantised too: one int8 x int8 dot product is 2
 *  instructions per 32 dimensions) as centroid score + residual score,
 *  keep the best R = max(k * rerank, ANN_MIN_CANDIDATES) candidates that
 *  pass the filter, then re-score those exactly from the float rows and
 *  return the best k. The quantisation error only decides who reaches
 *  the short list, never the final order or scores.
 *  Filters: a candidate is checked (servable, exclude, keep callback) only
 *  once its approximate score would enter the short list, so a filter
 *  costs per candidate, not per item scanned. If the probed lists yield
 *  fewer than k valid items, the next-best lists are probed, doubling the
 *  count each round, until k are found or every list was scanned: a
 *  filtered query returns k results whenever k valid items exist.
 *  Memory: a search touches the scratch (sized per worker) and the
 *  mapping; nothing is allocated.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ann/ann.h"
#include "core/simd.h"
#include "snap/snap.h"

#define ANN_BLOCK 256u              /* codes scored per kernel call */
#define ANN_MAX_RERANK 16u          /* scratch holds max_k * this candidates */
#define ANN_DEFAULT_ITERS 8u
#define ANN_DEFAULT_SAMPLE 32u      /* training points per list */

__attribute__((format(printf, 3, 4)))
static int aerr(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static inline uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Round to nearest, clamp to the symmetric int8 range. floorf keeps the
 * result identical on every machine (no rounding-mode dependence). */
static inline int8_t q8(float v)
{
	float r = floorf(v + 0.5f);
	if (r > 127.0f)
		r = 127.0f;
	if (r < -127.0f)
		r = -127.0f;
	return (int8_t)r;
}

/* Build-time float dot product of unpadded rows; eight partial sums so the
 * compiler can keep them in one vector register. */
static float dotf(const float *a, const float *b, uint32_t dim)
{
	float acc[8] = { 0 };
	uint32_t d = 0;
	for (; d + 8 <= dim; d += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += a[d + j] * b[d + j];
	for (; d < dim; d++)
		acc[d % 8] += a[d] * b[d];
	return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void block_centroids(const float *rows, uint32_t nlist, uint32_t dim, float *blocks)
{
	uint32_t nb = (nlist + 7) / 8;
	memset(blocks, 0, (size_t)nb * dim * 8 * sizeof(float));
	for (uint32_t l = 0; l < nlist; l++)
		for (uint32_t d = 0; d < dim; d++)
			blocks[((size_t)(l / 8) * dim + d) * 8 + l % 8] = rows[(size_t)l * dim + d];
}

/* ---- query preparation, shared by search and the build ---- */

/* Quantise the query for the code kernel; returns the factor that turns
 * the int dot product into a float score (0 for a zero query) and sets
 * *cst to the part of the score every code shares (<q, offset>). */
static float prep_query(const struct ann_index *ix, const float *q, float *qf, int8_t *qi, float *cst)
{
	float m = 0, c = 0;
	for (uint32_t d = 0; d < ix->dim; d++) {
		if (ix->quant == SNAP_ANN_QUANT_DIM) {
			qf[d] = q[d] * ix->dim_scale[d];
			c += q[d] * ix->dim_offset[d];
		} else {
			qf[d] = q[d];
		}
		m = MAX(m, fabsf(qf[d]));
	}
	memset(qi, 0, ix->code_dim);
	*cst = c;
	if (!(m > 0))
		return 0;
	float inv = 127.0f / m;
	for (uint32_t d = 0; d < ix->dim; d++)
		qi[d] = q8(qf[d] * inv);
	return m / 127.0f;
}

/* ---- build ---- */

struct assigner {
	const struct simd_ops *ops;
	float *blocks, *half_norm, *scores;
	uint32_t nlist, dim;
};

static int assigner_init(struct assigner *a, uint32_t nlist, uint32_t dim)
{
	uint32_t nb = (nlist + 7) / 8;
	a->ops = simd_get();
	a->nlist = nlist;
	a->dim = dim;
	a->blocks = aligned_alloc(64, ((size_t)nb * dim * 8 * sizeof(float) + 63) & ~(size_t)63);
	a->half_norm = malloc((size_t)nlist * sizeof(float));
	a->scores = malloc((size_t)nb * 8 * sizeof(float));
	return a->blocks && a->half_norm && a->scores ? 0 : -ENOMEM;
}

static void assigner_free(struct assigner *a)
{
	free(a->blocks);
	free(a->half_norm);
	free(a->scores);
}

static void assigner_load(struct assigner *a, const float *rows)
{
	block_centroids(rows, a->nlist, a->dim, a->blocks);
	for (uint32_t l = 0; l < a->nlist; l++) {
		const float *c = rows + (size_t)l * a->dim;
		a->half_norm[l] = 0.5f * dotf(c, c, a->dim);
	}
}

/* Nearest centroid in L2: argmax <x,c> - |c|^2/2 (ties: lower list). With
 * `probes`, also the np best lists by inner product, best first. */
static uint32_t assign(const struct assigner *a, const float *x, uint32_t *probes, uint32_t np)
{
	a->ops->score_blocks8(x, a->blocks, a->dim, (a->nlist + 7) / 8, a->scores);
	uint32_t best = 0;
	float bv = -INFINITY;
	for (uint32_t l = 0; l < a->nlist; l++) {
		float v = a->scores[l] - a->half_norm[l];
		if (v > bv) {
			bv = v;
			best = l;
		}
	}
	if (probes) {
		struct topk_item h[ANN_NEIGHBOR_PROBES];
		uint32_t n = 0;
		np = MIN(np, ANN_NEIGHBOR_PROBES);
		for (uint32_t l = 0; l < a->nlist; l++) {
			struct topk_item it = { l, a->scores[l] };
			if (topk_admits(h, n, np, it))   /* inline: most lists fail here */
				topk_push(h, &n, np, it);
		}
		topk_sort(h, n);
		for (uint32_t j = 0; j < np; j++)
			probes[j] = h[MIN(j, n - 1)].item;   /* repeats skipped by the reader */
	}
	return best;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Lloyd's k-means on a seeded sample; leaves the centroids in `rows`. */
static int train(const float *emb, uint32_t n, uint32_t dim, uint32_t nlist, uint32_t iters, uint32_t per_list,
		 uint64_t seed, float *rows, uint32_t *sample_out, struct assigner *a)
{
	uint64_t want = (uint64_t)nlist * per_list;
	uint32_t S = (uint32_t)MIN((uint64_t)n, MAX(want, (uint64_t)nlist));
	uint32_t *idx = malloc((size_t)n * sizeof(*idx));
	uint32_t *of = malloc((size_t)S * sizeof(*of));
	uint32_t *cnt = malloc((size_t)nlist * sizeof(*cnt));
	double *sum = malloc((size_t)nlist * dim * sizeof(*sum));
	int rc = -ENOMEM;
	if (!idx || !of || !cnt || !sum)
		goto out;

	/* Partial Fisher-Yates: the first S of a seeded shuffle. */
	uint64_t rng = seed;
	for (uint32_t i = 0; i < n; i++)
		idx[i] = i;
	for (uint32_t i = 0; i < S; i++) {
		uint32_t j = i + (uint32_t)(splitmix(&rng) % (n - i));
		uint32_t t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
	for (uint32_t l = 0; l < nlist; l++)
		memcpy(rows + (size_t)l * dim, emb + (size_t)idx[l] * dim, dim * sizeof(float));
	/* Sample in index order: sequential reads of the embeddings. */
	qsort(idx, S, sizeof(*idx), cmp_u32);

	for (uint32_t it = 0; it < iters; it++) {
		assigner_load(a, rows);
		memset(cnt, 0, (size_t)nlist * sizeof(*cnt));
		memset(sum, 0, (size_t)nlist * dim * sizeof(*sum));
		for (uint32_t s = 0; s < S; s++) {
			const float *x = emb + (size_t)idx[s] * dim;
			uint32_t l = of[s] = assign(a, x, NULL, 0);
			cnt[l]++;
			double *acc = sum + (size_t)l * dim;
			for (uint32_t d = 0; d < dim; d++)
				acc[d] += x[d];
		}
		for (uint32_t l = 0; l < nlist; l++) {
			if (!cnt[l])
				continue;
			for (uint32_t d = 0; d < dim; d++)
				rows[(size_t)l * dim + d] = (float)(sum[(size_t)l * dim + d] / cnt[l]);
		}
		/* An empty list takes a point of the largest one: no dead lists. */
		for (uint32_t e = 0; e < nlist; e++) {
			if (cnt[e])
				continue;
			uint32_t big = 0;
			for (uint32_t l = 1; l < nlist; l++)
				if (cnt[l] > cnt[big])
					big = l;
			if (cnt[big] < 2)
				break;
			uint32_t pick = (uint32_t)(splitmix(&rng) % cnt[big]);
			for (uint32_t s = 0; s < S; s++) {
				if (of[s] != big || pick--)
					continue;
				memcpy(rows + (size_t)e * dim, emb + (size_t)idx[s] * dim, dim * sizeof(float));
				of[s] = e;
				cnt[big]--;
				cnt[e] = 1;
				break;
			}
		}
	}
	*sample_out = S;
	rc = 0;
out:
	free(idx);
	free(of);
	free(cnt);
	free(sum);
	return rc;
}

static void quantise(struct ann_built *b, const float *emb, uint32_t dim, float *res)
{
	uint32_t cd = b->ix.code_dim;
	float *scale = b->dim_quant, *offset = b->dim_quant + cd;
	if (b->params.quant == SNAP_ANN_QUANT_DIM) {
		float *lo = res, *hi = res + dim;   /* res is >= 2 * dim floats */
		for (uint32_t d = 0; d < dim; d++)
			lo[d] = INFINITY, hi[d] = -INFINITY;
		for (uint32_t l = 0; l < b->ix.nlist; l++) {
			const float *c = b->centroids_rows + (size_t)l * dim;
			for (uint32_t p = b->list_off[l]; p < b->list_off[l + 1]; p++) {
				const float *x = emb + (size_t)b->list_items[p] * dim;
				for (uint32_t d = 0; d < dim; d++) {
					float r = x[d] - c[d];
					lo[d] = MIN(lo[d], r);
					hi[d] = MAX(hi[d], r);
				}
			}
		}
		for (uint32_t d = 0; d < dim; d++) {
			scale[d] = (hi[d] - lo[d]) / 254.0f;
			offset[d] = 0.5f * (hi[d] + lo[d]);
		}
	}
	for (uint32_t l = 0; l < b->ix.nlist; l++) {
		const float *c = b->centroids_rows + (size_t)l * dim;
		for (uint32_t p = b->list_off[l]; p < b->list_off[l + 1]; p++) {
			const float *x = emb + (size_t)b->list_items[p] * dim;
			int8_t *code = b->codes + (size_t)p * cd;
			if (b->params.quant == SNAP_ANN_QUANT_DIM) {
				for (uint32_t d = 0; d < dim; d++)
					code[d] = scale[d] > 0 ? q8((x[d] - c[d] - offset[d]) / scale[d]) : 0;
				continue;
			}
			float m = 0;
			for (uint32_t d = 0; d < dim; d++)
				m = MAX(m, fabsf(x[d] - c[d]));
			float s = m / 127.0f;
			b->code_scale[p] = s;
			for (uint32_t d = 0; d < dim; d++)
				code[d] = s > 0 ? q8((x[d] - c[d]) / s) : 0;
		}
	}
}

void ann_built_free(struct ann_built *b)
{
	free(b->centroids);
	free(b->centroids_rows);
	free(b->list_off);
	free(b->list_items);
	free(b->codes);
	free(b->code_scale);
	free(b->dim_quant);
	free(b->probes);
	memset(b, 0, sizeof(*b));
}

int ann_build(const float *emb, uint32_t n, uint32_t dim, const struct ann_build_params *p, bool want_probes,
	      struct ann_built *b, char *err, size_t errlen)
{
	struct assigner a = { 0 };
	uint32_t *list_of = NULL;
	int rc;

	memset(b, 0, sizeof(*b));
	if (n == 0 || dim == 0 || dim > SNAP_MAX_DIM)
		return aerr(err, errlen, "ann: %u items of dim %u", n, dim);
	uint32_t quant = p->quant ? p->quant : SNAP_ANN_QUANT_DIM;
	if (quant != SNAP_ANN_QUANT_DIM && quant != SNAP_ANN_QUANT_VECTOR)
		return aerr(err, errlen, "ann: unknown quantiser %u", quant);
	/* 2 * sqrt(n), not the textbook 4 * sqrt(n): on 1M x 64 both reach
	 * recall@100 0.95 at the same latency, and this builds in half the time. */
	uint32_t nlist = p->nlist ? p->nlist : (uint32_t)(2.0 * sqrt((double)n) + 0.5);
	nlist = MAX(1u, MIN(nlist, MIN(n, SNAP_ANN_MAX_LISTS)));
	uint32_t iters = p->iters ? p->iters : ANN_DEFAULT_ITERS;
	uint32_t per = p->sample ? p->sample : ANN_DEFAULT_SAMPLE;
	uint32_t cd = snap_code_dim_for_dim(dim), nb = (nlist + 7) / 8;

	b->params = (struct snap_ann_params){ .nlist = nlist, .code_dim = cd, .quant = quant, .seed = p->seed,
					      .train_iters = iters };
	b->centroids = aligned_alloc(64, ((size_t)nb * dim * 8 * sizeof(float) + 63) & ~(size_t)63);
	b->centroids_rows = malloc((size_t)nlist * dim * sizeof(float));
	b->list_off = calloc((size_t)nlist + 1, sizeof(uint32_t));
	b->list_items = malloc((size_t)n * sizeof(uint32_t));
	b->codes = calloc((size_t)n, cd);
	b->dim_quant = calloc(2 * (size_t)cd, sizeof(float));
	b->code_scale = quant == SNAP_ANN_QUANT_VECTOR ? malloc((size_t)n * sizeof(float)) : NULL;
	b->probes = want_probes ? malloc((size_t)n * ANN_NEIGHBOR_PROBES * sizeof(uint32_t)) : NULL;
	list_of = malloc((size_t)n * sizeof(*list_of));
	if (!b->centroids || !b->centroids_rows || !b->list_off || !b->list_items || !b->codes || !b->dim_quant ||
	    (quant == SNAP_ANN_QUANT_VECTOR && !b->code_scale) || (want_probes && !b->probes) || !list_of ||
	    assigner_init(&a, nlist, dim)) {
		rc = -ENOMEM;
		aerr(err, errlen, "ann: out of memory");
		goto fail;
	}
	if ((rc = train(emb, n, dim, nlist, iters, per, p->seed, b->centroids_rows, &b->params.train_sample, &a))) {
		aerr(err, errlen, "ann: out of memory");
		goto fail;
	}

	assigner_load(&a, b->centroids_rows);
	for (uint32_t i = 0; i < n; i++) {
		list_of[i] = assign(&a, emb + (size_t)i * dim,
				    b->probes ? b->probes + (size_t)i * ANN_NEIGHBOR_PROBES : NULL,
				    ANN_NEIGHBOR_PROBES);
		b->list_off[list_of[i] + 1]++;
	}
	/* Counting sort by list: ascending item order within each list. */
	for (uint32_t l = 0; l < nlist; l++) {
		b->params.max_list = MAX(b->params.max_list, b->list_off[l + 1]);
		b->list_off[l + 1] += b->list_off[l];
	}
	for (uint32_t i = 0; i < n; i++)
		b->list_items[b->list_off[list_of[i]]++] = i;
	memmove(b->list_off + 1, b->list_off, (size_t)nlist * sizeof(uint32_t));
	b->list_off[0] = 0;

	block_centroids(b->centroids_rows, nlist, dim, b->centroids);
	b->ix = (struct ann_index){
		.nlist = nlist, .dim = dim, .code_dim = cd, .quant = quant, .max_list = b->params.max_list,
		.centroids = b->centroids, .list_off = b->list_off, .list_items = b->list_items,
		.codes = b->codes, .code_scale = b->code_scale, .dim_scale = b->dim_quant,
		.dim_offset = b->dim_quant + cd,
	};
	/* The per-dimension ranges need 2 * dim floats of scratch. */
	float *tmp = malloc(2 * (size_t)dim * sizeof(float));
	if (!tmp) {
		rc = -ENOMEM;
		aerr(err, errlen, "ann: out of memory");
		goto fail;
	}
	quantise(b, emb, dim, tmp);
	free(tmp);
	assigner_free(&a);
	free(list_of);
	return 0;
fail:
	assigner_free(&a);
	free(list_of);
	ann_built_free(b);
	return rc;
}

/* ---- build: embedding neighbours ---- */

int ann_fill_neighbors(const struct ann_built *b, const float *emb, uint32_t n, uint32_t k,
		       struct snap_neighbor *rows, const uint32_t *filled)
{
	const struct ann_index *ix = &b->ix;
	const struct simd_ops *ops = simd_get();
	uint32_t dim = ix->dim, cd = ix->code_dim, R = MAX(2 * k, 32u);   /* >= k: see below */
	struct topk_item *cand = malloc((size_t)R * sizeof(*cand));
	struct topk_item *best = malloc((size_t)k * sizeof(*best));
	float *qf = malloc((size_t)dim * sizeof(float));
	int8_t *qi = aligned_alloc(64, ((size_t)cd + 63) & ~(size_t)63);
	int32_t dots[ANN_BLOCK];
	int rc = -ENOMEM;
	if (!b->probes || !cand || !best || !qf || !qi) {
		rc = b->probes ? -ENOMEM : -EINVAL;
		goto out;
	}
	/* In list order: neighbouring items probe the same lists, whose codes
	 * are then still in cache. */
	for (uint32_t pos = 0; pos < n; pos++) {
		uint32_t i = ix->list_items[pos];
		struct snap_neighbor *row = rows + (size_t)i * k;
		uint32_t have = filled ? MIN(filled[i], k) : 0, nc = 0;
		if (have == k)
			continue;
		const float *x = emb + (size_t)i * dim;
		float cst, sq = prep_query(ix, x, qf, qi, &cst);
		uint32_t scanned = 0, enough = MAX(4 * k, 256u);
		for (uint32_t j = 0; j < ANN_NEIGHBOR_PROBES && (j < 2 || scanned < enough); j++) {
			uint32_t l = b->probes[(size_t)i * ANN_NEIGHBOR_PROBES + j];
			if (j && l == b->probes[(size_t)i * ANN_NEIGHBOR_PROBES + j - 1])
				continue;   /* fewer lists than probes: repeated */
			float base = dotf(x, b->centroids_rows + (size_t)l * dim, dim) + cst;
			scanned += ix->list_off[l + 1] - ix->list_off[l];
			for (uint32_t p = ix->list_off[l]; p < ix->list_off[l + 1]; p += ANN_BLOCK) {
				uint32_t cnt = MIN(ANN_BLOCK, ix->list_off[l + 1] - p);
				ops->dot_i8_rows(qi, ix->codes + (size_t)p * cd, cd, cnt, dots);
				for (uint32_t t = 0; t < cnt; t++) {
					float f = sq * (float)dots[t];
					if (ix->code_scale)
						f *= ix->code_scale[p + t];
					struct topk_item it = { ix->list_items[p + t], base + f };
					/* Entries already in the row are dropped below: at most
					 * `have` of the R >= k candidates, so enough remain. */
					if (it.item != i && topk_admits(cand, nc, R, it))
						topk_push(cand, &nc, R, it);
				}
			}
		}
		uint32_t want = k - have, nb = 0;
		for (uint32_t c = 0; c < nc; c++) {
			bool dup = false;
			for (uint32_t h = 0; h < have && !dup; h++)
				dup = row[h].item == cand[c].item;
			if (!dup)
				topk_push(best, &nb, want,
					  (struct topk_item){ cand[c].item, dotf(x, emb + (size_t)cand[c].item * dim, dim) });
		}
		topk_sort(best, nb);
		for (uint32_t c = 0; c < nb; c++)
			row[have++] = (struct snap_neighbor){ best[c].item, best[c].score };
		for (; have < k; have++)
			row[have] = (struct snap_neighbor){ SNAP_EMPTY_SLOT, 0.0f };
	}
	rc = 0;
out:
	free(cand);
	free(best);
	free(qf);
	free(qi);
	return rc;
}

/* ---- search ---- */

struct ann_scratch {
	uint32_t max_k, cap;
	float *cscore;              /* SNAP_ANN_MAX_LISTS, padded to 8 */
	struct topk_item *sel;      /* next lists to probe */
	uint32_t *order;            /* lists in probe order */
	struct topk_item *cand;     /* cap */
	int32_t *dots;              /* ANN_BLOCK */
	struct topk_item *pend;     /* ANN_BLOCK codes awaiting the filter */
	float *qf;                  /* SNAP_MAX_DIM */
	int8_t *qi;                 /* SNAP_MAX_DIM */
	struct ann_stats stats;
};

struct ann_scratch *ann_scratch_new(uint32_t max_k)
{
	struct ann_scratch *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	sc->max_k = MAX(max_k, 1u);
	sc->cap = MAX(sc->max_k * ANN_MAX_RERANK, ANN_MIN_CANDIDATES);
	sc->cscore = malloc(SNAP_ANN_MAX_LISTS * sizeof(float));
	sc->sel = malloc(SNAP_ANN_MAX_LISTS * sizeof(*sc->sel));
	sc->order = malloc(SNAP_ANN_MAX_LISTS * sizeof(*sc->order));
	sc->cand = malloc((size_t)sc->cap * sizeof(*sc->cand));
	sc->dots = malloc(ANN_BLOCK * sizeof(*sc->dots));
	sc->pend = malloc(ANN_BLOCK * sizeof(*sc->pend));
	sc->qf = malloc(SNAP_MAX_DIM * sizeof(float));
	sc->qi = aligned_alloc(64, SNAP_MAX_DIM);
	if (!sc->cscore || !sc->sel || !sc->order || !sc->cand || !sc->dots || !sc->pend || !sc->qf || !sc->qi) {
		ann_scratch_free(sc);
		return NULL;
	}
	return sc;
}

void ann_scratch_free(struct ann_scratch *sc)
{
	if (!sc)
		return;
	free(sc->cscore);
	free(sc->sel);
	free(sc->order);
	free(sc->cand);
	free(sc->dots);
	free(sc->pend);
	free(sc->qf);
	free(sc->qi);
	free(sc);
}

const struct ann_stats *ann_scratch_stats(const struct ann_scratch *sc)
{
	return &sc->stats;
}

/* Append to order[] the best m lists ranked after `after` (or from the
 * top when first), best first. O(nlist log m). */
static uint32_t next_lists(struct ann_scratch *sc, uint32_t nlist, bool first, struct topk_item after,
			   uint32_t m, uint32_t *order)
{
	uint32_t n = 0;
	if (m == 0)
		return 0;
	for (uint32_t l = 0; l < nlist; l++) {
		struct topk_item it = { l, sc->cscore[l] };
		if (!first && !topk_better(after, it))
			continue;
		topk_push(sc->sel, &n, m, it);
	}
	topk_sort(sc->sel, n);
	for (uint32_t j = 0; j < n; j++)
		order[j] = sc->sel[j].item;
	return n;
}

uint32_t ann_search(const struct snap *s, const struct ann_query *q, struct ann_scratch *sc,
		    struct topk_item *out)
{
	const struct ann_index *ix = &s->ann;
	const struct simd_ops *ops = simd_get();
	uint32_t k = MIN(q->k, sc->max_k), nc = 0, cd = ix->code_dim;
	memset(&sc->stats, 0, sizeof(sc->stats));
	if (k == 0 || ix->nlist == 0)
		return 0;
	uint64_t r = (uint64_t)k * (q->rerank ? q->rerank : ANN_DEFAULT_RERANK);
	uint32_t R = (uint32_t)MIN(MAX(r, (uint64_t)ANN_MIN_CANDIDATES), (uint64_t)sc->cap);

	ops->score_blocks8(q->vec, ix->centroids, ix->dim, (ix->nlist + 7) / 8, sc->cscore);
	float cst, sq = prep_query(ix, q->vec, sc->qf, sc->qi, &cst);

	uint32_t want = MIN(q->nprobe ? q->nprobe : ANN_DEFAULT_NPROBE, ix->nlist), done = 0;
	struct topk_item last = { 0, 0 };
	for (;;) {
		uint32_t m = next_lists(sc, ix->nlist, done == 0, last, want - done, sc->order + done);
		for (uint32_t j = 0; j < m; j++) {
			uint32_t l = sc->order[done + j];
			uint32_t beg = ix->list_off[l], end = ix->list_off[l + 1];
			float base = sc->cscore[l] + cst;
			sc->stats.scanned += end - beg;
			for (uint32_t p = beg; p < end; p += ANN_BLOCK) {
				uint32_t cnt = MIN(ANN_BLOCK, end - p);
				ops->dot_i8_rows(sc->qi, ix->codes + (size_t)p * cd, cd, cnt, sc->dots);
				/* Two passes: the codes that beat the R-th best are gathered
				 * and their flag and stock words prefetched, so the cache
				 * misses of the servable check overlap instead of queueing
				 * (measured: they were half the scan time on 1M items). */
				uint32_t np = 0;
				for (uint32_t t = 0; t < cnt; t++) {
					float f = sq * (float)sc->dots[t];
					if (ix->code_scale)
						f *= ix->code_scale[p + t];
					struct topk_item it = { ix->list_items[p + t], base + f };
					if (!topk_admits(sc->cand, nc, R, it))
						continue;
					__builtin_prefetch(&s->item_flags[it.item]);
					__builtin_prefetch(&s->item_stock[it.item]);
					sc->pend[np++] = it;
				}
				for (uint32_t t = 0; t < np; t++) {
					struct topk_item it = sc->pend[t];
					if (!topk_admits(sc->cand, nc, R, it))
						continue;
					if (unlikely(!snap_item_servable(s, it.item)) || (int64_t)it.item == q->exclude ||
					    (q->keep && !q->keep(q->ctx, it.item)))
						continue;
					topk_push(sc->cand, &nc, R, it);
				}
			}
		}
		if (m) {
			uint32_t lastl = sc->order[done + m - 1];
			last = (struct topk_item){ lastl, sc->cscore[lastl] };
		}
		done += m;
		sc->stats.lists = done;
		if (nc >= k || done >= ix->nlist || m == 0)
			break;
		/* Fewer than k valid items so far: probe twice as many lists. */
		sc->stats.widened++;
		want = (uint32_t)MIN((uint64_t)want * 2, (uint64_t)ix->nlist);
	}

	/* Exact re-ranking of the short list. */
	uint32_t n = 0;
	sc->stats.candidates = nc;
	for (uint32_t c = 0; c < nc; c++) {
		float f;
		/* The rows are scattered: fetch a few candidates ahead. */
		if (c + 4 < nc) {
			const char *ahead = (const char *)snap_item_vec(s, sc->cand[c + 4].item);
			for (uint32_t b = 0; b < s->stride * sizeof(float); b += 64)
				__builtin_prefetch(ahead + b);
		}
		ops->score_rows(q->vec, snap_item_vec(s, sc->cand[c].item), s->stride, 1, &f);
		topk_push(out, &n, k, (struct topk_item){ sc->cand[c].item, f });
	}
	topk_sort(out, n);
	return n;
}
