/* eval_metrics.h: top-k ranking metrics of recd-eval (docs/quality.md),
 * kept apart so tests/unit/test_eval_metrics.c checks them on hand-made
 * cases.
 *
 * For one user: `list` holds the recommended items best first (n of
 * them; only the first k count), `rel` the relevant items the catalogue
 * knows, sorted ascending (n_rel), and n_rel_total >= n_rel the relevant
 * items including those the catalogue does not know (they can never be
 * hit, but they count in the ideal).
 *   HR@k      1 if any of the first k is relevant, else 0
 *   NDCG@k    sum over relevant positions r (1-based) of 1/log2(r + 1),
 *             divided by the same sum over r = 1..min(n_rel_total, k)
 *   AP@k      sum over relevant positions r of precision@r, divided by
 *             min(n_rel_total, k)  (MAP@k is its mean over users)
 *   recall@k  relevant items in the first k / n_rel_total
 * A user with n_rel_total == 0 scores 0 everywhere (recd-eval skips them).
 */
#ifndef RECD_EVAL_METRICS_H
#define RECD_EVAL_METRICS_H

#include <stdint.h>

struct qm_scores {
	double hr, ndcg, ap, recall;
};

void qm_score(const uint32_t *list, uint32_t n, const uint32_t *rel, uint32_t n_rel, uint32_t n_rel_total,
	      uint32_t k, struct qm_scores *out);

/* Distinct values among cats[0..n) (categories of one list). */
uint32_t qm_distinct(const uint32_t *cats, uint32_t n);

/* Top-k indexes of score[0..n) (highest first; ties: lower index first),
 * skipping indexes where skip is non-NULL and skip[i] is non-zero, and
 * scores that are -INFINITY. Returns how many (<= k). */
uint32_t qm_topk(const double *score, uint32_t n, const uint8_t *skip, uint32_t k, uint32_t *out);

#endif
