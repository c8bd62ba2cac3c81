/* test_kafka.c: the Kafka event source end to end, with no external
 * broker: librdkafka's mock cluster (rd_kafka_mock_cluster_new, one
 * broker) lives in this process, a plain producer writes to it, and the
 * real recd binary runs as a child process that connects to the mock
 * broker over loopback TCP. Everything is checked through real HTTP on
 * the daemon's loopback listeners (ephemeral ports read from its log,
 * like recd_harness.py), with its own temp state_dir.
 *
 *  A  durability=always, kafka_start=earliest: events produced before the
 *     start (single objects, a JSON array, NDJSON) are reflected exactly
 *     (GET /admin/users/{id} counts interactions); bad messages (not JSON,
 *     an unknown type, a bad element in an array, a bad NDJSON line, an
 *     empty value) are skipped and counted; a purchase produced while it
 *     runs removes the item from that shopper's recommendations; lag
 *     reaches 0; offsets are committed.
 *  B  SIGTERM, more events produced while it is down, restart: the event
 *     log replays the first ones, the group resumes at its committed
 *     offset, every count is exact (nothing twice, nothing lost), and no
 *     message is read twice.
 *  C  durability=always, then batch, then none, with commits held back
 *     (kafka_commit_ms = 10 min): events applied (and durable), kill -9
 *     before any commit, restart: the group
 *     resumes at the old offset, every redelivered message is recognised
 *     from the event log's source marks and skipped (counted exactly),
 *     counts stay exact.
 *  D  a crash that logged only the first event of a 3-event message (the
 *     test writes that state into the stopped daemon's event log: the
 *     message's mark and its first event), restart: the first event comes
 *     from the log, the other two from Kafka, none twice.
 *
 * Bounded: every wait has a deadline, and alarm() ends a stuck run.
 * Run: RECD_BUILD_DIR=build build/tests/integration/test_kafka
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "core/cfg.h"
#include "core/buf.h"
#include "events/event.h"
#include "events/evlog.h"
#include "gen/gen.h"
#include "snap/snapb.h"

#define TOPIC "recd-it-events"
#define N_PARTS 2
#define N_USERS 6

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)
#define FATAL(...) do { fprintf(stderr, "test_kafka: " __VA_ARGS__); fputc('\n', stderr); dump_log(); exit(1); } while (0)

static char tmp[64], state_dir[128], snap_path[128], log_path[128], recd[512];
static const char *bootstraps;
static rd_kafka_t *producer;
static long expected[N_USERS + 10];   /* interactions per user k-<n> */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void dump_log(void)
{
	FILE *f = fopen(log_path, "r");
	if (!f)
		return;
	char line[4096];
	fprintf(stderr, "---- recd log (last run) ----\n");
	while (fgets(line, sizeof(line), f))
		fputs(line, stderr);
	fclose(f);
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char p[512];
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		struct stat st;
		if (!lstat(p, &st) && S_ISDIR(st.st_mode))
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* ------------------------------------------------------------ producer */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	int64_t *off = m->_private;
	if (m->err)
		FATAL("delivery failed: %s", rd_kafka_err2str(m->err));
	if (off)
		*off = m->offset;
}

static int user_part(int u)
{
	return u % N_PARTS;   /* as a producer keying by user id would: one user, one partition */
}

/* Produce one message to the user's partition; returns its offset. */
static int64_t produce_to(int part, const char *key, const char *value)
{
	static int64_t off;
	off = -1;
	rd_kafka_resp_err_t err = rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(part),
						    RD_KAFKA_V_KEY(key, strlen(key)),
						    RD_KAFKA_V_VALUE((void *)value, strlen(value)),
						    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&off),
						    RD_KAFKA_V_END);
	if (err)
		FATAL("produce: %s", rd_kafka_err2str(err));
	if (rd_kafka_flush(producer, 10000))
		FATAL("flush timed out");
	return off;
}

static long messages_produced;

/* Many messages, one flush (offsets not needed). */
static void produce_many(int part, const char *fmt, int u, int n)
{
	char v[256];
	for (int i = 0; i < n; i++) {
		snprintf(v, sizeof(v), fmt, u, 1000 + i);
		if (rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(part),
				      RD_KAFKA_V_VALUE(v, strlen(v)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				      RD_KAFKA_V_END))
			FATAL("produce");
		messages_produced++;
		expected[u]++;
	}
	if (rd_kafka_flush(producer, 10000))
		FATAL("flush timed out");
}

static int64_t produce(int part, const char *value)
{
	messages_produced++;
	return produce_to(part, "k", value);
}

static void view(int u, int item)
{
	char v[256];
	snprintf(v, sizeof(v), "{\"type\":\"view\",\"user_id\":\"k-%d\",\"item_id\":\"i%d\"}", u, item);
	produce(user_part(u), v);
	expected[u]++;
}

/* ------------------------------------------------------------ daemon */

static pid_t child = -1;
static int port, admin_port;

static void daemon_start(const char *durability, const char *commit_ms)
{
	char brokers[300], dir_arg[200], snap_arg[200], dur[64], cm[64];
	snprintf(brokers, sizeof(brokers), "--kafka-brokers=%s", bootstraps);
	snprintf(dir_arg, sizeof(dir_arg), "--state-dir=%s", state_dir);
	snprintf(snap_arg, sizeof(snap_arg), "--snapshot=%s", snap_path);
	snprintf(dur, sizeof(dur), "--durability=%s", durability);
	snprintf(cm, sizeof(cm), "--kafka-commit-ms=%s", commit_ms);
	char *argv[] = {
		recd, snap_arg, dir_arg, "--listen=127.0.0.1:0", "--admin-listen=127.0.0.1:0", "--workers=2",
		dur, brokers, "--kafka-topics=" TOPIC, "--kafka-group=recd-it", "--kafka-start=earliest", cm,
		/* the smallest queue: bursts below make the consumer wait for room */
		"--event-ring-size=64",
		/* a killed member leaves the group after 6 s, not 45 */
		"--kafka-options=session.timeout.ms=6000;heartbeat.interval.ms=500", NULL,
	};
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		FATAL("open %s: %s", log_path, strerror(errno));
	child = fork();
	if (child < 0)
		FATAL("fork: %s", strerror(errno));
	if (child == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(fd, 2);
		execv(recd, argv);
		_exit(127);
	}
	close(fd);
	double deadline = now_s() + 30;
	while (now_s() < deadline) {
		FILE *f = fopen(log_path, "r");
		char line[4096];
		while (f && fgets(line, sizeof(line), f)) {
			char *at = strstr(line, "msg=listening addr=127.0.0.1:");
			if (at && sscanf(at, "msg=listening addr=127.0.0.1:%d admin=127.0.0.1:%d", &port, &admin_port) == 2) {
				fclose(f);
				return;
			}
		}
		if (f)
			fclose(f);
		int st;
		if (waitpid(child, &st, WNOHANG) == child)
			FATAL("recd exited during start-up (status %d)", st);
		usleep(20000);
	}
	FATAL("recd did not start");
}

/* Signal it and wait; returns the exit status (or -signal). */
static int daemon_stop(int sig)
{
	kill(child, sig);
	double deadline = now_s() + 40;
	int st;
	while (now_s() < deadline) {
		if (waitpid(child, &st, WNOHANG) == child) {
			child = -1;
			return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
		}
		usleep(20000);
	}
	kill(child, SIGKILL);
	waitpid(child, &st, 0);
	child = -1;
	FATAL("recd did not stop on signal %d", sig);
}

static bool log_has(const char *s)
{
	FILE *f = fopen(log_path, "r");
	char line[4096];
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, s) != NULL;
	if (f)
		fclose(f);
	return found;
}

/* ------------------------------------------------------------ HTTP */

/* One request on a fresh connection (Connection: close), with an
 * application/json body when `send_body` is not NULL; the answer's body
 * is NUL-terminated in *body (static). Returns the status. */
static int http_body(int p, const char *method, const char *path, const char *send_body, char **body)
{
	static char buf[1 << 20];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = { 10, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
		FATAL("connect 127.0.0.1:%d: %s", p, strerror(errno));
	char req[2048];
	int n = send_body ? snprintf(req, sizeof(req),
				     "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
				     "Content-Length: %zu\r\n\r\n%s",
				     method, path, strlen(send_body), send_body)
			  : snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
				     method, path);
	if (n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n)
		FATAL("send: %s", strerror(errno));
	size_t len = 0;
	ssize_t r;
	while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	buf[len] = 0;
	int status = 0;
	if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		FATAL("no HTTP answer to %s %s", method, path);
	char *b = strstr(buf, "\r\n\r\n");
	*body = b ? b + 4 : buf + len;
	return status;
}

static int http(int p, const char *method, const char *path, char **body)
{
	return http_body(p, method, path, NULL, body);
}

/* HTTP events for user k-<u> interleave with Kafka's in the event log. */
static void http_views(int u, int n)
{
	char ev[1024], *body;
	size_t len = 0;
	ev[len++] = '[';
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(ev + len, sizeof(ev) - len, "%s{\"type\":\"view\",\"user_id\":\"k-%d\",\"item_id\":\"i%d\"}",
					i ? "," : "", u, 300 + i);
	snprintf(ev + len, sizeof(ev) - len, "]");
	int st = http_body(port, "POST", "/v1/events", ev, &body);
	if (st != 202)
		FATAL("POST /v1/events: %d %s", st, body);
	expected[u] += n;
}

/* A metric's value from /metrics (-1: absent). */
static double metric(const char *name)
{
	char *body;
	if (http(admin_port, "GET", "/metrics", &body) != 200)
		FATAL("/metrics failed");
	size_t nl = strlen(name);
	for (char *line = body; line && *line;) {
		if (!strncmp(line, name, nl) && line[nl] == ' ')
			return strtod(line + nl + 1, NULL);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return -1;
}

/* The exposition with the Kafka families in it passes promtool. */
static void promtool_check(void)
{
	if (system("command -v promtool >/dev/null 2>&1")) {
		printf("promtool not installed: exposition not checked\n");
		return;
	}
	char *body, path[160], cmd[400];
	if (http(admin_port, "GET", "/metrics", &body) != 200)
		FATAL("/metrics failed");
	CHECK(strstr(body, "# TYPE recd_kafka_lag gauge\n") != NULL);
	snprintf(path, sizeof(path), "%s/metrics.txt", tmp);
	FILE *f = fopen(path, "w");
	if (!f)
		FATAL("write %s", path);
	fputs(body, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
	CHECK(system(cmd) == 0);
}

/* interactions of live user `id` (0 when unknown). */
static long interactions(const char *id)
{
	char path[256], *body;
	snprintf(path, sizeof(path), "/admin/users/%s", id);
	int st = http(admin_port, "GET", path, &body);
	if (st == 404)
		return 0;
	if (st != 200)
		FATAL("GET %s: %d %s", path, st, body);
	char *at = strstr(body, "\"interactions\":");
	return at ? strtol(at + 15, NULL, 10) : -1;
}

static bool counts_match(bool report)
{
	bool ok = true;
	for (int u = 0; u < N_USERS + 10; u++) {
		if (!expected[u])
			continue;
		char id[32];
		snprintf(id, sizeof(id), "k-%d", u);
		long got = interactions(id);
		if (got != expected[u]) {
			ok = false;
			if (report)
				fprintf(stderr, "user %s: %ld interactions, expected %ld\n", id, got, expected[u]);
		}
	}
	return ok;
}

/* Wait until every user's count is as expected and the consumer has
 * nothing left (partitions assigned, lag 0, all produced messages taken); then check once
 * more after a pause, so a late duplicate would show. */
static void settle(const char *phase, double want_messages)
{
	double deadline = now_s() + 40;
	while (now_s() < deadline) {
		if (counts_match(false) && metric("recd_kafka_partitions") == N_PARTS && metric("recd_kafka_lag") == 0 &&
		    (want_messages < 0 || metric("recd_kafka_messages_total") >= want_messages))
			break;
		usleep(100000);
	}
	usleep(500000);
	if (!counts_match(true) || metric("recd_kafka_lag") != 0) {
		fprintf(stderr, "phase %s: not settled (lag %g, messages %g)\n", phase, metric("recd_kafka_lag"),
			metric("recd_kafka_messages_total"));
		failures++;
	}
}

/* First recommended item id for a user, into out. */
static void top_item(const char *user, char *out, size_t outlen)
{
	char path[128], *body;
	snprintf(path, sizeof(path), "/v1/recommendations?user_id=%s&n=10", user);
	if (http(port, "GET", path, &body) != 200)
		FATAL("GET %s failed: %s", path, body);
	char *at = strstr(body, "\"id\":\"");
	if (!at)
		FATAL("no items in %s", body);
	at += 6;
	size_t n = strcspn(at, "\"");
	snprintf(out, outlen, "%.*s", (int)MIN(n, outlen - 1), at);
}

static bool recs_contain(const char *user, const char *item)
{
	char path[128], *body, needle[160];
	snprintf(path, sizeof(path), "/v1/recommendations?user_id=%s&n=10", user);
	if (http(port, "GET", path, &body) != 200)
		FATAL("GET %s failed", path);
	snprintf(needle, sizeof(needle), "\"id\":\"%s\"", item);
	return strstr(body, needle) != NULL;
}

/* ------------------------------------------------------------ set-up */

static void make_snapshot(void)
{
	struct gen_params gp = { .seed = 11, .n_items = 2000, .n_users = 100, .dim = 16, .out_of_stock_share = -1 };
	struct gen_data d;
	char err[256];
	if (gen_generate(&gp, &d, err, sizeof(err)))
		FATAL("gen: %s", err);
	struct snapb_input in;
	gen_snapb_input(&d, &in);
	if (snapb_write(&in, snap_path, err, sizeof(err)))
		FATAL("snapshot: %s", err);
	gen_free(&d);
}

static void start_mock(void)
{
	char e[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "3", e, sizeof(e));   /* it has no brokers: no warning about that */
	/* The mock cluster needs a handle to live in; this one does nothing else. */
	rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
	if (!host)
		FATAL("rd_kafka_new: %s", e);
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(host, 1);
	if (!mc)
		FATAL("rd_kafka_mock_cluster_new failed");
	bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
	if (rd_kafka_mock_topic_create(mc, TOPIC, N_PARTS, 1))
		FATAL("mock topic");
	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, e, sizeof(e)) ||
	    rd_kafka_conf_set(conf, "linger.ms", "0", e, sizeof(e)))
		FATAL("producer conf: %s", e);
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
	if (!producer)
		FATAL("producer: %s", e);
	printf("mock cluster at %s\n", bootstraps);
}

/* ------------------------------------------------------------ config */

/* The Kafka keys' checks (cfg_validate) and the masking of secrets. */
static void test_cfg_kafka(void)
{
	struct recd_config c;
	char err[512];
	cfg_defaults(&c);
	CHECK(cfg_validate(&c, err, sizeof(err)) == 0);
	CHECK(!strcmp(c.kafka_group, "recd") && !strcmp(c.kafka_start, "latest") && c.kafka_batch == 500);
	CHECK(cfg_set(&c, "kafka_brokers", "127.0.0.1:9092", err, sizeof(err)) == 0);
	CHECK(cfg_validate(&c, err, sizeof(err)) == -EINVAL && strstr(err, "kafka_topics"));
	CHECK(cfg_set(&c, "kafka_topics", "a, b.c,d_e-1", err, sizeof(err)) == 0);
	CHECK(cfg_validate(&c, err, sizeof(err)) == 0);
	CHECK(cfg_set(&c, "kafka_topics", "a,,b", err, sizeof(err)) == 0);
	CHECK(cfg_validate(&c, err, sizeof(err)) == -EINVAL && strstr(err, "empty topic"));
	CHECK(cfg_set(&c, "kafka_topics", "a/b", err, sizeof(err)) == 0);
	CHECK(cfg_validate(&c, err, sizeof(err)) == -EINVAL && strstr(err, "not a topic name"));
	char longt[200];
	memset(longt, 'x', 128);
	longt[128] = 0;
	CHECK(cfg_set(&c, "kafka_topics", longt, err, sizeof(err)) == 0);
	CHECK(cfg_validate(&c, err, sizeof(err)) == -EINVAL && strstr(err, "longer than 127"));
	CHECK(cfg_set(&c, "kafka_topics", "t", err, sizeof(err)) == 0);
	CHECK(cfg_set(&c, "kafka_start", "middle", err, sizeof(err)) == -EINVAL);
	CHECK(cfg_set(&c, "kafka_options", "enable.auto.commit=true", err, sizeof(err)) == 0);
	CHECK(cfg_validate(&c, err, sizeof(err)) == -EINVAL && strstr(err, "set by recd"));
	CHECK(cfg_set(&c, "kafka_options", "fetch.wait.max.ms", err, sizeof(err)) == 0);
	CHECK(cfg_validate(&c, err, sizeof(err)) == -EINVAL && strstr(err, "key=value"));
	CHECK(cfg_set(&c, "kafka_options", "security.protocol=SASL_SSL; sasl.password=hunter2;fetch.wait.max.ms=10",
		      err, sizeof(err)) == 0);
	CHECK(cfg_validate(&c, err, sizeof(err)) == 0);
	struct buf b;
	buf_init(&b, 0);
	cfg_dump_json(&c, &b);
	buf_putc(&b, 0);
	CHECK(!strstr(b.data, "hunter2"));
	CHECK(strstr(b.data, "\"security.protocol=SASL_SSL; sasl.password=***;fetch.wait.max.ms=10\"") != NULL);
	buf_free(&b);
}

/* ------------------------------------------------------------ phases */

/* C: events applied (and durable as `durability` says), commits held
 * back, kill -9, restart with commits on: every redelivered message is
 * recognised from the log's marks and skipped; counts stay exact. */
static void phase_kill9(const char *durability, double t0)
{
	char v[512];
	daemon_start(durability, "600000");
	long before_c = messages_produced;
	for (int u = 0; u < N_USERS; u++)
		view(u, 700 + u);
	snprintf(v, sizeof(v), "[{\"type\":\"view\",\"user_id\":\"k-4\",\"item_id\":\"i801\"},"
			       "{\"type\":\"view\",\"user_id\":\"k-4\",\"item_id\":\"i802\"}]");
	produce(user_part(4), v);
	expected[4] += 2;
	long c_msgs = messages_produced - before_c;
	settle("C", (double)c_msgs);
	CHECK(metric("recd_kafka_commits_total") == 0);
	CHECK(daemon_stop(SIGKILL) == -SIGKILL);
	daemon_start(durability, "100");
	settle("C'", (double)c_msgs);
	CHECK(metric("recd_kafka_duplicates_total") == (double)c_msgs);
	CHECK(metric("recd_kafka_events_total") == 0);
	CHECK(daemon_stop(SIGTERM) == 0);
	printf("C (%s): %ld messages redelivered after kill -9, all skipped (%.1f s)\n", durability, c_msgs,
	       now_s() - t0);
}

int main(void)
{
	alarm(400);
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *bd = getenv("RECD_BUILD_DIR");
	snprintf(recd, sizeof(recd), "%s/engine/recd", bd ? bd : "build");
	if (access(recd, X_OK))
		FATAL("no recd binary at %s (set RECD_BUILD_DIR)", recd);
	test_cfg_kafka();

	strcpy(tmp, "/tmp/test_kafka.XXXXXX");
	if (!mkdtemp(tmp))
		FATAL("mkdtemp: %s", strerror(errno));
	snprintf(state_dir, sizeof(state_dir), "%s/state", tmp);
	snprintf(snap_path, sizeof(snap_path), "%s/snap.recd", tmp);
	snprintf(log_path, sizeof(log_path), "%s/recd.log", tmp);
	mkdir(state_dir, 0755);
	make_snapshot();
	start_mock();
	double t0 = now_s();

	/* ---- A: events produced before the start, in every shape ---- */
	for (int u = 0; u < N_USERS; u++)
		for (int j = 0; j <= u; j++)
			view(u, 10 * u + j);
	char v[1024];
	snprintf(v, sizeof(v), "[{\"type\":\"click\",\"user_id\":\"k-0\",\"item_id\":\"i1\"},"
			       "{\"type\":\"add_to_cart\",\"user_id\":\"k-0\",\"item_id\":\"i2\"}]");
	produce(user_part(0), v);
	expected[0] += 2;
	snprintf(v, sizeof(v), "{\"type\":\"view\",\"user_id\":\"k-1\",\"item_id\":\"i3\"}\n\n"
			       "{\"type\":\"view\",\"user_id\":\"k-1\",\"item_id\":\"i4\"}\r\n"
			       "{\"type\":\"rating\",\"user_id\":\"k-1\",\"item_id\":\"i5\",\"value\":4}\n");
	produce(user_part(1), v);
	expected[1] += 3;
	/* bad ones: 5 rejected events, 2 good events among them */
	produce(0, "not json at all");
	produce(1, "{\"type\":\"like\",\"user_id\":\"k-1\",\"item_id\":\"i1\"}");
	snprintf(v, sizeof(v), "[{\"type\":\"view\",\"user_id\":\"k-2\",\"item_id\":\"i7\"},{\"type\":\"view\"}]");
	produce(user_part(2), v);
	expected[2] += 1;
	snprintf(v, sizeof(v), "{\"type\":\"view\",\"user_id\":\"k-3\",\"item_id\":\"i8\"}\n{oops\n");
	produce(user_part(3), v);
	expected[3] += 1;
	produce(0, "   ");
	double rejected_want = 5;

	daemon_start("always", "100");
	printf("A: started (%.1f s)\n", now_s() - t0);
	http_views(7, 3);
	settle("A", (double)messages_produced);
	CHECK(metric("recd_kafka_events_rejected_total") == rejected_want);
	CHECK(metric("recd_kafka_messages_total") == (double)messages_produced);
	CHECK(metric("recd_kafka_duplicates_total") == 0);
	CHECK(metric("recd_kafka_partitions") == N_PARTS);
	/* logged with where and why (one line a second at most) */
	CHECK(log_has("msg=kafka_event_rejected topic=" TOPIC " partition="));
	CHECK(log_has(" index=") && log_has(" err=") && log_has(" suppressed="));
	if (getenv("TEST_KAFKA_VERBOSE"))
		dump_log();
	promtool_check();

	/* A purchase produced while it runs removes the item. */
	char top[64];
	top_item("u5", top, sizeof(top));
	CHECK(recs_contain("u5", top));
	snprintf(v, sizeof(v), "{\"type\":\"purchase\",\"user_id\":\"u5\",\"item_id\":\"%s\"}", top);
	produce(1, v);
	double deadline = now_s() + 20;
	while (now_s() < deadline && recs_contain("u5", top))
		usleep(50000);
	CHECK(!recs_contain("u5", top));
	printf("A: purchase of %s by u5 reflected (%.1f s)\n", top, now_s() - t0);
	http_views(7, 2);
	/* Commits follow within kafka_commit_ms. */
	deadline = now_s() + 10;
	while (now_s() < deadline && metric("recd_kafka_commits_total") < 1)
		usleep(50000);
	CHECK(metric("recd_kafka_commits_total") >= 1);
	CHECK(metric("recd_kafka_errors_total") == 0);
	CHECK(daemon_stop(SIGTERM) == 0);
	CHECK(log_has("msg=kafka_stopped topic=" TOPIC " partition=0"));
	printf("A: done (%.1f s)\n", now_s() - t0);

	/* ---- B: produced while down, restart: exact ---- */
	long before_b = messages_produced;
	for (int u = 0; u < N_USERS; u++) {
		view(u, 500 + u);
		view(u, 600 + u);
	}
	/* a burst: one message of 300 events and 150 messages, queue of 64 */
	{
		static char big[300 * 64 + 8];
		size_t len = 0;
		big[len++] = '[';
		for (int i = 0; i < 300; i++)
			len += (size_t)snprintf(big + len, sizeof(big) - len,
						"%s{\"type\":\"view\",\"user_id\":\"k-8\",\"item_id\":\"i%d\"}", i ? "," : "",
						i);
		big[len++] = ']';
		big[len] = 0;
		produce(user_part(8), big);
		expected[8] += 300;
		produce_many(user_part(8), "{\"type\":\"click\",\"user_id\":\"k-%d\",\"item_id\":\"i%d\"}", 8, 150);
	}
	daemon_start("always", "100");
	settle("B", (double)(messages_produced - before_b));
	CHECK(metric("recd_kafka_messages_total") == (double)(messages_produced - before_b));
	CHECK(metric("recd_kafka_duplicates_total") == 0);
	/* back from the log, or from the checkpoint the clean stop wrote */
	CHECK(metric("recd_events_recovered_total") > 0 || metric("recd_checkpoint_timestamp_seconds") > 0);
	CHECK(!recs_contain("u5", top));   /* the purchase came back */
	CHECK(daemon_stop(SIGTERM) == 0);
	printf("B: done (%.1f s)\n", now_s() - t0);

	/* ---- C: applied, never committed, kill -9: redelivered and skipped ---- */
	phase_kill9("always", t0);
	phase_kill9("batch", t0);
	phase_kill9("none", t0);

	/* ---- D: a message logged in part ---- */
	const char *lines[3] = {
		"{\"type\":\"view\",\"user_id\":\"k-9\",\"item_id\":\"i901\"}",
		"{\"type\":\"click\",\"user_id\":\"k-9\",\"item_id\":\"i902\"}",
		"{\"type\":\"add_to_cart\",\"user_id\":\"k-9\",\"item_id\":\"i903\"}",
	};
	snprintf(v, sizeof(v), "%s\n%s\n%s\n", lines[0], lines[1], lines[2]);
	int64_t off = produce(1, v);
	expected[9] = 3;
	CHECK(off >= 0);
	{
		char dir[200], err[160];
		snprintf(dir, sizeof(dir), "%s/events", state_dir);
		struct evlog l;
		struct evlog_opts o = { .retain = true };
		struct evlog_recovery rec;
		if (evlog_open(&l, dir, &o, NULL, NULL, &rec))
			FATAL("evlog_open %s", dir);
		struct event evs[2];
		struct json_tok toks[64];
		struct json_err jerr;
		CHECK(event_source_mark(&evs[0], TOPIC, strlen(TOPIC), 1, off, 1) == 0);
		CHECK(json_parse(lines[0], strlen(lines[0]), toks, 64, &jerr) > 0);
		CHECK(event_from_json(lines[0], toks, 0, (uint64_t)time(NULL) * 1000, &evs[1], err, sizeof(err)) == 0);
		evs[1].flags |= EVENT_FROM_SOURCE;
		CHECK(evlog_append(&l, evs, 2) == 0);
		CHECK(evlog_sync(&l) == 0);
		evlog_close(&l);
	}
	daemon_start("always", "100");
	settle("D", 1);
	CHECK(interactions("k-9") == 3);
	CHECK(metric("recd_kafka_duplicates_total") == 1);
	CHECK(metric("recd_kafka_events_total") == 2);
	CHECK(log_has("logged_events=1"));
	CHECK(daemon_stop(SIGTERM) == 0);
	/* The log now holds the test's mark with one event, then the
	 * daemon's continuation mark with two: replayed as 3 of that message. */
	daemon_start("always", "100");
	char want[128];
	snprintf(want, sizeof(want), "partition=1 committed=%lld logged=%lld logged_events=3", (long long)off + 1,
		 (long long)off);
	settle("D'", -1);
	CHECK(log_has(want));
	CHECK(metric("recd_kafka_messages_total") == 0);
	CHECK(daemon_stop(SIGTERM) == 0);
	printf("D: partly logged message completed, nothing twice (%.1f s)\n", now_s() - t0);

	if (failures)
		dump_log();
	rd_kafka_destroy(producer);
	rm_tree(tmp);
	printf("test_kafka: %s (%d failures, %.1f s)\n", failures ? "FAIL" : "ok", failures, now_s() - t0);
	return failures ? 1 : 0;
}
