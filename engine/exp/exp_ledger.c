/* exp_ledger.c: impressions, attribution, per-variant statistics,
 * guardrails, Thompson allocation and quality gauges (see exp_ledger.h). */
#include "exp/exp_ledger.h"

#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <ck_pr.h>
#include "core/log.h"
#include "core/srv.h"
#include "events/event.h"

#define PROBES 16u                 /* bounded probing in the ledger's indexes */
#define DONE_CLICK 1u
#define DONE_CART 2u
#define DONE_BUY 4u
#define TICK_MS 1000u
#define NAP_MIN_US 1000u           /* idle naps double from here ... */
#define NAP_MAX_US 16000u          /* ... up to this: a worker ring (4096) fills in 100 ms at 40k/s */
#define THOMPSON_DRAWS 2000u
#define CELL_OTHER (EXP_GAUGE_PLACEMENTS + 1u)

#define CSET(l, slot, f, v) ck_pr_store_64(&(l)->counts[slot].f, (v))
#define CADD(l, slot, f, v) ck_pr_store_64(&(l)->counts[slot].f, (l)->counts[slot].f + (v))
#define SADD(l, f, v) ck_pr_store_64(&(l)->st.f, (l)->st.f + (v))

void exp_ledger_opts_default(struct exp_ledger_opts *o)
{
	o->capacity = 1u << 16;
	o->window_s = 1800;
	o->ring_size = 4096;
	o->gauge_window_s = EXP_GAUGE_WINDOW_S_DEFAULT;
	o->gauge_slice_s = EXP_GAUGE_SLICE_S_DEFAULT;
}

uint32_t exp_latency_bucket(uint64_t us)
{
	if (us < 4)
		return (uint32_t)us;
	unsigned p = 63u - (unsigned)__builtin_clzll(us);         /* 2^p <= us */
	uint32_t b = 4 * (p - 1) + (uint32_t)((us >> (p - 2)) & 3);   /* 4 per power of two */
	return b < EXP_LAT_BUCKETS ? b : EXP_LAT_BUCKETS - 1;
}

uint64_t exp_latency_bucket_upper(uint32_t b)
{
	if (b < 4)
		return b + 1;
	unsigned p = b / 4 + 1, sub = b % 4;
	return (1ull << p) + ((uint64_t)(sub + 1) << (p - 2));
}

/* ------------------------------------------------------------ producers */

void exp_ledger_impression(struct exp_ledger *l, uint32_t worker, const struct exp_impression *imp)
{
	if (!l || !l->started || worker >= l->n_workers)
		return;
	struct exp_ledger_worker_ring *r = &l->wr[worker];
	if (!ck_ring_enqueue_spsc_exp_impression(&r->ring, r->buf, (struct exp_impression *)imp))
		ck_pr_store_64(&r->dropped, r->dropped + 1);
}

void exp_ledger_outcome(struct exp_ledger *l, const struct event *ev)
{
	if (!l || !l->started)
		return;
	/* Forgetting a shopper (or consent withdrawn) reaches the ledger too:
	 * the impressions it keeps lose their shopper. */
	bool forget = (ev->flags & EVENT_HAS_USER) &&
		      (ev->type == EVENT_FORGET_USER || (ev->flags & EVENT_NO_PERSONALIZE));
	if (forget) {
		struct exp_outcome f = { .user_key = ev->user_key, .ts_ms = ev->ts_ms, .type = EVENT_FORGET_USER };
		if (!ck_ring_enqueue_spsc_exp_outcome(&l->out_ring, l->out_buf, &f))
			ck_pr_store_64(&l->out_dropped, l->out_dropped + 1);
		return;
	}
	if (ev->type != EVENT_CLICK && ev->type != EVENT_ADD_TO_CART && ev->type != EVENT_PURCHASE)
		return;
	if (!(ev->flags & EVENT_HAS_ITEM))
		return;
	struct exp_outcome o = {
		.user_key = (ev->flags & EVENT_HAS_USER) ? ev->user_key : 0,
		.item_key = ev->item_key,
		.request_key = ev->request_len ? XXH3_64bits(ev->request_id, ev->request_len) : 0,
		.ts_ms = ev->ts_ms,
		.price = (ev->flags & EVENT_HAS_PRICE) ? ev->price : NAN,
		.type = ev->type,
	};
	if (!ck_ring_enqueue_spsc_exp_outcome(&l->out_ring, l->out_buf, &o))
		ck_pr_store_64(&l->out_dropped, l->out_dropped + 1);
}

/* -------------------------------------------------------------- indexes */

static inline uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	return k ^ (k >> 33);
}

/* Is absolute position `pos` (+1 encoded) still in the ring? */
static inline bool live_pos(const struct exp_ledger *l, uint64_t enc)
{
	return enc && enc - 1 + l->o.capacity >= l->imp_head && enc - 1 < l->imp_head;
}

/* Insert key -> pos into a bounded-probe table: the first empty, stale or
 * same-key slot, else the slot holding the oldest position. */
static void index_put(struct exp_ledger *l, uint64_t *tab, uint64_t key, uint64_t pos,
		      uint64_t (*key_of)(const struct exp_ledger *, uint64_t))
{
	uint64_t h = mix(key), victim = h & l->index_mask, oldest = UINT64_MAX;
	for (uint32_t i = 0; i < PROBES; i++) {
		uint64_t at = (h + i) & l->index_mask, e = tab[at];
		if (!live_pos(l, e) || key_of(l, e - 1) == key) {
			victim = at;
			break;
		}
		if (e < oldest)
			oldest = e, victim = at;
	}
	tab[victim] = pos + 1;
}

static uint64_t index_get(const struct exp_ledger *l, const uint64_t *tab, uint64_t key,
			  uint64_t (*key_of)(const struct exp_ledger *, uint64_t))
{
	uint64_t h = mix(key);
	for (uint32_t i = 0; i < PROBES; i++) {
		uint64_t e = tab[(h + i) & l->index_mask];
		if (live_pos(l, e) && key_of(l, e - 1) == key)
			return e;
	}
	return 0;
}

static inline struct exp_impression *imp_at(const struct exp_ledger *l, uint64_t pos)
{
	return &l->imp[pos & (l->o.capacity - 1)];
}
static uint64_t req_key_of(const struct exp_ledger *l, uint64_t pos) { return imp_at(l, pos)->request_key; }
static uint64_t user_key_of(const struct exp_ledger *l, uint64_t pos) { return imp_at(l, pos)->user_key; }

/* --------------------------------------------------------------- gauges */

static uint32_t placement_index(struct exp_ledger *l, const struct exp_impression *imp)
{
	if (!imp->placement_len)
		return 0;
	for (uint32_t i = 0; i < l->n_placements; i++)
		if (strlen(l->placements[i]) == imp->placement_len &&
		    !memcmp(l->placements[i], imp->placement, imp->placement_len))
			return i + 1;
	if (l->n_placements == EXP_GAUGE_PLACEMENTS)
		return CELL_OTHER;
	memcpy(l->placements[l->n_placements], imp->placement, imp->placement_len);
	l->placements[l->n_placements][imp->placement_len] = 0;
	return ++l->n_placements;
}

static int cell_of(struct exp_ledger *l, const struct exp_impression *imp)
{
	uint32_t key = placement_index(l, imp) << 16 | (imp->slot == EXP_NO_SLOT ? 0 : imp->slot + 1);
	for (uint32_t i = 0; i < l->n_cells; i++)
		if (l->cell_key[i] == key)
			return (int)i;
	if (l->n_cells == EXP_GAUGE_MAX_CELLS)
		return -1;
	l->cell_key[l->n_cells] = key;
	return (int)l->n_cells++;
}

static void gauge_observe(struct exp_ledger *l, const struct exp_impression *imp)
{
	if (!l->gauge_ready)
		return;
	int cell = cell_of(l, imp);
	if (cell < 0)
		return;
	ck_epoch_begin(&l->rec, NULL);
	const struct snap *s = srv_snapshot(l->srv);
	if (s) {
		if (s->generation != l->gauge_generation && !exp_gauge_snapshot(&l->gauge, s))
			l->gauge_generation = s->generation;
		uint32_t items[EXP_IMP_ITEMS], n = 0;
		if (imp->snap_generation == s->generation) {
			memcpy(items, imp->items, imp->n * sizeof(items[0]));
			n = imp->n;
		} else {
			/* Another model or a swap since: by key into the serving one. */
			for (uint32_t i = 0; i < imp->n; i++) {
				int64_t j = snap_item_find_key(s, imp->item_keys[i]);
				if (j >= 0)
					items[n++] = (uint32_t)j;
			}
		}
		exp_gauge_observe(&l->gauge, (uint32_t)cell, s, items, n, imp->strategy, imp->ts_ms);
	}
	ck_epoch_end(&l->rec, NULL);
}

/* ---------------------------------------------------------- impressions */

/* The item keys of a list, hashed here rather than on the worker: from
 * the snapshot it was served from (the main one or a model), found by
 * generation. One replaced since has taken its ids along: keys 0 (the
 * list is still counted; outcomes cannot match it by item). */
static void key_items(struct exp_ledger *l, struct exp_impression *imp)
{
	ck_epoch_begin(&l->rec, NULL);
	const struct snap *s = NULL;
	for (uint32_t m = 0; m < srv_model_count(l->srv) && !s; m++) {
		const struct snap *x = srv_model_snapshot(l->srv, (int)m);
		if (x && x->generation == imp->snap_generation)
			s = x;
	}
	for (uint32_t i = 0; i < imp->n; i++) {
		imp->item_keys[i] = 0;
		if (s && imp->items[i] < s->n_items) {
			struct str id = snap_item_id(s, imp->items[i]);
			imp->item_keys[i] = XXH3_64bits(id.p, id.len);
		}
	}
	ck_epoch_end(&l->rec, NULL);
	imp->flags |= EXP_IMP_KEYED;
}

static void record(struct exp_ledger *l, const struct exp_impression *in)
{
	struct exp_impression keyed;
	if (!(in->flags & EXP_IMP_KEYED)) {
		keyed = *in;
		key_items(l, &keyed);
		in = &keyed;
	}
	SADD(l, impressions, 1);
	gauge_observe(l, in);
	if (in->slot >= EXP_MAX_SLOTS)
		return;   /* outside experiments: gauges only */
	uint32_t s = in->slot;
	if (in->kind == EXP_IMP_SHADOW) {
		CADD(l, s, shadow_lists, 1);
		CADD(l, s, shadow_items, in->n);
		CADD(l, s, shadow_overlap, in->overlap);
		CADD(l, s, shadow_took_us, in->took_us);
		return;
	}
	CADD(l, s, lists, 1);
	CADD(l, s, items, in->n);
	if (in->flags & EXP_IMP_FALLBACK)
		CADD(l, s, fallbacks, 1);
	if (in->flags & EXP_IMP_EMPTY)
		CADD(l, s, errors, 1);
	CADD(l, s, latency[exp_latency_bucket(in->took_us)], 1);
	/* Kept for attribution. */
	uint64_t pos = l->imp_head;
	uint32_t at = (uint32_t)(pos & (l->o.capacity - 1));
	/* The shopper's previous list, looked up before the slot is
	 * overwritten: until imp_head moves, the evicted list still counts as
	 * live, and an index entry pointing at it would match this shopper. */
	l->imp_prev[at] = in->user_key ? index_get(l, l->user_index, in->user_key, user_key_of) : 0;
	l->imp[at] = *in;
	l->imp_done[at] = 0;
	l->imp_head++;
	if (in->request_key)
		index_put(l, l->req_index, in->request_key, pos, req_key_of);
	if (in->user_key)
		index_put(l, l->user_index, in->user_key, pos, user_key_of);
}

static int position_of(const struct exp_impression *imp, uint64_t item_key)
{
	for (uint32_t i = 0; i < imp->n; i++)
		if (imp->item_keys[i] == item_key && item_key)
			return (int)i;
	return -1;
}

/* Every kept impression of the shopper loses its shopper (and so can be
 * matched by request_id only); their index entry goes. */
static void forget(struct exp_ledger *l, uint64_t user_key)
{
	uint64_t h = mix(user_key);
	for (uint32_t i = 0; i < PROBES; i++) {
		uint64_t *e = &l->user_index[(h + i) & l->index_mask];
		if (live_pos(l, *e) && user_key_of(l, *e - 1) == user_key)
			*e = 0;
	}
	for (uint64_t p = l->imp_head > l->o.capacity ? l->imp_head - l->o.capacity : 0; p < l->imp_head; p++) {
		struct exp_impression *imp = imp_at(l, p);
		if (imp->user_key == user_key)
			imp->user_key = 0;
	}
}

static void attribute(struct exp_ledger *l, const struct exp_outcome *o)
{
	if (o->type == EVENT_FORGET_USER) {
		forget(l, o->user_key);
		return;
	}
	SADD(l, outcomes, 1);
	uint64_t enc = 0;
	int pos = -1;
	bool by_request = false;
	if (o->request_key) {
		enc = index_get(l, l->req_index, o->request_key, req_key_of);
		const struct exp_impression *imp = enc ? imp_at(l, enc - 1) : NULL;
		if (imp && (!o->user_key || !imp->user_key || imp->user_key == o->user_key))
			pos = position_of(imp, o->item_key);
		by_request = pos >= 0;
	}
	if (pos < 0 && o->user_key) {
		/* The shopper's newest list within the window that showed it. */
		uint64_t window = (uint64_t)l->o.window_s * 1000;
		for (enc = index_get(l, l->user_index, o->user_key, user_key_of); live_pos(l, enc);
		     enc = l->imp_prev[(enc - 1) & (l->o.capacity - 1)]) {
			const struct exp_impression *imp = imp_at(l, enc - 1);
			if (imp->user_key != o->user_key || imp->ts_ms + window < o->ts_ms)
				break;
			if (imp->ts_ms <= o->ts_ms + 60000 && (pos = position_of(imp, o->item_key)) >= 0)
				break;
		}
	}
	if (pos < 0) {
		SADD(l, unattributed, 1);
		return;
	}
	uint32_t at = (uint32_t)((enc - 1) & (l->o.capacity - 1));
	const struct exp_impression *imp = &l->imp[at];
	uint32_t s = imp->slot;
	if (by_request)
		CADD(l, s, by_request, 1);
	else
		CADD(l, s, by_window, 1);
	uint8_t *done = &l->imp_done[at];
	switch (o->type) {
	case EVENT_CLICK:
		CADD(l, s, clicks, 1);
		CADD(l, s, clicks_at[pos], 1);
		if (!(*done & DONE_CLICK))
			CADD(l, s, clicked_lists, 1);
		*done |= DONE_CLICK;
		break;
	case EVENT_ADD_TO_CART:
		CADD(l, s, add_to_carts, 1);
		if (!(*done & DONE_CART))
			CADD(l, s, carted_lists, 1);
		*done |= DONE_CART;
		break;
	case EVENT_PURCHASE: {
		CADD(l, s, purchases, 1);
		if (!(*done & DONE_BUY))
			CADD(l, s, converted_lists, 1);
		*done |= DONE_BUY;
		double price = o->price;
		if (isnan(price)) {
			ck_epoch_begin(&l->rec, NULL);
			const struct snap *sn = srv_snapshot(l->srv);
			int64_t j = sn ? snap_item_find_key(sn, o->item_key) : -1;
			price = j >= 0 ? sn->item_price[j] : 0;
			ck_epoch_end(&l->rec, NULL);
		}
		double rev = l->counts[s].revenue + (price > 0 ? price : 0);
		uint64_t bits;
		memcpy(&bits, &rev, sizeof(bits));
		ck_pr_store_64((uint64_t *)(void *)&l->counts[s].revenue, bits);
		break;
	}
	}
}

/* ----------------------------------------------------- periodic checks */

uint64_t exp_ledger_latency_quantile(const struct exp_ledger *l, uint32_t slot, double q)
{
	if (slot >= EXP_MAX_SLOTS)
		return 0;
	uint64_t h[EXP_LAT_BUCKETS], total = 0;
	for (uint32_t b = 0; b < EXP_LAT_BUCKETS; b++)
		total += h[b] = ck_pr_load_64((uint64_t *)&l->counts[slot].latency[b]);
	if (!total)
		return 0;
	uint64_t want = (uint64_t)ceil(q * (double)total), acc = 0;
	for (uint32_t b = 0; b < EXP_LAT_BUCKETS; b++)
		if ((acc += h[b]) >= want && h[b])
			return exp_latency_bucket_upper(b);
	return exp_latency_bucket_upper(EXP_LAT_BUCKETS - 1);
}

static double rate(uint64_t k, uint64_t n)
{
	return n ? (double)k / (double)n : 0;
}

static void trip(struct exp_ledger *l, const struct exp_experiment *e, const struct exp_variant *v,
		 const char *why)
{
	snprintf(l->counts[v->slot].disabled_reason, sizeof(l->counts[v->slot].disabled_reason), "%s", why);
	ck_pr_fence_store();
	ck_pr_store_32(&exp_slots[v->slot].disabled, 1);
	log_warn("experiment_guardrail", "experiment=%s variant=%s reason=\"%s\" detail=\"variant switched off: "
		 "its shoppers get control\"", e->name, v->name, why);
}

static void guardrails(struct exp_ledger *l, const struct exp_experiment *e)
{
	const struct exp_counts *c = &l->counts[e->v[e->control].slot];
	if (c->lists < e->guard.min_requests)
		return;
	double c_err = rate(c->errors, c->lists), c_fb = rate(c->fallbacks, c->lists);
	uint64_t c_p99 = exp_ledger_latency_quantile(l, e->v[e->control].slot, 0.99);
	for (uint32_t i = 0; i < e->n_variants; i++) {
		const struct exp_variant *v = &e->v[i];
		if (i == e->control || v->shadow || ck_pr_load_32(&exp_slots[v->slot].disabled))
			continue;
		const struct exp_counts *x = &l->counts[v->slot];
		if (x->lists < e->guard.min_requests)
			continue;
		char why[96];
		double x_err = rate(x->errors, x->lists), x_fb = rate(x->fallbacks, x->lists);
		uint64_t x_p99 = exp_ledger_latency_quantile(l, v->slot, 0.99);
		if (x_err > c_err + e->guard.error_rate) {
			snprintf(why, sizeof(why), "error rate %.4f vs control %.4f", x_err, c_err);
			trip(l, e, v, why);
		} else if (x_fb > c_fb + e->guard.fallback_rate) {
			snprintf(why, sizeof(why), "fallback rate %.4f vs control %.4f", x_fb, c_fb);
			trip(l, e, v, why);
		} else if (e->guard.p99_ratio > 0 && c_p99 && (double)x_p99 > e->guard.p99_ratio * (double)c_p99) {
			snprintf(why, sizeof(why), "p99 %llu us vs control %llu us", (unsigned long long)x_p99,
				 (unsigned long long)c_p99);
			trip(l, e, v, why);
		}
	}
}

static void thompson(struct exp_ledger *l, const struct exp_experiment *e)
{
	uint64_t succ[EXP_MAX_VARIANTS], trials[EXP_MAX_VARIANTS];
	uint32_t arm[EXP_MAX_VARIANTS], n = 0;
	for (uint32_t i = 0; i < e->n_variants; i++) {
		const struct exp_variant *v = &e->v[i];
		if (v->shadow || !v->weight || ck_pr_load_32(&exp_slots[v->slot].disabled))
			continue;
		succ[n] = l->counts[v->slot].clicked_lists;
		trials[n] = l->counts[v->slot].lists;
		arm[n++] = i;
	}
	if (n < 2)
		return;
	double w[EXP_MAX_VARIANTS];
	exp_thompson_weights(n, succ, trials, e->thompson_floor, THOMPSON_DRAWS, &l->rng, w);
	for (uint32_t j = 0; j < n; j++) {
		uint32_t bp = (uint32_t)llround(w[j] * EXP_BUCKETS);
		ck_pr_store_32(&exp_slots[e->v[arm[j]].slot].alloc_bp, bp ? bp : 1);
	}
}

static void publish_views(struct exp_ledger *l, uint64_t now)
{
	if (!l->gauge_ready)
		return;
	ck_epoch_begin(&l->rec, NULL);
	const struct snap *s = srv_snapshot(l->srv);
	ck_sequence_write_begin(&l->view_seq);
	for (uint32_t i = 0; i < l->n_cells; i++) {
		exp_gauge_read(&l->gauge, i, s, now, &l->views[i]);
		l->view_keys[i] = l->cell_key[i];
	}
	l->n_views = l->n_cells;
	memcpy(l->pub_placements, l->placements, sizeof(l->placements));
	l->n_pub_placements = l->n_placements;
	ck_sequence_write_end(&l->view_seq);
	ck_epoch_end(&l->rec, NULL);
}

static void tick(struct exp_ledger *l, uint64_t now)
{
	ck_epoch_begin(&l->rec, NULL);
	const struct exp_set *set = exp_set_current();
	for (uint32_t i = 0; set && i < set->n; i++) {
		guardrails(l, &set->e[i]);
		if (set->e[i].thompson)
			thompson(l, &set->e[i]);
	}
	ck_epoch_end(&l->rec, NULL);
	publish_views(l, now);
	uint64_t dropped = 0;
	for (uint32_t w = 0; w < l->n_workers; w++)
		dropped += ck_pr_load_64(&l->wr[w].dropped);
	ck_pr_store_64(&l->st.dropped, dropped);
	ck_pr_store_64(&l->st.outcomes_dropped, ck_pr_load_64(&l->out_dropped));
}

static void *ledger_main(void *arg)
{
	struct exp_ledger *l = arg;
	/* Bookkeeping: workers go first, and the refresh thread (nice 10),
	 * whose lists shoppers wait for, before it. */
	int pr = thread_background(15);
	if (pr)
		log_debug("ledger_priority_kept", "err=\"%s\"", strerror(-pr));
	struct exp_impression imp;
	struct exp_outcome o;
	uint32_t nap = NAP_MIN_US;
	while (!ck_pr_load_int(&l->stop)) {
		uint32_t work = 0;
		for (uint32_t w = 0; w < l->n_workers; w++)
			for (uint32_t k = 0; k < 1024 && ck_ring_dequeue_spsc_exp_impression(&l->wr[w].ring, l->wr[w].buf, &imp); k++, work++)
				record(l, &imp);
		/* Outcomes after the impressions taken so far: a click right
		 * after its list finds it. */
		for (uint32_t k = 0; k < 4096 && ck_ring_dequeue_spsc_exp_outcome(&l->out_ring, l->out_buf, &o); k++, work++)
			attribute(l, &o);
		uint64_t now = now_wall_ms();
		if (now >= l->next_tick_ms) {
			tick(l, now);
			l->next_tick_ms = now + TICK_MS;
		}
		ck_epoch_poll(&l->rec);
		/* No wake-up from the workers (no system call on their side):
		 * poll, less often the longer there is nothing to do. */
		if (work) {
			nap = NAP_MIN_US;
		} else {
			usleep(nap);
			nap = MIN(nap * 2, NAP_MAX_US);
		}
	}
	return NULL;
}

/* ---------------------------------------------------------- lifecycle */

int exp_ledger_start(struct exp_ledger *l, struct recd_server *srv, uint32_t n_workers,
		     const struct exp_ledger_opts *o)
{
	struct exp_ledger_opts d;
	if (!o) {
		exp_ledger_opts_default(&d);
		o = &d;
	}
	if (!o->capacity || (o->capacity & (o->capacity - 1)) || !o->ring_size || (o->ring_size & (o->ring_size - 1)))
		return -EINVAL;
	l->srv = srv;
	l->o = *o;
	l->n_workers = n_workers;
	l->wr = calloc(n_workers ? n_workers : 1, sizeof(*l->wr));
	l->out_buf = calloc(o->ring_size, sizeof(*l->out_buf));
	l->imp = calloc(o->capacity, sizeof(*l->imp));
	l->imp_prev = calloc(o->capacity, sizeof(*l->imp_prev));
	l->imp_done = calloc(o->capacity, 1);
	l->index_mask = (uint64_t)o->capacity * 4 - 1;
	l->req_index = calloc(l->index_mask + 1, sizeof(uint64_t));
	l->user_index = calloc(l->index_mask + 1, sizeof(uint64_t));
	if (!l->wr || !l->out_buf || !l->imp || !l->imp_prev || !l->imp_done || !l->req_index || !l->user_index)
		goto nomem;
	for (uint32_t w = 0; w < n_workers; w++) {
		l->wr[w].buf = calloc(o->ring_size, sizeof(*l->wr[w].buf));
		if (!l->wr[w].buf)
			goto nomem;
		ck_ring_init(&l->wr[w].ring, o->ring_size);
	}
	ck_ring_init(&l->out_ring, o->ring_size);
	l->gauge_ready = exp_gauge_init(&l->gauge, EXP_GAUGE_MAX_CELLS, o->gauge_window_s, o->gauge_slice_s) == 0;
	ck_sequence_init(&l->view_seq);
	exp_rng_seed(&l->rng, now_ns() ^ (uint64_t)getpid());
	ck_epoch_register(&srv->epoch, &l->rec, NULL);
	l->rec_registered = true;
	l->started = true;   /* before the thread: producers may record from now on */
	int r = pthread_create(&l->thread, NULL, ledger_main, l);
	if (r) {
		l->started = false;
		return -r;
	}
	pthread_setname_np(l->thread, "recd-ledger");
	return 0;
nomem:
	exp_ledger_stop(l);
	return -ENOMEM;
}

void exp_ledger_stop(struct exp_ledger *l)
{
	if (l->started) {
		ck_pr_store_int(&l->stop, 1);
		pthread_join(l->thread, NULL);
		l->started = false;
	}
	for (uint32_t w = 0; l->wr && w < l->n_workers; w++)
		free(l->wr[w].buf);
	free(l->wr);
	free(l->out_buf);
	free(l->imp);
	free(l->imp_prev);
	free(l->imp_done);
	free(l->req_index);
	free(l->user_index);
	l->wr = NULL;
	l->out_buf = NULL;
	l->imp = NULL;
	l->imp_prev = NULL;
	l->imp_done = NULL;
	l->req_index = l->user_index = NULL;
	if (l->gauge_ready)
		exp_gauge_free(&l->gauge);
	l->gauge_ready = false;
}

void exp_ledger_stats_read(const struct exp_ledger *l, struct exp_ledger_stats *out)
{
	out->impressions = ck_pr_load_64((uint64_t *)&l->st.impressions);
	out->dropped = ck_pr_load_64((uint64_t *)&l->st.dropped);
	out->outcomes = ck_pr_load_64((uint64_t *)&l->st.outcomes);
	out->outcomes_dropped = ck_pr_load_64((uint64_t *)&l->st.outcomes_dropped);
	out->unattributed = ck_pr_load_64((uint64_t *)&l->st.unattributed);
}

void exp_ledger_counts_read(const struct exp_ledger *l, uint32_t slot, struct exp_counts *out)
{
	memset(out, 0, sizeof(*out));
	if (slot >= EXP_MAX_SLOTS)
		return;
	const uint64_t *src = (const uint64_t *)(const void *)&l->counts[slot];
	uint64_t *dst = (uint64_t *)(void *)out;
	size_t words = offsetof(struct exp_counts, disabled_reason) / sizeof(uint64_t);
	for (size_t i = 0; i < words; i++)
		dst[i] = ck_pr_load_64((uint64_t *)&src[i]);
	if (ck_pr_load_32(&exp_slots[slot].disabled)) {
		ck_pr_fence_load();
		memcpy(out->disabled_reason, l->counts[slot].disabled_reason, sizeof(out->disabled_reason));
	}
}

uint32_t exp_ledger_views(struct exp_ledger *l, struct exp_gauge_view *views, uint32_t *keys, uint32_t cap,
			  char placements[][EXP_PLACEMENT_LEN], uint32_t *n_placements)
{
	uint32_t n, np, version;
	do {
		version = ck_sequence_read_begin(&l->view_seq);
		n = MIN(ck_pr_load_32(&l->n_views), cap);
		memcpy(views, l->views, n * sizeof(*views));
		memcpy(keys, l->view_keys, n * sizeof(*keys));
		np = ck_pr_load_32(&l->n_pub_placements);
		memcpy(placements, l->pub_placements, sizeof(l->pub_placements));
	} while (ck_sequence_read_retry(&l->view_seq, version));
	*n_placements = np;
	return n;
}
