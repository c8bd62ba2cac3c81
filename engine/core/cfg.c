/* cfg.c: the configuration table, its parsers (value, file, argv), the
 * cross-field checks, --help and the JSON dump.
 *
 * Every setting exists in exactly one place, cfg_table; the parsers, the
 * help text and the dump walk it, so adding a key is adding a row (and a
 * line to systemd/recd.conf, which the unit test checks).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/buf.h"
#include "core/cfg.h"
#include "core/log.h"
#include "recd_build.h"

#define OFF(f) offsetof(struct recd_config, f), sizeof(((struct recd_config *)0)->f)
#define INT(f, lo, hi, def, rl, help) { #f, CFG_INT, OFF(f), lo, hi, #def, rl, help, 0 }
#define STR(f, def, help) { #f, CFG_STRING, OFF(f), 0, 0, def, false, help, 0 }
#define ADDR(f, def, flags, help) { #f, CFG_ADDR, OFF(f), 0, 0, def, false, help, flags }
/* lo and hi in millionths, def as text */
#define DEC(f, lo, hi, def, rl, help) { #f, CFG_DECIMAL, OFF(f), lo, hi, def, rl, help, 0 }

const struct cfg_key cfg_table[] = {
	ADDR(listen, "127.0.0.1:8080", 0,
	     "main listener: host:port, [v6]:port or unix:/path (port 0 = ephemeral)"),
	ADDR(admin_listen, "127.0.0.1:8081", CFG_F_OPTIONAL,
	     "admin listener (metrics, reload, dumps); \"\" disables it"),
	STR(admin_token, "",
	    "bearer token for the admin listener; required unless it is loopback or unix:"),
	INT(workers, 0, 1024, 0, false, "worker threads, one event loop each; 0 = one per online CPU"),
	STR(snapshot, "", "snapshot file to serve (\"\" = none unless demo)"),
	{ "snapshot_watch", CFG_BOOL, OFF(snapshot_watch), 0, 0, "true", false,
	  "reload the snapshot when its file is replaced (rename into place)", 0 },
	{ "snapshot_hugepages", CFG_BOOL, OFF(snapshot_hugepages), 0, 0, "false", true,
	  "map snapshots 2 MiB-aligned with MADV_HUGEPAGE (transparent huge pages for the page cache)", 0 },
	{ "model_name", CFG_STRING, OFF(model_name), 0, 0, "default", false,
	  "name of the snapshot's model among the models (experiments, /admin/status, recd_model_* metrics)",
	  CFG_F_MODEL_NAME },
	{ "models", CFG_STRING, OFF(models), 0, 0, "", false,
	  "more snapshots served beside the main one, \"name=path,name=path\" (at most 8, names [A-Za-z0-9_-], "
	  "same dimension as the main one)", CFG_F_MODELS },
	STR(plugins_dir, "", "directory of Lua policy plugins (\"\" = built-in policies only)"),
	STR(lua_dir, "", "directory of the Lua policy API (lua/); \"\" = the installed copy"),
	INT(plugin_budget_us, 10, 1000000, 2000, true,
	    "time budget of one policy hook call (us); over it the C ranking serves the request"),
	INT(plugin_memory_mb, 1, 4096, 64, true,
	    "Lua heap ceiling per worker (MiB); at twice this the worker's Lua state is rebuilt"),
	INT(plugin_breaker_threshold, 1, 1000000, 20, true,
	    "consecutive policy failures after which a worker stops calling Lua until the next reload"),
	INT(plugin_preflight_ms, 100, 60000, 1000, true,
	    "a new policy set must run its test requests within this (ms), in a child process"),
	STR(state_dir, "/var/lib/recd", "directory for live state kept across restarts"),
	{ "event_log", CFG_BOOL, OFF(event_log), 0, 0, "true", false,
	  "keep accepted events in an append-only log, replayed into live state at start", 0 },
	STR(event_log_dir, "",
	    "event log directory (\"\" = state_dir/events); created if missing, its parent must exist"),
	{ "durability", CFG_CHOICE, OFF(durability), 0, 0, "batch", false,
	  "when an event is acknowledged: none (logged, never fsync'ed), batch (after the fsync covering it, "
	  "at most one per durability_batch_ms) or always (after an fsync of its batch)", 0, "none|batch|always" },
	INT(durability_batch_ms, 1, 1000, 5, false,
	    "durability = batch: at most one fsync of the event log per this many ms"),
	INT(checkpoint_interval_s, 0, 604800, 300, false,
	    "write a checkpoint of live state this often (s) and trim the event log below it; 0 = not by time"),
	INT(checkpoint_log_bytes, 0, INT64_MAX, 268435456, false,
	    "also checkpoint once the event log grew by this many bytes; 0 = not by size "
	    "(both 0: no automatic checkpoints, not even at shutdown)"),
	STR(kafka_brokers, "",
	    "Kafka bootstrap servers (host:port[,host:port...]) to consume events from; \"\" = no Kafka"),
	STR(kafka_topics, "", "Kafka topics to consume, comma-separated (needed with kafka_brokers)"),
	STR(kafka_group, "recd", "Kafka consumer group id (one per replica that must see every partition)"),
	{ "kafka_start", CFG_CHOICE, OFF(kafka_start), 0, 0, "latest", false,
	  "where a consumer group without a committed offset starts: earliest or latest", 0, "earliest|latest" },
	INT(kafka_batch, 1, 100000, 500, false, "Kafka messages taken per poll round"),
	INT(kafka_commit_ms, 10, 600000, 100, false,
	    "offsets of applied (and durable) Kafka messages are committed at most this often (ms)"),
	STR(kafka_options, "",
	    "more librdkafka consumer properties, \"key=value;key=value\" (TLS, SASL, timeouts)"),
	INT(max_connections, 1, 1000000, 10000, true,
	    "open client connections for the whole process; beyond it new ones get 503"),
	INT(max_request_line, 256, 65536, 8192, false,
	    "longest request line in bytes; longer gets 414"),
	INT(max_headers, 1, 100, 64, false, "most header fields per request; more gets 431"),
	INT(max_header_bytes, 1024, 1048576, 16384, false,
	    "largest request head (line + headers) in bytes; larger gets 431"),
	INT(max_body_bytes, 0, 1073741824, 1048576, false,
	    "largest request body in bytes; larger gets 413"),
	INT(idle_timeout_ms, 100, 3600000, 60000, true,
	    "close a keep-alive connection idle this long (ms)"),
	INT(header_timeout_ms, 100, 600000, 10000, true,
	    "close a connection whose request head takes longer than this (ms; 408)"),
	INT(drain_timeout_ms, 0, 600000, 10000, true,
	    "on shutdown, wait this long (ms) for in-flight requests before closing"),
	{ "ring_entries", CFG_INT, OFF(ring_entries), 64, 32768, "1024", false,
	  "io_uring submission queue entries per worker (power of two)", CFG_F_POW2 },
	INT(default_n, 1, 10000, 10, true, "recommendations returned when the request gives no n"),
	INT(max_n, 1, 10000, 200, false, "largest n a request may ask for; larger gets 400"),
	INT(ann_nprobe, 1, 65536, 96, true,
	    "ANN index lists probed first per query (more: better recall, slower); "
	    "widened automatically when filters leave fewer than n items"),
	INT(shed_backlog, 0, 100000, 8, true,
	    "a worker with this many completions queued at the start of a loop turn serves shoppers without a "
	    "precomputed list from the route's other sources instead of searching now (0 = never)"),
	INT(ann_nprobe_miss, 1, 65536, 32, true,
	    "ANN lists probed by a personal search on the request path, which only runs while the shopper's "
	    "precomputed list (searched with ann_nprobe) is missing or out of date"),
	{ "refresh_foldin", CFG_CHOICE, OFF(refresh_foldin), 0, 0, "cold", true,
	  "query of a precomputed list from the shopper's live events: ALS fold-in against the snapshot's items "
	  "for shoppers without a snapshot embedding (cold), for every shopper with the embedding as prior (all), "
	  "or never (off: the blend of embedding and session vector)", CFG_F_INDEX, "off|cold|all" },
	DEC(foldin_lambda, 1, 1000000000000, "0.1", true,
	    "fold-in: the L2 weight the snapshot was trained with (recd-train --lambda)"),
	DEC(foldin_alpha, 0, 1000000000000, "10", true,
	    "fold-in: the confidence slope the snapshot was trained with (recd-train --alpha)"),
	DEC(foldin_prior, 0, 1000000000000, "10", true,
	    "fold-in, refresh_foldin = all: pull towards the shopper's snapshot embedding (0 = none)"),
	{ "event_ring_size", CFG_INT, OFF(event_ring_size), 64, 1048576, "4096", false,
	  "events queued per worker for the updater (power of two); a full ring answers 503", CFG_F_POW2 },
	INT(max_events_per_request, 1, 100000, 1000, false,
	    "most events in one POST /v1/events (JSON array or NDJSON lines); more gets 413"),
	INT(live_max_users, 1000, 1000000000, 1000000, false,
	    "users kept in live state; beyond it the least recently seen are evicted"),
	INT(live_user_ttl_s, 60, 31536000, 604800, false,
	    "forget live state of users idle this long (seconds)"),
	INT(attribution_window_s, 1, 604800, 1800, false,
	    "a click, add_to_cart or purchase without a request_id is attributed to the shopper's newest "
	    "list served within this many seconds that showed the item"),
	{ "log_level", CFG_LEVEL, OFF(log_level), 0, 0, "info", true,
	  "error, warn, info or debug", 0 },
	{ "access_log_sample", CFG_FRACTION, OFF(access_log_sample), 0, 0, "0", true,
	  "share of main-listener requests logged as msg=access lines (0..1, e.g. 0.001; 0 = off); "
	  "a sampled request costs one write(2) to stderr on its worker", 0 },
	{ "debug_endpoints", CFG_BOOL, OFF(debug_endpoints), 0, 0, "false", false,
	  "test-only admin endpoints (/admin/debug/*); never in production", 0 },
	{ "demo", CFG_BOOL, OFF(demo), 0, 0, "false", false,
	  "generate and serve synthetic demo data instead of a snapshot file", 0 },
	INT(demo_items, 1, 10000000, 10000, false, "demo: catalog size"),
	INT(demo_users, 1, 10000000, 2000, false, "demo: number of users"),
	INT(demo_dim, 1, 1024, 32, false, "demo: embedding dimension"),
	INT(demo_seed, 0, INT64_MAX, 42, false, "demo: random seed (same seed, same data)"),
};
const size_t cfg_table_len = ARRAY_SIZE(cfg_table);

static const char *const cfg_type_names[] = {
	[CFG_INT] = "int", [CFG_BOOL] = "bool", [CFG_STRING] = "string",
	[CFG_ADDR] = "addr", [CFG_LEVEL] = "level", [CFG_CHOICE] = "choice",
	[CFG_FRACTION] = "fraction", [CFG_DECIMAL] = "decimal",
};

static int cfg_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

void cfg_defaults(struct recd_config *cfg)
{
	/* Zero first so padding and string tails compare equal in tests. */
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < cfg_table_len; i++) {
		int rc = cfg_set(cfg, cfg_table[i].name, cfg_table[i].def, NULL, 0);
		(void)rc; /* the table's defaults are checked by the unit test */
	}
}

const struct cfg_key *cfg_find(const char *name, size_t len)
{
	for (size_t i = 0; i < cfg_table_len; i++) {
		const char *k = cfg_table[i].name;
		if (strlen(k) != len)
			continue;
		size_t j = 0;
		/* '-' and '_' are the same so --max-n and max_n both work. */
		for (; j < len; j++) {
			char c = name[j] == '-' ? '_' : name[j];
			if (c != k[j])
				break;
		}
		if (j == len)
			return &cfg_table[i];
	}
	return NULL;
}

static int cfg_parse_int(const struct cfg_key *k, const char *v, int64_t *out, char *err,
			 size_t errlen)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (end == v || *end || isspace((unsigned char)*v))
		return cfg_err(err, errlen, "%s: not a number '%s'", k->name, v);
	if (errno == ERANGE)
		return cfg_err(err, errlen, "%s: '%s' is out of range", k->name, v);
	if (n < k->min)
		return cfg_err(err, errlen, "%s: %lld is below the minimum %lld", k->name, n,
			       (long long)k->min);
	if (n > k->max)
		return cfg_err(err, errlen, "%s: %lld is above the maximum %lld", k->name, n,
			       (long long)k->max);
	if ((k->flags & CFG_F_POW2) && (n & (n - 1)))
		return cfg_err(err, errlen, "%s: %lld is not a power of two", k->name, n);
	*out = n;
	return 0;
}

/* A share 0..1 as a decimal ("0.001", "1e-3", "1"), into parts per million. */
static int cfg_parse_fraction(const struct cfg_key *k, const char *v, int64_t *out, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (end == v || *end || isspace((unsigned char)*v) || errno == ERANGE || !(d == d))
		return cfg_err(err, errlen, "%s: not a number between 0 and 1 '%s'", k->name, v);
	if (d < 0 || d > 1)
		return cfg_err(err, errlen, "%s: %s is not between 0 and 1", k->name, v);
	if (d > 0 && d < 0.5e-6)
		return cfg_err(err, errlen, "%s: %s is below one in a million (0.000001); 0 turns it off", k->name, v);
	*out = (int64_t)(d * 1e6 + 0.5);
	return 0;
}

/* Millionths as a decimal: "0.000001", "10", "2.5". */
static void cfg_fmt_millionths(char *b, size_t n, int64_t v)
{
	uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	int len = snprintf(b, n, "%s%llu.%06llu", v < 0 ? "-" : "", (unsigned long long)(a / 1000000),
			   (unsigned long long)(a % 1000000));
	if (len <= 0 || (size_t)len >= n)
		return;
	while (b[len - 1] == '0')
		b[--len] = '\0';
	if (b[len - 1] == '.')
		b[--len] = '\0';
}

/* A decimal within the row's bounds, into millionths (rounded). */
static int cfg_parse_decimal(const struct cfg_key *k, const char *v, int64_t *out, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (end == v || *end || isspace((unsigned char)*v) || errno == ERANGE || !isfinite(d))
		return cfg_err(err, errlen, "%s: not a number '%s'", k->name, v);
	char lim[32];
	double m = d * 1e6;
	if (m < (double)k->min - 0.5 || m < -9e18) {
		cfg_fmt_millionths(lim, sizeof(lim), k->min);
		return cfg_err(err, errlen, "%s: %s is below the minimum %s", k->name, v, lim);
	}
	if (m > (double)k->max + 0.5 || m > 9e18) {
		cfg_fmt_millionths(lim, sizeof(lim), k->max);
		return cfg_err(err, errlen, "%s: %s is above the maximum %s", k->name, v, lim);
	}
	int64_t n = llround(m);
	if (d != 0 && n == 0)
		return cfg_err(err, errlen, "%s: %s is below one millionth (0.000001)", k->name, v);
	*out = MIN(MAX(n, k->min), k->max);
	return 0;
}

static int cfg_parse_bool(const struct cfg_key *k, const char *v, bool *out, char *err,
			  size_t errlen)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return cfg_err(err, errlen, "%s: not a boolean '%s' (true/false, yes/no, on/off, 1/0)",
		       k->name, v);
}

/* host:port, [v6]:port or unix:/path. Only the shape is checked here; name
 * resolution and binding happen (and fail loudly) at startup. */
static bool cfg_addr_ok(const char *v)
{
	if (!strncmp(v, "unix:", 5))
		return v[5] != '\0' && strlen(v + 5) < 108; /* sun_path */
	const char *colon;
	if (*v == '[') {
		const char *rb = strchr(v, ']');
		if (!rb || rb == v + 1 || rb[1] != ':')
			return false;
		colon = rb + 1;
	} else {
		colon = strrchr(v, ':');
		if (!colon || colon == v || memchr(v, ':', (size_t)(colon - v)))
			return false;
	}
	for (const char *p = v; p < colon; p++)
		if (isspace((unsigned char)*p) || *p == '/')
			return false;
	const char *port = colon + 1;
	if (!*port || strlen(port) > 5)
		return false;
	for (const char *p = port; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	return atoi(port) <= 65535;
}

/* The index of `v` among the '|'-separated words of `choices`, or -1. */
static int cfg_choice_index(const char *choices, const char *v)
{
	size_t vl = strlen(v);
	int i = 0;
	for (const char *p = choices; p && *p; i++) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);
		if (n == vl && !memcmp(p, v, n))
			return i;
		p = bar ? bar + 1 : NULL;
	}
	return -1;
}

/* Word `i` of `choices` into b ("" when there is none). */
static void cfg_choice_word(const char *choices, int64_t i, char *b, size_t n)
{
	b[0] = '\0';
	for (const char *p = choices; p && *p && i >= 0; i--) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (!i) {
			snprintf(b, n, "%.*s", (int)len, p);
			return;
		}
		p = bar ? bar + 1 : NULL;
	}
}

/* Kept in an int64 (one atomic store on reload, see cfg_key_copy)? */
static bool cfg_is_i64(const struct cfg_key *k)
{
	return k->type == CFG_INT || k->type == CFG_FRACTION || k->type == CFG_DECIMAL ||
	       (k->type == CFG_CHOICE && (k->flags & CFG_F_INDEX));
}

bool cfg_model_name_ok(const char *s, size_t len)
{
	if (!len || len > CFG_MODEL_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* The names go into metric labels, log lines and JSON unescaped, hence
 * the narrow alphabet; a path cannot hold a comma (the separator). */
int cfg_models_parse(const char *list, struct cfg_model *out, size_t *n, char *err, size_t errlen)
{
	struct { const char *name, *path; size_t nl, pl; } seen[CFG_MAX_MODELS];
	*n = 0;
	const char *p = list;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return 0;
	for (;;) {
		size_t len = strcspn(p, ",");
		const char *end = p + len;
		const char *a = p, *b = end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (a == b)
			return cfg_err(err, errlen, "models: empty entry in '%s'", list);
		const char *eq = memchr(a, '=', (size_t)(b - a));
		if (!eq)
			return cfg_err(err, errlen, "models: expected name=path, got '%.*s'", (int)(b - a), a);
		const char *ne = eq, *ps = eq + 1;
		while (ne > a && (ne[-1] == ' ' || ne[-1] == '\t'))
			ne--;
		while (ps < b && (*ps == ' ' || *ps == '\t'))
			ps++;
		size_t nl = (size_t)(ne - a), pl = (size_t)(b - ps);
		if (!cfg_model_name_ok(a, nl))
			return cfg_err(err, errlen, "models: '%.*s' is not a model name (1 to %d letters, digits, '_' or '-')",
				       (int)nl, a, CFG_MODEL_NAME_MAX);
		if (!pl)
			return cfg_err(err, errlen, "models: %.*s has no path", (int)nl, a);
		if (pl >= PATH_MAX)
			return cfg_err(err, errlen, "models: %.*s: path longer than %d bytes", (int)nl, a, PATH_MAX - 1);
		if (ps[pl - 1] == '/')
			return cfg_err(err, errlen, "models: %.*s: '%.*s' names a directory, not a snapshot file", (int)nl,
				       a, (int)pl, ps);
		if (*n == CFG_MAX_MODELS)
			return cfg_err(err, errlen, "models: more than %d models", CFG_MAX_MODELS);
		for (size_t i = 0; i < *n; i++) {
			if (seen[i].nl == nl && !memcmp(seen[i].name, a, nl))
				return cfg_err(err, errlen, "models: %.*s is named twice", (int)nl, a);
			if (seen[i].pl == pl && !memcmp(seen[i].path, ps, pl))
				return cfg_err(err, errlen, "models: %.*s and %.*s have the same path '%.*s'",
					       (int)seen[i].nl, seen[i].name, (int)nl, a, (int)pl, ps);
		}
		seen[*n].name = a, seen[*n].nl = nl, seen[*n].path = ps, seen[*n].pl = pl;
		if (out) {
			memcpy(out[*n].name, a, nl);
			out[*n].name[nl] = '\0';
			memcpy(out[*n].path, ps, pl);
			out[*n].path[pl] = '\0';
		}
		(*n)++;
		if (!*end)
			return 0;
		p = end + 1;
	}
}

int cfg_set(struct recd_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	const struct cfg_key *k = cfg_find(key, strlen(key));
	if (!k)
		return cfg_err(err, errlen, "unknown key '%s'", key);
	char *field = (char *)cfg + k->offset;
	switch (k->type) {
	case CFG_INT: {
		int64_t n = 0;
		int rc = cfg_parse_int(k, value, &n, err, errlen);
		if (rc)
			return rc;
		memcpy(field, &n, sizeof(n));
		return 0;
	}
	case CFG_FRACTION: {
		int64_t ppm = 0;
		int rc = cfg_parse_fraction(k, value, &ppm, err, errlen);
		if (rc)
			return rc;
		memcpy(field, &ppm, sizeof(ppm));
		return 0;
	}
	case CFG_DECIMAL: {
		int64_t m = 0;
		int rc = cfg_parse_decimal(k, value, &m, err, errlen);
		if (rc)
			return rc;
		memcpy(field, &m, sizeof(m));
		return 0;
	}
	case CFG_BOOL: {
		bool b = false;
		int rc = cfg_parse_bool(k, value, &b, err, errlen);
		if (rc)
			return rc;
		memcpy(field, &b, sizeof(b));
		return 0;
	}
	case CFG_LEVEL:
		if (log_level_parse(value) < 0)
			return cfg_err(err, errlen, "%s: unknown level '%s' (error, warn, info, debug)",
				       k->name, value);
		break;
	case CFG_ADDR:
		if (!(*value == '\0' && (k->flags & CFG_F_OPTIONAL)) && !cfg_addr_ok(value))
			return cfg_err(err, errlen,
				       "%s: expected host:port, [v6]:port or unix:/path, got '%s'",
				       k->name, value);
		break;
	case CFG_CHOICE: {
		int i = cfg_choice_index(k->choices, value);
		if (i < 0)
			return cfg_err(err, errlen, "%s: expected one of %s, got '%s'", k->name, k->choices,
				       value);
		if (k->flags & CFG_F_INDEX) {
			int64_t v = i;
			memcpy(field, &v, sizeof(v));
			return 0;
		}
		break;
	}
	case CFG_STRING:
		if ((k->flags & CFG_F_MODEL_NAME) && !cfg_model_name_ok(value, strlen(value)))
			return cfg_err(err, errlen, "%s: '%s' is not a model name (1 to %d letters, digits, '_' or '-')",
				       k->name, value, CFG_MODEL_NAME_MAX);
		if (k->flags & CFG_F_MODELS) {
			size_t n;
			int rc = cfg_models_parse(value, NULL, &n, err, errlen);
			if (rc)
				return rc;
		}
		break;
	}
	size_t len = strlen(value);
	if (len >= k->size)
		return cfg_err(err, errlen, "%s: too long (%zu bytes, at most %zu)", k->name, len,
			       k->size - 1);
	memcpy(field, value, len + 1);
	return 0;
}

static char *cfg_trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Split one line into key and value in place. Returns 1 for a setting,
 * 0 for a blank or comment line, -EINVAL for anything else. Values may be
 * double-quoted (with \" and \\ escapes) to keep spaces or '#'; an
 * unquoted value ends at " #" (a trailing comment). */
static int cfg_split_line(char *line, char **key, char **value, const char **why)
{
	char *s = cfg_trim(line);
	if (!*s || *s == '#')
		return 0;
	char *eq = strchr(s, '=');
	*why = "expected key = value";
	if (!eq)
		return -EINVAL;
	*eq = '\0';
	*key = cfg_trim(s);
	if (!**key || strpbrk(*key, " \t"))
		return -EINVAL;
	char *v = eq + 1;
	while (isspace((unsigned char)*v))
		v++;
	if (*v == '"') {
		char *r = v + 1, *w = v;
		for (; *r && *r != '"'; r++) {
			if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
				r++;
			*w++ = *r;
		}
		if (*r != '"') {
			*why = "unterminated quoted value";
			return -EINVAL;
		}
		*w = '\0';
		char *rest = cfg_trim(r + 1);
		if (*rest && *rest != '#') {
			*why = "unexpected text after the quoted value";
			return -EINVAL;
		}
	} else {
		for (char *p = v; *p; p++) {
			if (*p == '#' && (p == v || isspace((unsigned char)p[-1]))) {
				*p = '\0';
				break;
			}
		}
		v = cfg_trim(v);
	}
	*value = v;
	return 1;
}

int cfg_load_file(struct recd_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		int e = errno;
		cfg_err(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	int rc = 0;
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		char *key, *value;
		const char *why = NULL;
		int r = cfg_split_line(line, &key, &value, &why);
		if (r < 0) {
			rc = cfg_err(err, errlen, "%s:%u: %s", path, lineno, why);
			break;
		}
		if (!r)
			continue;
		char msg[512];
		if (cfg_set(cfg, key, value, msg, sizeof(msg))) {
			rc = cfg_err(err, errlen, "%s:%u: %s", path, lineno, msg);
			break;
		}
	}
	if (!rc && ferror(f)) {
		rc = -EIO;
		cfg_err(err, errlen, "%s: read error", path);
	}
	free(line);
	fclose(f);
	return rc;
}

/* Loopback or local socket: safe to leave the admin listener tokenless. */
static bool cfg_addr_is_local(const char *a)
{
	return !strncmp(a, "unix:", 5) || !strncmp(a, "127.", 4) || !strncmp(a, "[::1]:", 6) ||
	       !strncmp(a, "localhost:", 10);
}

static bool cfg_port_is_zero(const char *a)
{
	const char *c = strrchr(a, ':');
	return strncmp(a, "unix:", 5) && c && !strcmp(c + 1, "0");
}

/* Kafka topic names: what Kafka allows ([A-Za-z0-9._-]), at most 127
 * bytes (a topic name goes into the event log's source marks). */
static int cfg_kafka_topics_ok(const char *topics, char *err, size_t errlen)
{
	size_t n = 0;
	for (const char *p = topics;;) {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, ", ");
		const char *end = p + len;
		while (*end == ' ')
			end++;
		if (!len)
			return cfg_err(err, errlen, "kafka_topics: empty topic name in '%s'", topics);
		if (len > 127)
			return cfg_err(err, errlen, "kafka_topics: topic '%.*s...' is longer than 127 bytes", 32, p);
		for (size_t i = 0; i < len; i++)
			if (!isalnum((unsigned char)p[i]) && p[i] != '.' && p[i] != '_' && p[i] != '-')
				return cfg_err(err, errlen,
					       "kafka_topics: '%.*s' is not a topic name (letters, digits, '.', '_', '-')",
					       (int)len, p);
		n++;
		if (!*end)
			break;
		if (*end != ',')
			return cfg_err(err, errlen, "kafka_topics: expected a comma after '%.*s'", (int)len, p);
		p = end + 1;
	}
	return n ? 0 : cfg_err(err, errlen, "kafka_topics: no topic");
}

/* kafka_options: key=value items separated by ';'. The keys recd sets
 * itself (and relies on for its delivery guarantees) are refused. */
static int cfg_kafka_options_ok(const char *opts, char *err, size_t errlen)
{
	static const char *const owned[] = {
		"bootstrap.servers", "metadata.broker.list", "group.id", "enable.auto.commit",
		"enable.auto.offset.store", "auto.offset.reset", "enable.partition.eof", "isolation.level",
	};
	for (const char *p = opts; *p;) {
		size_t len = strcspn(p, ";");
		const char *eq = memchr(p, '=', len);
		size_t kl = eq ? (size_t)(eq - p) : 0;
		while (kl && p[kl - 1] == ' ')
			kl--;
		const char *k = p;
		while (kl && *k == ' ')
			k++, kl--;
		bool empty = true;
		for (size_t i = 0; i < len; i++)
			if (p[i] != ' ')
				empty = false;
		if (!empty) {
			if (!eq || !kl)
				return cfg_err(err, errlen, "kafka_options: expected key=value, got '%.*s'", (int)len, p);
			for (size_t i = 0; i < ARRAY_SIZE(owned); i++)
				if (strlen(owned[i]) == kl && !memcmp(owned[i], k, kl))
					return cfg_err(err, errlen,
						       "kafka_options: %s is set by recd (kafka_brokers, kafka_group, "
						       "kafka_start and the delivery guarantees depend on it)",
						       owned[i]);
		}
		p += len;
		if (*p == ';')
			p++;
	}
	return 0;
}

int cfg_validate(const struct recd_config *cfg, char *err, size_t errlen)
{
	if (!cfg->listen[0])
		return cfg_err(err, errlen, "listen: must be set");
	if (cfg->default_n > cfg->max_n)
		return cfg_err(err, errlen, "default_n (%lld) is above max_n (%lld)",
			       (long long)cfg->default_n, (long long)cfg->max_n);
	if (cfg->admin_listen[0]) {
		if (!cfg->admin_token[0] && !cfg_addr_is_local(cfg->admin_listen))
			return cfg_err(err, errlen,
				       "admin_token is required when admin_listen (%s) is not "
				       "loopback or unix:",
				       cfg->admin_listen);
		/* Port 0 asks the kernel for a fresh port: two of them never clash. */
		if (!strcmp(cfg->listen, cfg->admin_listen) && !cfg_port_is_zero(cfg->listen))
			return cfg_err(err, errlen, "listen and admin_listen are the same (%s)",
				       cfg->listen);
	}
	if (cfg->models[0]) {
		struct cfg_model *m = malloc(CFG_MAX_MODELS * sizeof(*m));
		size_t n = 0;
		if (!m)
			return cfg_err(err, errlen, "models: out of memory");
		int r = cfg_models_parse(cfg->models, m, &n, err, errlen);
		for (size_t i = 0; !r && i < n; i++) {
			if (!strcmp(m[i].name, cfg->model_name))
				r = cfg_err(err, errlen, "models: %s is the name of the main snapshot (model_name)", m[i].name);
			else if (!strcmp(m[i].path, cfg->snapshot))
				r = cfg_err(err, errlen, "models: %s has the path of the main snapshot (%s)", m[i].name,
					    m[i].path);
		}
		free(m);
		if (r)
			return r;
	}
	if (cfg->kafka_brokers[0]) {
		if (!cfg->kafka_topics[0])
			return cfg_err(err, errlen, "kafka_topics: must name at least one topic when kafka_brokers is set");
		int r = cfg_kafka_topics_ok(cfg->kafka_topics, err, errlen);
		if (r)
			return r;
		if (!cfg->kafka_group[0])
			return cfg_err(err, errlen, "kafka_group: must be set when kafka_brokers is set");
		if ((r = cfg_kafka_options_ok(cfg->kafka_options, err, errlen)))
			return r;
	}
	return 0;
}

/* What one argv entry means; value points into argv. */
struct cfg_opt {
	const struct cfg_key *key; /* NULL for a flag already handled */
	const char *value;
};

int cfg_parse_args(struct recd_config *cfg, struct cfg_cli *cli, int argc, char **argv,
		   char *err, size_t errlen)
{
	memset(cli, 0, sizeof(*cli));
	struct cfg_opt *opts = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*opts));
	if (!opts)
		return -ENOMEM;
	size_t n_opts = 0;
	int rc = 0;
	char msg[512];

	/* Pass 1: recognise everything, remember the overrides. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			cli->help = true;
			continue;
		}
		if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			cli->version = true;
			continue;
		}
		if (!strcmp(a, "--check-config") || !strcmp(a, "--check_config")) {
			cli->check = true;
			continue;
		}
		if (!strcmp(a, "--demo")) {
			opts[n_opts++] = (struct cfg_opt){ cfg_find("demo", 4), "true" };
			continue;
		}
		if (strncmp(a, "--", 2) || !a[2]) {
			rc = cfg_err(err, errlen, "command line: unexpected argument '%s'", a);
			goto out;
		}
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const char *value = eq ? eq + 1 : NULL;
		bool is_config = nlen == 6 && !strncmp(name, "config", 6);
		const struct cfg_key *k = is_config ? NULL : cfg_find(name, nlen);
		if (!is_config && !k) {
			rc = cfg_err(err, errlen, "command line: unknown option --%.*s", (int)nlen,
				     name);
			goto out;
		}
		if (!value && k && k->type == CFG_BOOL) {
			value = "true"; /* a bare --flag switches a boolean on */
		} else if (!value) {
			if (i + 1 >= argc) {
				rc = cfg_err(err, errlen, "command line: --%.*s needs a value",
					     (int)nlen, name);
				goto out;
			}
			value = argv[++i];
		}
		if (is_config)
			cli->config_path = value;
		else
			opts[n_opts++] = (struct cfg_opt){ k, value };
	}

	/* Pass 2: the file first, so the command line always wins. */
	if (cli->config_path) {
		rc = cfg_load_file(cfg, cli->config_path, err, errlen);
		if (rc)
			goto out;
	}
	for (size_t i = 0; i < n_opts; i++) {
		rc = cfg_set(cfg, opts[i].key->name, opts[i].value, msg, sizeof(msg));
		if (rc) {
			cfg_err(err, errlen, "command line: %s", msg);
			goto out;
		}
	}
out:
	free(opts);
	return rc;
}

void cfg_print_help(FILE *out, const char *argv0)
{
	fprintf(out,
		"Usage: %s [--config FILE] [--KEY=VALUE ...]\n"
		"recd %s: real-time recommendation serving engine.\n\n"
		"Options:\n"
		"  --config FILE     load settings from FILE (key = value lines)\n"
		"  --check-config    validate the settings and exit\n"
		"  --demo            serve generated demo data (same as --demo=true)\n"
		"  -h, --help        show this help and exit\n"
		"  -V, --version     show the version and exit\n\n"
		"Settings (config file `key = value`, or --key=VALUE / --key VALUE on the\n"
		"command line, which wins over the file; '-' and '_' are interchangeable):\n",
		argv0 ? argv0 : "recd", RECD_VERSION);
	for (size_t i = 0; i < cfg_table_len; i++) {
		const struct cfg_key *k = &cfg_table[i];
		fprintf(out, "  %-18s %-6s default %s%s%s", k->name, cfg_type_names[k->type],
			*k->def ? "" : "\"", k->def, *k->def ? "" : "\"");
		if (k->type == CFG_INT)
			fprintf(out, " [%lld..%lld%s]", (long long)k->min, (long long)k->max,
				k->flags & CFG_F_POW2 ? ", power of two" : "");
		if (k->type == CFG_CHOICE)
			fprintf(out, " [%s]", k->choices);
		if (k->type == CFG_FRACTION)
			fprintf(out, " [0..1]");
		if (k->type == CFG_DECIMAL) {
			char lo[32], hi[32];
			cfg_fmt_millionths(lo, sizeof(lo), k->min);
			cfg_fmt_millionths(hi, sizeof(hi), k->max);
			fprintf(out, " [%s..%s]", lo, hi);
		}
		fprintf(out, "%s\n      %s\n", k->reloadable ? " (reloadable)" : "", k->help);
	}
}

bool cfg_key_equal(const struct recd_config *a, const struct recd_config *b, const struct cfg_key *k)
{
	const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
	if (cfg_is_i64(k))
		return !memcmp(fa, fb, sizeof(int64_t));
	switch (k->type) {
	case CFG_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	default:
		return !strncmp(fa, fb, k->size);
	}
}

void cfg_key_copy(struct recd_config *dst, const struct recd_config *src, const struct cfg_key *k)
{
	char *fd = (char *)dst + k->offset;
	const char *fs = (const char *)src + k->offset;
	if (cfg_is_i64(k)) {
		/* Workers read these fields while the control thread writes:
		 * one atomic 8-byte store, never a torn value. */
		int64_t v;
		memcpy(&v, fs, sizeof(v));
		__atomic_store_n((int64_t *)(void *)fd, v, __ATOMIC_RELAXED);
		return;
	}
	switch (k->type) {
	case CFG_BOOL:
		__atomic_store_n((bool *)fd, *(const bool *)fs, __ATOMIC_RELAXED);
		break;
	default:
		memcpy(fd, fs, k->size);   /* strings: read by the control thread only */
	}
}

/* kafka_options as a JSON string, with the values of keys that may hold
 * secrets (sasl.password, ssl.key.password, ...client.secret) masked. */
static void cfg_put_masked_options(struct buf *out, const char *opts)
{
	static const char *const secret[] = { "password", "secret", "key", "jaas", "token", "credential" };
	char tmp[sizeof(((struct recd_config *)0)->kafka_options) + 64];
	size_t n = 0;
	for (const char *p = opts; *p && n + 8 < sizeof(tmp);) {
		size_t len = strcspn(p, ";");
		const char *eq = memchr(p, '=', len);
		size_t kl = eq ? (size_t)(eq - p) : len;
		bool mask = false;
		for (size_t i = 0; eq && i < ARRAY_SIZE(secret); i++)
			if (memmem(p, kl, secret[i], strlen(secret[i])))
				mask = true;
		size_t keep = mask ? kl + 1 : len;
		if (n + keep + 5 >= sizeof(tmp))
			break;
		memcpy(tmp + n, p, keep);
		n += keep;
		if (mask) {
			memcpy(tmp + n, "***", 3);
			n += 3;
		}
		p += len;
		if (*p == ';') {
			tmp[n++] = ';';
			p++;
		}
	}
	buf_put_json_str(out, tmp, n);
}

void cfg_dump_json(const struct recd_config *cfg, struct buf *out)
{
	buf_putc(out, '{');
	for (size_t i = 0; i < cfg_table_len; i++) {
		const struct cfg_key *k = &cfg_table[i];
		const char *field = (const char *)cfg + k->offset;
		if (i)
			buf_putc(out, ',');
		buf_put_json_str(out, k->name, strlen(k->name));
		buf_putc(out, ':');
		switch (k->type) {
		case CFG_INT: {
			int64_t n;
			memcpy(&n, field, sizeof(n));
			buf_put_i64(out, n);
			break;
		}
		case CFG_FRACTION:
		case CFG_DECIMAL: {
			int64_t ppm;
			memcpy(&ppm, field, sizeof(ppm));
			buf_put_double(out, (double)ppm / 1e6);
			break;
		}
		case CFG_CHOICE:
			if (k->flags & CFG_F_INDEX) {
				int64_t idx;
				char word[64];
				memcpy(&idx, field, sizeof(idx));
				cfg_choice_word(k->choices, idx, word, sizeof(word));
				buf_put_json_str(out, word, strlen(word));
				break;
			}
			buf_put_json_str(out, field, strnlen(field, k->size));
			break;
		case CFG_BOOL:
			if (*(const bool *)field)
				buf_puts_lit(out, "true");
			else
				buf_puts_lit(out, "false");
			break;
		default:
			/* The dump is served on the admin endpoint and logged:
			 * never echo the secret itself. */
			if (k->offset == offsetof(struct recd_config, admin_token) && *field)
				buf_puts_lit(out, "\"***\"");
			else if (k->offset == offsetof(struct recd_config, kafka_options))
				cfg_put_masked_options(out, field);
			else
				buf_put_json_str(out, field, strnlen(field, k->size));
		}
	}
	buf_putc(out, '}');
}
