/* test_exp_gauge.c: the quality gauges: coverage against known distinct
 * counts (small sets through observe, 100k keys through the sketch and
 * through a million-item snapshot), the window forgetting and resetting
 * lazily, diversity (one category, orthogonal and identical vectors, the
 * 20-item limit, a brute-force reference), popularity percentiles and the
 * head, strategy counts, independent cells, and the rank table rebuilt on
 * a snapshot change. Prints the rank-table build time and the cost of one
 * observe (10 items, dim 64); neither is asserted beyond a sanity bound. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/common.h"
#include "exp/exp_gauge.h"
#include "snap/snapb.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

#define N_ITEMS 1000
#define DIM 64
#define T0 1700000000123ull     /* mid-slice, wall-clock-like */
#define W_MS 600000ull
#define S_MS 60000ull

static uint64_t rng = 88172645463325252ull;
static uint64_t xrand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}
static float frand(void)
{
	return (float)(xrand() >> 40) / (float)(1u << 24) - 0.5f;
}

static bool near(double a, double b, double tol)
{
	return fabs(a - b) <= tol;
}

/* Item i: category "c<i % 10>" (interned first seen, so index i % 10);
 * items 0..63 the unit vectors e_i; 64..67 one shared vector; the rest
 * random. Popularity a permutation of 0..999, so the percentile of item i
 * is exactly pop(i) / 999. The reversed snapshot (popularity 999 - pop)
 * shares the ids and the embeddings. */
static float pop_of(uint32_t i)
{
	return (float)((i * 7919u) % N_ITEMS);
}
static float item_emb[N_ITEMS * DIM];

static struct snap *build_snap(bool reversed)
{
	static struct snapb_item items[N_ITEMS];
	static char ids[N_ITEMS][16], cats[10][4];
	static float pop[N_ITEMS];
	for (int c = 0; c < 10; c++)
		snprintf(cats[c], sizeof(cats[c]), "c%d", c);
	for (uint32_t i = 0; i < N_ITEMS; i++) {
		snprintf(ids[i], sizeof(ids[i]), "item-%u", i);
		items[i] = (struct snapb_item){ ids[i], "t", cats[i % 10], 1.0f, 5, true };
		pop[i] = reversed ? (float)(N_ITEMS - 1) - pop_of(i) : pop_of(i);
		for (uint32_t d = 0; d < DIM && !reversed; d++)
			item_emb[i * DIM + d] = i < 64 ? (d == i ? 1.0f : 0.0f) : frand();
	}
	for (uint32_t i = 65; i < 68; i++)
		memcpy(&item_emb[i * DIM], &item_emb[64 * DIM], sizeof(float) * DIM);
	struct snapb_input in = {
		.model_version = "test-gauge", .dim = DIM, .n_items = N_ITEMS, .items = items,
		.item_emb = item_emb, .item_popularity = pop, .popular_k = 100,
	};
	char path[] = "/tmp/recd-test-gauge-XXXXXX", err[256];
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	close(fd);
	struct snap *s = NULL;
	if (snapb_write(&in, path, err, sizeof(err)) || snap_open(path, &s, err, sizeof(err))) {
		fprintf(stderr, "snapshot: %s\n", err);
		s = NULL;
	}
	unlink(path);
	return s;
}

/* A snapshot by hand with only what the gauges read (ids, categories,
 * popularity, embeddings): a million items without writing a file. */
struct hand_snap {
	struct snap s;
	uint32_t *offsets, *cat;
	char *pool;
	float *pop, *emb;
};

static bool hand_build(struct hand_snap *h, uint32_t n, bool flat_pop)
{
	memset(h, 0, sizeof(*h));
	h->offsets = malloc(((size_t)n + 1) * sizeof(uint32_t));
	h->pool = malloc((size_t)n * 12);
	h->cat = calloc(n, sizeof(uint32_t));
	h->pop = malloc((size_t)n * sizeof(float));
	h->emb = aligned_alloc(64, (size_t)n * 16 * sizeof(float));
	if (!h->offsets || !h->pool || !h->cat || !h->pop || !h->emb)
		return false;
	uint32_t off = 0;
	for (uint32_t i = 0; i < n; i++) {
		h->offsets[i] = off;
		off += (uint32_t)sprintf(h->pool + off, "h%u", i);
		/* many ties (i / 7), in an order unrelated to the index */
		h->pop[i] = flat_pop ? 3.0f : (float)((i * 2654435761u) % n / 7);
		for (int d = 0; d < 16; d++)
			h->emb[(size_t)i * 16 + d] = d == 0 ? 1.0f : 0.0f;
	}
	h->offsets[n] = off;
	h->s.n_items = n;
	h->s.dim = 16;
	h->s.stride = 16;
	h->s.n_categories = 1;
	h->s.item_ids = (struct snap_strtab){ h->offsets, h->pool, n };
	h->s.item_category = h->cat;
	h->s.item_popularity = h->pop;
	h->s.item_emb = h->emb;
	return true;
}

static void hand_free(struct hand_snap *h)
{
	free(h->offsets);
	free(h->pool);
	free(h->cat);
	free(h->pop);
	free(h->emb);
}

static void test_init(void)
{
	struct exp_gauge g;
	CHECK(exp_gauge_init(&g, 0, 0, 0) < 0);
	CHECK(exp_gauge_init(&g, EXP_GAUGE_MAX_CELLS + 1, 0, 0) < 0);
	CHECK(exp_gauge_init(&g, 4, 600, 70) < 0);        /* not a multiple */
	CHECK(exp_gauge_init(&g, 4, 30, 60) < 0);         /* slice longer than the window */
	CHECK(exp_gauge_init(&g, 4, 3600, 1) < 0);        /* too many slices */
	CHECK(exp_gauge_init(&g, 4, 0, 0) == 0);
	CHECK(g.n_slices == 10 && g.slice_ms == 60000);
	exp_gauge_free(&g);
	CHECK(exp_gauge_init(&g, EXP_GAUGE_MAX_CELLS, 120, 10) == 0);
	CHECK(g.n_slices == 12);
	exp_gauge_free(&g);
}

static void test_hll(void)
{
	static uint8_t reg[EXP_GAUGE_HLL_M];
	memset(reg, 0, sizeof(reg));
	CHECK(exp_gauge_hll_estimate(reg) == 0);
	/* Cardinalities across the small-range switch and the raw range; a
	 * re-added key changes nothing. Tolerance 3% at 100k (1.85 sigma),
	 * 4 sigma elsewhere (deterministic keys: this either always passes or
	 * never). */
	static const uint32_t marks[] = { 1, 10, 100, 1000, 5000, 10000, 20000, 50000, 100000, 300000 };
	uint32_t m = 0;
	for (uint64_t k = 1; k <= 300000; k++) {
		exp_gauge_hll_add(reg, k * 0x9E3779B97F4A7C15ull);
		exp_gauge_hll_add(reg, 1 * 0x9E3779B97F4A7C15ull);
		if (k == marks[m]) {
			double e = exp_gauge_hll_estimate(reg), err = fabs(e - (double)k) / (double)k;
			printf("hll: %6lu distinct -> %9.1f (%+.2f%%)\n", (unsigned long)k, e, 100 * (e - (double)k) / (double)k);
			if (k <= 100)
				CHECK(fabs(e - (double)k) <= 1.0);
			else
				CHECK(err <= (k == 100000 ? 0.03 : 4 * 0.0163));
			m++;
		}
	}
}

static void test_coverage(const struct snap *s)
{
	struct exp_gauge g;
	struct exp_gauge_view v;
	CHECK(exp_gauge_init(&g, 8, 0, 0) == 0);
	CHECK(exp_gauge_snapshot(&g, s) == 0);
	exp_gauge_read(&g, 0, s, T0, &v);
	CHECK(v.lists == 0 && v.items == 0 && v.distinct_items == 0 && v.coverage == 0);

	/* 50 distinct items (every 20th), served twice in lists of 10, some
	 * of it in the next slice: still 50. */
	for (int rep = 0; rep < 2; rep++)
		for (uint32_t l = 0; l < 5; l++) {
			uint32_t list[10];
			for (uint32_t k = 0; k < 10; k++)
				list[k] = (l * 10 + k) * 20;
			exp_gauge_observe(&g, 0, s, list, 10, 0, T0 + (uint64_t)rep * S_MS);
		}
	exp_gauge_read(&g, 0, s, T0 + S_MS, &v);
	CHECK(v.lists == 10 && v.items == 100);
	CHECK(near(v.distinct_items, 50, 1.5));
	CHECK(near(v.coverage, 0.05, 0.0015));
	/* Indexes past the catalogue are ignored. */
	uint32_t bad[3] = { N_ITEMS, 5, UINT32_MAX };
	exp_gauge_observe(&g, 0, s, bad, 3, 0, T0 + S_MS);
	exp_gauge_read(&g, 0, s, T0 + S_MS, &v);
	CHECK(v.lists == 11 && v.items == 101 && near(v.distinct_items, 51, 1.5));
	/* Coverage against the snapshot read with; NULL: none. */
	exp_gauge_read(&g, 0, NULL, T0 + S_MS, &v);
	CHECK(v.coverage == 0 && near(v.distinct_items, 51, 1.5));
	/* The whole catalogue: coverage ~1, never above. */
	for (uint32_t i = 0; i < N_ITEMS; i++)
		exp_gauge_observe(&g, 1, s, &i, 1, 0, T0);
	exp_gauge_read(&g, 1, s, T0, &v);
	CHECK(v.coverage <= 1.0 && v.coverage > 0.97);
	exp_gauge_free(&g);
}

static void test_window(const struct snap *s)
{
	struct exp_gauge g;
	struct exp_gauge_view v;
	CHECK(exp_gauge_init(&g, 2, 600, 60) == 0);
	CHECK(exp_gauge_snapshot(&g, s) == 0);
	uint32_t a[2] = { 1, 2 }, b[1] = { 3 };
	exp_gauge_observe(&g, 0, s, a, 2, 1, T0);
	exp_gauge_read(&g, 0, s, T0, &v);
	CHECK(v.lists == 1 && v.items == 2 && v.strategy[1] == 1);
	CHECK(v.span_ms == W_MS - S_MS + T0 % S_MS);   /* nine slices and the partial one */
	/* Still in at the last slice of the window... */
	uint64_t last = (T0 / S_MS + 9) * S_MS + S_MS - 1;
	exp_gauge_read(&g, 0, s, last, &v);
	CHECK(v.lists == 1 && v.items == 2 && near(v.distinct_items, 2, 0.1));
	CHECK(v.span_ms == W_MS - 1);
	/* ...gone one slice later, and at t + window + slice: zero, all of it. */
	exp_gauge_read(&g, 0, s, last + 1, &v);
	CHECK(v.lists == 0 && v.items == 0 && v.distinct_items == 0 && v.strategy[1] == 0);
	exp_gauge_read(&g, 0, s, T0 + W_MS + S_MS, &v);
	CHECK(v.lists == 0 && v.items == 0 && v.distinct_items == 0 && v.coverage == 0);
	CHECK(v.mean_categories_per_list == 0 && v.mean_popularity_percentile == 0 && v.ranked_items == 0);
	/* The ring comes round to the same slot a window later: reset first,
	 * so only the new list is there (and its sketch holds one item). */
	exp_gauge_observe(&g, 0, s, b, 1, 2, T0 + W_MS);
	exp_gauge_read(&g, 0, s, T0 + W_MS, &v);
	CHECK(v.lists == 1 && v.items == 1 && v.strategy[1] == 0 && v.strategy[2] == 1);
	CHECK(near(v.distinct_items, 1, 0.1));
	/* Slices add up across the window, and drop out one by one. */
	for (uint64_t k = 1; k < 10; k++)
		exp_gauge_observe(&g, 1, s, a, 2, 0, T0 + k * S_MS);
	exp_gauge_read(&g, 1, s, T0 + 9 * S_MS, &v);
	CHECK(v.lists == 9);
	exp_gauge_read(&g, 1, s, T0 + 12 * S_MS, &v);
	CHECK(v.lists == 7);
	/* A clock stepping back a window adds to the newer slice, erases nothing. */
	exp_gauge_observe(&g, 1, s, a, 2, 0, T0 + 9 * S_MS - W_MS);
	exp_gauge_read(&g, 1, s, T0 + 9 * S_MS, &v);
	CHECK(v.lists == 10);
	exp_gauge_free(&g);
}

static double ref_pair_distance(const uint32_t *l, uint32_t n)
{
	double sum = 0;
	uint32_t pairs = 0;
	n = MIN(n, EXP_GAUGE_DIV_ITEMS);
	for (uint32_t a = 0; a < n; a++)
		for (uint32_t b = a + 1; b < n; b++) {
			const float *x = &item_emb[l[a] * DIM], *y = &item_emb[l[b] * DIM];
			double xy = 0, xx = 0, yy = 0;
			for (int d = 0; d < DIM; d++) {
				xy += (double)x[d] * y[d];
				xx += (double)x[d] * x[d];
				yy += (double)y[d] * y[d];
			}
			sum += 1 - xy / sqrt(xx * yy);
			pairs++;
		}
	return sum / pairs;
}

static void test_diversity(const struct snap *s)
{
	struct exp_gauge g;
	struct exp_gauge_view v;
	CHECK(exp_gauge_init(&g, 8, 0, 0) == 0);
	CHECK(exp_gauge_snapshot(&g, s) == 0);
	/* One category (0, 10, 20, 30), orthogonal unit vectors. */
	uint32_t one_cat[4] = { 0, 10, 20, 30 };
	exp_gauge_observe(&g, 0, s, one_cat, 4, 0, T0);
	exp_gauge_read(&g, 0, s, T0, &v);
	CHECK(v.mean_categories_per_list == 1.0);
	CHECK(near(v.mean_pairwise_distance, 1.0, 1e-6));
	/* Identical vectors, three categories (64, 65, 66, 67: 4, 5, 6, 7). */
	uint32_t same[4] = { 64, 65, 66, 67 };
	exp_gauge_observe(&g, 1, s, same, 4, 0, T0);
	exp_gauge_read(&g, 1, s, T0, &v);
	CHECK(v.mean_categories_per_list == 4.0);
	CHECK(near(v.mean_pairwise_distance, 0.0, 1e-6));
	/* Means over lists, in one cell: categories over every list, distance
	 * over one list in EXP_GAUGE_DIST_EVERY (the 1st and the 5th here). */
	_Static_assert(EXP_GAUGE_DIST_EVERY == 4, "the lists below assume 4");
	exp_gauge_observe(&g, 2, s, one_cat, 4, 0, T0);
	for (int k = 0; k < 3; k++)
		exp_gauge_observe(&g, 2, s, one_cat, 4, 0, T0);   /* not sampled for distance */
	exp_gauge_observe(&g, 2, s, same, 4, 0, T0);
	exp_gauge_read(&g, 2, s, T0, &v);
	CHECK(near(v.mean_categories_per_list, (4 * 1.0 + 4.0) / 5, 1e-9));
	CHECK(near(v.mean_pairwise_distance, 0.5, 1e-6));
	/* A one-item list counts for categories, not for distance; an empty
	 * (or all-invalid) one for neither. */
	uint32_t single = 5, invalid = N_ITEMS + 7;
	exp_gauge_observe(&g, 2, s, &single, 1, 0, T0);
	exp_gauge_observe(&g, 2, s, &invalid, 1, 0, T0);
	exp_gauge_observe(&g, 2, s, NULL, 0, 0, T0);
	exp_gauge_read(&g, 2, s, T0, &v);
	CHECK(v.lists == 8);
	CHECK(near(v.mean_categories_per_list, (4 * 1.0 + 4.0 + 1.0) / 6, 1e-9));
	CHECK(near(v.mean_pairwise_distance, 0.5, 1e-6));
	/* Only the first 20 items: twenty of category 0, then nine others. */
	uint32_t longl[29];
	for (uint32_t k = 0; k < 20; k++)
		longl[k] = 100 + 10 * k;
	for (uint32_t k = 0; k < 9; k++)
		longl[20 + k] = 101 + k;
	exp_gauge_observe(&g, 3, s, longl, 29, 0, T0);
	exp_gauge_read(&g, 3, s, T0, &v);
	CHECK(v.mean_categories_per_list == 1.0 && v.items == 29);
	CHECK(near(v.mean_pairwise_distance, ref_pair_distance(longl, 29), 1e-4));
	/* Random lists against a brute-force reference in double. */
	double ref = 0;
	for (int l = 0; l < 50; l++) {
		uint32_t list[12];
		for (int k = 0; k < 12; k++)
			list[k] = 68 + (uint32_t)(xrand() % (N_ITEMS - 68));
		if (l % EXP_GAUGE_DIST_EVERY == 0)   /* the lists the gauge samples */
			ref += ref_pair_distance(list, 12);
		exp_gauge_observe(&g, 4, s, list, 12, 0, T0);
	}
	exp_gauge_read(&g, 4, s, T0, &v);
	CHECK(near(v.mean_pairwise_distance, ref / ((50 + EXP_GAUGE_DIST_EVERY - 1) / EXP_GAUGE_DIST_EVERY), 1e-4));
	CHECK(v.mean_pairwise_distance > 0.5 && v.mean_pairwise_distance < 1.5);
	exp_gauge_free(&g);
}

static uint32_t item_with_pop(float p)
{
	for (uint32_t i = 0; i < N_ITEMS; i++)
		if (pop_of(i) == p)
			return i;
	return 0;
}

static void test_popularity(const struct snap *s, const struct snap *s2)
{
	struct exp_gauge g;
	struct exp_gauge_view v;
	CHECK(exp_gauge_init(&g, 8, 0, 0) == 0);
	CHECK(exp_gauge_snapshot(&g, s) == 0);
	CHECK(g.head_n == 10);
	uint32_t top = item_with_pop(999), bottom = item_with_pop(0), mid = item_with_pop(500);
	uint32_t head_last = item_with_pop(990), past_head = item_with_pop(989);
	CHECK(s->n_popular > 0 && s->popular[0] == top);   /* the snapshot agrees on the top */
	exp_gauge_observe(&g, 0, s, &top, 1, 0, T0);
	exp_gauge_read(&g, 0, s, T0, &v);
	CHECK(v.ranked_items == 1 && v.mean_popularity_percentile == 1.0 && v.popular_head_share == 1.0);
	exp_gauge_observe(&g, 1, s, &bottom, 1, 0, T0);
	exp_gauge_read(&g, 1, s, T0, &v);
	CHECK(v.mean_popularity_percentile == 0.0 && v.popular_head_share == 0.0);
	uint32_t l[4] = { mid, head_last, past_head, top };
	exp_gauge_observe(&g, 2, s, l, 4, 0, T0);
	exp_gauge_read(&g, 2, s, T0, &v);
	CHECK(near(v.mean_popularity_percentile, (500 + 990 + 989 + 999) / 999.0 / 4, 1e-6));
	CHECK(v.popular_head_share == 0.5);

	/* Snapshot change: popularity reversed, so the top is now the bottom.
	 * A list still served from the old snapshot counts for coverage only. */
	CHECK(exp_gauge_snapshot(&g, s2) == 0);
	exp_gauge_observe(&g, 3, s2, &top, 1, 0, T0);
	exp_gauge_observe(&g, 3, s2, &bottom, 1, 0, T0);
	exp_gauge_read(&g, 3, s2, T0, &v);
	CHECK(v.ranked_items == 2 && near(v.mean_popularity_percentile, 0.5, 1e-9));
	exp_gauge_observe(&g, 4, s2, &bottom, 1, 0, T0);
	exp_gauge_observe(&g, 4, s, &bottom, 1, 0, T0);    /* the old one */
	exp_gauge_observe(&g, 4, s, &top, 1, 0, T0);
	exp_gauge_read(&g, 4, s2, T0, &v);
	CHECK(v.items == 3 && v.ranked_items == 1 && v.mean_popularity_percentile == 1.0);
	CHECK(v.popular_head_share == 1.0);
	CHECK(near(v.distinct_items, 2, 0.1));             /* same ids: the same keys */
	/* No table at all: still counted, nothing ranked. */
	CHECK(exp_gauge_snapshot(&g, NULL) == 0);
	exp_gauge_observe(&g, 5, s2, &top, 1, 0, T0);
	exp_gauge_read(&g, 5, s2, T0, &v);
	CHECK(v.items == 1 && v.ranked_items == 0 && v.mean_popularity_percentile == 0 &&
	      near(v.distinct_items, 1, 0.1));
	exp_gauge_free(&g);
}

static void test_strategies_cells(const struct snap *s)
{
	struct exp_gauge g;
	struct exp_gauge_view v;
	CHECK(exp_gauge_init(&g, 8, 0, 0) == 0);
	CHECK(exp_gauge_snapshot(&g, s) == 0);
	uint32_t l[3] = { 7, 8, 9 };
	for (int k = 0; k < 3; k++)
		exp_gauge_observe(&g, 3, s, l, 3, 2, T0);
	exp_gauge_observe(&g, 3, s, l, 3, 5, T0);
	exp_gauge_observe(&g, 3, s, l, 3, EXP_GAUGE_MAX_STRATEGIES - 1, T0);
	exp_gauge_observe(&g, 3, s, l, 3, 99, T0);          /* counts, under no strategy */
	exp_gauge_observe(&g, 4, s, l, 2, 7, T0);
	exp_gauge_observe(&g, 8, s, l, 3, 2, T0);           /* no such cell */
	exp_gauge_observe(&g, UINT32_MAX, s, l, 3, 2, T0);
	exp_gauge_read(&g, 3, s, T0, &v);
	CHECK(v.lists == 6 && v.items == 18);
	CHECK(v.strategy[2] == 3 && v.strategy[5] == 1 && v.strategy[EXP_GAUGE_MAX_STRATEGIES - 1] == 1);
	uint64_t sum = 0;
	for (uint32_t k = 0; k < EXP_GAUGE_MAX_STRATEGIES; k++)
		sum += v.strategy[k];
	CHECK(sum == 5);
	CHECK(near(v.distinct_items, 3, 0.1));
	exp_gauge_read(&g, 4, s, T0, &v);
	CHECK(v.lists == 1 && v.items == 2 && v.strategy[7] == 1 && v.strategy[2] == 0);
	CHECK(near(v.distinct_items, 2, 0.1));
	for (uint32_t c = 0; c < 8; c++)
		if (c != 3 && c != 4) {
			exp_gauge_read(&g, c, s, T0, &v);
			CHECK(v.lists == 0 && v.items == 0 && v.distinct_items == 0);
		}
	exp_gauge_read(&g, 8, s, T0, &v);
	CHECK(v.lists == 0);
	exp_gauge_free(&g);
}

/* A million items: the rank table's time, its ranks against a direct
 * count on samples, coverage through observe at 100k distinct, ties. */
static void test_big(void)
{
	const uint32_t n = 1000000;
	struct hand_snap h;
	struct exp_gauge g;
	struct exp_gauge_view v;
	CHECK(hand_build(&h, n, false));
	CHECK(exp_gauge_init(&g, 2, 0, 0) == 0);
	uint64_t t0 = now_ns();
	CHECK(exp_gauge_snapshot(&g, &h.s) == 0);
	double ms = (double)(now_ns() - t0) / 1e6;
	printf("rank table: %u items in %.1f ms\n", n, ms);
	CHECK(ms < 5000);   /* a sanity bound (sanitizers, loaded hosts), not the target */
	CHECK(g.head_n == 10000);
	for (int k = 0; k < 20; k++) {
		uint32_t i = (uint32_t)(xrand() % n);
		uint64_t less = 0, eq = 0;
		for (uint32_t j = 0; j < n; j++) {
			less += h.pop[j] < h.pop[i];
			eq += h.pop[j] == h.pop[i];
		}
		double want = (less + (eq - 1) / 2.0) / (n - 1);
		CHECK(near(g.table[i].pct, want, 1e-6));
		CHECK(g.table[i].rank >= n - less - eq && g.table[i].rank < n - less);
	}
	/* Ties in rank: lower index first. */
	uint32_t a = UINT32_MAX, b = UINT32_MAX;
	for (uint32_t j = 1; j < n && b == UINT32_MAX; j++)
		if (h.pop[j] == h.pop[0])
			a = 0, b = j;
	CHECK(b != UINT32_MAX && g.table[a].rank < g.table[b].rank);

	for (uint32_t i = 0; i < 100000; i++) {
		uint32_t it = (uint32_t)(((uint64_t)i * 7) % n);
		exp_gauge_observe(&g, 0, &h.s, &it, 1, 0, T0);
	}
	exp_gauge_read(&g, 0, &h.s, T0, &v);
	printf("coverage: 100000 distinct of %u -> %.0f (%+.2f%%)\n", n, v.distinct_items,
	       100 * (v.distinct_items - 100000) / 100000);
	CHECK(near(v.coverage, 0.1, 0.003));
	CHECK(near(v.mean_popularity_percentile, 0.5, 0.01));
	CHECK(near(v.popular_head_share, 0.01, 0.002));
	exp_gauge_free(&g);
	hand_free(&h);

	/* No popularity signal: every item at the mid-rank, 0.5. */
	CHECK(hand_build(&h, 1001, true));
	CHECK(exp_gauge_init(&g, 1, 0, 0) == 0);
	CHECK(exp_gauge_snapshot(&g, &h.s) == 0);
	CHECK(g.table[0].pct == 0.5f && g.table[1000].pct == 0.5f);
	CHECK(g.table[0].rank == 0 && g.table[1000].rank == 1000);
	exp_gauge_free(&g);
	hand_free(&h);
	/* One item: it is the most popular. */
	CHECK(hand_build(&h, 1, false));
	CHECK(exp_gauge_init(&g, 1, 0, 0) == 0);
	CHECK(exp_gauge_snapshot(&g, &h.s) == 0);
	CHECK(g.table[0].pct == 1.0f && g.head_n == 1);
	exp_gauge_free(&g);
	hand_free(&h);
}

static void bench_observe(const struct snap *s)
{
	enum { LISTS = 1024, REPS = 200 };
	static uint32_t lists[LISTS][10];
	struct exp_gauge g;
	struct exp_gauge_view v;
	CHECK(exp_gauge_init(&g, 16, 0, 0) == 0);
	CHECK(exp_gauge_snapshot(&g, s) == 0);
	for (int l = 0; l < LISTS; l++)
		for (int k = 0; k < 10; k++)
			lists[l][k] = (uint32_t)(xrand() % N_ITEMS);
	uint64_t t0 = now_ns();
	for (int r = 0; r < REPS; r++)
		for (uint32_t l = 0; l < LISTS; l++)
			exp_gauge_observe(&g, l & 15, s, lists[l], 10, l & 3, T0 + (uint64_t)r * 1000);
	double ns = (double)(now_ns() - t0) / (LISTS * REPS);
	t0 = now_ns();
	for (int r = 0; r < 100; r++)
		exp_gauge_read(&g, (uint32_t)r & 15, s, T0 + REPS * 1000, &v);
	double read_us = (double)(now_ns() - t0) / 100 / 1e3;
	printf("observe: %.0f ns per 10-item list at dim %u; read: %.1f us (10 slices)\n", ns, s->dim, read_us);
	exp_gauge_read(&g, 0, s, T0 + REPS * 1000, &v);
	CHECK(v.lists == (uint64_t)REPS * LISTS / 16);
	exp_gauge_free(&g);
}

int main(void)
{
	struct snap *s = build_snap(false), *s2 = build_snap(true);
	if (!s || !s2)
		return 1;
	CHECK(s->dim == DIM && s->n_items == N_ITEMS && s->n_categories == 10);
	CHECK(s->item_category[13] == 3);
	test_init();
	test_hll();
	test_coverage(s);
	test_window(s);
	test_diversity(s);
	test_popularity(s, s2);
	test_strategies_cells(s);
	test_big();
	bench_observe(s);
	snap_close(s);
	snap_close(s2);
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
