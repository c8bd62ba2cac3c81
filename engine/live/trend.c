/* trend.c: live trending (see trend.h for the scores and the theory of
 * operation). Owns the writer's item table and the published lists. */
#include <errno.h>
#include <sched.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <ck_pr.h>
#include "live/trend.h"

#define TREND_YIELD_EVERY 65536u   /* slots between sched_yield calls in a rebuild */
#include "snap/snapb.h"

#define TREND_INIT_CAP 1024u
#define TREND_RESCALE_EXP 16.0   /* publish moves t_ref when now is this many half-lives on */
#define TREND_MAX_EXP 60.0       /* an event this far past t_ref rescales at once */
#define TREND_FUTURE_MS 60000ull /* client clocks ahead by more are clamped */
#define TREND_EVICT_SAMPLE 4096u
#define UNKNOWN_IDX UINT32_MAX

/* ------------------------------------------------------ writer's table */

/* Keys are XXH3 already; the mix only guards the low bits the mask uses. */
static inline uint64_t slot_pos(const struct trend *t, uint64_t key)
{
	uint64_t h = (key ^ (key >> 32)) * 0x9e3779b97f4a7c15ull;
	return (h ^ (h >> 29)) & t->mask;
}

static struct trend_slot *slot_find(const struct trend *t, uint64_t key)
{
	for (uint64_t p = slot_pos(t, key);; p = (p + 1) & t->mask) {
		struct trend_slot *sl = &t->slots[p];
		if (sl->key == key || !sl->key)
			return sl;
	}
}

/* Exponent of ts against the reference time, in half-lives (signed). */
static inline double rel_exp(const struct trend *t, uint64_t ts)
{
	return (double)(int64_t)(ts - t->t_ref_ms) / t->half_life_ms;
}

static void update_floor(struct trend *t)
{
	t->floor_v = t->clock_ms && t->have_ref ? TREND_MIN_SCORE * exp2(rel_exp(t, t->clock_ms)) : 0.0;
}

/* Move t_ref to `ref`, rescaling every v (values keep their meaning). */
static void rescale(struct trend *t, uint64_t ref)
{
	double f = exp2(-rel_exp(t, ref));
	for (uint64_t i = 0; i <= t->mask; i++)
		if (t->slots[i].key)
			t->slots[i].v *= f;
	t->t_ref_ms = ref;
	update_floor(t);
}

/* Move the slots into a table of `cap`, keeping those with v >= keep_min
 * and (v > thr, or v == thr for the first `budget` of them). */
static int rebuild(struct trend *t, uint64_t cap, double keep_min, double thr, uint64_t budget)
{
	struct trend_slot *ns = calloc(cap, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	struct trend_slot *old = t->slots;
	uint64_t old_cap = t->mask + 1, n = 0;
	t->slots = ns;
	t->mask = cap - 1;
	for (uint64_t i = 0; i < old_cap; i++) {
		const struct trend_slot *sl = &old[i];
		if (!sl->key || sl->v < keep_min || sl->v < thr)
			continue;
		if (sl->v == thr) {
			if (!budget)
				continue;
			budget--;
		}
		*slot_find(t, sl->key) = *sl;
		n++;
	}
	free(old);
	t->count = n;
	ck_pr_store_64(&t->size, n);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Over the cap: drop the weakest eighth. The threshold comes from an even
 * sample of the table; ties at it are kept up to the target. */
static void evict(struct trend *t)
{
	uint64_t target = t->max_items - t->max_items / 8;
	double sample[TREND_EVICT_SAMPLE];
	uint64_t step = t->count / TREND_EVICT_SAMPLE + 1, seen = 0;
	uint32_t ns = 0;
	for (uint64_t i = 0; i <= t->mask && ns < TREND_EVICT_SAMPLE; i++)
		if (t->slots[i].key && seen++ % step == 0)
			sample[ns++] = t->slots[i].v;
	if (!ns)
		return;
	qsort(sample, ns, sizeof(sample[0]), cmp_double);
	uint32_t at = (uint32_t)((double)(t->count - target) / (double)t->count * ns);
	double thr = sample[at < ns ? at : ns - 1];
	uint64_t above = 0;
	for (uint64_t i = 0; i <= t->mask; i++)
		if (t->slots[i].key && t->slots[i].v > thr)
			above++;
	rebuild(t, t->mask + 1, 0.0, thr, target > above ? target - above : 0);
}

int trend_init(struct trend *t, ck_epoch_record_t *writer, uint64_t half_life_ms, uint64_t max_items)
{
	memset(t, 0, sizeof(*t));
	t->writer = writer;
	t->half_life_ms = (double)(half_life_ms ? half_life_ms : TREND_HALF_LIFE_MS_DEFAULT);
	t->max_items = max_items ? max_items : TREND_MAX_ITEMS_DEFAULT;
	if (t->max_items > (1ull << 30))
		t->max_items = 1ull << 30;   /* slot indexes fit the heaps' uint32 */
	if (t->max_items < 8)
		t->max_items = 8;
	/* One weight table for the whole engine (snapb's), by event name. */
	for (unsigned i = 1; i < EVENT__TYPE_COUNT; i++) {
		float w = snapb_event_weight(event_type_names[i], strlen(event_type_names[i]));
		t->weights[i] = w > 0 ? w : 0.0f;
	}
	t->slots = calloc(TREND_INIT_CAP, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->mask = TREND_INIT_CAP - 1;
	return 0;
}

void trend_destroy(struct trend *t)
{
	free(t->pub);   /* one allocation; no reader remains */
	t->pub = NULL;
	free(t->slots);
	t->slots = NULL;
	free(t->scratch);
	t->scratch = NULL;
	free(t->cat_count);
	t->cat_count = NULL;
	t->count = 0;
}

uint64_t trend_size(const struct trend *t)
{
	return ck_pr_load_64(&t->size);
}

void trend_add(struct trend *t, uint64_t item_key, float weight, uint64_t ts_ms)
{
	if (!item_key || !(weight > 0.0f) || !t->slots)
		return;
	/* A clock far ahead would outweigh every honest event for hours. */
	if (t->clock_ms && ts_ms > t->clock_ms + TREND_FUTURE_MS)
		ts_ms = t->clock_ms + TREND_FUTURE_MS;
	if (!t->have_ref) {
		t->t_ref_ms = ts_ms;
		t->have_ref = true;
		update_floor(t);
	}
	double e = rel_exp(t, ts_ms);
	if (e > TREND_MAX_EXP) {   /* keep v far from overflow */
		rescale(t, ts_ms);
		e = 0.0;
	}
	double c = (double)weight * exp2(e);
	struct trend_slot *sl = slot_find(t, item_key);
	if (sl->key) {
		sl->v += c;
		t->dirty = true;
		return;
	}
	if (!(c > 0.0) || c < t->floor_v)
		return;   /* so old it would be forgotten at once */
	if (t->count >= t->max_items)
		evict(t);
	uint64_t cap = t->mask + 1;
	if ((t->count + 1) * 4 > cap * 3 && rebuild(t, cap * 2, 0.0, -1.0, 0) && (t->count + 1) * 8 > cap * 7)
		return;   /* cannot grow and nearly full: drop the event */
	sl = slot_find(t, item_key);
	*sl = (struct trend_slot){ .key = item_key, .v = c, .idx = UNKNOWN_IDX, .tag = 0 };
	t->count++;
	ck_pr_store_64(&t->size, t->count);
	t->dirty = true;
}

/* ------------------------------------------------------------ publish */

static void free_pub_cb(ck_epoch_entry_t *e)
{
	free(e);   /* retire is the first member */
}

static bool snap_changed(const struct trend *t, const struct snap *s)
{
	if (s != t->seen_snap)
		return true;
	return s && (s->base != t->seen_base || s->generation != t->seen_gen);
}

/* Does slot sl go into the lists, and under which category (UINT32_MAX =
 * global only)? Unservable items of `s` are left out: readers with the
 * same snapshot would skip them anyway. */
static bool eligible(const struct trend *t, const struct trend_slot *sl, const struct snap *s, uint32_t *cat)
{
	*cat = UINT32_MAX;
	if (!sl->key || sl->v < t->floor_v)
		return false;
	if (!s || sl->idx == UNKNOWN_IDX)
		return true;
	if (!snap_item_servable(s, sl->idx))
		return false;
	if (s->item_category[sl->idx] < s->n_categories)
		*cat = s->item_category[sl->idx];
	return true;
}

static int grow_scratch(struct trend *t, uint64_t n_items, uint32_t n_cat)
{
	if (n_items > t->scratch_cap) {
		uint64_t cap = MAX(n_items, t->scratch_cap * 2);
		void *p = realloc(t->scratch, cap * sizeof(*t->scratch));
		if (!p)
			return -ENOMEM;
		t->scratch = p;
		t->scratch_cap = cap;
	}
	if (n_cat + 1 > t->cat_cap) {
		void *p = realloc(t->cat_count, ((size_t)n_cat + 1) * sizeof(*t->cat_count));
		if (!p)
			return -ENOMEM;
		t->cat_count = p;
		t->cat_cap = n_cat + 1;
	}
	return 0;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static int publish(struct trend *t, const struct snap *s, uint64_t now_ms)
{
	if (t->have_ref && t->t_ref_ms > now_ms + TREND_FUTURE_MS)
		/* Events ahead of the clock came before the first tick: shift
		 * them to now rather than let them outweigh (or make underflow)
		 * every event to come. */
		t->t_ref_ms = now_ms;
	else if (t->have_ref && rel_exp(t, now_ms) > TREND_RESCALE_EXP)
		rescale(t, now_ms);
	update_floor(t);
	if (snap_changed(t, s)) {
		t->seen_snap = s;
		t->seen_base = s ? s->base : NULL;
		t->seen_gen = s ? s->generation : 0;
		if (++t->tag == 0)
			t->tag = 1;
	}
	uint32_t n_cat = s ? s->n_categories : 0;
	if (grow_scratch(t, s ? t->count : 0, n_cat))
		return -ENOMEM;
	if (s)
		memset(t->cat_count, 0, ((size_t)n_cat + 1) * sizeof(*t->cat_count));

	/* Pass 1: resolve snapshot indexes, the global heap, category sizes. */
	struct topk_item heap[TREND_TOP];
	uint32_t nh = 0;
	uint64_t n_dead = 0, n_in_cat = 0;
	for (uint64_t i = 0; i <= t->mask; i++) {
		struct trend_slot *sl = &t->slots[i];
		/* A rebuild walks the whole table once a second: let a request
		 * worker sharing this core run every so often. */
		if ((i & (TREND_YIELD_EVERY - 1)) == TREND_YIELD_EVERY - 1)
			sched_yield();
		if (!sl->key)
			continue;
		if (sl->v < t->floor_v) {
			n_dead++;
			continue;
		}
		if (s && sl->tag != t->tag) {
			int64_t idx = snap_item_find_key(s, sl->key);
			sl->idx = idx < 0 ? UNKNOWN_IDX : (uint32_t)idx;
			sl->tag = t->tag;
		}
		uint32_t cat;
		if (!eligible(t, sl, s, &cat))
			continue;
		topk_push(heap, &nh, TREND_TOP, (struct topk_item){ (uint32_t)i, (float)sl->v });
		if (cat != UINT32_MAX) {
			t->cat_count[cat]++;
			n_in_cat++;
		}
	}

	/* Pass 2: bucket the categorised items (counting sort): cat_count
	 * becomes end offsets, then placing by decrement leaves start ones. */
	uint64_t n_cat_entries = 0;
	if (s) {
		uint32_t acc = 0;
		for (uint32_t c = 0; c < n_cat; c++) {
			n_cat_entries += MIN(t->cat_count[c], (uint32_t)TREND_CAT_TOP);
			acc += t->cat_count[c];
			t->cat_count[c] = acc;
		}
		t->cat_count[n_cat] = acc;
		for (uint64_t i = 0; i <= t->mask && n_in_cat; i++) {
			uint32_t cat;
			if ((i & (TREND_YIELD_EVERY - 1)) == TREND_YIELD_EVERY - 1)
				sched_yield();
			if (eligible(t, &t->slots[i], s, &cat) && cat != UINT32_MAX)
				t->scratch[--t->cat_count[cat]] =
					(struct topk_item){ (uint32_t)i, (float)t->slots[i].v };
		}
	}

	size_t sz_global = (size_t)nh * sizeof(struct trend_entry);
	size_t sz_cat = (size_t)n_cat_entries * sizeof(struct trend_entry);
	size_t sz = align8(sizeof(struct trend_pub)) + sz_global + sz_cat +
		    (s ? ((size_t)n_cat + 1) * sizeof(uint32_t) : 0);
	struct trend_pub *p = malloc(sz);
	if (!p)
		return -ENOMEM;
	struct trend_entry *global = (struct trend_entry *)((char *)p + align8(sizeof(*p)));
	struct trend_entry *cat = global + nh;
	uint32_t *cat_off = (uint32_t *)(cat + n_cat_entries);
	/* Scores as of now: the one factor from v to a decayed count. */
	double scale = t->have_ref ? exp2(-rel_exp(t, now_ms)) : 1.0;

	topk_sort(heap, nh);
	for (uint32_t j = 0; j < nh; j++)
		global[j] = (struct trend_entry){ t->slots[heap[j].item].key,
						  (float)(t->slots[heap[j].item].v * scale) };
	uint32_t out = 0;
	if (s) {
		for (uint32_t c = 0; c < n_cat; c++) {
			struct topk_item h[TREND_CAT_TOP];
			uint32_t n = 0;
			cat_off[c] = out;
			for (uint32_t j = t->cat_count[c]; j < t->cat_count[c + 1]; j++)
				topk_push(h, &n, TREND_CAT_TOP, t->scratch[j]);
			topk_sort(h, n);
			for (uint32_t j = 0; j < n; j++)
				cat[out++] = (struct trend_entry){ t->slots[h[j].item].key,
								   (float)(t->slots[h[j].item].v * scale) };
		}
		cat_off[n_cat] = out;
	}
	*p = (struct trend_pub){
		.built_ms = now_ms,
		.snap_generation = s ? s->generation : 0,
		.by_category = s != NULL,
		.n_global = nh,
		.n_categories = n_cat,
		.global = global,
		.cat_off = s ? cat_off : NULL,
		.cat = cat,
	};

	/* A reader that sees the pointer sees the finished lists. */
	struct trend_pub *old = t->pub;
	ck_pr_fence_store();
	ck_pr_store_ptr(&t->pub, p);
	if (old)
		ck_epoch_call(t->writer, &old->retire, free_pub_cb);
	ck_pr_store_64(&t->publishes, t->publishes + 1);

	/* Forget what decayed below TREND_MIN_SCORE once it is a real share
	 * of the table (the lists above were built from the old slots). */
	if (n_dead && n_dead * 4 >= t->count) {
		uint64_t live = t->count - n_dead, cap = TREND_INIT_CAP;
		while (cap * 3 < live * 4 * 2)   /* load <= 3/8 after the shrink */
			cap *= 2;
		rebuild(t, MIN(cap, t->mask + 1), t->floor_v, -1.0, 0);
	}
	return 0;
}

bool trend_tick(struct trend *t, const struct snap *s, uint64_t now_ms)
{
	if (!t->slots)
		return false;
	/* The wall clock stepped back: move t_ref with it, so scores stay as
	 * they were at the last tick instead of jumping up. */
	if (t->have_ref && t->clock_ms > now_ms + TREND_FUTURE_MS)
		t->t_ref_ms -= t->clock_ms - now_ms;
	t->clock_ms = now_ms;
	if (t->pub && now_ms >= t->last_publish_ms) {
		uint64_t since = now_ms - t->last_publish_ms;
		if (since < TREND_PUBLISH_MS)
			return false;
		if (!t->dirty && !snap_changed(t, s) && since < TREND_IDLE_PUBLISH_MS)
			return false;   /* same order; only the scores would decay */
	}
	/* Failure or not, the next try is a second away. */
	t->last_publish_ms = now_ms;
	if (publish(t, s, now_ms))
		return false;
	t->dirty = false;
	return true;
}

/* ------------------------------------------------------------- readers */

int64_t trend_rank(const struct trend *t, uint64_t item_key, float *score)
{
	const struct trend_pub *p = ck_pr_load_ptr(&t->pub);
	if (!p)
		return -1;
	ck_pr_fence_load_depends();
	for (uint32_t j = 0; j < p->n_global; j++) {
		if (p->global[j].item_key == item_key) {
			*score = p->global[j].score;
			return j;
		}
	}
	return -1;
}

uint32_t trend_top(const struct trend *t, const struct snap *s, int64_t category, uint32_t k,
		   struct rec_item *out)
{
	const struct trend_pub *p = ck_pr_load_ptr(&t->pub);
	if (!p || !s || !k)
		return 0;
	ck_pr_fence_load_depends();
	const struct trend_entry *list = p->global;
	uint32_t n = p->n_global;
	bool filter = false;
	if (category >= 0) {
		if ((uint64_t)category >= s->n_categories)
			return 0;
		uint32_t c = (uint32_t)category;
		if (p->by_category && p->snap_generation == s->generation && c < p->n_categories) {
			list = p->cat + p->cat_off[c];
			n = p->cat_off[c + 1] - p->cat_off[c];
		} else {
			filter = true;   /* lists of another snapshot: its categories may differ */
		}
	}
	uint32_t m = 0;
	for (uint32_t j = 0; j < n && m < k; j++) {
		int64_t idx = snap_item_find_key(s, list[j].item_key);
		if (idx < 0 || !snap_item_servable(s, (uint32_t)idx))
			continue;
		if (filter && s->item_category[idx] != (uint32_t)category)
			continue;
		out[m++] = (struct rec_item){ (uint32_t)idx, list[j].score };
	}
	return m;
}
