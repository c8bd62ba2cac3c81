/* test_trend.c: live trending: decay, the published lists against a
 * brute-force reference on a small real snapshot, servability, the
 * republish rate, the size bound, and one writer racing lock-free readers
 * (under ASan a reader touching freed lists is caught). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "events/event.h"
#include "live/trend.h"
#include "snap/snapb.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

#define H 3600000ull            /* the default half-life */
#define T0 (1700000000000ull)   /* a wall-clock-like time */
#define N_ITEMS 300

static uint64_t K(const char *id)
{
	return event_key(id, strlen(id));
}

static uint64_t item_key(uint32_t i)
{
	char id[32];
	snprintf(id, sizeof(id), "i-%u", i);
	return K(id);
}

static bool near(float a, double b)
{
	return fabs((double)a - b) <= 1e-4 * fabs(b) + 1e-6;
}

/* Categories: A for i < 200, B for 200..279, C after (first-seen order,
 * so indexes 0, 1, 2). */
static uint32_t cat_of(uint32_t i)
{
	return i < 200 ? 0 : i < 280 ? 1 : 2;
}
static bool servable(uint32_t i)
{
	return i % 17 != 5 && i % 23 != 7;
}

static ck_epoch_t epoch;
static ck_epoch_record_t wrec;   /* the main thread's writer record */

static void finish(struct trend *t)
{
	trend_destroy(t);
	ck_epoch_barrier(&wrec);   /* runs the retired lists' frees */
}

static void test_weights(void)
{
	struct trend t;
	CHECK(trend_init(&t, &wrec, 0, 0) == 0);
	CHECK(trend_event_weight(&t, EVENT_VIEW) == 1.0f && trend_event_weight(&t, EVENT_CLICK) == 1.0f);
	CHECK(trend_event_weight(&t, EVENT_RATING) == 1.0f);
	CHECK(trend_event_weight(&t, EVENT_ADD_TO_CART) == 3.0f && trend_event_weight(&t, EVENT_PURCHASE) == 5.0f);
	CHECK(trend_event_weight(&t, EVENT_IMPRESSION) == 0.0f && trend_event_weight(&t, EVENT_ITEM_UPDATE) == 0.0f);
	CHECK(trend_event_weight(&t, EVENT_REMOVE_FROM_CART) == 0.0f);
	CHECK(trend_event_weight(&t, EVENT_FORGET_USER) == 0.0f && trend_event_weight(&t, 0) == 0.0f);
	CHECK(trend_event_weight(&t, 200) == 0.0f);
	finish(&t);
}

static void test_decay(const struct snap *s)
{
	struct trend t;
	struct rec_item out[8];
	CHECK(trend_init(&t, &wrec, 0, 0) == 0);
	CHECK(trend_top(&t, s, -1, 8, out) == 0);   /* nothing published yet */
	trend_add(&t, item_key(0), 5.0f, T0 - H);   /* a purchase an hour ago */
	trend_add(&t, item_key(1), 1.0f, T0);       /* a view now */
	trend_add(&t, 0, 9.0f, T0);                 /* no item: ignored */
	trend_add(&t, item_key(2), 0.0f, T0);       /* no weight: ignored */
	CHECK(trend_size(&t) == 2);
	CHECK(trend_tick(&t, s, T0));
	uint32_t n = trend_top(&t, s, -1, 8, out);
	CHECK(n == 2);
	CHECK(out[0].item == 0 && near(out[0].score, 2.5));
	CHECK(out[1].item == 1 && near(out[1].score, 1.0));

	/* Two hours on, both have halved twice more (item 0: 0.625) and item
	 * 1 has a new view (0.25 + 1); a fresh 0.7 ranks between them. */
	CHECK(trend_tick(&t, s, T0 + 2 * H - 1000));   /* idle refresh; the clock moves on */
	trend_add(&t, item_key(1), 1.0f, T0 + 2 * H);
	trend_add(&t, item_key(3), 0.7f, T0 + 2 * H);
	CHECK(trend_tick(&t, s, T0 + 2 * H));
	n = trend_top(&t, s, -1, 8, out);
	CHECK(n == 3);
	CHECK(out[0].item == 1 && near(out[0].score, 1.25));
	CHECK(out[1].item == 3 && near(out[1].score, 0.7));
	CHECK(out[2].item == 0 && near(out[2].score, 0.625));

	/* A client clock far ahead is clamped to a minute ahead. */
	trend_add(&t, item_key(4), 1.0f, T0 + 2 * H + 10 * H);
	CHECK(trend_tick(&t, s, T0 + 2 * H + 1000));
	n = trend_top(&t, s, -1, 8, out);
	CHECK(n == 4 && out[0].item == 1);
	for (uint32_t i = 0; i < n; i++)
		if (out[i].item == 4)
			CHECK(out[i].score < 1.05f);
	finish(&t);

	/* A far-future event before the first tick (no clock yet) is shifted
	 * to the first tick's time, and honest events still count. */
	CHECK(trend_init(&t, &wrec, 0, 0) == 0);
	trend_add(&t, item_key(8), 1.0f, T0 + 100 * H);
	CHECK(trend_tick(&t, s, T0));
	CHECK(t.t_ref_ms == T0);
	trend_add(&t, item_key(9), 2.0f, T0 + 1000);
	CHECK(trend_tick(&t, s, T0 + 1000));
	n = trend_top(&t, s, -1, 8, out);
	CHECK(n == 2 && out[0].item == 9 && near(out[0].score, 2.0));
	CHECK(out[1].item == 8 && near(out[1].score, exp2(-1000.0 / H)));
	/* a wall clock stepping back an hour: scores stay as they were */
	CHECK(trend_tick(&t, s, T0 - H));
	n = trend_top(&t, s, -1, 8, out);
	CHECK(n == 2 && near(out[0].score, 2.0) && near(out[1].score, exp2(-1000.0 / H)));
	trend_add(&t, item_key(10), 3.0f, T0 - H + 10);
	CHECK(trend_tick(&t, s, T0 - H + 1000));
	n = trend_top(&t, s, -1, 8, out);
	CHECK(n == 3 && out[0].item == 10 && near(out[0].score, 3.0 * exp2(-990.0 / H)));
	finish(&t);
}

/* Many half-lives of steady traffic: one view per half-life tends to a
 * score of 2 (1 + 1/2 + 1/4 ...), with and without ticks in between
 * (t_ref moves on publish, and on add when no publish came). */
static void test_long_run(const struct snap *s)
{
	for (int ticking = 0; ticking < 2; ticking++) {
		struct trend t;
		struct rec_item out[2];
		CHECK(trend_init(&t, &wrec, 1000, 0) == 0);
		uint64_t ts = T0, last = T0;
		for (int i = 0; i < 300; i++, ts += 1000) {
			last = ts;
			trend_add(&t, item_key(0), 1.0f, ts);
			if (ticking)
				CHECK(trend_tick(&t, s, ts));
		}
		CHECK(t.t_ref_ms > T0);
		if (!ticking)
			CHECK(trend_tick(&t, s, last));
		CHECK(trend_top(&t, s, -1, 2, out) == 1 && out[0].item == 0 && near(out[0].score, 2.0));
		trend_add(&t, item_key(1), 1e-9f, last);   /* below TREND_MIN_SCORE at once */
		CHECK(trend_size(&t) == 1);
		/* 61 half-lives later item 0 is below TREND_MIN_SCORE: gone from
		 * the lists (idle refresh) and forgotten by the table */
		CHECK(trend_tick(&t, s, last + 61000));
		CHECK(trend_top(&t, s, -1, 2, out) == 0);
		CHECK(trend_size(&t) == 0);
		finish(&t);
	}
}

/* Reference: servable items of category `cat` (-1 = any), best first. Item
 * i has weight 1000 - i, so best first is ascending i. */
static uint32_t expected(int64_t cat, uint32_t k, uint32_t *exp)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < N_ITEMS && n < k; i++)
		if (servable(i) && (cat < 0 || cat_of(i) == (uint32_t)cat))
			exp[n++] = i;
	return n;
}

static void check_list(const struct trend *t, const struct snap *s, int64_t cat, uint32_t k, uint32_t want_max)
{
	static struct rec_item out[TREND_TOP + 10];
	static uint32_t exp[TREND_TOP + 10];
	uint32_t n = trend_top(t, s, cat, k, out);
	uint32_t ne = expected(cat, MIN(k, want_max), exp);
	CHECK(n == ne);
	for (uint32_t j = 0; j < n && j < ne; j++) {
		if (out[j].item != exp[j] || !near(out[j].score, 1000.0 - exp[j])) {
			fprintf(stderr, "cat %lld k %u: at %u got item %u (%.3f), want %u\n", (long long)cat, k, j,
				out[j].item, (double)out[j].score, exp[j]);
			failures++;
			break;
		}
		CHECK(snap_item_servable(s, out[j].item));
	}
}

static void fill_lists(struct trend *t)
{
	for (uint32_t i = 0; i < N_ITEMS; i++)
		trend_add(t, item_key(i), (float)(1000 - i), T0);
	/* items the snapshot does not know: strongest of all, global list only */
	trend_add(t, K("new-item-1"), 5000.0f, T0);
	trend_add(t, K("new-item-2"), 4000.0f, T0);
}

static void test_lists(struct snap *s)
{
	struct trend t;
	CHECK(trend_init(&t, &wrec, 0, 0) == 0);
	fill_lists(&t);
	CHECK(trend_size(&t) == N_ITEMS + 2);
	CHECK(trend_tick(&t, s, T0));
	const struct trend_pub *p = t.pub;
	CHECK(p && p->by_category && p->snap_generation == s->generation && p->n_categories == 3);
	CHECK(p->n_global <= TREND_TOP);
	CHECK(p->global[0].item_key == K("new-item-1") && p->global[1].item_key == K("new-item-2"));
	for (uint32_t c = 0; c < 3; c++)
		CHECK(p->cat_off[c + 1] - p->cat_off[c] <= TREND_CAT_TOP);

	check_list(&t, s, -1, 10, ~0u);
	check_list(&t, s, -1, TREND_TOP + 10, ~0u);   /* all 300 fit */
	check_list(&t, s, 0, 20, ~0u);
	check_list(&t, s, 0, TREND_TOP, TREND_CAT_TOP);   /* capped at the list length */
	check_list(&t, s, 1, TREND_TOP, TREND_CAT_TOP);
	check_list(&t, s, 2, 5, ~0u);
	struct rec_item out[4];
	CHECK(trend_top(&t, s, 3, 4, out) == 0);     /* no such category */
	CHECK(trend_top(&t, s, 99, 4, out) == 0);
	CHECK(trend_top(&t, s, -1, 0, out) == 0);
	CHECK(trend_top(&t, NULL, -1, 4, out) == 0);

	/* Lists of another generation: categories from the global list,
	 * filtered by the reader's snapshot. */
	uint64_t gen = s->generation;
	s->generation = gen + 1;
	check_list(&t, s, 0, 20, ~0u);
	check_list(&t, s, 2, 50, ~0u);
	check_list(&t, s, -1, 30, ~0u);
	s->generation = gen;
	finish(&t);

	/* Built without a snapshot: global only, the reader filters. */
	CHECK(trend_init(&t, &wrec, 0, 0) == 0);
	fill_lists(&t);
	CHECK(trend_tick(&t, NULL, T0));
	CHECK(t.pub && !t.pub->by_category && t.pub->n_global == N_ITEMS + 2);
	check_list(&t, s, -1, 40, ~0u);
	check_list(&t, s, 1, 10, ~0u);
	finish(&t);
}

static void test_republish(const struct snap *s)
{
	struct trend t;
	struct rec_item out[4];
	CHECK(trend_init(&t, &wrec, 0, 0) == 0);
	CHECK(trend_tick(&t, s, T0));    /* first tick publishes, even empty */
	const struct trend_pub *p1 = t.pub;
	CHECK(p1 && p1->n_global == 0 && t.publishes == 1);
	trend_add(&t, item_key(0), 1.0f, T0 + 10);
	CHECK(!trend_tick(&t, s, T0 + 500));
	CHECK(!trend_tick(&t, s, T0 + 999));
	CHECK(t.pub == p1 && trend_top(&t, s, -1, 4, out) == 0);
	CHECK(trend_tick(&t, s, T0 + 1000));
	const struct trend_pub *p2 = t.pub;
	CHECK(p2 != p1 && t.publishes == 2);
	CHECK(trend_top(&t, s, -1, 4, out) == 1 && out[0].item == 0);
	/* nothing new: no rebuild until the idle refresh */
	CHECK(!trend_tick(&t, s, T0 + 2500));
	CHECK(!trend_tick(&t, s, T0 + 60999));
	CHECK(trend_tick(&t, s, T0 + 61000));
	CHECK(t.pub != p2 && t.publishes == 3);
	/* a snapshot change rebuilds after a second, dirty or not */
	CHECK(!trend_tick(&t, NULL, T0 + 61500));
	CHECK(trend_tick(&t, NULL, T0 + 62000));
	CHECK(!t.pub->by_category);
	/* a clock stepping back does not stall publishing */
	trend_add(&t, item_key(1), 1.0f, T0);
	CHECK(trend_tick(&t, s, T0 + 5000));
	finish(&t);
}

static void test_bound(const struct snap *s)
{
	struct trend t;
	CHECK(trend_init(&t, &wrec, 0, 1000) == 0);
	char id[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "b-%d", i);
		trend_add(&t, K(id), (float)(i + 1), T0);
		CHECK(trend_size(&t) <= 1000);
	}
	CHECK(trend_size(&t) >= 800);
	CHECK(trend_tick(&t, s, T0));
	/* the weakest went: the strongest are all there, in order */
	const struct trend_pub *p = t.pub;
	CHECK(p->n_global == MIN(trend_size(&t), (uint64_t)TREND_TOP));
	for (uint32_t j = 0; j < p->n_global; j++) {
		snprintf(id, sizeof(id), "b-%u", 4999 - j);
		if (p->global[j].item_key != K(id)) {
			fprintf(stderr, "bound: at %u not %s\n", j, id);
			failures++;
			break;
		}
	}
	/* the strongest item still accumulates */
	trend_add(&t, K("b-0"), 1.0f, T0);
	trend_add(&t, K("b-4999"), 1.0f, T0);
	CHECK(trend_tick(&t, s, T0 + 1000));
	CHECK(t.pub->global[0].item_key == K("b-4999") && near(t.pub->global[0].score, 5001.0 * exp2(-1000.0 / H)));
	finish(&t);
}

/* ---- one writer, two readers ---- */

struct race {
	struct trend *t;
	const struct snap *s1, *s2;
	int stop;
	uint64_t reads, writes;
	int bad;
	unsigned next_rec;
};

/* ck_epoch never unlinks a record: each must outlive every later
 * barrier, so the records are static, not on the threads' stacks. */
static ck_epoch_record_t reader_recs[2];
static ck_epoch_record_t race_wrec;

static void *race_writer(void *arg)
{
	struct race *r = arg;
	struct trend *t = r->t;
	uint64_t now = T0, n = 0;
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	uint64_t t0 = now_ns();
	char id[32];
	while (n < 400000 && now_ns() - t0 < 2000000000ull) {
		for (int i = 0; i < 64; i++, n++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			uint32_t it = (uint32_t)(rng % (N_ITEMS + 50));
			snprintf(id, sizeof(id), it < N_ITEMS ? "i-%u" : "x-%u", it);
			static const uint8_t types[] = { EVENT_VIEW, EVENT_CLICK, EVENT_ADD_TO_CART, EVENT_PURCHASE,
							 EVENT_IMPRESSION };
			uint8_t type = types[(rng >> 20) % ARRAY_SIZE(types)];
			float w = trend_event_weight(t, type);
			if (w > 0)
				trend_add(t, K(id), w, now + (rng >> 40) % 200);
		}
		now += 137;   /* simulated time: a rebuild every ~8 turns */
		/* the writer alternates snapshots: readers (always s1) see lists
		 * of their generation, of another, and of none */
		uint64_t phase = (now / 5000) % 3;
		const struct snap *s = phase == 0 ? r->s1 : phase == 1 ? r->s2 : NULL;
		ck_epoch_begin(&race_wrec, NULL);
		trend_tick(t, s, now);
		ck_epoch_end(&race_wrec, NULL);
		ck_epoch_poll(&race_wrec);
	}
	ck_pr_store_64(&r->writes, n);
	ck_pr_store_int(&r->stop, 1);
	return NULL;
}

static void *race_reader(void *arg)
{
	struct race *r = arg;
	ck_epoch_record_t *rec = &reader_recs[ck_pr_faa_uint(&r->next_rec, 1) & 1];
	ck_epoch_register(&epoch, rec, NULL);
	struct rec_item out[TREND_TOP];
	const struct snap *s = r->s1;
	uint64_t n = 0;
	while (!ck_pr_load_int(&r->stop) && n < 10000000) {
		ck_epoch_begin(rec, NULL);
		for (int i = 0; i < 16; i++, n++) {
			int64_t cat = (int64_t)(n % 5) - 1;   /* -1 (global), 0..2, 3 (none) */
			uint32_t k = (uint32_t)(n % 7 == 0 ? TREND_TOP : 20);
			uint32_t m = trend_top(r->t, s, cat, k, out);
			bool ok = m <= k && (cat != 3 || m == 0);
			for (uint32_t j = 0; j < m; j++) {
				ok &= out[j].item < s->n_items && snap_item_servable(s, out[j].item);
				ok &= cat < 0 || s->item_category[out[j].item] == (uint32_t)cat;
				ok &= out[j].score > 0 && isfinite(out[j].score);
				ok &= j == 0 || out[j].score <= out[j - 1].score;
			}
			if (!ok)
				ck_pr_store_int(&r->bad, 1);
		}
		ck_epoch_end(rec, NULL);
	}
	ck_pr_add_64(&r->reads, n);
	ck_epoch_unregister(rec);
	return NULL;
}

static void test_race(const struct snap *s1, const struct snap *s2)
{
	static struct trend t;
	ck_epoch_register(&epoch, &race_wrec, NULL);
	CHECK(trend_init(&t, &race_wrec, 1000, 0) == 0);
	struct race r = { &t, s1, s2, 0, 0, 0, 0, 0 };
	pthread_t th[3];
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, race_reader, &r) == 0);
	CHECK(pthread_create(&th[2], NULL, race_writer, &r) == 0);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	CHECK(!r.bad);
	CHECK(r.reads > 0 && r.writes > 0 && t.publishes > 10);
	fprintf(stderr, "race: %llu adds, %llu publishes, %llu reads\n", (unsigned long long)r.writes,
		(unsigned long long)t.publishes, (unsigned long long)r.reads);
	trend_destroy(&t);
	ck_epoch_barrier(&race_wrec);
	ck_epoch_unregister(&race_wrec);
}

int main(void)
{
	enum { DIM = 4 };
	static struct snapb_item items[N_ITEMS];
	static char ids[N_ITEMS][16];
	static float emb[N_ITEMS * DIM];
	static const char *cats[] = { "A", "B", "C" };
	for (uint32_t i = 0; i < N_ITEMS; i++) {
		snprintf(ids[i], sizeof(ids[i]), "i-%u", i);
		items[i] = (struct snapb_item){ ids[i], "", cats[cat_of(i)], 1.0f, i % 17 == 5 ? 0u : 10u,
						i % 23 != 7 };
		for (int d = 0; d < DIM; d++)
			emb[i * DIM + d] = (float)((i * 7 + (uint32_t)d * 3) % 11) / 11.0f;
	}
	struct snapb_input in = { .model_version = "trend", .dim = DIM, .n_items = N_ITEMS, .items = items,
				  .item_emb = emb };
	char path[] = "/tmp/recd-test-trend-XXXXXX", err[256];
	int fd = mkstemp(path);
	if (fd < 0)
		return 1;
	close(fd);
	CHECK(snapb_write(&in, path, err, sizeof(err)) == 0);
	struct snap *s, *s2;
	if (snap_open(path, &s, err, sizeof(err)) || snap_open(path, &s2, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		unlink(path);
		return 1;
	}
	unlink(path);
	s->generation = 1;
	s2->generation = 2;
	CHECK(s->n_items == N_ITEMS && s->n_categories == 3);
	for (uint32_t i = 0; i < N_ITEMS; i++)
		if (s->item_category[i] != cat_of(i) || snap_item_servable(s, i) != servable(i)) {
			fprintf(stderr, "snapshot item %u not as built\n", i);
			failures++;
			break;
		}

	ck_epoch_init(&epoch);
	ck_epoch_register(&epoch, &wrec, NULL);
	test_weights();
	test_decay(s);
	test_long_run(s);
	test_lists(s);
	test_republish(s);
	test_bound(s);
	ck_epoch_unregister(&wrec);
	test_race(s, s2);
	snap_close(s);
	snap_close(s2);
	if (failures)
		fprintf(stderr, "test_trend: %d failures\n", failures);
	return failures ? 1 : 0;
}
