/* live.c: live user and item state (see live.h for the theory). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/epoch_hs.h"
#include "live/live.h"

/* Both record kinds start with the same header, so one hash and one
 * compare callback serve both tables. */
struct live_rec {
	ck_epoch_entry_t retire;
	uint64_t key;
};

static unsigned long hs_hash(const void *obj, unsigned long seed)
{
	(void)seed;
	return (unsigned long)((const struct live_rec *)obj)->key;
}

static bool hs_compare(const void *a, const void *b)
{
	return ((const struct live_rec *)a)->key == ((const struct live_rec *)b)->key;
}

int live_init(struct live *lv, uint32_t dim, uint64_t max_users, ck_epoch_record_t *writer)
{
	memset(lv, 0, sizeof(*lv));
	lv->dim = dim;
	lv->max_users = max_users;
	lv->writer = writer;
	lv->session_half_life_ms = 30 * 60 * 1000;
	unsigned mode = CK_HS_MODE_OBJECT | CK_HS_MODE_SPMC | CK_HS_MODE_DELETE;
	if (!ck_hs_init(&lv->users, mode, hs_hash, hs_compare, &epoch_hs_allocator, 1024, 0x5eed))
		return -ENOMEM;
	if (!ck_hs_init(&lv->items, mode, hs_hash, hs_compare, &epoch_hs_allocator, 256, 0x5eed)) {
		ck_hs_destroy(&lv->users);
		return -ENOMEM;
	}
	return 0;
}

static void free_keyset_cb(ck_epoch_entry_t *e)
{
	free(e);   /* retire is the first member */
}

static void free_rec_cb(ck_epoch_entry_t *e)
{
	free(e);
}

void live_destroy(struct live *lv)
{
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	void *obj;
	epoch_hs_writer(NULL);
	while (ck_hs_next(&lv->users, &it, &obj)) {
		struct live_user *u = obj;
		free((void *)u->purchased);
		free(u);
	}
	ck_hs_iterator_init(&it);
	while (ck_hs_next(&lv->items, &it, &obj))
		free(obj);
	ck_hs_destroy(&lv->users);
	ck_hs_destroy(&lv->items);
}

/* ------------------------------------------------------------- readers */

const struct live_user *live_user_get(struct live *lv, uint64_t key)
{
	struct live_rec probe = { .key = key };
	return ck_hs_get(&lv->users, key, &probe);
}

const struct live_item *live_item_get(struct live *lv, uint64_t key)
{
	struct live_rec probe = { .key = key };
	return ck_hs_get(&lv->items, key, &probe);
}

bool live_keyset_has(const struct live_keyset *ks, uint64_t key)
{
	uint32_t lo = 0, hi = ks->n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (ks->keys[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ks->n && ks->keys[lo] == key;
}

bool live_user_in_cart(const struct live_user *u, uint64_t item_key)
{
	for (uint32_t i = 0; i < u->n_cart; i++)
		if (u->cart[i] == item_key)
			return true;
	return false;
}

/* -------------------------------------------------------------- writer */

static size_t user_size(const struct live *lv)
{
	return sizeof(struct live_user) + (size_t)lv->dim * sizeof(float);
}

static void stat_set(uint64_t *ctr, uint64_t v)
{
	ck_pr_store_64(ctr, v);
}

/* A private copy of the user's record (or a fresh one) for the writer to
 * edit before publishing. */
static struct live_user *user_draft(struct live *lv, const struct live_user *old, uint64_t key, uint64_t ts)
{
	struct live_user *u = malloc(user_size(lv));
	if (!u)
		return NULL;
	if (old) {
		memcpy(u, old, user_size(lv));
	} else {
		memset(u, 0, user_size(lv));
		u->key = key;
		u->first_seen_ms = ts;
		u->dim = lv->dim;
	}
	if (ts > u->last_seen_ms)
		u->last_seen_ms = ts;
	return u;
}

static int user_publish(struct live *lv, struct live_user *u, const struct live_user *old)
{
	void *prev = NULL;
	if (!ck_hs_set(&lv->users, u->key, u, &prev)) {
		free(u);
		return -ENOMEM;
	}
	if (prev)
		ck_epoch_call(lv->writer, &((struct live_user *)prev)->retire, free_rec_cb);
	else
		stat_set(&lv->stats.users, lv->stats.users + 1);
	(void)old;
	return 0;
}

static void recent_push(struct live_user *u, uint64_t item_key, uint64_t ts, uint8_t type)
{
	uint32_t n = u->n_recent < LIVE_RECENT ? u->n_recent + 1u : LIVE_RECENT;
	memmove(&u->recent[1], &u->recent[0], (n - 1) * sizeof(u->recent[0]));
	u->recent[0] = (struct live_touch){ item_key, ts, type };
	u->n_recent = (uint16_t)n;
}

static void cart_remove(struct live_user *u, uint64_t item_key)
{
	for (uint32_t i = 0; i < u->n_cart; i++)
		if (u->cart[i] == item_key) {
			memmove(&u->cart[i], &u->cart[i + 1], (u->n_cart - i - 1) * sizeof(u->cart[0]));
			u->n_cart--;
			return;
		}
}

static void cart_add(struct live_user *u, uint64_t item_key)
{
	cart_remove(u, item_key);
	if (u->n_cart == LIVE_CART) {   /* full: the oldest entry goes */
		memmove(&u->cart[0], &u->cart[1], (LIVE_CART - 1) * sizeof(u->cart[0]));
		u->n_cart--;
	}
	u->cart[u->n_cart++] = item_key;
}

/* A new purchased set with `key` added (oldest dropped beyond the cap). */
static struct live_keyset *keyset_with(const struct live_keyset *old, uint64_t key)
{
	uint32_t n = old ? old->n : 0;
	if (old && live_keyset_has(old, key))
		return NULL;   /* unchanged */
	uint32_t keep = n < LIVE_PURCHASED ? n : LIVE_PURCHASED - 1;
	uint32_t nn = keep + 1;
	struct live_keyset *ks = malloc(sizeof(*ks) + 2 * (size_t)nn * sizeof(uint64_t));
	if (!ks)
		return NULL;
	ks->n = nn;
	ks->order = ks->keys + nn;
	/* arrival order: the newest `keep` of the old ones, then key */
	if (keep)
		memcpy(ks->order, old->order + (n - keep), keep * sizeof(uint64_t));
	ks->order[keep] = key;
	/* sorted: insertion into a copy of the order (n <= 512: cheap) */
	memcpy(ks->keys, ks->order, nn * sizeof(uint64_t));
	for (uint32_t i = 1; i < nn; i++) {
		uint64_t v = ks->keys[i];
		uint32_t j = i;
		while (j > 0 && ks->keys[j - 1] > v) {
			ks->keys[j] = ks->keys[j - 1];
			j--;
		}
		ks->keys[j] = v;
	}
	return ks;
}

/* Fold an item's embedding into the session vector: a mean that halves
 * its old weight every session_half_life_ms. */
static void session_update(struct live *lv, struct live_user *u, const struct snap *s, uint64_t item_key,
			   uint64_t ts, uint64_t prev_seen)
{
	if (!s || s->dim != lv->dim || !lv->dim)
		return;
	int64_t idx = snap_item_find_key(s, item_key);
	if (idx < 0)
		return;
	const float *v = snap_item_vec(s, (uint32_t)idx);
	float w = u->session_weight;
	if (w > 0 && ts > prev_seen)
		w *= (float)exp2(-(double)(ts - prev_seen) / (double)lv->session_half_life_ms);
	float nw = w + 1.0f;
	for (uint32_t d = 0; d < lv->dim; d++)
		u->session[d] = (u->session[d] * w + v[d]) / nw;
	u->session_weight = nw > 1000.0f ? 1000.0f : nw;
}

static int apply_item_update(struct live *lv, const struct event *ev)
{
	const struct live_item *old = live_item_get(lv, ev->item_key);
	struct live_item *it = malloc(sizeof(*it));
	if (!it)
		return -ENOMEM;
	if (old) {
		*it = *old;
	} else {
		memset(it, 0, sizeof(*it));
		it->key = ev->item_key;
		it->stock = LIVE_UNSET_STOCK;
		it->price = NAN;
		it->available = -1;
	}
	if (ev->flags & EVENT_HAS_STOCK)
		it->stock = ev->stock;
	if (ev->flags & EVENT_HAS_PRICE)
		it->price = ev->price;
	if (ev->flags & EVENT_HAS_AVAILABLE)
		it->available = (int8_t)ev->available;
	if (ev->flags & EVENT_HAS_BOOST)
		it->boost = ev->boost;
	it->updated_ms = ev->ts_ms;
	void *prev = NULL;
	if (!ck_hs_set(&lv->items, it->key, it, &prev)) {
		free(it);
		return -ENOMEM;
	}
	if (prev)
		ck_epoch_call(lv->writer, &((struct live_item *)prev)->retire, free_rec_cb);
	else
		stat_set(&lv->stats.items, lv->stats.items + 1);
	return 0;
}

bool live_forget_user(struct live *lv, uint64_t key)
{
	epoch_hs_writer(lv->writer);
	struct live_rec probe = { .key = key };
	struct live_user *u = ck_hs_remove(&lv->users, key, &probe);
	if (!u)
		return false;
	if (u->purchased)
		ck_epoch_call(lv->writer, &((struct live_keyset *)u->purchased)->retire, free_keyset_cb);
	ck_epoch_call(lv->writer, &u->retire, free_rec_cb);
	stat_set(&lv->stats.users, lv->stats.users - 1);
	return true;
}

int live_apply(struct live *lv, const struct event *ev, const struct snap *s)
{
	epoch_hs_writer(lv->writer);
	if (ev->type == EVENT_ITEM_UPDATE)
		return apply_item_update(lv, ev);
	if (ev->type == EVENT_FORGET_USER || (ev->flags & EVENT_NO_PERSONALIZE)) {
		/* Consent withdrawn: keep nothing about this shopper. */
		if (live_forget_user(lv, ev->user_key))
			stat_set(&lv->stats.forgotten_users, lv->stats.forgotten_users + 1);
		return 0;
	}
	/* A client clock ahead of ours must not age everyone's session at
	 * once: the clock moves at most a minute past the wall clock. */
	uint64_t t = MIN(ev->ts_ms, now_wall_ms() + 60000);
	if (t > lv->clock_ms)
		ck_pr_store_64(&lv->clock_ms, t);
	const struct live_user *old = live_user_get(lv, ev->user_key);
	uint64_t prev_seen = old ? old->last_seen_ms : ev->ts_ms;
	struct live_user *u = user_draft(lv, old, ev->user_key, ev->ts_ms);
	if (!u)
		return -ENOMEM;
	struct live_keyset *new_purchased = NULL;
	const struct live_keyset *old_purchased = u->purchased;

	switch (ev->type) {
	case EVENT_VIEW:
	case EVENT_CLICK:
	case EVENT_RATING:
		u->n_interactions++;
		recent_push(u, ev->item_key, ev->ts_ms, ev->type);
		if (ev->type != EVENT_RATING || ev->value > 0)
			session_update(lv, u, s, ev->item_key, ev->ts_ms, prev_seen);
		break;
	case EVENT_ADD_TO_CART:
		u->n_interactions++;
		recent_push(u, ev->item_key, ev->ts_ms, ev->type);
		cart_add(u, ev->item_key);
		session_update(lv, u, s, ev->item_key, ev->ts_ms, prev_seen);
		break;
	case EVENT_REMOVE_FROM_CART:
		u->n_interactions++;
		cart_remove(u, ev->item_key);
		break;
	case EVENT_PURCHASE:
		u->n_interactions++;
		recent_push(u, ev->item_key, ev->ts_ms, ev->type);
		cart_remove(u, ev->item_key);
		session_update(lv, u, s, ev->item_key, ev->ts_ms, prev_seen);
		new_purchased = keyset_with(old_purchased, ev->item_key);
		if (new_purchased)
			u->purchased = new_purchased;
		break;
	case EVENT_IMPRESSION:
	default:
		break;   /* seen, nothing to remember yet (attribution comes later) */
	}
	int r = user_publish(lv, u, old);
	if (r) {
		free(new_purchased);
		return r;
	}
	if (new_purchased && old_purchased)
		ck_epoch_call(lv->writer, &((struct live_keyset *)old_purchased)->retire, free_keyset_cb);
	return 0;
}

void live_clear(struct live *lv)
{
	epoch_hs_writer(lv->writer);
	for (int t = 0; t < 2; t++) {
		ck_hs_t *hs = t ? &lv->items : &lv->users;
		uint64_t n = ck_hs_count(hs), k = 0;
		void **all = n ? malloc(n * sizeof(*all)) : NULL;
		if (n && !all) {
			/* no memory for the list: remove one at a time (slower, same result) */
			for (;;) {
				ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
				void *obj;
				if (!ck_hs_next(hs, &it, &obj))
					break;
				struct live_rec *rec = obj;
				ck_hs_remove(hs, rec->key, rec);
				if (!t && ((struct live_user *)obj)->purchased)
					ck_epoch_call(lv->writer,
						      &((struct live_keyset *)((struct live_user *)obj)->purchased)->retire,
						      free_keyset_cb);
				ck_epoch_call(lv->writer, &rec->retire, free_rec_cb);
			}
			continue;
		}
		ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
		void *obj;
		while (k < n && ck_hs_next(hs, &it, &obj))
			all[k++] = obj;
		ck_hs_reset(hs);
		for (uint64_t i = 0; i < k; i++) {
			struct live_rec *rec = all[i];
			if (!t && ((struct live_user *)rec)->purchased)
				ck_epoch_call(lv->writer, &((struct live_keyset *)((struct live_user *)rec)->purchased)->retire,
					      free_keyset_cb);
			ck_epoch_call(lv->writer, &rec->retire, free_rec_cb);
		}
		free(all);
	}
	stat_set(&lv->stats.users, 0);
	stat_set(&lv->stats.items, 0);
	ck_pr_store_64(&lv->clock_ms, 0);
}

size_t live_user_size(const struct live *lv)
{
	return user_size(lv);
}

int live_restore_user(struct live *lv, struct live_user *u)
{
	epoch_hs_writer(NULL);   /* no reader yet: a replaced table goes at once */
	void *prev = NULL;
	if (!ck_hs_set(&lv->users, u->key, u, &prev)) {
		free((void *)u->purchased);
		free(u);
		return -ENOMEM;
	}
	if (prev) {
		free((void *)((struct live_user *)prev)->purchased);
		free(prev);
	} else {
		stat_set(&lv->stats.users, lv->stats.users + 1);
	}
	return 0;
}

int live_restore_item(struct live *lv, struct live_item *it)
{
	epoch_hs_writer(NULL);
	void *prev = NULL;
	if (!ck_hs_set(&lv->items, it->key, it, &prev)) {
		free(it);
		return -ENOMEM;
	}
	if (prev)
		free(prev);
	else
		stat_set(&lv->stats.items, lv->stats.items + 1);
	return 0;
}

uint64_t live_evict(struct live *lv, uint64_t now_ms, uint64_t idle_ms)
{
	epoch_hs_writer(lv->writer);
	uint64_t cutoff = now_ms > idle_ms ? now_ms - idle_ms : 0;
	uint64_t count = ck_hs_count(&lv->users);
	if (count > lv->max_users) {
		/* Over the cap: estimate from a sample the last-seen time below
		 * which the excess (plus 5% headroom) lies, and evict below it. */
		uint64_t sample[1024];
		uint32_t ns = 0;
		ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
		void *obj;
		while (ns < ARRAY_SIZE(sample) && ck_hs_next(&lv->users, &it, &obj))
			sample[ns++] = ((struct live_user *)obj)->last_seen_ms;
		qsort(sample, ns, sizeof(sample[0]), cmp_u64);
		double share = (double)(count - lv->max_users) / (double)count + 0.05;
		uint32_t at = (uint32_t)(share * ns);
		uint64_t mark = ns ? sample[at < ns ? at : ns - 1] : 0;
		if (mark > cutoff)
			cutoff = mark;
	}
	uint64_t victims[256];
	uint64_t evicted = 0;
	for (;;) {
		/* Collect, then remove: removing while iterating is not allowed. */
		uint32_t nv = 0;
		ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
		void *obj;
		while (nv < ARRAY_SIZE(victims) && ck_hs_next(&lv->users, &it, &obj)) {
			const struct live_user *u = obj;
			if (u->last_seen_ms <= cutoff)
				victims[nv++] = u->key;
		}
		for (uint32_t i = 0; i < nv; i++)
			evicted += live_forget_user(lv, victims[i]);
		if (nv < ARRAY_SIZE(victims))
			break;
	}
	if (evicted) {
		stat_set(&lv->stats.evicted_users, lv->stats.evicted_users + evicted);
		ck_hs_gc(&lv->users, 0, 0);
	}
	return evicted;
}
