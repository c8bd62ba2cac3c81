/* ctl.c: the control thread (see ctl.h; core/srv.h has the RCU theory). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include "api/api.h"
#include "core/log.h"
#include "ctl/ctl.h"
#include "exp/exp_lua.h"
#include "lua/lua_host.h"
#include "lua/lua_set.h"

#define CTL_TURN_MS 100            /* control loop period */
#define CTL_WATCH_DEBOUNCE_MS 200  /* file events settle before a reload */
#define CTL_REQUEST_TIMEOUT_S 60

struct ctl_retired {
	ck_epoch_entry_t entry;    /* first member: the callback casts back */
	struct snap *snap;
	int slot;                  /* the model it served */
};

/* The file watch of one model slot. */
struct ctl_watch {
	int wd;                    /* of the file's directory; -1 = none */
	char name[256];            /* the file's name in it */
	uint64_t due_ns;           /* 0 = no file-triggered reload pending */
};

static struct {
	struct recd_server *srv;
	pthread_t thread;
	bool running;
	ck_epoch_record_t record;  /* the control thread's, for ck_epoch_call */
	bool registered;
	uint32_t retired_pending;

	pthread_mutex_t mu;        /* guards the request fields below */
	pthread_cond_t cv;
	unsigned req_what;
	unsigned req_models;       /* slots the snapshot part reloads (mask) */
	uint64_t req_seq, done_seq;
	struct ctl_reload_result req_result;

	int inotify_fd;
	int wd_plugins;
	struct ctl_watch watch[SRV_MAX_MODELS + 1];   /* by model slot */
	uint64_t policy_due_ns;    /* 0 = no file-triggered policy reload pending */
	/* Staged copies of policy sets (lua_set.h): [0] is the published one;
	 * the two before it stay while workers may still rebuild from them. */
	struct lua_set sets[3];
} ctl = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .inotify_fd = -1,
	.wd_plugins = -1 };

static void retired_free(ck_epoch_entry_t *e)
{
	struct ctl_retired *r = (struct ctl_retired *)e;
	log_info("snapshot_unmapped", "model=%s generation=%llu", srv_model_name(ctl.srv, r->slot),
		 (unsigned long long)r->snap->generation);
	snap_close(r->snap);
	free(r);
	ctl.retired_pending--;
}

static void file_id_of(const struct stat *st, struct srv_file_id *id)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000ll + st->st_mtim.tv_nsec;
	id->size = st->st_size;
}

static void result_serving(const struct recd_server *srv, struct ctl_reload_result *res)
{
	const struct snap *s = srv->snapshot;
	res->generation = s ? s->generation : 0;
	snprintf(res->model_version, sizeof(res->model_version), "%s", s ? s->hdr->model_version : "");
	res->n_models = srv_model_count(srv);
	for (uint32_t i = 0; i < res->n_models; i++) {
		const struct snap *m = srv_model_snapshot((struct recd_server *)srv, (int)i);
		res->models[i].generation = m ? m->generation : 0;
	}
}

/* Load, validate and publish model `slot` when its file changed; retire
 * the snapshot it replaces. The same path for the main snapshot and every
 * extra model. Control thread only. */
static enum ctl_reload_status reload_model(struct recd_server *srv, int slot, char *err, size_t errlen)
{
	struct srv_model_ref m;
	if (!srv_model_ref(srv, slot, &m))
		return CTL_UNCHANGED;
	const char *path = m.path;
	struct stat st;
	struct srv_file_id id;
	struct snap *s, *old = *m.snapshot;
	/* Every model is scored against the same query vectors (users, the
	 * session), so all share the main snapshot's dimension. */
	const struct snap *ref = slot ? srv->snapshot : old;
	uint64_t t0 = now_ns();

	err[0] = 0;
	if (!path[0])
		return CTL_UNCHANGED;
	if (stat(path, &st)) {
		snprintf(err, errlen, "%.300s: %s", path, strerror(errno));
		goto refused;
	}
	file_id_of(&st, &id);
	if (old && !memcmp(&id, m.file, sizeof(id)))
		return CTL_UNCHANGED;
	struct snap_open_opts so = { .hugepages = srv->cfg.snapshot_hugepages };
	if (snap_open_opts(path, &so, &s, err, errlen))
		goto refused;
	if (ref && s->dim != ref->dim) {
		if (slot)
			snprintf(err, errlen, "dimension %u differs from the main snapshot's %u (model %s: every model "
				 "needs the main one's dimension)", s->dim, ref->dim, srv->cfg.model_name);
		else
			snprintf(err, errlen, "dimension %u differs from the serving snapshot's %u (restart to change it)",
				 s->dim, ref->dim);
		snap_close(s);
		goto refused;
	}
	/* Validation read every byte, so the pages are resident; WILLNEED
	 * keeps the kernel from dropping the embeddings first. */
	snap_warm(s);
	srv_publish_model(srv, slot, s);
	*m.file = id;
	log_info("snapshot_published", "model=%s path=%s model_version=%s generation=%llu items=%u users=%u "
		 "took_ms=%.1f", m.name, path, s->hdr->model_version, (unsigned long long)s->generation, s->n_items,
		 s->n_users, (double)(now_ns() - t0) / 1e6);
	if (old) {
		struct ctl_retired *r = malloc(sizeof(*r));
		if (!r) {
			/* Leaking the old mapping beats unmapping under a reader. */
			log_error("snapshot_retire_failed", "model=%s generation=%llu err=\"out of memory\"", m.name,
				  (unsigned long long)old->generation);
		} else {
			r->snap = old;
			r->slot = slot;
			ctl.retired_pending++;
			ck_epoch_call(&ctl.record, &r->entry, retired_free);
		}
	}
	return CTL_RELOADED;
refused:
	ck_pr_store_64(m.load_failures, *m.load_failures + 1);
	log_error("snapshot_refused", "model=%s path=%s err=\"%s\" serving_generation=%llu", m.name, path, err,
		  (unsigned long long)(old ? old->generation : 0));
	return CTL_REFUSED;
}

/* The snapshot part of a reload: every slot in `models` whose file
 * changed. The summary in res: refused beats reloaded beats unchanged. */
static void reload_snapshots(struct recd_server *srv, unsigned models, struct ctl_reload_result *res)
{
	for (uint32_t i = 0; i < srv_model_count(srv); i++) {
		if (!(models & (1u << i)))
			continue;
		enum ctl_reload_status st = reload_model(srv, (int)i, res->models[i].error,
							 sizeof(res->models[i].error));
		res->models[i].status = st;
		if (st == CTL_REFUSED && res->status != CTL_REFUSED) {
			res->status = CTL_REFUSED;
			if (i)
				snprintf(res->error, sizeof(res->error), "model %s: %.340s", srv_model_name(srv, (int)i),
					 res->models[i].error);
			else
				snprintf(res->error, sizeof(res->error), "%s", res->models[i].error);
		} else if (st == CTL_RELOADED && res->status == CTL_UNCHANGED) {
			res->status = CTL_RELOADED;
		}
	}
	result_serving(srv, res);
}

/* A fresh answer: nothing done yet, what serves now. */
static void result_init(const struct recd_server *srv, struct ctl_reload_result *res)
{
	res->status = CTL_UNCHANGED;
	res->error[0] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(res->models); i++) {
		res->models[i].status = CTL_UNCHANGED;
		res->models[i].error[0] = 0;
	}
	result_serving(srv, res);
}

int ctl_load_initial(struct recd_server *srv, char *err, size_t errlen)
{
	static struct ctl_reload_result res;   /* large: not on the stack */
	ctl.srv = srv;
	ck_epoch_init(&srv->epoch);
	ck_epoch_register(&srv->epoch, &ctl.record, NULL);
	ctl.registered = true;
	int r = srv_models_init(srv, err, errlen);
	if (r)
		return r;
	/* The main snapshot first: generation 1, and the dimension the
	 * others are held to. */
	for (uint32_t i = 0; i < srv_model_count(srv); i++) {
		if (reload_model(srv, (int)i, res.models[i].error, sizeof(res.models[i].error)) != CTL_REFUSED)
			continue;
		if (i)
			snprintf(err, errlen, "model %s (%s): %s", srv_model_name(srv, (int)i), srv->models[i - 1].path,
				 res.models[i].error);
		else
			snprintf(err, errlen, "%s", res.models[i].error);
		return -EINVAL;
	}
	return 0;
}

/* Compile and pre-flight the plugins directory as it is now (in a forked
 * child, against the served snapshot); on success publish a new policy
 * generation, which every worker picks up at its next loop turn. On
 * failure nothing changes: the workers keep the set they run. */
static void reload_policies(struct recd_server *srv, bool only_if_changed, struct ctl_reload_result *res)
{
	const char *src = srv->cfg.plugins_dir;
	if (!src[0]) {
		snprintf(res->policy_error, sizeof(res->policy_error), "no plugins_dir configured");
		return;
	}
	/* A file event for content already published (an editor's touch, or
	 * an edit an explicit reload already took) changes nothing. */
	if (only_if_changed && ctl.sets[0].print && lua_set_fingerprint(src) == ctl.sets[0].print)
		return;
	uint64_t t0 = now_ns();
	/* One private copy is checked and loaded by every worker: an edit in
	 * the middle of this reload cannot reach a worker unchecked. */
	struct lua_set set;
	int r = lua_set_stage(src, NULL, &set, res->policy_error, sizeof(res->policy_error));
	if (!r) {
		struct lua_host_limits lim;
		api_lua_limits(&srv->cfg, &lim);
		r = lua_host_compile_check(set.dir, srv->cfg.lua_dir, &lim, srv->snapshot, res->policy_error,
					   sizeof(res->policy_error));
		lua_set_unstage_msg(&set, src, res->policy_error, sizeof(res->policy_error));
	}
	/* The experiments come with the set: a bad experiments.lua refuses it. */
	struct exp_set *exps = NULL;
	if (!r)
		r = ctl_experiments_load(srv, set.dir, src, &exps, res->policy_error, sizeof(res->policy_error));
	if (r) {
		lua_set_remove(&set);
		res->policy_status = CTL_REFUSED;
		ck_pr_store_64(&srv->policy_load_failures, srv->policy_load_failures + 1);
		log_error("policy_refused", "plugins=%s err=\"%s\" detail=\"the running policies keep serving\"",
			  src, res->policy_error);
		return;
	}
	/* Build every worker's state here first, so workers only swap a
	 * pointer; then publish the generation they are built for. */
	char serr[256];
	if (api_policies_stage(srv, set.dir, lua_host_published() + 1, serr, sizeof(serr)))
		log_warn("policy_stage_failed", "err=\"%s\" detail=\"workers build their own states\"", serr);
	snprintf(srv->policy_dir, sizeof(srv->policy_dir), "%s", set.dir);
	/* Before the generation: a worker that sees it finds its set. */
	ctl_experiments_publish(exps, lua_host_published() + 1);
	res->policy_generation = lua_host_publish();
	res->policy_status = CTL_RELOADED;
	lua_set_remove(&ctl.sets[2]);
	ctl.sets[2] = ctl.sets[1];
	ctl.sets[1] = ctl.sets[0];
	ctl.sets[0] = set;
	log_info("policy_published", "generation=%llu plugins=%s staged=%s took_ms=%.1f",
		 (unsigned long long)res->policy_generation, src, set.dir, (double)(now_ns() - t0) / 1e6);
}

static int model_lookup(void *ctx, const char *name)
{
	return srv_model_find(ctx, name, strlen(name));
}

int ctl_experiments_load(struct recd_server *srv, const char *dir, const char *shown, struct exp_set **out,
			 char *err, size_t errlen)
{
	int r = exp_lua_load(dir, shown, model_lookup, srv, out, err, errlen);
	if (!r && (*out)->n)
		for (uint32_t i = 0; i < (*out)->n; i++)
			for (uint32_t v = 0; v < (*out)->e[i].n_variants; v++)
				if ((*out)->e[i].v[v].model_slot > 0 &&
				    !srv_model_snapshot(srv, (*out)->e[i].v[v].model_slot)) {
					snprintf(err, errlen, "%s/experiments.lua: experiment '%s': variant '%s': model "
						 "'%s' is not loaded", shown, (*out)->e[i].name, (*out)->e[i].v[v].name,
						 (*out)->e[i].v[v].model);
					free(*out);
					*out = NULL;
					return -EINVAL;
				}
	return r;
}

static void exp_retired_free(ck_epoch_entry_t *e)
{
	free(e);   /* retire is the set's first member */
	ctl.retired_pending--;
}

void ctl_experiments_publish(struct exp_set *s, uint64_t generation)
{
	s->generation = generation;
	struct exp_set *gone = exp_set_publish(s);
	if (gone) {
		ctl.retired_pending++;
		ck_epoch_call(&ctl.record, &gone->retire, exp_retired_free);
	}
	log_info("experiments_published", "generation=%llu experiments=%u", (unsigned long long)generation, s->n);
}

void ctl_adopt_policies(const struct lua_set *initial)
{
	ctl.sets[0] = *initial;
}

static void list_add(char *list, size_t len, const char *name)
{
	size_t l = strlen(list);
	snprintf(list + l, len - l, "%s%s", l ? "," : "", name);
}

/* Read the config file and command line again: apply the changed
 * reloadable keys, report the other changes as needing a restart. A bad
 * file changes nothing. */
static void reload_settings(struct recd_server *srv, struct ctl_reload_result *res)
{
	struct recd_config *nc = malloc(sizeof(*nc));
	struct cfg_cli cli;
	if (!nc) {
		snprintf(res->settings_error, sizeof(res->settings_error), "out of memory");
		res->settings_status = CTL_REFUSED;
		return;
	}
	cfg_defaults(nc);
	if (cfg_parse_args(nc, &cli, srv->argc, srv->argv, res->settings_error, sizeof(res->settings_error)) ||
	    cfg_validate(nc, res->settings_error, sizeof(res->settings_error))) {
		res->settings_status = CTL_REFUSED;
		log_error("settings_refused", "err=\"%s\" detail=\"the running settings stay\"", res->settings_error);
		free(nc);
		return;
	}
	for (size_t i = 0; i < cfg_table_len; i++) {
		const struct cfg_key *k = &cfg_table[i];
		if (cfg_key_equal(&srv->cfg_parsed, nc, k))
			continue;
		if (!k->reloadable) {
			list_add(res->settings_restart, sizeof(res->settings_restart), k->name);
			continue;
		}
		cfg_key_copy(&srv->cfg, nc, k);
		cfg_key_copy(&srv->cfg_parsed, nc, k);
		list_add(res->settings_applied, sizeof(res->settings_applied), k->name);
	}
	if (res->settings_applied[0]) {
		res->settings_status = CTL_RELOADED;
		log_set_level(log_level_parse(srv->cfg.log_level));
		log_info("settings_applied", "keys=%s", res->settings_applied);
	}
	if (res->settings_restart[0])
		log_warn("settings_need_restart", "keys=%s detail=\"changed, but only a restart applies them\"",
			 res->settings_restart);
	free(nc);
}

static void notify_status(const struct recd_server *srv)
{
	const struct snap *s = srv->snapshot;
	sd_notifyf(0, "STATUS=serving %s@%llu (%u items, %u users) on %s; policies %s@%llu; %u workers, "
		   "%llu connections",
		   s ? s->hdr->model_version : "-", (unsigned long long)(s ? s->generation : 0),
		   s ? s->n_items : 0, s ? s->n_users : 0, srv->bound_addr,
		   srv->cfg.plugins_dir[0] ? "plugins" : "builtin", (unsigned long long)lua_host_published(),
		   srv->n_workers, (unsigned long long)ck_pr_load_64(&srv->conn_open));
}

static void do_reload(struct recd_server *srv, unsigned what, unsigned models, const char *source,
		      struct ctl_reload_result *res)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading (%s)",
		   (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000, source);
	/* Name the models only when the snapshot part is limited to some. */
	char names[(CFG_MODEL_NAME_MAX + 1) * (SRV_MAX_MODELS + 1) + 8] = "";
	unsigned all = (1u << srv_model_count(srv)) - 1;
	if ((what & CTL_RELOAD_SNAPSHOT) && (models & all) != all) {
		for (uint32_t i = 0; i < srv_model_count(srv); i++)
			if (models & (1u << i))
				list_add(names, sizeof(names), srv_model_name(srv, (int)i));
	}
	log_info("reload", "source=%s what=%s%s%s", source,
		 what == CTL_RELOAD_ALL ? "all" : what == CTL_RELOAD_SNAPSHOT ? "snapshot" :
		 what == CTL_RELOAD_POLICIES ? "policies" : what == CTL_RELOAD_SETTINGS ? "settings" : "several",
		 names[0] ? " models=" : "", names);
	result_init(srv, res);
	res->policy_status = CTL_UNCHANGED;
	res->policy_generation = lua_host_published();
	res->policy_error[0] = 0;
	res->settings_status = CTL_UNCHANGED;
	res->settings_applied[0] = res->settings_restart[0] = res->settings_error[0] = 0;
	/* Settings first: a new budget or limit applies to the policy states
	 * this same reload builds. */
	if (what & CTL_RELOAD_SETTINGS)
		reload_settings(srv, res);
	if (what & CTL_RELOAD_SNAPSHOT)
		reload_snapshots(srv, models, res);
	if (what & CTL_RELOAD_POLICIES)
		reload_policies(srv, !strcmp(source, "plugins_change"), res);
	sd_notify(0, "READY=1");
	notify_status(srv);
}

int ctl_request_reload(struct recd_server *srv, unsigned what, struct ctl_reload_result *res)
{
	return ctl_request_reload_models(srv, what, CTL_MODELS_ALL, res);
}

int ctl_request_reload_models(struct recd_server *srv, unsigned what, unsigned models,
			      struct ctl_reload_result *res)
{
	pthread_mutex_lock(&ctl.mu);
	if (!ctl.running) {
		pthread_mutex_unlock(&ctl.mu);
		return -ESRCH;
	}
	uint64_t my = ++ctl.req_seq;
	ctl.req_what |= what;
	ctl.req_models |= models;
	pthread_kill(ctl.thread, SIGUSR1);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += CTL_REQUEST_TIMEOUT_S;
	int r = 0;
	while (ctl.done_seq < my && ctl.running && r == 0)
		r = pthread_cond_timedwait(&ctl.cv, &ctl.mu, &deadline);
	bool done = ctl.done_seq >= my;
	if (done)
		*res = ctl.req_result;
	pthread_mutex_unlock(&ctl.mu);
	(void)srv;
	return done ? 0 : r ? -ETIMEDOUT : -ESRCH;
}

static void serve_requests(struct recd_server *srv)
{
	pthread_mutex_lock(&ctl.mu);
	uint64_t upto = ctl.req_seq;
	unsigned what = ctl.req_what, models = ctl.req_models;
	ctl.req_what = ctl.req_models = 0;
	pthread_mutex_unlock(&ctl.mu);
	if (!what)
		return;
	/* Requests that arrive together share one reload and one answer (for
	 * the union of what and of the models they asked for). */
	static struct ctl_reload_result res;   /* large: not on the stack */
	do_reload(srv, what, models, "admin", &res);
	pthread_mutex_lock(&ctl.mu);
	ctl.req_result = res;
	ctl.done_seq = upto;
	pthread_cond_broadcast(&ctl.cv);
	pthread_mutex_unlock(&ctl.mu);
}

/* Watch the directory of every model's file (a rename into place is the
 * way to replace one) and the plugins directory. Several files in one
 * directory share its watch descriptor; events are told apart by name. */
static void watch_start(struct recd_server *srv)
{
	bool snap = srv->cfg.snapshot_watch && srv->cfg.snapshot[0];
	bool plugins = srv->cfg.plugins_dir[0] != 0;
	for (size_t i = 0; i < ARRAY_SIZE(ctl.watch); i++)
		ctl.watch[i].wd = -1;
	if (!snap && !plugins)
		return;
	ctl.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ctl.inotify_fd < 0) {
		log_warn("watch_failed", "err=\"%s\"", strerror(errno));
		return;
	}
	for (uint32_t i = 0; snap && i < srv_model_count(srv); i++) {
		struct srv_model_ref m;
		srv_model_ref(srv, (int)i, &m);
		char dir[PATH_MAX], base[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", m.path);
		snprintf(base, sizeof(base), "%s", m.path);
		snprintf(ctl.watch[i].name, sizeof(ctl.watch[i].name), "%s", basename(base));
		/* IN_MASK_ADD: a directory watched for several reasons keeps
		 * every reason's events. */
		ctl.watch[i].wd = inotify_add_watch(ctl.inotify_fd, dirname(dir),
						    IN_CLOSE_WRITE | IN_MOVED_TO | IN_MASK_ADD);
		if (ctl.watch[i].wd < 0)
			log_warn("snapshot_watch_failed", "model=%s path=%s err=\"%s\"", m.name, m.path,
				 strerror(errno));
	}
	/* Editors save by rename or in place; a deleted hook counts too. */
	if (plugins) {
		ctl.wd_plugins = inotify_add_watch(ctl.inotify_fd, srv->cfg.plugins_dir,
						   IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_MASK_ADD);
		if (ctl.wd_plugins < 0)
			log_warn("plugins_watch_failed", "path=%s err=\"%s\"", srv->cfg.plugins_dir, strerror(errno));
	}
}

static bool is_lua_file(const char *name)
{
	size_t n = strlen(name);
	return n > 4 && !strcmp(name + n - 4, ".lua") && name[0] != '.';
}

static void watch_poll(void)
{
	if (ctl.inotify_fd < 0)
		return;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(ctl.inotify_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			uint64_t due = now_ns() + CTL_WATCH_DEBOUNCE_MS * 1000000ull;
			for (size_t i = 0; ev->len && i < ARRAY_SIZE(ctl.watch); i++)
				if (ev->wd == ctl.watch[i].wd && !strcmp(ev->name, ctl.watch[i].name))
					ctl.watch[i].due_ns = due;
			if (ev->len && ev->wd == ctl.wd_plugins && is_lua_file(ev->name))
				ctl.policy_due_ns = due;
			p += sizeof(*ev) + ev->len;
		}
	}
}

/* The watchdog pings systemd only while every worker's loop keeps
 * turning: each worker's ring has a 250 ms tick, so a worker that does
 * not advance within half the watchdog period is stuck, and then the
 * pings stop and systemd restarts the service. */
static void *watchdog_main(void *arg)
{
	struct recd_server *srv = arg;
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return NULL;
	uint64_t *prev = calloc(srv->n_threads, sizeof(*prev));
	if (!prev)
		return NULL;
	uint64_t period_ns = usec * 1000 / 2;
	log_info("watchdog", "interval_ms=%llu", (unsigned long long)(period_ns / 1000000));
	bool warned = false;
	while (!ck_pr_load_int(&srv->stopping)) {
		struct timespec ts = { (time_t)(period_ns / 1000000000ull), (long)(period_ns % 1000000000ull) };
		nanosleep(&ts, NULL);
		int stuck = -1;
		for (uint32_t i = 0; i < srv->n_threads; i++) {
			uint64_t t = ck_pr_load_64(&srv->slots[i].turns);
			if (t == prev[i] && !ck_pr_load_int(&srv->slots[i].waiting))
				stuck = (int)i;
			prev[i] = t;
		}
		if (stuck < 0) {
			sd_notify(0, "WATCHDOG=1");
			warned = false;
		} else if (!warned) {
			log_error("worker_stalled", "worker=%d detail=\"watchdog pings withheld\"", stuck);
			warned = true;
		}
	}
	free(prev);
	return NULL;
}

/* Reloads compile Lua, fork the pre-flight and map snapshots: work that
 * must take the CPU only when the workers leave it idle. */
static void yield_to_workers(void)
{
	/* Out of a real-time policy only: the control thread also answers
	 * signals and admin reloads, which must not wait behind busy
	 * neighbours on a loaded box. */
	int r = thread_background(0);
	if (r)
		log_debug("control_priority_kept", "err=\"%s\"", strerror(-r));
}

void ctl_run(struct recd_server *srv)
{
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);

	pthread_mutex_lock(&ctl.mu);
	ctl.thread = pthread_self();
	ctl.running = true;
	pthread_mutex_unlock(&ctl.mu);

	pthread_t wd;
	bool wd_started = pthread_create(&wd, NULL, watchdog_main, srv) == 0;
	yield_to_workers();   /* after the watchdog started: it keeps the process's policy */
	watch_start(srv);
	notify_status(srv);

	uint64_t last_status = now_ns();
	for (;;) {
		struct timespec tmo = { 0, CTL_TURN_MS * 1000000l };
		siginfo_t si;
		int sig = sigtimedwait(&sigs, &si, &tmo);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		static struct ctl_reload_result res;   /* large: not on the stack */
		if (sig == SIGHUP)
			do_reload(srv, CTL_RELOAD_ALL, CTL_MODELS_ALL, "sighup", &res);
		serve_requests(srv);
		watch_poll();
		/* Each model's file has its own debounce; those due reload together. */
		unsigned due = 0;
		for (size_t i = 0; i < ARRAY_SIZE(ctl.watch); i++) {
			if (ctl.watch[i].due_ns && now_ns() >= ctl.watch[i].due_ns) {
				ctl.watch[i].due_ns = 0;
				due |= 1u << i;
			}
		}
		if (due)
			do_reload(srv, CTL_RELOAD_SNAPSHOT, due, "file_change", &res);
		if (ctl.policy_due_ns && now_ns() >= ctl.policy_due_ns) {
			ctl.policy_due_ns = 0;
			do_reload(srv, CTL_RELOAD_POLICIES, CTL_MODELS_ALL, "plugins_change", &res);
		}
		if (ctl.retired_pending)
			ck_epoch_poll(&ctl.record);
		api_policies_collect(false);
		if (now_ns() - last_status > 5000000000ull) {
			notify_status(srv);
			last_status = now_ns();
		}
	}

	pthread_mutex_lock(&ctl.mu);
	ctl.running = false;
	/* Wake any waiter: it sees running == false and gives up (-ESRCH). */
	pthread_cond_broadcast(&ctl.cv);
	pthread_mutex_unlock(&ctl.mu);
	ck_pr_store_int(&srv->stopping, 1);
	if (wd_started)
		pthread_join(wd, NULL);
	if (ctl.inotify_fd >= 0)
		close(ctl.inotify_fd);
	ctl.inotify_fd = -1;
}

void ctl_shutdown(struct recd_server *srv)
{
	api_policies_collect(true);   /* the workers are gone */
	for (size_t i = 0; i < ARRAY_SIZE(ctl.sets); i++)
		lua_set_remove(&ctl.sets[i]);
	/* Workers are gone: nothing can hold a snapshot any more. */
	if (ctl.registered) {
		while (ctl.retired_pending)
			ck_epoch_barrier(&ctl.record);
		ck_epoch_unregister(&ctl.record);
		ctl.registered = false;
	}
	for (struct exp_set *s = exp_set_take_all(), *next; s; s = next) {
		next = s->prev;
		free(s);
	}
	snap_close(srv->snapshot);
	srv->snapshot = NULL;
	for (uint32_t i = 0; i < srv->n_models; i++) {
		snap_close(srv->models[i].snapshot);
		srv->models[i].snapshot = NULL;
	}
}
