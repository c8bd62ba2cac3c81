/* refresh.c: background candidate refresh (see refresh.h for the theory
 * of operation). The refresh thread owns the lists' table, the pending
 * table and the compute scratch; the updater only enqueues. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <ck_pr.h>
#include "core/log.h"
#include "core/epoch_hs.h"
#include "live/refresh.h"

#define OP_REQUEST 1u
#define OP_FORGET 2u
#define REFRESH_BATCH 64u          /* computations per loop turn, between ring drains */
#define REFRESH_NAP_MS 10ull       /* longest sleep while requests are pending */
#define REFRESH_IDLE_MS 100ull     /* longest sleep with nothing pending */
#define REFRESH_GC_MIN 1024u       /* removals before the table's tombstones are collected */
#define ORD_MIN_CAP 1024u
#define SWEEP_CHUNK 1024u          /* publish-order entries a sweep checks per loop turn */
#define SWEEP_IDLE UINT64_MAX
#define REBUILD_PER_TURN 8u        /* lists a rebuild pass recomputes per loop turn */
#define REBUILD_SCAN 4096u         /* publish-order entries it looks at per loop turn */

/* ------------------------------------------------- the lists' ck_hs */

/* A list starts with this header: the probe for lookups. */
struct refresh_probe {
	ck_epoch_entry_t retire;
	uint64_t user_key;
};

static unsigned long hs_hash(const void *obj, unsigned long seed)
{
	(void)seed;
	return (unsigned long)((const struct refresh_probe *)obj)->user_key;
}

static bool hs_compare(const void *a, const void *b)
{
	return ((const struct refresh_probe *)a)->user_key == ((const struct refresh_probe *)b)->user_key;
}

static void free_list_cb(ck_epoch_entry_t *e)
{
	free(e);   /* retire is the first member */
}

#define ST_ADD(r, f, v) ck_pr_store_64(&(r)->st.f, (r)->st.f + (v))
#define ST_SET(r, f, v) ck_pr_store_64(&(r)->st.f, (v))

/* ------------------------------------------------------------ readers */

const struct refresh_list *refresh_get(const struct refresh *r, uint64_t user_key)
{
	if (!r->hs_ready)
		return NULL;
	struct refresh_probe probe = { .user_key = user_key };
	return ck_hs_get((ck_hs_t *)&r->lists, user_key, &probe);
}

void refresh_stats_read(const struct refresh *r, struct refresh_stats *o)
{
	memset(o, 0, sizeof(*o));
	o->requested = ck_pr_load_64(&r->p_requested);
	o->dropped = ck_pr_load_64(&r->p_dropped);
	o->forget_flushes = ck_pr_load_64(&r->p_forget_flushes);
	o->wakeups = ck_pr_load_64(&r->p_wakeups);
	o->coalesced = ck_pr_load_64(&r->st.coalesced);
	o->overflow = ck_pr_load_64(&r->st.overflow);
	o->computed = ck_pr_load_64(&r->st.computed);
	o->folded = ck_pr_load_64(&r->st.folded);
	o->foldin_failed = ck_pr_load_64(&r->st.foldin_failed);
	o->gram_generation = ck_pr_load_64(&r->st.gram_generation);
	o->skipped = ck_pr_load_64(&r->st.skipped);
	o->forgotten = ck_pr_load_64(&r->st.forgotten);
	o->flushes = ck_pr_load_64(&r->st.flushes);
	o->evicted = ck_pr_load_64(&r->st.evicted);
	o->swept = ck_pr_load_64(&r->st.swept);
	o->rebuilt = ck_pr_load_64(&r->st.rebuilt);
	o->rebuild_passes = ck_pr_load_64(&r->st.rebuild_passes);
	o->rebuild_left = ck_pr_load_64(&r->st.rebuild_left);
	o->lists = ck_pr_load_64(&r->st.lists);
	o->pending = ck_pr_load_64(&r->st.pending);
	o->compute_ns_total = ck_pr_load_64(&r->st.compute_ns_total);
	o->compute_ns_max = ck_pr_load_64(&r->st.compute_ns_max);
	for (unsigned i = 0; i < REFRESH_HIST_BUCKETS; i++)
		o->compute_hist[i] = ck_pr_load_64(&r->st.compute_hist[i]);
}

/* ----------------------------------------------------------- producer */

/* Store-fence-load against the thread's `sleeping`, as in updater.h: one
 * of the two always sees the other. Only the producer that takes the
 * flag back writes the eventfd. */
static void wake(struct refresh *r, bool force)
{
	ck_pr_fence_memory();
	if (!force && !(ck_pr_load_int(&r->sleeping) && ck_pr_cas_int(&r->sleeping, 1, 0)))
		return;
	uint64_t one = 1;
	if (write(r->wake_fd, &one, sizeof(one)) == sizeof(one))
		ck_pr_store_64(&r->p_wakeups, r->p_wakeups + 1);
}

static bool enqueue(struct refresh *r, uint64_t key, uint32_t op, uint32_t keep_free)
{
	uint32_t room = ck_ring_capacity(&r->ring) - 1 - ck_ring_size(&r->ring);
	if (room <= keep_free)
		return false;
	struct refresh_msg m = { .user_key = key, .at_ns = now_ns(), .op = op };
	if (!ck_ring_enqueue_spsc_refresh_msg(&r->ring, r->ring_buf, &m))
		return false;
	wake(r, false);
	return true;
}

void refresh_request(struct refresh *r, uint64_t user_key)
{
	if (!r->ring_buf || !user_key)
		return;
	ck_pr_store_64(&r->p_requested, r->p_requested + 1);
	if (!enqueue(r, user_key, OP_REQUEST, r->reserve))
		ck_pr_store_64(&r->p_dropped, r->p_dropped + 1);
}

void refresh_forget(struct refresh *r, uint64_t user_key)
{
	if (!r->ring_buf || !user_key)
		return;
	if (enqueue(r, user_key, OP_FORGET, 0))
		return;
	/* No room even in the reserve: drop everything rather than keep a
	 * list of someone who asked to be forgotten. */
	ck_pr_store_64(&r->p_forget_flushes, r->p_forget_flushes + 1);
	ck_pr_fence_store();
	ck_pr_store_int(&r->flush, 1);
	wake(r, true);
}

/* ------------------------------------------------ lists (the writer) */

static void maybe_gc(struct refresh *r)
{
	if (r->removed_since_gc >= MAX((uint64_t)REFRESH_GC_MIN, r->n_lists)) {
		ck_hs_gc(&r->lists, 0, 0);
		r->removed_since_gc = 0;
	}
}

static bool list_remove(struct refresh *r, uint64_t key)
{
	struct refresh_probe probe = { .user_key = key };
	struct refresh_list *l = ck_hs_remove(&r->lists, key, &probe);
	if (!l)
		return false;
	ck_epoch_call(&r->rec, &l->retire, free_list_cb);
	r->n_lists--;
	r->removed_since_gc++;
	ST_SET(r, lists, r->n_lists);
	return true;
}

/* Publish order, oldest first: [ord_head, ord_tail) of ord[]. An entry is
 * current while the list of its key has its version. */
static int ord_push(struct refresh *r, uint64_t key, uint64_t version)
{
	if (r->ord_tail == r->ord_cap) {
		uint64_t len = r->ord_tail - r->ord_head;
		if (r->ord_head && len <= r->ord_cap / 2) {
			memmove(r->ord, r->ord + r->ord_head, len * sizeof(*r->ord));
		} else {
			uint64_t cap = MAX((uint64_t)ORD_MIN_CAP, r->ord_cap * 2);
			struct refresh_ord *p = realloc(r->ord, cap * sizeof(*p));
			if (!p)
				return -ENOMEM;
			if (r->ord_head)
				memmove(p, p + r->ord_head, len * sizeof(*p));
			r->ord = p;
			r->ord_cap = cap;
		}
		if (r->sweep_pos != SWEEP_IDLE)
			r->sweep_pos = r->sweep_pos > r->ord_head ? r->sweep_pos - r->ord_head : 0;
		r->rebuild_pos = r->rebuild_pos > r->ord_head ? r->rebuild_pos - r->ord_head : 0;
		r->ord_head = 0;
		r->ord_tail = len;
	}
	r->ord[r->ord_tail++] = (struct refresh_ord){ key, version };
	return 0;
}

static bool ord_current(struct refresh *r, const struct refresh_ord *o)
{
	const struct refresh_list *l = refresh_get(r, o->key);
	return l && l->version == o->version;
}

/* Replaced lists leave stale entries: squeeze them out once they are
 * more than the current ones. */
static void ord_compact(struct refresh *r)
{
	if (r->ord_tail - r->ord_head <= 2 * r->n_lists + ORD_MIN_CAP)
		return;
	uint64_t m = 0;
	bool rebuilding = r->rebuild_pos > r->ord_head;
	for (uint64_t i = r->ord_head; i < r->ord_tail; i++)
		if (ord_current(r, &r->ord[i]))
			r->ord[m++] = r->ord[i];
	r->ord_head = 0;
	r->ord_tail = m;
	if (r->sweep_pos != SWEEP_IDLE)
		r->sweep_pos = 0;   /* entries moved: start the sweep over */
	/* The pass starts over from the top: what it did is skipped quickly. */
	r->rebuild_pos = rebuilding ? m : 0;
}

static void evict(struct refresh *r)
{
	uint64_t n = 0;
	while (r->n_lists > r->max_lists && r->ord_head < r->ord_tail) {
		struct refresh_ord o = r->ord[r->ord_head++];
		if (ord_current(r, &o) && list_remove(r, o.key))
			n++;
	}
	if (n)
		ST_ADD(r, evicted, n);
}

static int list_publish(struct refresh *r, struct refresh_list *l)
{
	if (ord_push(r, l->user_key, l->version)) {
		free(l);
		return -ENOMEM;
	}
	void *prev = NULL;
	if (!ck_hs_set(&r->lists, l->user_key, l, &prev)) {
		r->ord_tail--;
		free(l);
		return -ENOMEM;
	}
	if (prev)
		ck_epoch_call(&r->rec, &((struct refresh_list *)prev)->retire, free_list_cb);
	else
		r->n_lists++;
	evict(r);
	ord_compact(r);
	ST_SET(r, lists, r->n_lists);
	return 0;
}

/* Everything goes (a forget could not be queued). Collect, then remove:
 * removing while iterating is not allowed. */
static void flush_all(struct refresh *r)
{
	uint64_t keys[256];
	for (;;) {
		uint32_t n = 0;
		ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
		void *obj;
		while (n < ARRAY_SIZE(keys) && ck_hs_next(&r->lists, &it, &obj))
			keys[n++] = ((struct refresh_list *)obj)->user_key;
		for (uint32_t i = 0; i < n; i++)
			list_remove(r, keys[i]);
		if (n < ARRAY_SIZE(keys))
			break;
	}
	r->ord_head = r->ord_tail = 0;
	r->sweep_pos = SWEEP_IDLE;
	r->rebuild_pos = 0;
	memset(r->pidx_key, 0, (r->pidx_mask + 1) * sizeof(*r->pidx_key));
	r->pend_head = r->pend_tail;
	ST_SET(r, pending, 0);
	ST_ADD(r, flushes, 1);
	maybe_gc(r);
}

/* --------------------------------------------------- pending requests */

/* Keys are XXH3 already; the mix only guards the low bits the mask uses. */
static inline uint64_t pidx_home(const struct refresh *r, uint64_t key)
{
	uint64_t h = (key ^ (key >> 32)) * 0x9e3779b97f4a7c15ull;
	return (h ^ (h >> 29)) & r->pidx_mask;
}

/* The key's slot, or the free slot where it would go (load <= 1/2). */
static uint64_t pidx_find(const struct refresh *r, uint64_t key)
{
	for (uint64_t p = pidx_home(r, key);; p = (p + 1) & r->pidx_mask)
		if (r->pidx_key[p] == key || !r->pidx_key[p])
			return p;
}

/* Linear probing delete: shift back the entries that can move into the
 * hole, so lookups never need tombstones. */
static void pidx_delete(struct refresh *r, uint64_t hole)
{
	uint64_t m = r->pidx_mask;
	for (uint64_t j = hole;;) {
		r->pidx_key[hole] = 0;
		for (;;) {
			j = (j + 1) & m;
			uint64_t k = r->pidx_key[j];
			if (!k)
				return;
			/* j's entry may fill the hole unless its home lies
			 * cyclically in (hole, j]. */
			uint64_t home = pidx_home(r, k);
			if (((j - home) & m) >= ((j - hole) & m)) {
				r->pidx_key[hole] = k;
				r->pidx_pos[hole] = r->pidx_pos[j];
				hole = j;
				break;
			}
		}
	}
}

static void pending_add(struct refresh *r, uint64_t key, uint64_t at)
{
	uint64_t p = pidx_find(r, key);
	if (r->pidx_key[p]) {
		ST_ADD(r, coalesced, 1);
		return;
	}
	if (r->pend_tail - r->pend_head > r->pend_mask) {
		ST_ADD(r, overflow, 1);
		return;
	}
	uint64_t pos = r->pend_tail++;
	/* Request times come in ring order from one monotonic clock and the
	 * interval is fixed: the FIFO is in due order. */
	r->pend[pos & r->pend_mask] = (struct refresh_pend){ key, at + r->min_interval_ns };
	r->pidx_key[p] = key;
	r->pidx_pos[p] = pos;
	ST_ADD(r, pending, 1);
}

static bool pending_cancel(struct refresh *r, uint64_t key)
{
	uint64_t p = pidx_find(r, key);
	if (!r->pidx_key[p])
		return false;
	r->pend[r->pidx_pos[p] & r->pend_mask].key = 0;
	pidx_delete(r, p);
	ST_SET(r, pending, r->st.pending - 1);
	return true;
}

/* The next request that is still wanted, or NULL. */
static const struct refresh_pend *pending_head(struct refresh *r)
{
	while (r->pend_head < r->pend_tail) {
		const struct refresh_pend *e = &r->pend[r->pend_head & r->pend_mask];
		if (e->key)
			return e;
		r->pend_head++;
	}
	return NULL;
}

/* ------------------------------------------------------------ compute */

/* The snapshot user index by key, as snap_item_find_key does for items. */
static int64_t user_find_key(const struct snap *s, uint64_t key)
{
	const struct snap_hindex *ix = &s->user_index;
	if (!ix->slots || !s->user_emb)
		return -1;
	for (uint64_t p = key & ix->mask;; p = (p + 1) & ix->mask) {
		const struct snap_hash_slot *sl = &ix->slots[p];
		if (sl->index == SNAP_EMPTY_SLOT)
			return -1;
		if (sl->hash == key)
			return sl->index < s->n_users ? (int64_t)sl->index : -1;
	}
}

struct keep_ctx {
	const struct snap *s;
	struct live *lv;
	const struct live_user *lu;
	bool live_items;
};

/* Never in a list: what the user bought, what live item state blocks. */
static bool keep_item(void *ctx, uint32_t item)
{
	const struct keep_ctx *k = ctx;
	if (!k->live_items && !(k->lu && k->lu->purchased))
		return true;
	struct str id = snap_item_id(k->s, item);
	uint64_t key = XXH3_64bits(id.p, id.len);
	if (k->live_items && live_item_blocked(live_item_get(k->lv, key)))
		return false;
	return !(k->lu && live_user_purchased(k->lu, key));
}

/* A small set of item indexes (the list so far), cleared by a stamp. */
static void seen_clear(struct refresh *r)
{
	if (++r->stamp == 0) {
		memset(r->seen_stamp, 0, (r->seen_mask + 1) * sizeof(*r->seen_stamp));
		r->stamp = 1;
	}
}

static bool seen_add(struct refresh *r, uint32_t item)
{
	for (uint32_t i = (item * 2654435761u) & r->seen_mask;; i = (i + 1) & r->seen_mask) {
		if (r->seen_stamp[i] != r->stamp) {
			r->seen_stamp[i] = r->stamp;
			r->seen_item[i] = item;
			return true;
		}
		if (r->seen_item[i] == item)
			return false;
	}
}

static double norm(const float *v, uint32_t dim)
{
	double a = 0;
	for (uint32_t d = 0; d < dim; d++)
		a += (double)v[d] * v[d];
	a = sqrt(a);
	return a > 0 && isfinite(a) ? a : 0;
}

/* The fold-in mode, and its parameters in p, as they are now. */
static uint32_t foldin_settings(const struct refresh *r, struct foldin_params *p)
{
	if (r->foldin != REFRESH_FOLDIN_CONFIG) {
		*p = r->foldin_params;
		return r->foldin;
	}
	/* The configured values (a settings reload may change them). */
	const struct recd_config *c = &r->srv->cfg;
	int64_t mode = (int64_t)ck_pr_load_64((const uint64_t *)&c->refresh_foldin);
	*p = (struct foldin_params){
		.lambda = (double)(int64_t)ck_pr_load_64((const uint64_t *)&c->foldin_lambda) / 1e6,
		.alpha = (double)(int64_t)ck_pr_load_64((const uint64_t *)&c->foldin_alpha) / 1e6,
		.prior = (double)(int64_t)ck_pr_load_64((const uint64_t *)&c->foldin_prior) / 1e6,
		.log_eps = 0,
	};
	return mode == 1 ? REFRESH_FOLDIN_COLD : mode == 2 ? REFRESH_FOLDIN_ALL : REFRESH_FOLDIN_OFF;
}

/* Room for a query row of s (allocates only when the stride grows, i.e.
 * on the first snapshot and after a swap to a wider one). */
static bool qbuf_fit(struct refresh *r, const struct snap *s)
{
	if (r->qcap >= s->stride)
		return true;
	free(r->qbuf);
	r->qcap = 0;
	r->qbuf = aligned_alloc(64, ((size_t)s->stride * sizeof(float) + 63) & ~(size_t)63);
	if (!r->qbuf)
		return false;
	r->qcap = s->stride;
	return true;
}

/* The shopper's fold-in into r->qbuf (padded); false: none (mode, no
 * touches the snapshot knows, Gram matrix not ready, failed solve). uv:
 * their snapshot embedding, NULL when there is none. */
static bool fold_in(struct refresh *r, const struct snap *s, const struct live_user *lu, const float *uv)
{
	struct foldin_params p;
	uint32_t mode = foldin_settings(r, &p);
	if (mode == REFRESH_FOLDIN_OFF || !lu || (mode == REFRESH_FOLDIN_COLD && uv) ||
	    !foldin_gram_matches(&r->gram, s))
		return false;
	uint32_t n = foldin_user_inputs(s, lu, r->f_items, r->f_strength, FOLDIN_MAX_INPUTS);
	if (!n)
		return false;
	if (r->fdim < s->dim) {
		free(r->fscratch);
		r->fdim = 0;
		if (!(r->fscratch = malloc(sizeof(double) * foldin_scratch_doubles(s->dim))))
			return false;
		r->fdim = s->dim;
	}
	if (!qbuf_fit(r, s))
		return false;
	/* Mode all: the snapshot embedding is the prior's target; without
	 * one (or in mode cold) a plain fold-in. */
	const float *x0 = mode == REFRESH_FOLDIN_ALL ? uv : NULL;
	int rc = foldin_solve(&r->gram, s, r->f_items, r->f_strength, n, x0, &p, r->fscratch, r->qbuf);
	if (rc || !norm(r->qbuf, s->dim)) {
		ST_ADD(r, foldin_failed, 1);
		return false;
	}
	memset(r->qbuf + s->dim, 0, (size_t)(s->stride - s->dim) * sizeof(float));
	return true;
}

/* The query row: stride floats, 64-byte aligned, zero padding (the
 * kernels read whole rows). NULL when there is nothing to search with.
 * Sets r->folded when it is a fold-in. */
static const float *make_query(struct refresh *r, const struct snap *s, const struct live_user *lu, uint64_t key)
{
	int64_t u = user_find_key(s, key);
	const float *uv = u >= 0 ? snap_user_vec(s, (uint32_t)u) : NULL;
	/* An all-zero embedding is none (nothing to normalise, nothing to
	 * pull towards). */
	double nu = uv ? norm(uv, s->dim) : 0;
	if (!nu)
		uv = NULL;
	r->folded = fold_in(r, s, lu, uv);
	if (r->folded)
		return r->qbuf;
	/* A session gone quiet (weight decayed below LIVE_SESSION_STALE)
	 * says nothing about what the shopper does now: leave it out. */
	const float *sv = lu && lu->dim == s->dim &&
				  live_session_weight(r->live, lu) >= LIVE_SESSION_STALE
			  ? lu->session : NULL;
	double ns = sv ? norm(sv, s->dim) : 0;
	if (!ns)
		sv = NULL;
	if (!uv && !sv)
		return NULL;
	if (!qbuf_fit(r, s))
		return NULL;
	double wu = uv ? (sv ? 0.5 : 1.0) / nu : 0, ws = sv ? (uv ? 0.5 : 1.0) / ns : 0;
	for (uint32_t d = 0; d < s->dim; d++)
		r->qbuf[d] = (float)((uv ? wu * uv[d] : 0.0) + (sv ? ws * sv[d] : 0.0));
	memset(r->qbuf + s->dim, 0, (size_t)(s->stride - s->dim) * sizeof(float));
	return r->qbuf;
}

/* Neighbour rows of the user's most recent items, round-robin by rank,
 * after the n search results in r->out; returns the new length. */
static uint32_t add_neighbors(struct refresh *r, const struct snap *s, const struct live_user *lu,
			      struct keep_ctx *kc, uint32_t n)
{
	if (!s->neighbors_k || !lu || !lu->n_recent)
		return n;
	uint32_t seeds[REFRESH_SEEDS], n_seeds = 0;
	seen_clear(r);
	for (uint32_t i = 0; i < n; i++)
		seen_add(r, r->out[i].item);
	for (uint32_t i = 0; i < lu->n_recent && n_seeds < REFRESH_SEEDS; i++) {
		int64_t idx = snap_item_find_key(s, lu->recent[i].item_key);
		bool dup = false;
		for (uint32_t j = 0; j < n_seeds && !dup; j++)
			dup = seeds[j] == (uint32_t)idx;
		if (idx >= 0 && !dup)
			seeds[n_seeds++] = (uint32_t)idx;
	}
	/* The seeds themselves are not their own neighbours. */
	for (uint32_t i = 0; i < n_seeds; i++)
		seen_add(r, seeds[i]);
	float base = n ? r->out[n - 1].score : 0.0f;
	float delta = fmaxf(fabsf(base), 1.0f) / 1024.0f;   /* >> one ulp of base: strictly decreasing */
	uint32_t added = 0;
	for (uint32_t j = 0; j < s->neighbors_k && added < REFRESH_NEIGHBORS; j++) {
		bool any = false;
		for (uint32_t i = 0; i < n_seeds && added < REFRESH_NEIGHBORS; i++) {
			uint32_t item = snap_item_neighbors(s, seeds[i])[j].item;
			if (item == SNAP_EMPTY_SLOT)
				continue;   /* this row ended; the others may go on */
			any = true;
			/* Once seen, an item stays excluded whatever the other tests say. */
			if (item >= s->n_items || !snap_item_servable(s, item) || !seen_add(r, item) ||
			    !keep_item(kc, item))
				continue;
			added++;
			r->out[n++] = (struct rec_item){ item, base - (float)added * delta };
		}
		if (!any)
			break;
	}
	return n;
}

/* The user's list on the current snapshot, or NULL (nothing to compute,
 * or out of memory). Inside the caller's epoch section. */
static struct refresh_list *build(struct refresh *r, uint64_t key)
{
	const struct snap *s = srv_snapshot(r->srv);
	if (!s)
		return NULL;
	/* No live record: forgotten or evicted since an event's request, or a
	 * worker's hint for a shopper the snapshot alone knows; either way the
	 * list comes from the snapshot embedding only (NULL without one). */
	const struct live_user *lu = live_user_get(r->live, key);
	const float *q = make_query(r, s, lu, key);
	if (!q)
		return NULL;
	struct keep_ctx kc = { s, r->live, lu, ck_pr_load_64(&r->live->stats.items) > 0 };
	/* The configured nprobe as it is now (a settings reload may change it). */
	int64_t np = ck_pr_load_64((uint64_t *)&r->srv->cfg.ann_nprobe);
	uint32_t nprobe = r->nprobe ? r->nprobe : np > 0 ? (uint32_t)MIN(np, (int64_t)UINT32_MAX) : 0;
	uint32_t n = rec_topk_keep(s, q, r->k, -1, nprobe, r->scratch, keep_item, &kc, r->out);
	uint32_t n_search = n;
	n = add_neighbors(r, s, lu, &kc, n);
	struct refresh_list *l = malloc(sizeof(*l) + (size_t)n * (sizeof(l->items[0]) + sizeof(uint64_t)));
	if (!l)
		return NULL;
	memset(l, 0, sizeof(*l));
	l->user_key = key;
	l->snap_generation = s->generation;
	l->interactions = lu ? lu->n_interactions : 0;
	l->n_search = n_search;
	l->first_seen_ms = lu ? lu->first_seen_ms : 0;
	l->computed_ms = now_wall_ms();
	l->version = ++r->next_version;
	l->n = n;
	memcpy(l->items, r->out, (size_t)n * sizeof(l->items[0]));
	uint64_t *keys = (uint64_t *)(void *)(l->items + n);
	for (uint32_t i = 0; i < n; i++) {
		struct str id = snap_item_id(s, l->items[i].item);
		keys[i] = XXH3_64bits(id.p, id.len);
	}
	return l;
}

static void compute(struct refresh *r, uint64_t key)
{
	uint64_t t0 = now_ns();
	ck_epoch_begin(&r->rec, NULL);
	struct refresh_list *l = build(r, key);
	ck_epoch_end(&r->rec, NULL);
	if (!l || list_publish(r, l)) {
		/* Whatever it held is out of date: the request path computes. */
		list_remove(r, key);
		maybe_gc(r);
		ST_ADD(r, skipped, 1);
		return;
	}
	uint64_t dt = now_ns() - t0, us = dt / 1000;
	unsigned b = us ? 64u - (unsigned)__builtin_clzll(us) : 0;
	if (b >= REFRESH_HIST_BUCKETS)
		b = REFRESH_HIST_BUCKETS - 1;
	ST_ADD(r, compute_hist[b], 1);
	ST_ADD(r, compute_ns_total, dt);
	if (dt > r->st.compute_ns_max)
		ST_SET(r, compute_ns_max, dt);
	if (r->folded)
		ST_ADD(r, folded, 1);   /* first: folded never exceeds computed */
	ST_ADD(r, computed, 1);
}

/* ------------------------------------------------------------- thread */

/* One step of the sweep: lists whose user live state dropped (evicted)
 * can never be fresh again. Returns true while a sweep is running. */
static bool sweep_step(struct refresh *r, uint64_t now)
{
	if (r->sweep_pos == SWEEP_IDLE) {
		if (now < r->next_sweep_ns)
			return false;
		r->sweep_pos = r->ord_head;
	}
	if (r->sweep_pos < r->ord_head)
		r->sweep_pos = r->ord_head;
	uint64_t end = MIN(r->ord_tail, r->sweep_pos + SWEEP_CHUNK), victims[SWEEP_CHUNK];
	uint32_t nv = 0;
	ck_epoch_begin(&r->rec, NULL);
	for (uint64_t i = r->sweep_pos; i < end; i++) {
		if (!ord_current(r, &r->ord[i]) || live_user_get(r->live, r->ord[i].key))
			continue;
		/* A list made from the snapshot embedding alone never had a live
		 * record: it stays fresh without one (max_lists bounds those). */
		const struct refresh_list *l = refresh_get(r, r->ord[i].key);
		if (l && l->first_seen_ms)
			victims[nv++] = r->ord[i].key;
	}
	ck_epoch_end(&r->rec, NULL);
	r->sweep_pos = end;
	for (uint32_t i = 0; i < nv; i++)
		list_remove(r, victims[i]);
	if (nv) {
		ST_ADD(r, swept, nv);
		maybe_gc(r);
	}
	if (end < r->ord_tail)
		return true;
	r->sweep_pos = SWEEP_IDLE;
	r->next_sweep_ns = now + r->sweep_ns;
	return false;
}

/* Is the Gram matrix of `s` still being summed (fold-in on, not complete,
 * not given up)? */
static bool gram_pending(struct refresh *r, const struct snap *s)
{
	struct foldin_params p;
	return s && foldin_settings(r, &p) != REFRESH_FOLDIN_OFF && !foldin_gram_matches(&r->gram, s) &&
	       r->gram_failed != s->generation;
}

/* One step of the Gram matrix of the current snapshot (fold-in on): up to
 * gram_rows rows, after the work shoppers asked for. Starts over
 * when the snapshot changed. Returns true while rows remain. */
static bool gram_step(struct refresh *r)
{
	bool more = false;
	ck_epoch_begin(&r->rec, NULL);
	const struct snap *s = srv_snapshot(r->srv);
	if (gram_pending(r, s)) {
		struct foldin_gram *g = &r->gram;
		int rc = 0;
		if (g->snap != s || g->generation != s->generation || g->dim != s->dim) {
			/* Allocates only when the dimension changes. */
			if ((rc = foldin_gram_begin(g, s))) {
				r->gram_failed = s->generation;
				log_warn("refresh_foldin_off", "generation=%llu err=\"%s\" detail=\"no Gram matrix: "
					 "lists use the blend on this snapshot\"", (unsigned long long)s->generation,
					 strerror(-rc));
			}
		}
		if (!rc && (rc = foldin_gram_step(g, s, r->gram_rows)) == 1)
			ST_SET(r, gram_generation, s->generation);
		more = rc == 0;
	}
	ck_epoch_end(&r->rec, NULL);
	return more;
}

/* One step of the rebuild pass after a swap (see refresh.h): recompute
 * on the current snapshot the lists made on another, walking the publish
 * order down from the newest. Workers' hints and the updater's requests
 * were served first this loop turn. Returns true while the pass runs. */
static bool rebuild_step(struct refresh *r)
{
	ck_epoch_begin(&r->rec, NULL);
	const struct snap *s = srv_snapshot(r->srv);
	uint64_t gen = s ? s->generation : 0;
	/* With fold-in on, the pass waits for the new Gram matrix: lists
	 * recomputed before it is ready would hold the blend until the
	 * shopper's next event. Readers translate the carried lists meanwhile. */
	bool wait = gen != r->rebuild_gen && gram_pending(r, s);
	ck_epoch_end(&r->rec, NULL);
	if (wait) {
		/* Every list is yet to be looked at by the coming pass. */
		ST_SET(r, rebuild_left, r->ord_tail - r->ord_head);
		return false;
	}
	if (gen != r->rebuild_gen) {
		r->rebuild_gen = gen;
		r->rebuild_pos = r->ord_tail;
		ST_ADD(r, rebuild_passes, 1);
	}
	if (r->rebuild_pos <= r->ord_head) {
		if (r->st.rebuild_left)
			ST_SET(r, rebuild_left, 0);
		return false;
	}
	uint64_t keys[REBUILD_PER_TURN];
	uint32_t n = 0, scanned = 0;
	ck_epoch_begin(&r->rec, NULL);
	while (r->rebuild_pos > r->ord_head && n < REBUILD_PER_TURN && scanned++ < REBUILD_SCAN) {
		const struct refresh_ord *o = &r->ord[--r->rebuild_pos];
		const struct refresh_list *l = refresh_get(r, o->key);
		if (l && l->version == o->version && l->snap_generation != gen)
			keys[n++] = o->key;
	}
	ck_epoch_end(&r->rec, NULL);
	ST_SET(r, rebuild_left, r->rebuild_pos > r->ord_head ? r->rebuild_pos - r->ord_head : 0);
	for (uint32_t i = 0; i < n; i++)
		compute(r, keys[i]);
	if (n)
		ST_ADD(r, rebuilt, n);
	return r->rebuild_pos > r->ord_head;
}

static void forget_one(struct refresh *r, uint64_t key)
{
	ST_ADD(r, forgotten, 1);   /* first: whoever sees the list gone sees the count */
	pending_cancel(r, key);
	list_remove(r, key);
	maybe_gc(r);
}

void refresh_hint(struct refresh *r, uint32_t worker, uint64_t user_key)
{
	if (worker >= r->n_hints)
		return;
	struct refresh_hints *h = &r->hints[worker];
	struct refresh_msg m = { .user_key = user_key, .at_ns = now_ns(), .op = OP_REQUEST };
	if (ck_ring_enqueue_spsc_refresh_msg(&h->ring, h->buf, &m))
		ck_pr_store_64(&h->sent, h->sent + 1);
	else
		ck_pr_store_64(&h->dropped, h->dropped + 1);
}

/* Take the workers' hints; a user already listed fresh is not recomputed
 * (several workers may miss the same user before the list is out). */
static void drain_hints(struct refresh *r)
{
	struct refresh_msg m;
	for (uint32_t w = 0; w < r->n_hints; w++) {
		struct refresh_hints *h = &r->hints[w];
		for (uint32_t n = 0; n < REFRESH_HINT_RING && ck_ring_dequeue_spsc_refresh_msg(&h->ring, h->buf, &m); n++)
			pending_add(r, m.user_key, m.at_ns);
	}
}

static bool hints_waiting(struct refresh *r)
{
	for (uint32_t w = 0; w < r->n_hints; w++)
		if (ck_ring_size(&r->hints[w].ring))
			return true;
	return false;
}

/* Take what the updater queued, in order. */
static void drain(struct refresh *r)
{
	struct refresh_msg m;
	uint32_t cap = ck_ring_capacity(&r->ring);
	for (uint32_t n = 0; n < cap && ck_ring_dequeue_spsc_refresh_msg(&r->ring, r->ring_buf, &m); n++) {
		if (m.op == OP_FORGET)
			forget_one(r, m.user_key);
		else
			pending_add(r, m.user_key, m.at_ns);
	}
}

static uint32_t run_due(struct refresh *r, uint64_t now)
{
	uint32_t done = 0;
	const struct refresh_pend *e;
	while (done < REFRESH_BATCH && (e = pending_head(r)) && e->due_ns <= now) {
		uint64_t key = e->key;
		r->pend_head++;
		pidx_delete(r, pidx_find(r, key));
		compute(r, key);
		/* After the outcome's counters: pending 0 means all is counted. */
		ST_SET(r, pending, r->st.pending - 1);
		done++;
	}
	return done;
}

/* Precomputing is a convenience the request path can do without: on a
 * core shared with a worker the worker goes first. */
static void yield_to_workers(void)
{
	int r = thread_background(10);
	if (r)
		log_debug("refresh_priority_kept", "err=\"%s\"", strerror(-r));
}

static void *refresh_main(void *arg)
{
	struct refresh *r = arg;
	epoch_hs_writer(&r->rec);
	yield_to_workers();
	while (!ck_pr_load_int(&r->stop)) {
		if (ck_pr_load_int(&r->flush) && ck_pr_fas_int(&r->flush, 0)) {
			/* Everything queued before the failed forget first. */
			drain(r);
			flush_all(r);
		}
		drain(r);
		drain_hints(r);
		uint64_t now = now_ns();
		uint32_t done = run_due(r, now);
		bool sweeping = sweep_step(r, now);
		/* The Gram matrix of a new snapshot, a chunk a turn, and the lists
		 * readers translate after a swap come after what shoppers asked
		 * for just now. */
		bool summing = gram_step(r);
		bool rebuilding = done < REFRESH_BATCH && rebuild_step(r);
		ck_epoch_poll(&r->rec);
		if (done == REFRESH_BATCH || sweeping || summing || rebuilding || ck_ring_size(&r->ring) ||
		    hints_waiting(r))
			continue;
		/* Hints come without a wake-up (workers make no system call for
		 * them): the idle sleep bounds how long one waits. */
		/* Pending requests: nap until the first is due, without asking to
		 * be woken (later requests are due later still); the nap is short
		 * enough for the ring not to fill. Nothing pending: sleep until a
		 * request wakes us. */
		const struct refresh_pend *e = pending_head(r);
		uint64_t sleep_ns;
		bool ask = !e;
		if (e) {
			now = now_ns();
			if (e->due_ns <= now)
				continue;
			sleep_ns = MIN(e->due_ns - now, REFRESH_NAP_MS * 1000000ull);
		} else {
			sleep_ns = REFRESH_IDLE_MS * 1000000ull;
		}
		if (ask) {
			ck_pr_store_int(&r->sleeping, 1);
			ck_pr_fence_memory();
			if (ck_ring_size(&r->ring) || ck_pr_load_int(&r->flush) || ck_pr_load_int(&r->stop)) {
				ck_pr_store_int(&r->sleeping, 0);
				continue;
			}
		}
		struct pollfd pfd = { r->wake_fd, POLLIN, 0 };
		struct timespec ts = { (time_t)(sleep_ns / 1000000000ull), (long)(sleep_ns % 1000000000ull) };
		if (ppoll(&pfd, 1, &ts, NULL) > 0) {
			uint64_t v;
			if (read(r->wake_fd, &v, sizeof(v)) < 0) {
				/* EAGAIN: another wake-up took it */
			}
		}
		if (ask)
			ck_pr_store_int(&r->sleeping, 0);
	}
	return NULL;
}

/* -------------------------------------------------------- start, stop */

void refresh_opts_default(struct refresh_opts *o)
{
	*o = (struct refresh_opts){
		.k = REFRESH_K,
		.min_interval_ms = REFRESH_MIN_INTERVAL_MS,
		.ring_size = REFRESH_RING_SIZE,
		.pending_max = REFRESH_PENDING_MAX,
		.max_lists = 0,
		.nprobe = 0,
		.sweep_ms = REFRESH_SWEEP_MS,
		.gram_rows = 0,
		.foldin = REFRESH_FOLDIN_CONFIG,
		.foldin_params = foldin_default_params,
	};
	o->foldin_params.prior = REFRESH_FOLDIN_PRIOR;
}

static bool pow2_at_least(uint64_t v, uint64_t min)
{
	return v >= min && !(v & (v - 1));
}

static void release(struct refresh *r)
{
	if (r->hs_ready) {
		ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
		void *obj;
		while (ck_hs_next(&r->lists, &it, &obj))
			free(obj);   /* no reader remains */
		ck_hs_destroy(&r->lists);
		r->hs_ready = false;
	}
	r->n_lists = 0;
	free(r->ring_buf);
	r->ring_buf = NULL;
	for (uint32_t w = 0; r->hints && w < r->n_hints; w++)
		free(r->hints[w].buf);
	free(r->hints);
	r->hints = NULL;
	r->n_hints = 0;
	free(r->pend);
	r->pend = NULL;
	free(r->pidx_key);
	r->pidx_key = NULL;
	free(r->pidx_pos);
	r->pidx_pos = NULL;
	free(r->ord);
	r->ord = NULL;
	r->ord_cap = r->ord_head = r->ord_tail = 0;
	rec_scratch_free(r->scratch);
	r->scratch = NULL;
	free(r->qbuf);
	r->qbuf = NULL;
	r->qcap = 0;
	free(r->out);
	r->out = NULL;
	free(r->seen_item);
	r->seen_item = NULL;
	free(r->seen_stamp);
	r->seen_stamp = NULL;
	foldin_gram_free(&r->gram);
	free(r->fscratch);
	r->fscratch = NULL;
	r->fdim = 0;
	if (r->fd_ready) {
		close(r->wake_fd);
		r->fd_ready = false;
	}
	r->wake_fd = -1;
	/* What the thread retired (replaced lists, old tables) is unreachable
	 * once the readers are gone. */
	if (r->rec_registered) {
		ck_epoch_barrier(&r->rec);
		ck_epoch_unregister(&r->rec);
		r->rec_registered = false;
	}
}

int refresh_start(struct refresh *r, struct recd_server *srv, struct live *lv, const struct refresh_opts *o)
{
	struct refresh_opts d;
	if (!o) {
		refresh_opts_default(&d);   /* nprobe 0: the configured ann_nprobe, read per list */
		o = &d;
	}
	if (!o->k || o->k > REFRESH_K_MAX || !pow2_at_least(o->ring_size, 16) ||
	    !pow2_at_least(o->pending_max, 16) || o->ring_size > (1u << 30) || o->pending_max > (1u << 30) ||
	    o->foldin > REFRESH_FOLDIN_ALL)
		return -EINVAL;
	const struct foldin_params *fp = &o->foldin_params;
	if (o->foldin != REFRESH_FOLDIN_CONFIG &&
	    !(fp->lambda >= 0 && fp->alpha >= 0 && fp->prior >= 0 && fp->log_eps >= 0 && isfinite(fp->lambda) &&
	      isfinite(fp->alpha) && isfinite(fp->prior) && isfinite(fp->log_eps)))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->wake_fd = -1;
	r->srv = srv;
	r->live = lv;
	r->k = o->k;
	r->nprobe = o->nprobe;
	r->foldin = o->foldin;
	r->gram_rows = o->gram_rows ? o->gram_rows : REFRESH_GRAM_ROWS;
	r->foldin_params = o->foldin_params;
	r->min_interval_ns = (uint64_t)o->min_interval_ms * 1000000ull;
	r->max_lists = o->max_lists ? o->max_lists : lv->max_users ? lv->max_users : (1ull << 20);
	r->sweep_ns = (uint64_t)(o->sweep_ms ? o->sweep_ms : REFRESH_SWEEP_MS) * 1000000ull;
	r->sweep_pos = SWEEP_IDLE;
	r->next_sweep_ns = now_ns() + r->sweep_ns;
	ck_epoch_register(&srv->epoch, &r->rec, NULL);
	r->rec_registered = true;
	int err = -ENOMEM;
	unsigned mode = CK_HS_MODE_OBJECT | CK_HS_MODE_SPMC | CK_HS_MODE_DELETE;
	if (!ck_hs_init(&r->lists, mode, hs_hash, hs_compare, &epoch_hs_allocator, 1024, 0x5eed))
		goto fail;
	r->hs_ready = true;
	r->ring_buf = calloc(o->ring_size, sizeof(*r->ring_buf));
	if (!r->ring_buf)
		goto fail;
	ck_ring_init(&r->ring, o->ring_size);
	r->reserve = o->ring_size / 16;
	r->n_hints = srv->n_workers;
	r->hints = r->n_hints ? aligned_alloc(CACHELINE, sizeof(*r->hints) * r->n_hints) : NULL;
	if (r->n_hints && !r->hints)
		goto fail;
	if (r->hints)
		memset(r->hints, 0, sizeof(*r->hints) * r->n_hints);
	for (uint32_t w = 0; w < r->n_hints; w++) {
		r->hints[w].buf = calloc(REFRESH_HINT_RING, sizeof(struct refresh_msg));
		if (!r->hints[w].buf)
			goto fail;
		ck_ring_init(&r->hints[w].ring, REFRESH_HINT_RING);
	}
	r->pend = calloc(o->pending_max, sizeof(*r->pend));
	r->pend_mask = o->pending_max - 1;
	r->pidx_mask = 2ull * o->pending_max - 1;
	r->pidx_key = calloc(r->pidx_mask + 1, sizeof(*r->pidx_key));
	r->pidx_pos = calloc(r->pidx_mask + 1, sizeof(*r->pidx_pos));
	r->scratch = rec_scratch_new(r->k);
	r->out = calloc((size_t)r->k + REFRESH_NEIGHBORS, sizeof(*r->out));
	uint32_t seen = 64;
	while (seen < 2 * (r->k + REFRESH_NEIGHBORS + REFRESH_SEEDS))
		seen *= 2;
	r->seen_mask = seen - 1;
	r->seen_item = calloc(seen, sizeof(*r->seen_item));
	r->seen_stamp = calloc(seen, sizeof(*r->seen_stamp));
	/* Fold-in scratch for the live state's dimension (the snapshots'):
	 * nothing to allocate per computation, nor to begin a Gram matrix. */
	if (lv->dim) {
		r->fscratch = malloc(sizeof(double) * foldin_scratch_doubles(lv->dim));
		r->fdim = r->fscratch ? lv->dim : 0;
		if (!r->fscratch || foldin_gram_init(&r->gram, lv->dim))
			goto fail;
	}
	if (!r->pend || !r->pidx_key || !r->pidx_pos || !r->scratch || !r->out || !r->seen_item || !r->seen_stamp)
		goto fail;
	r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->wake_fd < 0) {
		err = -errno;
		goto fail;
	}
	r->fd_ready = true;
	int e = pthread_create(&r->thread, NULL, refresh_main, r);
	if (e) {
		err = -e;
		goto fail;
	}
	pthread_setname_np(r->thread, "recd-refresh");
	r->started = true;
	return 0;
fail:
	release(r);
	return err;
}

void refresh_stop(struct refresh *r)
{
	if (r->started) {
		ck_pr_store_int(&r->stop, 1);
		wake(r, true);
		pthread_join(r->thread, NULL);
		r->started = false;
		struct refresh_stats st;
		refresh_stats_read(r, &st);
		log_info("refresh_stopped", "requested=%llu computed=%llu coalesced=%llu dropped=%llu lists=%llu "
			 "compute_ns_max=%llu", (unsigned long long)st.requested, (unsigned long long)st.computed,
			 (unsigned long long)st.coalesced, (unsigned long long)st.dropped,
			 (unsigned long long)st.lists, (unsigned long long)st.compute_ns_max);
	}
	release(r);
}
