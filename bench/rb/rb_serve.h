/* rb_serve.h: a tiny HTTP/1.1 responder: one thread, epoll, a fixed
 * answer of a given body size to every request. It measures the load
 * generator's own ceiling (`recd-bench serve`) and, with a one-off stall,
 * lets the tests check the open-loop accounting.
 */
#ifndef RB_SERVE_H
#define RB_SERVE_H

#include <stddef.h>
#include <stdint.h>

struct rb_serve_cfg {
	int port;             /* 0 = ephemeral */
	size_t body_len;      /* bytes of JSON-ish body per answer */
	uint64_t stall_after; /* stall once when this many answers were sent (0 = never) */
	unsigned stall_ms;    /* for how long: the whole server stops */
	int cpu;              /* pin the server thread (-1 = no) */
};

struct rb_serve;

/* Listen on 127.0.0.1 and answer in a new thread; *port gets the port. */
int rb_serve_start(const struct rb_serve_cfg *cfg, struct rb_serve **out, int *port);
uint64_t rb_serve_answers(const struct rb_serve *s);
void rb_serve_stop(struct rb_serve *s);

#endif
