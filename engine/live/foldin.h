/* foldin.h: ALS fold-in: a shopper's embedding computed online from what
 * they did a moment ago, against the item embeddings of a snapshot; and
 * the Gram matrix and the solver that recd-train uses for every row too.
 *
 * The model (tools/recd_train.c; Hu, Koren, Volinsky 2008) scores item i
 * for a user as x . y_i. With the item vectors y_i fixed, the user's x
 * minimises, over every item of the catalogue,
 *   sum_i c_i (p_i - x . y_i)^2 + lambda |x|^2
 * where p_i = 1 and c_i = 1 + alpha r_i for the n items the user touched
 * (r_i: how strongly, see foldin_touch_strength), p_i = 0 and c_i = 1 for
 * all the others. That is a weighted ridge regression in x alone; its
 * gradient vanishes where
 *   (Y'Y + sum_touched (c_i - 1) y_i y_i' + lambda I) x = sum_touched c_i y_i
 * because the untouched items only contribute y_i y_i' with weight 1, and
 * adding the touched ones' weight-1 share back gives the whole Y'Y. Y'Y
 * (dim x dim) is the same for every user: it is summed once per snapshot
 * (struct foldin_gram), and one user then costs O(n dim^2) to add the
 * touched items and O(dim^3) for a Cholesky factorisation, never O(items).
 * The matrix is symmetric, and positive definite when lambda > 0 and every
 * c_i >= 1 (Y'Y and the rank-one terms are positive semi-definite).
 * Training alternates this over all users and all items; fold-in is the
 * same half-step for one shopper with live events.
 *
 * Prior. A returning shopper already has a snapshot embedding x0 fitted on
 * their whole history, while live state holds their last few touches.
 * Adding prior |x - x0|^2 to the objective pulls the answer towards x0:
 *   (Y'Y + sum (c_i - 1) y_i y_i' + (lambda + prior) I) x = sum c_i y_i + prior x0
 * prior 0 is plain fold-in; as prior grows x tends to x0. It is a weight
 * on the same scale as lambda, i.e. comparable to the entries of Y'Y.
 *
 * Threads: none of this is thread-safe on one struct; the refresh thread
 * owns its gram and scratch. Nothing allocates except foldin_gram_init /
 * foldin_gram_begin (when the dimension changes).
 */
#ifndef RECD_FOLDIN_H
#define RECD_FOLDIN_H

#include <math.h>
#include "core/common.h"
#include "live/live.h"
#include "snap/snap.h"

struct foldin_params {
	double lambda;      /* L2 weight, as trained (recd-train --lambda) */
	double alpha;       /* confidence slope (recd-train --alpha) */
	double prior;       /* weight of |x - x0|^2 (with an x0); 0 = plain fold-in */
	double log_eps;     /* > 0: c = 1 + alpha ln(1 + r / log_eps) (recd-train
	                       --log-confidence); 0: c = 1 + alpha r */
};

/* recd-train's defaults: lambda 0.1, alpha 10, linear confidence, no prior.
 * A snapshot trained otherwise needs its own values (docs/quality.md). */
extern const struct foldin_params foldin_default_params;

static inline double foldin_confidence(const struct foldin_params *p, float r)
{
	return p->log_eps > 0 ? 1.0 + p->alpha * log1p((double)r / p->log_eps) : 1.0 + p->alpha * (double)r;
}

/* ---- Y'Y ---- */

struct foldin_gram {
	uint32_t dim;
	bool ready;                /* m is complete */
	bool portable;             /* use the baseline kernel even on AVX2 (tests) */
	double *m;                 /* dim x dim, row-major, symmetric (when ready) */
	uint64_t generation;       /* of the snapshot it was summed from */
	const struct snap *snap;   /* which one (compared, never dereferenced) */
	uint32_t next;             /* snapshot rows summed so far */
	/* private */
	uint32_t ld;               /* row stride of acc and rows: dim rounded up to 8 */
	double *acc;               /* the lower triangle being summed */
	double *rows;              /* FOLDIN_GRAM_BLOCK rows converted to double */
};

/* Rows summed per kernel pass: a pass keeps a tile of the matrix in
 * registers over this many rows. */
#define FOLDIN_GRAM_BLOCK 32u

/* A gram for `dim` (allocates; 0 or -ENOMEM). A zeroed struct is empty. */
int foldin_gram_init(struct foldin_gram *g, uint32_t dim);
void foldin_gram_free(struct foldin_gram *g);

/* Y'Y of any row-major float matrix (recd-train): reset, add rows in as
 * many calls as wanted, finish. Every entry is summed in row order in
 * double, and a float times a float is exact in double, so the result is
 * the same bits whatever the kernel (AVX2+FMA or baseline) or the way the
 * rows were split between calls. */
void foldin_gram_reset(struct foldin_gram *g);
void foldin_gram_add(struct foldin_gram *g, const float *rows, size_t stride, uint64_t n);
void foldin_gram_finish(struct foldin_gram *g);

/* Y'Y of a snapshot's item embeddings, in steps a background thread can
 * spread (1M x 64 is about 4 GFLOP: docs/quality.md has the time).
 * begin: start over for `s` (allocates only when the dimension changes;
 * 0 or -ENOMEM). step: sum up to max_rows more rows; 1 when complete (then
 * ready), 0 while rows remain, -ESTALE when `s` is not the snapshot
 * begun. build: begin and every step at once. */
int foldin_gram_begin(struct foldin_gram *g, const struct snap *s);
int foldin_gram_step(struct foldin_gram *g, const struct snap *s, uint32_t max_rows);
int foldin_gram_build(const struct snap *s, struct foldin_gram *g);
/* Complete, and summed from `s` (same object, generation and size). */
bool foldin_gram_matches(const struct foldin_gram *g, const struct snap *s);

/* ---- the solve ---- */

/* Doubles of scratch one solve needs: the matrix and three vectors. */
static inline size_t foldin_scratch_doubles(uint32_t dim)
{
	return (size_t)dim * dim + 3 * (size_t)dim;
}

/* One user's x from the n touched items (distinct snapshot item indexes;
 * duplicates would count the weight-1 share twice: merge them first, as
 * foldin_user_inputs does) and their strengths r_i, x0 (dim floats, the
 * prior's target; NULL = none: p->prior is then ignored). out: dim floats.
 * 0; -EDOM when the system is not positive definite (a negative strength,
 * lambda 0 with a singular Y'Y; out is zeroed); -ENODATA when there is
 * nothing to fold in (n 0 and no prior; out zeroed); -ESTALE when g was
 * not summed from s; -EINVAL for an item index out of range. */
int foldin_solve(const struct foldin_gram *g, const struct snap *s, const uint32_t *items, const float *strength,
		 uint32_t n, const float *x0, const struct foldin_params *p, double *scratch, float *out);

/* The same system on raw arrays, no checks (recd-train's solver for every
 * user and item row): gram dim x dim (lower triangle read), item i's
 * vector at emb + i * stride. n 0 and no prior gives x = 0. 0 or -EDOM. */
int foldin_solve_rows(const double *gram, uint32_t dim, const float *emb, size_t stride, const uint32_t *items,
		      const float *strength, uint32_t n, const float *x0, const struct foldin_params *p,
		      double *scratch, float *out);

/* ---- live touches as inputs ---- */

/* r of one touch, relative to a purchase: purchase 1, add_to_cart 0.6,
 * click 0.3, view 0.2 (recd-train: purchase 1, add_to_cart 0.6, view and
 * click 0.2). 0 (not counted) for the rest: a rating's value is not kept
 * in live_user.recent, so it may have been negative; removals and
 * impressions say nothing positive. */
float foldin_touch_strength(uint8_t type);

/* At most this many inputs come from one live user. */
#define FOLDIN_MAX_INPUTS (LIVE_RECENT + LIVE_CART + LIVE_PURCHASED)

/* A live user's touches as (snapshot item index, strength) pairs for
 * foldin_solve: every recent[] touch (newest first), then each cart item
 * whose add_to_cart has left recent[] (0.6), then each purchased item
 * (newest first) with no purchase touch in recent[] (1): live state keeps
 * 512 purchases but only 32 touches. Keys the snapshot does not know are
 * skipped; touches of one item are merged by summing their strengths;
 * items of strength 0 are left out. At most cap pairs (the newest kept).
 * Returns how many. u NULL: 0. */
uint32_t foldin_user_inputs(const struct snap *s, const struct live_user *u, uint32_t *items, float *strength,
			    uint32_t cap);

#endif
