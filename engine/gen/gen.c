/* gen.c: the synthetic data generator (see gen.h for the model).
 *
 * Every random stage draws from its own xoshiro256** stream, seeded by
 * splitmix64 from (seed, stage), so changing how much one stage consumes
 * never shifts another: item prices do not change when the interaction
 * sampler is reworked. Strings live in one block sized exactly up front
 * (word choices are a hash of the index, so lengths are known before any
 * string is written); the first bytes of the block hold the model version.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gen/gen.h"
#include "core/rng.h"
#include "snap/snap_format.h"

/* ---- PRNG: xoshiro256** seeded through splitmix64 ---- */

struct rng {
	uint64_t s[4];
	double spare;      /* second Box-Muller normal */
	bool has_spare;
};

static void rng_init(struct rng *r, uint64_t seed, uint64_t stage)
{
	uint64_t x = seed ^ (stage * 0xd1342543de82ef95ull);
	for (int i = 0; i < 4; i++)
		r->s[i] = rng_splitmix64(&x);
	r->has_spare = false;
}

static inline uint64_t rng_next(struct rng *r)
{
	return rng_xoshiro_next(r->s);
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double rng_unif(struct rng *r)
{
	return rng_uniform53(r->s);
}

/* Uniform in [0, n), n > 0; Lemire's multiply-shift, the tiny bias is
 * irrelevant here and it keeps the stream consumption fixed (1 draw). */
static inline uint32_t rng_below(struct rng *r, uint32_t n)
{
	return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static double rng_normal(struct rng *r)
{
	if (r->has_spare) {
		r->has_spare = false;
		return r->spare;
	}
	double u1 = 1.0 - rng_unif(r);  /* (0, 1]: log never sees 0 */
	double u2 = rng_unif(r);
	double rad = sqrt(-2.0 * log(u1));
	double th = 2.0 * M_PI * u2;
	r->spare = rad * sin(th);
	r->has_spare = true;
	return rad * cos(th);
}

/* Poisson by multiplication for small means, normal approximation above
 * (exp(-mean) underflows and the product loop gets long). */
static uint32_t rng_poisson(struct rng *r, double mean)
{
	if (mean <= 0)
		return 0;
	if (mean > 30) {
		double v = floor(mean + sqrt(mean) * rng_normal(r) + 0.5);
		return v < 0 ? 0 : (uint32_t)v;
	}
	double lim = exp(-mean), p = 1.0;
	uint32_t k = 0;
	for (;;) {
		p *= rng_unif(r);
		if (p <= lim)
			return k;
		k++;
	}
}

enum { ST_CATS = 1, ST_ITEMS, ST_ITEM_EMB, ST_USERS, ST_EVENTS, ST_WORDS };

/* ---- Zipf: one shared CDF, truncated per use ---- */

/* cdf[r] = sum_{j<=r} 1/(j+1)^s; a Zipf draw over n ranks is the first r
 * with cdf[r] > u * cdf[n-1], so one table serves every category size. */
static uint32_t zipf_draw(const double *cdf, uint32_t n, struct rng *r)
{
	double x = rng_unif(r) * cdf[n - 1];
	uint32_t lo = 0, hi = n - 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (cdf[mid] > x)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* ---- words for titles ---- */

static const char *const adjectives[] = {
	"Classic", "Compact", "Deluxe", "Eco", "Elegant", "Essential", "Premium", "Rugged",
	"Sleek", "Smart", "Soft", "Sturdy", "Vintage", "Wireless", "Portable", "Modern",
	"Handmade", "Organic", "Bold", "Cozy", "Bright", "Silent", "Rapid", "Urban",
	"Nordic", "Golden", "Midnight", "Coastal", "Alpine", "Minimal", "Pro", "Tiny",
};
static const char *const nouns[] = {
	"lamp", "kettle", "backpack", "sneaker", "jacket", "blender", "headphones", "mug",
	"notebook", "chair", "watch", "scarf", "speaker", "tent", "bottle", "pillow",
	"camera", "desk", "knife", "blanket", "sunglasses", "wallet", "drone", "teapot",
	"keyboard", "mirror", "candle", "bicycle", "umbrella", "skillet", "router", "vase",
};

/* Word choice is a hash of (seed, index): no RNG state, so the string
 * block can be sized before it is filled. */
static void title_words(uint64_t seed, uint32_t i, const char **adj, const char **noun)
{
	uint64_t x = seed ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)ST_WORDS << 56);
	uint64_t h = rng_splitmix64(&x);
	*adj = adjectives[h % ARRAY_SIZE(adjectives)];
	*noun = nouns[(h >> 32) % ARRAY_SIZE(nouns)];
}

static size_t ndigits(uint32_t v)
{
	size_t n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* ---- vectors ---- */

static void normalise(float *v, uint32_t dim)
{
	double ss = 0;
	for (uint32_t k = 0; k < dim; k++)
		ss += (double)v[k] * v[k];
	if (ss <= 0) {
		v[0] = 1.0f;  /* astronomically unlikely; keep the norm at 1 */
		return;
	}
	float inv = (float)(1.0 / sqrt(ss));
	for (uint32_t k = 0; k < dim; k++)
		v[k] *= inv;
}

static int cmp_event(const void *a, const void *b)
{
	const struct gen_event *x = a, *y = b;
	if (x->ts_ms != y->ts_ms)
		return x->ts_ms < y->ts_ms ? -1 : 1;
	if (x->user != y->user)
		return x->user < y->user ? -1 : 1;
	if (x->item != y->item)
		return x->item < y->item ? -1 : 1;
	return (int)x->type - (int)y->type;
}

const char *gen_event_type_name(uint8_t type)
{
	switch (type) {
	case GEN_VIEW: return "view";
	case GEN_ADD_TO_CART: return "add_to_cart";
	case GEN_PURCHASE: return "purchase";
	default: return "unknown";
	}
}

static void resolve_params(const struct gen_params *p, struct gen_params *r)
{
	*r = *p;
	if (r->n_categories == 0) {
		uint32_t c = r->n_items / 500;
		r->n_categories = MIN(MAX(4u, c), 1000u);
	}
	if (r->n_items > 0 && r->n_categories > r->n_items)
		r->n_categories = r->n_items;  /* every category holds an item */
	if (r->interactions_per_user == 0)
		r->interactions_per_user = 20;
	if (r->zipf_s <= 0)
		r->zipf_s = 1.1;
	if (r->out_of_stock_share < 0)
		r->out_of_stock_share = 0.03;
	if (r->start_ts_ms == 0)
		r->start_ts_ms = 1700000000000ull;
	if (r->noise <= 0)
		r->noise = 0.8;
}

#define MODEL_VERSION_BYTES 32u
#define SPAN_MS (30ull * 86400 * 1000)  /* the log covers 30 days */
#define SESSION_MS (30ull * 60 * 1000)   /* events of a session within 30 min */
#define MAX_PREFS 3
#define EXPLORE_SHARE 0.1                /* events outside the preferred set */

/* Sizes proportional to 1/(rank+1)^s, at least one item each; the
 * remainder of the rounding goes to the largest categories. */
static void category_sizes(const double *cdf, uint32_t nc, uint32_t n_items, uint32_t *size)
{
	uint64_t left = n_items - nc, used = 0;
	double total = cdf[nc - 1];
	for (uint32_t c = 0; c < nc; c++) {
		double w = cdf[c] - (c ? cdf[c - 1] : 0.0);
		size[c] = 1 + (uint32_t)((double)left * w / total);
		used += size[c] - 1;
	}
	/* Floors can only undershoot, except for a rounding ulp: fix both. */
	for (uint32_t c = 0; used > left; c = (c + 1) % nc)
		if (size[c] > 1) {
			size[c]--;
			used--;
		}
	for (uint32_t c = 0; used < left; c = (c + 1) % nc, used++)
		size[c]++;
}

int gen_generate(const struct gen_params *params, struct gen_data *out, char *err, size_t errlen)
{
	struct gen_params p;
	struct rng r;
	uint32_t *cat_of = NULL, *cat_start = NULL, *cat_items = NULL, *fill = NULL, *counts = NULL;
	double *cdf = NULL, *cat_price_mu = NULL;
	float *centroid = NULL;
	int rc = -ENOMEM;

	memset(out, 0, sizeof(*out));
	resolve_params(params, &p);
	if (p.n_items == 0 || p.dim == 0 || p.dim > SNAP_MAX_DIM) {
		snprintf(err, errlen, "need n_items >= 1 and dim in 1..%u (got %u items, dim %u)",
			 SNAP_MAX_DIM, p.n_items, p.dim);
		return -EINVAL;
	}
	if (p.out_of_stock_share > 1) {
		snprintf(err, errlen, "out_of_stock_share %.3f is not a share", p.out_of_stock_share);
		return -EINVAL;
	}
	const uint32_t ni = p.n_items, nu = p.n_users, nc = p.n_categories, dim = p.dim;
	out->params = p;
	out->n_items = ni;
	out->n_users = nu;
	out->n_categories = nc;
	out->dim = dim;

	/* Category sizes, then a shuffled item -> category assignment so that
	 * index order says nothing about category. */
	uint32_t cdf_len = MAX(ni, nc);
	cdf = malloc(sizeof(*cdf) * cdf_len);
	uint32_t *size = calloc(nc, sizeof(*size));
	cat_of = malloc(sizeof(*cat_of) * ni);
	cat_start = malloc(sizeof(*cat_start) * (nc + 1));
	cat_items = malloc(sizeof(*cat_items) * ni);
	fill = size;
	if (!cdf || !size || !cat_of || !cat_start || !cat_items)
		goto fail;
	for (uint32_t k = 0; k < cdf_len; k++)
		cdf[k] = (k ? cdf[k - 1] : 0.0) + pow((double)k + 1.0, -p.zipf_s);
	category_sizes(cdf, nc, ni, size);
	for (uint32_t c = 0, i = 0; c < nc; c++)
		for (uint32_t k = 0; k < size[c]; k++)
			cat_of[i++] = c;
	rng_init(&r, p.seed, ST_CATS);
	for (uint32_t i = ni - 1; i > 0; i--) {
		uint32_t j = rng_below(&r, i + 1);
		uint32_t t = cat_of[i];
		cat_of[i] = cat_of[j];
		cat_of[j] = t;
	}
	cat_start[0] = 0;
	for (uint32_t c = 0; c < nc; c++)
		cat_start[c + 1] = cat_start[c] + size[c];
	memcpy(size, cat_start, sizeof(*size) * nc);  /* size[] now = fill cursor */
	for (uint32_t i = 0; i < ni; i++)
		cat_items[fill[cat_of[i]]++] = i;
	/* Popularity rank inside a category: shuffle each member list. */
	for (uint32_t c = 0; c < nc; c++) {
		uint32_t *m = cat_items + cat_start[c], n = cat_start[c + 1] - cat_start[c];
		for (uint32_t k = n - 1; k > 0 && n > 1; k--) {
			uint32_t j = rng_below(&r, k + 1);
			uint32_t t = m[k];
			m[k] = m[j];
			m[j] = t;
		}
	}

	/* Centroids and per-category price level. */
	centroid = malloc(sizeof(*centroid) * (size_t)nc * dim);
	cat_price_mu = malloc(sizeof(*cat_price_mu) * nc);
	if (!centroid || !cat_price_mu)
		goto fail;
	for (uint32_t c = 0; c < nc; c++) {
		float *v = centroid + (size_t)c * dim;
		for (uint32_t k = 0; k < dim; k++)
			v[k] = (float)rng_normal(&r);
		normalise(v, dim);
		cat_price_mu[c] = 2.5 + 2.0 * rng_unif(&r);  /* median ~12..90 */
	}

	/* The string block: model version, category names, item ids and
	 * titles, user ids; exact size first. */
	size_t sbytes = MODEL_VERSION_BYTES;
	for (uint32_t c = 0; c < nc; c++)
		sbytes += 2 + ndigits(c);
	for (uint32_t i = 0; i < ni; i++) {
		const char *a, *n;
		title_words(p.seed, i, &a, &n);
		sbytes += 2 + ndigits(i);                                 /* "i<N>" */
		sbytes += strlen(a) + 1 + strlen(n) + 1 + ndigits(i) + 1; /* title */
	}
	for (uint32_t u = 0; u < nu; u++)
		sbytes += 2 + ndigits(u);
	out->strings = malloc(sbytes);
	out->items = calloc(ni, sizeof(*out->items));
	out->item_emb = malloc(sizeof(float) * (size_t)ni * dim);
	out->item_popularity = calloc(ni, sizeof(float));
	out->user_ids = calloc(nu ? nu : 1, sizeof(char *));
	out->user_emb = malloc(sizeof(float) * ((size_t)nu * dim + 1));
	const char **cat_name = malloc(sizeof(char *) * nc);
	if (!cat_name)
		goto fail;
	if (!out->strings || !out->items || !out->item_emb || !out->item_popularity ||
	    !out->user_ids || !out->user_emb) {
		free(cat_name);
		goto fail;
	}
	char *sp = out->strings;
	snprintf(sp, MODEL_VERSION_BYTES, "gen-%llu", (unsigned long long)p.seed);
	sp += MODEL_VERSION_BYTES;
	for (uint32_t c = 0; c < nc; c++) {
		cat_name[c] = sp;
		sp += sprintf(sp, "c%u", c) + 1;
	}

	/* Items: ids, titles, prices, stock. */
	rng_init(&r, p.seed, ST_ITEMS);
	for (uint32_t i = 0; i < ni; i++) {
		struct snapb_item *it = &out->items[i];
		const char *a, *n;
		title_words(p.seed, i, &a, &n);
		it->id = sp;
		sp += sprintf(sp, "i%u", i) + 1;
		it->title = sp;
		sp += sprintf(sp, "%s %s %u", a, n, i) + 1;
		it->category = cat_name[cat_of[i]];
		double price = exp(cat_price_mu[cat_of[i]] + 0.6 * rng_normal(&r));
		price = price < 1 ? 1 : price > 500 ? 500 : price;
		it->price = (float)(floor(price * 100 + 0.5) / 100);
		bool oos = rng_unif(&r) < p.out_of_stock_share;
		uint32_t stock = 1 + rng_below(&r, 500);
		it->stock = oos ? 0 : stock;
		it->available = true;
	}
	free(cat_name);

	/* Item embeddings: centroid + noise, normalised. Noise sigma per dim
	 * is noise/sqrt(dim) so the cluster structure is the same at every
	 * dim (cos(item, centroid) ~ 1/sqrt(1 + noise^2)). */
	rng_init(&r, p.seed, ST_ITEM_EMB);
	double sig = p.noise / sqrt((double)dim);
	for (uint32_t i = 0; i < ni; i++) {
		float *v = out->item_emb + (size_t)i * dim;
		const float *cv = centroid + (size_t)cat_of[i] * dim;
		for (uint32_t k = 0; k < dim; k++)
			v[k] = cv[k] + (float)(sig * rng_normal(&r));
		normalise(v, dim);
	}

	/* Users: 1..3 preferred categories (Zipf over categories, so big
	 * categories are also the popular ones), weights, embedding = weighted
	 * mix of the centroids plus (smaller) noise. Preferences are kept for
	 * the interaction stage. */
	uint32_t *pref = malloc(sizeof(*pref) * ((size_t)nu * MAX_PREFS + 1));
	float *pref_w = malloc(sizeof(*pref_w) * ((size_t)nu * MAX_PREFS + 1));
	uint8_t *npref = malloc(nu + 1);
	counts = malloc(sizeof(*counts) * (nu + 1));
	if (!pref || !pref_w || !npref || !counts) {
		free(pref);
		free(pref_w);
		free(npref);
		goto fail;
	}
	rng_init(&r, p.seed, ST_USERS);
	double usig = 0.6 * sig;
	for (uint32_t u = 0; u < nu; u++) {
		uint32_t *pc = pref + (size_t)u * MAX_PREFS;
		float *pw = pref_w + (size_t)u * MAX_PREFS;
		uint32_t want = MIN(1 + rng_below(&r, MAX_PREFS), nc), m = 0;
		for (int tries = 0; m < want && tries < 32; tries++) {
			uint32_t c = zipf_draw(cdf, nc, &r);
			bool dup = false;
			for (uint32_t k = 0; k < m; k++)
				dup |= pc[k] == c;
			if (!dup)
				pc[m++] = c;
		}
		npref[u] = (uint8_t)m;
		double wsum = 0;
		for (uint32_t k = 0; k < m; k++) {
			pw[k] = (float)(0.2 + rng_unif(&r));
			wsum += pw[k];
		}
		for (uint32_t k = 0; k < m; k++)
			pw[k] = (float)(pw[k] / wsum);
		float *v = out->user_emb + (size_t)u * dim;
		for (uint32_t k = 0; k < dim; k++)
			v[k] = (float)(usig * rng_normal(&r));
		for (uint32_t j = 0; j < m; j++) {
			const float *cv = centroid + (size_t)pc[j] * dim;
			for (uint32_t k = 0; k < dim; k++)
				v[k] += pw[j] * cv[k];
		}
		normalise(v, dim);
		out->user_ids[u] = sp;
		sp += sprintf(sp, "u%u", u) + 1;
	}

	/* Interactions. Activity is heavy-tailed (log-normal factor, mean 1)
	 * so that cold (0..9 events) and heavy users both exist; counts are
	 * drawn first to size the array exactly. */
	rng_init(&r, p.seed, ST_EVENTS);
	uint64_t total = 0;
	for (uint32_t u = 0; u < nu; u++) {
		double act = exp(0.8 * rng_normal(&r) - 0.32);
		counts[u] = rng_poisson(&r, p.interactions_per_user * act);
		total += counts[u];
	}
	out->events = malloc(sizeof(*out->events) * (total ? total : 1));
	if (!out->events) {
		free(pref);
		free(pref_w);
		free(npref);
		goto fail;
	}
	uint64_t e = 0, sess[16];
	for (uint32_t u = 0; u < nu; u++) {
		const uint32_t *pc = pref + (size_t)u * MAX_PREFS;
		const float *pw = pref_w + (size_t)u * MAX_PREFS;
		uint32_t ns = MIN(1 + counts[u] / 8, (uint32_t)ARRAY_SIZE(sess));
		for (uint32_t s = 0; s < ns; s++)
			sess[s] = (uint64_t)(rng_unif(&r) * (double)(SPAN_MS - SESSION_MS));
		for (uint32_t k = 0; k < counts[u]; k++) {
			struct gen_event *ev = &out->events[e++];
			uint32_t c;
			if (npref[u] == 0 || rng_unif(&r) < EXPLORE_SHARE) {
				c = zipf_draw(cdf, nc, &r);
			} else {
				double x = rng_unif(&r), acc = 0;
				uint32_t j = 0;
				for (; j + 1 < npref[u]; j++) {
					acc += pw[j];
					if (x < acc)
						break;
				}
				c = pc[j];
			}
			uint32_t n = cat_start[c + 1] - cat_start[c];
			ev->user = u;
			ev->item = cat_items[cat_start[c] + zipf_draw(cdf, n, &r)];
			double t = rng_unif(&r);
			ev->type = t < 0.85 ? GEN_VIEW : t < 0.95 ? GEN_ADD_TO_CART : GEN_PURCHASE;
			ev->ts_ms = sess[rng_below(&r, ns)] + rng_below(&r, (uint32_t)SESSION_MS);
		}
	}
	free(pref);
	free(pref_w);
	free(npref);
	out->n_events = total;
	qsort(out->events, total, sizeof(*out->events), cmp_event);
	uint64_t t0 = total ? out->events[0].ts_ms : 0;
	for (uint64_t k = 0; k < total; k++) {
		struct gen_event *ev = &out->events[k];
		ev->ts_ms = ev->ts_ms - t0 + p.start_ts_ms;
		const char *tn = gen_event_type_name(ev->type);
		out->item_popularity[ev->item] += snapb_event_weight(tn, strlen(tn));
	}
	rc = 0;
fail:
	if (rc) {
		snprintf(err, errlen, "out of memory generating %u items x %u dims, %u users",
			 ni, dim, nu);
		gen_free(out);
	}
	free(cdf);
	free(fill);
	free(cat_of);
	free(cat_start);
	free(cat_items);
	free(counts);
	free(centroid);
	free(cat_price_mu);
	return rc;
}

void gen_free(struct gen_data *d)
{
	free(d->items);
	free(d->item_emb);
	free(d->user_ids);
	free(d->user_emb);
	free(d->events);
	free(d->item_popularity);
	free(d->strings);
	memset(d, 0, sizeof(*d));
}

void gen_snapb_input(const struct gen_data *d, struct snapb_input *in)
{
	memset(in, 0, sizeof(*in));
	in->model_version = d->strings;  /* "gen-<seed>", first bytes of the block */
	in->dim = d->dim;
	in->n_items = d->n_items;
	in->items = d->items;
	in->item_emb = d->item_emb;
	in->n_users = d->n_users;
	in->user_ids = (const char *const *)d->user_ids;
	in->user_emb = d->user_emb;
	in->item_popularity = d->item_popularity;
}
