/* test_gen.c: the synthetic generator is deterministic, well-formed, and
 * its planted structure (users interact near their embedding) is real. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gen/gen.h"
#include "snap/snap_format.h"

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		failures++; \
	} \
} while (0)

static double dot(const float *a, const float *b, uint32_t dim)
{
	double s = 0;
	for (uint32_t k = 0; k < dim; k++)
		s += (double)a[k] * b[k];
	return s;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static struct gen_params small(uint64_t seed)
{
	struct gen_params p = {
		.seed = seed, .n_items = 5000, .n_users = 800, .dim = 32,
		.out_of_stock_share = -1,
	};
	return p;
}

static void test_determinism(void)
{
	struct gen_params p = small(42);
	struct gen_data a, b, c;
	char err[256];
	CHECK(gen_generate(&p, &a, err, sizeof(err)) == 0);
	CHECK(gen_generate(&p, &b, err, sizeof(err)) == 0);
	p.seed = 43;
	CHECK(gen_generate(&p, &c, err, sizeof(err)) == 0);

	size_t emb = sizeof(float) * (size_t)a.n_items * a.dim;
	CHECK(a.n_events == b.n_events);
	CHECK(memcmp(a.item_emb, b.item_emb, emb) == 0);
	CHECK(memcmp(a.user_emb, b.user_emb, sizeof(float) * (size_t)a.n_users * a.dim) == 0);
	CHECK(memcmp(a.item_popularity, b.item_popularity, sizeof(float) * a.n_items) == 0);
	bool same_events = a.n_events == b.n_events;
	for (uint64_t k = 0; same_events && k < a.n_events; k++)
		same_events = a.events[k].user == b.events[k].user && a.events[k].item == b.events[k].item &&
			      a.events[k].type == b.events[k].type && a.events[k].ts_ms == b.events[k].ts_ms;
	CHECK(same_events);
	bool same_items = true;
	for (uint32_t i = 0; i < a.n_items; i++)
		same_items &= !strcmp(a.items[i].title, b.items[i].title) &&
			      !strcmp(a.items[i].category, b.items[i].category) &&
			      a.items[i].price == b.items[i].price && a.items[i].stock == b.items[i].stock;
	CHECK(same_items);

	CHECK(memcmp(a.item_emb, c.item_emb, emb) != 0);
	CHECK(memcmp(a.item_popularity, c.item_popularity, sizeof(float) * a.n_items) != 0);
	uint32_t cat_diff = 0;
	for (uint32_t i = 0; i < a.n_items; i++)
		cat_diff += strcmp(a.items[i].category, c.items[i].category) != 0;
	CHECK(cat_diff > a.n_items / 2);
	gen_free(&a);
	gen_free(&b);
	gen_free(&c);
}

static void test_shape(void)
{
	struct gen_params p = small(7);
	struct gen_data d;
	char err[256], want[32];
	CHECK(gen_generate(&p, &d, err, sizeof(err)) == 0);
	CHECK(d.n_items == 5000 && d.n_users == 800 && d.dim == 32);
	CHECK(d.n_categories == 10);                    /* max(4, 5000 / 500) */
	CHECK(d.params.interactions_per_user == 20);    /* defaults resolved */
	/* ~20 per user on average (heavy-tailed activity, so loose bounds). */
	CHECK(d.n_events > 800 * 12 && d.n_events < 800 * 28);

	bool ids_ok = true, titles_ok = true, cats_ok = true, prices_ok = true;
	uint32_t oos = 0;
	uint32_t *per_cat = calloc(d.n_categories, sizeof(*per_cat));
	for (uint32_t i = 0; i < d.n_items; i++) {
		const struct snapb_item *it = &d.items[i];
		snprintf(want, sizeof(want), "i%u", i);
		ids_ok &= !strcmp(it->id, want);
		snprintf(want, sizeof(want), " %u", i);
		size_t tl = strlen(it->title), wl = strlen(want);
		titles_ok &= tl > wl + 3 && !strcmp(it->title + tl - wl, want) && it->title[0] >= 'A' &&
			     it->title[0] <= 'Z';
		char *end;
		unsigned long c = it->category[0] == 'c' ? strtoul(it->category + 1, &end, 10) : ~0ul;
		cats_ok &= c < d.n_categories && *end == 0;
		if (c < d.n_categories)
			per_cat[c]++;
		double cents = it->price * 100.0;
		prices_ok &= it->price >= 1 && it->price <= 500 && fabs(cents - round(cents)) < 0.01;
		oos += it->stock == 0;
		CHECK(it->stock <= 500 && it->available);
	}
	CHECK(ids_ok);
	CHECK(titles_ok);
	CHECK(cats_ok);
	CHECK(prices_ok);
	CHECK(oos > d.n_items / 100 && oos < d.n_items * 6 / 100);  /* ~3% */
	bool uids_ok = true;
	for (uint32_t u = 0; u < d.n_users; u++) {
		snprintf(want, sizeof(want), "u%u", u);
		uids_ok &= !strcmp(d.user_ids[u], want);
	}
	CHECK(uids_ok);

	/* Zipf sizes: c0 is the largest and well above the median. */
	uint32_t c0 = per_cat[0];
	qsort(per_cat, d.n_categories, sizeof(*per_cat), cmp_u32);
	CHECK(c0 == per_cat[d.n_categories - 1]);
	CHECK(c0 > 2 * per_cat[d.n_categories / 2]);
	free(per_cat);

	/* Unit norms. */
	bool norms_ok = true;
	for (uint32_t i = 0; i < d.n_items; i++) {
		const float *v = d.item_emb + (size_t)i * d.dim;
		norms_ok &= fabs(dot(v, v, d.dim) - 1.0) < 1e-4;
	}
	for (uint32_t u = 0; u < d.n_users; u++) {
		const float *v = d.user_emb + (size_t)u * d.dim;
		norms_ok &= fabs(dot(v, v, d.dim) - 1.0) < 1e-4;
	}
	CHECK(norms_ok);

	/* Events: time order, valid indexes, type mix, popularity. */
	bool sorted = true, valid = true;
	uint64_t types[3] = { 0 };
	float *pop = calloc(d.n_items, sizeof(float));
	CHECK(d.n_events > 0 && d.events[0].ts_ms == d.params.start_ts_ms);
	CHECK(d.params.start_ts_ms == 1700000000000ull);
	for (uint64_t k = 0; k < d.n_events; k++) {
		const struct gen_event *e = &d.events[k];
		sorted &= k == 0 || d.events[k - 1].ts_ms <= e->ts_ms;
		valid &= e->user < d.n_users && e->item < d.n_items && e->type <= GEN_PURCHASE;
		if (e->type <= GEN_PURCHASE && e->item < d.n_items) {
			types[e->type]++;
			const char *tn = gen_event_type_name(e->type);
			pop[e->item] += snapb_event_weight(tn, strlen(tn));
		}
	}
	CHECK(sorted);
	CHECK(valid);
	double n = (double)d.n_events;
	CHECK(fabs(types[GEN_VIEW] / n - 0.85) < 0.03);
	CHECK(fabs(types[GEN_ADD_TO_CART] / n - 0.10) < 0.02);
	CHECK(fabs(types[GEN_PURCHASE] / n - 0.05) < 0.02);
	bool pop_ok = true;
	double pop_sum = 0;
	for (uint32_t i = 0; i < d.n_items; i++) {
		pop_ok &= fabsf(pop[i] - d.item_popularity[i]) <= 1e-3f * (1 + pop[i]);
		pop_sum += d.item_popularity[i];
	}
	CHECK(pop_ok);
	/* weights view 1, cart 3, purchase 5 */
	CHECK(fabs(pop_sum - (types[0] + 3.0 * types[1] + 5.0 * types[2])) < 1e-6 * pop_sum + 1);
	free(pop);

	CHECK(!strcmp(gen_event_type_name(GEN_VIEW), "view"));
	CHECK(!strcmp(gen_event_type_name(GEN_ADD_TO_CART), "add_to_cart"));
	CHECK(!strcmp(gen_event_type_name(GEN_PURCHASE), "purchase"));

	struct snapb_input in;
	gen_snapb_input(&d, &in);
	CHECK(in.model_version && !strcmp(in.model_version, "gen-7"));
	CHECK(in.n_items == d.n_items && in.items == d.items && in.item_emb == d.item_emb);
	CHECK(in.n_users == d.n_users && in.user_emb == d.user_emb && in.dim == d.dim);
	CHECK(in.item_popularity == d.item_popularity);
	CHECK(in.user_ids[3] == d.user_ids[3]);
	gen_free(&d);
}

/* The planted structure: a user's interactions sit near their embedding,
 * and items of one category sit near each other. */
static void test_structure(void)
{
	struct gen_params p = small(11);
	p.dim = 64;
	struct gen_data d;
	char err[256];
	CHECK(gen_generate(&p, &d, err, sizeof(err)) == 0);
	double inter = 0, rnd = 0;
	uint64_t state = 12345;
	for (uint64_t k = 0; k < d.n_events; k++) {
		const struct gen_event *e = &d.events[k];
		const float *uv = d.user_emb + (size_t)e->user * d.dim;
		inter += dot(uv, d.item_emb + (size_t)e->item * d.dim, d.dim);
		state = state * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t ri = (uint32_t)((state >> 33) % d.n_items);
		rnd += dot(uv, d.item_emb + (size_t)ri * d.dim, d.dim);
	}
	inter /= (double)d.n_events;
	rnd /= (double)d.n_events;
	printf("mean dot(user, interacted) %.3f vs (user, random) %.3f\n", inter, rnd);
	CHECK(inter > rnd + 0.25);

	double same = 0, cross = 0;
	uint32_t ns = 0, nx = 0;
	for (uint32_t i = 0; i + 1 < 2000; i++) {
		double s = dot(d.item_emb + (size_t)i * d.dim, d.item_emb + (size_t)(i + 1) * d.dim, d.dim);
		if (!strcmp(d.items[i].category, d.items[i + 1].category)) {
			same += s;
			ns++;
		} else {
			cross += s;
			nx++;
		}
	}
	CHECK(ns > 10 && nx > 10);
	if (ns && nx)
		CHECK(same / ns > cross / nx + 0.3);
	gen_free(&d);
}

static void test_edges(void)
{
	struct gen_data d;
	char err[256] = "";
	struct gen_params p = { .seed = 1, .n_items = 10, .dim = 0 };
	CHECK(gen_generate(&p, &d, err, sizeof(err)) == -EINVAL);
	CHECK(err[0] != 0);
	p.dim = SNAP_MAX_DIM + 1;
	CHECK(gen_generate(&p, &d, err, sizeof(err)) == -EINVAL);
	p = (struct gen_params){ .seed = 1, .n_items = 0, .dim = 8 };
	CHECK(gen_generate(&p, &d, err, sizeof(err)) == -EINVAL);

	/* No users: no events. One item, more categories than items. */
	p = (struct gen_params){ .seed = 1, .n_items = 3, .n_categories = 50, .dim = 4 };
	CHECK(gen_generate(&p, &d, err, sizeof(err)) == 0);
	CHECK(d.n_categories == 3 && d.n_events == 0 && d.n_users == 0);
	gen_free(&d);
	p = (struct gen_params){ .seed = 1, .n_items = 1, .n_users = 5, .dim = 3 };
	CHECK(gen_generate(&p, &d, err, sizeof(err)) == 0);
	CHECK(d.n_categories == 1 && !strcmp(d.items[0].id, "i0"));
	bool all_item0 = true;
	for (uint64_t k = 0; k < d.n_events; k++)
		all_item0 &= d.events[k].item == 0;
	CHECK(all_item0);
	gen_free(&d);
}

int main(void)
{
	test_determinism();
	test_shape();
	test_structure();
	test_edges();
	if (failures) {
		fprintf(stderr, "test_gen: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_gen: ok\n");
	return 0;
}
