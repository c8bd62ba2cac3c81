/* test_foldin.c: ALS fold-in (live/foldin) on small real snapshots: the
 * solve against Gaussian elimination on the normal equations written out
 * over every item (no Gram trick), recovery of a planted user's top items,
 * the prior's pull, the Gram matrix (both kernels, any split into steps,
 * equal to the plain row-order sum bit for bit), live touches as inputs,
 * and the error returns. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ck_epoch.h>
#include "events/event.h"
#include "live/foldin.h"
#include "live/live.h"
#include "snap/snapb.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double urand(void)   /* [0, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) * 0x1p-53;
}

static double gauss(void)
{
	double u = urand() + 1e-300, v = urand();
	return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* A snapshot of n items "i<N>" (and n_users users "u<N>") with these
 * embeddings; NULL on failure. */
static struct snap *make_snap(uint32_t n, uint32_t dim, const float *emb, uint32_t n_users, const float *uemb)
{
	struct snapb_item *items = calloc(n, sizeof(*items));
	char (*ids)[16] = calloc(n, 16), (*uids)[16] = calloc(n_users + 1, 16);
	const char **up = calloc(n_users + 1, sizeof(*up));
	for (uint32_t i = 0; i < n; i++) {
		snprintf(ids[i], 16, "i%u", i);
		items[i] = (struct snapb_item){ ids[i], "t", "c", 1.0f, 5, true };
	}
	for (uint32_t u = 0; u < n_users; u++) {
		snprintf(uids[u], 16, "u%u", u);
		up[u] = uids[u];
	}
	struct snapb_input in = { .model_version = "test-foldin", .dim = dim, .n_items = n, .items = items,
				  .item_emb = emb, .n_users = n_users, .user_ids = up, .user_emb = uemb };
	char path[] = "/tmp/recd-test-foldin-XXXXXX", err[256] = "";
	struct snap *s = NULL;
	int fd = mkstemp(path);
	if (fd >= 0) {
		close(fd);
		if (snapb_write(&in, path, err, sizeof(err)) || snap_open(path, &s, err, sizeof(err))) {
			fprintf(stderr, "snapshot: %s\n", err);
			s = NULL;
		}
		unlink(path);
	}
	free(items), free(ids), free(uids), free(up);
	return s;
}

static float *random_matrix(uint32_t rows, uint32_t dim)
{
	float *m = malloc(sizeof(float) * rows * dim);
	for (size_t k = 0; k < (size_t)rows * dim; k++)
		m[k] = (float)gauss();
	return m;
}

/* n distinct indexes below `below`. */
static void pick_distinct(uint32_t *out, uint32_t n, uint32_t below)
{
	for (uint32_t k = 0; k < n;) {
		uint32_t v = (uint32_t)(urand() * below);
		bool dup = false;
		for (uint32_t j = 0; j < k && !dup; j++)
			dup = out[j] == v;
		if (!dup)
			out[k++] = v;
	}
}

/* Solve a x = b (d x d, overwritten) by Gaussian elimination with partial
 * pivoting. */
static void gauss_solve(double *a, double *b, double *x, uint32_t d)
{
	for (uint32_t c = 0; c < d; c++) {
		uint32_t p = c;
		for (uint32_t r = c + 1; r < d; r++)
			if (fabs(a[r * d + c]) > fabs(a[p * d + c]))
				p = r;
		for (uint32_t k = 0; k < d; k++) {
			double t = a[c * d + k];
			a[c * d + k] = a[p * d + k];
			a[p * d + k] = t;
		}
		double t = b[c];
		b[c] = b[p];
		b[p] = t;
		for (uint32_t r = c + 1; r < d; r++) {
			double f = a[r * d + c] / a[c * d + c];
			for (uint32_t k = c; k < d; k++)
				a[r * d + k] -= f * a[c * d + k];
			b[r] -= f * b[c];
		}
	}
	for (uint32_t r = d; r-- > 0;) {
		double t = b[r];
		for (uint32_t k = r + 1; k < d; k++)
			t -= a[r * d + k] * x[k];
		x[r] = t / a[r * d + r];
	}
}

/* The minimiser of sum_i c_i (p_i - x.y_i)^2 + lambda |x|^2 + prior |x - x0|^2
 * over every item, its normal equations summed item by item. */
static void reference(const float *Y, uint32_t n_items, uint32_t dim, const uint32_t *items, const float *r,
		      uint32_t n, const float *x0, const struct foldin_params *p, double *x)
{
	double *a = calloc((size_t)dim * dim, sizeof(double)), *b = calloc(dim, sizeof(double));
	for (uint32_t i = 0; i < n_items; i++) {
		double c = 1, pref = 0;
		for (uint32_t k = 0; k < n; k++)
			if (items[k] == i) {
				c = p->log_eps > 0 ? 1 + p->alpha * log(1 + r[k] / p->log_eps) : 1 + p->alpha * r[k];
				pref = 1;
			}
		const float *y = Y + (size_t)i * dim;
		for (uint32_t u = 0; u < dim; u++) {
			for (uint32_t v = 0; v < dim; v++)
				a[u * dim + v] += c * y[u] * y[v];
			b[u] += c * pref * y[u];
		}
	}
	double reg = p->lambda + (x0 ? p->prior : 0);
	for (uint32_t u = 0; u < dim; u++) {
		a[u * dim + u] += reg;
		if (x0)
			b[u] += p->prior * x0[u];
	}
	gauss_solve(a, b, x, dim);
	free(a), free(b);
}

/* (1) the solve equals a different, direct solve of the same problem. */
static void test_exact(void)
{
	const uint32_t N = 300, D = 13, n = 30;   /* D not a multiple of the 4 x 8 tiles */
	float *Y = random_matrix(N, D);
	struct snap *s = make_snap(N, D, Y, 0, NULL);
	CHECK(s != NULL);
	if (!s)
		return;
	struct foldin_gram g = { 0 };
	CHECK(foldin_gram_build(s, &g) == 0 && foldin_gram_matches(&g, s));
	double *scratch = malloc(sizeof(double) * foldin_scratch_doubles(D));
	uint32_t items[30];
	float r[30], x0[13], out[13];
	double ref[13];
	for (uint32_t d = 0; d < D; d++)
		x0[d] = (float)gauss();
	struct foldin_params cases[] = {
		{ .lambda = 0.1, .alpha = 10 },
		{ .lambda = 10, .alpha = 1 },
		{ .lambda = 0.1, .alpha = 3, .log_eps = 0.5 },
		{ .lambda = 1, .alpha = 10, .prior = 5 },
	};
	for (uint32_t t = 0; t < sizeof(cases) / sizeof(cases[0]); t++) {
		for (int rep = 0; rep < 5; rep++) {
			pick_distinct(items, n, N);
			for (uint32_t k = 0; k < n; k++)
				r[k] = (float)(0.1 + 2 * urand());
			const float *prior = cases[t].prior > 0 ? x0 : NULL;
			CHECK(foldin_solve(&g, s, items, r, n, prior, &cases[t], scratch, out) == 0);
			reference(Y, N, D, items, r, n, prior, &cases[t], ref);
			double worst = 0, scale = 0;
			for (uint32_t d = 0; d < D; d++) {
				worst = fmax(worst, fabs(out[d] - ref[d]));
				scale = fmax(scale, fabs(ref[d]));
			}
			if (!(worst <= 1e-6 * fmax(scale, 1e-3))) {
				fprintf(stderr, "case %u: |foldin - reference| %.3g (scale %.3g)\n", t, worst, scale);
				failures++;
			}
		}
	}
	/* The raw entry point on an unpadded copy of Y: the same bits. */
	float out2[13];
	CHECK(foldin_solve(&g, s, items, r, n, NULL, &foldin_default_params, scratch, out) == 0);
	CHECK(foldin_solve_rows(g.m, D, Y, D, items, r, n, NULL, &foldin_default_params, scratch, out2) == 0);
	CHECK(!memcmp(out, out2, sizeof(out)));
	free(scratch);
	foldin_gram_free(&g);
	snap_close(s);
	free(Y);
}

static void topk(const float *Y, uint32_t N, uint32_t D, const double *q, uint32_t k, uint32_t *out)
{
	double best[16];
	uint32_t m = 0;
	for (uint32_t i = 0; i < N; i++) {
		double v = 0;
		for (uint32_t d = 0; d < D; d++)
			v += q[d] * Y[(size_t)i * D + d];
		uint32_t at = m < k ? m++ : k;
		while (at > 0 && best[at - 1] < v) {
			if (at < k)
				best[at] = best[at - 1], out[at] = out[at - 1];
			at--;
		}
		if (at < k)
			best[at] = v, out[at] = i;
	}
}

static uint32_t overlap(const uint32_t *a, const uint32_t *b, uint32_t k)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < k; i++)
		for (uint32_t j = 0; j < k; j++)
			n += a[i] == b[j];
	return n;
}

/* (2) a user who touched 30 items among the 100 a planted vector scores
 * highest folds into a vector whose top 10 are the planted top 10 for the
 * most part (chance: 10 * 10 / 2000 = 0.05 of them). A control user with
 * 30 random items must score near chance, or the measure proves nothing. */
static void test_recovery(void)
{
	const uint32_t N = 2000, D = 16, n = 30, USERS = 20;
	float *Y = random_matrix(N, D);
	struct snap *s = make_snap(N, D, Y, 0, NULL);
	CHECK(s != NULL);
	if (!s)
		return;
	struct foldin_gram g = { 0 };
	CHECK(foldin_gram_build(s, &g) == 0);
	double *scratch = malloc(sizeof(double) * foldin_scratch_doubles(D));
	uint32_t planted_hits = 0, random_hits = 0;
	for (uint32_t u = 0; u < USERS; u++) {
		double pu[16], xq[16];
		for (uint32_t d = 0; d < D; d++)
			pu[d] = gauss();
		uint32_t top100[100], picks[30], items[30], want[10], got[10];
		topk(Y, N, D, pu, 10, want);
		/* the planted top 100, by selection */
		double *sc = malloc(sizeof(double) * N);
		for (uint32_t i = 0; i < N; i++) {
			sc[i] = 0;
			for (uint32_t d = 0; d < D; d++)
				sc[i] += pu[d] * Y[(size_t)i * D + d];
		}
		for (uint32_t k = 0; k < 100; k++) {
			uint32_t b = UINT32_MAX;
			for (uint32_t i = 0; i < N; i++)
				if (sc[i] > -INFINITY && (b == UINT32_MAX || sc[i] > sc[b]))
					b = i;
			top100[k] = b;
			sc[b] = -INFINITY;
		}
		free(sc);
		pick_distinct(picks, n, 100);
		float r[30], x[16];
		for (uint32_t k = 0; k < n; k++)
			items[k] = top100[picks[k]], r[k] = 1;
		CHECK(foldin_solve(&g, s, items, r, n, NULL, &foldin_default_params, scratch, x) == 0);
		for (uint32_t d = 0; d < D; d++)
			xq[d] = x[d];
		topk(Y, N, D, xq, 10, got);
		planted_hits += overlap(want, got, 10);
		pick_distinct(items, n, N);
		CHECK(foldin_solve(&g, s, items, r, n, NULL, &foldin_default_params, scratch, x) == 0);
		for (uint32_t d = 0; d < D; d++)
			xq[d] = x[d];
		topk(Y, N, D, xq, 10, got);
		random_hits += overlap(want, got, 10);
	}
	double mean = (double)planted_hits / USERS, control = (double)random_hits / USERS;
	printf("recovery: top-10 overlap with the planted top 10: %.2f of 10 (random touches: %.2f; chance 0.05)\n",
	       mean, control);
	CHECK(mean >= 4.0);
	CHECK(control <= 1.0);
	free(scratch);
	foldin_gram_free(&g);
	snap_close(s);
	free(Y);
}

/* (3) a heavy prior returns x0; a growing prior moves x steadily to it. */
static void test_prior(void)
{
	const uint32_t N = 200, D = 8, n = 12;
	float *Y = random_matrix(N, D);
	struct snap *s = make_snap(N, D, Y, 0, NULL);
	CHECK(s != NULL);
	if (!s)
		return;
	struct foldin_gram g = { 0 };
	CHECK(foldin_gram_build(s, &g) == 0);
	double scratch[8 * 8 + 24];
	CHECK(foldin_scratch_doubles(D) == sizeof(scratch) / sizeof(scratch[0]));
	uint32_t items[12];
	float r[12], x0[8], x[8];
	pick_distinct(items, n, N);
	for (uint32_t k = 0; k < n; k++)
		r[k] = 1;
	double nx0 = 0;
	for (uint32_t d = 0; d < D; d++) {
		x0[d] = (float)gauss();
		nx0 = fmax(nx0, fabs(x0[d]));
	}
	double prev = INFINITY;
	const double priors[] = { 0, 1, 10, 100, 1000, 1e4, 1e9 };
	for (uint32_t t = 0; t < sizeof(priors) / sizeof(priors[0]); t++) {
		struct foldin_params p = foldin_default_params;
		p.prior = priors[t];
		CHECK(foldin_solve(&g, s, items, r, n, x0, &p, scratch, x) == 0);
		double dist = 0;
		for (uint32_t d = 0; d < D; d++)
			dist = fmax(dist, fabs(x[d] - x0[d]));
		CHECK(dist < prev);
		prev = dist;
		if (priors[t] == 1e9)
			CHECK(dist <= 1e-5 * nx0);
		if (priors[t] == 0)
			CHECK(dist > 0.1 * nx0);   /* no pull: somewhere else */
	}
	/* A prior without an x0 is ignored: plain fold-in. */
	float plain[8];
	struct foldin_params p = foldin_default_params;
	CHECK(foldin_solve(&g, s, items, r, n, NULL, &p, scratch, plain) == 0);
	p.prior = 50;
	CHECK(foldin_solve(&g, s, items, r, n, NULL, &p, scratch, x) == 0);
	CHECK(!memcmp(plain, x, sizeof(x)));
	/* Nothing touched, with a prior: (Y'Y + (lambda + prior) I) x = prior x0. */
	p.prior = 1e9;
	CHECK(foldin_solve(&g, s, items, r, 0, x0, &p, scratch, x) == 0);
	for (uint32_t d = 0; d < D; d++)
		CHECK(fabs(x[d] - x0[d]) <= 1e-5 * nx0);
	foldin_gram_free(&g);
	snap_close(s);
	free(Y);
}

/* (4) Y'Y by steps of any size, by either kernel, equals the plain
 * row-order sum in double, bit for bit. */
static void test_gram(void)
{
	const uint32_t N = 517, dims[] = { 1, 5, 13, 16, 24, 64 };
	for (uint32_t t = 0; t < sizeof(dims) / sizeof(dims[0]); t++) {
		uint32_t D = dims[t];
		float *Y = random_matrix(N, D);
		struct snap *s = make_snap(N, D, Y, 0, NULL);
		CHECK(s != NULL);
		if (!s) {
			free(Y);
			continue;
		}
		double *naive = malloc(sizeof(double) * D * D);
		for (uint32_t a = 0; a < D; a++)
			for (uint32_t b = 0; b < D; b++) {
				double v = 0;
				for (uint32_t r = 0; r < N; r++)
					v += (double)Y[(size_t)r * D + a] * (double)Y[(size_t)r * D + b];
				naive[a * D + b] = v;
			}
		struct foldin_gram one = { 0 }, g = { 0 };
		CHECK(foldin_gram_build(s, &one) == 0);
		CHECK(!memcmp(one.m, naive, sizeof(double) * D * D));
		const uint32_t steps[] = { 1, 7, 32, 33, 1000 };
		for (uint32_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++)
			for (int portable = 0; portable < 2; portable++) {
				CHECK(foldin_gram_begin(&g, s) == 0);
				g.portable = portable;
				int r, calls = 0;
				while ((r = foldin_gram_step(&g, s, steps[k])) == 0) {
					CHECK(!foldin_gram_matches(&g, s));
					calls++;
				}
				CHECK(r == 1 && foldin_gram_matches(&g, s));
				CHECK(calls == (int)((N + steps[k] - 1) / steps[k]) - 1);
				CHECK(!memcmp(g.m, naive, sizeof(double) * D * D));
			}
		/* Raw rows (recd-train's use), split unevenly. */
		foldin_gram_reset(&g);
		foldin_gram_add(&g, Y, D, 100);
		foldin_gram_add(&g, Y + 100 * D, D, N - 100);
		foldin_gram_finish(&g);
		CHECK(!memcmp(g.m, naive, sizeof(double) * D * D));
		free(naive);
		foldin_gram_free(&one);
		foldin_gram_free(&g);
		snap_close(s);
		free(Y);
	}
}

static uint64_t K(const char *id)
{
	return event_key(id, strlen(id));
}

static void apply(struct live *lv, const struct snap *s, uint8_t type, const char *user, const char *item)
{
	static uint64_t ts = 1700000000000ull;
	struct event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.ts_ms = ts++;
	ev.flags = EVENT_HAS_USER | EVENT_HAS_ITEM;
	ev.user_key = K(user);
	ev.item_key = K(item);
	ev.value = 1;
	CHECK(live_apply(lv, &ev, s) == 0);
}

/* (5) touches to inputs, and the error returns. */
static void test_inputs(void)
{
	const uint32_t N = 100, D = 8;
	float *Y = random_matrix(N, D);
	struct snap *s = make_snap(N, D, Y, 0, NULL), *other = make_snap(N, D, Y, 0, NULL);
	CHECK(s && other);
	if (!s || !other)
		return;
	static ck_epoch_t epoch;
	static ck_epoch_record_t wrec;
	ck_epoch_init(&epoch);
	ck_epoch_register(&epoch, &wrec, NULL);
	struct live lv;
	CHECK(live_init(&lv, D, 1000, &wrec) == 0);
	uint32_t items[FOLDIN_MAX_INPUTS];
	float r[FOLDIN_MAX_INPUTS];

	apply(&lv, s, EVENT_VIEW, "alice", "i3");
	apply(&lv, s, EVENT_CLICK, "alice", "i3");
	apply(&lv, s, EVENT_VIEW, "alice", "i5");
	apply(&lv, s, EVENT_ADD_TO_CART, "alice", "i7");
	apply(&lv, s, EVENT_PURCHASE, "alice", "i7");
	apply(&lv, s, EVENT_VIEW, "alice", "not-in-the-snapshot");
	apply(&lv, s, EVENT_RATING, "alice", "i9");
	apply(&lv, s, EVENT_PURCHASE, "alice", "i11");
	const struct live_user *u = live_user_get(&lv, K("alice"));
	CHECK(u != NULL);
	uint32_t n = foldin_user_inputs(s, u, items, r, FOLDIN_MAX_INPUTS);
	/* newest first; i7 = purchase 1 + add_to_cart 0.6; i3 = click 0.3 + view 0.2;
	 * the rating and the unknown key left out; purchases not counted twice */
	CHECK(n == 4);
	if (n == 4) {
		CHECK(items[0] == 11 && r[0] == 1.0f);
		CHECK(items[1] == 7 && fabsf(r[1] - 1.6f) < 1e-6f);
		CHECK(items[2] == 5 && fabsf(r[2] - 0.2f) < 1e-6f);
		CHECK(items[3] == 3 && fabsf(r[3] - 0.5f) < 1e-6f);
	}
	CHECK(foldin_user_inputs(s, u, items, r, 2) == 2 && items[0] == 11 && items[1] == 7);
	CHECK(foldin_user_inputs(s, NULL, items, r, FOLDIN_MAX_INPUTS) == 0);
	CHECK(foldin_touch_strength(EVENT_PURCHASE) > foldin_touch_strength(EVENT_ADD_TO_CART));
	CHECK(foldin_touch_strength(EVENT_ADD_TO_CART) > foldin_touch_strength(EVENT_CLICK));
	CHECK(foldin_touch_strength(EVENT_CLICK) > foldin_touch_strength(EVENT_VIEW));
	CHECK(foldin_touch_strength(EVENT_VIEW) > 0 && foldin_touch_strength(EVENT_IMPRESSION) == 0);

	/* Once the purchases and the add_to_cart have left recent[], the
	 * purchased set and the cart still count. */
	apply(&lv, s, EVENT_ADD_TO_CART, "alice", "i20");
	for (int k = 0; k < LIVE_RECENT; k++)
		apply(&lv, s, EVENT_VIEW, "alice", "i40");
	u = live_user_get(&lv, K("alice"));
	n = foldin_user_inputs(s, u, items, r, FOLDIN_MAX_INPUTS);
	CHECK(n == 4);
	if (n == 4) {
		CHECK(items[0] == 40 && fabsf(r[0] - 0.2f * LIVE_RECENT) < 1e-4f);
		CHECK(items[1] == 20 && fabsf(r[1] - 0.6f) < 1e-6f);   /* the cart */
		CHECK(items[2] == 11 && r[2] == 1.0f);                  /* purchased, newest first */
		CHECK(items[3] == 7 && r[3] == 1.0f);
	}
	/* A purchase of an item viewed in recent[] merges into its pair. */
	apply(&lv, s, EVENT_PURCHASE, "bob", "i40");
	for (int k = 0; k < LIVE_RECENT; k++)
		apply(&lv, s, EVENT_VIEW, "bob", "i40");
	u = live_user_get(&lv, K("bob"));
	n = foldin_user_inputs(s, u, items, r, FOLDIN_MAX_INPUTS);
	CHECK(n == 1 && items[0] == 40 && fabsf(r[0] - (0.2f * LIVE_RECENT + 1.0f)) < 1e-4f);

	/* Only unknown items: nothing to fold in. */
	apply(&lv, s, EVENT_VIEW, "carol", "nope-1");
	apply(&lv, s, EVENT_PURCHASE, "carol", "nope-2");
	u = live_user_get(&lv, K("carol"));
	n = foldin_user_inputs(s, u, items, r, FOLDIN_MAX_INPUTS);
	CHECK(n == 0);

	struct foldin_gram g = { 0 };
	CHECK(foldin_gram_build(s, &g) == 0);
	double scratch[8 * 8 + 24];
	float x[8], x0[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	for (int d = 0; d < 8; d++)
		x[d] = 42;
	CHECK(foldin_solve(&g, s, items, r, 0, NULL, &foldin_default_params, scratch, x) == -ENODATA);
	CHECK(x[0] == 0 && x[7] == 0);
	struct foldin_params p = foldin_default_params;
	p.prior = 1;
	CHECK(foldin_solve(&g, s, items, r, 0, x0, &p, scratch, x) == 0);
	uint32_t bad[2] = { 3, N };
	float br[2] = { 1, 1 };
	CHECK(foldin_solve(&g, s, bad, br, 2, NULL, &p, scratch, x) == -EINVAL);
	CHECK(foldin_solve(&g, other, bad, br, 1, NULL, &p, scratch, x) == -ESTALE);
	CHECK(foldin_gram_step(&g, other, 10) == -ESTALE);
	/* A strongly negative strength breaks positive definiteness. */
	br[0] = -100;
	CHECK(foldin_solve(&g, s, bad, br, 1, NULL, &foldin_default_params, scratch, x) == -EDOM);
	CHECK(x[0] == 0);
	/* A gram not finished does not match. */
	CHECK(foldin_gram_begin(&g, s) == 0 && foldin_gram_step(&g, s, 10) == 0);
	CHECK(foldin_solve(&g, s, bad, br, 1, NULL, &foldin_default_params, scratch, x) == -ESTALE);

	foldin_gram_free(&g);
	ck_epoch_barrier(&wrec);
	live_destroy(&lv);
	ck_epoch_unregister(&wrec);
	snap_close(s);
	snap_close(other);
	free(Y);
}

/* Informational: one solve at dim 64 with 30 touches. */
static void time_solve(void)
{
	const uint32_t N = 5000, D = 64, n = 30, REPS = 2000;
	float *Y = random_matrix(N, D);
	struct snap *s = make_snap(N, D, Y, 0, NULL);
	if (!s)
		return;
	struct foldin_gram g = { 0 };
	CHECK(foldin_gram_build(s, &g) == 0);
	double *scratch = malloc(sizeof(double) * foldin_scratch_doubles(D));
	uint32_t items[30];
	float r[30], x[64];
	pick_distinct(items, n, N);
	for (uint32_t k = 0; k < n; k++)
		r[k] = 1;
	uint64_t t0 = now_ns();
	for (uint32_t k = 0; k < REPS; k++)
		CHECK(foldin_solve(&g, s, items, r, n, NULL, &foldin_default_params, scratch, x) == 0);
	printf("solve: dim %u, %u touches: %.1f us\n", D, n, (double)(now_ns() - t0) / REPS / 1000);
	free(scratch);
	foldin_gram_free(&g);
	snap_close(s);
	free(Y);
}

int main(void)
{
	test_exact();
	test_recovery();
	test_prior();
	test_gram();
	test_inputs();
	time_solve();
	if (failures) {
		fprintf(stderr, "test_foldin: %d failures\n", failures);
		return 1;
	}
	printf("test_foldin: ok\n");
	return 0;
}
