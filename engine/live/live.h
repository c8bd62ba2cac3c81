/* live.h: live state: what shoppers did a moment ago and what happened to
 * items since the snapshot was built.
 *
 * Theory of operation. One writer, many readers, no locks:
 *  - the updater thread is the only writer. Records are immutable once
 *    published: to change a user the writer copies the record, edits the
 *    copy and swaps it into the table (ck_hs in SPMC mode, which allows
 *    one writer concurrent with lock-free readers). The old record goes to
 *    ck_epoch_call and is freed only after every reader has left the epoch
 *    section in which it could have found it.
 *  - readers (the request workers) look records up inside their per-loop
 *    epoch section (see core/srv.h) and may use them until the section
 *    ends; they never write.
 * Records are keyed by stable 64-bit hashes of the external ids (the
 * snapshot index uses the same hash), so live state survives snapshot
 * swaps and can hold items the snapshot does not know yet.
 */
#ifndef RECD_LIVE_H
#define RECD_LIVE_H

#include <ck_epoch.h>
#include <math.h>
#include <ck_hs.h>
#include "core/common.h"
#include "events/event.h"
#include "snap/snap.h"

#define LIVE_RECENT 32        /* interactions remembered per user */
#define LIVE_CART 32          /* items in a cart */
#define LIVE_PURCHASED 512    /* most recent purchases remembered */
#define LIVE_UNSET_STOCK INT64_MIN

struct live_touch {
	uint64_t item_key;
	uint64_t ts_ms;
	uint8_t type;              /* enum event_type */
};

/* Purchased items: sorted for lookups, plus arrival order for eviction.
 * Shared, unchanged, between versions of a user record. */
struct live_keyset {
	ck_epoch_entry_t retire;
	uint32_t n;
	uint64_t *order;           /* oldest first (points into keys[]) */
	uint64_t keys[];           /* sorted n, then order n */
};

struct live_user {
	ck_epoch_entry_t retire;
	uint64_t key;
	uint64_t first_seen_ms, last_seen_ms;
	uint32_t n_interactions;
	uint16_t n_recent, n_cart;
	float session_weight;      /* 0 = no session vector yet */
	uint32_t dim;
	struct live_touch recent[LIVE_RECENT];  /* newest first */
	uint64_t cart[LIVE_CART];
	const struct live_keyset *purchased;     /* NULL = none */
	float session[];           /* dim floats: decayed mean of recent item vectors */
};

struct live_item {
	ck_epoch_entry_t retire;
	uint64_t key;
	int64_t stock;             /* LIVE_UNSET_STOCK = as in the snapshot */
	float price;               /* NaN = as in the snapshot */
	float boost;
	int8_t available;          /* -1 = as in the snapshot */
	uint64_t updated_ms;
};

struct live_stats {
	uint64_t users, items;     /* current sizes */
	uint64_t evicted_users;
	uint64_t forgotten_users;
};

struct live {
	ck_hs_t users;
	ck_hs_t items;
	uint32_t dim;
	uint64_t max_users;
	uint64_t session_half_life_ms;
	ck_epoch_record_t *writer;  /* the updater's epoch record */
	struct live_stats stats;    /* written by the writer with ck_pr stores */
	uint64_t clock_ms;          /* newest interaction ts applied (ck_pr): "now" for
	                               session ageing, so replays and tests age alike */
};

int live_init(struct live *lv, uint32_t dim, uint64_t max_users, ck_epoch_record_t *writer);
/* Free everything (no reader may remain). */
void live_destroy(struct live *lv);

/* ---- readers (inside an epoch section) ---- */
const struct live_user *live_user_get(struct live *lv, uint64_t key);
const struct live_item *live_item_get(struct live *lv, uint64_t key);
bool live_keyset_has(const struct live_keyset *ks, uint64_t key);
bool live_user_in_cart(const struct live_user *u, uint64_t item_key);
static inline bool live_user_purchased(const struct live_user *u, uint64_t item_key)
{
	return u->purchased && live_keyset_has(u->purchased, item_key);
}
/* The weight of a user's session vector now: it halves every
 * session_half_life_ms since their last event, as it would at the next
 * one. "Now" is the live state's clock (the newest event applied), not
 * the wall clock: a replay of old events ages sessions as it went. Below
 * LIVE_SESSION_STALE the session no longer says what they are doing (a
 * single view two half-lives before the newest event): readers leave it
 * out. */
#define LIVE_SESSION_STALE 0.25f
static inline float live_session_weight(const struct live *lv, const struct live_user *u)
{
	uint64_t now_ms = ck_pr_load_64((uint64_t *)&lv->clock_ms);
	if (u->session_weight <= 0)
		return 0;
	if (now_ms <= u->last_seen_ms || !lv->session_half_life_ms)
		return u->session_weight;
	return u->session_weight * (float)exp2(-(double)(now_ms - u->last_seen_ms) / (double)lv->session_half_life_ms);
}

/* An item update made it unservable (stock 0 or unavailable). */
static inline bool live_item_blocked(const struct live_item *it)
{
	return it && (it->stock == 0 || it->available == 0);
}

/* ---- writer (the updater thread only) ---- */
/* Apply one validated event. `s` is the snapshot current for the writer
 * (for item vectors); NULL is allowed. 0 or -ENOMEM. */
int live_apply(struct live *lv, const struct event *ev, const struct snap *s);
/* Forget a user at once (privacy); true when one was there. */
bool live_forget_user(struct live *lv, uint64_t key);
/* Drop users idle for longer than idle_ms, then the least recently seen
 * ones while above max_users. Returns how many were evicted. */
uint64_t live_evict(struct live *lv, uint64_t now_ms, uint64_t idle_ms);

/* ---- restore (live/checkpoint.c, before any reader exists) ---- */
/* Remove every record (retired through the writer's epoch record, so a
 * reader may still be looking) and reset the clock and sizes. */
void live_clear(struct live *lv);
/* Bytes of one user record (struct live_user plus dim floats). */
size_t live_user_size(const struct live *lv);
/* Insert a malloc'ed record (live_user_size bytes for a user, with its
 * own malloc'ed purchased set or NULL) the caller built; a record with the
 * same key is replaced and freed at once. On -ENOMEM the record (and its
 * set) is freed. 0 or -ENOMEM. */
int live_restore_user(struct live *lv, struct live_user *u);
int live_restore_item(struct live *lv, struct live_item *it);

#endif
