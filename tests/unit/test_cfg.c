/* test_cfg.c: the configuration table: defaults, value parsing and bounds,
 * the file format and its errors, argv overrides, cross-field validation,
 * the shipped reference file, --help and the JSON dump. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/buf.h"
#include "core/cfg.h"

static int failures;
#define CHECK(cond) do { \
	if (!(cond)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); failures++; } \
} while (0)
/* An error message must equal `want` exactly. */
#define CHECK_ERR(got, want) do { \
	if (strcmp((got), (want))) { fprintf(stderr, "%s:%d: error was '%s', want '%s'\n", __FILE__, __LINE__, (got), (want)); failures++; } \
} while (0)

#define REFERENCE_CONF "systemd/recd.conf"

static char tmp_path[64];

/* Write `text` to a fresh temp file; its path is left in tmp_path. */
static const char *write_tmp(const char *text)
{
	strcpy(tmp_path, "/tmp/test_cfg.XXXXXX");
	int fd = mkstemp(tmp_path);
	if (fd < 0) {
		perror("mkstemp");
		exit(1);
	}
	size_t n = strlen(text);
	if (write(fd, text, n) != (ssize_t)n) {
		perror("write");
		exit(1);
	}
	close(fd);
	return tmp_path;
}

static void test_defaults(void)
{
	struct recd_config c;
	cfg_defaults(&c);
	CHECK(!strcmp(c.listen, "127.0.0.1:8080"));
	CHECK(!strcmp(c.admin_listen, "127.0.0.1:8081"));
	CHECK(!strcmp(c.admin_token, ""));
	CHECK(c.workers == 0);
	CHECK(!strcmp(c.snapshot, ""));
	CHECK(!strcmp(c.plugins_dir, ""));
	CHECK(!strcmp(c.state_dir, "/var/lib/recd"));
	CHECK(c.event_log == true);
	CHECK(!strcmp(c.event_log_dir, ""));
	CHECK(!strcmp(c.durability, "batch"));
	CHECK(c.durability_batch_ms == 5);
	CHECK(c.max_connections == 10000);
	CHECK(c.max_request_line == 8192);
	CHECK(c.max_headers == 64);
	CHECK(c.max_header_bytes == 16384);
	CHECK(c.max_body_bytes == 1048576);
	CHECK(c.idle_timeout_ms == 60000);
	CHECK(c.header_timeout_ms == 10000);
	CHECK(c.drain_timeout_ms == 10000);
	CHECK(c.ring_entries == 1024);
	CHECK(c.default_n == 10);
	CHECK(c.max_n == 200);
	CHECK(!strcmp(c.log_level, "info"));
	CHECK(c.demo == false);
	CHECK(c.demo_items == 10000);
	CHECK(c.demo_users == 2000);
	CHECK(c.demo_dim == 32);
	CHECK(c.demo_seed == 42);

	char err[256];
	CHECK(cfg_validate(&c, err, sizeof(err)) == 0);

	/* Every row: its default parses, its name is found, names are unique,
	 * the field lies inside the struct, and it has help text. */
	for (size_t i = 0; i < cfg_table_len; i++) {
		const struct cfg_key *k = &cfg_table[i];
		struct recd_config t;
		cfg_defaults(&t);
		err[0] = '\0';
		if (cfg_set(&t, k->name, k->def, err, sizeof(err))) {
			fprintf(stderr, "default of %s: %s\n", k->name, err);
			failures++;
		}
		CHECK(cfg_find(k->name, strlen(k->name)) == k);
		CHECK(k->offset + (k->type == CFG_INT ? sizeof(int64_t) : 1) <= sizeof(struct recd_config));
		CHECK(k->help && *k->help);
		if (k->type == CFG_INT)
			CHECK(k->min <= k->max);
	}
	/* One row per field of struct recd_config. */
	CHECK(cfg_table_len == 60);
	/* The fold-in settings: a choice kept as its index, decimals kept in
	 * millionths; all reloadable (the refresh thread reads them at each
	 * computation). */
	CHECK(c.refresh_foldin == 1 && c.foldin_lambda == 100000 && c.foldin_alpha == 10000000 &&
	      c.foldin_prior == 10000000);
	CHECK(cfg_set(&c, "refresh_foldin", "all", err, sizeof(err)) == 0 && c.refresh_foldin == 2);
	CHECK(cfg_set(&c, "refresh_foldin", "off", err, sizeof(err)) == 0 && c.refresh_foldin == 0);
	CHECK(cfg_set(&c, "refresh_foldin", "warm", err, sizeof(err)) == -EINVAL && c.refresh_foldin == 0);
	CHECK_ERR(err, "refresh_foldin: expected one of off|cold|all, got 'warm'");
	CHECK(cfg_set(&c, "foldin_lambda", "2.5", err, sizeof(err)) == 0 && c.foldin_lambda == 2500000);
	CHECK(cfg_set(&c, "foldin_lambda", "1e-3", err, sizeof(err)) == 0 && c.foldin_lambda == 1000);
	CHECK(cfg_set(&c, "foldin_lambda", "0", err, sizeof(err)) == -EINVAL && c.foldin_lambda == 1000);
	CHECK_ERR(err, "foldin_lambda: 0 is below the minimum 0.000001");
	CHECK(cfg_set(&c, "foldin_lambda", "1e7", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "foldin_lambda: 1e7 is above the maximum 1000000");
	CHECK(cfg_set(&c, "foldin_lambda", "nan", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "foldin_lambda: not a number 'nan'");
	CHECK(cfg_set(&c, "foldin_alpha", "0", err, sizeof(err)) == 0 && c.foldin_alpha == 0);
	CHECK(cfg_set(&c, "foldin_alpha", "-1", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "foldin_alpha: -1 is below the minimum 0");
	CHECK(cfg_set(&c, "foldin_prior", "1e-9", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "foldin_prior: 1e-9 is below one millionth (0.000001)");
	CHECK(cfg_set(&c, "foldin_prior", "30", err, sizeof(err)) == 0 && c.foldin_prior == 30000000);
	static const char *const fold_keys[] = { "refresh_foldin", "foldin_lambda", "foldin_alpha", "foldin_prior" };
	for (size_t i = 0; i < ARRAY_SIZE(fold_keys); i++) {
		const struct cfg_key *k = cfg_find(fold_keys[i], strlen(fold_keys[i]));
		CHECK(k && k->reloadable);
		struct recd_config d;
		cfg_defaults(&d);
		CHECK(k && !cfg_key_equal(&c, &d, k));
		if (k)
			cfg_key_copy(&d, &c, k);
		CHECK(k && cfg_key_equal(&c, &d, k));
	}
	/* access_log_sample: a fraction 0..1 kept per million. */
	CHECK(cfg_set(&c, "access_log_sample", "0.001", err, sizeof(err)) == 0 && c.access_log_sample == 1000);
	CHECK(cfg_set(&c, "access_log_sample", "1", err, sizeof(err)) == 0 && c.access_log_sample == 1000000);
	CHECK(cfg_set(&c, "access_log_sample", "1.5", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "access_log_sample: 1.5 is not between 0 and 1");
	CHECK(cfg_set(&c, "access_log_sample", "1e-9", err, sizeof(err)) == -EINVAL);
	CHECK(cfg_set(&c, "access_log_sample", "x", err, sizeof(err)) == -EINVAL && c.access_log_sample == 1000000);
	CHECK(cfg_find("access_log_sample", 17)->reloadable);
	CHECK(cfg_set(&c, "access_log_sample", "0", err, sizeof(err)) == 0 && c.access_log_sample == 0);
	CHECK(cfg_find("max-n", 5) == cfg_find("max_n", 5));
	CHECK(cfg_find("max_nx", 5) == cfg_find("max_n", 5)); /* length-bounded */
	CHECK(cfg_find("nope", 4) == NULL);
	CHECK(cfg_find("max", 3) == NULL);
	/* Only the log level reloads for now. */
	CHECK(cfg_find("log_level", 9)->reloadable);
	CHECK(!cfg_find("listen", 6)->reloadable);
}

static void test_int(void)
{
	struct recd_config c;
	cfg_defaults(&c);
	char err[256];

	CHECK(cfg_set(&c, "max_n", "abc", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "max_n: not a number 'abc'");
	CHECK(cfg_set(&c, "max_n", "0", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "max_n: 0 is below the minimum 1");
	CHECK(cfg_set(&c, "max_n", "10001", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "max_n: 10001 is above the maximum 10000");
	CHECK(cfg_set(&c, "max_n", "-5", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "max_n: -5 is below the minimum 1");
	CHECK(cfg_set(&c, "max_n", "12x", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "max_n: not a number '12x'");
	CHECK(cfg_set(&c, "max_n", "", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "max_n: not a number ''");
	CHECK(cfg_set(&c, "max_n", " 5", err, sizeof(err)) == -EINVAL);
	CHECK(cfg_set(&c, "max_n", "99999999999999999999", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "max_n: '99999999999999999999' is out of range");
	CHECK(c.max_n == 200); /* failures leave the value alone */
	CHECK(cfg_set(&c, "max_n", "1", err, sizeof(err)) == 0 && c.max_n == 1);
	CHECK(cfg_set(&c, "max_n", "10000", err, sizeof(err)) == 0 && c.max_n == 10000);
	CHECK(cfg_set(&c, "max-n", "77", err, sizeof(err)) == 0 && c.max_n == 77);

	CHECK(cfg_set(&c, "max_headers", "100", err, sizeof(err)) == 0 && c.max_headers == 100);
	CHECK(cfg_set(&c, "max_headers", "101", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "max_headers: 101 is above the maximum 100");
	CHECK(cfg_set(&c, "workers", "0", err, sizeof(err)) == 0 && c.workers == 0);
	CHECK(cfg_set(&c, "workers", "-1", err, sizeof(err)) == -EINVAL);
	CHECK(cfg_set(&c, "demo_seed", "9223372036854775807", err, sizeof(err)) == 0);
	CHECK(c.demo_seed == INT64_MAX);

	/* ring_entries: a power of two in 64..32768. */
	CHECK(cfg_set(&c, "ring_entries", "100", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "ring_entries: 100 is not a power of two");
	CHECK(cfg_set(&c, "ring_entries", "32", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "ring_entries: 32 is below the minimum 64");
	CHECK(cfg_set(&c, "ring_entries", "65536", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "ring_entries: 65536 is above the maximum 32768");
	CHECK(cfg_set(&c, "ring_entries", "64", err, sizeof(err)) == 0 && c.ring_entries == 64);
	CHECK(cfg_set(&c, "ring_entries", "32768", err, sizeof(err)) == 0 && c.ring_entries == 32768);
	CHECK(cfg_set(&c, "ring_entries", "4096", err, sizeof(err)) == 0 && c.ring_entries == 4096);
	CHECK(cfg_set(&c, "ring_entries", "4095", err, sizeof(err)) == -EINVAL && c.ring_entries == 4096);
}

static void test_bool_level_string(void)
{
	struct recd_config c;
	cfg_defaults(&c);
	char err[256];
	static const char *const yes[] = { "true", "yes", "on", "1", "TRUE", "Yes" };
	static const char *const no[] = { "false", "no", "off", "0", "False" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		c.demo = false;
		CHECK(cfg_set(&c, "demo", yes[i], err, sizeof(err)) == 0 && c.demo);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		c.demo = true;
		CHECK(cfg_set(&c, "demo", no[i], err, sizeof(err)) == 0 && !c.demo);
	}
	CHECK(cfg_set(&c, "demo", "maybe", err, sizeof(err)) == -EINVAL);
	CHECK(!strncmp(err, "demo: not a boolean 'maybe'", 27));
	CHECK(cfg_set(&c, "demo", "", err, sizeof(err)) == -EINVAL);

	CHECK(cfg_set(&c, "log_level", "debug", err, sizeof(err)) == 0);
	CHECK(!strcmp(c.log_level, "debug"));
	CHECK(cfg_set(&c, "log_level", "loud", err, sizeof(err)) == -EINVAL);
	CHECK(!strncmp(err, "log_level: unknown level 'loud'", 31));
	CHECK(!strcmp(c.log_level, "debug"));
	CHECK(cfg_set(&c, "log_level", "error", err, sizeof(err)) == 0);
	CHECK(cfg_set(&c, "log_level", "warn", err, sizeof(err)) == 0);

	/* Strings: up to the field size minus the NUL. */
	char tok[200];
	memset(tok, 't', sizeof(tok));
	tok[127] = '\0';
	CHECK(cfg_set(&c, "admin_token", tok, err, sizeof(err)) == 0);
	CHECK(strlen(c.admin_token) == 127);
	tok[127] = 't';
	tok[128] = '\0';
	CHECK(cfg_set(&c, "admin_token", tok, err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "admin_token: too long (128 bytes, at most 127)");
	CHECK(strlen(c.admin_token) == 127);
	CHECK(cfg_set(&c, "snapshot", "/srv/recd/a b.snap", err, sizeof(err)) == 0);
	CHECK(!strcmp(c.snapshot, "/srv/recd/a b.snap"));
	CHECK(cfg_set(&c, "snapshot", "", err, sizeof(err)) == 0 && c.snapshot[0] == '\0');

	/* Choices: exactly one of the listed words. */
	CHECK(cfg_set(&c, "durability", "always", err, sizeof(err)) == 0 && !strcmp(c.durability, "always"));
	CHECK(cfg_set(&c, "durability", "none", err, sizeof(err)) == 0 && !strcmp(c.durability, "none"));
	CHECK(cfg_set(&c, "durability", "batch", err, sizeof(err)) == 0 && !strcmp(c.durability, "batch"));
	CHECK(cfg_set(&c, "durability", "sometimes", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "durability: expected one of none|batch|always, got 'sometimes'");
	CHECK(cfg_set(&c, "durability", "Always", err, sizeof(err)) == -EINVAL);
	CHECK(cfg_set(&c, "durability", "batc", err, sizeof(err)) == -EINVAL);
	CHECK(cfg_set(&c, "durability", "", err, sizeof(err)) == -EINVAL);
	CHECK(!strcmp(c.durability, "batch"));
	CHECK(cfg_set(&c, "durability_batch_ms", "0", err, sizeof(err)) == -EINVAL);
	CHECK(cfg_set(&c, "durability_batch_ms", "1001", err, sizeof(err)) == -EINVAL);
	CHECK(cfg_set(&c, "durability_batch_ms", "1000", err, sizeof(err)) == 0 && c.durability_batch_ms == 1000);

	CHECK(cfg_set(&c, "nope", "1", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "unknown key 'nope'");
	/* NULL err is allowed. */
	CHECK(cfg_set(&c, "max_n", "0", NULL, 0) == -EINVAL);
}

static void test_addr(void)
{
	struct recd_config c;
	cfg_defaults(&c);
	char err[256];
	static const char *const good[] = {
		"0.0.0.0:80", "127.0.0.1:0", "[::1]:8080", "[::]:65535", "unix:/run/recd/recd.sock",
		"localhost:8080", "recd.example.com:443",
	};
	static const char *const bad[] = {
		"foo", ":80", "host:", "host:65536", "host:8a", "[::1]8080", "[]:80", "unix:",
		"a b:80", "::1:80", "host:123456", "", "host:-1",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err[0] = '\0';
		int rc = cfg_set(&c, "listen", good[i], err, sizeof(err));
		if (rc)
			fprintf(stderr, "good addr %s rejected: %s\n", good[i], err);
		CHECK(rc == 0 && !strcmp(c.listen, good[i]));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = cfg_set(&c, "listen", bad[i], err, sizeof(err));
		if (!rc)
			fprintf(stderr, "bad addr '%s' accepted\n", bad[i]);
		CHECK(rc == -EINVAL);
		CHECK(!strncmp(err, "listen: expected host:port", 26));
	}
	/* admin_listen may be turned off, listen may not. */
	CHECK(cfg_set(&c, "admin_listen", "", err, sizeof(err)) == 0 && c.admin_listen[0] == '\0');
	CHECK(cfg_set(&c, "admin_listen", "nope", err, sizeof(err)) == -EINVAL);
	CHECK(!strncmp(err, "admin_listen: expected host:port", 32));
}

static void test_file(void)
{
	struct recd_config c, d;
	char err[512], want[512];
	const char *p;

	cfg_defaults(&c);
	p = write_tmp("# a comment\n"
		      "\n"
		      "   # indented comment\n"
		      "max_n = 50\n"
		      "default_n=5\n"
		      "  workers   =   3   \n"
		      "admin_token = \"s3cret # not a comment\"\n"
		      "snapshot = /srv/x.snap # trailing comment\n"
		      "plugins_dir = \"/a \\\"q\\\" \\\\b\"   # after quotes\n"
		      "state_dir = /var/lib/x#y\n"
		      "demo = yes\n"
		      "max-body-bytes = 0\n"
		      "admin_listen = \"\"\n"
		      "log_level = debug");  /* no final newline */
	CHECK(cfg_load_file(&c, p, err, sizeof(err)) == 0);
	CHECK(c.max_n == 50 && c.default_n == 5 && c.workers == 3);
	CHECK(!strcmp(c.admin_token, "s3cret # not a comment"));
	CHECK(!strcmp(c.snapshot, "/srv/x.snap"));
	CHECK(!strcmp(c.plugins_dir, "/a \"q\" \\b"));
	CHECK(!strcmp(c.state_dir, "/var/lib/x#y"));
	CHECK(c.demo && c.max_body_bytes == 0 && c.admin_listen[0] == '\0');
	CHECK(!strcmp(c.log_level, "debug"));
	CHECK(c.max_connections == 10000); /* untouched keys keep defaults */
	unlink(p);

	/* An empty file changes nothing. */
	cfg_defaults(&c);
	cfg_defaults(&d);
	p = write_tmp("");
	CHECK(cfg_load_file(&c, p, err, sizeof(err)) == 0);
	CHECK(!memcmp(&c, &d, sizeof(c)));
	unlink(p);

	static const struct { const char *text; const char *msg; } bad[] = {
		{ "max_n = 5\n\nfoo = 1\n", "3: unknown key 'foo'" },
		{ "# x\nmax_n = abc\n", "2: max_n: not a number 'abc'" },
		{ "max_n = 5\n# c\n\njust words\n", "4: expected key = value" },
		{ "= 5\n", "1: expected key = value" },
		{ "max n = 5\n", "1: expected key = value" },
		{ "max_n = 0\n", "1: max_n: 0 is below the minimum 1" },
		{ "listen = nope\n", "1: listen: expected host:port, [v6]:port or unix:/path, got 'nope'" },
		{ "admin_token = \"abc\n", "1: unterminated quoted value" },
		{ "admin_token = \"abc\" def\n", "1: unexpected text after the quoted value" },
		{ "ring_entries = 1000\n", "1: ring_entries: 1000 is not a power of two" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg_defaults(&c);
		p = write_tmp(bad[i].text);
		err[0] = '\0';
		CHECK(cfg_load_file(&c, p, err, sizeof(err)) == -EINVAL);
		snprintf(want, sizeof(want), "%s:%s", p, bad[i].msg);
		CHECK_ERR(err, want);
		unlink(p);
	}

	cfg_defaults(&c);
	CHECK(cfg_load_file(&c, "/nonexistent/recd.conf", err, sizeof(err)) == -ENOENT);
	CHECK(!strncmp(err, "/nonexistent/recd.conf: ", 24));
}

static int parse(struct recd_config *c, struct cfg_cli *cli, char *err, size_t errlen, int argc,
		 const char **argv)
{
	cfg_defaults(c);
	err[0] = '\0';
	return cfg_parse_args(c, cli, argc, (char **)argv, err, errlen);
}
#define PARSE(...) ({ const char *av_[] = { "recd", __VA_ARGS__ }; \
	parse(&c, &cli, err, sizeof(err), (int)(sizeof(av_) / sizeof(av_[0])), av_); })

static void test_args(void)
{
	struct recd_config c;
	struct cfg_cli cli;
	char err[512];
	const char *p = write_tmp("max_n = 20\ndefault_n = 7\nworkers = 3\nlog_level = warn\n");
	char path[64];
	strcpy(path, p);

	/* Overrides win over the file whatever their position. */
	CHECK(PARSE("--max-n=50", "--config", path, "--default_n", "5") == 0);
	CHECK(cli.config_path && !strcmp(cli.config_path, path));
	CHECK(c.max_n == 50 && c.default_n == 5 && c.workers == 3);
	CHECK(!strcmp(c.log_level, "warn"));
	CHECK(PARSE("--log-level", "debug", "--config=" REFERENCE_CONF, "--workers=2") == 0);
	CHECK(!strcmp(c.log_level, "debug") && c.workers == 2);
	CHECK(PARSE("--config", path, "--max_n=40", "--max_n", "30") == 0);
	CHECK(c.max_n == 30); /* the last override wins */
	CHECK(!cli.help && !cli.version && !cli.check);

	CHECK(PARSE() == 0 && cli.config_path == NULL);
	CHECK(PARSE("--demo") == 0 && c.demo);
	CHECK(PARSE("--demo=false") == 0 && !c.demo);
	CHECK(PARSE("--demo", "--demo-items", "500") == 0 && c.demo && c.demo_items == 500);
	CHECK(PARSE("--help") == 0 && cli.help);
	CHECK(PARSE("-h") == 0 && cli.help);
	CHECK(PARSE("--version") == 0 && cli.version);
	CHECK(PARSE("-V") == 0 && cli.version);
	CHECK(PARSE("--check-config", "--config", path) == 0 && cli.check && c.max_n == 20);
	CHECK(PARSE("--durability", "always", "--event-log-dir", "/tmp/ev", "--durability-batch-ms=20") == 0);
	CHECK(!strcmp(c.durability, "always") && !strcmp(c.event_log_dir, "/tmp/ev") && c.durability_batch_ms == 20);
	CHECK(c.event_log);
	CHECK(PARSE("--event-log=false") == 0 && !c.event_log);
	CHECK(PARSE("--durability=often") == -EINVAL);
	CHECK_ERR(err, "command line: durability: expected one of none|batch|always, got 'often'");
	CHECK(PARSE("--admin-listen=", "--listen", "unix:/run/r.sock") == 0);
	CHECK(c.admin_listen[0] == '\0' && !strcmp(c.listen, "unix:/run/r.sock"));

	CHECK(PARSE("--foo") == -EINVAL);
	CHECK_ERR(err, "command line: unknown option --foo");
	CHECK(PARSE("--max-n=1", "--foo=bar") == -EINVAL);
	CHECK_ERR(err, "command line: unknown option --foo");
	CHECK(PARSE("--max_n=0") == -EINVAL);
	CHECK_ERR(err, "command line: max_n: 0 is below the minimum 1");
	CHECK(PARSE("--max-n") == -EINVAL);
	CHECK_ERR(err, "command line: --max-n needs a value");
	CHECK(PARSE("--config") == -EINVAL);
	CHECK(PARSE("stray") == -EINVAL);
	CHECK_ERR(err, "command line: unexpected argument 'stray'");
	CHECK(PARSE("-x") == -EINVAL);
	CHECK(PARSE("--config", "/nonexistent/x.conf") == -ENOENT);
	CHECK(!strncmp(err, "/nonexistent/x.conf: ", 21));
	/* An unknown option is reported before the file is even read. */
	CHECK(PARSE("--config", "/nonexistent/x.conf", "--bogus") == -EINVAL);
	CHECK_ERR(err, "command line: unknown option --bogus");
	unlink(path);

	p = write_tmp("max_n = 5\nwat = 1\n");
	strcpy(path, p);
	CHECK(PARSE("--config", path) == -EINVAL);
	char want[256];
	snprintf(want, sizeof(want), "%s:2: unknown key 'wat'", path);
	CHECK_ERR(err, want);
	unlink(path);
}

/* models: name=path lists, and model_name. */
static void test_models(void)
{
	struct recd_config c;
	char err[256];
	struct cfg_model m[CFG_MAX_MODELS];
	size_t n = 99;
	cfg_defaults(&c);
	CHECK(!strcmp(c.model_name, "default"));
	CHECK(!strcmp(c.models, ""));
	CHECK(!cfg_find("models", 6)->reloadable && !cfg_find("model_name", 10)->reloadable);

	/* Good: one, several, spaces around the parts, "" = none. */
	CHECK(cfg_models_parse("", m, &n, err, sizeof(err)) == 0 && n == 0);
	CHECK(cfg_models_parse("challenger=/var/lib/recd/challenger.recd", m, &n, err, sizeof(err)) == 0);
	CHECK(n == 1 && !strcmp(m[0].name, "challenger") && !strcmp(m[0].path, "/var/lib/recd/challenger.recd"));
	CHECK(cfg_models_parse(" a = /x/a.recd , B-2_c=rel/b.recd", m, &n, err, sizeof(err)) == 0);
	CHECK(n == 2 && !strcmp(m[0].name, "a") && !strcmp(m[0].path, "/x/a.recd"));
	CHECK(!strcmp(m[1].name, "B-2_c") && !strcmp(m[1].path, "rel/b.recd"));
	CHECK(cfg_set(&c, "models", "challenger=/srv/c.recd,next=/srv/n.recd", err, sizeof(err)) == 0);
	CHECK(!strcmp(c.models, "challenger=/srv/c.recd,next=/srv/n.recd"));
	CHECK(cfg_validate(&c, err, sizeof(err)) == 0);
	CHECK(cfg_models_parse("a=/1,b=/2,c=/3,d=/4,e=/5,f=/6,g=/7,h=/8", NULL, &n, err, sizeof(err)) == 0 && n == 8);

	/* Duplicates. */
	CHECK(cfg_set(&c, "models", "a=/x/a.recd,a=/x/b.recd", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "models: a is named twice");
	CHECK(cfg_set(&c, "models", "a=/x/a.recd,b=/x/a.recd", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "models: a and b have the same path '/x/a.recd'");
	/* Bad names, entries and paths. */
	CHECK(cfg_set(&c, "models", "chall enger=/x", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "models: 'chall enger' is not a model name (1 to 31 letters, digits, '_' or '-')");
	CHECK(cfg_set(&c, "models", "a.b=/x", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "models: 'a.b' is not a model name (1 to 31 letters, digits, '_' or '-')");
	CHECK(cfg_set(&c, "models", "=/x", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "models: '' is not a model name (1 to 31 letters, digits, '_' or '-')");
	CHECK(cfg_set(&c, "models", "abcdefghijabcdefghijabcdefghij12=/x", err, sizeof(err)) == -EINVAL);
	CHECK(cfg_set(&c, "models", "abcdefghijabcdefghijabcdefghij1=/x", err, sizeof(err)) == 0);
	CHECK(cfg_set(&c, "models", "challenger", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "models: expected name=path, got 'challenger'");
	CHECK(cfg_set(&c, "models", "challenger=", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "models: challenger has no path");
	CHECK(cfg_set(&c, "models", "challenger=/var/lib/", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "models: challenger: '/var/lib/' names a directory, not a snapshot file");
	CHECK(cfg_set(&c, "models", "a=/x,", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "models: empty entry in 'a=/x,'");
	CHECK(cfg_set(&c, "models", "a=/x,,b=/y", err, sizeof(err)) == -EINVAL);
	/* Too many. */
	CHECK(cfg_set(&c, "models", "a=/1,b=/2,c=/3,d=/4,e=/5,f=/6,g=/7,h=/8,i=/9", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "models: more than 8 models");
	CHECK(!strcmp(c.models, "abcdefghijabcdefghijabcdefghij1=/x"));   /* failures leave the value alone */

	/* model_name, and the checks against the main snapshot. */
	CHECK(cfg_set(&c, "model_name", "champion", err, sizeof(err)) == 0 && !strcmp(c.model_name, "champion"));
	CHECK(cfg_set(&c, "model_name", "", err, sizeof(err)) == -EINVAL);
	CHECK(cfg_set(&c, "model_name", "no way", err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "model_name: 'no way' is not a model name (1 to 31 letters, digits, '_' or '-')");
	CHECK(cfg_set(&c, "models", "champion=/x/c.recd", err, sizeof(err)) == 0);
	CHECK(cfg_validate(&c, err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "models: champion is the name of the main snapshot (model_name)");
	CHECK(cfg_set(&c, "model_name", "default", err, sizeof(err)) == 0);
	CHECK(cfg_validate(&c, err, sizeof(err)) == 0);
	CHECK(cfg_set(&c, "snapshot", "/x/c.recd", err, sizeof(err)) == 0);
	CHECK(cfg_validate(&c, err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "models: champion has the path of the main snapshot (/x/c.recd)");

	/* The file and the command line name the key too. */
	const char *p = write_tmp("snapshot = /x/main.recd\nmodels = a=/x/a.recd, a=/x/b.recd\n");
	cfg_defaults(&c);
	CHECK(cfg_load_file(&c, p, err, sizeof(err)) == -EINVAL);
	char want[128];
	snprintf(want, sizeof(want), "%s:2: models: a is named twice", p);
	CHECK_ERR(err, want);
	unlink(p);
	struct cfg_cli cli;
	char *argv[] = { "recd", "--models=challenger=/x/c.recd", NULL };
	cfg_defaults(&c);
	CHECK(cfg_parse_args(&c, &cli, 2, argv, err, sizeof(err)) == 0 && !strcmp(c.models, "challenger=/x/c.recd"));
	char *bad[] = { "recd", "--models", "bad name=/x", NULL };
	CHECK(cfg_parse_args(&c, &cli, 3, bad, err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "command line: models: 'bad name' is not a model name (1 to 31 letters, digits, '_' or '-')");
}

static void test_validate(void)
{
	struct recd_config c;
	char err[256];

	cfg_defaults(&c);
	c.default_n = 300;
	CHECK(cfg_validate(&c, err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "default_n (300) is above max_n (200)");
	c.default_n = 200;
	CHECK(cfg_validate(&c, err, sizeof(err)) == 0);

	static const struct { const char *addr; bool ok_without_token; } admin[] = {
		{ "127.0.0.1:9000", true }, { "127.1.2.3:9000", true }, { "[::1]:9000", true },
		{ "localhost:9000", true }, { "unix:/run/recd/admin.sock", true }, { "", true },
		{ "0.0.0.0:9000", false }, { "10.0.0.1:9000", false }, { "[::]:9000", false },
		{ "admin.example.com:9000", false }, { "128.0.0.1:9000", false },
	};
	for (size_t i = 0; i < sizeof(admin) / sizeof(admin[0]); i++) {
		cfg_defaults(&c);
		CHECK(cfg_set(&c, "admin_listen", admin[i].addr, err, sizeof(err)) == 0);
		int rc = cfg_validate(&c, err, sizeof(err));
		if ((rc == 0) != admin[i].ok_without_token)
			fprintf(stderr, "admin_listen '%s': rc %d\n", admin[i].addr, rc);
		CHECK((rc == 0) == admin[i].ok_without_token);
		if (rc)
			CHECK(strstr(err, "admin_token is required") != NULL);
		strcpy(c.admin_token, "tok");
		CHECK(cfg_validate(&c, err, sizeof(err)) == 0);
	}

	cfg_defaults(&c);
	strcpy(c.admin_listen, c.listen);
	CHECK(cfg_validate(&c, err, sizeof(err)) == -EINVAL);
	CHECK_ERR(err, "listen and admin_listen are the same (127.0.0.1:8080)");
	/* Port 0 on both: two different ephemeral ports, fine (tests do this). */
	strcpy(c.listen, "127.0.0.1:0");
	strcpy(c.admin_listen, "127.0.0.1:0");
	CHECK(cfg_validate(&c, err, sizeof(err)) == 0);
	strcpy(c.listen, "unix:/run/a.sock");
	strcpy(c.admin_listen, "unix:/run/a.sock");
	CHECK(cfg_validate(&c, err, sizeof(err)) == -EINVAL);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	struct buf b;
	buf_init(&b, 0);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_put(&b, chunk, n);
	fclose(f);
	buf_putc(&b, '\0');
	return b.data;
}

static void test_reference_file(void)
{
	struct recd_config c, d;
	char err[512];
	char *text = slurp(REFERENCE_CONF);
	if (!text) {
		fprintf(stderr, "cannot read %s (run from the source root)\n", REFERENCE_CONF);
		failures++;
		return;
	}

	/* As shipped it loads cleanly and changes nothing. */
	cfg_defaults(&c);
	cfg_defaults(&d);
	err[0] = '\0';
	CHECK(cfg_load_file(&c, REFERENCE_CONF, err, sizeof(err)) == 0);
	if (err[0])
		fprintf(stderr, "%s\n", err);
	CHECK(!memcmp(&c, &d, sizeof(c)));

	/* Every key has its own `#key = default` line... */
	for (size_t i = 0; i < cfg_table_len; i++) {
		char needle[64];
		snprintf(needle, sizeof(needle), "\n#%s = ", cfg_table[i].name);
		const char *at = strstr(text, needle);
		if (!at) {
			fprintf(stderr, "%s does not document %s\n", REFERENCE_CONF, cfg_table[i].name);
			failures++;
			continue;
		}
		/* ...whose comment block says "Reloadable" exactly when it is. */
		const char *block = at;
		while (block > text && !(block[-1] == '\n' && block - 1 > text && block[-2] == '\n'))
			block--;
		bool says = memmem(block, (size_t)(at - block), "Reloadable", 10) != NULL;
		if (says != cfg_table[i].reloadable) {
			fprintf(stderr, "%s: %s is%s reloadable, its comment says otherwise\n", REFERENCE_CONF,
				cfg_table[i].name, cfg_table[i].reloadable ? "" : " not");
			failures++;
		}
	}

	/* ...and those lines tell the truth: uncommented, they give the
	 * defaults again. */
	struct buf un;
	buf_init(&un, 0);
	for (char *line = text; *line;) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line + 1) : strlen(line);
		bool setting = line[0] == '#' && line[1] != ' ' && line[1] != '#' && line[1] != '\n' &&
			       memchr(line, '=', len);
		if (setting)
			buf_put(&un, line + 1, len - 1);
		line += len;
	}
	buf_putc(&un, '\0');
	const char *p = write_tmp(un.data);
	cfg_defaults(&c);
	memset(&c, 0x5a, sizeof(c)); /* every field must be set by the file */
	/* Strings are copied with their NUL only; start from zeroed tails. */
	for (size_t i = 0; i < cfg_table_len; i++)
		if (cfg_table[i].type != CFG_INT && cfg_table[i].type != CFG_BOOL)
			memset((char *)&c + cfg_table[i].offset, 0, cfg_table[i].size);
	err[0] = '\0';
	CHECK(cfg_load_file(&c, p, err, sizeof(err)) == 0);
	if (err[0])
		fprintf(stderr, "uncommented %s: %s\n", REFERENCE_CONF, err);
	for (size_t i = 0; i < cfg_table_len; i++) {
		const struct cfg_key *k = &cfg_table[i];
		size_t sz = k->type == CFG_INT ? sizeof(int64_t) : k->type == CFG_BOOL ? sizeof(bool) : k->size;
		if (memcmp((char *)&c + k->offset, (char *)&d + k->offset, sz)) {
			fprintf(stderr, "%s: documented default differs from the table\n", k->name);
			failures++;
		}
	}
	unlink(p);
	buf_free(&un);
	free(text);
}

static void test_dump_and_help(void)
{
	struct recd_config c;
	struct buf b;
	cfg_defaults(&c);
	buf_init(&b, 0);
	cfg_dump_json(&c, &b);
	buf_putc(&b, '\0');
	CHECK(b.data[0] == '{' && b.data[b.len - 2] == '}');
	CHECK(strstr(b.data, "\"listen\":\"127.0.0.1:8080\"") != NULL);
	CHECK(strstr(b.data, "\"admin_token\":\"\"") != NULL);
	CHECK(strstr(b.data, "\"max_n\":200,") != NULL);
	CHECK(strstr(b.data, "\"demo\":false,") != NULL);
	CHECK(strstr(b.data, "\"demo_seed\":42}") != NULL);
	CHECK(strstr(b.data, "\"log_level\":\"info\"") != NULL);
	CHECK(strstr(b.data, "\"refresh_foldin\":\"cold\",\"foldin_lambda\":0.1,\"foldin_alpha\":10,") != NULL);
	for (size_t i = 0; i < cfg_table_len; i++) {
		char needle[64];
		snprintf(needle, sizeof(needle), "\"%s\":", cfg_table[i].name);
		CHECK(strstr(b.data, needle) != NULL);
	}

	strcpy(c.admin_token, "hunter2");
	strcpy(c.snapshot, "/a\"b\\c\n");
	c.demo = true;
	buf_reset(&b);
	cfg_dump_json(&c, &b);
	buf_putc(&b, '\0');
	CHECK(strstr(b.data, "hunter2") == NULL);
	CHECK(strstr(b.data, "\"admin_token\":\"***\"") != NULL);
	CHECK(strstr(b.data, "\"snapshot\":\"/a\\\"b\\\\c\\n\"") != NULL);
	CHECK(strstr(b.data, "\"demo\":true,") != NULL);
	buf_free(&b);

	char *help = NULL;
	size_t help_len = 0;
	FILE *f = open_memstream(&help, &help_len);
	CHECK(f != NULL);
	if (!f)
		return;
	cfg_print_help(f, "recd");
	fclose(f);
	CHECK(strstr(help, "Usage: recd") != NULL);
	CHECK(strstr(help, "--config FILE") != NULL);
	CHECK(strstr(help, "--check-config") != NULL);
	for (size_t i = 0; i < cfg_table_len; i++) {
		const struct cfg_key *k = &cfg_table[i];
		char needle[128];
		snprintf(needle, sizeof(needle), "  %s ", k->name);
		CHECK(strstr(help, needle) != NULL);
		CHECK(strstr(help, k->help) != NULL);
	}
	CHECK(strstr(help, "default 127.0.0.1:8080") != NULL);
	CHECK(strstr(help, "[64..32768, power of two]") != NULL);
	CHECK(strstr(help, "[off|cold|all]") != NULL);
	CHECK(strstr(help, "foldin_lambda      decimal default 0.1 [0.000001..1000000] (reloadable)") != NULL);
	free(help);
}

int main(void)
{
	test_defaults();
	test_int();
	test_bool_level_string();
	test_addr();
	test_file();
	test_args();
	test_validate();
	test_models();
	test_reference_file();
	test_dump_and_help();
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
