/* test_exp_ledger.c: the experiment ledger, with its real thread, on a
 * small real snapshot and an experiment set loaded from experiments.lua:
 *  - attribution by request_id (position, a list clicked once however many
 *    clicks), and without (the shopper's newest list within the window
 *    that showed the item; outside the window, another shopper's list, an
 *    item never shown, another shopper's request_id: not credited);
 *  - add-to-carts, purchases and revenue (the event's price, else the
 *    snapshot's);
 *  - a small capacity: old impressions forgotten, the bounded-probe
 *    indexes right for the recent ones while the ring wraps;
 *  - guardrails (fallback rate, error rate, p99 ratio) switching a variant
 *    off within a few ticks, and leaving a healthy one on;
 *  - Thompson allocation following clicked lists, with its floor;
 *  - two producers, the updater and a reader racing (what TSan checks):
 *    every impression counted or dropped, every outcome attributed or not;
 *  - latency buckets and quantiles;
 *  - the JSON report (parsed with the engine's parser) and the metrics
 *    agreeing with the counters.
 * ck_epoch never unlinks a record: every ledger, the server and every
 * record are static. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <ck_epoch.h>
#include <ck_pr.h>
#include "core/buf.h"
#include "core/srv.h"
#include "events/event.h"
#include "exp/exp.h"
#include "exp/exp_ledger.h"
#include "exp/exp_lua.h"
#include "exp/exp_report.h"
#include "json/json.h"
#include "snap/snapb.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

#define N_ITEMS 256
#define DIM 4

static struct recd_server srv;
static ck_epoch_record_t main_rec;
static ck_epoch_record_t reader_rec;
static struct exp_ledger led_attr, led_cap, led_wrap, led_guard, led_bandit, led_race, led_zero;
static struct snap *snap;
static char dir[] = "/tmp/recd-test-exp-ledger-XXXXXX";

/* Slots of the set's variants. */
static uint32_t s_ctl, s_b;                                   /* attr */
static uint32_t s_fctl, s_bad, s_same, s_empty;               /* guard_fb */
static uint32_t s_pctl, s_slow, s_peer;                       /* guard_p99 */
static uint32_t s_tctl, s_win;                                /* bandit */
static uint32_t s_rctl, s_rb, s_rshadow, s_rhold;             /* race */

static float price_of(uint32_t i)
{
	return 1.0f + 0.25f * (float)i;   /* exact in float and double */
}

/* ---------------------------------------------------------- builders */

/* A served list as api.c's impression_fill makes it. */
static struct exp_impression imp_of(const char *req, const char *user, uint32_t slot, const uint32_t *items,
				    uint32_t n, uint64_t ts)
{
	struct exp_impression imp;
	memset(&imp, 0, sizeof(imp));
	imp.request_key = req ? XXH3_64bits(req, strlen(req)) : 0;
	imp.user_key = user ? XXH3_64bits(user, strlen(user)) : 0;
	imp.ts_ms = ts;
	imp.snap_generation = srv.snapshot->generation;
	imp.slot = slot;
	imp.took_us = 800;
	imp.kind = EXP_IMP_SERVED;
	imp.flags = n ? 0 : EXP_IMP_EMPTY;
	imp.strategy = n ? 1 : 0;
	imp.tier = 0;
	memcpy(imp.placement, "home", 4);
	imp.placement_len = 4;
	imp.n = (uint8_t)(n < EXP_IMP_ITEMS ? n : EXP_IMP_ITEMS);
	for (uint32_t i = 0; i < imp.n; i++) {
		imp.items[i] = items[i];
		struct str id = snap_item_id(srv.snapshot, items[i]);
		imp.item_keys[i] = XXH3_64bits(id.p, id.len);
	}
	return imp;
}

/* Items first, first + 1, ... (n of them). */
static struct exp_impression imp_range(const char *req, const char *user, uint32_t slot, uint32_t first, uint32_t n,
				       uint64_t ts)
{
	uint32_t items[EXP_IMP_ITEMS];
	for (uint32_t i = 0; i < n && i < EXP_IMP_ITEMS; i++)
		items[i] = (first + i) % N_ITEMS;
	return imp_of(req, user, slot, items, n, ts);
}

/* An outcome as the HTTP endpoint makes it. */
static struct event ev_of(uint8_t type, const char *user, uint32_t item, const char *req, uint64_t ts)
{
	struct event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.ts_ms = ts;
	if (user) {
		ev.flags |= EVENT_HAS_USER;
		ev.user_len = (uint8_t)strlen(user);
		memcpy(ev.user_id, user, ev.user_len);
		ev.user_key = event_key(user, ev.user_len);
	}
	ev.flags |= EVENT_HAS_ITEM;
	struct str id = snap_item_id(srv.snapshot, item);
	ev.item_len = (uint8_t)id.len;
	memcpy(ev.item_id, id.p, id.len);
	ev.item_key = event_key(id.p, id.len);
	if (req) {
		ev.request_len = (uint8_t)strlen(req);
		memcpy(ev.request_id, req, ev.request_len);
	}
	return ev;
}

static struct exp_ledger_stats stats(const struct exp_ledger *l)
{
	struct exp_ledger_stats st;
	exp_ledger_stats_read(l, &st);
	return st;
}

static struct exp_counts counts(const struct exp_ledger *l, uint32_t slot)
{
	static struct exp_counts c;   /* big: off the stack */
	exp_ledger_counts_read(l, slot, &c);
	return c;
}

/* The main thread as worker 0 and as the updater: what it sent so far,
 * sentinels included. */
static uint64_t sent_imps[8], sent_outs[8], sentinels[8];
static int ledger_id(const struct exp_ledger *l)
{
	const struct exp_ledger *all[] = { &led_attr, &led_cap, &led_wrap, &led_guard, &led_bandit, &led_race, &led_zero };
	for (int i = 0; i < 7; i++)
		if (all[i] == l)
			return i;
	return 7;
}

/* Outcomes the ledger has finished classifying: each ends with exactly
 * one of by_request, by_window (some slot) or unattributed. */
static uint64_t classified(const struct exp_ledger *l)
{
	uint64_t n = stats(l).unattributed;
	for (uint32_t s = 0; s < exp_slot_count(); s++) {
		struct exp_counts c = counts(l, s);
		n += c.by_request + c.by_window;
	}
	return n;
}

/* Until the ledger has started every impression sent (true) or 5 s
 * passed: an outcome sent after that is taken after them. */
static bool started_all(struct exp_ledger *l)
{
	int id = ledger_id(l);
	for (int i = 0; i < 5000; i++) {
		if (stats(l).impressions == sent_imps[id])
			return true;
		usleep(1000);
	}
	fprintf(stderr, "ledger %d: impressions not taken\n", id);
	return false;
}

/* Until the ledger has finished everything sent (true) or 5 s passed.
 * Its counters move one by one (st.impressions and st.outcomes first), so
 * a sentinel goes last: a click of a shopper with no list, which ends
 * unattributed. Once every outcome, the sentinel included, is classified,
 * all work before it is done. unattr() leaves the sentinels out. */
static bool settle(struct exp_ledger *l)
{
	int id = ledger_id(l);
	if (!started_all(l))
		return false;
	struct event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = EVENT_CLICK;
	ev.flags = EVENT_HAS_USER | EVENT_HAS_ITEM;
	ev.user_key = event_key("~sentinel", 9);
	ev.item_key = event_key("it-0", 4);
	ev.ts_ms = now_wall_ms();
	exp_ledger_outcome(l, &ev);
	sent_outs[id]++;
	sentinels[id]++;
	for (int i = 0; i < 5000; i++) {
		if (stats(l).outcomes == sent_outs[id] && classified(l) == sent_outs[id])
			return true;
		usleep(1000);
	}
	fprintf(stderr, "ledger %d: not settled\n", id);
	return false;
}

static uint64_t unattr(const struct exp_ledger *l)
{
	return stats(l).unattributed - sentinels[ledger_id(l)];
}

static void put_imp(struct exp_ledger *l, struct exp_impression imp)
{
	exp_ledger_impression(l, 0, &imp);
	sent_imps[ledger_id(l)]++;
}

static void send_out(struct exp_ledger *l, struct event ev)
{
	exp_ledger_outcome(l, &ev);
	if (ev.type == EVENT_CLICK || ev.type == EVENT_ADD_TO_CART || ev.type == EVENT_PURCHASE)
		sent_outs[ledger_id(l)]++;
}

/* Impressions first (an outcome sent before its list is taken could be
 * dequeued first), then the outcome, finished. */
static void put_out(struct exp_ledger *l, struct event ev)
{
	CHECK(started_all(l));
	send_out(l, ev);
	CHECK(settle(l));
}

/* ThreadSanitizer cannot see ck's synchronisation (tests/stress/tsan.supp
 * says why). Three edges of the ledger rest on it: its rings publish a
 * slot with ck_pr_fence_store + ck_pr_store_uint(p_tail) and hand it back
 * with ck_pr_store_uint(c_head) (ck_ring SPSC); the quality views are
 * published under a ck_sequence (a seqlock reader overlaps the writer by
 * design and retries); a guardrail's reason is written before
 * ck_pr_store_32(disabled) and read after ck_pr_load_32 saw it set. Those
 * bytes, and only those, are declared benign, so TSan keeps checking
 * everything else the threads touch. (Ranges, not suppressions: a ring
 * sees thousands of slot copies, and every suppressed report costs a
 * symbolised stack.) Call right after exp_ledger_start. */
#if defined(__SANITIZE_THREAD__)
#define TSAN_ON 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_ON 1
#endif
#endif
#ifdef TSAN_ON
void AnnotateBenignRaceSized(const char *file, int line, const volatile void *mem, unsigned long size,
			     const char *desc);
#define BENIGN(p, n, why) AnnotateBenignRaceSized(__FILE__, __LINE__, (p), (unsigned long)(n), (why))
#else
#define BENIGN(p, n, why) ((void)(p), (void)(n), (void)(why))
#endif

static void tsan_ck_edges(struct exp_ledger *l)
{
	for (uint32_t w = 0; w < l->n_workers; w++)
		BENIGN(l->wr[w].buf, (size_t)l->o.ring_size * sizeof(*l->wr[w].buf), "ck_ring slots (impressions)");
	BENIGN(l->out_buf, (size_t)l->o.ring_size * sizeof(*l->out_buf), "ck_ring slots (outcomes)");
	BENIGN(l->views, sizeof(l->views), "ck_sequence (quality views)");
	BENIGN(l->view_keys, sizeof(l->view_keys), "ck_sequence (quality views)");
	BENIGN(l->pub_placements, sizeof(l->pub_placements), "ck_sequence (quality views)");
	for (uint32_t s = 0; s < exp_slot_count(); s++)
		BENIGN(l->counts[s].disabled_reason, sizeof(l->counts[s].disabled_reason), "disabled_reason (ck_pr)");
}

static int start(struct exp_ledger *l, uint32_t n_workers, const struct exp_ledger_opts *o)
{
	int rc = exp_ledger_start(l, &srv, n_workers, o);
	if (!rc)
		tsan_ck_edges(l);
	return rc;
}

static struct exp_ledger_opts opts(void)
{
	struct exp_ledger_opts o;
	exp_ledger_opts_default(&o);
	return o;
}

/* ------------------------------------------------------ attribution */

static uint64_t base_ms;

static void test_by_request(void)
{
	struct exp_ledger *l = &led_attr;
	uint64_t t = base_ms;
	/* r-1 (control) and r-2 (b), both u-1, both showing items 5..9. */
	put_imp(l, imp_range("r-1", "u-1", s_ctl, 0, 10, t));
	put_imp(l, imp_range("r-2", "u-1", s_b, 5, 10, t + 1000));
	CHECK(settle(l));
	struct exp_counts c = counts(l, s_ctl), b = counts(l, s_b);
	CHECK(c.lists == 1 && c.items == 10 && b.lists == 1 && b.items == 10);
	CHECK(c.latency[exp_latency_bucket(800)] == 1);

	/* Item 7 by r-1: r-1's list (control, position 7), though r-2 is newer. */
	put_out(l, ev_of(EVENT_CLICK, "u-1", 7, "r-1", t + 2000));
	c = counts(l, s_ctl);
	b = counts(l, s_b);
	CHECK(c.clicks == 1 && c.clicks_at[7] == 1 && c.clicked_lists == 1 && c.by_request == 1 && c.by_window == 0);
	CHECK(b.clicks == 0 && b.clicked_lists == 0);
	/* A second click on the same list: a click more, not a list more. */
	put_out(l, ev_of(EVENT_CLICK, "u-1", 3, "r-1", t + 3000));
	c = counts(l, s_ctl);
	CHECK(c.clicks == 2 && c.clicks_at[3] == 1 && c.clicks_at[7] == 1 && c.clicked_lists == 1 && c.by_request == 2);
	/* The same item again: clicks_at[7] moves, still one clicked list. */
	put_out(l, ev_of(EVENT_CLICK, "u-1", 7, "r-1", t + 3500));
	c = counts(l, s_ctl);
	CHECK(c.clicks == 3 && c.clicks_at[7] == 2 && c.clicked_lists == 1 && c.by_request == 3);
	/* r-1 did not list item 12: the window finds r-2 (position 7). */
	put_out(l, ev_of(EVENT_CLICK, "u-1", 12, "r-1", t + 4000));
	c = counts(l, s_ctl);
	b = counts(l, s_b);
	CHECK(c.clicks == 3 && c.by_request == 3);
	CHECK(b.clicks == 1 && b.clicks_at[7] == 1 && b.clicked_lists == 1 && b.by_window == 1 && b.by_request == 0);
	/* An anonymous event with r-2's request id: credited by request. */
	struct event anon = ev_of(EVENT_CLICK, NULL, 6, "r-2", t + 4500);
	put_out(l, anon);
	b = counts(l, s_b);
	CHECK(b.clicks == 2 && b.clicks_at[1] == 1 && b.clicked_lists == 1 && b.by_request == 1);
	/* Not outcomes: ignored, not even counted. */
	uint64_t outs = stats(l).outcomes;
	struct event view = ev_of(EVENT_VIEW, "u-1", 7, "r-1", t + 4600);
	exp_ledger_outcome(l, &view);
	struct event noitem = ev_of(EVENT_CLICK, "u-1", 7, "r-1", t + 4600);
	noitem.flags &= (uint16_t)~EVENT_HAS_ITEM;
	exp_ledger_outcome(l, &noitem);
	put_out(l, ev_of(EVENT_CLICK, "u-1", 8, "r-1", t + 4700));   /* a real one after them */
	CHECK(stats(l).outcomes == outs + 2);   /* the click and settle()'s sentinel */
	c = counts(l, s_ctl);
	CHECK(c.clicks == 4 && c.clicks_at[8] == 1 && c.by_request == 4);
	/* Outside any experiment: counted as an impression, in no slot. */
	uint64_t imps = stats(l).impressions;
	put_imp(l, imp_range("r-none", "u-1", EXP_NO_SLOT, 100, 5, t + 5000));
	CHECK(settle(l));
	CHECK(stats(l).impressions == imps + 1);
	CHECK(counts(l, s_ctl).lists == 1 && counts(l, s_b).lists == 1);
	uint64_t un = unattr(l);
	put_out(l, ev_of(EVENT_CLICK, "u-1", 100, "r-none", t + 5100));   /* such a list is not kept */
	CHECK(unattr(l) == un + 1);
}

static void test_by_window(void)
{
	struct exp_ledger *l = &led_attr;   /* window_s = 60 */
	uint64_t t = base_ms + 100000;
	/* u-2: w-1 (control, items 20..29), then w-2 (b, items 25..34). */
	put_imp(l, imp_range("w-1", "u-2", s_ctl, 20, 10, t));
	put_imp(l, imp_range("w-2", "u-2", s_b, 25, 10, t + 10000));
	/* u-4: its own list of items 40..44 and 26. */
	uint32_t x[] = { 40, 41, 42, 43, 44, 26 };
	put_imp(l, imp_of("x-1", "u-4", s_ctl, x, 6, t + 11000));
	CHECK(settle(l));
	struct exp_counts c0 = counts(l, s_ctl), b0 = counts(l, s_b);
	uint64_t un0 = unattr(l);

	/* Item 26 without request id: the newest list that showed it (w-2). */
	put_out(l, ev_of(EVENT_CLICK, "u-2", 26, NULL, t + 20000));
	struct exp_counts c = counts(l, s_ctl), b = counts(l, s_b);
	CHECK(b.clicks == b0.clicks + 1 && b.clicks_at[1] == b0.clicks_at[1] + 1 && b.by_window == b0.by_window + 1);
	CHECK(b.clicked_lists == b0.clicked_lists + 1);
	CHECK(c.clicks == c0.clicks);   /* w-1 also showed it: older, not credited; x-1 is u-4's */
	/* Item 22: only w-1 showed it (older, within the window). */
	put_out(l, ev_of(EVENT_CLICK, "u-2", 22, NULL, t + 20000));
	c = counts(l, s_ctl);
	CHECK(c.clicks == c0.clicks + 1 && c.clicks_at[2] == c0.clicks_at[2] + 1 && c.by_window == c0.by_window + 1);
	CHECK(c.clicked_lists == c0.clicked_lists + 1);
	CHECK(unattr(l) == un0);
	/* Just inside the window of w-2 (60 s after it): still credited. */
	put_out(l, ev_of(EVENT_CLICK, "u-2", 27, NULL, t + 10000 + 60000));
	b = counts(l, s_b);
	CHECK(b.clicks == b0.clicks + 2 && b.clicks_at[2] == b0.clicks_at[2] + 1);
	CHECK(unattr(l) == un0);
	/* Outside the window of both: unattributed. */
	put_out(l, ev_of(EVENT_CLICK, "u-2", 27, NULL, t + 10000 + 60001));
	CHECK(unattr(l) == un0 + 1);
	/* Item 22 when w-1 is out of the window and w-2 is in: w-2 did not
	 * list it, w-1 is too old. */
	put_out(l, ev_of(EVENT_CLICK, "u-2", 22, NULL, t + 65000));
	CHECK(unattr(l) == un0 + 2);
	/* Another shopper: u-3 has no list; u-2's lists are never credited. */
	put_out(l, ev_of(EVENT_CLICK, "u-3", 26, NULL, t + 20000));
	CHECK(unattr(l) == un0 + 3);
	/* An item u-2 was never shown. */
	put_out(l, ev_of(EVENT_CLICK, "u-2", 45, NULL, t + 20000));
	CHECK(unattr(l) == un0 + 4);
	/* u-4's request id on an event of u-2: not credited to u-4's list,
	 * whether or not u-2 was shown the item... */
	put_out(l, ev_of(EVENT_CLICK, "u-2", 41, "x-1", t + 20000));
	CHECK(unattr(l) == un0 + 5);
	/* ... and when u-2's own list within the window showed it, that one. */
	put_out(l, ev_of(EVENT_CLICK, "u-2", 26, "x-1", t + 20000));
	c = counts(l, s_ctl);
	b = counts(l, s_b);
	CHECK(b.clicks == b0.clicks + 3 && b.clicks_at[1] == b0.clicks_at[1] + 2 && b.by_window == b0.by_window + 3);
	CHECK(b.by_request == b0.by_request);
	CHECK(c.clicks == c0.clicks + 1 && c.by_request == c0.by_request);   /* x-1 never credited */
	CHECK(unattr(l) == un0 + 5);
	/* u-4 itself with its request id: credited by request. */
	put_out(l, ev_of(EVENT_CLICK, "u-4", 26, "x-1", t + 20000));
	c = counts(l, s_ctl);
	CHECK(c.clicks == c0.clicks + 2 && c.clicks_at[5] == c0.clicks_at[5] + 1 && c.by_request == c0.by_request + 1);
	/* A request id nobody served, from a shopper without lists. */
	put_out(l, ev_of(EVENT_CLICK, "u-9", 26, "nope", t + 20000));
	CHECK(unattr(l) == un0 + 6);
}

static void test_revenue(void)
{
	struct exp_ledger *l = &led_attr;
	uint64_t t = base_ms + 300000;
	put_imp(l, imp_range("p-1", "u-5", s_b, 60, 8, t));
	CHECK(settle(l));
	struct exp_counts b0 = counts(l, s_b);
	/* Add to cart twice on the same list: one carted list. */
	put_out(l, ev_of(EVENT_ADD_TO_CART, "u-5", 61, "p-1", t + 100));
	put_out(l, ev_of(EVENT_ADD_TO_CART, "u-5", 62, NULL, t + 200));
	struct exp_counts b = counts(l, s_b);
	CHECK(b.add_to_carts == b0.add_to_carts + 2 && b.carted_lists == b0.carted_lists + 1);
	CHECK(b.clicks == b0.clicks && b.purchases == b0.purchases);
	/* A purchase with its price. */
	struct event buy = ev_of(EVENT_PURCHASE, "u-5", 61, "p-1", t + 300);
	buy.flags |= EVENT_HAS_PRICE;
	buy.price = 12.5f;
	put_out(l, buy);
	b = counts(l, s_b);
	CHECK(b.purchases == b0.purchases + 1 && b.converted_lists == b0.converted_lists + 1);
	CHECK(b.revenue == b0.revenue + 12.5);
	/* Without a price: the snapshot's (item 63: 16.75). */
	put_out(l, ev_of(EVENT_PURCHASE, "u-5", 63, NULL, t + 400));
	b = counts(l, s_b);
	CHECK(b.purchases == b0.purchases + 2 && b.converted_lists == b0.converted_lists + 1);
	CHECK(b.revenue == b0.revenue + 12.5 + (double)price_of(63));
	CHECK(snap->item_price[63] == price_of(63));
	/* A price of 0 adds nothing; a negative one neither. */
	buy = ev_of(EVENT_PURCHASE, "u-5", 64, "p-1", t + 500);
	buy.flags |= EVENT_HAS_PRICE;
	buy.price = -3;
	put_out(l, buy);
	b = counts(l, s_b);
	CHECK(b.purchases == b0.purchases + 3 && b.revenue == b0.revenue + 12.5 + (double)price_of(63));
	/* An unattributed purchase adds no revenue anywhere. */
	double rc = counts(l, s_ctl).revenue;
	put_out(l, ev_of(EVENT_PURCHASE, "u-5", 200, NULL, t + 600));
	CHECK(counts(l, s_b).revenue == b.revenue && counts(l, s_ctl).revenue == rc);
}

/* --------------------------------------------------------- capacity */

/* 64 kept: the request ids of older lists no longer attribute; the recent
 * ones all do, by request and by window. */
static void test_capacity(void)
{
	struct exp_ledger *l = &led_cap;
	struct exp_ledger_opts o = opts();
	o.capacity = 64;
	o.ring_size = 256;
	CHECK(start(l, 1, &o) == 0);
	uint64_t t = base_ms;
	char req[32], user[32];
	const uint32_t N = 5000;
	for (uint32_t i = 0; i < N; i++) {
		snprintf(req, sizeof(req), "c-%u", i);
		snprintf(user, sizeof(user), "cu-%u", i % 37);
		put_imp(l, imp_range(req, user, s_ctl, i % N_ITEMS, 1, t + i));
		if (i % 128 == 127)
			CHECK(settle(l));   /* the ring holds 255 */
	}
	CHECK(settle(l));
	CHECK(counts(l, s_ctl).lists == N);
	CHECK(stats(l).dropped == 0);
	/* Forgotten: request ids of lists more than 64 back. Their shoppers'
	 * recent lists show other items (within 256 of them, items are unique). */
	uint64_t un0 = unattr(l);
	uint32_t forgotten[] = { 0, 1, 100, N - 200, N - 65 };
	for (size_t k = 0; k < ARRAY_SIZE(forgotten); k++) {
		uint32_t i = forgotten[k];
		snprintf(req, sizeof(req), "c-%u", i);
		snprintf(user, sizeof(user), "cu-%u", i % 37);
		put_out(l, ev_of(EVENT_CLICK, user, i % N_ITEMS, req, t + N));
	}
	CHECK(unattr(l) == un0 + ARRAY_SIZE(forgotten));
	/* The last 64, by request id. */
	struct exp_counts c0 = counts(l, s_ctl);
	for (uint32_t i = N - 64; i < N; i++) {
		snprintf(req, sizeof(req), "c-%u", i);
		snprintf(user, sizeof(user), "cu-%u", i % 37);
		put_out(l, ev_of(EVENT_CLICK, user, i % N_ITEMS, req, t + N));
	}
	struct exp_counts c = counts(l, s_ctl);
	CHECK(c.by_request == c0.by_request + 64 && c.clicks_at[0] == c0.clicks_at[0] + 64);
	CHECK(c.clicked_lists == c0.clicked_lists + 64);
	CHECK(unattr(l) == un0 + ARRAY_SIZE(forgotten));
	/* And without: each shopper's chain of lists, newest to oldest. */
	c0 = c;
	for (uint32_t i = N - 64; i < N; i++) {
		snprintf(user, sizeof(user), "cu-%u", i % 37);
		put_out(l, ev_of(EVENT_ADD_TO_CART, user, i % N_ITEMS, NULL, t + N));
	}
	c = counts(l, s_ctl);
	CHECK(c.by_window == c0.by_window + 64 && c.carted_lists == c0.carted_lists + 64);
	CHECK(unattr(l) == un0 + ARRAY_SIZE(forgotten));
	exp_ledger_stop(l);
}

/* The ring wrapping under 48 shoppers whose index entries share probe
 * runs: every 31 lists, each of the 64 kept lists is found through its
 * shopper's chain of lists (by window; its item is on no other kept list).
 * A list must be linked to its shopper's previous one before its slot is
 * overwritten: the evicted list counts as live until the head moves, and
 * an index entry still pointing at it would then match the new shopper
 * and cut the chain (9 lists lost here when it was done the other way). */
static void test_wrap(void)
{
	struct exp_ledger *l = &led_wrap;
	struct exp_ledger_opts o = opts();
	o.capacity = 64;
	o.ring_size = 256;
	CHECK(start(l, 1, &o) == 0);
	uint64_t t = base_ms, rng = 0x2545f4914f6cdd1dull;
	char user[32];
	static uint32_t who[1u << 16];   /* position -> shopper */
	const uint32_t N = 10000;
	uint64_t lost = 0, checked = 0;
	for (uint32_t p = 0; p < N; p++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		who[p] = (uint32_t)(rng % 48);
		snprintf(user, sizeof(user), "wu-%u", who[p]);
		/* Item p % 256: unique among the 64 kept. */
		put_imp(l, imp_range(NULL, user, s_ctl, p % N_ITEMS, 1, t + p));
		if (p >= 64 && p % 31 == 0) {
			CHECK(settle(l));
			uint64_t un0 = unattr(l);
			for (uint32_t q = p - 63; q <= p; q++) {
				snprintf(user, sizeof(user), "wu-%u", who[q]);
				send_out(l, ev_of(EVENT_CLICK, user, q % N_ITEMS, NULL, t + p));
				checked++;
			}
			CHECK(settle(l));
			lost += unattr(l) - un0;
		}
	}
	if (lost)
		fprintf(stderr, "wrap: %llu of %llu kept lists not found through their shopper\n",
			(unsigned long long)lost, (unsigned long long)checked);
	CHECK(lost == 0 && checked > 20000);
	exp_ledger_stop(l);
}

/* ------------------------------------------------------ JSON helpers */

static struct json_tok toks[16384];   /* the main thread's */

/* Doubles in the report are printed with 6 significant digits. */
static bool near6(double got, double want)
{
	return fabs(got - want) <= 5e-6 * fabs(want) + 1e-12;
}

static bool tok_eq(const char *s, int t, const char *lit)
{
	return t >= 0 && toks[t].type == JSON_STRING && toks[t].len == strlen(lit) &&
	       !memcmp(s + toks[t].start, lit, toks[t].len);
}

static double num(const char *s, int obj, const char *key)
{
	int t = obj >= 0 ? json_obj_get(s, toks, obj, key) : -1;
	double d = NAN;
	if (t < 0 || json_get_double(s, &toks[t], &d))
		return NAN;
	return d;
}

static int find_named(const char *s, int arr, const char *name)
{
	for (uint32_t i = 0; arr >= 0 && i < toks[arr].count; i++) {
		int e = json_array_at(toks, arr, i);
		if (tok_eq(s, json_obj_get(s, toks, e, "name"), name))
			return e;
	}
	return -1;
}

/* ------------------------------------------------------- guardrails */

static bool wait_disabled(uint32_t slot, int ms)
{
	for (int i = 0; i < ms; i += 10) {
		if (ck_pr_load_32(&exp_slots[slot].disabled))
			return true;
		usleep(10000);
	}
	return false;
}

static void test_guardrails(void)
{
	struct exp_ledger *l = &led_guard;
	CHECK(start(l, 1, NULL) == 0);
	uint64_t t = now_wall_ms();
	char req[32];
	/* Control and `same`: 1 list in 10 a fallback, interleaved so every
	 * prefix has about the same rate. Control 1 ms, `peer` 1.5 ms, `slow` 10 ms. */
	for (uint32_t i = 0; i < 60; i++) {
		const uint32_t sl[] = { s_fctl, s_same, s_pctl, s_peer };
		for (uint32_t k = 0; k < 4; k++) {
			snprintf(req, sizeof(req), "g-%u-%u", k, i);
			struct exp_impression imp = imp_range(req, "gu", sl[k], i, 10, t);
			if (k < 2 && i % 10 == 3)
				imp.flags |= EXP_IMP_FALLBACK;
			imp.took_us = k == 3 ? 1500 : 1000;
			put_imp(l, imp);
		}
	}
	CHECK(settle(l));
	for (uint32_t i = 0; i < 60; i++) {
		snprintf(req, sizeof(req), "gb-%u", i);
		struct exp_impression imp = imp_range(req, "gu", s_bad, i, 10, t);
		imp.flags |= EXP_IMP_FALLBACK;
		imp.took_us = 1000;
		put_imp(l, imp);
		snprintf(req, sizeof(req), "ge-%u", i);
		imp = imp_range(req, "gu", s_empty, 0, 0, t);
		imp.took_us = 1000;
		put_imp(l, imp);
		snprintf(req, sizeof(req), "gs-%u", i);
		imp = imp_range(req, "gu", s_slow, i, 10, t);
		imp.took_us = 10000;
		put_imp(l, imp);
	}
	CHECK(settle(l));
	CHECK(counts(l, s_bad).fallbacks == 60 && counts(l, s_fctl).fallbacks == 6 && counts(l, s_same).fallbacks == 6);
	CHECK(counts(l, s_empty).errors == 60 && counts(l, s_empty).items == 0);
	CHECK(wait_disabled(s_bad, 5000));
	CHECK(wait_disabled(s_empty, 5000));
	CHECK(wait_disabled(s_slow, 5000));
	usleep(1500 * 1000);   /* another tick over the same figures */
	CHECK(!ck_pr_load_32(&exp_slots[s_same].disabled));
	CHECK(!ck_pr_load_32(&exp_slots[s_peer].disabled));
	CHECK(!ck_pr_load_32(&exp_slots[s_fctl].disabled) && !ck_pr_load_32(&exp_slots[s_pctl].disabled));
	struct exp_counts c = counts(l, s_bad);
	CHECK(strstr(c.disabled_reason, "fallback rate") != NULL);
	if (!strstr(c.disabled_reason, "fallback rate"))
		fprintf(stderr, "bad: reason \"%s\"\n", c.disabled_reason);
	c = counts(l, s_empty);
	CHECK(strstr(c.disabled_reason, "error rate") != NULL);
	c = counts(l, s_slow);
	CHECK(strstr(c.disabled_reason, "p99") != NULL);
	if (!strstr(c.disabled_reason, "p99"))
		fprintf(stderr, "slow: reason \"%s\"\n", c.disabled_reason);
	CHECK(counts(l, s_same).disabled_reason[0] == 0);
	CHECK(exp_ledger_latency_quantile(l, s_slow, 0.99) > 2 * exp_ledger_latency_quantile(l, s_pctl, 0.99));
	CHECK(exp_ledger_latency_quantile(l, s_peer, 0.99) <= 2 * exp_ledger_latency_quantile(l, s_pctl, 0.99));

	/* Shoppers assigned `bad` get control, flagged. */
	ck_epoch_begin(&main_rec, NULL);
	const struct exp_set *set = exp_set_current();
	uint32_t x = 1;   /* guard_fb */
	CHECK(set && !strcmp(set->e[x].name, "guard_fb"));
	bool seen = false;
	char id[32];
	for (int u = 0; set && u < 10000 && !seen; u++) {
		int n = snprintf(id, sizeof(id), "shopper-%d", u);
		struct exp_pick p;
		if (exp_assign(set, id, (size_t)n, NULL, 0, &p) && p.experiment == x &&
		    set->e[x].v[p.assigned].slot == s_bad) {
			seen = true;
			CHECK(p.flags & EXP_PICK_GUARDED);
			CHECK(p.slot == s_fctl && !strcmp(exp_pick_variant_name(set, &p), "control"));
		}
	}
	CHECK(seen);
	/* The report says so. */
	struct buf b;
	CHECK(buf_init(&b, 4096) == 0);
	exp_report_json(l, &b);
	exp_report_metrics(l, &b);
	ck_epoch_end(&main_rec, NULL);
	buf_putc(&b, 0);
	CHECK(strstr(b.data, "\"disabled\":true,\"disabled_reason\":\"fallback rate") != NULL);
	CHECK(strstr(b.data, "recd_experiment_variant_disabled{experiment=\"guard_fb\",variant=\"bad\"} 1\n") != NULL);
	CHECK(strstr(b.data, "recd_experiment_variant_disabled{experiment=\"guard_fb\",variant=\"same\"} 0\n") != NULL);
	CHECK(strstr(b.data, "recd_experiment_fallbacks_total{experiment=\"guard_fb\",variant=\"bad\"} 60\n") != NULL);
	buf_free(&b);
	exp_ledger_stop(l);
}

/* --------------------------------------------------------- Thompson */

static void test_thompson(void)
{
	struct exp_ledger *l = &led_bandit;
	CHECK(start(l, 1, NULL) == 0);
	uint64_t t = now_wall_ms();
	char req[32], user[32];
	/* 200 lists each; control clicked 20 times, winner 100 times. */
	for (uint32_t i = 0; i < 200; i++) {
		snprintf(user, sizeof(user), "tu-%u", i);
		snprintf(req, sizeof(req), "tc-%u", i);
		put_imp(l, imp_range(req, user, s_tctl, i, 5, t));
		snprintf(req, sizeof(req), "tw-%u", i);
		put_imp(l, imp_range(req, user, s_win, i + 1, 5, t));
	}
	CHECK(settle(l));
	for (uint32_t i = 0; i < 200; i++) {
		snprintf(user, sizeof(user), "tu-%u", i);
		if (i % 10 == 0) {
			snprintf(req, sizeof(req), "tc-%u", i);
			send_out(l, ev_of(EVENT_CLICK, user, i, req, t + 10));
		}
		if (i % 2 == 0) {
			snprintf(req, sizeof(req), "tw-%u", i);
			send_out(l, ev_of(EVENT_CLICK, user, i + 1, req, t + 10));
		}
	}
	CHECK(settle(l));
	CHECK(counts(l, s_tctl).clicked_lists == 20 && counts(l, s_win).clicked_lists == 100);
	/* Within a few ticks after the clicks. */
	uint32_t a = 0, w = 0;
	for (int i = 0; i < 500; i++) {
		a = ck_pr_load_32(&exp_slots[s_tctl].alloc_bp);
		w = ck_pr_load_32(&exp_slots[s_win].alloc_bp);
		if (w > 8000)
			break;
		usleep(10000);
	}
	/* A tick may have run before the clicks were in: wait for one more. */
	usleep(1100 * 1000);
	a = ck_pr_load_32(&exp_slots[s_tctl].alloc_bp);
	w = ck_pr_load_32(&exp_slots[s_win].alloc_bp);
	if (!(w > 8000 && a >= 1000))
		fprintf(stderr, "thompson: control %u bp, winner %u bp\n", a, w);
	CHECK(w > 8000 && w <= 9000);
	CHECK(a >= 1000 && a < 2000);
	CHECK(a + w >= 9998 && a + w <= 10002);
	/* The workers' split follows: about 10% of shoppers on control. */
	ck_epoch_begin(&main_rec, NULL);
	const struct exp_set *set = exp_set_current();
	uint32_t on_ctl = 0, in = 0;
	char id[32];
	for (int u = 0; set && u < 20000; u++) {
		int n = snprintf(id, sizeof(id), "bandit-%d", u);
		struct exp_pick p;
		if (exp_assign(set, id, (size_t)n, NULL, 0, &p) && p.experiment == 3) {
			in++;
			on_ctl += p.slot == s_tctl;
		}
	}
	/* The report shows the shares. */
	struct buf b;
	CHECK(buf_init(&b, 4096) == 0);
	exp_report_json(l, &b);
	ck_epoch_end(&main_rec, NULL);
	struct json_err jerr;
	int e = -1, vars = -1;
	if (json_parse(b.data, b.len, toks, ARRAY_SIZE(toks), &jerr) > 0)
		e = find_named(b.data, json_obj_get(b.data, toks, 0, "experiments"), "bandit");
	CHECK(e >= 0 && tok_eq(b.data, json_obj_get(b.data, toks, e, "allocation"), "thompson"));
	if (e >= 0)
		vars = json_obj_get(b.data, toks, e, "variants");
	CHECK(fabs(num(b.data, find_named(b.data, vars, "winner"), "allocation") - w / 10000.0) < 0.01);
	CHECK(fabs(num(b.data, find_named(b.data, vars, "control"), "allocation") - a / 10000.0) < 0.01);
	buf_free(&b);
	/* The experiments declared before take part of the shoppers. */
	CHECK(in > 5000);
	if (in)
		CHECK(fabs((double)on_ctl / in - a / 10000.0) < 0.03);
	exp_ledger_stop(l);
}

/* ------------------------------------------------------ concurrency */

#define RACE_PER_WORKER 20000u
#define RACE_OUTCOMES 20000u

static uint32_t progress[2];     /* __atomic: lists recorded per worker */
static uint64_t race_sent[2];    /* records (lists and shadow lists) per worker */
static int all_done;
static uint64_t reader_rounds, reader_bad_json;

static void race_names(uint32_t w, uint32_t i, char *req, char *user)
{
	snprintf(req, 32, "w%u-r%u", w, i);
	snprintf(user, 32, "w%u-u%u", w, i % 100);
}

static void *producer(void *arg)
{
	uint32_t w = (uint32_t)(uintptr_t)arg;
	char req[32], user[32];
	uint64_t t = base_ms, dropped = 0;
	for (uint32_t i = 0; i < RACE_PER_WORKER; i++) {
		race_names(w, i, req, user);
		uint32_t slot = i % 7 == 0 ? s_rhold : (i % 2 ? s_rb : s_rctl);
		struct exp_impression imp = imp_range(req, user, slot, (i * 3 + w) % N_ITEMS, 1 + i % 12, t + i);
		imp.took_us = 100 + i % 5000;
		if (i % 5 == 0) {
			/* The shadow list of the same request. */
			struct exp_impression sh = imp;
			sh.kind = EXP_IMP_SHADOW;
			sh.slot = s_rshadow;
			sh.request_key = 0;
			sh.overlap = (uint8_t)(sh.n / 2);
			exp_ledger_impression(&led_race, w, &imp);
			exp_ledger_impression(&led_race, w, &sh);
			race_sent[w] += 2;
		} else {
			exp_ledger_impression(&led_race, w, &imp);
			race_sent[w]++;
		}
		__atomic_store_n(&progress[w], i + 1, __ATOMIC_RELEASE);
		/* A busy worker's pace, not a flood; a full ring (a drop, this
		 * worker's own counter) makes it wait for the ledger a little. */
		uint64_t d = ck_pr_load_64(&led_race.wr[w].dropped);
		if (i % 256 == 255 || d != dropped) {
			dropped = d;
			usleep(1000);
		}
	}
	return NULL;
}

static void *updater(void *arg)
{
	(void)arg;
	char req[32], user[32];
	uint64_t rng = 0x9e3779b97f4a7c15ull, dropped = 0;
	for (uint32_t k = 0; k < RACE_OUTCOMES; k++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		uint32_t w = (uint32_t)(rng & 1);
		uint32_t done = __atomic_load_n(&progress[w], __ATOMIC_ACQUIRE);
		uint32_t i = done ? (uint32_t)((rng >> 8) % done) : 0;
		race_names(w, i, req, user);
		uint8_t type = k % 10 == 0 ? EVENT_PURCHASE : k % 4 == 0 ? EVENT_ADD_TO_CART : EVENT_CLICK;
		struct event ev = ev_of(type, user, (i * 3 + w + (uint32_t)(rng >> 40) % 3) % N_ITEMS,
					k % 3 ? req : NULL, base_ms + i + 5);
		if (type == EVENT_PURCHASE && k % 20 == 0) {
			ev.flags |= EVENT_HAS_PRICE;
			ev.price = 2.5f;
		}
		exp_ledger_outcome(&led_race, &ev);
		uint64_t d = ck_pr_load_64(&led_race.out_dropped);
		if (k % 128 == 127 || d != dropped) {
			dropped = d;
			usleep(1000);
		}
	}
	return NULL;
}

static void *reader(void *arg)
{
	(void)arg;
	static struct json_tok rtoks[16384];   /* the reader's */
	struct buf b;
	if (buf_init(&b, 1 << 16))
		return NULL;
	uint64_t rounds = 0, bad = 0;
	while (rounds < 100000 && (!__atomic_load_n(&all_done, __ATOMIC_ACQUIRE) || rounds < 5)) {
		ck_epoch_begin(&reader_rec, NULL);
		buf_reset(&b);
		exp_report_json(&led_race, &b);
		struct json_err jerr;
		if (json_parse(b.data, b.len, rtoks, ARRAY_SIZE(rtoks), &jerr) < 1)
			bad++;
		buf_reset(&b);
		exp_report_metrics(&led_race, &b);
		buf_reset(&b);
		exp_report_quality_json(&led_race, &b);
		if (json_parse(b.data, b.len, rtoks, ARRAY_SIZE(rtoks), &jerr) < 1)
			bad++;
		struct exp_counts c;
		exp_ledger_counts_read(&led_race, s_rctl, &c);
		exp_ledger_counts_read(&led_race, s_rb, &c);
		(void)exp_ledger_latency_quantile(&led_race, s_rb, 0.99);
		struct exp_ledger_stats st;
		exp_ledger_stats_read(&led_race, &st);
		ck_epoch_end(&reader_rec, NULL);
		rounds++;
		usleep(500);
	}
	buf_free(&b);
	reader_rounds = rounds;
	reader_bad_json = bad;
	return NULL;
}

static void test_race(void)
{
	struct exp_ledger *l = &led_race;
	struct exp_ledger_opts o = opts();
	o.ring_size = 1024;
	CHECK(start(l, 2, &o) == 0);
	ck_epoch_register(&srv.epoch, &reader_rec, NULL);
	pthread_t pt[2], ut, rt;
	CHECK(pthread_create(&rt, NULL, reader, NULL) == 0);
	CHECK(pthread_create(&pt[0], NULL, producer, (void *)(uintptr_t)0) == 0);
	CHECK(pthread_create(&pt[1], NULL, producer, (void *)(uintptr_t)1) == 0);
	CHECK(pthread_create(&ut, NULL, updater, NULL) == 0);
	pthread_join(pt[0], NULL);
	pthread_join(pt[1], NULL);
	pthread_join(ut, NULL);
	/* Until everything sent is taken or dropped (drops are published
	 * once a tick). */
	const uint64_t total = race_sent[0] + race_sent[1];   /* after the joins */
	struct exp_ledger_stats st = { 0 };
	for (int i = 0; i < 10000; i++) {
		st = stats(l);
		if (st.impressions + st.dropped == total && st.outcomes + st.outcomes_dropped == RACE_OUTCOMES)
			break;
		usleep(1000);
	}
	__atomic_store_n(&all_done, 1, __ATOMIC_RELEASE);
	pthread_join(rt, NULL);
	CHECK(st.impressions + st.dropped == total);
	CHECK(st.outcomes + st.outcomes_dropped == RACE_OUTCOMES);
	/* The rings are empty; the last outcome may still be in progress:
	 * the main thread, now the only producer, sends the sentinel. */
	int id = ledger_id(l);
	sent_imps[id] = st.impressions;
	sent_outs[id] = st.outcomes;
	CHECK(settle(l));
	st = stats(l);
	CHECK(st.outcomes + st.outcomes_dropped == RACE_OUTCOMES + 1);
	CHECK(st.impressions > 0 && st.outcomes > 0);
	struct exp_counts c[4];
	const uint32_t sl[4] = { s_rctl, s_rb, s_rhold, s_rshadow };
	uint64_t lists = 0, shadows = 0, attributed = 0, clicks = 0;
	for (int k = 0; k < 4; k++) {
		c[k] = counts(l, sl[k]);
		lists += c[k].lists;
		shadows += c[k].shadow_lists;
		attributed += c[k].by_request + c[k].by_window;
		clicks += c[k].clicks;
		CHECK(c[k].clicked_lists <= c[k].lists && c[k].converted_lists <= c[k].lists);
		uint64_t at = 0;
		for (uint32_t p = 0; p < EXP_POSITIONS; p++)
			at += c[k].clicks_at[p];
		CHECK(at == c[k].clicks);
		CHECK(c[k].clicks + c[k].add_to_carts + c[k].purchases == c[k].by_request + c[k].by_window);
	}
	CHECK(lists + shadows == total - st.dropped);
	CHECK(lists + shadows == st.impressions);
	CHECK(c[3].lists == 0 && c[3].shadow_lists > 0 && c[3].clicks == 0);
	CHECK(attributed + st.unattributed == st.outcomes);
	CHECK(attributed > 0 && clicks > 0);
	CHECK(reader_rounds >= 5 && reader_bad_json == 0);
	fprintf(stderr, "race: %llu impressions (%llu dropped), %llu outcomes (%llu dropped, %llu unattributed), "
		"%llu reader rounds\n", (unsigned long long)st.impressions, (unsigned long long)st.dropped,
		(unsigned long long)st.outcomes, (unsigned long long)st.outcomes_dropped,
		(unsigned long long)st.unattributed, (unsigned long long)reader_rounds);
	exp_ledger_stop(l);
}

/* -------------------------------------------------- latency buckets */

static void test_latency(void)
{
	uint32_t prev = 0;
	for (uint64_t x = 0; x < (1ull << 25); x = x < 4096 ? x + 1 : x + x / 97 + 1) {
		uint32_t b = exp_latency_bucket(x);
		CHECK(b < EXP_LAT_BUCKETS && b >= prev);
		CHECK(exp_latency_bucket_upper(b) > x);
		CHECK(b == 0 || exp_latency_bucket_upper(b - 1) <= x);   /* the tightest bound */
		if (b < prev || exp_latency_bucket_upper(b) <= x) {
			fprintf(stderr, "latency %llu: bucket %u upper %llu\n", (unsigned long long)x, b,
				(unsigned long long)exp_latency_bucket_upper(b));
			break;
		}
		prev = b;
	}
	for (uint32_t b = 1; b < EXP_LAT_BUCKETS; b++)
		CHECK(exp_latency_bucket_upper(b) > exp_latency_bucket_upper(b - 1));
	CHECK(exp_latency_bucket(0) == 0 && exp_latency_bucket(3) == 3 && exp_latency_bucket(4) == 4);
	CHECK(exp_latency_bucket(UINT64_MAX) == EXP_LAT_BUCKETS - 1);

	/* A known histogram on a ledger that never ran. */
	struct exp_ledger *l = &led_zero;
	CHECK(exp_ledger_latency_quantile(l, 0, 0.5) == 0);   /* no data */
	CHECK(exp_ledger_latency_quantile(l, EXP_MAX_SLOTS, 0.5) == 0);
	l->counts[0].latency[exp_latency_bucket(100)] = 90;
	l->counts[0].latency[exp_latency_bucket(1000)] = 9;
	l->counts[0].latency[exp_latency_bucket(50000)] = 1;
	uint64_t u100 = exp_latency_bucket_upper(exp_latency_bucket(100));
	uint64_t u1000 = exp_latency_bucket_upper(exp_latency_bucket(1000));
	uint64_t u50k = exp_latency_bucket_upper(exp_latency_bucket(50000));
	CHECK(u100 == 112 && u1000 == 1024 && u50k == 57344);
	CHECK(exp_ledger_latency_quantile(l, 0, 0) == u100);
	CHECK(exp_ledger_latency_quantile(l, 0, 0.5) == u100);
	CHECK(exp_ledger_latency_quantile(l, 0, 0.9) == u100);
	CHECK(exp_ledger_latency_quantile(l, 0, 0.91) == u1000);
	CHECK(exp_ledger_latency_quantile(l, 0, 0.99) == u1000);
	CHECK(exp_ledger_latency_quantile(l, 0, 0.995) == u50k);
	CHECK(exp_ledger_latency_quantile(l, 0, 1) == u50k);
	memset(l->counts[0].latency, 0, sizeof(l->counts[0].latency));
}

/* ----------------------------------------------------- JSON report */

static void check_variant_json(const char *s, int v, const struct exp_counts *c)
{
	CHECK(v >= 0);
	if (v < 0)
		return;
	CHECK(num(s, v, "impressions") == (double)c->lists);
	CHECK(num(s, v, "items_shown") == (double)c->items);
	CHECK(num(s, v, "clicks") == (double)c->clicks);
	CHECK(num(s, v, "add_to_carts") == (double)c->add_to_carts);
	CHECK(num(s, v, "purchases") == (double)c->purchases);
	CHECK(num(s, v, "clicked_lists") == (double)c->clicked_lists);
	CHECK(num(s, v, "attributed_by_request_id") == (double)c->by_request);
	CHECK(num(s, v, "attributed_by_window") == (double)c->by_window);
	CHECK(near6(num(s, v, "revenue"), c->revenue));
	int ctr = json_obj_get(s, toks, v, "ctr");
	double want = c->lists ? (double)c->clicked_lists / (double)c->lists : 0;
	CHECK(near6(num(s, ctr, "value"), want));
	CHECK(num(s, ctr, "lo") <= want && num(s, ctr, "hi") >= want);
	int conv = json_obj_get(s, toks, v, "conversion");
	CHECK(near6(num(s, conv, "value"), c->lists ? (double)c->converted_lists / (double)c->lists : 0));
	int pos = json_obj_get(s, toks, v, "clicks_by_position");
	CHECK(pos >= 0 && toks[pos].type == JSON_ARRAY && toks[pos].count == EXP_POSITIONS);
	for (uint32_t i = 0; pos >= 0 && i < EXP_POSITIONS; i++) {
		int64_t n = -1;
		CHECK(json_get_i64(s, &toks[json_array_at(toks, pos, i)], &n) == 0 && (uint64_t)n == c->clicks_at[i]);
	}
}

static void test_report(void)
{
	struct exp_ledger *l = &led_attr;
	struct buf b;
	CHECK(buf_init(&b, 4096) == 0);
	ck_epoch_begin(&main_rec, NULL);
	exp_report_json(l, &b);
	ck_epoch_end(&main_rec, NULL);
	const char *s = b.data;
	struct json_err jerr = { 0 };
	int n = json_parse(s, b.len, toks, ARRAY_SIZE(toks), &jerr);
	CHECK(n > 1);
	if (n < 1) {
		fprintf(stderr, "report: %s at %u: %.*s\n", jerr.msg, jerr.offset, (int)b.len, s);
		buf_free(&b);
		return;
	}
	int exps = json_obj_get(s, toks, 0, "experiments");
	CHECK(exps >= 0 && toks[exps].type == JSON_ARRAY && toks[exps].count == 5);
	int e = find_named(s, exps, "attr");
	CHECK(e >= 0);
	CHECK(tok_eq(s, json_obj_get(s, toks, e, "control"), "control"));
	CHECK(tok_eq(s, json_obj_get(s, toks, e, "allocation"), "fixed"));
	int vars = json_obj_get(s, toks, e, "variants");
	CHECK(vars >= 0 && toks[vars].count == 2);
	struct exp_counts c = counts(l, s_ctl), bb = counts(l, s_b);
	CHECK(c.clicked_lists > 0 && bb.clicked_lists > 0 && bb.purchases > 0 && bb.revenue > 0);
	int vc = find_named(s, vars, "control"), vb = find_named(s, vars, "b");
	check_variant_json(s, vc, &c);
	check_variant_json(s, vb, &bb);
	/* b against control: the z-test's difference of CTRs. */
	int vs = vb >= 0 ? json_obj_get(s, toks, vb, "ctr_vs_control") : -1;
	CHECK(vs >= 0 && vc >= 0 && json_obj_get(s, toks, vc, "ctr_vs_control") < 0);
	CHECK(near6(num(s, vs, "diff"), (double)bb.clicked_lists / bb.lists - (double)c.clicked_lists / c.lists));
	CHECK(near6(num(s, e, "baseline_ctr"), (double)c.clicked_lists / c.lists));
	/* The other experiments name their variants too. */
	int r = find_named(s, exps, "race");
	int rv = r >= 0 ? json_obj_get(s, toks, r, "variants") : -1;
	CHECK(rv >= 0 && toks[rv].count == 4);   /* control, b, shadow, holdout */
	CHECK(find_named(s, rv, "shadow") >= 0 && find_named(s, rv, "holdout") >= 0);
	CHECK(find_named(s, exps, "bandit") >= 0 && find_named(s, exps, "guard_fb") >= 0 &&
	      find_named(s, exps, "guard_p99") >= 0);
	int ledger = json_obj_get(s, toks, 0, "ledger");
	struct exp_ledger_stats st = stats(l);
	CHECK(num(s, ledger, "impressions") == (double)st.impressions);
	CHECK(num(s, ledger, "outcomes") == (double)st.outcomes);
	CHECK(num(s, ledger, "unattributed") == (double)st.unattributed);
	CHECK(num(s, ledger, "attribution_window_s") == 60);

	/* Metrics: the same counters. */
	buf_reset(&b);
	ck_epoch_begin(&main_rec, NULL);
	exp_report_metrics(l, &b);
	ck_epoch_end(&main_rec, NULL);
	buf_putc(&b, 0);
	char line[256];
	snprintf(line, sizeof(line), "recd_experiment_clicks_total{experiment=\"attr\",variant=\"b\"} %llu\n",
		 (unsigned long long)bb.clicks);
	CHECK(strstr(b.data, line) != NULL);
	snprintf(line, sizeof(line), "recd_experiment_impressions_total{experiment=\"attr\",variant=\"control\"} %llu\n",
		 (unsigned long long)c.lists);
	CHECK(strstr(b.data, line) != NULL);
	snprintf(line, sizeof(line), "recd_experiment_unattributed_total %llu\n", (unsigned long long)st.unattributed);
	CHECK(strstr(b.data, line) != NULL);

	/* Quality: parses, and after a tick has the "home" placement. */
	bool home = false;
	for (int i = 0; i < 300 && !home; i++) {
		buf_reset(&b);
		exp_report_quality_json(l, &b);
		n = json_parse(b.data, b.len, toks, ARRAY_SIZE(toks), &jerr);
		CHECK(n >= 1);
		if (n < 1)
			break;
		int cells = json_obj_get(b.data, toks, 0, "cells");
		for (uint32_t k = 0; cells >= 0 && k < toks[cells].count; k++) {
			int cell = json_array_at(toks, cells, k);
			if (tok_eq(b.data, json_obj_get(b.data, toks, cell, "placement"), "home") &&
			    tok_eq(b.data, json_obj_get(b.data, toks, cell, "experiment"), "attr"))
				home = true;
		}
		if (!home)
			usleep(10000);
	}
	CHECK(home);
	buf_free(&b);
}

/* -------------------------------------------------------------- main */

static const char *experiments_lua =
	"return {\n"
	"  { name = 'attr', exposure = 0.2, variants = { { name = 'control' }, { name = 'b' } } },\n"
	"  { name = 'guard_fb', exposure = 0.3, guardrails = { fallback_rate = 0.2, min_requests = 20 },\n"
	"    variants = { { name = 'control' }, { name = 'bad' }, { name = 'same' }, { name = 'empty' } } },\n"
	"  { name = 'guard_p99', exposure = 0.3, guardrails = { p99_ratio = 2, min_requests = 20 },\n"
	"    variants = { { name = 'control' }, { name = 'slow' }, { name = 'peer' } } },\n"
	"  { name = 'bandit', allocation = 'thompson', floor = 0.1,\n"
	"    variants = { { name = 'control', weight = 50 }, { name = 'winner', weight = 50 } } },\n"
	"  { name = 'race', holdout = 0.1,\n"
	"    variants = { { name = 'control' }, { name = 'b' }, { name = 'shadow', shadow = true } } },\n"
	"}\n";

static struct snap *build_snap(void)
{
	static struct snapb_item items[N_ITEMS];
	static char ids[N_ITEMS][16];
	static float emb[N_ITEMS * DIM], pop[N_ITEMS];
	for (uint32_t i = 0; i < N_ITEMS; i++) {
		snprintf(ids[i], sizeof(ids[i]), "it-%u", i);
		items[i] = (struct snapb_item){ ids[i], "", i % 3 ? "a" : "b", price_of(i), 10, true };
		for (int d = 0; d < DIM; d++)
			emb[i * DIM + d] = (float)((i * 31 + (uint32_t)d * 17) % 13) / 13.0f - 0.5f;
		pop[i] = (float)((i * 7) % N_ITEMS);
	}
	struct snapb_input in = { .model_version = "ledger", .dim = DIM, .n_items = N_ITEMS, .items = items,
				  .item_emb = emb, .item_popularity = pop };
	char path[] = "/tmp/recd-test-exp-ledger-snap-XXXXXX", err[256];
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	close(fd);
	struct snap *s = NULL;
	if (snapb_write(&in, path, err, sizeof(err)) || snap_open(path, &s, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		s = NULL;
	}
	unlink(path);
	return s;
}

static uint32_t slot_of(const struct exp_set *set, const char *e, const char *v)
{
	for (uint32_t x = 0; x < set->n; x++) {
		if (strcmp(set->e[x].name, e))
			continue;
		if (!strcmp(v, "holdout"))
			return set->e[x].holdout_slot;
		for (uint32_t i = 0; i < set->e[x].n_variants; i++)
			if (!strcmp(set->e[x].v[i].name, v))
				return set->e[x].v[i].slot;
	}
	return EXP_NO_SLOT;
}

int main(void)
{
	snap = build_snap();
	if (!snap)
		return 1;
	snap->generation = 7;
	ck_epoch_init(&srv.epoch);
	srv.snapshot = snap;
	ck_epoch_register(&srv.epoch, &main_rec, NULL);

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	char path[256], err[512];
	snprintf(path, sizeof(path), "%s/experiments.lua", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return 1;
	fputs(experiments_lua, f);
	fclose(f);
	struct exp_set *set = NULL;
	int rc = exp_lua_load(dir, "plugins", NULL, NULL, &set, err, sizeof(err));
	unlink(path);
	rmdir(dir);
	CHECK(rc == 0 && set && set->n == 5);
	if (rc || !set) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	s_ctl = slot_of(set, "attr", "control");
	s_b = slot_of(set, "attr", "b");
	s_fctl = slot_of(set, "guard_fb", "control");
	s_bad = slot_of(set, "guard_fb", "bad");
	s_same = slot_of(set, "guard_fb", "same");
	s_empty = slot_of(set, "guard_fb", "empty");
	s_pctl = slot_of(set, "guard_p99", "control");
	s_slow = slot_of(set, "guard_p99", "slow");
	s_peer = slot_of(set, "guard_p99", "peer");
	s_tctl = slot_of(set, "bandit", "control");
	s_win = slot_of(set, "bandit", "winner");
	s_rctl = slot_of(set, "race", "control");
	s_rb = slot_of(set, "race", "b");
	s_rshadow = slot_of(set, "race", "shadow");
	s_rhold = slot_of(set, "race", "holdout");
	CHECK(s_rhold != EXP_NO_SLOT && s_rshadow != EXP_NO_SLOT && s_win != EXP_NO_SLOT);
	CHECK(set->e[1].guard.fallback_rate == 0.2 && set->e[1].guard.min_requests == 20);
	CHECK(set->e[2].guard.p99_ratio == 2 && set->e[3].thompson && set->e[3].thompson_floor == 0.1);
	set->generation = 3;
	CHECK(exp_set_publish(set) == NULL);

	/* Refused options; a ledger never started takes nothing. */
	struct exp_ledger_opts o = opts();
	o.capacity = 100;
	CHECK(exp_ledger_start(&led_zero, &srv, 1, &o) == -EINVAL);
	o = opts();
	o.ring_size = 1000;
	CHECK(exp_ledger_start(&led_zero, &srv, 1, &o) == -EINVAL);
	struct exp_impression imp = imp_range("z", "z", s_ctl, 0, 3, 1);
	exp_ledger_impression(&led_zero, 0, &imp);
	exp_ledger_impression(NULL, 0, &imp);
	struct event ev = ev_of(EVENT_CLICK, "z", 0, "z", 1);
	exp_ledger_outcome(&led_zero, &ev);
	exp_ledger_outcome(NULL, &ev);
	CHECK(stats(&led_zero).impressions == 0 && stats(&led_zero).outcomes == 0);

	test_latency();

	base_ms = now_wall_ms();
	o = opts();
	o.window_s = 60;
	CHECK(start(&led_attr, 1, &o) == 0);
	exp_ledger_impression(&led_attr, 1, &imp);   /* no such worker: ignored */
	test_by_request();
	test_by_window();
	test_revenue();
	test_report();
	exp_ledger_stop(&led_attr);
	/* Stopped: counters stay readable, nothing is taken. */
	exp_ledger_impression(&led_attr, 0, &imp);
	CHECK(stats(&led_attr).impressions == sent_imps[0]);

	test_capacity();
	test_wrap();
	test_guardrails();
	test_thompson();
	test_race();

	ck_epoch_barrier(&main_rec);
	for (struct exp_set *x = exp_set_take_all(), *next; x; x = next) {
		next = x->prev;
		free(x);
	}
	snap_close(snap);
	if (failures)
		fprintf(stderr, "test_exp_ledger: %d failure(s)\n", failures);
	return failures ? 1 : 0;
}
