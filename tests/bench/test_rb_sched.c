/* test_rb_sched.c: the open-loop scheduler charges a server stall to every
 * request that should have been sent during it. A tiny in-test server
 * (bench/rb/rb_serve) answers at once except for one 200 ms stall; at
 * 1000 requests/s about 100 requests were due in the first half of the
 * stall, so about 100 latencies must be >= 100 ms, the worst about
 * 200 ms. The same stall under the closed loop touches only the requests
 * in flight (at most one per connection): the coordinated omission the
 * open loop corrects. All loops are bounded in time and count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rb/rb_loop.h"
#include "rb/rb_serve.h"

static int failures;
#define CHECK(c, ...)                                                   \
	do {                                                            \
		if (!(c)) {                                             \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                   \
			fputc('\n', stderr);                            \
			failures++;                                     \
		}                                                       \
	} while (0)

#define STALL_MS 200
static const char req[] = "GET /x HTTP/1.1\r\nHost: t\r\n\r\n";

static int run(double rate, unsigned conns, struct rb_stats *st)
{
	/* the stall comes after 300 answers: about 0.3 s into the open-loop run */
	struct rb_serve_cfg sc = {.body_len = 100, .stall_after = 300, .stall_ms = STALL_MS, .cpu = -1};
	struct rb_serve *srv;
	int port;
	if (rb_serve_start(&sc, &srv, &port)) {
		fprintf(stderr, "cannot start the test server\n");
		return 77;
	}
	struct rb_loop_cfg c;
	rb_loop_defaults(&c);
	c.addr.sin_port = htons((uint16_t)port);
	c.conns = conns;
	c.rate = rate;
	c.duration_s = 1.0;
	c.warmup_s = 0;
	c.timeout_s = 5;
	c.max_requests = 5000;
	c.fixed = req;
	c.fixed_len = strlen(req);
	int r = rb_loop_run(&c, st);
	uint64_t answers = rb_serve_answers(srv);
	rb_serve_stop(srv);
	if (r) {
		fprintf(stderr, "rb_loop_run: %s\n", strerror(-r));
		return 1;
	}
	CHECK(answers >= 300, "the server answered %llu, never stalled", (unsigned long long)answers);
	return 0;
}

int main(void)
{
	struct rb_stats st;
	int r = run(1000, 8, &st);
	if (r)
		return r;
	uint64_t slow = rb_hist_count_above(&st.lat, 100000000ull); /* >= 100 ms */
	uint64_t errs = st.err_connect + st.err_read + st.err_write + st.err_closed + st.err_parse + st.err_timeout;
	printf("open loop: %llu ok, %llu >= 100 ms, p99 %.1f ms, max %.1f ms, unsent %llu, errors %llu\n",
	       (unsigned long long)st.ok, (unsigned long long)slow, rb_hist_percentile(&st.lat, 99) / 1e6,
	       st.lat.max / 1e6, (unsigned long long)st.unsent, (unsigned long long)errs);
	CHECK(errs == 0, "errors");
	CHECK(st.ok >= 900 && st.ok <= 1010, "about 1000 requests in 1 s at 1000/s: %llu", (unsigned long long)st.ok);
	/* ~100 expected; the bounds leave room for a loaded test machine
	 * (a late scheduler only adds latency, so the lower bound is firm) */
	CHECK(slow >= 80 && slow <= 200, "requests >= 100 ms: %llu, expected about 100", (unsigned long long)slow);
	CHECK(st.lat.max >= 180000000ull && st.lat.max <= 400000000ull, "max %.1f ms, expected about %d",
	      st.lat.max / 1e6, STALL_MS);
	CHECK(rb_hist_percentile(&st.lat, 50) < 50000000ull, "the median is not the stall");
	uint64_t per_sec_total = 0;
	for (unsigned i = 0; i < st.seconds; i++)
		per_sec_total += st.per_sec[i] ? st.per_sec[i]->total : 0;
	CHECK(per_sec_total == st.lat.total, "per-second histograms add up (%llu vs %llu)",
	      (unsigned long long)per_sec_total, (unsigned long long)st.lat.total);
	rb_stats_free(&st);

	/* closed loop, same stall: only the 8 requests in flight see it */
	r = run(0, 8, &st);
	if (r)
		return r;
	slow = rb_hist_count_above(&st.lat, 100000000ull);
	printf("closed loop: %llu ok, %llu >= 100 ms, max %.1f ms\n", (unsigned long long)st.ok,
	       (unsigned long long)slow, st.lat.max / 1e6);
	CHECK(slow >= 1 && slow <= 8, "closed loop: %llu slow requests, expected at most one per connection",
	      (unsigned long long)slow);
	CHECK(st.ok <= 5000, "bounded by max_requests");
	rb_stats_free(&st);
	return failures ? 1 : 0;
}
