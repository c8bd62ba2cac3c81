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
 *
 * Several models (A/B experiments): besides the main snapshot (slot 0,
 * `snapshot`, named by `model_name`), up to SRV_MAX_MODELS more (`models`)
 * are served side by side, slots 1..n. Each slot is its own pointer with
 * the same discipline (control thread writes, ck_epoch reclaims), its own
 * file identity and failure count. The set of slots and their names are
 * fixed before any worker starts (the keys need a restart), so names and
 * slot numbers are read without synchronisation. Every publication, of
 * any slot, takes the next number of one process-wide generation counter:
 * two snapshots never share a generation.
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

#define SRV_MAX_MODELS CFG_MAX_MODELS   /* extra models, slot 0 not counted */

/* One extra model (slot >= 1). */
struct srv_model {
	char name[CFG_MODEL_NAME_MAX + 1];
	char path[PATH_MAX];
	struct snap *snapshot;          /* ck_pr_load_ptr / ck_pr_store_ptr */
	struct srv_file_id file;        /* control thread */
	uint64_t load_failures;         /* ck_pr_store_64 by the control thread */
};

struct updater;
struct kafka;

struct recd_server {
	struct recd_config cfg;
	struct recd_config cfg_parsed;  /* as read from file + command line, before start-up
	                                   filled in derived values; reloads compare to it */
	int argc;                       /* the command line, re-read on reload */
	char **argv;
	struct snap *snapshot;          /* slot 0; ck_pr_load_ptr / ck_pr_store_ptr */
	uint64_t snapshot_generation;   /* the last generation given to any slot (ck_pr_store_64
	                                   by the control thread) */
	uint64_t snapshot_load_failures; /* slot 0's */
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
	struct srv_file_id snapshot_file;   /* slot 0's */
	struct srv_model models[SRV_MAX_MODELS];  /* slot i is models[i - 1] */
	uint32_t n_models;              /* extra models; set before the workers start */
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
/* The same for any slot (0 = srv_publish_snapshot). */
struct snap *srv_publish_model(struct recd_server *srv, int slot, struct snap *s);

/* Fill srv->models from cfg.models (before the workers start). -EINVAL
 * with the problem in err. */
int srv_models_init(struct recd_server *srv, char *err, size_t errlen);

/* Models by slot, for any thread (names and slots never change after
 * start). srv_model_find: the slot (>= 1) of an extra model, 0 for the
 * main one's name (model_name), -1 for an unknown name. */
int srv_model_find(const struct recd_server *srv, const char *name, size_t len);
/* Slot 0 = srv_snapshot(srv); NULL if not loaded or no such slot. Use it
 * inside an epoch section, like srv_snapshot. */
struct snap *srv_model_snapshot(struct recd_server *srv, int slot);
/* NULL for no such slot. */
const char *srv_model_name(const struct recd_server *srv, int slot);
/* 1 + the extra models. */
uint32_t srv_model_count(const struct recd_server *srv);

/* Where one slot's state lives (slot 0: the historical fields above, which
 * every existing reader uses), so the control thread treats all alike. */
struct srv_model_ref {
	const char *name;
	const char *path;               /* as configured */
	struct snap **snapshot;
	struct srv_file_id *file;
	uint64_t *load_failures;
};
/* false for no such slot. */
bool srv_model_ref(struct recd_server *srv, int slot, struct srv_model_ref *ref);

#endif
