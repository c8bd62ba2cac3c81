/* main.c: the recd daemon: configuration, start-up and shutdown.
 *
 * The main thread becomes the control thread (ctl.c) once the workers
 * run: it loads the snapshot, replays the event log into live state
 * (upd_start), starts the io_uring workers, tells systemd when it is
 * ready, serves reloads, and on SIGTERM/SIGINT drains the workers and
 * exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include "core/cfg.h"
#include "core/log.h"
#include "core/srv.h"
#include "ctl/ctl.h"
#include "exp/exp_ledger.h"
#include "events/kafka.h"
#include "gen/gen.h"
#include "live/updater.h"
#include "lua/lua_host.h"
#include "lua/lua_set.h"
#include "api/api.h"
#include "metrics/metrics.h"
#include "net/net.h"
#include "recd_build.h"
#include "snap/snapb.h"
#if RECD_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

static const char *allocator_version(void)
{
#if RECD_HAVE_JEMALLOC
	const char *v = NULL;
	size_t sz = sizeof(v);
	if (mallctl("version", &v, &sz, NULL, 0) == 0 && v)
		return v;
	return "jemalloc (version unknown)";
#else
	return "libc (sanitizer build)";
#endif
}

/* Generate the demo catalogue and write it as a snapshot file; the daemon
 * then loads it through the same validating loader as any other. */
static int make_demo_snapshot(struct recd_config *cfg)
{
	struct gen_params gp = {
		.seed = (uint64_t)cfg->demo_seed,
		.n_items = (uint32_t)cfg->demo_items,
		.n_users = (uint32_t)cfg->demo_users,
		.dim = (uint32_t)cfg->demo_dim,
		.out_of_stock_share = -1,
	};
	struct gen_data d;
	char err[256];
	if (gen_generate(&gp, &d, err, sizeof(err))) {
		log_error("demo_failed", "err=\"%s\"", err);
		return -1;
	}
	struct snapb_input in;
	gen_snapb_input(&d, &in);
	const char *dir = getenv("RUNTIME_DIRECTORY");
	snprintf(cfg->snapshot, sizeof(cfg->snapshot), "%s/recd-demo-%d.recd", dir ? dir : "/tmp", (int)getuid());
	int r = snapb_write(&in, cfg->snapshot, err, sizeof(err));
	gen_free(&d);
	if (r) {
		log_error("demo_failed", "path=%s err=\"%s\"", cfg->snapshot, err);
		return -1;
	}
	log_info("demo_snapshot", "path=%s items=%lld users=%lld dim=%lld seed=%lld", cfg->snapshot,
		 (long long)cfg->demo_items, (long long)cfg->demo_users, (long long)cfg->demo_dim,
		 (long long)cfg->demo_seed);
	return 0;
}

/* lua_dir "" means the installed copy; a binary in a build tree (no
 * installed copy beside it) uses the source tree's. The demo serves the
 * default plugins unless told otherwise. */
static void resolve_policy_dirs(struct recd_config *cfg)
{
	bool installed = access(RECD_INSTALLED_LUA_DIR "/recd_host.lua", R_OK) == 0;
	if (!cfg->lua_dir[0])
		snprintf(cfg->lua_dir, sizeof(cfg->lua_dir), "%s",
			 installed ? RECD_INSTALLED_LUA_DIR : RECD_SOURCE_LUA_DIR);
	if (cfg->demo && !cfg->plugins_dir[0])
		snprintf(cfg->plugins_dir, sizeof(cfg->plugins_dir), "%s",
			 installed ? RECD_INSTALLED_PLUGINS_DIR : RECD_SOURCE_PLUGINS_DIR);
}

static void print_demo_banner(const struct recd_server *srv)
{
	printf("\nrecd is serving the demo catalogue on http://%s (admin on %s). Try:\n\n"
	       "  curl '%s/v1/recommendations?user_id=u1&n=10'\n"
	       "  curl '%s/v1/recommendations?user_id=someone-new&n=5'\n"
	       "  curl '%s/v1/recommendations?item_id=i42&n=5'\n"
	       "  curl %s/metrics\n\n"
	       "Stop with Ctrl-C.\n\n",
	       srv->bound_addr, srv->bound_admin[0] ? srv->bound_admin : "off", srv->bound_addr, srv->bound_addr,
	       srv->bound_addr, srv->bound_addr);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static struct recd_server srv;
	struct cfg_cli cli;
	char err[512];

	log_init();
	cfg_defaults(&srv.cfg);
	if (cfg_parse_args(&srv.cfg, &cli, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "recd: %s\n(see recd --help)\n", err);
		return 2;
	}
	if (cli.help) {
		cfg_print_help(stdout, argv[0]);
		return 0;
	}
	if (cli.version) {
		printf("recd %s (allocator: %s)\n", RECD_VERSION, allocator_version());
		return 0;
	}
	if (cfg_validate(&srv.cfg, err, sizeof(err))) {
		fprintf(stderr, "recd: %s\n", err);
		return 2;
	}
	log_set_level(log_level_parse(srv.cfg.log_level));
	srv.cfg_parsed = srv.cfg;
	srv.argc = argc;
	srv.argv = argv;
	if (cli.check) {
		printf("recd: configuration ok\n");
		return 0;
	}

	srv.start_time_ms = now_wall_ms();
	srv.start_mono_ns = now_ns();
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	srv.n_workers = srv.cfg.workers > 0 ? (uint32_t)srv.cfg.workers : (uint32_t)(cpus > 0 ? cpus : 1);

	if (srv.cfg.demo && !srv.cfg.snapshot[0] && make_demo_snapshot(&srv.cfg))
		return 1;
	/* The demo must run anywhere (no /var/lib/recd) and start fresh: no
	 * event log unless one is asked for by directory. */
	if (srv.cfg.demo && srv.cfg.event_log && !srv.cfg.event_log_dir[0])
		srv.cfg.event_log = false;
	if (!srv.cfg.snapshot[0]) {
		fprintf(stderr, "recd: no snapshot configured: set `snapshot = PATH` or run with --demo\n");
		return 2;
	}
	if (ctl_load_initial(&srv, err, sizeof(err))) {
		log_error("startup_failed", "path=%s err=\"snapshot refused: %s\"", srv.cfg.snapshot, err);
		return 1;
	}
	struct snap *s = srv_snapshot(&srv);

	/* The policy set is compiled and pre-flighted on the snapshot before
	 * any worker loads it: a bad set stops the start with file:line. */
	resolve_policy_dirs(&srv.cfg);
	if (srv.cfg.plugins_dir[0]) {
		struct lua_host_limits lim;
		api_lua_limits(&srv.cfg, &lim);
		struct lua_set set;
		lua_set_sweep(NULL);
		int pr = lua_set_stage(srv.cfg.plugins_dir, NULL, &set, err, sizeof(err));
		struct exp_set *exps = NULL;
		if (!pr) {
			pr = lua_host_compile_check(set.dir, srv.cfg.lua_dir, &lim, s, err, sizeof(err));
			lua_set_unstage_msg(&set, srv.cfg.plugins_dir, err, sizeof(err));
		}
		if (!pr)
			pr = ctl_experiments_load(&srv, set.dir, srv.cfg.plugins_dir, &exps, err, sizeof(err));
		if (pr) {
			lua_set_remove(&set);
			log_error("startup_failed", "plugins=%s err=\"policies refused: %s\"", srv.cfg.plugins_dir, err);
			return 1;
		}
		snprintf(srv.policy_dir, sizeof(srv.policy_dir), "%s", set.dir);
		ctl_adopt_policies(&set);
		ctl_experiments_publish(exps, lua_host_published());
		log_info("policies_loaded", "plugins=%s lua=%s generation=%llu", srv.cfg.plugins_dir, srv.cfg.lua_dir,
			 (unsigned long long)lua_host_published());
	}

	if (metrics_init(srv.n_workers)) {
		log_error("startup_failed", "err=\"out of memory for metrics\"");
		return 1;
	}

	/* One event ring per worker, one for the admin worker (index
	 * n_workers) and, with Kafka, one for its consumer (n_workers + 1). */
	static struct updater upd;
	bool kafka_on = srv.cfg.kafka_brokers[0] != '\0';
	uint32_t kafka_ring = srv.n_workers + 1;
	/* Replays the event log into live state before any listener opens:
	 * READY below means recovered. */
	int ur = upd_start(&upd, &srv, srv.n_workers + 1 + (kafka_on ? 1 : 0), (uint32_t)srv.cfg.event_ring_size,
			   s->dim, (uint64_t)srv.cfg.live_max_users, (uint64_t)srv.cfg.live_user_ttl_s * 1000);
	if (ur) {
		log_error("startup_failed", "err=\"updater: %s\"", strerror(-ur));
		return 1;
	}
	srv.updater = &upd;

	/* The experiment ledger: impressions from the workers, outcomes from
	 * the updater. Static: its epoch record must outlive every barrier. */
	static struct exp_ledger ledger;
	struct exp_ledger_opts lo;
	exp_ledger_opts_default(&lo);
	lo.window_s = (uint32_t)srv.cfg.attribution_window_s;
	int lr = exp_ledger_start(&ledger, &srv, srv.n_workers, &lo);
	if (lr) {
		log_error("startup_failed", "err=\"experiment ledger: %s\"", strerror(-lr));
		return 1;
	}
	api_set_ledger(&ledger);
	ck_pr_store_ptr(&upd.ledger, &ledger);

	/* Threads inherit this mask: only the control thread takes signals. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	/* After the mask: librdkafka's threads inherit it. Consuming may
	 * start before the listeners: the updater already runs. */
	if (kafka_on) {
		int kr = kafka_start(&srv.kafka, &srv, &upd, kafka_ring, err, sizeof(err));
		if (kr) {
			log_error("startup_failed", "err=\"%s\"", err);
			return 1;
		}
	}

	struct net_server *ns;
	if (net_start(&srv, &ns, err, sizeof(err))) {
		log_error("startup_failed", "err=\"%s\"", err);
		return 1;
	}
	log_info("listening", "addr=%s admin=%s workers=%u allocator=\"%s\" version=%s", srv.bound_addr,
		 srv.bound_admin[0] ? srv.bound_admin : "off", srv.n_workers, allocator_version(), RECD_VERSION);
	if (srv.cfg.demo)
		print_demo_banner(&srv);
	sd_notifyf(0, "READY=1\nSTATUS=serving %s@%llu (%u items) on %s", s->hdr->model_version,
		   (unsigned long long)s->generation, s->n_items, srv.bound_addr);

	ctl_run(&srv);

	log_info("draining", "timeout_ms=%lld", (long long)srv.cfg.drain_timeout_ms);
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	ck_pr_store_int(&srv.stopping, 1);
	net_begin_drain(ns);
	net_join(ns);
	/* Its last events applied and their offsets committed, while the
	 * updater still runs. */
	kafka_stop(srv.kafka);
	srv.kafka = NULL;
	upd_stop(&upd);
	exp_ledger_stop(&ledger);   /* after its producers, before the sets and snapshots go */
	/* ck_epoch keeps every registered record on its list for good: the
	 * last barrier must run while the workers' records are still alive,
	 * so the control thread quiesces before net_free releases them. */
	ctl_shutdown(&srv);
	net_free(ns);
	metrics_shutdown();
	log_info("stopped", "uptime_ms=%llu", (unsigned long long)(now_wall_ms() - srv.start_time_ms));
	return 0;
}
