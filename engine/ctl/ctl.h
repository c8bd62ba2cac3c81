/* ctl.h: the control thread: signals, snapshot (re)loads and their RCU
 * publication, file watching, systemd notifications and the watchdog.
 *
 * Everything here runs off the request path. The control thread is the
 * single writer of the served snapshot pointers, the main one and each
 * model's (see core/srv.h for why readers need no locks); other threads ask it for a reload through
 * ctl_request_reload and wait for the outcome.
 */
#ifndef RECD_CTL_H
#define RECD_CTL_H

#include "core/srv.h"

struct net_server;

enum ctl_reload_what {
	CTL_RELOAD_SNAPSHOT = 1u << 0,
	CTL_RELOAD_POLICIES = 1u << 1,
	CTL_RELOAD_SETTINGS = 1u << 2,
	CTL_RELOAD_ALL = CTL_RELOAD_SNAPSHOT | CTL_RELOAD_POLICIES | CTL_RELOAD_SETTINGS,
};

enum ctl_reload_status {
	CTL_RELOADED = 0,
	CTL_UNCHANGED,
	CTL_REFUSED,
};

struct ctl_reload_result {
	enum ctl_reload_status status;
	uint64_t generation;                        /* serving after the call */
	char model_version[SNAP_MODEL_VERSION_LEN]; /* serving after the call */
	char error[384];                            /* why it was refused */
	enum ctl_reload_status settings_status;     /* reloaded: some applied; refused: bad file */
	char settings_applied[256];                 /* keys applied, comma-separated */
	char settings_restart[256];                 /* changed keys that need a restart */
	char settings_error[384];
	enum ctl_reload_status policy_status;       /* of the policy set, when asked */
	uint64_t policy_generation;                 /* published after the call */
	char policy_error[384];                     /* "file:line: message" when refused */
	/* Per model slot (0 = the main snapshot, core/srv.h). status/generation/
	 * model_version above sum them up: refused if any asked slot was
	 * (error: the first, "model <name>: ..." for an extra one), else
	 * reloaded if any was; generation and model_version are slot 0's. */
	uint32_t n_models;
	struct {
		enum ctl_reload_status status;          /* unchanged when not asked */
		uint64_t generation;                    /* serving after the call (0: none) */
		char error[384];
	} models[SRV_MAX_MODELS + 1];
};

#define CTL_MODELS_ALL ((1u << (SRV_MAX_MODELS + 1)) - 1)   /* a mask of every slot */

/* Load the configured snapshot, then every extra model (`models`), before
 * the workers start. 0, or -errno / -EINVAL with the loader's message
 * (section and problem; "model <name> (<path>): ..." for an extra one) in
 * err: any model refused stops the start. */
int ctl_load_initial(struct recd_server *srv, char *err, size_t errlen);

/* The control loop: returns on SIGTERM/SIGINT. Reloads on SIGHUP (with
 * RELOADING=1 / READY=1 to systemd), on ctl_request_reload and, when
 * snapshot_watch is on, when a model's file is replaced (that model
 * only). Starts the
 * watchdog thread when systemd asked for one (WATCHDOG_USEC). */
void ctl_run(struct recd_server *srv);

/* From any thread but the control thread: reload and wait (at most 60 s)
 * for the result. 0, -ETIMEDOUT, or -ESRCH when no control loop runs. */
int ctl_request_reload(struct recd_server *srv, unsigned what, struct ctl_reload_result *res);
/* The same, with the snapshot part limited to the model slots in `models`
 * (a mask of 1u << slot; CTL_MODELS_ALL = every one). */
int ctl_request_reload_models(struct recd_server *srv, unsigned what, unsigned models,
			      struct ctl_reload_result *res);

/* The policy set main.c staged and checked at start (lua/lua_set.h):
 * the control thread owns it from now on (and deletes it at shutdown). */
struct lua_set;
void ctl_adopt_policies(const struct lua_set *initial);

/* The experiments of a staged policy set (`dir`; messages name `shown`):
 * exp_lua_load with the configured models, each of which must be loaded.
 * Control thread, or main before the workers start. */
struct exp_set;
int ctl_experiments_load(struct recd_server *srv, const char *dir, const char *shown, struct exp_set **out,
			 char *err, size_t errlen);
/* Publish them for policy generation `generation` (before publishing the
 * generation itself); the set this makes unreachable is reclaimed after
 * an epoch grace period. */
void ctl_experiments_publish(struct exp_set *s, uint64_t generation);

/* After the workers stopped: free the served and retired snapshots and
 * the staged policy sets. */
void ctl_shutdown(struct recd_server *srv);

#endif
