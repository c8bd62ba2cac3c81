/* pipe.c: the recommendation path of one request (see pipe.h).
 *
 * Scores from different sources live on different scales (inner
 * products, popularity counts, co-visit counts), so every source's list
 * is put on one scale before policies see it: the r-th of the k items a
 * source was asked for scores w * (1 - r / k), where w is the source's
 * weight in the route (1: competes for the top; 0.3: fills a short list).
 * Ties keep the route's order, so the first source leads among equals.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "live/live.h"
#include "live/refresh.h"
#include "exp/exp.h"
#include "live/trend.h"
#include "lua/lua_host.h"
#include "pipe/pipe.h"

#define PIPE_SET_SLOTS 4096u       /* > 2 * (PIPE_MAX_CANDS + carts + refs): short probes */
#define PIPE_REQ_PURCHASED 64u     /* newest purchases shown to policies */
#define PIPE_RETURNING_AFTER 10u   /* the C tiers, as plugins/route.lua */
#define PIPE_FETCH_FACTOR 4u
#define PIPE_FILL_WEIGHT 0.3f      /* popular items that only fill a short list */

const char *const pipe_cache_names[] = { "none", "fresh", "carried", "stale", "miss", "no_vector", "shed", NULL };

struct pipe_worker {
	struct rec_scratch *rec;
	struct lua_cand cands[PIPE_MAX_CANDS];
	struct rec_item tmp[PIPE_MAX_CANDS];
	float *qbuf;                   /* a session vector padded to the stride */
	uint32_t qcap;
	/* The request as policies see it. */
	struct lua_req req;
	struct lua_route route;
	uint32_t recent[LIVE_RECENT];
	uint32_t cart[LIVE_CART + LIVE_CART];
	uint32_t purchased[PIPE_REQ_PURCHASED];
	/* Items that may not be candidates (again): taken, in the cart, the
	 * page's item. Open addressing; a slot counts only with the current
	 * stamp, so clearing is one increment. */
	uint32_t set_item[PIPE_SET_SLOTS];
	uint32_t set_stamp[PIPE_SET_SLOTS];
	uint32_t stamp;
	/* What the filters need for this request. */
	const struct snap *s;
	struct live *lv;
	bool live_items;               /* live state holds item updates */
	const struct live_user *user;  /* NULL: anonymous or not personalised */
	uint64_t user_key;             /* 0: anonymous or not personalised */
	const struct refresh_list *list; /* the user's precomputed list when fresh */
	uint8_t cache;                 /* enum pipe_cache of this request */
	bool list_checked;
};

struct pipe_worker *pipe_worker_new(void)
{
	struct pipe_worker *pw = calloc(1, sizeof(*pw));
	if (!pw)
		return NULL;
	pw->rec = rec_scratch_new(PIPE_MAX_CANDS);
	if (!pw->rec) {
		free(pw);
		return NULL;
	}
	return pw;
}

void pipe_worker_free(struct pipe_worker *pw)
{
	if (!pw)
		return;
	rec_scratch_free(pw->rec);
	free(pw->qbuf);
	free(pw);
}

/* ------------------------------------------------------------ item set */

static inline uint32_t set_slot(uint32_t item)
{
	return (item * 2654435761u) & (PIPE_SET_SLOTS - 1);
}

static bool set_has(const struct pipe_worker *pw, uint32_t item)
{
	for (uint32_t i = set_slot(item);; i = (i + 1) & (PIPE_SET_SLOTS - 1)) {
		if (pw->set_stamp[i] != pw->stamp)
			return false;
		if (pw->set_item[i] == item)
			return true;
	}
}

/* false when already there (or, never in practice, when full). */
static bool set_add(struct pipe_worker *pw, uint32_t item)
{
	uint32_t i = set_slot(item);
	for (uint32_t probes = 0; probes < PIPE_SET_SLOTS; probes++, i = (i + 1) & (PIPE_SET_SLOTS - 1)) {
		if (pw->set_stamp[i] != pw->stamp) {
			pw->set_stamp[i] = pw->stamp;
			pw->set_item[i] = item;
			return true;
		}
		if (pw->set_item[i] == item)
			return false;
	}
	return false;
}

static void set_clear(struct pipe_worker *pw)
{
	if (++pw->stamp == 0) {   /* wrapped: old stamps could match again */
		memset(pw->set_stamp, 0, sizeof(pw->set_stamp));
		pw->stamp = 1;
	}
}

/* ------------------------------------------------------------- filters */

static inline uint64_t item_key(const struct snap *s, uint32_t item)
{
	struct str id = snap_item_id(s, item);
	return XXH3_64bits(id.p, id.len);
}

/* May `item` become a candidate? Servable in the snapshot is checked by
 * the searches themselves and by the list sources below. */
static bool keep_item(void *ctx, uint32_t item)
{
	struct pipe_worker *pw = ctx;
	if (set_has(pw, item))
		return false;
	if (!pw->live_items && !(pw->user && pw->user->purchased))
		return true;
	uint64_t key = item_key(pw->s, item);
	if (pw->live_items && live_item_blocked(live_item_get(pw->lv, key)))
		return false;
	return !(pw->user && live_user_purchased(pw->user, key));
}

static inline bool list_item_ok(struct pipe_worker *pw, uint32_t item)
{
	return snap_item_servable(pw->s, item) && keep_item(pw, item);
}

/* ------------------------------------------------------------- resolve */

static uint32_t map_keys(const struct snap *s, const uint64_t *keys, uint32_t n, uint32_t *out, uint32_t cap)
{
	uint32_t m = 0;
	for (uint32_t i = 0; i < n && m < cap; i++) {
		int64_t idx = snap_item_find_key(s, keys[i]);
		if (idx >= 0)
			out[m++] = (uint32_t)idx;
	}
	return m;
}

const struct lua_req *pipe_resolve(struct pipe_worker *pw, const struct pipe_request *rq)
{
	const struct snap *s = rq->snap;
	struct lua_req *q = &pw->req;
	memset(q, 0, sizeof(*q));
	q->user = q->context_item = LUA_NO_ITEM;
	q->variant = rq->variant ? rq->variant->lua_index : LUA_NO_ITEM;
	q->n = rq->n;
	q->recent = pw->recent;
	q->cart = pw->cart;
	q->purchased = pw->purchased;
	if (rq->placement)
		q->placement = rq->placement, q->placement_len = rq->placement_len;
	if (rq->device)
		q->device = rq->device, q->device_len = rq->device_len;
	if (rq->region)
		q->region = rq->region, q->region_len = rq->region_len;
	if (rq->context_item >= 0)
		q->context_item = (uint32_t)rq->context_item;

	pw->s = s;
	pw->lv = rq->live;
	pw->user = NULL;
	pw->user_key = 0;
	pw->list = NULL;
	pw->list_checked = false;
	pw->cache = PIPE_CACHE_NONE;
	pw->live_items = rq->live && ck_pr_load_64(&rq->live->stats.items) > 0;
	set_clear(pw);

	if (rq->user_id && rq->personalize) {
		q->user_id = rq->user_id;
		q->user_id_len = rq->user_id_len;
		int64_t u = snap_user_find(s, rq->user_id, rq->user_id_len);
		if (u >= 0 && s->user_emb)
			q->user = (uint32_t)u;
		pw->user_key = XXH3_64bits(rq->user_id, rq->user_id_len);
		if (rq->live)
			pw->user = live_user_get(rq->live, pw->user_key);
	}
	const struct live_user *lu = pw->user;
	if (lu) {
		q->interactions = lu->n_interactions;
		/* Newest first, each item once. */
		for (uint32_t i = 0; i < lu->n_recent && q->n_recent < LIVE_RECENT; i++) {
			int64_t idx = snap_item_find_key(s, lu->recent[i].item_key);
			bool dup = false;
			for (uint32_t j = 0; j < q->n_recent && !dup; j++)
				dup = pw->recent[j] == (uint32_t)idx;
			if (idx >= 0 && !dup)
				pw->recent[q->n_recent++] = (uint32_t)idx;
		}
		q->n_cart = map_keys(s, lu->cart, lu->n_cart, pw->cart, LIVE_CART);
		if (lu->purchased) {
			/* order[] is oldest first: the newest PIPE_REQ_PURCHASED. */
			const struct live_keyset *ks = lu->purchased;
			uint32_t from = ks->n > PIPE_REQ_PURCHASED ? ks->n - PIPE_REQ_PURCHASED : 0, m = 0;
			for (uint32_t i = ks->n; i-- > from && m < PIPE_REQ_PURCHASED;) {
				int64_t idx = snap_item_find_key(s, ks->order[i]);
				if (idx >= 0)
					pw->purchased[m++] = (uint32_t)idx;
			}
			q->n_purchased = m;
		}
	}
	for (uint32_t i = 0; i < rq->n_cart && q->n_cart < ARRAY_SIZE(pw->cart); i++)
		if (rq->cart[i] < s->n_items)
			pw->cart[q->n_cart++] = rq->cart[i];
	q->known = q->user != LUA_NO_ITEM || q->interactions > 0;

	/* Never candidates: the page's own item and the cart (a cart page
	 * shows what goes with the cart, not the cart again). */
	if (rq->context_item >= 0)
		set_add(pw, (uint32_t)rq->context_item);
	for (uint32_t i = 0; i < q->n_cart; i++)
		set_add(pw, pw->cart[i]);
	/* Nor what they just browsed: the next page shows something new. */
	for (uint32_t i = 0; lu && i < lu->n_recent; i++) {
		if (lu->recent[i].type != EVENT_VIEW && lu->recent[i].type != EVENT_CLICK)
			continue;
		int64_t idx = snap_item_find_key(s, lu->recent[i].item_key);
		if (idx >= 0)
			set_add(pw, (uint32_t)idx);
	}
	return q;
}

static uint32_t copy_items(const uint32_t *src, uint32_t n, uint32_t *dst, uint32_t cap, uint32_t n_items)
{
	uint32_t m = 0;
	for (uint32_t i = 0; src && i < n && m < cap; i++)
		if (src[i] < n_items)
			dst[m++] = src[i];
	return m;
}

const struct lua_req *pipe_resolve_given(struct pipe_worker *pw, const struct pipe_request *rq,
					 const struct lua_req *given)
{
	const struct snap *s = rq->snap;
	struct lua_req *q = &pw->req;
	*q = *given;
	q->variant = rq->variant ? rq->variant->lua_index : LUA_NO_ITEM;
	q->recent = pw->recent;
	q->cart = pw->cart;
	q->purchased = pw->purchased;
	q->n_recent = copy_items(given->recent, given->n_recent, pw->recent, LIVE_RECENT, s->n_items);
	q->n_cart = copy_items(given->cart, given->n_cart, pw->cart, ARRAY_SIZE(pw->cart), s->n_items);
	q->n_purchased = copy_items(given->purchased, given->n_purchased, pw->purchased, PIPE_REQ_PURCHASED,
				    s->n_items);
	if (q->context_item != LUA_NO_ITEM && q->context_item >= s->n_items)
		q->context_item = LUA_NO_ITEM;
	pw->s = s;
	pw->lv = NULL;
	pw->user = NULL;
	pw->user_key = 0;
	pw->list = NULL;
	pw->list_checked = true;   /* offline: no precomputed lists */
	pw->cache = PIPE_CACHE_NONE;
	pw->live_items = false;
	set_clear(pw);
	if (q->context_item != LUA_NO_ITEM)
		set_add(pw, q->context_item);
	for (uint32_t i = 0; i < q->n_cart; i++)
		set_add(pw, pw->cart[i]);
	/* Every purchase given is excluded (policies see the newest
	 * PIPE_REQ_PURCHASED), as live state excludes all it remembers. */
	for (uint32_t i = 0; given->purchased && i < given->n_purchased && i < PIPE_SET_SLOTS / 4; i++)
		if (given->purchased[i] < s->n_items)
			set_add(pw, given->purchased[i]);
	for (uint32_t i = 0; i < q->n_recent; i++)
		set_add(pw, pw->recent[i]);
	return q;
}

/* --------------------------------------------------------------- route */

static void route_add(struct lua_route *rt, enum lua_source src, uint32_t n, float weight)
{
	if (rt->n_sources < LUA_ROUTE_MAX_SOURCES)
		rt->sources[rt->n_sources++] =
			(struct lua_route_source){ src, MIN(MAX(n, 1u), LUA_ROUTE_MAX_N), weight };
}

void pipe_default_route(const struct lua_req *q, struct lua_route *rt)
{
	uint32_t n = q->n * PIPE_FETCH_FACTOR;
	memset(rt, 0, sizeof(*rt));
	if (q->user != LUA_NO_ITEM || q->interactions >= PIPE_RETURNING_AFTER)
		rt->tier = LUA_TIER_RETURNING;
	else if (q->interactions > 0)
		rt->tier = LUA_TIER_NEW;
	else
		rt->tier = LUA_TIER_ANONYMOUS;
	const char *name;
	bool cart_page = q->n_cart && q->placement_len == 4 && !memcmp(q->placement, "cart", 4);
	if (q->context_item != LUA_NO_ITEM) {
		name = "similar_items";
		route_add(rt, LUA_SRC_SIMILAR, n, 1);
		route_add(rt, LUA_SRC_POPULAR, q->n, PIPE_FILL_WEIGHT);
	} else if (cart_page) {
		name = "complete_the_cart";
		route_add(rt, LUA_SRC_SIMILAR, n, 1);
		route_add(rt, LUA_SRC_CONTENT, n, 0.8f);
		route_add(rt, LUA_SRC_POPULAR, q->n, PIPE_FILL_WEIGHT);
	} else if (rt->tier == LUA_TIER_ANONYMOUS) {
		name = "cold_start_popular";
		route_add(rt, LUA_SRC_TRENDING, n, 1);
		route_add(rt, LUA_SRC_POPULAR, n, 0.8f);
	} else if (rt->tier == LUA_TIER_NEW) {
		name = "content_based";
		route_add(rt, LUA_SRC_SIMILAR, n, 1);
		route_add(rt, LUA_SRC_CONTENT, n, 0.8f);
		route_add(rt, LUA_SRC_POPULAR, q->n, PIPE_FILL_WEIGHT);
	} else {
		name = "collaborative";
		route_add(rt, LUA_SRC_PERSONALIZED, n, 1);
		route_add(rt, LUA_SRC_SESSION, n, 1);
		route_add(rt, LUA_SRC_POPULAR, q->n, PIPE_FILL_WEIGHT);
	}
	snprintf(rt->policy, sizeof(rt->policy), "%s", name);
}

/* ------------------------------------------------------------- sources */

/* The shopper's session vector padded to the snapshot's row stride (the
 * kernels read whole rows), or NULL. */
static const float *session_query(struct pipe_worker *pw)
{
	const struct live_user *u = pw->user;
	const struct snap *s = pw->s;
	if (!u || u->dim != s->dim || live_session_weight(pw->lv, u) < LIVE_SESSION_STALE)
		return NULL;
	if (pw->qcap < s->stride) {
		/* Once per new snapshot stride, not per request. */
		free(pw->qbuf);
		pw->qcap = 0;
		pw->qbuf = aligned_alloc(64, ((size_t)s->stride * sizeof(float) + 63) & ~(size_t)63);
		if (!pw->qbuf)
			return NULL;
		pw->qcap = s->stride;
	}
	memcpy(pw->qbuf, u->session, (size_t)s->dim * sizeof(float));
	memset(pw->qbuf + s->dim, 0, (size_t)(s->stride - s->dim) * sizeof(float));
	return pw->qbuf;
}

/* Items in a list (popular, a category's popular, a neighbour row). */
static uint32_t from_list(struct pipe_worker *pw, const uint32_t *list, uint32_t len, uint32_t k,
			  struct rec_item *out)
{
	const struct snap *s = pw->s;
	uint32_t n = 0;
	for (uint32_t i = 0; i < len && n < k; i++) {
		uint32_t item = list[i];
		if (item < s->n_items && list_item_ok(pw, item))
			out[n++] = (struct rec_item){ item, s->item_popularity[item] };
	}
	return n;
}

static uint32_t from_category(struct pipe_worker *pw, uint32_t cat, uint32_t k, struct rec_item *out)
{
	const struct snap *s = pw->s;
	if (cat >= s->n_categories)
		return 0;
	if (s->cat_popular_off)
		return from_list(pw, s->cat_popular + s->cat_popular_off[cat],
				 s->cat_popular_off[cat + 1] - s->cat_popular_off[cat], k, out);
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->n_popular && n < k; i++) {
		uint32_t item = s->popular[i];
		if (s->item_category[item] == cat && list_item_ok(pw, item))
			out[n++] = (struct rec_item){ item, s->item_popularity[item] };
	}
	return n;
}

/* Items like `ref`: its neighbour row, then its nearest embeddings. */
static uint32_t from_similar(struct pipe_worker *pw, uint32_t ref, uint32_t k, uint32_t nprobe,
			     struct rec_item *out)
{
	const struct snap *s = pw->s;
	uint32_t n = 0;
	if (s->neighbors_k) {
		const struct snap_neighbor *row = snap_item_neighbors(s, ref);
		for (uint32_t j = 0; j < s->neighbors_k && n < k && row[j].item != SNAP_EMPTY_SLOT; j++) {
			uint32_t item = row[j].item;
			if (item != ref && item < s->n_items && list_item_ok(pw, item) && set_add(pw, item))
				out[n++] = (struct rec_item){ item, row[j].score };
		}
	}
	/* The row's items are in the set now, so the search skips them. The
	 * search (the costly part) runs only when the row cannot fill the
	 * answer by itself; the extra headroom k asks for is a nicety the
	 * row gives when it can. */
	if (n < MIN(k, pw->req.n))
		n += rec_topk_keep(s, snap_item_vec(s, ref), k - n, ref, nprobe, pw->rec, keep_item, pw, out + n);
	return n;
}

/* The shopper's precomputed list, if it is up to date (once per request).
 * An out-of-date one is not used: it would miss the last click, and the
 * updater has already asked for a new one. */
static const struct refresh_list *personal_list(struct pipe_worker *pw, const struct pipe_request *rq)
{
	if (pw->list_checked)
		return pw->list;
	pw->list_checked = true;
	if (!rq->refresh || !pw->user_key)
		return NULL;
	const struct refresh_list *l = refresh_get(rq->refresh, pw->user_key);
	if (refresh_list_fresh(l, pw->s, pw->user)) {
		pw->list = l;
		pw->cache = PIPE_CACHE_FRESH;
	} else if (refresh_list_carried(l, pw->s, pw->user)) {
		/* Made before a swap: still what the shopper's history says, and
		 * far cheaper to translate than a search. The rebuild pass will
		 * get to it; the hint puts a shopper who is back first in line. */
		pw->list = l;
		pw->cache = PIPE_CACHE_CARRIED;
		refresh_hint(rq->refresh, rq->worker, pw->user_key);
	} else {
		pw->cache = l ? PIPE_CACHE_STALE : PIPE_CACHE_MISS;
		/* A stale list is being recomputed (events asked for it); a
		 * missing one may never be without this hint (no events). */
		if (!l || l->snap_generation != pw->s->generation)
			refresh_hint(rq->refresh, rq->worker, pw->user_key);
	}
	return pw->list;
}

/* A personal search on the request path happens when the shopper's list
 * is missing or out of date, and a precise one is then on its way: it
 * may trade recall for time (ann_nprobe_miss). */
static inline uint32_t miss_nprobe(const struct pipe_request *rq)
{
	return rq->refresh && rq->nprobe_miss ? rq->nprobe_miss : rq->nprobe;
}

/* items[from..to) of a precomputed list, filtered like any source; a
 * list made on another snapshot is translated by item key (items the new
 * snapshot dropped are skipped). */
static uint32_t from_refresh(struct pipe_worker *pw, const struct refresh_list *l, uint32_t from, uint32_t to,
			     uint32_t k, struct rec_item *out)
{
	const struct snap *s = pw->s;
	const uint64_t *keys = l->snap_generation != s->generation ? refresh_list_keys(l) : NULL;
	uint32_t n = 0;
	for (uint32_t i = from; i < to && n < k; i++) {
		int64_t item = l->items[i].item;
		if (keys)
			item = snap_item_find_key(s, keys[i]);
		if (item >= 0 && item < s->n_items && list_item_ok(pw, (uint32_t)item))
			out[n++] = (struct rec_item){ (uint32_t)item, l->items[i].score };
	}
	return n;
}

static uint32_t from_trending(struct pipe_worker *pw, const struct trend *t, uint32_t k, struct rec_item *out)
{
	if (!t)
		return 0;
	/* Ask for more than k: some of the list may be filtered out here. */
	uint32_t want = MIN(PIPE_MAX_CANDS, 2 * k + 16), got = trend_top(t, pw->s, -1, want, out), n = 0;
	for (uint32_t i = 0; i < got && n < k; i++)
		if (keep_item(pw, out[i].item))
			out[n++] = out[i];
	return n;
}

/* Appends a source's items with scores on the common scale. */
static uint32_t append(struct pipe_worker *pw, uint32_t n, const struct rec_item *got, uint32_t n_got, uint32_t k,
		       float weight, enum lua_source src, uint32_t ref)
{
	for (uint32_t r = 0; r < n_got && n < PIPE_MAX_CANDS; r++) {
		uint32_t item = got[r].item;
		if (!set_add(pw, item))
			continue;   /* another source brought it first */
		pw->cands[n++] = (struct lua_cand){
			.item = item,
			.score = weight * (1.0f - (float)r / (float)MAX(k, 1u)),
			.source = (uint8_t)src,
			.reason_item = ref,
		};
	}
	return n;
}

uint32_t pipe_gather(struct pipe_worker *pw, const struct pipe_request *rq, const struct lua_route *rt,
		     struct lua_cand **cands)
{
	const struct lua_req *q = &pw->req;
	const struct snap *s = pw->s;
	uint32_t n = 0;
	*cands = pw->cands;
	for (uint32_t p = 0; p < rt->n_sources && n < PIPE_MAX_CANDS; p++) {
		enum lua_source src = (enum lua_source)rt->sources[p].source;
		uint32_t k = MIN(rt->sources[p].n, PIPE_MAX_CANDS - n);
		float weight = rt->sources[p].weight > 0 && rt->sources[p].weight <= 1 ? rt->sources[p].weight : 1.0f;
		uint32_t got = 0, ref = LUA_NO_ITEM;
		struct rec_item *tmp = pw->tmp;
		switch (src) {
		case LUA_SRC_POPULAR:
			got = from_list(pw, s->popular, s->n_popular, k, tmp);
			break;
		case LUA_SRC_TRENDING:
			got = from_trending(pw, rq->trend, k, tmp);
			break;
		case LUA_SRC_PERSONALIZED: {
			/* The precomputed list (snapshot embedding and session
			 * blended, off the request path), else a search now. */
			const struct refresh_list *l = personal_list(pw, rq);
			/* A list holds the best refresh k: a route asking for more
			 * than that (n > k / 4) searches now. */
			if (l && (k <= l->n_search || l->n_search < rq->refresh->k)) {
				got = from_refresh(pw, l, 0, l->n_search, k, tmp);
				break;
			}
			if (l)
				pw->cache = PIPE_CACHE_MISS;
			if (rq->shed) {
				/* Overloaded: the other sources of the route fill the
				 * list; the shopper's list is on its way (hinted). */
				pw->cache = PIPE_CACHE_SHED;
				break;
			}
			const float *vec = q->user != LUA_NO_ITEM ? snap_user_vec(s, q->user) : session_query(pw);
			if (vec)
				got = rec_topk_keep(s, vec, k, -1, miss_nprobe(rq), pw->rec, keep_item, pw, tmp);
			else if (pw->cache == PIPE_CACHE_NONE || pw->cache == PIPE_CACHE_MISS)
				pw->cache = PIPE_CACHE_NO_VECTOR;
			break;
		}
		case LUA_SRC_SESSION: {
			ref = q->n_recent ? q->recent[0] : LUA_NO_ITEM;
			/* With a list, the session is already in its search part;
			 * its tail holds the neighbours of what they touched last. */
			const struct refresh_list *l = personal_list(pw, rq);
			if (l) {
				got = from_refresh(pw, l, l->n_search, l->n, k, tmp);
				break;
			}
			const float *vec = rq->shed ? NULL : session_query(pw);
			if (vec)
				got = rec_topk_keep(s, vec, k, -1, miss_nprobe(rq), pw->rec, keep_item, pw, tmp);
			break;
		}
		case LUA_SRC_SIMILAR:
		case LUA_SRC_CONTENT: {
			/* Seeds: the page's item; else the cart (the strongest
			 * sign of intent), then the newest recent items. */
			uint32_t refs[PIPE_MAX_REFS], n_refs = 0;
			if (q->context_item != LUA_NO_ITEM) {
				refs[n_refs++] = q->context_item;
			} else {
				for (uint32_t i = 0; i < q->n_cart && n_refs < PIPE_MAX_REFS; i++)
					refs[n_refs++] = q->cart[i];
				for (uint32_t i = 0; i < q->n_recent && n_refs < PIPE_MAX_REFS; i++) {
					bool dup = false;
					for (uint32_t j = 0; j < n_refs && !dup; j++)
						dup = refs[j] == q->recent[i];
					if (!dup)
						refs[n_refs++] = q->recent[i];
				}
			}
			uint32_t per = n_refs ? (k + n_refs - 1) / n_refs : 0;
			for (uint32_t r = 0; r < n_refs && n < PIPE_MAX_CANDS; r++) {
				uint32_t ki = MIN(per, PIPE_MAX_CANDS - n);
				if (src == LUA_SRC_SIMILAR) {
					got = from_similar(pw, refs[r], ki, rq->nprobe, tmp);
					/* Row items entered the set in from_similar; the
					 * search's results enter it here. */
					for (uint32_t i = 0; i < got && n < PIPE_MAX_CANDS; i++) {
						set_add(pw, tmp[i].item);
						pw->cands[n++] = (struct lua_cand){
							.item = tmp[i].item,
							.score = weight * (1.0f - (float)i / (float)MAX(ki, 1u)),
							.source = (uint8_t)src,
							.reason_item = refs[r],
						};
					}
				} else {
					got = from_category(pw, s->item_category[refs[r]], ki, tmp);
					n = append(pw, n, tmp, got, ki, weight, src, refs[r]);
				}
			}
			got = 0;
			break;
		}
		default:
			break;
		}
		n = append(pw, n, tmp, got, k, weight, src, ref);
	}
	/* Live item state the policies may use. */
	if (pw->live_items) {
		for (uint32_t i = 0; i < n; i++) {
			const struct live_item *it = live_item_get(pw->lv, item_key(s, pw->cands[i].item));
			if (!it)
				continue;
			if (it->price == it->price && it->price < s->item_price[pw->cands[i].item])
				pw->cands[i].flags |= LUA_CAND_ON_SALE;
			if (it->boost > 0 && it->boost != 1.0f) {
				pw->cands[i].score *= it->boost;
				pw->cands[i].flags |= it->boost > 1.0f ? LUA_CAND_BOOSTED : LUA_CAND_DEMOTED;
			}
		}
	}
	return n;
}

uint8_t pipe_cache_status(const struct pipe_worker *pw)
{
	return pw->cache;
}

/* ---------------------------------------------------------------- rank */

static int cmp_cand(const void *a, const void *b)
{
	const struct lua_cand *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->orig < y->orig ? -1 : x->orig > y->orig;
}

uint32_t pipe_default_rank(struct lua_cand *c, uint32_t n, uint32_t n_wanted)
{
	for (uint32_t i = 0; i < n; i++)
		c[i].orig = i;
	qsort(c, n, sizeof(*c), cmp_cand);
	return MIN(n, n_wanted);
}

static bool req_recent_has(const struct lua_req *q, uint32_t item)
{
	for (uint32_t i = 0; i < q->n_recent; i++)
		if (q->recent[i] == item)
			return true;
	return false;
}

void pipe_default_reasons(struct lua_cand *c, uint32_t n, const struct lua_req *q)
{
	for (uint32_t i = 0; i < n; i++) {
		if (c[i].reason != LUA_REASON_NONE)
			continue;
		bool viewed = c[i].reason_item != LUA_NO_ITEM && req_recent_has(q, c[i].reason_item);
		switch (c[i].source) {
		case LUA_SRC_TRENDING: c[i].reason = LUA_REASON_TRENDING; break;
		case LUA_SRC_PERSONALIZED: c[i].reason = LUA_REASON_PERSONALIZED; break;
		case LUA_SRC_SESSION:
			c[i].reason = viewed ? LUA_REASON_BECAUSE_YOU_VIEWED : LUA_REASON_PERSONALIZED;
			break;
		case LUA_SRC_SIMILAR:
			c[i].reason = viewed ? LUA_REASON_BECAUSE_YOU_VIEWED : LUA_REASON_SIMILAR;
			break;
		case LUA_SRC_CONTENT: c[i].reason = LUA_REASON_SAME_CATEGORY; break;
		default: c[i].reason = LUA_REASON_POPULAR; break;
		}
	}
}

/* ---------------------------------------------------------------- all */

void pipe_apply_sources(struct lua_route *rt, const struct exp_variant *v)
{
	uint32_t most = 1;
	for (uint32_t i = 0; i < rt->n_sources; i++)
		most = MAX(most, rt->sources[i].n);
	for (uint32_t j = 0; j < v->n_sources; j++) {
		const struct exp_source_weight *o = &v->sources[j];
		uint32_t i = 0;
		while (i < rt->n_sources && rt->sources[i].source != o->source)
			i++;
		if (i < rt->n_sources && o->weight <= 0) {
			if (rt->n_sources == 1)
				continue;   /* a route keeps at least one source */
			memmove(&rt->sources[i], &rt->sources[i + 1], (rt->n_sources - i - 1) * sizeof(rt->sources[0]));
			rt->n_sources--;
		} else if (i < rt->n_sources) {
			rt->sources[i].weight = o->weight;
		} else if (o->weight > 0 && rt->n_sources < LUA_ROUTE_MAX_SOURCES) {
			/* A source the route did not ask for comes in as deep as its deepest. */
			rt->sources[rt->n_sources++] = (struct lua_route_source){ o->source, most, o->weight };
		}
	}
}

void pipe_recommend(struct pipe_worker *pw, struct lua_host *h, const struct pipe_request *rq,
		    struct pipe_result *res)
{
	const struct lua_req *q = pipe_resolve(pw, rq);
	struct lua_route *rt = &pw->route;
	memset(res, 0, sizeof(*res));

	int rc = h ? lua_host_route(h, rq->snap, q, rt) : -ENOENT;
	if (rc) {
		if (rc != -ENOENT) {
			res->lua_rc = rc;
			res->failed_hook = LUA_HOOK_ROUTE;
		}
		pipe_default_route(q, rt);
	}
	if (rq->variant && rq->variant->n_sources)
		pipe_apply_sources(rt, rq->variant);
	res->tier = (enum lua_tier)rt->tier;
	res->route = rt->policy;

	struct lua_cand *c;
	uint32_t n = pipe_gather(pw, rq, rt, &c);
	bool ranked = false;
	if (h && (lua_host_has_hook(h, LUA_HOOK_RULES) || lua_host_has_hook(h, LUA_HOOK_RERANK))) {
		uint32_t m = n;
		rc = lua_host_rank(h, rq->snap, q, c, &m, rq->n);
		if (rc == 0) {
			n = m;
			res->policy = true;
			ranked = lua_host_has_hook(h, LUA_HOOK_RERANK);
		} else if (!res->lua_rc) {
			res->lua_rc = rc;
			res->failed_hook = (uint8_t)lua_host_failed_hook(h);
		}
	}
	if (!ranked)
		n = pipe_default_rank(c, n, rq->n);
	n = MIN(n, rq->n);
	pipe_default_reasons(c, n, q);
	res->items = c;
	res->n = n;
	res->strategy = n ? c[0].source : LUA_SRC_NONE;
	res->cache = pw->cache;
}
