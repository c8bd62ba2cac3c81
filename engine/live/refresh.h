/* refresh.h: background candidate refresh — the "hybrid" pattern. When a
 * shopper's events arrive, their candidate list (top-k by the blend of
 * their snapshot embedding and live session vector, or by their ALS
 * fold-in, plus neighbours of what they touched last) is computed off the
 * request path; the request path re-ranks it live instead of searching
 * on demand.
 *
 * Theory of operation:
 *  - producer: only the updater thread. After applying an interaction
 *    event it calls refresh_request(user key); after forgetting a user
 *    (forget_user, "personalize": false) refresh_forget. Both go, in
 *    order, through one single-producer / single-consumer ck_ring of
 *    (key, op) messages. Neither blocks nor allocates: a request that
 *    finds the ring full (or fuller than the room kept for forgets) is
 *    counted as `dropped`; the user's list then stays stale and the
 *    request path computes on demand, as it would without this module
 *    (the event itself is applied: only the precomputation is lost). A
 *    forget that finds the ring full sets `flush`, and the refresh thread
 *    drops every list and pending request once it has taken what was
 *    queued before: a forget is never lost.
 *  - coalescing and rate limit: the refresh thread keeps a pending table
 *    (user key -> due time, a FIFO in due order; writer-private). The
 *    first request for a user not pending makes the user due
 *    min_interval_ms after that request (its time is taken when the
 *    updater sends it); more requests before then are `coalesced` into
 *    that one computation, which runs after all of them and reads the
 *    live state as it is then. A burst shorter than min_interval_ms costs
 *    one computation, a steady stream about one per min_interval_ms; a
 *    list is ready about min_interval_ms + one computation after the
 *    first event of a burst (until then the request path computes).
 *  - compute: inside an epoch section of the refresh thread's own record
 *    (registered on srv->epoch), on the snapshot current then and the
 *    user's live record (no live record, i.e. forgotten or evicted since:
 *    no list). Query = 0.5 * the snapshot user embedding (normalised) +
 *    0.5 * the live session vector (normalised), or whichever exists;
 *    neither: no list — the blend; or, with fold-in on (below), the
 *    shopper's ALS fold-in. rec_topk_keep (ANN when the snapshot has an index,
 *    else exact) without the items the user purchased or live item state
 *    blocks; then up to REFRESH_NEIGHBORS items of the neighbour rows of
 *    the user's REFRESH_SEEDS most recent items, not already listed,
 *    scored below the last search result.
 *  - publish: each list is an immutable struct refresh_list in a ck_hs in
 *    SPMC mode: the refresh thread is its only writer, request workers
 *    look lists up without locks (refresh_get) inside their epoch
 *    section. A replaced or removed list goes to ck_epoch_call on the
 *    refresh thread's record, which it polls every loop turn, so it is
 *    freed only after every reader that could have found it has left its
 *    section. At most max_lists lists are kept: beyond that the least
 *    recently computed go (`evicted`). A list whose user the live state
 *    no longer holds (idle or over max_users: live_evict) can never be
 *    fresh again: a sweep, every sweep_ms a few entries per loop turn,
 *    drops those (`swept`), so lists live no longer than live records.
 *  - lifetime: refresh_start registers the thread's epoch record, which
 *    lives inside struct refresh: ck_epoch never unlinks a record, so the
 *    struct must stay in place (static, or heap never freed before the
 *    epoch) for as long as anyone may run a barrier on srv->epoch, and be
 *    started at most once. refresh_stop stops the thread, frees every
 *    list and runs the record's pending frees: call it when no producer
 *    and no reader remains, before the live state it reads is destroyed.
 *
 *  - fold-in (refresh_foldin: off | cold | all; live/foldin.h): the thread
 *    owns the Gram matrix Y'Y of the snapshot it computes on. When the
 *    snapshot changes it sums the new one's, gram_rows (REFRESH_GRAM_ROWS)
 *    item rows per loop turn after the event- and hint-driven work (1M x
 *    64: about 0.17 s in all, 3 ms a turn); nothing while the mode is off.
 *    Until it is complete every query is the blend. Then a shopper with a
 *    live record whose touches name items of the snapshot
 *    (foldin_user_inputs gives n > 0) gets as query: in mode cold, when
 *    the snapshot has no embedding for them, the plain fold-in of those
 *    touches; in mode all, the fold-in with their snapshot embedding as
 *    prior (foldin_prior; without one, plain). Anyone else, or a solve
 *    that fails (-EDOM, a vector that is not finite): the blend. Counted
 *    as `folded`. The mode and the parameters are read at each
 *    computation (reloadable). The rebuild pass after a swap (below)
 *    waits for the new Gram matrix, so rebuilt lists are folded in too.
 *  - swaps: a list's items are indexes into the snapshot of generation
 *    snap_generation; it also holds each item's key (XXH3 of the id), so
 *    after a swap readers translate it into the new snapshot
 *    (refresh_list_carried: one hash lookup per item, instead of a search)
 *    while a rebuild pass recomputes every list on the new snapshot in the
 *    background, newest published first; shoppers who come back before
 *    the pass reaches them are hinted by the request path and go first.
 *
 * Freshness, for readers: a list reflects the user's live record as it
 * was at `interactions` (see refresh_list_fresh). Item updates do not make
 * a list stale: readers still filter items blocked since (the request
 * path's freshness filter), as for any source.
 */
#ifndef RECD_REFRESH_H
#define RECD_REFRESH_H

#include <ck_epoch.h>
#include <ck_hs.h>
#include <ck_ring.h>
#include <pthread.h>
#include "core/common.h"
#include "core/srv.h"
#include "events/event.h"
#include "live/foldin.h"
#include "live/live.h"
#include "rec/rec.h"
#include "snap/snap.h"

#define REFRESH_K 200                     /* search results per list (default) */
#define REFRESH_NEIGHBORS 50              /* neighbour items appended at most */
#define REFRESH_SEEDS 3                   /* most recent items whose rows are used */
#define REFRESH_MIN_INTERVAL_MS 50        /* default rate limit per user */
#define REFRESH_RING_SIZE 65536u          /* default ring entries (power of two) */
#define REFRESH_PENDING_MAX 65536u        /* default pending table size (power of two) */
#define REFRESH_K_MAX 1000u
#define REFRESH_SWEEP_MS 30000u           /* default: lists of users live state dropped */
#define REFRESH_GRAM_ROWS 16384u         /* Gram matrix rows summed per loop turn */
#define REFRESH_FOLDIN_PRIOR 10.0         /* default pull of the snapshot embedding (mode all) */
#define REFRESH_HIST_BUCKETS 16           /* compute time: bucket 0 < 1 us, bucket i in
                                             [2^(i-1), 2^i) us, the last also what is longer */

/* One user's precomputed candidates; immutable once published. */
struct refresh_list {
	ck_epoch_entry_t retire;
	uint64_t user_key;
	uint64_t snap_generation;  /* the snapshot whose indexes items[] holds */
	uint32_t interactions;     /* live_user->n_interactions when computed */
	uint32_t n_search;         /* items[0..n_search): the embedding search, best first */
	uint64_t first_seen_ms;    /* live_user->first_seen_ms: which live record it was */
	uint64_t computed_ms;      /* wall clock */
	uint64_t version;          /* publish sequence number (increases) */
	uint32_t n;                /* items[n_search..n): neighbour items, scores below */
	uint32_t reserved;         /* 0; keeps the keys after items[] 8-byte aligned */
	struct rec_item items[];   /* best first: scores never increase; then n item keys */
};
_Static_assert(offsetof(struct refresh_list, items) % 8 == 0 && sizeof(struct rec_item) % 8 == 0,
	       "refresh_list_keys must be aligned");

/* The item keys of a list (keys[i] is the key of items[i]). */
static inline const uint64_t *refresh_list_keys(const struct refresh_list *l)
{
	return (const uint64_t *)(const void *)(l->items + l->n);
}

/* The query: which shoppers get a fold-in (see the theory of operation). */
enum refresh_foldin {
	REFRESH_FOLDIN_CONFIG = 0, /* srv->cfg.refresh_foldin and foldin_*, read at each computation */
	REFRESH_FOLDIN_OFF,        /* always the blend */
	REFRESH_FOLDIN_COLD,       /* fold-in for shoppers without a snapshot embedding */
	REFRESH_FOLDIN_ALL,        /* fold-in for all, the snapshot embedding as prior */
};

struct refresh_opts {
	uint32_t k;                /* search results, 1..REFRESH_K_MAX */
	uint32_t min_interval_ms;  /* 0: compute as soon as the thread takes the request */
	uint32_t ring_size;        /* power of two >= 16 */
	uint32_t pending_max;      /* power of two >= 16 */
	uint64_t max_lists;        /* 0: the live state's max_users (or 1M when that is 0) */
	uint32_t nprobe;           /* ANN lists probed first; 0: srv->cfg.ann_nprobe, read at each computation */
	uint32_t sweep_ms;         /* a sweep starts at most this often; 0: REFRESH_SWEEP_MS */
	uint32_t foldin;           /* enum refresh_foldin; CONFIG: the mode and parameters from srv->cfg */
	uint32_t gram_rows;        /* Gram matrix rows summed per loop turn; 0: REFRESH_GRAM_ROWS */
	struct foldin_params foldin_params;   /* with a mode other than CONFIG: lambda, alpha, prior
	                                         (mode all), log_eps */
};

/* What refresh_stats_read reports (each field has one writer). */
struct refresh_stats {
	/* producer side (the updater thread) */
	uint64_t requested;        /* refresh_request calls */
	uint64_t dropped;          /* ring full: left to the request path */
	uint64_t forget_flushes;   /* forgets that found the ring full (all lists dropped) */
	uint64_t wakeups;          /* eventfd writes to wake the thread */
	/* the refresh thread */
	uint64_t coalesced;        /* requests folded into a pending computation */
	uint64_t overflow;         /* pending table full: request left to the request path */
	uint64_t computed;         /* lists computed and published */
	uint64_t folded;           /* ... of which the query was a fold-in */
	uint64_t foldin_failed;    /* fold-in solves that failed (the blend was used) */
	uint64_t gram_generation;  /* snapshot whose Gram matrix is complete; 0: none */
	uint64_t skipped;          /* due but nothing to compute (no snapshot, live record or vector) */
	uint64_t forgotten;        /* forget messages applied */
	uint64_t flushes;          /* times every list was dropped (see forget_flushes) */
	uint64_t evicted;          /* lists dropped over max_lists */
	uint64_t swept;            /* lists dropped because live state no longer holds the user */
	uint64_t rebuilt;          /* lists recomputed by the pass after a snapshot swap */
	uint64_t rebuild_passes;   /* passes started (one per swap) */
	uint64_t rebuild_left;     /* publish-order entries the running pass has yet to look at */
	uint64_t lists;            /* lists held now */
	uint64_t pending;          /* computations waiting now */
	uint64_t compute_ns_total, compute_ns_max;
	uint64_t compute_hist[REFRESH_HIST_BUCKETS];   /* not cumulative */
};

struct refresh_msg {           /* private */
	uint64_t user_key;
	uint64_t at_ns;            /* now_ns() when the updater sent it */
	uint32_t op;               /* request or forget */
	uint32_t reserved;
};

CK_RING_PROTOTYPE(refresh_msg, refresh_msg)

struct refresh_pend {          /* writer-private */
	uint64_t key;              /* 0: cancelled */
	uint64_t due_ns;
};

struct refresh_ord {           /* writer-private: lists in publish order */
	uint64_t key;
	uint64_t version;
};

/* One request worker's misses: users it served without a list, for the
 * refresh thread to compute (single producer: that worker). */
struct refresh_hints {
	ck_ring_t ring;
	struct refresh_msg *buf;
	uint64_t sent, dropped;    /* the worker's counters (ck_pr stores) */
} cacheline_aligned;

#define REFRESH_HINT_RING 1024u

struct refresh {
	/* ---- shared with readers: the lists ---- */
	ck_hs_t lists;
	/* ---- request workers: one hint ring each (n_hints) ---- */
	struct refresh_hints *hints;
	uint32_t n_hints;

	/* ---- producer (the updater thread) ---- */
	ck_ring_t ring cacheline_aligned;   /* of struct refresh_msg */
	struct refresh_msg *ring_buf;
	uint32_t reserve;          /* ring slots requests leave to forgets */
	uint64_t p_requested, p_dropped, p_forget_flushes, p_wakeups;   /* ck_pr stores */

	/* ---- both ---- */
	int sleeping cacheline_aligned;   /* ck_pr: the thread sleeps until woken */
	int flush;                 /* ck_pr: a forget was not queued: drop everything */
	int stop;
	int wake_fd;

	/* ---- the refresh thread ---- */
	ck_epoch_record_t rec cacheline_aligned;
	struct refresh_stats st;   /* thread-side fields, ck_pr stores */
	struct recd_server *srv;
	struct live *live;
	pthread_t thread;
	bool started, hs_ready, rec_registered, fd_ready;
	uint32_t k, nprobe, foldin, gram_rows;
	struct foldin_params foldin_params;
	uint64_t min_interval_ns;
	uint64_t max_lists;
	uint64_t n_lists;
	uint64_t removed_since_gc;
	uint64_t next_version;
	uint64_t sweep_ns, next_sweep_ns;
	uint64_t sweep_pos;        /* index into ord[]; UINT64_MAX: no sweep running */
	uint64_t rebuild_gen;      /* the snapshot generation the rebuild pass works towards */
	uint64_t rebuild_pos;      /* the pass walks ord[] down from here; <= ord_head: done */
	/* pending: FIFO in due order plus an index (key -> absolute position) */
	struct refresh_pend *pend;
	uint64_t pend_head, pend_tail, pend_mask;
	uint64_t *pidx_key, *pidx_pos;
	uint64_t pidx_mask;
	/* publish order, for eviction (a deque; stale entries skipped) */
	struct refresh_ord *ord;
	uint64_t ord_head, ord_tail, ord_cap;
	/* compute scratch */
	struct rec_scratch *scratch;
	float *qbuf;
	uint32_t qcap;
	struct rec_item *out;      /* k + REFRESH_NEIGHBORS */
	uint32_t *seen_item, *seen_stamp;   /* small set of listed items */
	uint32_t seen_mask, stamp;
	/* fold-in */
	struct foldin_gram gram;   /* of the snapshot computed on (or being summed) */
	uint64_t gram_failed;      /* generation whose Gram matrix could not be begun (ENOMEM) */
	double *fscratch;          /* foldin_scratch_doubles(fdim) */
	uint32_t fdim;
	bool folded;               /* the last make_query folded in */
	uint32_t f_items[FOLDIN_MAX_INPUTS];
	float f_strength[FOLDIN_MAX_INPUTS];
};

/* Defaults: REFRESH_K, REFRESH_MIN_INTERVAL_MS, REFRESH_RING_SIZE,
 * REFRESH_PENDING_MAX, max_lists 0, nprobe 0, REFRESH_SWEEP_MS, gram_rows 0, foldin
 * REFRESH_FOLDIN_CONFIG (foldin_params: recd-train's defaults with prior
 * REFRESH_FOLDIN_PRIOR, used only when foldin is set to a mode). */
void refresh_opts_default(struct refresh_opts *o);
/* Set up and start the thread. `lv` is the live state it reads (written
 * by the caller's thread, the only producer); o NULL: defaults with
 * nprobe = srv->cfg.ann_nprobe and the fold-in settings of srv->cfg, read
 * at each computation. 0, -EINVAL (bad options) or -errno; on
 * failure nothing is left to stop, but the struct's epoch record stays
 * on srv->epoch's list: do not start it again. */
int refresh_start(struct refresh *r, struct recd_server *srv, struct live *lv, const struct refresh_opts *o);
/* Stop the thread, free every list and what it retired. No producer and
 * no reader may remain. Safe on a zeroed struct and twice. */
void refresh_stop(struct refresh *r);

/* ---- producer (the updater thread only) ---- */
/* Does an event of this type change what the user's list would be? (The
 * interactions: view, click, add/remove from cart, purchase, rating.) */
static inline bool refresh_event_wanted(unsigned type)
{
	return type == EVENT_VIEW || type == EVENT_CLICK || type == EVENT_ADD_TO_CART ||
	       type == EVENT_REMOVE_FROM_CART || type == EVENT_PURCHASE || type == EVENT_RATING;
}
/* Recompute this user's list soon. Never blocks; ring full = `dropped`. */
void refresh_request(struct refresh *r, uint64_t user_key);
/* Drop this user's list and pending request, in order with requests. */
void refresh_forget(struct refresh *r, uint64_t user_key);

/* ---- request workers ---- */
/* Worker `worker` served `user_key` without a usable list: compute one
 * for the user's next request (a shopper known only to the snapshot gets
 * a list from their embedding alone). Never blocks, no system call: a
 * full ring drops the hint (counted); the thread polls the rings. */
void refresh_hint(struct refresh *r, uint32_t worker, uint64_t user_key);

/* ---- readers (inside an epoch section on srv->epoch) ---- */
/* The user's list, or NULL. Valid until the caller's section ends. */
const struct refresh_list *refresh_get(const struct refresh *r, uint64_t user_key);
/* Up to date with the user whose live record is `lu` (NULL: none): the
 * same live record with no interaction since it was computed — or, for a
 * list made from the snapshot embedding alone (first_seen_ms 0), still no
 * live record. */
static inline bool refresh_list_current(const struct refresh_list *l, const struct live_user *lu)
{
	if (!l)
		return false;
	if (!lu)
		return l->first_seen_ms == 0;
	return l->interactions == lu->n_interactions && l->first_seen_ms == lu->first_seen_ms;
}
/* Usable as is for a request on snapshot `s`: current, and computed on
 * that very snapshot (its indexes are s's). */
static inline bool refresh_list_fresh(const struct refresh_list *l, const struct snap *s,
				      const struct live_user *lu)
{
	return s && refresh_list_current(l, lu) && l->snap_generation == s->generation;
}
/* Current, but computed on another snapshot (before a swap): usable by
 * translating each item by its key (refresh_list_keys). */
static inline bool refresh_list_carried(const struct refresh_list *l, const struct snap *s,
					const struct live_user *lu)
{
	return s && refresh_list_current(l, lu) && l->snap_generation != s->generation;
}

/* Counters (any thread). */
void refresh_stats_read(const struct refresh *r, struct refresh_stats *out);

#endif
