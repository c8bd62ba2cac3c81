/* recd_bench.c: `recd-bench`, the end-to-end load generator.
 *
 *   recd-bench run [options]     one load phase against an HTTP server
 *   recd-bench serve [options]   the tiny built-in responder (generator ceiling)
 *
 * A run prints a summary and writes every figure as JSON (--json); the
 * scenario driver (bench/scenarios/rb_run.py) strings runs together into
 * sweeps, scenarios, peer comparisons, a Markdown report and plots.
 * The timing model is documented in rb/rb_loop.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include "rb/rb_hist.h"
#include "rb/rb_loop.h"
#include "rb/rb_serve.h"
#include "rb/rb_work.h"

#ifndef RB_BUILDTYPE
#define RB_BUILDTYPE "unknown"
#endif

static const char usage_text[] =
	"usage: recd-bench run [options] | recd-bench serve [--port P] [--body BYTES] [--cpu C]\n"
	"run options:\n"
	"  --host A.B.C.D --port P   server (default 127.0.0.1, port required)\n"
	"  --rate R                  open loop at R requests/s (intended-time latency); 0 = closed loop\n"
	"  --duration S --warmup S   measured seconds (default 10) after a warm-up (default 1)\n"
	"  --conns C --threads T     keep-alive connections (64) over load threads (1)\n"
	"  --timeout S               an answer slower than this is an error (10)\n"
	"  --max-requests N          stop after N requests (0 = time only)\n"
	"  --cpu C                   pin load thread i to CPU C+i\n"
	"  --seed S                  workload seed (1)\n"
	"workload (from the recd-gen files the server was built from):\n"
	"  --data DIR                users.txt and items.jsonl in DIR (or --users F --items F)\n"
	"  --zipf-users S --zipf-items S   Zipf exponents (0.99)\n"
	"  --known F --anon F        shares of known and anonymous shoppers; the rest are new (0.9, 0.05)\n"
	"  --home F --pdp F          placement shares; the rest is cart (0.5, 0.3)\n"
	"  --n K                     items per recommendation (10)\n"
	"  --events F                share of event requests (0); turned off when the server answers 404\n"
	"  --batch F --batch-size B  share of NDJSON batches among events (0.2) and their size (10)\n"
	"  --freshness               also probe event freshness (purchase acknowledged -> item gone)\n"
	"  --path P                  no workload: GET P every time\n"
	"output:\n"
	"  --json FILE --label NAME  all figures as JSON; a name for this run\n";

static struct {
	const char *host, *data, *users, *items, *path, *json, *label;
	int port, cpu;
	bool freshness;
} opt = {.host = "127.0.0.1", .label = "run", .cpu = -1};

/* ---- freshness probe: purchase the top item, poll until it is gone ---- */

struct fresh {
	const struct rb_work *work;
	struct sockaddr_in addr;
	double duration_s;
	struct rb_hist hist;
	uint64_t probes, stale, errors;
	bool unsupported;
	pthread_t tid;
};

static int blk_connect(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	struct timeval tv = {2, 0};
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)a, sizeof(*a))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One request, one answer on a blocking socket; the body goes to out. */
static int blk_exchange(int fd, const char *req, size_t len, char *out, size_t cap)
{
	if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -1;
	size_t n = 0;
	for (;;) {
		ssize_t k = recv(fd, out + n, cap - 1 - n, 0);
		if (k <= 0)
			return -1;
		n += (size_t)k;
		out[n] = 0;
		char *end = strstr(out, "\r\n\r\n");
		char *cl = strcasestr(out, "content-length:");
		if (end && cl) {
			size_t want = (size_t)(end - out) + 4 + strtoul(cl + 15, NULL, 10);
			if (n >= want) {
				int status = atoi(out + 9);
				memmove(out, end + 4, n - (size_t)(end + 4 - out) + 1);
				return status;
			}
		}
		if (n + 1 >= cap)
			return -1;
	}
}

static void *fresh_main(void *arg)
{
	struct fresh *f = arg;
	struct rb_rng rng;
	rb_rng_seed(&rng, 77, 1000);
	static char req[2048], body[65536];
	int fd = blk_connect(&f->addr);
	uint64_t end = rb_now_ns() + (uint64_t)(f->duration_s * 1e9);
	while (fd >= 0 && rb_now_ns() < end) {
		const char *user = f->work->users[rb_zipf_sample(&f->work->uz, &rng)];
		int n = snprintf(req, sizeof(req), "GET /v1/recommendations?user_id=%s&n=10 HTTP/1.1\r\nHost: bench\r\n\r\n",
				 user);
		int st = blk_exchange(fd, req, (size_t)n, body, sizeof(body));
		char item[160], needle[180];
		const char *p = st == 200 ? strstr(body, "\"items\":[{\"id\":\"") : NULL;
		const char *q = p ? strchr(p + 16, '"') : NULL;
		if (!q || q - p - 16 >= (long)sizeof(item)) {
			f->errors++;
			goto next;
		}
		memcpy(item, p + 16, (size_t)(q - p - 16));
		item[q - p - 16] = 0;
		snprintf(needle, sizeof(needle), "\"id\":\"%s\"", item);
		char ev[512];
		int el = snprintf(ev, sizeof(ev), "{\"type\":\"purchase\",\"user_id\":\"%s\",\"item_id\":\"%s\"}", user, item);
		n = snprintf(req, sizeof(req),
			     "POST /v1/events HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
			     "Content-Length: %d\r\n\r\n%s", el, ev);
		st = blk_exchange(fd, req, (size_t)n, body, sizeof(body));
		if (st == 404) {
			f->unsupported = true;
			break;
		}
		if (st / 100 != 2) {
			f->errors++;
			goto next;
		}
		uint64_t ack = rb_now_ns();
		f->probes++;
		n = snprintf(req, sizeof(req), "GET /v1/recommendations?user_id=%s&n=10 HTTP/1.1\r\nHost: bench\r\n\r\n", user);
		for (;;) {
			st = blk_exchange(fd, req, (size_t)n, body, sizeof(body));
			uint64_t now = rb_now_ns();
			if (st == 200 && !strstr(body, needle)) {
				rb_hist_record(&f->hist, now - ack);
				break;
			}
			if (st < 0 || now - ack > 1000000000ull) { /* bounded: 1 s */
				f->stale++;
				break;
			}
			/* back to back for 5 ms (the resolution the < 1 ms goal
			 * needs), then every millisecond: a probe must not become
			 * a load of its own */
			if (now - ack > 5000000ull) {
				struct timespec gap = {0, 1000000};
				nanosleep(&gap, NULL);
			}
		}
	next:
		if (fd >= 0 && st < 0) {
			close(fd);
			fd = blk_connect(&f->addr);
		}
		struct timespec ts = {0, 20000000}; /* 50 probes/s at most: a probe, not load */
		nanosleep(&ts, NULL);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* ---- JSON output ---- */

static void json_hist(FILE *f, const char *name, const struct rb_hist *h)
{
	static const double ps[] = {50, 90, 99, 99.9, 99.99};
	static const char *const pn[] = {"p50", "p90", "p99", "p99_9", "p99_99"};
	fprintf(f, "\"%s\":{\"count\":%llu", name, (unsigned long long)h->total);
	for (int i = 0; i < 5; i++)
		fprintf(f, ",\"%s_us\":%.1f", pn[i], (double)rb_hist_percentile(h, ps[i]) / 1e3);
	fprintf(f, ",\"min_us\":%.1f,\"mean_us\":%.1f,\"max_us\":%.1f,\"saturated\":%llu}",
		h->total ? (double)h->min / 1e3 : 0.0, rb_hist_mean(h) / 1e3, (double)h->max / 1e3,
		(unsigned long long)h->saturated);
}

/* The percentile spectrum: 1 - 2^(-k/4) up to 99.999%, then the max
 * (the shape HdrHistogram's plots use: the tail gets as many points as
 * the body). */
static void json_spectrum(FILE *f, const struct rb_hist *h)
{
	fputs("\"spectrum\":[", f);
	for (int k = 0;; k++) {
		double p = 100.0 * (1.0 - pow(2.0, -k / 4.0));
		if (p > 99.999 || (h->total && (1.0 - p / 100.0) * (double)h->total < 1.0))
			break;
		fprintf(f, "%s[%.5f,%.1f]", k ? "," : "", p, (double)rb_hist_percentile(h, p) / 1e3);
	}
	fprintf(f, ",[100,%.1f]]", (double)h->max / 1e3);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s >= 0x20)
			fputc(*s, f);
	}
	fputc('"', f);
}

static void cpu_model(char *out, size_t cap)
{
	snprintf(out, cap, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "model name", 10)) {
			char *p = strchr(line, ':');
			if (p) {
				snprintf(out, cap, "%s", p + 2);
				out[strcspn(out, "\n")] = 0;
			}
			break;
		}
	if (f)
		fclose(f);
}

static int write_json(const char *path, const struct rb_loop_cfg *c, const struct rb_work_cfg *wc,
		      const struct rb_stats *s, const struct fresh *fr)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "recd-bench: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	struct utsname u;
	uname(&u);
	char cpu[256];
	cpu_model(cpu, sizeof(cpu));
	double load[3] = {0};
	getloadavg(load, 3);
	fputs("{\"label\":", f);
	json_str(f, opt.label);
	fprintf(f, ",\"time\":%lld,\"machine\":{\"cpus\":%ld,\"cpu\":", (long long)time(NULL), sysconf(_SC_NPROCESSORS_ONLN));
	json_str(f, cpu);
	fputs(",\"kernel\":", f);
	json_str(f, u.release);
	fprintf(f, ",\"loadavg\":[%.2f,%.2f,%.2f]},\"build\":{\"type\":\"%s\",\"compiler\":", load[0], load[1], load[2],
		RB_BUILDTYPE);
	json_str(f, __VERSION__);
	fputs("},\"config\":{\"target\":", f);
	char a[64];
	snprintf(a, sizeof(a), "%s:%d", opt.host, opt.port);
	json_str(f, a);
	fprintf(f, ",\"mode\":\"%s\",\"rate\":%.1f,\"duration_s\":%.2f,\"warmup_s\":%.2f,\"conns\":%u,\"threads\":%u,"
		   "\"timeout_s\":%.2f,\"max_requests\":%llu,\"seed\":%llu,\"cpu\":%d",
		c->rate > 0 ? "open" : "closed", c->rate, c->duration_s, c->warmup_s, c->conns, c->threads, c->timeout_s,
		(unsigned long long)c->max_requests, (unsigned long long)c->seed, c->cpu_first);
	if (c->work)
		fprintf(f, ",\"workload\":{\"users\":%zu,\"items\":%zu,\"zipf_users\":%.3f,\"zipf_items\":%.3f,"
			   "\"known\":%.3f,\"anon\":%.3f,\"home\":%.3f,\"pdp\":%.3f,\"n\":%u,\"events\":%.3f,"
			   "\"batch\":%.3f,\"batch_size\":%u}",
			c->work->n_users, c->work->n_items, wc->user_s, wc->item_s, wc->known, wc->anon, wc->home, wc->pdp,
			wc->n, wc->events, wc->batch, wc->batch_size);
	else {
		fputs(",\"path\":", f);
		json_str(f, opt.path);
	}
	double el = s->elapsed_s > 0 ? s->elapsed_s : 1;
	fprintf(f, "},\"results\":{\"elapsed_s\":%.3f,\"sent\":%llu,\"answered\":%llu,\"ok\":%llu,"
		   "\"throughput_rps\":%.1f,\"goodput_rps\":%.1f,\"non2xx\":{\"1xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu},"
		   "\"errors\":{\"connect\":%llu,\"write\":%llu,\"read\":%llu,\"closed\":%llu,\"parse\":%llu,\"timeout\":%llu},"
		   "\"unsent\":%llu,\"unfinished\":%llu,\"events_skipped_404\":%llu,\"client_cpu_s\":%.3f,"
		   "\"client_cpu_share\":%.3f,",
		s->elapsed_s, (unsigned long long)s->sent, (unsigned long long)s->done, (unsigned long long)s->ok,
		(double)(s->ok + s->by_class[1] + s->by_class[3] + s->by_class[4] + s->by_class[5]) / el,
		(double)s->ok / el, (unsigned long long)s->by_class[1], (unsigned long long)s->by_class[3],
		(unsigned long long)s->by_class[4], (unsigned long long)s->by_class[5], (unsigned long long)s->err_connect,
		(unsigned long long)s->err_write, (unsigned long long)s->err_read, (unsigned long long)s->err_closed,
		(unsigned long long)s->err_parse, (unsigned long long)s->err_timeout, (unsigned long long)s->unsent,
		(unsigned long long)s->unfinished, (unsigned long long)s->events_skipped, s->cpu_s,
		s->cpu_wall_s > 0 ? s->cpu_s / s->cpu_wall_s : 0.0);
	json_hist(f, "latency", &s->lat);
	fputc(',', f);
	json_spectrum(f, &s->lat);
	fputs(",\"by_kind\":{", f);
	for (int k = 0; k < RB_KINDS; k++) {
		fputs(k ? "," : "", f);
		json_hist(f, rb_kind_names[k], &s->kind[k]);
	}
	fputs("},", f);
	json_hist(f, "send_lag", &s->send_lag);
	fputc(',', f);
	json_hist(f, "wake_lag", &s->wake_lag);
	fputs(",\"per_second\":[", f);
	bool first = true;
	for (unsigned i = 0; i < s->seconds; i++) {
		const struct rb_hist *h = s->per_sec[i];
		if (!h)
			continue;
		fprintf(f, "%s[%u,%llu,%.1f,%.1f,%.1f]", first ? "" : ",", i, (unsigned long long)h->total,
			(double)rb_hist_percentile(h, 50) / 1e3, (double)rb_hist_percentile(h, 99) / 1e3,
			(double)h->max / 1e3);
		first = false;
	}
	fputs("]", f);
	if (fr) {
		fprintf(f, ",\"freshness\":{\"supported\":%s,\"probes\":%llu,\"stale_after_1s\":%llu,\"errors\":%llu,",
			fr->unsupported ? "false" : "true", (unsigned long long)fr->probes, (unsigned long long)fr->stale,
			(unsigned long long)fr->errors);
		json_hist(f, "latency", &fr->hist);
		fputc('}', f);
	}
	fputs("}}\n", f);
	int bad = ferror(f);
	if (fclose(f) || bad)
		return -EIO;
	return 0;
}

static void print_summary(const struct rb_loop_cfg *c, const struct rb_stats *s)
{
	const struct rb_hist *h = &s->lat;
	uint64_t non2xx = s->by_class[1] + s->by_class[3] + s->by_class[4] + s->by_class[5];
	uint64_t errs = s->err_connect + s->err_write + s->err_read + s->err_closed + s->err_parse + s->err_timeout;
	printf("%s: %s %.0f/s x %.1fs, %u conns: %llu ok (%.0f/s), non-2xx %llu, errors %llu, unsent %llu\n"
	       "  latency us: p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  p99.99 %.0f  max %.0f  (client cpu %.0f%%)\n",
	       opt.label, c->rate > 0 ? "open" : "closed", c->rate, s->elapsed_s, c->conns, (unsigned long long)s->ok,
	       s->elapsed_s > 0 ? (double)s->ok / s->elapsed_s : 0.0, (unsigned long long)non2xx,
	       (unsigned long long)errs, (unsigned long long)s->unsent, rb_hist_percentile(h, 50) / 1e3,
	       rb_hist_percentile(h, 90) / 1e3, rb_hist_percentile(h, 99) / 1e3, rb_hist_percentile(h, 99.9) / 1e3,
	       rb_hist_percentile(h, 99.99) / 1e3, h->max / 1e3,
	       s->cpu_wall_s > 0 ? 100.0 * s->cpu_s / s->cpu_wall_s : 0.0);
}

static int parse_double(const char *name, const char *s, double lo, double hi, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "recd-bench: --%s: expected a number in %g..%g, got '%s'\n", name, lo, hi, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static volatile sig_atomic_t stop_serving;
static void on_stop(int sig)
{
	(void)sig;
	stop_serving = 1;
}

static int cmd_serve(int argc, char **argv)
{
	struct rb_serve_cfg sc = {.body_len = 620, .cpu = -1};
	double v;
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc) {
			fputs(usage_text, stderr);
			return 2;
		}
		if (parse_double(argv[i] + 2, argv[i + 1], 0, 1e9, &v))
			return 2;
		if (!strcmp(argv[i], "--port"))
			sc.port = (int)v;
		else if (!strcmp(argv[i], "--body"))
			sc.body_len = (size_t)v;
		else if (!strcmp(argv[i], "--cpu"))
			sc.cpu = (int)v;
		else {
			fputs(usage_text, stderr);
			return 2;
		}
		i++;
	}
	struct rb_serve *s;
	int port, r = rb_serve_start(&sc, &s, &port);
	if (r) {
		fprintf(stderr, "recd-bench serve: %s\n", strerror(-r));
		return 1;
	}
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	fprintf(stderr, "msg=listening addr=127.0.0.1:%d\n", port);
	while (!stop_serving)
		pause();
	rb_serve_stop(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "run")) {
		fputs(usage_text, stderr);
		return 2;
	}
	struct rb_loop_cfg lc;
	struct rb_work_cfg wc;
	rb_loop_defaults(&lc);
	rb_work_defaults(&wc);
	lc.warmup_s = 1;
	enum { O_HOST = 1, O_PORT, O_RATE, O_DUR, O_WARM, O_CONNS, O_THR, O_TMO, O_MAX, O_CPU, O_SEED, O_DATA, O_USERS,
	       O_ITEMS, O_ZU, O_ZI, O_KNOWN, O_ANON, O_HOME, O_PDP, O_N, O_EVENTS, O_BATCH, O_BSIZE, O_FRESH, O_PATH,
	       O_JSON, O_LABEL };
	static const struct option lo[] = {
		{"host", 1, 0, O_HOST}, {"port", 1, 0, O_PORT}, {"rate", 1, 0, O_RATE}, {"duration", 1, 0, O_DUR},
		{"warmup", 1, 0, O_WARM}, {"conns", 1, 0, O_CONNS}, {"threads", 1, 0, O_THR}, {"timeout", 1, 0, O_TMO},
		{"max-requests", 1, 0, O_MAX}, {"cpu", 1, 0, O_CPU}, {"seed", 1, 0, O_SEED}, {"data", 1, 0, O_DATA},
		{"users", 1, 0, O_USERS}, {"items", 1, 0, O_ITEMS}, {"zipf-users", 1, 0, O_ZU}, {"zipf-items", 1, 0, O_ZI},
		{"known", 1, 0, O_KNOWN}, {"anon", 1, 0, O_ANON}, {"home", 1, 0, O_HOME}, {"pdp", 1, 0, O_PDP},
		{"n", 1, 0, O_N}, {"events", 1, 0, O_EVENTS}, {"batch", 1, 0, O_BATCH}, {"batch-size", 1, 0, O_BSIZE},
		{"freshness", 0, 0, O_FRESH}, {"path", 1, 0, O_PATH}, {"json", 1, 0, O_JSON}, {"label", 1, 0, O_LABEL},
		{0, 0, 0, 0}};
	int o;
	double v;
	optind = 2;
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		const char *name = o > 0 && o <= O_LABEL ? lo[o - 1].name : "?";
		int r = 0;
		switch (o) {
		case O_HOST: opt.host = optarg; break;
		case O_DATA: opt.data = optarg; break;
		case O_USERS: opt.users = optarg; break;
		case O_ITEMS: opt.items = optarg; break;
		case O_PATH: opt.path = optarg; break;
		case O_JSON: opt.json = optarg; break;
		case O_LABEL: opt.label = optarg; break;
		case O_FRESH: opt.freshness = true; break;
		case O_PORT: r = parse_double(name, optarg, 1, 65535, &v); opt.port = (int)v; break;
		case O_RATE: r = parse_double(name, optarg, 0, 1e8, &lc.rate); break;
		case O_DUR: r = parse_double(name, optarg, 0.1, 86400, &lc.duration_s); break;
		case O_WARM: r = parse_double(name, optarg, 0, 3600, &lc.warmup_s); break;
		case O_CONNS: r = parse_double(name, optarg, 1, 100000, &v); lc.conns = (unsigned)v; break;
		case O_THR: r = parse_double(name, optarg, 1, 256, &v); lc.threads = (unsigned)v; break;
		case O_TMO: r = parse_double(name, optarg, 0.001, 3600, &lc.timeout_s); break;
		case O_MAX: r = parse_double(name, optarg, 0, 1e15, &v); lc.max_requests = (uint64_t)v; break;
		case O_CPU: r = parse_double(name, optarg, 0, 4095, &v); lc.cpu_first = (int)v; break;
		case O_SEED: r = parse_double(name, optarg, 0, 1e18, &v); lc.seed = (uint64_t)v; break;
		case O_ZU: r = parse_double(name, optarg, 0, 5, &wc.user_s); break;
		case O_ZI: r = parse_double(name, optarg, 0, 5, &wc.item_s); break;
		case O_KNOWN: r = parse_double(name, optarg, 0, 1, &wc.known); break;
		case O_ANON: r = parse_double(name, optarg, 0, 1, &wc.anon); break;
		case O_HOME: r = parse_double(name, optarg, 0, 1, &wc.home); break;
		case O_PDP: r = parse_double(name, optarg, 0, 1, &wc.pdp); break;
		case O_N: r = parse_double(name, optarg, 1, 10000, &v); wc.n = (unsigned)v; break;
		case O_EVENTS: r = parse_double(name, optarg, 0, 1, &wc.events); lc.events = wc.events > 0; break;
		case O_BATCH: r = parse_double(name, optarg, 0, 1, &wc.batch); break;
		case O_BSIZE: r = parse_double(name, optarg, 1, 1000, &v); wc.batch_size = (unsigned)v; break;
		default: fputs(usage_text, stderr); return 2;
		}
		if (r)
			return 2;
	}
	if (!opt.port || (!opt.data && !opt.path && (!opt.users || !opt.items)) || wc.known + wc.anon > 1 ||
	    wc.home + wc.pdp > 1 || lc.conns < lc.threads) {
		fprintf(stderr, "recd-bench run: need --port, and --data DIR (or --users/--items, or --path); "
				"shares must add up to at most 1; conns >= threads\n");
		return 2;
	}
	if (inet_pton(AF_INET, opt.host, &lc.addr.sin_addr) != 1) {
		fprintf(stderr, "recd-bench: --host: an IPv4 address, got '%s'\n", opt.host);
		return 2;
	}
	lc.addr.sin_port = htons((uint16_t)opt.port);
	static struct rb_work work;
	char up[4096], ip[4096], fixed[4200];
	if (!opt.path) {
		if (opt.data) {
			snprintf(up, sizeof(up), "%s/users.txt", opt.data);
			snprintf(ip, sizeof(ip), "%s/items.jsonl", opt.data);
			wc.users_path = up;
			wc.items_path = ip;
		} else {
			wc.users_path = opt.users;
			wc.items_path = opt.items;
		}
		if (rb_work_load(&work, &wc))
			return 1;
		lc.work = &work;
	} else {
		int n = snprintf(fixed, sizeof(fixed), "GET %s HTTP/1.1\r\nHost: bench\r\n\r\n", opt.path);
		lc.fixed = fixed;
		lc.fixed_len = (size_t)n;
	}
	static struct fresh fr;
	bool fresh_on = opt.freshness && lc.work;
	if (fresh_on) {
		fr.work = &work;
		fr.addr = lc.addr;
		fr.duration_s = lc.warmup_s + lc.duration_s;
		rb_hist_init(&fr.hist);
		if (pthread_create(&fr.tid, NULL, fresh_main, &fr))
			fresh_on = false;
	}
	struct rb_stats st;
	int r = rb_loop_run(&lc, &st);
	if (fresh_on)
		pthread_join(fr.tid, NULL);
	if (r) {
		fprintf(stderr, "recd-bench: %s:%d: %s\n", opt.host, opt.port, strerror(-r));
		return 1;
	}
	print_summary(&lc, &st);
	if (fresh_on)
		printf("  freshness: %s, %llu probes, p50 %.0f us, p99 %.0f us, stale %llu\n",
		       fr.unsupported ? "no events endpoint (404)" : "measured", (unsigned long long)fr.probes,
		       rb_hist_percentile(&fr.hist, 50) / 1e3, rb_hist_percentile(&fr.hist, 99) / 1e3,
		       (unsigned long long)fr.stale);
	if (st.events_skipped)
		printf("  events: the server answered 404; event requests skipped\n");
	if (opt.json && write_json(opt.json, &lc, &wc, &st, fresh_on ? &fr : NULL))
		r = 1;
	rb_stats_free(&st);
	if (lc.work)
		rb_work_free(&work);
	return r ? 1 : 0;
}
