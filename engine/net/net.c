/* net.c: the io_uring HTTP server (see net.h).
 *
 * Completion routing. Every SQE carries a 64-bit user_data:
 *
 *   bits 0..5   operation (enum net_op)
 *   bits 6..63  the struct net_conn it belongs to (connections are 64-byte
 *               aligned, so the low six bits of their address are zero),
 *               or 0 for the worker's own operations (accept, timer, wake)
 *
 * A connection is freed only when no operation of it is left in the kernel
 * (`inflight` == 0), so a completion never refers to freed or reused
 * memory.
 *
 * Life of a connection: multishot accept -> multishot recv into the
 * worker's provided buffers (copied into the connection's input buffer and
 * returned at once) -> parse every complete request, append each response
 * to the output buffer -> one send for the batch (pipelining) -> parse on
 * when the send completes. While a send is in flight the output buffer is
 * not touched (the kernel reads it). Closing cancels the recv and closes
 * the socket through the ring.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>
#include "api/api.h"
#include "api/api_access.h"
#include "core/log.h"
#include "live/updater.h"
#include "net/net.h"

enum net_op {
	OP_ACCEPT = 1,
	OP_RECV,
	OP_SEND,
	OP_CLOSE,
	OP_CANCEL,
	OP_TIMER,
	OP_WAKE,
	OP_UPD_WAKE,     /* eventfd write that wakes the updater thread */
	OP__MASK = 63,
};

enum conn_flag {
	CF_RECV_ARMED = 1u << 0,
	CF_SEND_INFLIGHT = 1u << 1,
	CF_CLOSING = 1u << 2,        /* close submitted; waiting for ops to end */
	CF_CLOSE_AFTER_SEND = 1u << 3,
	CF_REFUSED = 1u << 4,        /* over the cap: one 503, then close */
	CF_PEER_EOF = 1u << 5,
	CF_HOLD = 1u << 6,           /* answer waits until its events are applied */
};

#define NET_BGID 1
#define NET_RECV_BUF_SIZE (16 * 1024)
#define NET_RECV_BUFS 256            /* power of two */
#define NET_TICK_NS (250ull * 1000 * 1000)
#define NET_OUT_HIGH_WATER (256 * 1024)
#define NET_FREE_CONNS_KEPT 1024
#define NET_BUF_KEEP (64 * 1024)     /* larger buffers are shrunk on reuse */

struct net_worker;

struct net_conn {
	struct net_worker *w;
	int fd;
	uint32_t flags;
	uint32_t inflight;
	size_t out_sent;
	uint64_t last_active_ns;
	uint64_t req_start_ns;       /* first byte of the pending request; 0 = none */
	uint64_t hold_seq;           /* CF_HOLD: send once the worker's ring applied this */
	struct net_conn *hold_next;
	struct buf in;
	struct buf out;
	struct net_conn *prev, *next;
} cacheline_aligned;

struct net_worker {
	struct net_server *ns;
	struct recd_server *srv;
	uint32_t idx;
	bool admin;
	pthread_t thread;
	bool joined;
	int listen_fd;
	bool owns_listen_fd;
	int wake_fd;
	uint64_t wake_val;
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	size_t br_size;
	char *bufs;
	struct __kernel_timespec tick;
	struct http_limits limits;
	struct api_worker api;
	struct metrics_worker *metrics;
	struct http_request req;     /* parse scratch: large, so not on the stack */
	ck_epoch_record_t epoch_rec; /* reader of the snapshot pointer */
	struct srv_thread_slot *slot;
	struct net_conn *live;       /* every connection not yet freed */
	uint32_t n_live;
	struct net_conn *free_list;
	uint32_t n_free;
	struct net_conn *holds;      /* connections with CF_HOLD */
	bool draining;
	bool accept_armed;
	uint64_t drain_deadline_ns;
	int start_err;
	char start_msg[256];
};

struct net_server {
	struct recd_server *srv;
	uint32_t n;                  /* workers incl. admin */
	struct net_worker *workers;
	pthread_barrier_t started;
};

static inline uint64_t ud_make(void *p, enum net_op op)
{
	return (uint64_t)(uintptr_t)p | (uint64_t)op;
}

/* ---------------------------------------------------------------- addresses */

int net_parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen)
{
	memset(ss, 0, sizeof(*ss));
	if (!strncmp(text, "unix:", 5)) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;
		size_t pl = strlen(text + 5);
		if (pl == 0 || pl >= sizeof(sun->sun_path)) {
			snprintf(err, errlen, "'%s': unix socket path empty or too long", text);
			return -EINVAL;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, text + 5, pl + 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + pl + 1);
		return 0;
	}
	char host[96];
	const char *colon, *hs = text;
	size_t hl;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			goto bad;
		hs = text + 1;
		hl = (size_t)(close - hs);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			goto bad;
		hl = (size_t)(colon - text);
	}
	if (hl == 0 || hl >= sizeof(host))
		goto bad;
	memcpy(host, hs, hl);
	host[hl] = 0;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 0 || port > 65535)
		goto bad;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
bad:
	snprintf(err, errlen, "'%s': expected host:port, [ipv6]:port or unix:/path (numeric host)", text);
	return -EINVAL;
}

void net_format_addr(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN];
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(out, outlen, "%s:%u", host, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(out, outlen, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else if (ss->ss_family == AF_UNIX) {
		(void)len;
		snprintf(out, outlen, "unix:%s", ((const struct sockaddr_un *)ss)->sun_path);
	} else {
		snprintf(out, outlen, "?");
	}
}

static int listen_socket(const struct sockaddr_storage *ss, socklen_t len, bool reuseport, char *err,
			 size_t errlen)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	int one = 1;
	if (ss->ss_family != AF_UNIX) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
			goto fail;
		/* Accepted sockets inherit this: responses go out at once. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	} else {
		unlink(((const struct sockaddr_un *)ss)->sun_path);
	}
	if (bind(fd, (const struct sockaddr *)ss, len) || listen(fd, 4096))
		goto fail;
	return fd;
fail:;
	int e = errno;
	char a[160];
	net_format_addr(ss, len, a, sizeof(a));
	snprintf(err, errlen, "cannot listen on %s: %s", a, strerror(e));
	if (fd >= 0)
		close(fd);
	return -e;
}

/* ------------------------------------------------------------- ring helpers */

static struct io_uring_sqe *get_sqe(struct net_worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	if (unlikely(!sqe)) {
		/* SQ full mid-batch: push what we have and take a fresh slot. */
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}

static void arm_accept(struct net_worker *w)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	io_uring_prep_multishot_accept(sqe, w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, OP_ACCEPT));
	w->accept_armed = true;
}

static void arm_timer(struct net_worker *w)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	io_uring_prep_timeout(sqe, &w->tick, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, OP_TIMER));
}

static void arm_wake(struct net_worker *w)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	io_uring_prep_read(sqe, w->wake_fd, &w->wake_val, sizeof(w->wake_val), 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, OP_WAKE));
}

static void conn_arm_recv(struct net_conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(c->w);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = NET_BGID;
	io_uring_sqe_set_data64(sqe, ud_make(c, OP_RECV));
	c->flags |= CF_RECV_ARMED;
	c->inflight++;
}

static void conn_send(struct net_conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(c->w);
	io_uring_prep_send(sqe, c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_make(c, OP_SEND));
	c->flags |= CF_SEND_INFLIGHT;
	c->inflight++;
}

/* ------------------------------------------------------------- connections */

static struct net_conn *conn_alloc(struct net_worker *w, int fd)
{
	struct net_conn *c = w->free_list;
	if (c) {
		w->free_list = c->next;
		w->n_free--;
	} else {
		c = aligned_alloc(CACHELINE, sizeof(*c));
		if (!c)
			return NULL;
		memset(c, 0, sizeof(*c));
		if (buf_init(&c->in, 4096) || buf_init(&c->out, 16384)) {
			buf_free(&c->in);
			buf_free(&c->out);
			free(c);
			return NULL;
		}
	}
	c->w = w;
	c->fd = fd;
	c->flags = 0;
	c->inflight = 0;
	c->out_sent = 0;
	c->req_start_ns = 0;
	c->last_active_ns = now_ns();
	buf_reset(&c->in);
	buf_reset(&c->out);
	c->prev = NULL;
	c->next = w->live;
	if (w->live)
		w->live->prev = c;
	w->live = c;
	w->n_live++;
	return c;
}

static void hold_unlink(struct net_conn *c)
{
	struct net_conn **p = &c->w->holds;
	while (*p && *p != c)
		p = &(*p)->hold_next;
	if (*p)
		*p = c->hold_next;
	c->flags &= ~CF_HOLD;
}

static void conn_release(struct net_conn *c)
{
	struct net_worker *w = c->w;
	if (c->flags & CF_HOLD)
		hold_unlink(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->live = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->n_live--;
	if (!(c->flags & CF_REFUSED))
		ck_pr_dec_64(&w->srv->conn_open);
	metrics_inc(&w->metrics->conn_closed);
	if (w->n_free >= NET_FREE_CONNS_KEPT || c->in.cap > NET_BUF_KEEP || c->out.cap > NET_BUF_KEEP) {
		buf_free(&c->in);
		buf_free(&c->out);
		free(c);
		return;
	}
	c->next = w->free_list;
	w->free_list = c;
	w->n_free++;
}

static void conn_maybe_release(struct net_conn *c)
{
	if ((c->flags & CF_CLOSING) && c->inflight == 0)
		conn_release(c);
}

static void conn_close(struct net_conn *c)
{
	if (c->flags & CF_CLOSING)
		return;
	c->flags |= CF_CLOSING;
	struct net_worker *w = c->w;
	if (c->flags & CF_RECV_ARMED) {
		struct io_uring_sqe *sqe = get_sqe(w);
		io_uring_prep_cancel64(sqe, ud_make(c, OP_RECV), 0);
		io_uring_sqe_set_data64(sqe, ud_make(c, OP_CANCEL));
		c->inflight++;
	}
	struct io_uring_sqe *sqe = get_sqe(w);
	io_uring_prep_close(sqe, c->fd);
	io_uring_sqe_set_data64(sqe, ud_make(c, OP_CLOSE));
	c->inflight++;
}

/* Queue an error for a request we could not parse, then close. */
static void conn_fail(struct net_conn *c, int status, const char *detail)
{
	char code[32];
	switch (status) {
	case 408: strcpy(code, "request_timeout"); break;
	case 413: strcpy(code, "payload_too_large"); break;
	case 414: strcpy(code, "uri_too_long"); break;
	case 431: strcpy(code, "header_fields_too_large"); break;
	case 501: strcpy(code, "not_implemented"); break;
	case 505: strcpy(code, "http_version_not_supported"); break;
	default: strcpy(code, "bad_request"); break;
	}
	api_write_error(&c->out, status, code, detail, true, NULL);
	metrics_request_done(c->w->metrics, MEP_OTHER, status, 0);
	c->flags |= CF_CLOSE_AFTER_SEND;
	buf_reset(&c->in);
	c->req_start_ns = 0;
}

/* The updater announced it sleeps: wake it through this ring, so the
 * write goes out with this loop turn's other submissions (no syscall). */
static void wake_updater(struct net_worker *w)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	io_uring_prep_write(sqe, w->srv->updater->wake_fd, &upd_wake_value, sizeof(upd_wake_value), 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, OP_UPD_WAKE));
	w->api.wake_updater = false;
}

/* Parse and answer every complete request in the input buffer. */
static void conn_process(struct net_conn *c)
{
	struct net_worker *w = c->w;
	size_t off = 0;
	bool stop_reading = (c->flags & CF_CLOSE_AFTER_SEND) != 0;

	while (!stop_reading && !(c->flags & (CF_SEND_INFLIGHT | CF_CLOSING | CF_HOLD)) && off < c->in.len &&
	       c->out.len < NET_OUT_HIGH_WATER) {
		struct http_request *req = &w->req;
		int r = http_parse_request(c->in.data + off, c->in.len - off, &w->limits, req);
		if (r == 0)
			break;
		if (r < 0) {
			buf_consume(&c->in, off);
			conn_fail(c, -r, req->error ? req->error : "malformed request");
			off = 0;
			break;
		}
		uint64_t t0 = now_ns();
		enum metrics_endpoint ep = MEP_OTHER;
		int status = api_handle(&w->api, req, w->draining, &c->out, &ep);
		uint64_t took = now_ns() - t0;
		metrics_request_done(w->metrics, ep, status, took);
		if (api_access_sampled(&w->api))
			api_access_log(&w->api, req, status, ep, took);
		if (w->api.wake_updater)
			wake_updater(w);
		if (w->api.hold_seq) {
			/* Acknowledge events only once they are applied, so the
			 * next request of this shopper already sees them. */
			if (!upd_applied(w->srv->updater, w->idx, w->api.hold_seq)) {
				c->flags |= CF_HOLD;
				c->hold_seq = w->api.hold_seq;
				c->hold_next = w->holds;
				w->holds = c;
				upd_set_waiting(w->srv->updater, w->idx, true);
				stop_reading = true;
			}
			w->api.hold_seq = 0;
		}
		off += (size_t)r;
		if (w->draining || !req->keep_alive) {
			c->flags |= CF_CLOSE_AFTER_SEND;
			stop_reading = true;
		}
	}
	if (off) {
		buf_consume(&c->in, off);
		c->req_start_ns = c->in.len ? now_ns() : 0;
	}
	if (c->out.oom) {
		/* The response could not be built: nothing sane to send. */
		conn_close(c);
		return;
	}
	if (c->flags & CF_HOLD)
		return;
	if (!(c->flags & CF_SEND_INFLIGHT) && c->out.len > c->out_sent) {
		conn_send(c);
		return;
	}
	/* Nothing to send: every complete request is answered, so a peer
	 * that has shut down its side can never finish what is left. */
	if (!(c->flags & CF_SEND_INFLIGHT) && (c->flags & (CF_CLOSE_AFTER_SEND | CF_PEER_EOF)))
		conn_close(c);
}

/* ------------------------------------------------------------- completions */

static void on_accept(struct net_worker *w, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		w->accept_armed = false;
	int fd = cqe->res;
	if (fd < 0) {
		if (fd != -ECANCELED)
			log_warn("accept_failed", "worker=%u err=\"%s\"", w->idx, strerror(-fd));
	} else if (w->draining) {
		close(fd);
	} else {
		metrics_inc(&w->metrics->conn_accepted);
		uint64_t open = ck_pr_faa_64(&w->srv->conn_open, 1);
		bool over = open >= (uint64_t)w->srv->cfg.max_connections;
		struct net_conn *c = conn_alloc(w, fd);
		if (!c) {
			ck_pr_dec_64(&w->srv->conn_open);
			close(fd);
		} else if (over) {
			/* Refused cleanly: one 503 the client can read, then close. */
			ck_pr_dec_64(&w->srv->conn_open);
			c->flags |= CF_REFUSED | CF_CLOSE_AFTER_SEND;
			metrics_inc(&w->metrics->conn_refused);
			api_write_error(&c->out, 503, "overloaded", "connection limit reached", true,
					"Retry-After: 1\r\n");
			conn_send(c);
		} else {
			conn_arm_recv(c);
		}
	}
	if (!w->accept_armed && !w->draining)
		arm_accept(w);
}

static void recycle_buffer(struct net_worker *w, uint16_t bid)
{
	io_uring_buf_ring_add(w->br, w->bufs + (size_t)bid * NET_RECV_BUF_SIZE, NET_RECV_BUF_SIZE, bid,
			      io_uring_buf_ring_mask(NET_RECV_BUFS), 0);
	io_uring_buf_ring_advance(w->br, 1);
}

static void on_recv(struct net_conn *c, struct io_uring_cqe *cqe)
{
	struct net_worker *w = c->w;
	int res = cqe->res;
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		c->flags &= ~CF_RECV_ARMED;
		c->inflight--;
	}
	if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
		uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		if (!(c->flags & CF_CLOSING)) {
			if (c->in.len == 0)
				c->req_start_ns = now_ns();
			buf_put(&c->in, w->bufs + (size_t)bid * NET_RECV_BUF_SIZE, (size_t)res);
			c->last_active_ns = now_ns();
			metrics_add(&w->metrics->bytes_in, (uint64_t)res);
		}
		recycle_buffer(w, bid);
	}
	if (c->flags & CF_CLOSING) {
		conn_maybe_release(c);
		return;
	}
	if (res == 0) {
		c->flags |= CF_PEER_EOF;
	} else if (res < 0 && res != -ENOBUFS) {
		conn_close(c);
		return;
	}
	if (c->in.oom) {
		conn_close(c);
		return;
	}
	if (!(c->flags & (CF_RECV_ARMED | CF_PEER_EOF)))
		conn_arm_recv(c);
	conn_process(c);
}

static void on_send(struct net_conn *c, struct io_uring_cqe *cqe)
{
	struct net_worker *w = c->w;
	c->flags &= ~CF_SEND_INFLIGHT;
	c->inflight--;
	if (c->flags & CF_CLOSING) {
		conn_maybe_release(c);
		return;
	}
	if (cqe->res < 0) {
		conn_close(c);
		return;
	}
	c->out_sent += (size_t)cqe->res;
	metrics_add(&w->metrics->bytes_out, (uint64_t)cqe->res);
	c->last_active_ns = now_ns();
	if (c->out_sent < c->out.len) {
		conn_send(c);
		return;
	}
	buf_reset(&c->out);
	c->out_sent = 0;
	if (c->flags & CF_CLOSE_AFTER_SEND) {
		conn_close(c);
		return;
	}
	conn_process(c);
}

/* Idle and slow-header timeouts; during drain, idle connections go now. */
static void sweep(struct net_worker *w)
{
	uint64_t now = now_ns();
	uint64_t idle = (uint64_t)w->srv->cfg.idle_timeout_ms * 1000000ull;
	uint64_t head = (uint64_t)w->srv->cfg.header_timeout_ms * 1000000ull;
	bool late = w->draining && now > w->drain_deadline_ns;
	struct net_conn *c = w->live, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->flags & CF_CLOSING)
			continue;
		if (late) {
			conn_close(c);
			continue;
		}
		if (c->flags & (CF_SEND_INFLIGHT | CF_HOLD))
			continue;
		if (c->in.len > 0 && c->req_start_ns && now - c->req_start_ns > head) {
			metrics_inc(&w->metrics->conn_timeouts);
			conn_fail(c, 408, "request not received in time");
			conn_send(c);
		} else if (c->in.len == 0 && c->out.len == 0 &&
			   (w->draining || now - c->last_active_ns > idle)) {
			if (!w->draining)
				metrics_inc(&w->metrics->conn_timeouts);
			conn_close(c);
		}
	}
}

static void begin_drain(struct net_worker *w)
{
	if (w->draining)
		return;
	w->draining = true;
	w->drain_deadline_ns = now_ns() + (uint64_t)w->srv->cfg.drain_timeout_ms * 1000000ull;
	if (w->accept_armed) {
		struct io_uring_sqe *sqe = get_sqe(w);
		io_uring_prep_cancel64(sqe, ud_make(NULL, OP_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, ud_make(NULL, OP_CANCEL));
	}
	sweep(w);
}

static void handle_cqe(struct net_worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	enum net_op op = (enum net_op)(ud & OP__MASK);
	struct net_conn *c = (struct net_conn *)(uintptr_t)(ud & ~(uint64_t)OP__MASK);
	switch (op) {
	case OP_ACCEPT:
		on_accept(w, cqe);
		break;
	case OP_RECV:
		on_recv(c, cqe);
		break;
	case OP_SEND:
		on_send(c, cqe);
		break;
	case OP_CLOSE:
	case OP_CANCEL:
		if (c) {
			c->inflight--;
			conn_maybe_release(c);
		}
		break;
	case OP_TIMER:
		sweep(w);
		arm_timer(w);
		break;
	case OP_WAKE:
		/* Shutdown, or the updater applied events an answer waits for. */
		if (ck_pr_load_int(&w->srv->stopping))
			begin_drain(w);
		arm_wake(w);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------ worker */

static int worker_setup(struct net_worker *w)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	unsigned entries = (unsigned)w->srv->cfg.ring_entries;
	int r = io_uring_queue_init_params(entries, &w->ring, &p);
	if (r == -EINVAL) {
		/* Kernels before 6.1 lack these flags; they only save work. */
		memset(&p, 0, sizeof(p));
		r = io_uring_queue_init_params(entries, &w->ring, &p);
	}
	if (r < 0) {
		snprintf(w->start_msg, sizeof(w->start_msg), "io_uring_queue_init: %s", strerror(-r));
		return r;
	}
	w->br_size = NET_RECV_BUFS * sizeof(struct io_uring_buf);
	w->br = mmap(NULL, w->br_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	w->bufs = malloc((size_t)NET_RECV_BUFS * NET_RECV_BUF_SIZE);
	if (w->br == MAP_FAILED || !w->bufs) {
		w->br = NULL;
		snprintf(w->start_msg, sizeof(w->start_msg), "out of memory for receive buffers");
		return -ENOMEM;
	}
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)w->br;
	reg.ring_entries = NET_RECV_BUFS;
	reg.bgid = NET_BGID;
	r = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (r) {
		snprintf(w->start_msg, sizeof(w->start_msg), "io_uring_register_buf_ring: %s", strerror(-r));
		return r;
	}
	io_uring_buf_ring_init(w->br);
	for (uint16_t i = 0; i < NET_RECV_BUFS; i++)
		io_uring_buf_ring_add(w->br, w->bufs + (size_t)i * NET_RECV_BUF_SIZE, NET_RECV_BUF_SIZE, i,
				      io_uring_buf_ring_mask(NET_RECV_BUFS), i);
	io_uring_buf_ring_advance(w->br, NET_RECV_BUFS);
	ck_epoch_register(&w->srv->epoch, &w->epoch_rec, NULL);
	r = api_worker_init(&w->api, w->srv, w->idx, w->admin);
	if (r) {
		snprintf(w->start_msg, sizeof(w->start_msg), "out of memory for worker scratch");
		return r;
	}
	return 0;
}

static void worker_teardown(struct net_worker *w)
{
	struct net_conn *c, *next;
	for (c = w->live; c; c = next) {
		next = c->next;
		if (!(c->flags & CF_CLOSING))
			close(c->fd);
		buf_free(&c->in);
		buf_free(&c->out);
		free(c);
	}
	w->live = NULL;
	for (c = w->free_list; c; c = next) {
		next = c->next;
		buf_free(&c->in);
		buf_free(&c->out);
		free(c);
	}
	w->free_list = NULL;
	if (w->ring.ring_fd > 0)
		io_uring_queue_exit(&w->ring);
	if (w->br)
		munmap(w->br, w->br_size);
	free(w->bufs);
	api_worker_free(&w->api);
	api_thread_exit();
	if (w->epoch_rec.global)
		ck_epoch_unregister(&w->epoch_rec);
}

/* Release the answers whose events the updater has applied. */
static void check_holds(struct net_worker *w)
{
	struct net_conn **p = &w->holds;
	while (*p) {
		struct net_conn *c = *p;
		if (upd_applied(w->srv->updater, w->idx, c->hold_seq)) {
			*p = c->hold_next;
			c->flags &= ~CF_HOLD;
			conn_process(c);
		} else {
			p = &c->hold_next;
		}
	}
	if (!w->holds)
		upd_set_waiting(w->srv->updater, w->idx, false);
}

/* Test hook (debug_endpoints): the admin API asks a worker to stop
 * turning for a while, so the watchdog can be seen withholding pings. */
static __cold void debug_stall(struct net_worker *w)
{
	uint64_t ms = ck_pr_fas_64(&w->slot->stall_ms, 0);
	log_warn("debug_stall", "worker=%u ms=%llu", w->idx, (unsigned long long)ms);
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000l };
	nanosleep(&ts, NULL);
}

static void *worker_main(void *arg)
{
	struct net_worker *w = arg;
	w->start_err = worker_setup(w);
	pthread_barrier_wait(&w->ns->started);
	if (w->start_err) {
		worker_teardown(w);
		return NULL;
	}
	arm_accept(w);
	arm_timer(w);
	arm_wake(w);
	if (ck_pr_load_int(&w->srv->stopping))
		begin_drain(w);

	while (!(w->draining && w->n_live == 0)) {
		/* Waiting in the kernel happens outside any epoch section, so an
		 * idle worker never holds back the reclamation of a snapshot. */
		int r = io_uring_submit_and_wait(&w->ring, 1);
		if (r < 0 && r != -EINTR && r != -ETIME && r != -EBUSY) {
			log_error("ring_failed", "worker=%u err=\"%s\"", w->idx, strerror(-r));
			break;
		}
		ck_pr_store_64(&w->slot->turns, w->slot->turns + 1);
		if (unlikely(ck_pr_load_64(&w->slot->stall_ms)))
			debug_stall(w);
		/* Completions waiting at the start of this turn: how far behind
		 * the worker is (the request path sheds costly work past a bound). */
		w->api.backlog = io_uring_cq_ready(&w->ring);
		api_worker_turn(&w->api);
		ck_epoch_begin(&w->epoch_rec, NULL);
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			handle_cqe(w, cqe);
			seen++;
		}
		io_uring_cq_advance(&w->ring, seen);
		if (w->holds)
			check_holds(w);
		ck_epoch_end(&w->epoch_rec, NULL);
	}
	worker_teardown(w);
	return NULL;
}

/* ------------------------------------------------------------------ server */

static void close_listeners(struct net_server *ns)
{
	for (uint32_t i = 0; i < ns->n; i++) {
		struct net_worker *w = &ns->workers[i];
		if (w->owns_listen_fd && w->listen_fd >= 0)
			close(w->listen_fd);
		w->listen_fd = -1;
		if (w->wake_fd >= 0)
			close(w->wake_fd);
		w->wake_fd = -1;
	}
}

/* Bind `count` listeners for one address; the first fixes the port when 0
 * was asked for, the others join it through SO_REUSEPORT. */
static int bind_group(struct net_worker *ws, uint32_t count, const char *addr, char *bound, size_t boundlen,
		      char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int r = net_parse_addr(addr, &ss, &len, err, errlen);
	if (r)
		return r;
	bool unix_sock = ss.ss_family == AF_UNIX;
	for (uint32_t i = 0; i < count; i++) {
		if (unix_sock && i > 0) {
			/* One unix socket, accepted from by every worker's ring. */
			ws[i].listen_fd = ws[0].listen_fd;
			continue;
		}
		int fd = listen_socket(&ss, len, count > 1, err, errlen);
		if (fd < 0)
			return fd;
		ws[i].listen_fd = fd;
		ws[i].owns_listen_fd = true;
		if (i == 0) {
			len = sizeof(ss);
			getsockname(fd, (struct sockaddr *)&ss, &len);
			net_format_addr(&ss, len, bound, boundlen);
		}
	}
	return 0;
}

/* Socket activation: systemd passes listening sockets named by the units'
 * FileDescriptorName= ("main", "admin"); a single unnamed one is the main
 * listener. Taking them instead of binding lets a restart keep the port
 * open: connections queue in the kernel meanwhile. */
static void activated_sockets(int *main_fd, int *admin_fd)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			log_warn("activation_ignored", "fd=%d detail=\"not a listening stream socket\"", fd);
			continue;
		}
		const char *name = names ? names[i] : "";
		if (!strcmp(name, "admin"))
			*admin_fd = fd;
		else if (!strcmp(name, "main") || n == 1)
			*main_fd = fd;
		else
			log_warn("activation_ignored", "fd=%d name=%s", fd, name);
	}
	if (names) {
		for (int i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
}

/* Use one inherited listening socket for `count` workers. */
static void adopt_group(struct net_worker *ws, uint32_t count, int fd, char *bound, size_t boundlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	for (uint32_t i = 0; i < count; i++) {
		ws[i].listen_fd = fd;
		ws[i].owns_listen_fd = i == 0;
	}
	getsockname(fd, (struct sockaddr *)&ss, &len);
	net_format_addr(&ss, len, bound, boundlen);
	log_info("socket_activated", "addr=%s fd=%d", bound, fd);
}

int net_start(struct recd_server *srv, struct net_server **out, char *err, size_t errlen)
{
	const struct recd_config *cfg = &srv->cfg;
	bool admin = cfg->admin_listen[0] != 0;
	int r = 0;
	struct net_server *ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	ns->srv = srv;
	ns->n = srv->n_workers + (admin ? 1 : 0);
	/* Aligned: a worker embeds cache-line-aligned epoch records. */
	size_t wsize = ((ns->n * sizeof(*ns->workers)) + CACHELINE - 1) & ~(size_t)(CACHELINE - 1);
	size_t ssize = ns->n * sizeof(*srv->slots);
	ns->workers = aligned_alloc(CACHELINE, wsize);
	srv->slots = aligned_alloc(CACHELINE, ssize);
	if (!ns->workers || !srv->slots) {
		free(ns->workers);
		free(srv->slots);
		srv->slots = NULL;
		free(ns);
		return -ENOMEM;
	}
	memset(ns->workers, 0, wsize);
	memset(srv->slots, 0, ssize);
	srv->n_threads = ns->n;
	struct http_limits lim = {
		.max_request_line = (uint32_t)cfg->max_request_line,
		.max_headers = (uint32_t)cfg->max_headers,
		.max_header_bytes = (uint32_t)cfg->max_header_bytes,
		.max_body_bytes = (uint32_t)cfg->max_body_bytes,
	};
	for (uint32_t i = 0; i < ns->n; i++) {
		struct net_worker *w = &ns->workers[i];
		w->ns = ns;
		w->srv = srv;
		w->idx = i;
		w->admin = admin && i == srv->n_workers;
		w->listen_fd = -1;
		w->limits = lim;
		w->metrics = metrics_worker(i);
		w->slot = &srv->slots[i];
		w->tick.tv_sec = 0;
		w->tick.tv_nsec = (long long)NET_TICK_NS;
		w->wake_fd = eventfd(0, EFD_CLOEXEC);
		if (srv->updater && i < srv->updater->n_rings)
			srv->updater->rings[i].wake_fd = w->wake_fd;
		if (w->wake_fd < 0) {
			snprintf(err, errlen, "eventfd: %s", strerror(errno));
			goto fail;
		}
	}
	int act_main = -1, act_admin = -1;
	activated_sockets(&act_main, &act_admin);
	if (act_main >= 0)
		adopt_group(ns->workers, srv->n_workers, act_main, srv->bound_addr, sizeof(srv->bound_addr));
	else
		r = bind_group(ns->workers, srv->n_workers, cfg->listen, srv->bound_addr,
			       sizeof(srv->bound_addr), err, errlen);
	if (!r && admin) {
		struct net_worker *aw = &ns->workers[srv->n_workers];
		if (act_admin >= 0)
			adopt_group(aw, 1, act_admin, srv->bound_admin, sizeof(srv->bound_admin));
		else
			r = bind_group(aw, 1, cfg->admin_listen, srv->bound_admin, sizeof(srv->bound_admin), err,
				       errlen);
	}
	if (r)
		goto fail;

	pthread_barrier_init(&ns->started, NULL, ns->n + 1);
	for (uint32_t i = 0; i < ns->n; i++) {
		r = pthread_create(&ns->workers[i].thread, NULL, worker_main, &ns->workers[i]);
		if (r) {
			/* Cannot recover a half-started barrier cleanly: fatal. */
			snprintf(err, errlen, "pthread_create: %s", strerror(r));
			log_error("startup_failed", "err=\"%s\"", err);
			abort();
		}
		char name[16];
		snprintf(name, sizeof(name), ns->workers[i].admin ? "recd-admin" : "recd-w%u", i % 1000u); /* 15 chars max */
		pthread_setname_np(ns->workers[i].thread, name);
	}
	pthread_barrier_wait(&ns->started);
	pthread_barrier_destroy(&ns->started);
	for (uint32_t i = 0; i < ns->n; i++) {
		if (ns->workers[i].start_err) {
			snprintf(err, errlen, "worker %u: %s", i, ns->workers[i].start_msg);
			r = ns->workers[i].start_err;
			ck_pr_store_int(&srv->stopping, 1);
			net_begin_drain(ns);
			net_free(ns);
			return r;
		}
	}
	*out = ns;
	return 0;
fail:
	close_listeners(ns);
	free(ns->workers);
	free(srv->slots);
	srv->slots = NULL;
	free(ns);
	return r ? r : -EINVAL;
}

void net_begin_drain(struct net_server *ns)
{
	uint64_t one = 1;
	for (uint32_t i = 0; i < ns->n; i++)
		if (write(ns->workers[i].wake_fd, &one, sizeof(one)) < 0)
			log_warn("wake_failed", "worker=%u err=\"%s\"", i, strerror(errno));
}

void net_join(struct net_server *ns)
{
	for (uint32_t i = 0; i < ns->n; i++) {
		if (!ns->workers[i].joined)
			pthread_join(ns->workers[i].thread, NULL);
		ns->workers[i].joined = true;
	}
}

void net_free(struct net_server *ns)
{
	net_join(ns);
	close_listeners(ns);
	free(ns->workers);
	free(ns->srv->slots);
	ns->srv->slots = NULL;
	free(ns);
}
