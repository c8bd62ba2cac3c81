/* gen.h: deterministic synthetic e-commerce data (catalogue, latent
 * factors, users, interaction log) for the demo, the tests and the bench.
 *
 * Same params (seed included) => byte-identical output on every machine:
 * the generator uses its own PRNG (splitmix64/xoshiro256**) and no libm
 * function whose result may vary between libc versions in a way that
 * matters (sqrt is IEEE-exact; log/exp/pow/sin/cos are glibc's < 1 ulp
 * implementations, tolerated).
 *
 * Model: categories have Zipf-distributed sizes; each category has a unit
 * centroid vector; an item embedding is its category centroid plus noise;
 * a user prefers a few categories (Zipf over categories) and their
 * embedding is the mix of those centroids plus noise; interactions sample a
 * preferred category then an item in it with Zipf popularity.
 */
#ifndef RECD_GEN_H
#define RECD_GEN_H

#include "core/common.h"
#include "snap/snapb.h"

enum gen_event_type { GEN_VIEW = 0, GEN_ADD_TO_CART = 1, GEN_PURCHASE = 2 };

struct gen_params {
	uint64_t seed;
	uint32_t n_items;
	uint32_t n_users;
	uint32_t n_categories;          /* 0 = max(4, n_items / 500) capped at 1000 */
	uint32_t dim;
	uint32_t interactions_per_user; /* mean; 0 = 20 */
	double zipf_s;                  /* 0 = 1.1 */
	double out_of_stock_share;      /* share of items with stock 0; <0 = 0.03 default */
	uint64_t start_ts_ms;           /* timestamp of the first event; 0 = 1700000000000 */
	/* Embedding noise as a norm relative to the unit centroids: each dim
	 * gets N(0, (noise/sqrt(dim))^2), so clusters look the same at every
	 * dim (item-centroid cosine ~ 1/sqrt(1 + noise^2)); users get 0.6x
	 * that. 0 = 0.8. */
	double noise;
};

struct gen_event {
	uint32_t user;
	uint32_t item;
	uint8_t type;    /* enum gen_event_type */
	uint64_t ts_ms;
};

struct gen_data {
	struct gen_params params;       /* with defaults resolved */
	uint32_t n_items, n_users, n_categories, dim;
	struct snapb_item *items;       /* ids "i<N>", titles, categories "c<N>" */
	float *item_emb;                /* n_items * dim */
	char **user_ids;                /* "u<N>" */
	float *user_emb;                /* n_users * dim */
	struct gen_event *events;       /* in time order */
	uint64_t n_events;
	float *item_popularity;         /* sum of snapb_event_weight over the events */
	char *strings;                  /* one block holding every id/title/category */
};

int gen_generate(const struct gen_params *p, struct gen_data *out, char *err, size_t errlen);
void gen_free(struct gen_data *d);
/* A snapb_input view over the data (no copies); model_version "gen-<seed>". */
void gen_snapb_input(const struct gen_data *d, struct snapb_input *in);
/* "view", "add_to_cart", "purchase" (the names snapb_event_weight knows). */
const char *gen_event_type_name(uint8_t type);

#endif
