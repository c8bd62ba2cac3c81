/* rb_loop.h: the load loop. Threads, each with its own epoll set and
 * keep-alive connections, send requests and time the answers.
 *
 * Open loop (rate > 0): request k of a thread is *intended* at
 * start + k / rate_per_thread, whatever the server does. It goes out on
 * any free connection once due; when none is free it waits, and its
 * latency is still measured from the intended time. A server stall thus
 * shows up as the latency of every request that should have been sent
 * during it (coordinated omission corrected, the idea wrk2 introduced).
 * Closed loop (rate == 0): every connection sends its next request as soon
 * as the previous answer arrived; latency is measured from the send.
 *
 * Only 2xx answers enter the latency histograms; other statuses and
 * transport errors are counted apart.
 */
#ifndef RB_LOOP_H
#define RB_LOOP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include "rb_hist.h"
#include "rb_work.h"

struct rb_loop_cfg {
	struct sockaddr_in addr;
	unsigned threads;         /* >= 1 */
	unsigned conns;           /* total, spread over the threads */
	double rate;              /* requests/s over all threads; 0 = closed loop */
	double duration_s;        /* measured time */
	double warmup_s;          /* sent but not recorded, before the measured time */
	double drain_s;           /* after the end: wait this long for answers in flight */
	double timeout_s;         /* an answer slower than this is an error (the connection is reopened) */
	uint64_t max_requests;    /* 0 = bounded by time only */
	const struct rb_work *work;  /* NULL: send `fixed` every time */
	const char *fixed;
	size_t fixed_len;
	uint64_t seed;
	bool events;              /* event requests in the mix (turned off on a 404) */
	int cpu_first;            /* pin thread i to CPU cpu_first + i; -1 = no pinning */
};

struct rb_stats {
	uint64_t sent, done, ok;      /* ok = 2xx answers */
	uint64_t by_class[6];         /* answers by status class: [2] = 2xx ... [5] = 5xx */
	uint64_t events_skipped;      /* event requests answered 404: events turned off */
	uint64_t err_connect, err_write, err_read, err_closed, err_parse, err_timeout;
	uint64_t unsent;              /* open loop: due before the end but never sent */
	uint64_t unfinished;          /* still unanswered after the drain */
	uint64_t by_kind_ok[RB_KINDS];
	double elapsed_s;             /* measured time actually spent */
	double cpu_s;                 /* client CPU time (user + system) of all load threads */
	double cpu_wall_s;            /* wall time those threads ran (warm-up and drain included) */
	struct rb_hist lat;           /* all recorded 2xx latencies, ns */
	struct rb_hist kind[RB_KINDS];
	struct rb_hist send_lag;      /* open loop: actual send minus intended time (includes waiting for a free connection) */
	struct rb_hist wake_lag;      /* open loop: how late the loop woke for a due request: the generator's own health */
	unsigned seconds;             /* per_sec entries */
	struct rb_hist **per_sec;     /* by intended second of the measured time; NULL = none that second */
};

void rb_loop_defaults(struct rb_loop_cfg *c);

/* Run one load phase; fills *out (free with rb_stats_free). 0 or -errno. */
int rb_loop_run(const struct rb_loop_cfg *cfg, struct rb_stats *out);
void rb_stats_free(struct rb_stats *s);

uint64_t rb_now_ns(void);

#endif
