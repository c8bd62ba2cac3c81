/* api_models.h: the model slots (core/srv.h: the main snapshot and the
 * extra `models`) as the admin endpoints and the metrics show them.
 *
 * Kept out of api.c so the routes there only call in. Everything runs on
 * the admin worker (or whichever worker renders /metrics) inside its
 * epoch section, so each slot's snapshot pointer is loaded once and used
 * while it cannot be unmapped.
 */
#ifndef RECD_API_MODELS_H
#define RECD_API_MODELS_H

#include "core/buf.h"
#include "core/srv.h"
#include "ctl/ctl.h"
#include "metrics/metrics.h"

/* `,"models":[{"name":..,"path":..,"model_version":..,"generation":..,
 * "items":..,"users":..,"dim":..,"loaded_at_ms":..,"load_failures":..},..]`
 * for GET /admin/status, slot 0 first. */
void api_models_status(struct recd_server *srv, struct buf *b);
/* Fill the n_models / model_* fields of the metrics gauges. */
void api_models_gauges(struct recd_server *srv, struct metrics_gauges *g);
/* `,"models":[{"name":..,"status":..,"generation":..[,"detail":..]},..]`
 * for the answer of POST /admin/reload (a slot the reload did not touch
 * is "unchanged"). */
void api_models_reload(const struct recd_server *srv, const struct ctl_reload_result *res, struct buf *b);

#endif
