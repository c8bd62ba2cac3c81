/* recdctl.c: the admin command line of recd.
 *
 * Talks HTTP/1.1 to the admin listener (TCP or unix socket), one request
 * per connection, with plain blocking calls under a deadline: a CLI waits
 * for one answer, so an event loop would buy nothing. Answers are JSON,
 * read with the engine's parser. Exit codes (also in --help):
 *   0 ok, 1 the daemon answered an error (or rejected events), 2 usage,
 *   3 cannot connect.
 * This file: the transport, status, reload, metrics, snapshot inspect and
 * main; recdctl_cmds.c: explain, user, item, experiments, quality, events
 * send.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "core/common.h"
#include "json/json.h"
#include "recd_build.h"
#include "recdctl.h"

#define MAX_RESPONSE (64u << 20)  /* a /metrics page is far smaller */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: recdctl [options] COMMAND [ARGS]\n"
		"\n"
		"Commands:\n"
		"  status                      versions, uptime, workers, connections, snapshot\n"
		"  reload [snapshot|policies|settings|all]\n"
		"                              reload from disk (default: all, like SIGHUP)\n"
		"  metrics                     print the Prometheus metrics\n"
		"  snapshot inspect FILE       print a snapshot's header and sections\n"
		"                              (runs recd-snapshot inspect)\n"
		"  explain USER [--placement P] [--item ID] [--n N] [--device D] [--region R]\n"
		"                              run one request on the admin worker and show\n"
		"                              each stage: route, sources, rules, rerank, final\n"
		"                              list (USER '-' = anonymous)\n"
		"  user ID                     what live state holds for a shopper\n"
		"  item ID                     an item: snapshot columns, live state, trending,\n"
		"                              neighbours\n"
		"  experiments                 every experiment's variants: impressions, clicks,\n"
		"                              CTR and conversion with 95%% intervals, CTR vs\n"
		"                              control (p-value), samples still needed, status\n"
		"  quality                     online quality per placement and variant: coverage,\n"
		"                              diversity, popularity bias, strategy mix\n"
		"  events send FILE            POST the events in FILE (NDJSON or a JSON array;\n"
		"                              '-' = stdin) to the admin listener, in batches\n"
		"\n"
		"Options:\n"
		"  --admin ADDR        admin listener: host:port, [v6]:port or unix:/path\n"
		"                      (default $RECD_ADMIN, else 127.0.0.1:8081)\n"
		"  --token TOKEN       admin bearer token (default $RECD_ADMIN_TOKEN; prefer\n"
		"                      the variable: arguments are visible in ps)\n"
		"  --json              print the daemon's JSON answer as is\n"
		"  --timeout-ms MS     give up after MS (default 5000; reload 60000)\n"
		"  -h, --help          this text     --version  recdctl's version\n"
		"\n"
		"Exit status:\n"
		"  0  ok (reload: reloaded or unchanged; events send: every event accepted)\n"
		"  1  the daemon answered an error (refused reload, 401, 404, ...), or\n"
		"     events send: at least one event rejected\n"
		"  2  usage error\n"
		"  3  cannot connect to the admin listener, or no complete answer\n"
		"  snapshot inspect exits with recd-snapshot's status (127: not found).\n");
}

uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int ms_left(const struct ctl *c)
{
	uint64_t now = mono_ms();
	return now >= c->deadline_ms ? 0 : (int)(c->deadline_ms - now);
}

/* Wait until fd is ready for `events` or the deadline passes: 0 or -ETIMEDOUT. */
static int wait_fd(const struct ctl *c, int fd, short events)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int left = ms_left(c);
		if (left == 0)
			return -ETIMEDOUT;
		int r = poll(&p, 1, left);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Non-blocking connect, so --timeout-ms also bounds an unanswered SYN. */
static int connect_one(const struct ctl *c, int family, const struct sockaddr *sa, socklen_t salen)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, sa, salen) == 0)
		return fd;
	int r = -errno;
	if (r == -EINPROGRESS) {
		r = wait_fd(c, fd, POLLOUT);
		if (r == 0) {
			int soerr = 0;
			socklen_t len = sizeof(soerr);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
			if (soerr == 0)
				return fd;
			r = -soerr;
		}
	}
	close(fd);
	return r;
}

/* Connect to c->admin; returns the fd or -errno, with err set. */
static int ctl_connect(const struct ctl *c, char *err, size_t errlen)
{
	const char *a = c->admin;
	if (strncmp(a, "http://", 7) == 0)
		a += 7;
	if (strncmp(a, "unix:", 5) == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		if (strlen(a + 5) >= sizeof(sun.sun_path) || !a[5]) {
			snprintf(err, errlen, "bad unix socket path in '%s'", c->admin);
			return -EINVAL;
		}
		strcpy(sun.sun_path, a + 5);
		int fd = connect_one(c, AF_UNIX, (struct sockaddr *)&sun, sizeof(sun));
		if (fd < 0)
			snprintf(err, errlen, "cannot connect to %s: %s", c->admin, strerror(-fd));
		return fd;
	}

	char host[256];
	const char *port;
	if (a[0] == '[') {
		const char *end = strchr(a, ']');
		if (!end || end[1] != ':' || (size_t)(end - a - 1) >= sizeof(host))
			goto bad;
		memcpy(host, a + 1, (size_t)(end - a - 1));
		host[end - a - 1] = 0;
		port = end + 2;
	} else {
		const char *colon = strrchr(a, ':');
		if (!colon || (size_t)(colon - a) >= sizeof(host))
			goto bad;
		memcpy(host, a, (size_t)(colon - a));
		host[colon - a] = 0;
		port = colon + 1;
	}
	if (!host[0] || !port[0] || strchr(port, '/'))
		goto bad;

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res;
	int g = getaddrinfo(host, port, &hints, &res);
	if (g) {
		snprintf(err, errlen, "cannot resolve %s: %s", c->admin, gai_strerror(g));
		return -EHOSTUNREACH;
	}
	int fd = -ECONNREFUSED;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = connect_one(c, ai->ai_family, ai->ai_addr, ai->ai_addrlen);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(err, errlen, "cannot connect to %s: %s", c->admin, strerror(-fd));
	return fd;
bad:
	snprintf(err, errlen, "bad admin address '%s' (want host:port, [v6]:port or unix:/path)", c->admin);
	return -EINVAL;
}

static int send_all(const struct ctl *c, int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EAGAIN) {
			int r = wait_fd(c, fd, POLLOUT);
			if (r)
				return r;
		} else if (w < 0 && errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

/* Length of the head including the blank line, or 0 if not complete yet. */
static size_t head_len(const char *p, size_t n)
{
	for (size_t i = 0; i + 3 < n; i++)
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
			return i + 4;
	return 0;
}

/* Content-Length from a response head; -1 when absent. */
static long long content_length(const char *head, size_t n)
{
	static const char name[] = "\r\ncontent-length:";
	for (size_t i = 0; i + sizeof(name) - 1 < n; i++) {
		if (strncasecmp(head + i, name, sizeof(name) - 1) == 0) {
			char *end;
			long long v = strtoll(head + i + sizeof(name) - 1, &end, 10);
			return v >= 0 ? v : -1;
		}
	}
	return -1;
}

/* Read one response: until Content-Length bytes of body, or EOF. */
static int read_response(const struct ctl *c, int fd, struct response *rsp)
{
	size_t cap = 16384, n = 0, hl = 0;
	long long clen = -1;
	char *b = malloc(cap);
	if (!b)
		return -ENOMEM;
	for (;;) {
		if (hl && clen >= 0 && n >= hl + (size_t)clen)
			break;
		if (n + 1 >= cap) {
			if (cap >= MAX_RESPONSE) {
				free(b);
				return -EFBIG;
			}
			char *nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
			cap *= 2;
		}
		ssize_t r = recv(fd, b + n, cap - n - 1, 0);
		if (r > 0) {
			n += (size_t)r;
			if (!hl && (hl = head_len(b, n)))
				clen = content_length(b, hl);
			continue;
		}
		if (r == 0)
			break;
		if (errno == EINTR)
			continue;
		int e = errno == EAGAIN ? wait_fd(c, fd, POLLIN) : -errno;
		if (e) {
			free(b);
			return e;
		}
	}
	b[n] = 0;
	int status = 0;
	if (!hl || sscanf(b, "HTTP/1.%*1[01] %3d", &status) != 1 || (clen >= 0 && n < hl + (size_t)clen)) {
		free(b);
		return -EPROTO;
	}
	rsp->status = status;
	rsp->data = b;
	rsp->len = n;
	rsp->body = b + hl;
	rsp->body_len = clen >= 0 ? (size_t)clen : n - hl;
	b[hl + rsp->body_len] = 0;
	return 0;
}

int ctl_request(const struct ctl *c, const char *method, const char *target, struct response *rsp)
{
	return ctl_request_body(c, method, target, NULL, NULL, 0, rsp);
}

int ctl_request_body(const struct ctl *c, const char *method, const char *target, const char *ctype,
		     const char *body, size_t body_len, struct response *rsp)
{
	char err[512], req[2048];
	int fd = ctl_connect(c, err, sizeof(err));
	if (fd < 0) {
		fprintf(stderr, "recdctl: %s\n", err);
		return fd == -EINVAL ? EXIT_USAGE : EXIT_CONNECT;
	}
	int n = snprintf(req, sizeof(req),
			 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: recdctl/%s\r\nAccept: */*\r\n"
			 "%s%s%s%s%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
			 method, target, strncmp(c->admin, "unix:", 5) ? c->admin : "localhost", RECD_VERSION,
			 c->token ? "Authorization: Bearer " : "", c->token ? c->token : "", c->token ? "\r\n" : "",
			 ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", body_len);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		close(fd);
		fprintf(stderr, "recdctl: request too long (token, address or id)\n");
		return EXIT_USAGE;
	}
	int r = send_all(c, fd, req, (size_t)n);
	if (!r && body_len)
		r = send_all(c, fd, body, body_len);
	if (!r)
		r = read_response(c, fd, rsp);
	close(fd);
	if (r) {
		fprintf(stderr, "recdctl: %s %s on %s: %s\n", method, target, c->admin,
			r == -EPROTO ? "malformed or truncated response" : strerror(-r));
		return EXIT_CONNECT;
	}
	return 0;
}

int doc_parse(struct doc *d, const char *s, size_t len)
{
	uint32_t cap = 256;
	d->s = s;
	for (;;) {
		d->t = malloc(cap * sizeof(*d->t));
		if (!d->t)
			return -ENOMEM;
		struct json_err je;
		int r = json_parse(s, len, d->t, cap, &je);
		if (r >= 0)
			return 0;
		free(d->t);
		d->t = NULL;
		if (r != -ENOSPC || cap >= (1u << 24))
			return r;
		cap *= 4;
	}
}

int doc_get(const struct doc *d, int obj, const char *key)
{
	if (obj < 0 || d->t[obj].type != JSON_OBJECT)
		return -1;
	return json_obj_get(d->s, d->t, obj, key);
}

const char *doc_str(const struct doc *d, int obj, const char *key, char *out, size_t outlen)
{
	int v = doc_get(d, obj, key);
	if (v < 0 || d->t[v].type != JSON_STRING || json_str_decode(d->s, &d->t[v], out, outlen) < 0)
		snprintf(out, outlen, "?");
	return out;
}

int64_t doc_i64(const struct doc *d, int obj, const char *key)
{
	int64_t x = -1;
	int v = doc_get(d, obj, key);
	if (v < 0 || json_get_i64(d->s, &d->t[v], &x))
		return -1;
	return x;
}

void print_body(const struct response *rsp)
{
	fwrite(rsp->body, 1, rsp->body_len, stdout);
	if (rsp->body_len && rsp->body[rsp->body_len - 1] != '\n')
		putchar('\n');
}

int report_http_error(const struct response *rsp)
{
	struct doc d;
	char e[128], det[512];
	if (doc_parse(&d, rsp->body, rsp->body_len) == 0) {
		fprintf(stderr, "recdctl: HTTP %d: %s: %s\n", rsp->status, doc_str(&d, 0, "error", e, sizeof(e)),
			doc_str(&d, 0, "detail", det, sizeof(det)));
		free(d.t);
	} else {
		fprintf(stderr, "recdctl: HTTP %d: %.*s\n", rsp->status, (int)MIN(rsp->body_len, 300), rsp->body);
	}
	return EXIT_ERROR;
}

void fmt_time_ms(int64_t ms, char *out, size_t len)
{
	if (ms <= 0) {
		snprintf(out, len, "?");
		return;
	}
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void fmt_uptime(int64_t s, char *out, size_t len)
{
	if (s < 0)
		snprintf(out, len, "?");
	else if (s >= 86400)
		snprintf(out, len, "%" PRId64 "d %" PRId64 "h %" PRId64 "m", s / 86400, s % 86400 / 3600, s % 3600 / 60);
	else if (s >= 3600)
		snprintf(out, len, "%" PRId64 "h %" PRId64 "m %" PRId64 "s", s / 3600, s % 3600 / 60, s % 60);
	else
		snprintf(out, len, "%" PRId64 "m %" PRId64 "s", s / 60, s % 60);
}

static int cmd_status(const struct ctl *c)
{
	struct response rsp;
	int rc = ctl_request(c, "GET", "/admin/status", &rsp);
	if (rc)
		return rc;
	if (rsp.status != 200) {
		rc = c->json ? (print_body(&rsp), EXIT_ERROR) : report_http_error(&rsp);
		free(rsp.data);
		return rc;
	}
	if (c->json) {
		print_body(&rsp);
		free(rsp.data);
		return EXIT_OK;
	}
	struct doc d;
	if (doc_parse(&d, rsp.body, rsp.body_len) || d.t[0].type != JSON_OBJECT) {
		fprintf(stderr, "recdctl: /admin/status: not a JSON object\n");
		free(d.t);
		free(rsp.data);
		return EXIT_ERROR;
	}
	char ver[64], up[64], started[32], listen[160], admin[160];
	fmt_uptime(doc_i64(&d, 0, "uptime_s"), up, sizeof(up));
	fmt_time_ms(doc_i64(&d, 0, "started_at_ms"), started, sizeof(started));
	printf("recd %s, up %s (since %s)\n", doc_str(&d, 0, "version", ver, sizeof(ver)), up, started);
	printf("  listen       %s (admin %s)\n", doc_str(&d, 0, "listen", listen, sizeof(listen)),
	       doc_str(&d, 0, "admin_listen", admin, sizeof(admin)));
	printf("  workers      %" PRId64 "\n", doc_i64(&d, 0, "workers"));
	printf("  connections  %" PRId64 "\n", doc_i64(&d, 0, "connections"));
	int s = doc_get(&d, 0, "snapshot");
	if (s >= 0 && d.t[s].type == JSON_OBJECT) {
		char model[128], path[PATH_MAX], loaded[32], built[32];
		fmt_time_ms(doc_i64(&d, s, "loaded_at_ms"), loaded, sizeof(loaded));
		int64_t bt = doc_i64(&d, s, "build_time");
		fmt_time_ms(bt > 0 ? bt * 1000 : -1, built, sizeof(built));
		printf("  snapshot     %s@%" PRId64 "  %s\n", doc_str(&d, s, "model_version", model, sizeof(model)),
		       doc_i64(&d, s, "generation"), doc_str(&d, s, "path", path, sizeof(path)));
		printf("               items %" PRId64 "  users %" PRId64 "  dim %" PRId64 "  bytes %" PRId64 "\n",
		       doc_i64(&d, s, "items"), doc_i64(&d, s, "users"), doc_i64(&d, s, "dim"),
		       doc_i64(&d, s, "bytes"));
		printf("               built %s  loaded %s\n", built, loaded);
	} else {
		printf("  snapshot     none\n");
	}
	int64_t fails = doc_i64(&d, 0, "snapshot_load_failures");
	if (fails > 0)
		printf("  snapshot load failures  %" PRId64 "\n", fails);
	free(d.t);
	free(rsp.data);
	return EXIT_OK;
}

const char *doc_list(const struct doc *d, int a, char *out, size_t len)
{
	size_t o = 0;
	out[0] = 0;
	if (a >= 0 && d->t[a].type == JSON_ARRAY)
		for (int e = a + 1; e < (int)d->t[a].next && o + 4 < len; e = (int)d->t[e].next) {
			int l = json_str_decode(d->s, &d->t[e], out + o + (o ? 2 : 0), len - o - 2);
			if (l < 0)
				break;
			if (o)
				memcpy(out + o, ", ", 2), o += 2;
			o += (size_t)l;
		}
	if (!o)
		snprintf(out, len, "-");
	return out;
}

/* One line per part of a reload answer:
 *   snapshot: reloaded (generation 3, model m)
 *   policies: unchanged (generation 2)
 *   settings: reloaded (applied: ann_nprobe; need a restart: workers)
 * and the reason of a refused part. */
static void print_reload_parts(const struct doc *d, FILE *out)
{
	for (int k = 1, i = 0; (uint32_t)i < d->t[0].count; i++) {
		int v = k + 1;
		char key[64], st[64], model[128], det[512], l1[256], l2[256];
		if (json_str_decode(d->s, &d->t[k], key, sizeof(key)) < 0)
			snprintf(key, sizeof(key), "?");
		if (d->t[v].type == JSON_OBJECT) {
			fprintf(out, "%s: %s", key, doc_str(d, v, "status", st, sizeof(st)));
			int64_t gen = doc_i64(d, v, "generation");
			if (!strcmp(key, "snapshot") && gen >= 0)
				fprintf(out, " (generation %" PRId64 ", model %s)", gen,
					doc_str(d, v, "model_version", model, sizeof(model)));
			else if (!strcmp(key, "policies") && gen >= 0)
				fprintf(out, " (generation %" PRId64 ")", gen);
			else if (!strcmp(key, "settings"))
				fprintf(out, " (applied: %s; need a restart: %s)",
					doc_list(d, doc_get(d, v, "applied"), l1, sizeof(l1)),
					doc_list(d, doc_get(d, v, "need_restart"), l2, sizeof(l2)));
			if (doc_get(d, v, "detail") >= 0)
				fprintf(out, ": %s", doc_str(d, v, "detail", det, sizeof(det)));
			fprintf(out, "\n");
		}
		k = (int)d->t[v].next;
	}
}

static int cmd_reload(const struct ctl *c, const char *what)
{
	char target[64];
	snprintf(target, sizeof(target), "/admin/reload?what=%s", what);
	struct response rsp;
	int rc = ctl_request(c, "POST", target, &rsp);
	if (rc)
		return rc;
	bool ok = rsp.status >= 200 && rsp.status < 300;
	if (c->json) {
		print_body(&rsp);
		free(rsp.data);
		return ok ? EXIT_OK : EXIT_ERROR;
	}
	struct doc d;
	if (doc_parse(&d, rsp.body, rsp.body_len) || d.t[0].type != JSON_OBJECT) {
		rc = ok ? (fprintf(stderr, "recdctl: reload: answer is not a JSON object\n"), EXIT_ERROR)
			: report_http_error(&rsp);
		free(d.t);
		free(rsp.data);
		return rc;
	}
	if (ok) {
		print_reload_parts(&d, stdout);
	} else if (doc_get(&d, 0, "error") >= 0) {
		print_reload_parts(&d, stderr);
		char e[128], det[512];
		int64_t gen = doc_i64(&d, 0, "generation");
		fprintf(stderr, "recdctl: reload refused: %s: %s", doc_str(&d, 0, "error", e, sizeof(e)),
			doc_str(&d, 0, "detail", det, sizeof(det)));
		if (gen >= 0)
			fprintf(stderr, " (still serving generation %" PRId64 ")", gen);
		fprintf(stderr, "\n");
	} else {
		report_http_error(&rsp);
	}
	free(d.t);
	free(rsp.data);
	return ok ? EXIT_OK : EXIT_ERROR;
}

static int cmd_metrics(const struct ctl *c)
{
	struct response rsp;
	int rc = ctl_request(c, "GET", "/metrics", &rsp);
	if (rc)
		return rc;
	rc = rsp.status == 200 ? (print_body(&rsp), EXIT_OK) : report_http_error(&rsp);
	free(rsp.data);
	return rc;
}

/* The inspector is recd-snapshot's; run the one installed next to us
 * (same build or same bindir), else the one on PATH. */
static int cmd_snapshot_inspect(const char *file)
{
	char self[PATH_MAX], tool[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			snprintf(tool, sizeof(tool), "%s/recd-snapshot", self);
			if (access(tool, X_OK) == 0)
				execl(tool, "recd-snapshot", "inspect", file, (char *)NULL);
		}
	}
	execlp("recd-snapshot", "recd-snapshot", "inspect", file, (char *)NULL);
	fprintf(stderr, "recdctl: cannot run recd-snapshot: %s\n", strerror(errno));
	return 127;
}

int main(int argc, char **argv)
{
	struct ctl c = { .admin = getenv("RECD_ADMIN"), .token = getenv("RECD_ADMIN_TOKEN"), .timeout_ms = -1 };
	if (!c.admin || !c.admin[0])
		c.admin = "127.0.0.1:8081";
	if (c.token && !c.token[0])
		c.token = NULL;

	static const struct option opts[] = {
		{ "admin", required_argument, NULL, 'a' },
		{ "token", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "placement", required_argument, NULL, 'p' },
		{ "item", required_argument, NULL, 'i' },
		{ "n", required_argument, NULL, 'n' },
		{ "device", required_argument, NULL, 'D' },
		{ "region", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int o;
	bool explain_opts = false;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'a':
			c.admin = optarg;
			break;
		case 't':
			c.token = optarg[0] ? optarg : NULL;
			break;
		case 'j':
			c.json = true;
			break;
		case 'T': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > 3600000) {
				fprintf(stderr, "recdctl: --timeout-ms wants 1..3600000, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			c.timeout_ms = (int)v;
			break;
		}
		case 'p':
		case 'i':
		case 'D':
		case 'R':
			*(o == 'p' ? &c.placement : o == 'i' ? &c.item : o == 'D' ? &c.device : &c.region) = optarg;
			explain_opts = true;
			break;
		case 'n': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > 10000) {
				fprintf(stderr, "recdctl: --n wants 1..10000, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			c.n = v;
			explain_opts = true;
			break;
		}
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("recdctl %s\n", RECD_VERSION);
			return EXIT_OK;
		default:
			fprintf(stderr, "(see recdctl --help)\n");
			return EXIT_USAGE;
		}
	}
	if (c.token && strpbrk(c.token, "\r\n")) {
		fprintf(stderr, "recdctl: the token must not contain line breaks\n");
		return EXIT_USAGE;
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[optind];
	int nargs = argc - optind - 1;
	char **args = argv + optind + 1;
	/* A reload may load a large snapshot before it answers. */
	bool is_reload = strcmp(cmd, "reload") == 0;
	if (c.timeout_ms < 0)
		c.timeout_ms = is_reload ? 60000 : 5000;
	c.deadline_ms = mono_ms() + (uint64_t)c.timeout_ms;
	if (explain_opts && strcmp(cmd, "explain")) {
		fprintf(stderr, "recdctl: --placement, --item, --n, --device and --region belong to explain\n");
		return EXIT_USAGE;
	}

	if (strcmp(cmd, "status") == 0 && nargs == 0)
		return cmd_status(&c);
	if (strcmp(cmd, "metrics") == 0 && nargs == 0)
		return cmd_metrics(&c);
	if (is_reload && nargs <= 1) {
		const char *what = nargs ? args[0] : "all";
		if (strcmp(what, "snapshot") && strcmp(what, "policies") && strcmp(what, "settings") &&
		    strcmp(what, "all")) {
			fprintf(stderr, "recdctl: reload what? snapshot, policies, settings or all, not '%s'\n", what);
			return EXIT_USAGE;
		}
		return cmd_reload(&c, what);
	}
	if (strcmp(cmd, "snapshot") == 0 && nargs == 2 && strcmp(args[0], "inspect") == 0)
		return cmd_snapshot_inspect(args[1]);
	if (strcmp(cmd, "explain") == 0 && nargs == 1)
		return cmd_explain(&c, args[0]);
	if (strcmp(cmd, "user") == 0 && nargs == 1)
		return cmd_user(&c, args[0]);
	if (strcmp(cmd, "item") == 0 && nargs == 1)
		return cmd_item(&c, args[0]);
	if (strcmp(cmd, "experiments") == 0 && nargs == 0)
		return cmd_experiments(&c);
	if (strcmp(cmd, "quality") == 0 && nargs == 0)
		return cmd_quality(&c);
	if (strcmp(cmd, "events") == 0 && nargs == 2 && strcmp(args[0], "send") == 0)
		return cmd_events_send(&c, args[1]);
	fprintf(stderr, "recdctl: unknown command or wrong arguments: '%s' (see recdctl --help)\n", cmd);
	return EXIT_USAGE;
}
