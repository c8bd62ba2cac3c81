/* cfg.h: the one configuration table of recd.
 *
 * Every setting is a row of cfg_table (name, type, bounds, default,
 * reloadable, help). The config file is `key = value` lines with `#`
 * comments; command-line `--key=value` overrides the file. Errors name the
 * file, line and key.
 */
#ifndef RECD_CFG_H
#define RECD_CFG_H

#include <limits.h>
#include <stdio.h>
#include "core/common.h"

struct buf;

/* Named snapshots served beside the main one (`models`, core/srv.h). */
#define CFG_MAX_MODELS 8       /* extra models, the main one not counted */
#define CFG_MODEL_NAME_MAX 31  /* [A-Za-z0-9_-], at least one */

enum cfg_type {
	CFG_INT,     /* int64 within [min, max] */
	CFG_BOOL,    /* true/false/yes/no/on/off/1/0 */
	CFG_STRING,  /* any text up to the field size */
	CFG_ADDR,    /* host:port, [v6]:port or unix:/path; port 0 = ephemeral */
	CFG_LEVEL,   /* log level name */
	CFG_CHOICE,  /* one of the row's `choices` ("a|b|c"), kept as text */
	CFG_FRACTION, /* a decimal 0..1 ("0.01", "1e-3"), kept as int64 parts per million */
	CFG_DECIMAL, /* a decimal within [min, max] ("0.1", "1e3"), kept as int64 millionths
	                (min and max in millionths too) */
};

struct recd_config {
	char listen[128];          /* main listener */
	char admin_listen[128];    /* admin listener ("" = off) */
	char admin_token[128];     /* bearer token; required unless admin is loopback/unix */
	int64_t workers;           /* 0 = one per online CPU */
	char snapshot[PATH_MAX];   /* snapshot file to serve */
	bool snapshot_watch;       /* reload when the file is replaced */
	bool snapshot_hugepages;   /* map snapshots 2 MiB-aligned with MADV_HUGEPAGE */
	char model_name[CFG_MODEL_NAME_MAX + 1]; /* the snapshot's name among the models */
	char models[4096];         /* more models: "name=path,name=path" (cfg_models_parse) */
	char plugins_dir[PATH_MAX];
	char lua_dir[PATH_MAX];    /* the policy API library (lua/); "" = installed copy */
	int64_t plugin_budget_us;  /* per hook call */
	int64_t plugin_memory_mb;  /* Lua heap ceiling per worker (hard: 2x) */
	int64_t plugin_breaker_threshold; /* consecutive failures before the breaker opens */
	int64_t plugin_preflight_ms;      /* reload's forked test run of a policy set */
	char state_dir[PATH_MAX];
	bool event_log;            /* keep accepted events in the append-only log */
	char event_log_dir[PATH_MAX]; /* "" = state_dir/events */
	char durability[8];        /* none | batch | always (events/evlog.h) */
	int64_t durability_batch_ms;  /* batch: at most one fdatasync per this */
	int64_t checkpoint_interval_s; /* live state checkpoint at most this often; 0 = not by time */
	int64_t checkpoint_log_bytes;  /* ...or after this much log; 0 = not by size (both 0: off) */
	/* The Kafka event source (events/kafka.h); off while kafka_brokers is "". */
	char kafka_brokers[512];   /* bootstrap servers: host:port[,host:port...] */
	char kafka_topics[1024];   /* topics to consume, comma-separated */
	char kafka_group[256];     /* consumer group id */
	char kafka_start[16];      /* earliest | latest: where a group without a committed offset starts */
	int64_t kafka_batch;       /* messages taken per poll round */
	int64_t kafka_commit_ms;   /* applied offsets are committed at most this often */
	char kafka_options[2048];  /* more librdkafka properties: "key=value;key=value" */
	int64_t max_connections;   /* whole process; refused with 503 beyond */
	int64_t max_request_line;
	int64_t max_headers;
	int64_t max_header_bytes;
	int64_t max_body_bytes;
	int64_t idle_timeout_ms;
	int64_t header_timeout_ms;
	int64_t drain_timeout_ms;
	int64_t ring_entries;      /* io_uring SQ entries per worker */
	int64_t default_n;
	int64_t max_n;
	int64_t ann_nprobe;        /* ANN lists probed first per query */
	int64_t ann_nprobe_miss;
	/* The refresh thread's query (live/refresh.h), read at each computation. */
	int64_t refresh_foldin;    /* 0 off, 1 cold, 2 all: the word's index (CFG_F_INDEX) */
	int64_t foldin_lambda;     /* millionths, as every CFG_DECIMAL */
	int64_t foldin_alpha;
	int64_t foldin_prior;
	int64_t shed_backlog;      /* completions queued that make a worker skip on-demand searches */   /* the same for a personal search while a precomputed list is on its way */
	int64_t event_ring_size;        /* per worker, power of two */
	int64_t max_events_per_request;
	int64_t live_max_users;
	int64_t live_user_ttl_s;
	char log_level[16];
	int64_t attribution_window_s; /* experiments: outcomes without request_id match lists this recent */
	int64_t access_log_sample; /* share of main-listener requests in the access log, per million */
	bool debug_endpoints;      /* test-only admin endpoints */
	bool demo;                 /* generate and serve the embedded demo data */
	int64_t demo_items;
	int64_t demo_users;
	int64_t demo_dim;
	int64_t demo_seed;
};

struct cfg_key {
	const char *name;
	enum cfg_type type;
	size_t offset;      /* into struct recd_config */
	size_t size;        /* of the field (strings) */
	int64_t min, max;   /* CFG_INT bounds */
	const char *def;    /* default, as text */
	bool reloadable;
	const char *help;
	unsigned flags;     /* CFG_F_* */
	const char *choices; /* CFG_CHOICE: the accepted values, "a|b|c" */
};

#define CFG_F_POW2     1u  /* CFG_INT: must be a power of two */
#define CFG_F_OPTIONAL 2u  /* CFG_ADDR: "" is accepted (= off) */
#define CFG_F_MODEL_NAME 4u /* CFG_STRING: a model name */
#define CFG_F_MODELS   8u  /* CFG_STRING: a `models` list (cfg_models_parse) */
#define CFG_F_INDEX   16u  /* CFG_CHOICE: kept as the int64 index of the word in `choices`
                              (not text): another thread may read it while a reload
                              stores it, as it may read a CFG_INT */

extern const struct cfg_key cfg_table[];
extern const size_t cfg_table_len;

/* Does key k have the same value in a and b? Copy it from src to dst
 * (integers and booleans with one atomic store: workers may be reading). */
bool cfg_key_equal(const struct recd_config *a, const struct recd_config *b, const struct cfg_key *k);
void cfg_key_copy(struct recd_config *dst, const struct recd_config *src, const struct cfg_key *k);

/* Fill every field with its default. */
void cfg_defaults(struct recd_config *cfg);
const struct cfg_key *cfg_find(const char *name, size_t len);
/* Set one key from text. -EINVAL with `err` naming the key and problem. */
int cfg_set(struct recd_config *cfg, const char *key, const char *value, char *err, size_t errlen);
/* Load a file; err = "path:line: problem". -errno / -EINVAL. */
int cfg_load_file(struct recd_config *cfg, const char *path, char *err, size_t errlen);
/* Cross-field checks after everything is set (e.g. token for non-loopback admin). */
int cfg_validate(const struct recd_config *cfg, char *err, size_t errlen);

/* One entry of a `models` list. */
struct cfg_model {
	char name[CFG_MODEL_NAME_MAX + 1];
	char path[PATH_MAX];
};
/* Parse a `models` value: comma-separated `name=path` entries (spaces
 * around either part ignored; "" = none), at most CFG_MAX_MODELS, names
 * valid and distinct, paths non-empty and distinct. Fills out[] (may be
 * NULL: check only) and *n. -EINVAL with err naming the key and problem. */
int cfg_models_parse(const char *list, struct cfg_model *out, size_t *n, char *err, size_t errlen);
/* Is [s, s+len) a model name ([A-Za-z0-9_-]{1,31})? */
bool cfg_model_name_ok(const char *s, size_t len);

/* What the command line asked for besides settings. */
struct cfg_cli {
	const char *config_path;   /* --config FILE (NULL = none) */
	bool help, version, check; /* --help, --version, --check-config */
};
/* Parse argv: --config FILE, --help, --version, --check-config, --demo,
 * --key=value / --key value (any table key, '-' and '_' both accepted).
 * The config file is loaded first, then the overrides, whatever their
 * order on the line. */
int cfg_parse_args(struct recd_config *cfg, struct cfg_cli *cli, int argc, char **argv,
		   char *err, size_t errlen);
void cfg_print_help(FILE *out, const char *argv0);
/* JSON object of every key and its current value (admin token masked). */
void cfg_dump_json(const struct recd_config *cfg, struct buf *out);

#endif
