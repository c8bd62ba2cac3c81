/* rb_loop.c: the load loop (see rb_loop.h for the timing model).
 *
 * One thread owns an epoll set, its connections and its statistics; no
 * state is shared between threads but the "events are off" flag, so the
 * threads never contend and their histograms are merged at the end.
 * epoll was measured against io_uring for this client (docs in
 * bench/README.md): with one request in flight per connection the
 * per-request cost is one write, one read and a share of one epoll_pwait2,
 * and the generator's own ceiling stays well above the servers' rates.
 */
#include "rb_loop.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RB_WBUF 20000
#define RB_RBUF 65536
#define RB_EVENTS 256

enum conn_state { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };

struct conn {
	int fd;
	enum conn_state st;
	enum rb_kind kind;
	uint64_t intended, sent_at, retry_at;
	size_t wlen, woff, rlen;
	char *wbuf, *rbuf;
};

struct thr {
	const struct rb_loop_cfg *cfg;
	unsigned id, n_conns;
	struct conn *conns;
	unsigned *idle; /* stack of idle connection indexes */
	unsigned n_idle;
	int ep;
	struct rb_rng rng;
	uint64_t measure_start, end;
	struct rb_stats st;
	unsigned sec_cap;
	int err;
	pthread_t tid;
};

static atomic_bool events_off;

uint64_t rb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void rb_loop_defaults(struct rb_loop_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->addr.sin_family = AF_INET;
	c->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->threads = 1;
	c->conns = 64;
	c->duration_s = 10;
	c->drain_s = 1;
	c->timeout_s = 10;
	c->seed = 1;
	c->cpu_first = -1;
}

static void conn_close(struct thr *t, struct conn *c, uint64_t now)
{
	if (c->st == C_IDLE) /* a close between requests: out of the idle stack */
		for (unsigned k = 0; k < t->n_idle; k++)
			if (&t->conns[t->idle[k]] == c) {
				t->idle[k] = t->idle[--t->n_idle];
				break;
			}
	if (c->fd >= 0) {
		epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->st = C_DOWN;
	c->retry_at = now;
	c->rlen = 0;
}

static int conn_open(struct thr *t, unsigned i, uint64_t now)
{
	struct conn *c = &t->conns[i];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	int r = connect(fd, (const struct sockaddr *)&t->cfg->addr, sizeof(t->cfg->addr));
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = i};
	if (r < 0 && errno != EINPROGRESS) {
		t->st.err_connect++;
		conn_close(t, c, now);
		c->retry_at = now + 10000000ull; /* 10 ms: no busy reconnect storm */
		return -errno;
	}
	c->st = C_CONNECTING;
	epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

static void set_out(struct thr *t, struct conn *c, unsigned i, bool want)
{
	struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.u32 = i};
	epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void push_idle(struct thr *t, unsigned i)
{
	t->conns[i].st = C_IDLE;
	t->idle[t->n_idle++] = i;
}

/* Write what is pending; 0 when all out, 1 when the socket is full, <0 on error. */
static int conn_flush(struct thr *t, struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN)
				return 1;
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c->woff += (size_t)n;
	}
	return 0;
}

static void send_one(struct thr *t, unsigned i, uint64_t intended, uint64_t now)
{
	struct conn *c = &t->conns[i];
	const struct rb_loop_cfg *cfg = t->cfg;
	if (cfg->work) {
		bool ev = cfg->events && !atomic_load_explicit(&events_off, memory_order_relaxed);
		c->wlen = rb_work_next(cfg->work, &t->rng, ev, c->wbuf, RB_WBUF, &c->kind);
	} else {
		c->wlen = cfg->fixed_len < RB_WBUF ? cfg->fixed_len : RB_WBUF;
		memcpy(c->wbuf, cfg->fixed, c->wlen);
		c->kind = RB_REC;
	}
	c->woff = 0;
	c->intended = intended;
	c->sent_at = now;
	c->st = C_BUSY;
	t->st.sent++;
	if (cfg->rate > 0 && intended >= t->measure_start)
		rb_hist_record(&t->st.send_lag, now > intended ? now - intended : 0);
	int r = conn_flush(t, c);
	if (r > 0)
		set_out(t, c, i, true);
	else if (r < 0) {
		t->st.err_write++;
		conn_close(t, c, now);
	}
}

static struct rb_hist *sec_hist(struct thr *t, uint64_t intended)
{
	if (intended < t->measure_start)
		return NULL;
	uint64_t s = (intended - t->measure_start) / 1000000000ull;
	if (s >= t->sec_cap)
		return NULL;
	if (!t->st.per_sec[s]) {
		t->st.per_sec[s] = malloc(sizeof(struct rb_hist));
		if (!t->st.per_sec[s])
			return NULL;
		rb_hist_init(t->st.per_sec[s]);
	}
	return t->st.per_sec[s];
}

/* Parse a complete response at the start of c->rbuf. Returns its length,
 * 0 when more bytes are needed, -1 when malformed. */
static long parse_response(const char *b, size_t n, int *status, bool *close_after)
{
	const char *end = memmem(b, n, "\r\n\r\n", 4);
	if (!end)
		return n >= RB_RBUF ? -1 : 0;
	size_t head = (size_t)(end - b) + 4;
	if (n < 12 || memcmp(b, "HTTP/1.", 7))
		return -1;
	*status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	long cl = -1;
	*close_after = b[7] == '0';
	for (const char *p = memchr(b, '\n', head); p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
		p++;
		if (!strncasecmp(p, "content-length:", 15))
			cl = strtol(p + 15, NULL, 10);
		else if (!strncasecmp(p, "connection:", 11)) {
			const char *v = p + 11;
			while (*v == ' ')
				v++;
			*close_after = !strncasecmp(v, "close", 5) ? true : !strncasecmp(v, "keep-alive", 10) ? false : *close_after;
		}
	}
	if (cl < 0) {
		if (*status == 204 || *status == 304 || *status / 100 == 1)
			cl = 0;
		else
			return -1;
	}
	if (head + (size_t)cl > RB_RBUF)
		return -1;
	return n >= head + (size_t)cl ? (long)(head + (size_t)cl) : 0;
}

static void complete(struct thr *t, unsigned i, int status, uint64_t now)
{
	struct conn *c = &t->conns[i];
	const struct rb_loop_cfg *cfg = t->cfg;
	uint64_t from = cfg->rate > 0 ? c->intended : c->sent_at;
	uint64_t lat = now > from ? now - from : 0;
	bool measured = c->intended >= t->measure_start;
	t->st.done++;
	if (c->kind != RB_REC && status == 404) {
		/* no events endpoint on this server: stop sending events */
		atomic_store(&events_off, true);
		t->st.events_skipped++;
		return;
	}
	if (!measured)
		return;
	int cls = status / 100;
	t->st.by_class[cls >= 1 && cls <= 5 ? cls : 0]++;
	if (cls != 2)
		return;
	t->st.ok++;
	t->st.by_kind_ok[c->kind]++;
	rb_hist_record(&t->st.lat, lat);
	rb_hist_record(&t->st.kind[c->kind], lat);
	struct rb_hist *h = sec_hist(t, c->intended);
	if (h)
		rb_hist_record(h, lat);
}

static void on_readable(struct thr *t, unsigned i, uint64_t now)
{
	struct conn *c = &t->conns[i];
	for (;;) {
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, RB_RBUF - c->rlen, 0);
		if (n < 0) {
			if (errno == EAGAIN)
				break;
			if (errno == EINTR)
				continue;
			if (c->st == C_BUSY)
				t->st.err_read++;
			conn_close(t, c, now);
			return;
		}
		if (n == 0) {
			/* a close between requests is the server's keep-alive policy;
			 * one with a request in flight loses that request */
			if (c->st == C_BUSY)
				t->st.err_closed++;
			conn_close(t, c, now);
			return;
		}
		c->rlen += (size_t)n;
		if (c->rlen == RB_RBUF)
			break;
	}
	if (c->st != C_BUSY) {
		if (c->rlen) { /* bytes nobody asked for */
			t->st.err_parse++;
			conn_close(t, c, now);
		}
		return;
	}
	int status = 0;
	bool close_after = false;
	long len = parse_response(c->rbuf, c->rlen, &status, &close_after);
	if (len == 0)
		return;
	if (len < 0) {
		t->st.err_parse++;
		conn_close(t, c, now);
		return;
	}
	complete(t, i, status, now);
	memmove(c->rbuf, c->rbuf + len, c->rlen - (size_t)len);
	c->rlen -= (size_t)len;
	if (close_after || c->rlen)
		conn_close(t, c, now);
	else
		push_idle(t, i);
}

static void on_event(struct thr *t, unsigned i, uint32_t evs, uint64_t now)
{
	struct conn *c = &t->conns[i];
	if (c->fd < 0)
		return;
	if (c->st == C_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err || (evs & (EPOLLERR | EPOLLHUP))) {
			t->st.err_connect++;
			conn_close(t, c, now);
			c->retry_at = now + 10000000ull;
			return;
		}
		if (evs & EPOLLOUT) {
			set_out(t, c, i, false);
			push_idle(t, i);
		}
		return;
	}
	if ((evs & EPOLLOUT) && c->st == C_BUSY && c->woff < c->wlen) {
		int r = conn_flush(t, c);
		if (r < 0) {
			t->st.err_write++;
			conn_close(t, c, now);
			return;
		}
		if (r == 0)
			set_out(t, c, i, false);
	}
	if (evs & (EPOLLIN | EPOLLHUP | EPOLLERR))
		on_readable(t, i, now);
}

static void check_timeouts(struct thr *t, uint64_t now)
{
	uint64_t limit = (uint64_t)(t->cfg->timeout_s * 1e9);
	for (unsigned i = 0; i < t->n_conns; i++) {
		struct conn *c = &t->conns[i];
		if (c->st == C_BUSY && now - c->sent_at > limit) {
			t->st.err_timeout++;
			conn_close(t, c, now);
		} else if (c->st == C_DOWN && now >= c->retry_at) {
			conn_open(t, i, now);
		}
	}
}

static void wait_io(struct thr *t, uint64_t now, uint64_t until)
{
	struct epoll_event evs[RB_EVENTS];
	uint64_t d = until > now ? until - now : 0;
	struct timespec ts = {.tv_sec = (time_t)(d / 1000000000ull), .tv_nsec = (long)(d % 1000000000ull)};
	int n = epoll_pwait2(t->ep, evs, RB_EVENTS, &ts, NULL);
	if (n <= 0)
		return;
	now = rb_now_ns();
	for (int k = 0; k < n; k++)
		on_event(t, evs[k].data.u32, evs[k].events, now);
}

static unsigned busy_count(const struct thr *t)
{
	unsigned b = 0;
	for (unsigned i = 0; i < t->n_conns; i++)
		b += t->conns[i].st == C_BUSY;
	return b;
}

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	const struct rb_loop_cfg *cfg = t->cfg;
	if (cfg->cpu_first >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET((unsigned)cfg->cpu_first + t->id, &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	/* the default 50 us timer slack would show up as send lag */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	uint64_t now = rb_now_ns();
	for (unsigned i = 0; i < t->n_conns; i++)
		conn_open(t, i, now);
	/* connections up before the clock starts: connect time is not latency */
	uint64_t connect_deadline = now + 2000000000ull;
	while (t->n_idle < t->n_conns && (now = rb_now_ns()) < connect_deadline) {
		wait_io(t, now, now + 1000000ull);
		for (unsigned i = 0; i < t->n_conns; i++)
			if (t->conns[i].st == C_DOWN && now >= t->conns[i].retry_at)
				conn_open(t, i, now);
	}
	if (!t->n_idle) {
		t->err = -ECONNREFUSED;
		return NULL;
	}
	uint64_t start = rb_now_ns();
	t->measure_start = start + (uint64_t)(cfg->warmup_s * 1e9);
	t->end = t->measure_start + (uint64_t)(cfg->duration_s * 1e9);
	uint64_t quota = cfg->max_requests ? (cfg->max_requests + cfg->threads - 1) / cfg->threads : UINT64_MAX;
	double per_thread = cfg->rate / cfg->threads;
	uint64_t interval = per_thread > 0 ? (uint64_t)(1e9 / per_thread) : 0;
	/* threads interleave their schedules rather than send in lockstep */
	uint64_t first = start + (interval ? interval * t->id / cfg->threads : 0);
	uint64_t k = 0, next_check = start;
	struct rusage ru0, ru1;
	getrusage(RUSAGE_THREAD, &ru0);
	for (;;) {
		now = rb_now_ns();
		if (now >= t->end)
			break;
		if (now >= next_check) {
			check_timeouts(t, now);
			next_check = now + 10000000ull;
		}
		uint64_t due = UINT64_MAX;
		while (k < quota) {
			uint64_t intended = interval ? first + k * interval : now;
			if (intended > now) {
				due = intended;
				break;
			}
			if (!t->n_idle)
				break;
			send_one(t, t->idle[--t->n_idle], intended, now);
			k++;
		}
		if (k >= quota && !busy_count(t))
			break;
		/* sleep until the next request is due, an answer comes, or the
		 * timeout scan is due; never past the end */
		uint64_t until = due < next_check ? due : next_check;
		if (until > t->end)
			until = t->end;
		wait_io(t, now, until);
		if (until == due && due >= t->measure_start) {
			uint64_t woke = rb_now_ns();
			if (woke >= due) /* not woken early by an answer */
				rb_hist_record(&t->st.wake_lag, woke - due);
		}
	}
	now = rb_now_ns();
	if (interval && now >= first && k < quota) {
		uint64_t should = (t->end - first) / interval + 1;
		if (should > quota)
			should = quota;
		t->st.unsent = should > k ? should - k : 0;
	}
	uint64_t stop = now < t->end ? now : t->end; /* a request quota can end the run early, even in the warm-up */
	t->st.elapsed_s = stop > t->measure_start ? (double)(stop - t->measure_start) / 1e9 : 0.0;
	/* drain: answers to requests already sent still count */
	uint64_t drain_end = now + (uint64_t)(cfg->drain_s * 1e9);
	while (busy_count(t) && (now = rb_now_ns()) < drain_end)
		wait_io(t, now, drain_end < now + 10000000ull ? drain_end : now + 10000000ull);
	t->st.unfinished = busy_count(t);
	getrusage(RUSAGE_THREAD, &ru1);
	t->st.cpu_wall_s = (double)(rb_now_ns() - start) / 1e9;
	t->st.cpu_s = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
		      (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
		      (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
		      (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
	for (unsigned i = 0; i < t->n_conns; i++)
		conn_close(t, &t->conns[i], now);
	return NULL;
}

static void stats_init(struct rb_stats *s, unsigned seconds)
{
	memset(s, 0, sizeof(*s));
	rb_hist_init(&s->lat);
	rb_hist_init(&s->send_lag);
	rb_hist_init(&s->wake_lag);
	for (int k = 0; k < RB_KINDS; k++)
		rb_hist_init(&s->kind[k]);
	s->seconds = seconds;
	s->per_sec = calloc(seconds ? seconds : 1, sizeof(*s->per_sec));
}

void rb_stats_free(struct rb_stats *s)
{
	if (s->per_sec)
		for (unsigned i = 0; i < s->seconds; i++)
			free(s->per_sec[i]);
	free(s->per_sec);
	s->per_sec = NULL;
}

static void stats_merge(struct rb_stats *d, const struct rb_stats *s)
{
	d->sent += s->sent;
	d->done += s->done;
	d->ok += s->ok;
	for (int k = 0; k < 6; k++)
		d->by_class[k] += s->by_class[k];
	d->events_skipped += s->events_skipped;
	d->err_connect += s->err_connect;
	d->err_write += s->err_write;
	d->err_read += s->err_read;
	d->err_closed += s->err_closed;
	d->err_parse += s->err_parse;
	d->err_timeout += s->err_timeout;
	d->unsent += s->unsent;
	d->unfinished += s->unfinished;
	d->cpu_s += s->cpu_s;
	d->cpu_wall_s += s->cpu_wall_s; /* summed: cpu_s / cpu_wall_s is the mean share per thread */
	if (s->elapsed_s > d->elapsed_s)
		d->elapsed_s = s->elapsed_s;
	rb_hist_merge(&d->lat, &s->lat);
	rb_hist_merge(&d->send_lag, &s->send_lag);
	rb_hist_merge(&d->wake_lag, &s->wake_lag);
	for (int k = 0; k < RB_KINDS; k++) {
		d->by_kind_ok[k] += s->by_kind_ok[k];
		rb_hist_merge(&d->kind[k], &s->kind[k]);
	}
	for (unsigned i = 0; i < s->seconds && i < d->seconds; i++) {
		if (!s->per_sec[i])
			continue;
		if (!d->per_sec[i]) {
			d->per_sec[i] = s->per_sec[i];
			((struct rb_stats *)s)->per_sec[i] = NULL; /* moved */
		} else {
			rb_hist_merge(d->per_sec[i], s->per_sec[i]);
		}
	}
}

int rb_loop_run(const struct rb_loop_cfg *cfg, struct rb_stats *out)
{
	if (!cfg->threads || cfg->conns < cfg->threads || cfg->duration_s <= 0 || (!cfg->work && !cfg->fixed))
		return -EINVAL;
	atomic_store(&events_off, false);
	unsigned seconds = (unsigned)ceil(cfg->duration_s) + 1;
	stats_init(out, seconds);
	struct thr *ts = calloc(cfg->threads, sizeof(*ts));
	if (!ts || !out->per_sec) {
		free(ts);
		rb_stats_free(out);
		return -ENOMEM;
	}
	int r = 0;
	unsigned started = 0;
	for (unsigned i = 0; i < cfg->threads; i++)
		ts[i].ep = -1;
	for (unsigned i = 0; i < cfg->threads; i++) {
		struct thr *t = &ts[i];
		t->cfg = cfg;
		t->id = i;
		t->n_conns = cfg->conns / cfg->threads + (i < cfg->conns % cfg->threads);
		t->conns = calloc(t->n_conns, sizeof(*t->conns));
		t->idle = calloc(t->n_conns, sizeof(*t->idle));
		t->ep = epoll_create1(EPOLL_CLOEXEC);
		t->sec_cap = seconds;
		stats_init(&t->st, seconds);
		rb_rng_seed(&t->rng, cfg->seed, i + 1);
		if (!t->conns || !t->idle || t->ep < 0 || !t->st.per_sec) {
			r = -ENOMEM;
			break;
		}
		for (unsigned c = 0; c < t->n_conns; c++) {
			t->conns[c].fd = -1;
			t->conns[c].wbuf = malloc(RB_WBUF);
			t->conns[c].rbuf = malloc(RB_RBUF);
			if (!t->conns[c].wbuf || !t->conns[c].rbuf)
				r = -ENOMEM;
		}
		if (r)
			break;
	}
	for (unsigned i = 0; !r && i < cfg->threads; i++) {
		if (pthread_create(&ts[i].tid, NULL, thr_main, &ts[i])) {
			r = -EAGAIN;
			break;
		}
		started++;
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(ts[i].tid, NULL);
		if (ts[i].err && !r)
			r = ts[i].err;
		stats_merge(out, &ts[i].st);
	}
	for (unsigned i = 0; i < cfg->threads; i++) {
		struct thr *t = &ts[i];
		for (unsigned c = 0; t->conns && c < t->n_conns; c++) {
			free(t->conns[c].wbuf);
			free(t->conns[c].rbuf);
		}
		free(t->conns);
		free(t->idle);
		if (t->ep >= 0)
			close(t->ep);
		rb_stats_free(&t->st);
	}
	free(ts);
	if (r)
		rb_stats_free(out);
	return r;
}
