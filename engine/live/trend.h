/* trend.h: live trending: time-decayed interaction counts per item, and
 * the top lists (global and per category) built from them.
 *
 * Scores. An item's score is the sum of its events' weights, each halved
 * every half_life_ms since the event. The table stores "score at the
 * reference time t_ref" instead, v = sum w * 2^((ts - t_ref) / half_life),
 * so an event costs one hash probe and never touches other items; the
 * score at time `now` is v * 2^(-(now - t_ref) / half_life), one factor
 * common to all items, so ranking by v is ranking by score. Publishing
 * moves t_ref forward (rescaling every v) before the exponents grow large.
 *
 * Theory of operation:
 *  - writer: only the updater thread. It owns the hash table (private:
 *    nobody else reads it, so it is a plain open-addressing table) and,
 *    from trend_tick, at most once per second builds a new, immutable
 *    struct trend_pub (global top TREND_TOP, per-category top
 *    TREND_CAT_TOP by the categories of the snapshot it was given), then
 *    publishes it with a store fence and ck_pr_store_ptr.
 *  - readers: request workers, inside their epoch section (core/srv.h),
 *    load the pointer once (trend_top) and read the lists; they never
 *    write and take no lock.
 *  - reclamation: the replaced trend_pub goes to ck_epoch_call on the
 *    writer's epoch record (the updater polls it every loop turn), so it
 *    is freed only after every reader that could have loaded it has left
 *    its section. trend_destroy frees the current one directly: it is
 *    called when no reader remains, before the final epoch barrier that
 *    runs the pending frees.
 */
#ifndef RECD_TREND_H
#define RECD_TREND_H

#include <ck_epoch.h>
#include "core/common.h"
#include "core/topk.h"
#include "events/event.h"
#include "rec/rec.h"
#include "snap/snap.h"

#define TREND_TOP 500                        /* global list length */
#define TREND_CAT_TOP 100                    /* per-category list length */
#define TREND_HALF_LIFE_MS_DEFAULT 3600000ull
#define TREND_MAX_ITEMS_DEFAULT 1000000ull
#define TREND_PUBLISH_MS 1000ull             /* at most one rebuild per this */
#define TREND_IDLE_PUBLISH_MS 60000ull       /* rebuild anyway (decayed scores) */
#define TREND_MIN_SCORE 1e-3                 /* below this an item is forgotten */

struct trend_entry {
	uint64_t item_key;
	float score;               /* decayed count at built_ms */
};

/* One published generation of lists; immutable once published. */
struct trend_pub {
	ck_epoch_entry_t retire;
	uint64_t built_ms;
	uint64_t snap_generation;  /* of the snapshot whose categories were used */
	bool by_category;          /* false: built without a snapshot */
	uint32_t n_global;
	uint32_t n_categories;     /* of that snapshot (0 when !by_category) */
	const struct trend_entry *global;        /* best first */
	const uint32_t *cat_off;   /* n_categories + 1 offsets into cat[] */
	const struct trend_entry *cat;           /* per category, best first */
};

struct trend_slot {            /* writer-private */
	uint64_t key;              /* 0 = empty */
	double v;                  /* score at t_ref */
	uint32_t idx;              /* index in the snapshot of tag; UINT32_MAX = unknown */
	uint32_t tag;              /* snapshot tag idx was resolved for; 0 = never */
};

struct trend {
	/* ---- shared with readers ---- */
	struct trend_pub *pub cacheline_aligned;   /* ck_pr_load_ptr / ck_pr_store_ptr */
	uint64_t size;             /* items tracked (ck_pr stores) */
	uint64_t publishes;        /* lists published (ck_pr stores) */

	/* ---- writer-private ---- */
	ck_epoch_record_t *writer cacheline_aligned;
	struct trend_slot *slots;
	uint64_t mask;             /* capacity - 1 */
	uint64_t count;
	uint64_t max_items;
	double half_life_ms;
	uint64_t t_ref_ms;         /* reference time of every v */
	bool have_ref;
	uint64_t clock_ms;         /* latest trend_tick time (0 = none yet) */
	double floor_v;            /* TREND_MIN_SCORE at clock_ms, as a v */
	bool dirty;                /* added since the last publish */
	uint64_t last_publish_ms;
	/* the snapshot slots' idx were resolved for */
	const struct snap *seen_snap;
	const void *seen_base;
	uint64_t seen_gen;
	uint32_t tag;
	/* publish scratch, kept between ticks */
	struct topk_item *scratch;
	uint64_t scratch_cap;
	uint32_t *cat_count;
	uint32_t cat_cap;
	float weights[EVENT__TYPE_COUNT];
};

/* half_life_ms 0 = TREND_HALF_LIFE_MS_DEFAULT, max_items 0 =
 * TREND_MAX_ITEMS_DEFAULT. `writer` retires published lists. 0 or -ENOMEM. */
int trend_init(struct trend *t, ck_epoch_record_t *writer, uint64_t half_life_ms, uint64_t max_items);
/* Free everything (no reader may remain; pending retired lists are freed
 * by the writer's epoch barrier). Safe on a zeroed struct. */
void trend_destroy(struct trend *t);

/* ---- writer (the updater thread only) ---- */
/* Weight an event of `type` adds (snapb_event_weight's table: view,
 * click, rating 1, add_to_cart 3, purchase 5); 0 = does not count. */
static inline float trend_event_weight(const struct trend *t, unsigned type)
{
	return type < EVENT__TYPE_COUNT ? t->weights[type] : 0.0f;
}
/* Count one interaction at ts_ms (the event's time; more than a minute
 * past the last tick's clock counts as a minute past). O(1) amortized;
 * never fails (under memory pressure the event is dropped). */
void trend_add(struct trend *t, uint64_t item_key, float weight, uint64_t ts_ms);
/* Call every loop turn: republishes the lists when TREND_PUBLISH_MS has
 * passed and something changed (or TREND_IDLE_PUBLISH_MS has). `s` is
 * the writer's current snapshot, for categories; NULL = global list only.
 * Returns true when it published. */
bool trend_tick(struct trend *t, const struct snap *s, uint64_t now_ms);

/* ---- readers (inside an epoch section) ---- */
/* Up to k items of `s`, servable there, best first, score = decayed
 * count. category -1 = global; a category index of `s` = that category
 * (from the global list filtered by s->item_category when the lists were
 * built for another snapshot generation). Returns how many. */
uint32_t trend_top(const struct trend *t, const struct snap *s, int64_t category, uint32_t k,
		   struct rec_item *out);
/* Where the item with this key stands in the published global list
 * (servable or not): its 0-based rank and score, or -1 when it is not
 * listed (admin lookups). */
int64_t trend_rank(const struct trend *t, uint64_t item_key, float *score);
/* Items tracked (for metrics; any thread). */
uint64_t trend_size(const struct trend *t);

#endif
