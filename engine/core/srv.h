/* srv.h: the process-wide state every thread shares: the configuration,
 * the snapshot being served, readiness and a few process counters.
 *
 * Theory of operation for the snapshot pointer (RCU with ck_epoch):
 *  - writer: only the control thread (ctl.c) publishes. It builds and
 *    validates a new struct snap completely, then stores the pointer with
 *    a store fence before it (srv_publish_snapshot), so a reader that sees
 *    the new pointer sees a finished snapshot.
 *  - readers: each worker thread holds an epoch record and is inside an
 *    epoch section for one turn of its event loop (from the return of
 *    io_uring_enter to the next call). Within a request it loads the
 *    pointer once (srv_snapshot) and uses only that snapshot, so a
 *    response never mixes two.
 *  - reclamation: the control thread hands the old snapshot to
 *    ck_epoch_call and polls; ck_epoch runs the unmap only after every
 *    record has been seen outside a section that could have loaded the old
 *    pointer. A worker waiting in io_uring_enter is outside any section,
 *    so an idle worker never delays reclamation, and a busy one delays it
 *    by one loop turn at most. No reader ever blocks or takes a lock.
 */
#ifndef RECD_SRV_H
#define RECD_SRV_H

#include <ck_epoch.h>
#include <ck_pr.h>
#include <sys/types.h>
#include "core/cfg.h"
#include "core/common.h"
#include "snap/snap.h"

/* Per-thread slots the control thread reads (watchdog) or writes (debug). */
struct srv_thread_slot {
	uint64_t turns;     /* event-loop turns, written by the worker */
	uint64_t stall_ms;  /* debug: sleep this long at the next turn */
	int waiting;        /* ck_pr: blocked on purpose (an admin reload): the
	                       watchdog does not count it as stuck */
} cacheline_aligned;

/* Identity of the snapshot file that is being served, to tell a changed
 * file from an unchanged one. */
struct srv_file_id {
	dev_t dev;
	ino_t ino;
	int64_t mtime_ns;
	int64_t size;
};

struct updater;
struct kafka;

struct recd_server {
	struct recd_config cfg;
	struct recd_config cfg_parsed;  /* as read from file + command line, before start-up
	                                   filled in derived values; reloads compare to it */
	int argc;                       /* the command line, re-read on reload */
	char **argv;
	struct snap *snapshot;          /* ck_pr_load_ptr / ck_pr_store_ptr */
	uint64_t snapshot_generation;   /* written by the control thread */
	uint64_t snapshot_load_failures;
	uint64_t policy_load_failures;  /* policy sets refused at reload (control thread) */
	char policy_dir[PATH_MAX];      /* staged copy of the published policy set (lua/lua_set.h);
	                                   "" = built-in policies. Written before workers start
	                                   and by the control thread; workers read it at start */
	uint64_t start_time_ms;         /* wall clock */
	uint64_t start_mono_ns;
	uint32_t n_workers;             /* request workers (admin excluded) */
	uint64_t conn_open;             /* ck_pr_faa_64 on accept / close */
	int stopping;                   /* ck_pr: set once on SIGTERM */
	ck_epoch_t epoch;               /* readers: workers; reclaimer: control */
	struct updater *updater;        /* the event path and live state */
	struct kafka *kafka;            /* the Kafka event source (NULL: off) */
	struct srv_file_id snapshot_file;
	struct srv_thread_slot *slots;  /* n_threads, allocated by net_start */
	uint32_t n_threads;             /* workers + admin worker */
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
