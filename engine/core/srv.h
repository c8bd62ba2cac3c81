/* srv.h: the process-wide state every thread shares: the configuration,
 * the snapshot being served, readiness and a few process counters.
 *
 * Theory of operation for the snapshot pointer: the control thread is the
 * only writer. Workers read `snapshot` once per request with ck_pr_load_ptr
 * and use that one snapshot for the whole request, so a response never
 * mixes two snapshots. A published snapshot is immutable. Replacing it
 * (the arena issue) swaps the pointer with ck_pr_store_ptr after a fence
 * and frees the old one only after every worker has passed a quiescent
 * point (ck_epoch); until then a worker may still hold it.
 */
#ifndef RECD_SRV_H
#define RECD_SRV_H

#include <ck_pr.h>
#include "core/cfg.h"
#include "core/common.h"
#include "snap/snap.h"

struct recd_server {
	struct recd_config cfg;
	struct snap *snapshot;          /* ck_pr_load_ptr / ck_pr_store_ptr */
	uint64_t snapshot_generation;   /* written by the control thread */
	uint64_t snapshot_load_failures;
	uint64_t start_time_ms;         /* wall clock */
	uint64_t start_mono_ns;
	uint32_t n_workers;             /* request workers (admin excluded) */
	uint64_t conn_open;             /* ck_pr_faa_64 on accept / close */
	int stopping;                   /* ck_pr: set once on SIGTERM */
	char bound_addr[128];           /* main listener as bound (port resolved) */
	char bound_admin[128];
};

static inline struct snap *srv_snapshot(struct recd_server *srv)
{
	return ck_pr_load_ptr(&srv->snapshot);
}

/* Publish `s` as the snapshot to serve (control thread only). Returns the
 * previous one, which the caller may free only after a grace period. */
struct snap *srv_publish_snapshot(struct recd_server *srv, struct snap *s);

#endif
