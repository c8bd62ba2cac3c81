/* rb_serve.c: the tiny responder (see rb_serve.h). Requests are framed by
 * their head and Content-Length; pipelined requests are answered in order.
 */
#include "rb_serve.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SV_BUF 65536

struct sv_conn {
	int fd;
	size_t len;
	char buf[SV_BUF];
};

struct rb_serve {
	struct rb_serve_cfg cfg;
	int lfd, ep, wake[2];
	char *resp;
	size_t resp_len;
	atomic_uint_fast64_t answers;
	bool stalled;
	pthread_t tid;
};

uint64_t rb_serve_answers(const struct rb_serve *s)
{
	return atomic_load(&s->answers);
}

/* Length of the complete request at b, 0 if incomplete, -1 if bad. */
static long request_len(const char *b, size_t n)
{
	const char *end = memmem(b, n, "\r\n\r\n", 4);
	if (!end)
		return n >= SV_BUF ? -1 : 0;
	size_t head = (size_t)(end - b) + 4;
	long cl = 0;
	for (const char *p = memchr(b, '\n', head); p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
		p++;
		if (!strncasecmp(p, "content-length:", 15))
			cl = strtol(p + 15, NULL, 10);
	}
	if (cl < 0 || head + (size_t)cl > SV_BUF)
		return -1;
	return n >= head + (size_t)cl ? (long)(head + (size_t)cl) : 0;
}

static void sv_close(struct rb_serve *s, int fd, struct sv_conn *c)
{
	epoll_ctl(s->ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(c);
}

static void sv_read(struct rb_serve *s, int fd, struct sv_conn *c)
{
	for (;;) {
		ssize_t n = recv(fd, c->buf + c->len, SV_BUF - c->len, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			sv_close(s, fd, c);
			return;
		}
		if (n < 0)
			break;
		c->len += (size_t)n;
		long l;
		while ((l = request_len(c->buf, c->len)) > 0) {
			uint64_t a = atomic_fetch_add(&s->answers, 1) + 1;
			if (s->cfg.stall_after && a == s->cfg.stall_after && !s->stalled) {
				s->stalled = true;
				struct timespec ts = {s->cfg.stall_ms / 1000, (long)(s->cfg.stall_ms % 1000) * 1000000L};
				nanosleep(&ts, NULL);
			}
			/* answers are small: a full socket buffer means a broken client */
			if (send(fd, s->resp, s->resp_len, MSG_NOSIGNAL) != (ssize_t)s->resp_len) {
				sv_close(s, fd, c);
				return;
			}
			memmove(c->buf, c->buf + l, c->len - (size_t)l);
			c->len -= (size_t)l;
		}
		if (l < 0) {
			sv_close(s, fd, c);
			return;
		}
	}
}

static void *sv_main(void *arg)
{
	struct rb_serve *s = arg;
	if (s->cfg.cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET((unsigned)s->cfg.cpu, &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	struct epoll_event evs[128];
	for (;;) {
		int n = epoll_wait(s->ep, evs, 128, -1);
		for (int k = 0; k < n; k++) {
			void *p = evs[k].data.ptr;
			if (p == &s->wake)
				return NULL;
			if (p == &s->lfd) {
				int fd;
				while ((fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					int one = 1;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct sv_conn *c = malloc(sizeof(*c));
					if (!c) {
						close(fd);
						continue;
					}
					c->len = 0;
					c->fd = fd;
					struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
					epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			struct sv_conn *c = p;
			sv_read(s, c->fd, c);
		}
	}
}

int rb_serve_start(const struct rb_serve_cfg *cfg, struct rb_serve **out, int *port)
{
	struct rb_serve *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	/* the body: a JSON array padded to the size asked for */
	size_t bl = cfg->body_len < 16 ? 16 : cfg->body_len;
	s->resp = malloc(bl + 256);
	if (!s->resp) {
		free(s);
		return -ENOMEM;
	}
	int h = snprintf(s->resp, 256, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			 bl);
	memset(s->resp + h, ' ', bl);
	memcpy(s->resp + h, "{\"items\":[", 10);
	memcpy(s->resp + h + bl - 3, "]}\n", 3);
	s->resp_len = (size_t)h + bl;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(s->lfd, 1024) ||
	    getsockname(s->lfd, (struct sockaddr *)&a, &al)) {
		int e = -errno;
		if (s->lfd >= 0)
			close(s->lfd);
		free(s->resp);
		free(s);
		return e;
	}
	*port = ntohs(a.sin_port);
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	if (pipe2(s->wake, O_CLOEXEC) == 0) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->lfd};
		epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev);
		ev.data.ptr = &s->wake;
		epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake[0], &ev);
	}
	if (pthread_create(&s->tid, NULL, sv_main, s)) {
		close(s->lfd);
		close(s->ep);
		free(s->resp);
		free(s);
		return -EAGAIN;
	}
	*out = s;
	return 0;
}

void rb_serve_stop(struct rb_serve *s)
{
	if (!s)
		return;
	(void)!write(s->wake[1], "x", 1);
	pthread_join(s->tid, NULL);
	close(s->lfd);
	close(s->ep);
	close(s->wake[0]);
	close(s->wake[1]);
	free(s->resp);
	free(s);
}
