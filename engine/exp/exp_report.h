/* exp_report.h: the experiments and the quality gauges as operators read
 * them — GET /admin/experiments and GET /admin/quality (JSON) and their
 * Prometheus series. Figures come from the ledger's counters; the
 * statistics (Wilson intervals, the z-test against control, the sample
 * size for the experiment's minimum detectable effect) from exp_stats.
 *
 * Any thread; call inside an epoch section on srv->epoch (the set is
 * read through exp_set_current).
 */
#ifndef RECD_EXP_REPORT_H
#define RECD_EXP_REPORT_H

#include "core/buf.h"
#include "exp/exp_ledger.h"

/* {"experiments":[...]} */
void exp_report_json(const struct exp_ledger *l, struct buf *b);
/* {"window_s":...,"cells":[{"placement":...,"experiment":...,"variant":...,...}]} */
void exp_report_quality_json(struct exp_ledger *l, struct buf *b);
/* recd_experiment_* and recd_quality_* families. */
void exp_report_metrics(struct exp_ledger *l, struct buf *b);

#endif
