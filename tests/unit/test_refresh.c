/* test_refresh.c: background candidate refresh: lists against an exact
 * reference of the blended query on a small real snapshot (no ANN index,
 * so the search is exact), the neighbour tail, the purchased and blocked
 * filters, coalescing, forgetting, the size bound, swaps, the fold-in
 * query (modes cold, all and off, set as a settings reload does; the Gram
 * matrix summed again after a swap) against a reference solved here on
 * the same Gram matrix, one refresh thread
 * publishing while two readers look lists up (under ASan a reader touching
 * a freed list is caught), and the wiring through a real updater with a
 * clean shutdown. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include "core/cfg.h"
#include "events/event.h"
#include "live/foldin.h"
#include "live/live.h"
#include "live/refresh.h"
#include "live/updater.h"
#include "snap/snapb.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

#define N_ITEMS 400
#define N_USERS 30
#define DIM 12
#define NBR_K 8
#define T0 1700000000000ull
#define INTERVAL_MS 20u

/* ck_epoch never unlinks a record: every record (and every struct that
 * holds one: refresh, updater) is static, never on a thread's stack. */
static struct recd_server srv;
static ck_epoch_record_t wrec;        /* the main thread: live writer and reader */
static ck_epoch_record_t reader_recs[2];
static struct live lv;
static struct refresh rf;             /* the main instance */
static struct refresh rf_race;
static struct refresh rf_zero;
static struct updater upd;

static uint64_t K(const char *id)
{
	return event_key(id, strlen(id));
}

static uint64_t ts_next = T0;

static struct event mk(uint8_t type, const char *user, const char *item)
{
	struct event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.ts_ms = ts_next++;
	if (user) {
		ev.flags |= EVENT_HAS_USER;
		ev.user_key = K(user);
	}
	if (item) {
		ev.flags |= EVENT_HAS_ITEM;
		ev.item_key = K(item);
	}
	return ev;
}

static const char *item_name(uint32_t i)
{
	static char buf[8][16];
	static unsigned at;
	char *b = buf[at++ % 8];
	snprintf(b, 16, "it-%u", i);
	return b;
}

/* What the updater's apply_one does, with the main thread as updater. */
static void feed(struct refresh *r, const struct snap *s, struct event ev)
{
	static unsigned n;
	CHECK(live_apply(&lv, &ev, s) == 0);
	if (ev.flags & EVENT_HAS_USER) {
		if (ev.type == EVENT_FORGET_USER || (ev.flags & EVENT_NO_PERSONALIZE))
			refresh_forget(r, ev.user_key);
		else if (refresh_event_wanted(ev.type))
			refresh_request(r, ev.user_key);
	}
	if (++n % 256 == 0)
		ck_epoch_poll(&wrec);
}

static struct refresh_stats stats(const struct refresh *r)
{
	struct refresh_stats st;
	refresh_stats_read(r, &st);
	return st;
}

/* Until the user's list is fresh for the live record (true) or the time
 * runs out. */
static bool wait_fresh(struct refresh *r, struct live *l, const struct snap *s, uint64_t key)
{
	for (int i = 0; i < 5000; i++) {
		ck_epoch_begin(&wrec, NULL);
		bool fresh = refresh_list_fresh(refresh_get(r, key), s, live_user_get(l, key));
		ck_epoch_end(&wrec, NULL);
		if (fresh)
			return true;
		ck_epoch_poll(&wrec);
		usleep(1000);
	}
	return false;
}

static bool wait_gone(struct refresh *r, uint64_t key)
{
	for (int i = 0; i < 5000; i++) {
		ck_epoch_begin(&wrec, NULL);
		bool gone = refresh_get(r, key) == NULL;
		ck_epoch_end(&wrec, NULL);
		if (gone)
			return true;
		usleep(1000);
	}
	return false;
}

static bool wait_idle(struct refresh *r)
{
	for (int i = 0; i < 5000; i++) {
		struct refresh_stats st = stats(r);
		if (!st.pending && !ck_ring_size(&r->ring))
			return true;
		usleep(1000);
	}
	return false;
}

/* ------------------------------------------------------ the reference */

static uint64_t item_key(const struct snap *s, uint32_t i)
{
	struct str id = snap_item_id(s, i);
	return XXH3_64bits(id.p, id.len);
}

static bool ref_keep(const struct snap *s, const struct live_user *lu, uint32_t i)
{
	uint64_t k = item_key(s, i);
	return snap_item_servable(s, i) && !live_user_purchased(lu, k) && !live_item_blocked(live_item_get(&lv, k));
}

/* The blend, in double: 0.5/0.5 of the normalised snapshot embedding and
 * session vector, or whichever exists. false: neither. */
static bool blend(const struct snap *s, const char *user, const struct live_user *lu, double *q)
{
	int64_t u = snap_user_find(s, user, strlen(user));
	const float *uv = u >= 0 ? snap_user_vec(s, (uint32_t)u) : NULL;
	const float *sv = lu && lu->session_weight > 0 ? lu->session : NULL;
	double nu = 0, ns = 0;
	for (uint32_t d = 0; d < s->dim; d++) {
		nu += uv ? (double)uv[d] * uv[d] : 0;
		ns += sv ? (double)sv[d] * sv[d] : 0;
	}
	nu = sqrt(nu);
	ns = sqrt(ns);
	if (!uv && !sv)
		return false;
	double wu = uv ? (sv ? 0.5 : 1.0) : 0, ws = sv ? (uv ? 0.5 : 1.0) : 0;
	for (uint32_t d = 0; d < s->dim; d++)
		q[d] = (uv ? wu * uv[d] / nu : 0) + (sv ? ws * sv[d] / ns : 0);
	return true;
}

static double dot(const struct snap *s, const double *q, uint32_t i)
{
	const float *v = snap_item_vec(s, i);
	double a = 0;
	for (uint32_t d = 0; d < s->dim; d++)
		a += q[d] * v[d];
	return a;
}

struct scored {
	uint32_t item;
	double score;
};

static int cmp_scored(const void *a, const void *b)
{
	const struct scored *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

/* Exact top of the eligible items by the blend; returns how many are
 * eligible, ref[] sorted best first. */
static uint32_t reference(const struct snap *s, const struct live_user *lu, const double *q, struct scored *ref)
{
	uint32_t m = 0;
	for (uint32_t i = 0; i < s->n_items; i++)
		if (ref_keep(s, lu, i))
			ref[m++] = (struct scored){ i, dot(s, q, i) };
	qsort(ref, m, sizeof(*ref), cmp_scored);
	return m;
}

/* The search part equals the exact top-k (order up to float near-ties). */
static void check_search(const struct snap *s, const struct refresh_list *l, const struct live_user *lu,
			 const double *q, uint32_t k)
{
	static struct scored ref[N_ITEMS];
	uint32_t m = reference(s, lu, q, ref);
	CHECK(l->n_search == MIN(k, m));
	for (uint32_t j = 0; j < l->n_search && j < m; j++) {
		uint32_t it = l->items[j].item;
		CHECK(it < s->n_items);
		if (it >= s->n_items)
			return;
		if (it != ref[j].item && fabs(dot(s, q, it) - ref[j].score) > 1e-5) {
			fprintf(stderr, "rank %u: item %u (%.6f), reference %u (%.6f)\n", j, it, dot(s, q, it),
				ref[j].item, ref[j].score);
			failures++;
			return;
		}
		CHECK(fabs(l->items[j].score - ref[j].score) < 1e-4);
		CHECK(ref_keep(s, lu, it));
	}
}

/* The tail: the seeds' neighbour rows round-robin by rank, filtered and
 * without repeats, scored below the search part and decreasing. */
static void check_tail(const struct snap *s, const struct refresh_list *l, const struct live_user *lu)
{
	uint32_t seeds[REFRESH_SEEDS], n_seeds = 0;
	for (uint32_t i = 0; i < lu->n_recent && n_seeds < REFRESH_SEEDS; i++) {
		int64_t idx = snap_item_find_key(s, lu->recent[i].item_key);
		bool dup = false;
		for (uint32_t j = 0; j < n_seeds; j++)
			dup |= seeds[j] == (uint32_t)idx;
		if (idx >= 0 && !dup)
			seeds[n_seeds++] = (uint32_t)idx;
	}
	static bool taken[N_ITEMS];
	memset(taken, 0, sizeof(taken));
	for (uint32_t j = 0; j < l->n_search; j++)
		taken[l->items[j].item] = true;
	for (uint32_t i = 0; i < n_seeds; i++)
		taken[seeds[i]] = true;
	uint32_t want[REFRESH_NEIGHBORS], n_want = 0;
	for (uint32_t j = 0; j < s->neighbors_k && n_want < REFRESH_NEIGHBORS; j++)
		for (uint32_t i = 0; i < n_seeds && n_want < REFRESH_NEIGHBORS; i++) {
			uint32_t it = snap_item_neighbors(s, seeds[i])[j].item;
			if (it == SNAP_EMPTY_SLOT || it >= s->n_items || taken[it])
				continue;
			taken[it] = true;
			if (ref_keep(s, lu, it))
				want[n_want++] = it;
		}
	CHECK(l->n - l->n_search == n_want);
	for (uint32_t j = 0; j < n_want && l->n_search + j < l->n; j++) {
		uint32_t at = l->n_search + j;
		CHECK(l->items[at].item == want[j]);
		CHECK(at == 0 || l->items[at].score < l->items[at - 1].score);
	}
}

/* ---------------------------------------------------------- scenarios */

static void test_api_edges(const struct snap *s)
{
	refresh_stop(&rf_zero);   /* zeroed: nothing to do */
	refresh_stop(&rf_zero);
	refresh_request(&rf_zero, 5);
	refresh_forget(&rf_zero, 5);
	CHECK(refresh_get(&rf_zero, 5) == NULL);
	struct refresh_opts o;
	refresh_opts_default(&o);
	CHECK(o.k == REFRESH_K && o.min_interval_ms == REFRESH_MIN_INTERVAL_MS);
	o.ring_size = 1000;   /* not a power of two: refused before anything is set up */
	CHECK(refresh_start(&rf_zero, &srv, &lv, &o) == -EINVAL);
	refresh_opts_default(&o);
	o.k = 0;
	CHECK(refresh_start(&rf_zero, &srv, &lv, &o) == -EINVAL);
	refresh_opts_default(&o);
	CHECK(o.foldin == REFRESH_FOLDIN_CONFIG && o.foldin_params.prior == REFRESH_FOLDIN_PRIOR &&
	      o.foldin_params.lambda == foldin_default_params.lambda);
	o.foldin = REFRESH_FOLDIN_ALL + 1;
	CHECK(refresh_start(&rf_zero, &srv, &lv, &o) == -EINVAL);
	o.foldin = REFRESH_FOLDIN_COLD;
	o.foldin_params.lambda = NAN;
	CHECK(refresh_start(&rf_zero, &srv, &lv, &o) == -EINVAL);
	refresh_stop(&rf_zero);
	CHECK(!refresh_list_fresh(NULL, s, NULL));
}

static void test_lists(const struct snap *s)
{
	/* u-3: a snapshot embedding and a session. */
	uint64_t u3 = K("u-3");
	feed(&rf, s, mk(EVENT_VIEW, "u-3", "it-10"));
	feed(&rf, s, mk(EVENT_CLICK, "u-3", "it-20"));
	feed(&rf, s, mk(EVENT_ADD_TO_CART, "u-3", "it-30"));
	/* Choose a purchase and a blocked item among the best for this user,
	 * so the filters have something to do. */
	static struct scored ref[N_ITEMS];
	double q[DIM];
	ck_epoch_begin(&wrec, NULL);
	CHECK(blend(s, "u-3", live_user_get(&lv, u3), q));
	uint32_t m = reference(s, live_user_get(&lv, u3), q, ref);
	ck_epoch_end(&wrec, NULL);
	CHECK(m > 300);
	uint32_t bought = ref[0].item, blocked = ref[1].item, last = 40;
	while (last == bought || last == blocked)
		last++;
	feed(&rf, s, mk(EVENT_PURCHASE, "u-3", item_name(bought)));
	struct event up = mk(EVENT_ITEM_UPDATE, NULL, item_name(blocked));
	up.flags |= EVENT_HAS_STOCK;
	up.stock = 0;
	feed(&rf, s, up);   /* not an interaction: no request of its own */
	feed(&rf, s, mk(EVENT_VIEW, "u-3", item_name(last)));
	CHECK(wait_fresh(&rf, &lv, s, u3));
	ck_epoch_begin(&wrec, NULL);
	const struct refresh_list *l = refresh_get(&rf, u3);
	const struct live_user *lu = live_user_get(&lv, u3);
	CHECK(l && lu && refresh_list_fresh(l, s, lu));
	if (l && lu) {
		CHECK(l->user_key == u3 && l->snap_generation == 1 && l->interactions == 5);
		CHECK(l->computed_ms > 0 && l->version > 0 && l->n_search == REFRESH_K);
		CHECK(blend(s, "u-3", lu, q));
		check_search(s, l, lu, q, REFRESH_K);
		check_tail(s, l, lu);
		for (uint32_t j = 0; j < l->n; j++) {
			CHECK(l->items[j].item != bought && l->items[j].item != blocked);
			CHECK(j == 0 || l->items[j].score <= l->items[j - 1].score);
		}
		fprintf(stderr, "u-3: %u items (%u searched, %u neighbours)\n", l->n, l->n_search,
			l->n - l->n_search);
	}
	ck_epoch_end(&wrec, NULL);

	/* A session only (not a snapshot user): the normalised session. */
	uint64_t a1 = K("anon-1");
	feed(&rf, s, mk(EVENT_VIEW, "anon-1", "it-5"));
	feed(&rf, s, mk(EVENT_VIEW, "anon-1", "it-6"));
	CHECK(wait_fresh(&rf, &lv, s, a1));
	ck_epoch_begin(&wrec, NULL);
	l = refresh_get(&rf, a1);
	lu = live_user_get(&lv, a1);
	CHECK(l && lu && blend(s, "anon-1", lu, q));
	if (l && lu) {
		check_search(s, l, lu, q, REFRESH_K);
		check_tail(s, l, lu);
	}
	ck_epoch_end(&wrec, NULL);

	/* A snapshot user whose events name items the snapshot does not
	 * know: no session, the embedding alone. */
	uint64_t u4 = K("u-4");
	feed(&rf, s, mk(EVENT_VIEW, "u-4", "not-in-snapshot"));
	CHECK(wait_fresh(&rf, &lv, s, u4));
	ck_epoch_begin(&wrec, NULL);
	l = refresh_get(&rf, u4);
	lu = live_user_get(&lv, u4);
	CHECK(l && lu && lu->session_weight == 0 && blend(s, "u-4", lu, q));
	if (l && lu) {
		check_search(s, l, lu, q, REFRESH_K);
		CHECK(l->n == l->n_search);   /* its recent item has no row */
	}
	ck_epoch_end(&wrec, NULL);

	/* Neither: nothing to compute, no list. */
	struct refresh_stats before = stats(&rf);
	feed(&rf, s, mk(EVENT_VIEW, "ghost", "not-in-snapshot"));
	CHECK(wait_idle(&rf));
	usleep(3 * INTERVAL_MS * 1000);
	CHECK(wait_idle(&rf));
	struct refresh_stats after = stats(&rf);
	CHECK(after.skipped == before.skipped + 1 && after.computed == before.computed);
	ck_epoch_begin(&wrec, NULL);
	CHECK(refresh_get(&rf, K("ghost")) == NULL);
	ck_epoch_end(&wrec, NULL);
}

static void test_coalesce(const struct snap *s)
{
	uint64_t u5 = K("u-5");
	CHECK(wait_idle(&rf));
	struct refresh_stats before = stats(&rf);
	uint64_t t0 = now_ns();
	for (uint32_t i = 0; i < 1000; i++)
		feed(&rf, s, mk(EVENT_VIEW, "u-5", item_name((i * 37) % N_ITEMS)));
	uint64_t ms = (now_ns() - t0) / 1000000;
	CHECK(wait_fresh(&rf, &lv, s, u5));
	CHECK(wait_idle(&rf));
	struct refresh_stats after = stats(&rf);
	uint64_t computed = after.computed - before.computed;
	fprintf(stderr, "coalesce: 1000 requests in %llu ms: %llu computations, %llu coalesced\n",
		(unsigned long long)ms, (unsigned long long)computed,
		(unsigned long long)(after.coalesced - before.coalesced));
	CHECK(after.requested - before.requested == 1000);
	CHECK(computed >= 1 && computed <= 2 + ms / INTERVAL_MS);
	CHECK(after.coalesced - before.coalesced + computed == 1000);
	CHECK(after.dropped == before.dropped && after.overflow == before.overflow);
	ck_epoch_begin(&wrec, NULL);
	const struct refresh_list *l = refresh_get(&rf, u5);
	CHECK(l && l->interactions == 1000);   /* computed after the last request */
	ck_epoch_end(&wrec, NULL);
	CHECK(after.compute_ns_max > 0 && after.compute_ns_total >= after.compute_ns_max);
	uint64_t in_hist = 0;
	for (unsigned b = 0; b < REFRESH_HIST_BUCKETS; b++)
		in_hist += after.compute_hist[b];
	CHECK(in_hist == after.computed);
}

static void test_forget(const struct snap *s)
{
	uint64_t u3 = K("u-3");
	struct refresh_stats before = stats(&rf);
	ck_epoch_begin(&wrec, NULL);
	CHECK(refresh_get(&rf, u3) != NULL);
	ck_epoch_end(&wrec, NULL);
	feed(&rf, s, mk(EVENT_FORGET_USER, "u-3", NULL));
	CHECK(wait_gone(&rf, u3));
	CHECK(stats(&rf).forgotten == before.forgotten + 1);

	/* "personalize": false forgets too. */
	uint64_t a1 = K("anon-1");
	struct event e = mk(EVENT_VIEW, "anon-1", "it-9");
	e.flags |= EVENT_NO_PERSONALIZE;
	feed(&rf, s, e);
	CHECK(wait_gone(&rf, a1));

	/* A forget right after a request cancels the pending computation. */
	CHECK(wait_idle(&rf));
	before = stats(&rf);
	uint64_t t0 = now_ns();
	feed(&rf, s, mk(EVENT_VIEW, "u-6", "it-11"));
	feed(&rf, s, mk(EVENT_FORGET_USER, "u-6", NULL));
	uint64_t us = (now_ns() - t0) / 1000;
	usleep(3 * INTERVAL_MS * 1000);
	CHECK(wait_idle(&rf));
	struct refresh_stats after = stats(&rf);
	if (us < INTERVAL_MS * 500)   /* the forget came before the request was due */
		CHECK(after.computed == before.computed && after.skipped == before.skipped);
	ck_epoch_begin(&wrec, NULL);
	CHECK(refresh_get(&rf, K("u-6")) == NULL);
	ck_epoch_end(&wrec, NULL);

	/* After a forget the user starts over: a new list for the new record. */
	feed(&rf, s, mk(EVENT_VIEW, "u-3", "it-12"));
	CHECK(wait_fresh(&rf, &lv, s, u3));
	ck_epoch_begin(&wrec, NULL);
	const struct refresh_list *l = refresh_get(&rf, u3);
	CHECK(l && l->interactions == 1);
	ck_epoch_end(&wrec, NULL);
}

static void test_bound(const struct snap *s)
{
	char id[32];
	uint64_t ts_e50 = 0;
	for (int i = 0; i < 80; i++) {
		snprintf(id, sizeof(id), "e-%d", i);
		if (i == 50)
			ts_e50 = ts_next;
		feed(&rf, s, mk(EVENT_VIEW, id, item_name((uint32_t)i)));
		if (i % 10 == 9)
			CHECK(wait_idle(&rf));
	}
	usleep(3 * INTERVAL_MS * 1000);
	CHECK(wait_idle(&rf));
	struct refresh_stats st = stats(&rf);
	CHECK(st.lists == 60 && st.evicted >= 20);
	ck_epoch_begin(&wrec, NULL);
	CHECK(refresh_get(&rf, K("e-0")) == NULL);      /* the oldest went */
	CHECK(refresh_get(&rf, K("e-79")) != NULL);     /* the newest stay */
	CHECK(refresh_get(&rf, K("e-40")) != NULL);
	ck_epoch_end(&wrec, NULL);

	/* Live state drops users (idle): the sweep drops their lists. */
	uint64_t ev = live_evict(&lv, ts_e50 + 1, 1);   /* everyone seen up to e-50's event */
	CHECK(ev > 50);
	CHECK(wait_gone(&rf, K("e-40")));
	CHECK(wait_gone(&rf, K("e-50")));
	for (int i = 0; i < 5000 && ((st = stats(&rf)).swept != 31 || st.lists != 29); i++)
		usleep(1000);
	CHECK(st.swept == 31 && st.lists == 29);   /* e-20..e-50 went, e-51..e-79 stay */
	ck_epoch_begin(&wrec, NULL);
	CHECK(refresh_get(&rf, K("e-51")) != NULL && refresh_get(&rf, K("e-79")) != NULL);
	ck_epoch_end(&wrec, NULL);
}

/* ---- snapshot swaps: lists carried by item key, then rebuilt ---- */

/* `s` with its items in reverse order and the last one dropped: every
 * index changes, one item goes. Users and embeddings as in `s`. */
static struct snap *reversed_snapshot(const struct snap *s, uint64_t generation)
{
	static char ids[N_ITEMS][16], uids[N_USERS][16];
	static struct snapb_item items[N_ITEMS];
	static float emb[N_ITEMS * DIM], uemb[N_USERS * DIM];
	static const char *uid_ptr[N_USERS];
	uint32_t n = s->n_items - 1;
	for (uint32_t j = 0; j < n; j++) {
		uint32_t i = n - 1 - j;   /* old index n (the last) is dropped */
		struct str id = snap_item_id(s, i);
		snprintf(ids[j], sizeof(ids[j]), "%.*s", (int)id.len, id.p);
		items[j] = (struct snapb_item){ ids[j], "", "c", 1.0f, s->item_stock[i],
						(s->item_flags[i] & SNAP_ITEM_AVAILABLE) != 0 };
		memcpy(emb + (size_t)j * DIM, snap_item_vec(s, i), DIM * sizeof(float));
	}
	for (uint32_t u = 0; u < s->n_users; u++) {
		struct str id = snap_user_id(s, u);
		snprintf(uids[u], sizeof(uids[u]), "%.*s", (int)id.len, id.p);
		uid_ptr[u] = uids[u];
		memcpy(uemb + (size_t)u * DIM, snap_user_vec(s, u), DIM * sizeof(float));
	}
	struct snapb_input in = { .model_version = "refresh-reversed", .dim = DIM, .n_items = n, .items = items,
				  .item_emb = emb, .n_users = s->n_users, .user_ids = uid_ptr, .user_emb = uemb,
				  .neighbors_k = NBR_K };
	char path[] = "/tmp/recd-test-refresh-rev-XXXXXX", err[256];
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	close(fd);
	struct snap *out = NULL;
	if (snapb_write(&in, path, err, sizeof(err)) || snap_open(path, &out, err, sizeof(err)))
		fprintf(stderr, "reversed snapshot: %s\n", err);
	unlink(path);
	if (out)
		out->generation = generation;
	return out;
}

/* Until every list is made on snapshot generation `gen` (true) or time runs out. */
static bool wait_all_on(struct refresh *r, uint64_t gen, const char *const *users, uint32_t n_users)
{
	for (int t = 0; t < 5000; t++) {
		uint32_t on = 0;
		ck_epoch_begin(&wrec, NULL);
		for (uint32_t u = 0; u < n_users; u++) {
			const struct refresh_list *l = refresh_get(r, K(users[u]));
			on += l && l->snap_generation == gen;
		}
		ck_epoch_end(&wrec, NULL);
		if (on == n_users && stats(r).rebuild_left == 0)
			return true;
		usleep(1000);
	}
	return false;
}

static struct snap *test_swap(struct snap *s)
{
	/* test_bound left e-51..e-79's lists, made on s (generation 1). */
	static char names[29][16];
	const char *users[29];
	for (uint32_t u = 0; u < 29; u++) {
		snprintf(names[u], sizeof(names[u]), "e-%u", 51 + u);
		users[u] = names[u];
	}
	struct snap *s2 = reversed_snapshot(s, 2);
	CHECK(s2 != NULL);
	if (!s2)
		return NULL;
	/* Before publishing: a list of s read against s2 is carried, and its
	 * keys name, in s2, the very items it listed in s. */
	ck_epoch_begin(&wrec, NULL);
	const struct refresh_list *l = refresh_get(&rf, K("e-79"));
	const struct live_user *lu = live_user_get(&lv, K("e-79"));
	CHECK(l && refresh_list_fresh(l, s, lu) && !refresh_list_carried(l, s, lu));
	CHECK(l && !refresh_list_fresh(l, s2, lu) && refresh_list_carried(l, s2, lu));
	uint32_t mapped = 0, dropped = 0;
	for (uint32_t i = 0; l && i < l->n; i++) {
		struct str old = snap_item_id(s, l->items[i].item);
		int64_t j = snap_item_find_key(s2, refresh_list_keys(l)[i]);
		if (j < 0) {
			dropped++;
			CHECK(l->items[i].item == s->n_items - 1);   /* only the dropped item is gone */
			continue;
		}
		struct str now = snap_item_id(s2, (uint32_t)j);
		CHECK((uint32_t)j == s->n_items - 2 - l->items[i].item);
		CHECK(now.len == old.len && memcmp(now.p, old.p, old.len) == 0);
		mapped++;
	}
	CHECK(l && mapped + dropped == l->n && mapped > 0);
	ck_epoch_end(&wrec, NULL);

	/* Publish s2: the rebuild pass recomputes every list on it, once. */
	struct refresh_stats before = stats(&rf);
	ck_pr_store_ptr(&srv.snapshot, s2);
	CHECK(wait_all_on(&rf, 2, users, 29));
	struct refresh_stats after = stats(&rf);
	CHECK(after.rebuild_passes == before.rebuild_passes + 1);
	CHECK(after.rebuilt - before.rebuilt == 29 && after.lists == 29);
	ck_epoch_begin(&wrec, NULL);
	l = refresh_get(&rf, K("e-79"));
	lu = live_user_get(&lv, K("e-79"));
	CHECK(l && refresh_list_fresh(l, s2, lu) && l->n > 0);
	for (uint32_t i = 0; l && i < l->n; i++) {
		CHECK(l->items[i].item < s2->n_items);
		struct str id = snap_item_id(s2, l->items[i].item);
		CHECK(XXH3_64bits(id.p, id.len) == refresh_list_keys(l)[i]);
	}
	ck_epoch_end(&wrec, NULL);

	/* And back: s is current again; s2 stays mapped until the end. */
	ck_pr_store_ptr(&srv.snapshot, s);
	CHECK(wait_all_on(&rf, 1, users, 29));
	CHECK(stats(&rf).rebuild_passes == before.rebuild_passes + 2);
	return s2;
}

/* ---- the fold-in query ---- */

/* Set the fold-in keys of srv.cfg to `mode` and the defaults, one key at
 * a time as a settings reload does (ctl.c: cfg_key_copy of each changed
 * reloadable key, while the refresh thread reads them). */
static void set_foldin(const char *mode)
{
	static struct recd_config nc;
	char err[256];
	cfg_defaults(&nc);
	CHECK(cfg_set(&nc, "refresh_foldin", mode, err, sizeof(err)) == 0);
	static const char *const keys[] = { "foldin_lambda", "foldin_alpha", "foldin_prior", "refresh_foldin" };
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const struct cfg_key *k = cfg_find(keys[i], strlen(keys[i]));
		CHECK(k && k->reloadable);
		if (k)
			cfg_key_copy(&srv.cfg, &nc, k);
	}
}

static bool wait_gram(struct refresh *r, uint64_t gen)
{
	for (int i = 0; i < 5000; i++) {
		if (stats(r).gram_generation == gen)
			return true;
		usleep(1000);
	}
	return false;
}

/* The shopper's fold-in solved here, on the test's own Gram matrix of s
 * (the same bits as the thread's: see foldin_gram_add), with the
 * configured defaults; x0 non-NULL: mode all's prior. false: nothing to
 * fold in or the solve failed. */
static bool foldin_ref(const struct snap *s, const struct foldin_gram *g, const struct live_user *lu,
		       const float *x0, double *q)
{
	static uint32_t items[FOLDIN_MAX_INPUTS];
	static float strength[FOLDIN_MAX_INPUTS];
	static double scratch[DIM * DIM + 3 * DIM];
	float x[DIM];
	struct foldin_params p = { .lambda = 0.1, .alpha = 10, .prior = x0 ? 10 : 0, .log_eps = 0 };
	CHECK(foldin_scratch_doubles(s->dim) <= ARRAY_SIZE(scratch));
	uint32_t n = foldin_user_inputs(s, lu, items, strength, FOLDIN_MAX_INPUTS);
	if (!n || foldin_solve(g, s, items, strength, n, x0, &p, scratch, x))
		return false;
	for (uint32_t d = 0; d < s->dim; d++)
		q[d] = x[d];
	return true;
}

/* `user`'s list (fresh on s) against the exact top-k for q: search part
 * and neighbour tail. */
static void check_list(const struct snap *s, const char *user, const double *q)
{
	ck_epoch_begin(&wrec, NULL);
	const struct refresh_list *l = refresh_get(&rf, K(user));
	const struct live_user *lu = live_user_get(&lv, K(user));
	CHECK(l && lu && refresh_list_fresh(l, s, lu));
	if (l && lu) {
		check_search(s, l, lu, q, REFRESH_K);
		check_tail(s, l, lu);
	}
	ck_epoch_end(&wrec, NULL);
}

/* Do the exact top-k of q and of q2 differ (the test tells them apart)? */
static bool rankings_differ(const struct snap *s, const struct live_user *lu, const double *q, const double *q2)
{
	static struct scored a[N_ITEMS], b[N_ITEMS];
	uint32_t m = reference(s, lu, q, a);
	reference(s, lu, q2, b);
	for (uint32_t j = 0; j < MIN(m, (uint32_t)REFRESH_K); j++)
		if (a[j].item != b[j].item)
			return true;
	return false;
}

/* Feed `user` a few touches and wait for their list and its counters. */
static void touch(const struct snap *s, const char *user, const uint32_t *items, uint32_t n)
{
	static const uint8_t types[] = { EVENT_PURCHASE, EVENT_PURCHASE, EVENT_ADD_TO_CART, EVENT_VIEW, EVENT_CLICK };
	for (uint32_t i = 0; i < n; i++)
		feed(&rf, s, mk(types[i % ARRAY_SIZE(types)], user, item_name(items[i])));
	CHECK(wait_fresh(&rf, &lv, s, K(user)));
	CHECK(wait_idle(&rf));   /* pending 0: the outcome is counted */
}

static void test_foldin(struct snap *s, struct snap *s2)
{
	static struct foldin_gram g1, g2;
	double q[DIM], qb[DIM];
	CHECK(s2 != NULL);
	if (!s2)
		return;
	CHECK(foldin_gram_build(s, &g1) == 0 && foldin_gram_build(s2, &g2) == 0);
	/* Off so far (srv.cfg zeroed: index 0): no Gram matrix was summed. */
	CHECK(stats(&rf).gram_generation == 0 && stats(&rf).folded == 0);

	/* Mode cold: a shopper the snapshot does not know gets the fold-in of
	 * their touches, the purchases still left out. */
	set_foldin("cold");
	CHECK(wait_gram(&rf, 1));
	struct refresh_stats before = stats(&rf);
	static const uint32_t f1[] = { 17, 33, 48, 61, 90 };
	touch(s, "fold-1", f1, ARRAY_SIZE(f1));
	struct refresh_stats after = stats(&rf);
	CHECK(after.folded == before.folded + 1 && after.computed == before.computed + 1);
	CHECK(after.foldin_failed == before.foldin_failed);
	ck_epoch_begin(&wrec, NULL);
	const struct live_user *lu = live_user_get(&lv, K("fold-1"));
	CHECK(lu && foldin_ref(s, &g1, lu, NULL, q));
	CHECK(lu && blend(s, "fold-1", lu, qb) && rankings_differ(s, lu, q, qb));
	ck_epoch_end(&wrec, NULL);
	check_list(s, "fold-1", q);

	/* A known shopper in mode cold: the blend, as before. */
	before = stats(&rf);
	static const uint32_t f2[] = { 5, 120, 200 };
	touch(s, "u-11", f2, ARRAY_SIZE(f2));
	after = stats(&rf);
	CHECK(after.folded == before.folded && after.computed == before.computed + 1);
	ck_epoch_begin(&wrec, NULL);
	lu = live_user_get(&lv, K("u-11"));
	CHECK(lu && blend(s, "u-11", lu, qb));
	ck_epoch_end(&wrec, NULL);
	check_list(s, "u-11", qb);

	/* Mode all: the same shopper folded in, pulled towards their
	 * snapshot embedding (foldin_prior 10). */
	set_foldin("all");
	before = stats(&rf);
	static const uint32_t f3[] = { 140 };
	touch(s, "u-11", f3, ARRAY_SIZE(f3));
	after = stats(&rf);
	CHECK(after.folded == before.folded + 1);
	ck_epoch_begin(&wrec, NULL);
	lu = live_user_get(&lv, K("u-11"));
	int64_t u11 = snap_user_find(s, "u-11", 4);
	CHECK(u11 >= 0 && lu && foldin_ref(s, &g1, lu, snap_user_vec(s, (uint32_t)u11), q));
	CHECK(lu && blend(s, "u-11", lu, qb) && rankings_differ(s, lu, q, qb));
	ck_epoch_end(&wrec, NULL);
	check_list(s, "u-11", q);

	/* Mode off: a new shopper gets the session vector (the blend). */
	set_foldin("off");
	before = stats(&rf);
	static const uint32_t f4[] = { 23, 71, 150, 260 };
	touch(s, "fold-2", f4, ARRAY_SIZE(f4));
	after = stats(&rf);
	CHECK(after.folded == before.folded && after.computed == before.computed + 1);
	ck_epoch_begin(&wrec, NULL);
	lu = live_user_get(&lv, K("fold-2"));
	CHECK(lu && blend(s, "fold-2", lu, qb) && foldin_ref(s, &g1, lu, NULL, q) && rankings_differ(s, lu, q, qb));
	ck_epoch_end(&wrec, NULL);
	check_list(s, "fold-2", qb);

	/* A swap with fold-in on: the thread sums s2's Gram matrix, and the
	 * rebuild pass (which waits for it) folds fold-1 in against s2's
	 * items. */
	set_foldin("cold");
	static const char *const fold1[] = { "fold-1" };
	before = stats(&rf);
	ck_pr_store_ptr(&srv.snapshot, s2);
	CHECK(wait_gram(&rf, 2));
	CHECK(wait_all_on(&rf, 2, fold1, 1));
	CHECK(wait_idle(&rf));
	after = stats(&rf);
	CHECK(after.rebuild_passes == before.rebuild_passes + 1 && after.folded > before.folded);
	ck_epoch_begin(&wrec, NULL);
	lu = live_user_get(&lv, K("fold-1"));
	CHECK(lu && foldin_ref(s2, &g2, lu, NULL, q));
	CHECK(!foldin_ref(s2, &g1, lu, NULL, qb));   /* s's Gram matrix does not fit s2 (-ESTALE) */
	ck_epoch_end(&wrec, NULL);
	check_list(s2, "fold-1", q);
	/* And a computation asked for by events on s2. */
	static const uint32_t f5[] = { 8, 77, 301 };
	touch(s2, "fold-3", f5, ARRAY_SIZE(f5));
	ck_epoch_begin(&wrec, NULL);
	lu = live_user_get(&lv, K("fold-3"));
	CHECK(lu && foldin_ref(s2, &g2, lu, NULL, q));
	ck_epoch_end(&wrec, NULL);
	check_list(s2, "fold-3", q);

	/* Back to s (test_race reads generation 1): summed again. */
	ck_pr_store_ptr(&srv.snapshot, s);
	CHECK(wait_gram(&rf, 1));
	CHECK(wait_all_on(&rf, 1, fold1, 1));
	ck_epoch_begin(&wrec, NULL);
	lu = live_user_get(&lv, K("fold-1"));
	CHECK(lu && foldin_ref(s, &g1, lu, NULL, q));
	ck_epoch_end(&wrec, NULL);
	check_list(s, "fold-1", q);
	fprintf(stderr, "fold-in: %llu of %llu lists folded in, %llu failed\n", (unsigned long long)stats(&rf).folded,
		(unsigned long long)stats(&rf).computed, (unsigned long long)stats(&rf).foldin_failed);
	foldin_gram_free(&g1);
	foldin_gram_free(&g2);
}

/* ---- one refresh thread publishing, two readers ---- */

struct race {
	const struct snap *s;
	int stop;
	uint64_t reads, found;
	int bad;
	unsigned next_rec;
};

static void *race_reader(void *arg)
{
	struct race *r = arg;
	ck_epoch_record_t *rec = &reader_recs[ck_pr_faa_uint(&r->next_rec, 1) & 1];
	ck_epoch_register(&srv.epoch, rec, NULL);
	const struct snap *s = r->s;
	char id[32];
	uint64_t n = 0, found = 0;
	while (!ck_pr_load_int(&r->stop) && n < 50000000) {
		ck_epoch_begin(rec, NULL);
		for (int i = 0; i < 64; i++, n++) {
			snprintf(id, sizeof(id), "r-%d", (int)(n % 97));
			const struct refresh_list *l = refresh_get(&rf_race, K(id));
			if (!l)
				continue;
			found++;
			bool ok = l->user_key == K(id) && l->snap_generation == 1 && l->version > 0 &&
				  l->n_search <= l->n && l->n <= 10 + REFRESH_NEIGHBORS && l->interactions > 0;
			for (uint32_t j = 0; j < l->n && ok; j++) {
				ok &= l->items[j].item < s->n_items && snap_item_servable(s, l->items[j].item);
				ok &= isfinite(l->items[j].score);
				ok &= j == 0 || l->items[j].score <= l->items[j - 1].score;
			}
			if (!ok)
				ck_pr_store_int(&r->bad, 1);
		}
		ck_epoch_end(rec, NULL);
	}
	ck_pr_add_64(&r->reads, n);
	ck_pr_add_64(&r->found, found);
	ck_epoch_unregister(rec);
	return NULL;
}

static void test_race(const struct snap *s)
{
	struct refresh_opts o;
	refresh_opts_default(&o);
	o.k = 10;
	o.min_interval_ms = 0;   /* a publish per request that is taken */
	o.ring_size = 256;       /* small: drops and forget flushes happen */
	o.pending_max = 32;      /* and the pending table fills */
	o.max_lists = 40;        /* and lists are evicted under the readers */
	o.sweep_ms = 1;          /* and swept (live_evict below) */
	set_foldin("off");
	o.foldin = REFRESH_FOLDIN_ALL;   /* pinned: the configured off does not apply */
	CHECK(refresh_start(&rf_race, &srv, &lv, &o) == 0);
	struct race r = { s, 0, 0, 0, 0, 0 };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, race_reader, &r) == 0);
	char user[32];
	static const uint8_t types[] = { EVENT_VIEW, EVENT_CLICK, EVENT_ADD_TO_CART, EVENT_PURCHASE, EVENT_VIEW,
					 EVENT_REMOVE_FROM_CART, EVENT_FORGET_USER };
	uint64_t t0 = now_ns();
	int i;
	for (i = 0; i < 300000 && now_ns() - t0 < 2000000000ull; i++) {
		snprintf(user, sizeof(user), "r-%d", i % 97);
		uint8_t type = types[(i / 97 + i) % ARRAY_SIZE(types)];
		feed(&rf_race, s, mk(type, user, type == EVENT_FORGET_USER ? NULL : item_name((uint32_t)(i * 7) % N_ITEMS)));
		if (i % 64 == 0)
			usleep(50);   /* let the refresh thread keep up now and then */
		if (i % 4096 == 4095)
			live_evict(&lv, ts_next, 50);   /* users not seen for 50 events */
	}
	ck_pr_store_int(&r.stop, 1);
	for (int k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
	/* However starved the thread was (it runs niced), it still works. */
	CHECK(wait_idle(&rf_race));
	feed(&rf_race, s, mk(EVENT_VIEW, "r-final", "it-1"));
	CHECK(wait_fresh(&rf_race, &lv, s, K("r-final")));
	struct refresh_stats st = stats(&rf_race);
	fprintf(stderr,
		"race: %d events, %llu requested, %llu computed, %llu dropped, %llu overflow, %llu coalesced, "
		"%llu forgotten, %llu flushes, %llu evicted, %llu swept; %llu reads, %llu lists found\n",
		i, (unsigned long long)st.requested, (unsigned long long)st.computed, (unsigned long long)st.dropped,
		(unsigned long long)st.overflow, (unsigned long long)st.coalesced, (unsigned long long)st.forgotten,
		(unsigned long long)st.flushes, (unsigned long long)st.evicted, (unsigned long long)st.swept,
		(unsigned long long)r.reads,
		(unsigned long long)r.found);
	CHECK(!r.bad);
	CHECK(r.reads > 0 && st.computed > 0);
	CHECK(st.folded > 0 && st.folded <= st.computed && st.gram_generation == 1);
	CHECK(st.lists <= 40);
	/* Stopped with work pending: everything is freed (ASan: no leak). */
	refresh_stop(&rf_race);
	refresh_stop(&rf_race);
}

/* ---- through a real updater ---- */

static void upd_send(struct event ev)
{
	struct event *slot;
	while (!(slot = upd_reserve(&upd, 0)))
		usleep(100);
	*slot = ev;
	upd_commit(&upd, 0, slot);
	if (upd_needs_wake(&upd)) {
		uint64_t one = 1;
		if (write(upd.wake_fd, &one, sizeof(one)) < 0)
			failures++;
	}
}

static bool upd_wait_user(uint64_t key, bool present)
{
	for (int i = 0; i < 5000; i++) {
		ck_epoch_begin(&wrec, NULL);
		const struct live_user *lu = live_user_get(&upd.live, key);
		bool ok = present ? lu != NULL : lu == NULL && refresh_get(&upd.refresh, key) == NULL;
		ck_epoch_end(&wrec, NULL);
		if (ok)
			return true;
		usleep(1000);
	}
	return false;
}

static void test_updater(const struct snap *s)
{
	cfg_defaults(&srv.cfg);
	srv.cfg.event_log = false;
	CHECK(upd_start(&upd, &srv, 1, 1024, s->dim, 1000, 3600000) == 0);
	uint64_t u7 = K("u-7");
	upd_send(mk(EVENT_VIEW, "u-7", "it-3"));
	upd_send(mk(EVENT_CLICK, "u-7", "it-4"));
	CHECK(upd_wait_user(u7, true));
	CHECK(wait_fresh(&upd.refresh, &upd.live, s, u7));
	ck_epoch_begin(&wrec, NULL);
	const struct refresh_list *l = refresh_get(&upd.refresh, u7);
	CHECK(l && l->interactions == 2 && l->n_search == REFRESH_K);
	ck_epoch_end(&wrec, NULL);
	/* impressions and item updates do not ask for a list */
	struct refresh_stats st = stats(&upd.refresh);
	CHECK(st.requested == 2);
	upd_send(mk(EVENT_IMPRESSION, "u-7", NULL));
	struct event e = mk(EVENT_VIEW, "u-7", "it-5");
	e.flags |= EVENT_NO_PERSONALIZE;
	upd_send(e);
	CHECK(upd_wait_user(u7, false));
	upd_send(mk(EVENT_VIEW, "u-7", "it-6"));
	CHECK(upd_wait_user(u7, true));
	CHECK(wait_fresh(&upd.refresh, &upd.live, s, u7));
	upd_send(mk(EVENT_FORGET_USER, "u-7", NULL));
	CHECK(upd_wait_user(u7, false));
	st = stats(&upd.refresh);
	CHECK(st.requested == 3 && st.forgotten == 2 && st.dropped == 0);
	/* Stop with a request still pending (due INTERVAL later). */
	upd_send(mk(EVENT_VIEW, "u-8", "it-7"));
	upd_stop(&upd);
	CHECK(!upd.refresh.started && !upd.refresh.hs_ready);
}

int main(void)
{
	static struct snapb_item items[N_ITEMS];
	static char ids[N_ITEMS][16];
	static float emb[N_ITEMS * DIM];
	static char uids[N_USERS][16];
	static const char *uid_ptr[N_USERS];
	static float uemb[N_USERS * DIM];
	static struct snapb_event evs[3000];
	uint64_t rng = 0x9e3779b97f4a7c15ull;
#define RND() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
	for (uint32_t i = 0; i < N_ITEMS; i++) {
		snprintf(ids[i], sizeof(ids[i]), "it-%u", i);
		items[i] = (struct snapb_item){ ids[i], "", "c", 1.0f, i % 29 == 5 ? 0u : 10u, i % 31 != 7 };
		for (int d = 0; d < DIM; d++)
			emb[i * DIM + d] = (float)((double)(RND() % 2001) / 1000.0 - 1.0);
	}
	for (uint32_t u = 0; u < N_USERS; u++) {
		snprintf(uids[u], sizeof(uids[u]), "u-%u", u);
		uid_ptr[u] = uids[u];
		for (int d = 0; d < DIM; d++)
			uemb[u * DIM + d] = (float)((double)(RND() % 2001) / 1000.0 - 1.0);
	}
	for (uint32_t e = 0; e < ARRAY_SIZE(evs); e++)
		evs[e] = (struct snapb_event){ RND() % 200, (int64_t)(T0 + e * 1000), (uint32_t)(RND() % N_ITEMS) };
	struct snapb_input in = { .model_version = "refresh", .dim = DIM, .n_items = N_ITEMS, .items = items,
				  .item_emb = emb, .n_users = N_USERS, .user_ids = uid_ptr, .user_emb = uemb,
				  .neighbors_k = NBR_K, .events = evs, .n_events = ARRAY_SIZE(evs) };
	char path[] = "/tmp/recd-test-refresh-XXXXXX", err[256];
	int fd = mkstemp(path);
	if (fd < 0)
		return 1;
	close(fd);
	CHECK(snapb_write(&in, path, err, sizeof(err)) == 0);
	struct snap *s;
	if (snap_open(path, &s, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		unlink(path);
		return 1;
	}
	unlink(path);
	s->generation = 1;
	CHECK(s->ann.nlist == 0 && s->neighbors_k == NBR_K && s->n_users == N_USERS);

	ck_epoch_init(&srv.epoch);
	srv.snapshot = s;
	ck_epoch_register(&srv.epoch, &wrec, NULL);
	CHECK(live_init(&lv, s->dim, 1000, &wrec) == 0);
	test_api_edges(s);
	struct refresh_opts o;
	refresh_opts_default(&o);
	o.min_interval_ms = INTERVAL_MS;
	o.max_lists = 60;
	o.sweep_ms = 30;
	o.gram_rows = 64;   /* the Gram matrix takes several loop turns, as a large catalogue's does */
	CHECK(refresh_start(&rf, &srv, &lv, &o) == 0);
	test_lists(s);
	test_coalesce(s);
	test_forget(s);
	test_bound(s);
	struct snap *s2 = test_swap(s);
	test_foldin(s, s2);
	refresh_stop(&rf);   /* before live_destroy: its thread reads live state */
	CHECK(!rf.started && refresh_get(&rf, K("e-79")) == NULL);
	test_race(s);
	ck_epoch_barrier(&wrec);
	live_destroy(&lv);
	test_updater(s);
	ck_epoch_barrier(&wrec);
	ck_epoch_unregister(&wrec);
	if (s2)
		snap_close(s2);
	snap_close(s);
	if (failures)
		fprintf(stderr, "test_refresh: %d failures\n", failures);
	return failures ? 1 : 0;
}
