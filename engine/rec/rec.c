/* rec.c: the C recommendation path (see rec.h). The kernels live in
 * core/simd.c, the index in ann/ann.c; this file picks the source per
 * request and keeps the exact scan for snapshots without an index. */
#include <stdlib.h>
#include <string.h>
#include "core/simd.h"
#include "core/topk.h"
#include "rec/rec.h"

const char *const rec_strategy_names[] = {
	[REC_PERSONALIZED] = "personalized",
	[REC_SIMILAR] = "similar",
	[REC_POPULAR] = "popular",
	NULL,
};

/* rec_item is the public name of the (item, score) pair topk.h ranks. */
_Static_assert(sizeof(struct rec_item) == sizeof(struct topk_item), "rec_item layout");
_Static_assert(offsetof(struct rec_item, item) == offsetof(struct topk_item, item), "rec_item layout");
_Static_assert(offsetof(struct rec_item, score) == offsetof(struct topk_item, score), "rec_item layout");
#define TOPK(p) ((struct topk_item *)(p))

struct rec_scratch {
	struct ann_scratch *ann;
};

struct rec_scratch *rec_scratch_new(uint32_t max_n)
{
	struct rec_scratch *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	sc->ann = ann_scratch_new(max_n);
	if (!sc->ann) {
		free(sc);
		return NULL;
	}
	return sc;
}

void rec_scratch_free(struct rec_scratch *sc)
{
	if (!sc)
		return;
	ann_scratch_free(sc->ann);
	free(sc);
}

struct ann_scratch *rec_scratch_ann(struct rec_scratch *sc)
{
	return sc->ann;
}

const char *rec_kernel_name(void)
{
	return simd_get()->name;
}

float rec_dot(const float *a, const float *b, uint32_t stride)
{
	float r;
	simd_get()->score_rows(a, b, stride, 1, &r);
	return r;
}

#define REC_SCAN_BLOCK 256

static uint32_t topk_exact(const struct snap *s, const float *query, uint32_t k, int64_t exclude,
			   ann_keep_fn keep, void *ctx, struct rec_item *out)
{
	const struct simd_ops *ops = simd_get();
	struct topk_item *h = TOPK(out);
	float scores[REC_SCAN_BLOCK];
	uint32_t n = 0;
	if (k == 0)
		return 0;
	for (uint32_t base = 0; base < s->n_items; base += REC_SCAN_BLOCK) {
		uint32_t count = MIN(REC_SCAN_BLOCK, s->n_items - base);
		ops->score_rows(query, snap_item_vec(s, base), s->stride, count, scores);
		for (uint32_t j = 0; j < count; j++) {
			uint32_t i = base + j;
			struct topk_item it = { i, scores[j] };
			/* Cheap rejection first: most items lose to the k-th best. */
			if (!topk_admits(h, n, k, it))
				continue;
			if (unlikely(!snap_item_servable(s, i)) || (int64_t)i == exclude || (keep && !keep(ctx, i)))
				continue;
			topk_push(h, &n, k, it);
		}
	}
	topk_sort(h, n);
	return n;
}

uint32_t rec_topk_exact(const struct snap *s, const float *query, uint32_t k, int64_t exclude,
			struct rec_item *out)
{
	return topk_exact(s, query, k, exclude, NULL, NULL, out);
}

/* Items already chosen (the neighbour rows) are not returned again. */
struct taken {
	const struct rec_item *items;
	uint32_t n;
};

static bool not_taken(void *ctx, uint32_t item)
{
	const struct taken *t = ctx;
	for (uint32_t i = 0; i < t->n; i++)
		if (t->items[i].item == item)
			return false;
	return true;
}

static uint32_t topk_ann(const struct snap *s, const float *query, uint32_t k, int64_t exclude,
			 uint32_t nprobe, struct rec_scratch *sc, const struct taken *taken, struct rec_item *out)
{
	struct ann_query aq = {
		.vec = query, .k = k, .nprobe = nprobe, .exclude = exclude,
		.keep = taken && taken->n ? not_taken : NULL, .ctx = (void *)taken,
	};
	return ann_search(s, &aq, sc->ann, TOPK(out));
}

uint32_t rec_topk_ann(const struct snap *s, const float *query, uint32_t k, int64_t exclude, uint32_t nprobe,
		      struct rec_scratch *sc, struct rec_item *out)
{
	return topk_ann(s, query, k, exclude, nprobe, sc, NULL, out);
}

uint32_t rec_topk_keep(const struct snap *s, const float *query, uint32_t k, int64_t exclude, uint32_t nprobe,
		       struct rec_scratch *sc, ann_keep_fn keep, void *ctx, struct rec_item *out)
{
	if (s->ann.nlist && sc) {
		struct ann_query aq = { .vec = query, .k = k, .nprobe = nprobe, .exclude = exclude,
					.keep = keep, .ctx = ctx };
		return ann_search(s, &aq, sc->ann, TOPK(out));
	}
	return topk_exact(s, query, k, exclude, keep, ctx, out);
}

uint32_t rec_popular(const struct snap *s, uint32_t k, int64_t exclude, struct rec_item *out)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->n_popular && n < k; i++) {
		uint32_t item = s->popular[i];
		if (!snap_item_servable(s, item) || (int64_t)item == exclude)
			continue;
		out[n].item = item;
		out[n].score = s->item_popularity[item];
		n++;
	}
	return n;
}

uint32_t rec_popular_category(const struct snap *s, uint32_t category, uint32_t k, int64_t exclude,
			      struct rec_item *out)
{
	uint32_t n = 0;
	if (category >= s->n_categories)
		return 0;
	const uint32_t *list = s->popular;
	uint32_t len = s->n_popular;
	if (s->cat_popular_off) {
		list = s->cat_popular + s->cat_popular_off[category];
		len = s->cat_popular_off[category + 1] - s->cat_popular_off[category];
	}
	for (uint32_t i = 0; i < len && n < k; i++) {
		uint32_t item = list[i];
		if (s->item_category[item] != category || !snap_item_servable(s, item) || (int64_t)item == exclude)
			continue;
		out[n].item = item;
		out[n].score = s->item_popularity[item];
		n++;
	}
	return n;
}

/* Similar items: the item's neighbour row first (co-visitation, then
 * embedding neighbours, as built), then the best remaining items by inner
 * product with its embedding when the row runs short of servable items. */
static uint32_t rec_similar(const struct rec_query *q, struct rec_scratch *sc, struct rec_item *out)
{
	const struct snap *s = q->snap;
	uint32_t item = (uint32_t)q->item, n = 0;
	const float *vec = snap_item_vec(s, item);
	if (s->neighbors_k) {
		const struct snap_neighbor *row = snap_item_neighbors(s, item);
		for (uint32_t j = 0; j < s->neighbors_k && n < q->n && row[j].item != SNAP_EMPTY_SLOT; j++) {
			if (!snap_item_servable(s, row[j].item))
				continue;
			out[n].item = row[j].item;
			out[n].score = row[j].score;
			n++;
		}
		if (n == q->n)
			return n;
	}
	if (n == 0) {
		if (s->ann.nlist && sc)
			return topk_ann(s, vec, q->n, q->item, q->nprobe, sc, NULL, out);
		return rec_topk_exact(s, vec, q->n, q->item, out);
	}
	/* Top up: the rest of the list from the index, without repeats. */
	struct taken t = { out, n };
	if (s->ann.nlist && sc)
		return n + topk_ann(s, vec, q->n - n, q->item, q->nprobe, sc, &t, out + n);
	return n + topk_exact(s, vec, q->n - n, q->item, not_taken, &t, out + n);
}

uint32_t rec_recommend(const struct rec_query *q, struct rec_scratch *sc, struct rec_item *out,
		       enum rec_strategy *strategy)
{
	const struct snap *s = q->snap;
	if (q->item >= 0) {
		*strategy = REC_SIMILAR;
		return rec_similar(q, sc, out);
	}
	if (q->user >= 0 && s->user_emb) {
		*strategy = REC_PERSONALIZED;
		if (s->ann.nlist && sc)
			return topk_ann(s, snap_user_vec(s, (uint32_t)q->user), q->n, -1, q->nprobe, sc, NULL, out);
		return rec_topk_exact(s, snap_user_vec(s, (uint32_t)q->user), q->n, -1, out);
	}
	*strategy = REC_POPULAR;
	return rec_popular(s, q->n, -1, out);
}
