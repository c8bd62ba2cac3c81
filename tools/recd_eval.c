/* recd_eval.c: `recd-eval`, offline evaluation on a temporal split.
 *
 * Train interactions (before the split) and a snapshot built from them;
 * test interactions (after). For every test user with train history and
 * an embedding in the snapshot, each method recommends k items and is
 * scored against the items the user bought in the test period (the
 * items they bought in train excluded: the engine never shows them):
 *   popular       the train popularity (sum of type weights), best first
 *   covisit       items co-bought with the user's train items (same user
 *                 within --covisit-window-ms, counted once per user per
 *                 pair), summed over the user's train items; ties and a
 *                 short list go to popularity
 *   mf            exact inner product of the user's and the items'
 *                 embeddings in the snapshot
 *   engine        the serving path itself: the train events replayed into
 *                 a live state (engine/live, as the daemon does at start
 *                 from its event log), then pipe_recommend with the Lua
 *                 policies (lua_host): route, gather, freshness filters,
 *                 rules, rerank; no trending table, no precomputed lists
 *                 (the on-demand searches the daemon runs on a list miss)
 *   engine-given  the same pipe + Lua steps from a request view built
 *                 here, as recd-policy does (pipe_resolve_given): user
 *                 index, train purchases (newest first), recent = the
 *                 last train items
 * and what ALS fold-in (engine/live/foldin) adds to the live query the
 * refresh thread searches with. Each user's last --replay train events
 * are replayed into an empty live state, and the query is built as right
 * after the last of them (the session has not aged), then searched
 * exactly like mf:
 *   session-blend 0.5 normalised snapshot embedding + 0.5 normalised
 *                 session vector (refresh.c make_query, today's engine)
 *   foldin        fold-in of the same touches, the snapshot embedding as
 *                 the prior (--foldin-prior)
 *   cold-session  the user's snapshot embedding withheld (a new shopper):
 *                 the session vector alone
 *   cold-foldin   withheld too: plain fold-in of the same touches
 * A user with nothing to search with (every replayed item unknown to the
 * snapshot) gets the popularity list; those are counted. Each live row
 * also reports the mean cosine of its queries to the users' snapshot
 * embeddings: how far the live events moved them.
 * Metrics: eval_metrics.h. Coverage = distinct items recommended over
 * all users / catalogue size; diversity = mean distinct categories per
 * list.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ck_epoch.h>
#include "core/common.h"
#include "recd_build.h"
#include "events/event.h"
#include "live/foldin.h"
#include "live/live.h"
#include "lua/lua_host.h"
#include "pipe/pipe.h"
#include "snap/snap.h"
#include "eval_metrics.h"
#include "quality_util.h"

static const char usage_text[] =
	"usage: recd-eval --snapshot FILE --train FILE --test FILE [options]\n"
	"Evaluate recommendations on a temporal split (docs/quality.md).\n"
	"  --snapshot FILE        built from the train data (recd-snapshot build)\n"
	"  --train FILE           train interactions, csv user_id,item_id,type[,ts]\n"
	"  --test FILE            test interactions, same format\n"
	"  --k K                  list length (default 10)\n"
	"  --methods LIST         comma-separated, of popular,covisit,mf,engine,\n"
	"                         engine-given, session-blend,foldin,cold-session,\n"
	"                         cold-foldin (default: all nine)\n"
	"  --test-type T          purchase (default): relevant = test purchases,\n"
	"                         excluded = train purchases; any: every type\n"
	"  --covisit-window-ms MS co-visitation window (default 3600000)\n"
	"  --plugins DIR          policy set for the engine (default ./plugins, else\n"
	"                         the installed default set)\n"
	"  --lua DIR              policy API (default ./lua, else the installed copy)\n"
	"  --lua-budget-us US     per hook call (default 100000: offline, a shared\n"
	"                         machine must not make hooks fall back)\n"
	"  --nprobe N             ANN lists probed (default 96, recd's ann_nprobe)\n"
	"  --replay N             live rows: each user's last N train events replayed\n"
	"                         (default 10, at most 32: live state's recent items)\n"
	"  --foldin-prior P       fold-in's pull towards the snapshot embedding\n"
	"                         (default 10: on the validation split, fold-in's query\n"
	"                         is then as far from it as the blend's; docs/quality.md)\n"
	"  --foldin-lambda L      the model's lambda, alpha and --log-confidence\n"
	"  --foldin-alpha A       (default: read from a model version als-d<D>-a<A>-l<L>\n"
	"  --foldin-log-confidence E  as tools/quality-retail.sh writes it, else\n"
	"                         recd-train's defaults, lambda 0.1, alpha 10)\n"
	"  --json FILE            write the results as JSON\n"
	"  --markdown FILE        write the table there too (it always goes to stdout)\n"
	"  --label TEXT           dataset label for the outputs\n";

enum method {
	M_POPULAR, M_COVISIT, M_MF, M_ENGINE, M_ENGINE_GIVEN,
	M_BLEND, M_FOLDIN, M_COLD_SESSION, M_COLD_FOLDIN, M__COUNT
};
static const char *const method_names[] = { "popular", "covisit", "mf", "engine", "engine-given",
					    "session-blend", "foldin", "cold-session", "cold-foldin" };
static const char *const method_titles[] = {
	"popularity (train counts)", "co-visitation neighbours", "MF (exact dot product)",
	"full engine (live state + Lua policies)", "full engine (request view, as recd-policy)",
	"live: snapshot + session vector blend (as refresh.c)", "live: fold-in, snapshot embedding as prior",
	"cold start: session vector alone", "cold start: fold-in",
};

static bool is_live_method(int m)
{
	return m >= M_BLEND && m <= M_COLD_FOLDIN;
}

/* The row a live method is compared with, pair by pair (-1: none). */
static int live_baseline(int m)
{
	return m == M_FOLDIN ? M_BLEND : m == M_COLD_FOLDIN ? M_COLD_SESSION : -1;
}

/* ---- interactions ---- */

struct ev {
	uint64_t ukey;             /* event_key of the user id */
	int64_t ts;
	uint64_t seq;
	uint32_t user;             /* snapshot user or UINT32_MAX */
	uint32_t item;             /* snapshot item or UINT32_MAX */
	uint32_t ulen, ilen;
	const char *uid, *iid;
	uint8_t type;
	float w;
};

struct evs {
	const struct snap *s;
	struct ev *v;
	uint64_t n, cap;
	uint64_t unknown_items;
};

static void on_row(void *ctx, const struct qu_row *r)
{
	struct evs *E = ctx;
	if (E->n == E->cap) {
		E->cap = E->cap ? E->cap * 2 : 1 << 16;
		E->v = qu_realloc(E->v, sizeof(*E->v) * E->cap);
	}
	int64_t u = snap_user_find(E->s, r->user, r->user_len);
	int64_t i = snap_item_find(E->s, r->item, r->item_len);
	E->unknown_items += i < 0;
	E->v[E->n] = (struct ev){
		.ukey = event_key(r->user, r->user_len), .ts = r->ts, .seq = E->n,
		.user = u >= 0 ? (uint32_t)u : UINT32_MAX, .item = i >= 0 ? (uint32_t)i : UINT32_MAX,
		.ulen = (uint32_t)r->user_len, .ilen = (uint32_t)r->item_len, .uid = r->user, .iid = r->item,
		.type = r->type, .w = r->weight,
	};
	E->n++;
}

static int cmp_ev_time(const void *a, const void *b)
{
	const struct ev *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static int cmp_ev_user_time(const void *a, const void *b)
{
	const struct ev *x = a, *y = b;
	if (x->ukey != y->ukey)
		return x->ukey < y->ukey ? -1 : 1;
	return cmp_ev_time(a, b);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Sort and deduplicate; returns the new length. */
static uint32_t uniq_u32(uint32_t *v, uint32_t n)
{
	qsort(v, n, sizeof(*v), cmp_u32);
	uint32_t m = 0;
	for (uint32_t i = 0; i < n; i++)
		if (!m || v[m - 1] != v[i])
			v[m++] = v[i];
	return m;
}

/* ---- per-user state ---- */

struct user {
	uint32_t *excl;            /* sorted: train items of the test type */
	uint32_t n_excl;
	uint32_t *hist;            /* sorted: every distinct train item */
	uint32_t n_hist;
	uint32_t *purchased;       /* newest first, distinct */
	uint32_t n_purchased;
	uint32_t recent[LIVE_RECENT];   /* newest first, distinct */
	uint32_t n_recent;
	uint32_t n_train;          /* train events */
	uint64_t tr_from;          /* the first of them in the (user, time) order */
	uint32_t *rel;             /* sorted: relevant test items the snapshot knows */
	uint32_t n_rel, n_rel_total;
	const char *uid;
	uint32_t ulen;
};

static bool type_counts(uint8_t type, bool any)
{
	return any || type == QU_PURCHASE;
}

/* ---- co-visitation counts: a hash map of item pairs ---- */

struct pairmap {
	uint64_t *key;             /* (a << 32 | b) + 1, a < b; 0 = empty */
	uint32_t *cnt;
	uint64_t mask, n;
};

static void pm_init(struct pairmap *m, uint64_t cap)
{
	uint64_t c = 1024;
	while (c < cap)
		c <<= 1;
	m->key = qu_calloc(c, sizeof(uint64_t));
	m->cnt = qu_calloc(c, sizeof(uint32_t));
	m->mask = c - 1;
	m->n = 0;
}

static inline uint64_t pm_hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}

static void pm_add(struct pairmap *m, uint64_t key, uint32_t c);

static void pm_grow(struct pairmap *m)
{
	struct pairmap o = *m;
	pm_init(m, (o.mask + 1) * 2);
	for (uint64_t s = 0; s <= o.mask; s++)
		if (o.key[s])
			pm_add(m, o.key[s], o.cnt[s]);
	free(o.key);
	free(o.cnt);
}

static void pm_add(struct pairmap *m, uint64_t key, uint32_t c)
{
	if (2 * (m->n + 1) > m->mask + 1)
		pm_grow(m);
	for (uint64_t s = pm_hash(key) & m->mask;; s = (s + 1) & m->mask) {
		if (m->key[s] == key) {
			m->cnt[s] += c;
			return;
		}
		if (!m->key[s]) {
			m->key[s] = key;
			m->cnt[s] = c;
			m->n++;
			return;
		}
	}
}

struct covisit {
	uint64_t *off;             /* items + 1 */
	uint32_t *nb;
	float *cnt;
};

#define COVISIT_LOOKBACK 200u

/* Rows of co-bought items from the train events sorted by (user, time). */
static void covisit_build(const struct ev *v, uint64_t n, uint32_t n_items, int64_t window, bool any,
			  struct covisit *cv, uint64_t *pairs_out)
{
	struct pairmap pm;
	pm_init(&pm, 1 << 16);
	uint64_t cap = 1024, np;
	uint64_t *pairs = qu_malloc(sizeof(uint64_t) * cap);
	for (uint64_t b = 0; b < n;) {
		uint64_t e = b;
		while (e < n && v[e].ukey == v[b].ukey)
			e++;
		np = 0;
		for (uint64_t x = b; x < e; x++) {
			if (v[x].item == UINT32_MAX || !type_counts(v[x].type, any))
				continue;
			uint32_t back = 0;
			for (uint64_t y = x; y-- > b && back < COVISIT_LOOKBACK;) {
				if (v[x].ts - v[y].ts > window)
					break;
				if (v[y].item == UINT32_MAX || !type_counts(v[y].type, any))
					continue;
				back++;
				if (v[y].item == v[x].item)
					continue;
				uint32_t lo = MIN(v[x].item, v[y].item), hi = MAX(v[x].item, v[y].item);
				if (np == cap)
					pairs = qu_realloc(pairs, sizeof(uint64_t) * (cap *= 2));
				pairs[np++] = ((uint64_t)lo << 32 | hi) + 1;
			}
		}
		qsort(pairs, np, sizeof(uint64_t), cmp_u64);
		for (uint64_t k = 0; k < np; k++)
			if (k == 0 || pairs[k] != pairs[k - 1])
				pm_add(&pm, pairs[k], 1);   /* once per user */
		b = e;
	}
	free(pairs);
	cv->off = qu_calloc((size_t)n_items + 1, sizeof(uint64_t));
	for (uint64_t s = 0; s <= pm.mask; s++) {
		if (!pm.key[s])
			continue;
		uint64_t k = pm.key[s] - 1;
		cv->off[(k >> 32) + 1]++;
		cv->off[(k & 0xffffffffu) + 1]++;
	}
	for (uint32_t i = 0; i < n_items; i++)
		cv->off[i + 1] += cv->off[i];
	uint64_t total = cv->off[n_items];
	cv->nb = qu_malloc(sizeof(uint32_t) * (total ? total : 1));
	cv->cnt = qu_malloc(sizeof(float) * (total ? total : 1));
	uint64_t *fill = qu_malloc(sizeof(uint64_t) * ((size_t)n_items + 1));
	memcpy(fill, cv->off, sizeof(uint64_t) * ((size_t)n_items + 1));
	for (uint64_t s = 0; s <= pm.mask; s++) {
		if (!pm.key[s])
			continue;
		uint64_t k = pm.key[s] - 1;
		uint32_t a = (uint32_t)(k >> 32), c = (uint32_t)(k & 0xffffffffu);
		uint64_t p = fill[a]++;
		cv->nb[p] = c;
		cv->cnt[p] = (float)pm.cnt[s];
		p = fill[c]++;
		cv->nb[p] = a;
		cv->cnt[p] = (float)pm.cnt[s];
	}
	free(fill);
	*pairs_out = pm.n;
	free(pm.key);
	free(pm.cnt);
}

/* ---- results ---- */

struct result {
	bool on;
	double hr, ndcg, map, recall, diversity, len;
	uint32_t users;
	uint64_t distinct;
	double coverage, seconds;
	uint64_t lua_failures, excluded_shown;
	double se_hr, se_ndcg;          /* standard errors of the means */
	double d_hr, d_ndcg, se_d_hr, se_d_ndcg; /* paired difference to popular */
	bool has_diff;
	double *u_hr, *u_ndcg;          /* per user */
	/* live rows */
	uint64_t fallbacks;             /* nothing to search with: popularity */
	uint64_t solves;
	double solve_s;
	double cos_sum;                 /* cos(query, snapshot embedding), summed */
	uint64_t n_cos;
	double b_hr, b_ndcg, se_b_hr, se_b_ndcg; /* paired difference to live_baseline */
	bool has_base;
	uint64_t routes[8];
	char route_name[8][LUA_POLICY_NAME_LEN];
	uint32_t n_routes;
};

static void add_route(struct result *r, const char *name)
{
	for (uint32_t k = 0; k < r->n_routes; k++)
		if (!strcmp(r->route_name[k], name)) {
			r->routes[k]++;
			return;
		}
	if (r->n_routes < 8) {
		snprintf(r->route_name[r->n_routes], LUA_POLICY_NAME_LEN, "%s", name);
		r->routes[r->n_routes++] = 1;
	}
}

/* A JSON string (the label). */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static bool in_sorted(const uint32_t *v, uint32_t n, uint32_t x)
{
	return bsearch(&x, v, n, sizeof(*v), cmp_u32) != NULL;
}

/* The popularity list without the user's train items; returns its length. */
static uint32_t popular_list(const uint32_t *pop_order, uint32_t n_pop, const struct user *x, uint32_t k, uint32_t *L)
{
	uint32_t n = 0;
	for (uint32_t q = 0; q < n_pop && n < k; q++)
		if (!in_sorted(x->excl, x->n_excl, pop_order[q]))
			L[n++] = pop_order[q];
	return n;
}

/* The k best servable items by q . item, exact, without the user's train
 * items; score and skip: n_items of scratch. */
static uint32_t search_exact(const struct snap *s, const float *q, const uint8_t *unservable, const struct user *x,
			     uint32_t k, double *score, uint8_t *skip, uint32_t *L)
{
	for (uint32_t i = 0; i < s->n_items; i++) {
		const float *iv = snap_item_vec(s, i);
		double d = 0;
		for (uint32_t a = 0; a < s->dim; a++)
			d += (double)q[a] * (double)iv[a];
		score[i] = d;
	}
	memcpy(skip, unservable, s->n_items);
	for (uint32_t a = 0; a < x->n_excl; a++)
		skip[x->excl[a]] = 1;
	return qm_topk(score, s->n_items, skip, k, L);
}

/* One train interaction as the event the daemon would have logged. */
static void to_event(const struct ev *x, struct event *evt)
{
	static const uint8_t etype[] = { EVENT_VIEW, EVENT_CLICK, EVENT_RATING, EVENT_ADD_TO_CART, EVENT_PURCHASE };
	memset(evt, 0, offsetof(struct event, user_id));
	evt->type = etype[x->type];
	evt->flags = EVENT_HAS_USER | EVENT_HAS_ITEM;
	evt->ts_ms = (uint64_t)MAX(x->ts, 0);
	evt->user_key = x->ukey;
	evt->item_key = event_key(x->iid, x->ilen);
	evt->value = 1;
	evt->user_len = (uint8_t)MIN(x->ulen, EVENT_ID_MAX);
	evt->item_len = (uint8_t)MIN(x->ilen, EVENT_ID_MAX);
	memcpy(evt->user_id, x->uid, evt->user_len);
	memcpy(evt->item_id, x->iid, evt->item_len);
}

/* ---- live rows: replay and query ---- */

struct replay {
	struct live lv;
	ck_epoch_t epoch;
	ck_epoch_record_t wrec;
	struct foldin_gram gram;
	struct foldin_params fp;
	double gram_s;
	uint32_t events;           /* --replay */
	uint64_t users;
	double *scratch;
	uint32_t items[FOLDIN_MAX_INPUTS];
	float strength[FOLDIN_MAX_INPUTS];
	float *q;                  /* dim */
};

/* The recd-train settings a model version names (quality-retail.sh writes
 * als-d<D>-a<A>-l<L>); false when it names none. */
static bool params_from_version(const char *v, struct foldin_params *p)
{
	double a, l;
	int end = 0;
	if (sscanf(v, "als-d%*u-a%lf-l%lf%n", &a, &l, &end) != 2 || v[end] || !(l > 0) || !(a >= 0))
		return false;
	p->alpha = a;
	p->lambda = l;
	return true;
}

/* Replay user u's last F->events train events into the (empty) live
 * state and build method m's query in F->q, as the refresh thread would
 * right after the last of them; then forget the user. NULL: nothing to
 * search with. */
static const float *live_query(struct replay *F, int m, const struct snap *s, const struct ev *evs,
			       const struct user *x, uint32_t u, struct result *R)
{
	uint32_t n = MIN(F->events, x->n_train);
	const struct ev *last = evs + x->tr_from + x->n_train - n;
	struct event evt;
	for (uint32_t i = 0; i < n; i++) {
		to_event(&last[i], &evt);
		if (live_apply(&F->lv, &evt, s))
			qu_die("live state: out of memory");
	}
	const struct live_user *lu = live_user_get(&F->lv, last[0].ukey);
	bool cold = m == M_COLD_SESSION || m == M_COLD_FOLDIN;
	const float *uv = cold ? NULL : snap_user_vec(s, u);
	const float *out = NULL;
	uint32_t dim = s->dim;
	if (m == M_BLEND || m == M_COLD_SESSION) {
		const float *sv = lu && lu->session_weight > 0 ? lu->session : NULL;
		double nu = 0, ns = 0;
		for (uint32_t d = 0; d < dim; d++) {
			nu += uv ? (double)uv[d] * uv[d] : 0;
			ns += sv ? (double)sv[d] * sv[d] : 0;
		}
		if (!(nu > 0))
			uv = NULL;
		if (!(ns > 0))
			sv = NULL;
		if (uv || sv) {
			double wu = uv ? (sv ? 0.5 : 1.0) / sqrt(nu) : 0, ws = sv ? (uv ? 0.5 : 1.0) / sqrt(ns) : 0;
			for (uint32_t d = 0; d < dim; d++)
				F->q[d] = (float)((uv ? wu * uv[d] : 0.0) + (sv ? ws * sv[d] : 0.0));
			out = F->q;
		}
	} else {
		uint32_t ni = foldin_user_inputs(s, lu, F->items, F->strength, FOLDIN_MAX_INPUTS);
		uint64_t t0 = now_ns();
		int r = foldin_solve(&F->gram, s, F->items, F->strength, ni, uv, &F->fp, F->scratch, F->q);
		R->solve_s += qu_since(t0);
		R->solves++;
		if (r == 0)
			out = F->q;
		else if (r != -ENODATA)
			qu_die("fold-in: %s", strerror(-r));
	}
	/* How far the live query moved from the snapshot embedding. */
	const float *x0 = snap_user_vec(s, u);
	double qq = 0, xx = 0, qx = 0;
	for (uint32_t d = 0; out && d < dim; d++) {
		qq += (double)out[d] * out[d];
		xx += (double)x0[d] * x0[d];
		qx += (double)out[d] * x0[d];
	}
	if (qq > 0 && xx > 0) {
		R->cos_sum += qx / sqrt(qq * xx);
		R->n_cos++;
	}
	live_forget_user(&F->lv, last[0].ukey);
	if (++F->users % 256 == 0)
		ck_epoch_barrier(&F->wrec);   /* no readers: frees what was retired */
	return out;
}

int main(int argc, char **argv)
{
	qu_prog = "recd-eval";
	static const struct option opts[] = {
		{ "snapshot", required_argument, NULL, 's' },
		{ "train", required_argument, NULL, 'r' },
		{ "test", required_argument, NULL, 't' },
		{ "k", required_argument, NULL, 'k' },
		{ "methods", required_argument, NULL, 'm' },
		{ "test-type", required_argument, NULL, 'T' },
		{ "covisit-window-ms", required_argument, NULL, 'W' },
		{ "plugins", required_argument, NULL, 'p' },
		{ "lua", required_argument, NULL, 'l' },
		{ "lua-budget-us", required_argument, NULL, 'b' },
		{ "nprobe", required_argument, NULL, 'n' },
		{ "json", required_argument, NULL, 'j' },
		{ "markdown", required_argument, NULL, 'M' },
		{ "label", required_argument, NULL, 'L' },
		{ "replay", required_argument, NULL, 'R' },
		{ "foldin-prior", required_argument, NULL, 'P' },
		{ "foldin-lambda", required_argument, NULL, 'A' },
		{ "foldin-alpha", required_argument, NULL, 'B' },
		{ "foldin-log-confidence", required_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *snap_path = NULL, *train_path = NULL, *test_path = NULL, *plugins = NULL, *lua_dir = NULL;
	const char *json_path = NULL, *md_path = NULL, *label = "";
	uint32_t k = 10, nprobe = 96, budget = 100000;
	int64_t window = 3600000;
	bool any = false;
	uint32_t replay_events = 10;
	double prior = 10, f_lambda = -1, f_alpha = -1, f_log_eps = -1;
	struct result res[M__COUNT];
	memset(res, 0, sizeof(res));
	for (int m = 0; m < M__COUNT; m++)
		res[m].on = true;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': snap_path = optarg; break;
		case 'r': train_path = optarg; break;
		case 't': test_path = optarg; break;
		case 'k': k = (uint32_t)qu_opt_u64("--k", optarg, 1, 1000); break;
		case 'W': window = (int64_t)qu_opt_u64("--covisit-window-ms", optarg, 0, INT64_MAX); break;
		case 'p': plugins = optarg; break;
		case 'l': lua_dir = optarg; break;
		case 'b': budget = (uint32_t)qu_opt_u64("--lua-budget-us", optarg, 1, 10000000); break;
		case 'n': nprobe = (uint32_t)qu_opt_u64("--nprobe", optarg, 1, 65536); break;
		case 'j': json_path = optarg; break;
		case 'M': md_path = optarg; break;
		case 'L': label = optarg; break;
		case 'R': replay_events = (uint32_t)qu_opt_u64("--replay", optarg, 1, LIVE_RECENT); break;
		case 'P': prior = qu_opt_double("--foldin-prior", optarg, 0, 1e12); break;
		case 'A': f_lambda = qu_opt_double("--foldin-lambda", optarg, 1e-9, 1e9); break;
		case 'B': f_alpha = qu_opt_double("--foldin-alpha", optarg, 0, 1e9); break;
		case 'E': f_log_eps = qu_opt_double("--foldin-log-confidence", optarg, 1e-9, 1e9); break;
		case 'T':
			if (!strcmp(optarg, "any"))
				any = true;
			else if (strcmp(optarg, "purchase")) {
				fprintf(stderr, "recd-eval: --test-type: purchase or any\n");
				return QU_EXIT_USAGE;
			}
			break;
		case 'm': {
			for (int m = 0; m < M__COUNT; m++)
				res[m].on = false;
			char buf[256];
			snprintf(buf, sizeof(buf), "%s", optarg);
			for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				int m = 0;
				while (m < M__COUNT && strcmp(method_names[m], t))
					m++;
				if (m == M__COUNT) {
					fprintf(stderr, "recd-eval: --methods: unknown method '%s'\n", t);
					return QU_EXIT_USAGE;
				}
				res[m].on = true;
			}
			break;
		}
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return QU_EXIT_USAGE;
		}
	}
	if (optind < argc || !snap_path || !train_path || !test_path) {
		fputs("recd-eval: needs --snapshot, --train and --test\n(see --help)\n", stderr);
		return QU_EXIT_USAGE;
	}
	if (!lua_dir)
		lua_dir = access("lua/recd_host.lua", R_OK) == 0 ? "lua" : RECD_INSTALLED_LUA_DIR;
	if (!plugins)
		plugins = access("plugins/route.lua", R_OK) == 0 ? "plugins" : RECD_INSTALLED_PLUGINS_DIR;

	uint64_t t0 = now_ns();
	struct snap *s;
	char err[512] = "";
	if (snap_open(snap_path, &s, err, sizeof(err)))
		qu_die_at(snap_path, 0, "%s", err);
	if (!s->user_emb || !s->n_users)
		qu_die_at(snap_path, 0, "the snapshot has no user embeddings");
	const uint32_t ni = s->n_items, nu = s->n_users, dim = s->dim;

	struct qu_input tr_in, te_in;
	struct evs tr = { .s = s }, te = { .s = s };
	qu_read_interactions(&tr_in, train_path, on_row, &tr);
	qu_read_interactions(&te_in, test_path, on_row, &te);

	/* Per-user train history. */
	struct user *U = qu_calloc(nu, sizeof(*U));
	qsort(tr.v, tr.n, sizeof(*tr.v), cmp_ev_user_time);
	uint32_t *tmp = qu_malloc(sizeof(uint32_t) * (MAX(tr.n, te.n) + 1));
	for (uint64_t b = 0; b < tr.n;) {
		uint64_t e = b;
		while (e < tr.n && tr.v[e].ukey == tr.v[b].ukey)
			e++;
		uint32_t u = tr.v[b].user;
		if (u != UINT32_MAX) {
			struct user *x = &U[u];
			x->uid = tr.v[b].uid;
			x->ulen = tr.v[b].ulen;
			x->n_train = (uint32_t)(e - b);
			x->tr_from = b;
			uint32_t m = 0;
			for (uint64_t q = b; q < e; q++)
				if (tr.v[q].item != UINT32_MAX)
					tmp[m++] = tr.v[q].item;
			x->n_hist = uniq_u32(tmp, m);
			x->hist = qu_malloc(sizeof(uint32_t) * (x->n_hist + 1));
			memcpy(x->hist, tmp, sizeof(uint32_t) * x->n_hist);
			m = 0;
			for (uint64_t q = b; q < e; q++)
				if (tr.v[q].item != UINT32_MAX && type_counts(tr.v[q].type, any))
					tmp[m++] = tr.v[q].item;
			x->n_excl = uniq_u32(tmp, m);
			x->excl = qu_malloc(sizeof(uint32_t) * (x->n_excl + 1));
			memcpy(x->excl, tmp, sizeof(uint32_t) * x->n_excl);
			/* Newest first, distinct: purchases and recent items. */
			x->purchased = qu_malloc(sizeof(uint32_t) * (e - b + 1));
			for (uint64_t q = e; q-- > b;) {
				uint32_t it = tr.v[q].item;
				if (it == UINT32_MAX)
					continue;
				bool dup = false;
				for (uint32_t j = 0; j < x->n_recent && !dup; j++)
					dup = x->recent[j] == it;
				if (!dup && x->n_recent < LIVE_RECENT)
					x->recent[x->n_recent++] = it;
				if (tr.v[q].type != QU_PURCHASE)
					continue;
				dup = false;
				for (uint32_t j = 0; j < x->n_purchased && !dup; j++)
					dup = x->purchased[j] == it;
				if (!dup)
					x->purchased[x->n_purchased++] = it;
			}
		}
		b = e;
	}

	/* Relevant test items per user. */
	qsort(te.v, te.n, sizeof(*te.v), cmp_ev_user_time);
	uint32_t test_users = 0, with_history = 0, no_embedding = 0, nothing_new = 0, evaluated = 0;
	uint64_t *unk = qu_malloc(sizeof(uint64_t) * (te.n + 1));
	for (uint64_t b = 0; b < te.n;) {
		uint64_t e = b;
		while (e < te.n && te.v[e].ukey == te.v[b].ukey)
			e++;
		test_users++;
		uint32_t u = te.v[b].user;
		if (u == UINT32_MAX || !U[u].n_train) {
			b = e;   /* no train history (or no snapshot row: counted below) */
			continue;
		}
		with_history++;
		struct user *x = &U[u];
		uint32_t m = 0, mu = 0;
		for (uint64_t q = b; q < e; q++) {
			if (!type_counts(te.v[q].type, any))
				continue;
			if (te.v[q].item == UINT32_MAX)
				unk[mu++] = event_key(te.v[q].iid, te.v[q].ilen);
			else if (!in_sorted(x->excl, x->n_excl, te.v[q].item))
				tmp[m++] = te.v[q].item;
		}
		x->n_rel = uniq_u32(tmp, m);
		x->rel = qu_malloc(sizeof(uint32_t) * (x->n_rel + 1));
		memcpy(x->rel, tmp, sizeof(uint32_t) * x->n_rel);
		qsort(unk, mu, sizeof(uint64_t), cmp_u64);
		uint32_t du = 0;
		for (uint32_t q = 0; q < mu; q++)
			du += q == 0 || unk[q] != unk[q - 1];
		x->n_rel_total = x->n_rel + du;
		if (x->n_rel_total)
			evaluated++;
		else
			nothing_new++;
		b = e;
	}
	free(unk);
	/* Train users unknown to the snapshot who appear in the test set. */
	{
		uint64_t *tk = qu_malloc(sizeof(uint64_t) * (tr.n + 1));
		uint64_t m = 0;
		for (uint64_t q = 0; q < tr.n; q++)
			if (tr.v[q].user == UINT32_MAX && (q == 0 || tr.v[q].ukey != tr.v[q - 1].ukey))
				tk[m++] = tr.v[q].ukey;
		for (uint64_t b = 0; b < te.n; b++)
			if (te.v[b].user == UINT32_MAX && (b == 0 || te.v[b].ukey != te.v[b - 1].ukey) &&
			    bsearch(&te.v[b].ukey, tk, m, sizeof(uint64_t), cmp_u64))
				no_embedding++;
		free(tk);
	}

	/* Popularity: sum of type weights over the train events. */
	double *pop = qu_calloc(ni, sizeof(double));
	for (uint64_t q = 0; q < tr.n; q++)
		if (tr.v[q].item != UINT32_MAX)
			pop[tr.v[q].item] += tr.v[q].w;
	uint8_t *unservable = qu_calloc(ni, 1);
	for (uint32_t i = 0; i < ni; i++)
		unservable[i] = !snap_item_servable(s, i);
	uint32_t *pop_order = qu_malloc(sizeof(uint32_t) * ni);
	uint32_t n_pop = qm_topk(pop, ni, unservable, ni, pop_order);
	double pop_max = 0;
	for (uint32_t i = 0; i < ni; i++)
		pop_max = MAX(pop_max, pop[i]);

	double t_load = qu_since(t0);
	uint32_t *lists = qu_malloc(sizeof(uint32_t) * (size_t)nu * k);
	uint32_t *list_len = qu_calloc(nu, sizeof(uint32_t));
	double *score = qu_malloc(sizeof(double) * ni);
	uint8_t *skip = qu_malloc(ni);
	uint8_t *seen = qu_malloc(ni);
	uint32_t *cats = qu_malloc(sizeof(uint32_t) * k);

	struct covisit cv = { 0 };
	uint64_t covisit_pairs = 0;
	struct lua_host *h = NULL;
	struct pipe_worker *pw = NULL;
	if (res[M_ENGINE].on || res[M_ENGINE_GIVEN].on) {
		struct lua_host_limits lim = { .budget_us = budget };
		if (lua_host_create(&h, plugins, lua_dir, &lim, NULL, 1, err, sizeof(err)))
			qu_die("policies %s (lua %s): %s", plugins, lua_dir, err);
		if (!(pw = pipe_worker_new()))
			qu_die("out of memory");
	}
	/* The live rows: one empty live state, the Gram matrix of the items. */
	static struct replay F;   /* static: ck_epoch keeps its records linked */
	bool live_rows = false;
	for (int m = 0; m < M__COUNT; m++)
		live_rows |= is_live_method(m) && res[m].on;
	const char *params_from = "recd-train's defaults";
	F.fp = foldin_default_params;
	if (params_from_version(s->hdr->model_version, &F.fp))
		params_from = "the model version";
	if (f_lambda > 0 || f_alpha >= 0 || f_log_eps > 0)
		params_from = "the options";
	if (f_lambda > 0)
		F.fp.lambda = f_lambda;
	if (f_alpha >= 0)
		F.fp.alpha = f_alpha;
	if (f_log_eps > 0)
		F.fp.log_eps = f_log_eps;
	F.fp.prior = prior;
	F.events = replay_events;
	if (live_rows) {
		ck_epoch_init(&F.epoch);
		ck_epoch_register(&F.epoch, &F.wrec, NULL);
		if (live_init(&F.lv, dim, 1024, &F.wrec))
			qu_die("out of memory");
		uint64_t tg = now_ns();
		if (foldin_gram_build(s, &F.gram))
			qu_die("out of memory");
		F.gram_s = qu_since(tg);
		F.scratch = qu_malloc(sizeof(double) * foldin_scratch_doubles(dim));
		F.q = qu_malloc(sizeof(float) * dim);
	}

	for (int m = 0; m < M__COUNT; m++) {
		struct result *R = &res[m];
		if (!R->on)
			continue;
		uint64_t tm = now_ns();
		struct live lv;
		ck_epoch_t epoch;
		ck_epoch_record_t wrec;
		if (m == M_COVISIT)
			covisit_build(tr.v, tr.n, ni, window, any, &cv, &covisit_pairs);
		if (m == M_ENGINE) {
			/* Replay the train events into a live state, in time order,
			 * as the daemon replays its event log at start. */
			ck_epoch_init(&epoch);
			ck_epoch_register(&epoch, &wrec, NULL);
			if (live_init(&lv, dim, (uint64_t)nu * 2 + 1000, &wrec))
				qu_die("out of memory");
			struct ev *byt = qu_malloc(sizeof(*byt) * (tr.n + 1));
			memcpy(byt, tr.v, sizeof(*byt) * tr.n);
			qsort(byt, tr.n, sizeof(*byt), cmp_ev_time);
			struct event evt;
			for (uint64_t q = 0; q < tr.n; q++) {
				to_event(&byt[q], &evt);
				if (live_apply(&lv, &evt, s))
					qu_die("live state: out of memory");
				if ((q & 1023) == 1023)
					ck_epoch_barrier(&wrec);   /* no readers: frees what was retired */
			}
			ck_epoch_barrier(&wrec);
			free(byt);
		}
		for (uint32_t u = 0; u < nu; u++) {
			struct user *x = &U[u];
			if (!x->n_rel_total)
				continue;
			uint32_t *L = lists + (size_t)u * k, n = 0;
			switch (m) {
			case M_POPULAR:
				n = popular_list(pop_order, n_pop, x, k, L);
				break;
			case M_COVISIT: {
				memset(score, 0, sizeof(double) * ni);
				for (uint32_t a = 0; a < x->n_hist; a++) {
					uint32_t i = x->hist[a];
					for (uint64_t p = cv.off[i]; p < cv.off[i + 1]; p++)
						score[cv.nb[p]] += cv.cnt[p];
				}
				memcpy(skip, unservable, ni);
				for (uint32_t i = 0; i < ni; i++) {
					if (score[i] <= 0)
						skip[i] = 1;
					/* ties go to popularity: counts are integers */
					score[i] += 0.5 * pop[i] / (pop_max + 1);
				}
				for (uint32_t a = 0; a < x->n_excl; a++)
					skip[x->excl[a]] = 1;
				n = qm_topk(score, ni, skip, k, L);
				for (uint32_t q = 0; q < n_pop && n < k; q++) {
					uint32_t it = pop_order[q];
					bool dup = false;
					for (uint32_t j = 0; j < n && !dup; j++)
						dup = L[j] == it;
					if (!dup && !in_sorted(x->excl, x->n_excl, it))
						L[n++] = it;
				}
				break;
			}
			case M_MF:
				n = search_exact(s, snap_user_vec(s, u), unservable, x, k, score, skip, L);
				break;
			case M_BLEND:
			case M_FOLDIN:
			case M_COLD_SESSION:
			case M_COLD_FOLDIN: {
				const float *q = live_query(&F, m, s, tr.v, x, u, R);
				if (q) {
					n = search_exact(s, q, unservable, x, k, score, skip, L);
				} else {
					R->fallbacks++;
					n = popular_list(pop_order, n_pop, x, k, L);
				}
				break;
			}
			case M_ENGINE: {
				struct pipe_request rq = { .snap = s, .live = &lv, .user_id = x->uid, .user_id_len = x->ulen,
							   .context_item = -1, .n = k, .nprobe = nprobe, .personalize = true };
				struct pipe_result pr;
				pipe_recommend(pw, h, &rq, &pr);
				for (uint32_t q = 0; q < pr.n; q++)
					L[n++] = pr.items[q].item;
				R->lua_failures += pr.lua_rc != 0;
				add_route(R, pr.route ? pr.route : "?");
				break;
			}
			case M_ENGINE_GIVEN: {
				struct lua_req g;
				memset(&g, 0, sizeof(g));
				g.user_id = x->uid;
				g.user_id_len = x->ulen;
				g.user = u;
				g.context_item = LUA_NO_ITEM;
				g.n = k;
				g.interactions = x->n_train;
				g.known = 1;
				g.purchased = x->purchased;
				g.n_purchased = x->n_purchased;
				g.recent = x->recent;
				g.n_recent = x->n_recent;
				struct pipe_request rq = { .snap = s, .context_item = -1, .n = k, .nprobe = nprobe,
							   .personalize = true };
				const struct lua_req *q = pipe_resolve_given(pw, &rq, &g);
				struct lua_route rt;
				int rc = lua_host_route(h, s, q, &rt);
				if (rc) {
					R->lua_failures += rc != -ENOENT;
					pipe_default_route(q, &rt);
				}
				add_route(R, rt.policy);
				struct lua_cand *cd;
				uint32_t nc = pipe_gather(pw, &rq, &rt, &cd);
				bool ranked = false;
				if (lua_host_has_hook(h, LUA_HOOK_RULES) || lua_host_has_hook(h, LUA_HOOK_RERANK)) {
					uint32_t mm = nc;
					rc = lua_host_rank(h, s, q, cd, &mm, k);
					if (rc == 0) {
						nc = mm;
						ranked = lua_host_has_hook(h, LUA_HOOK_RERANK);
					} else {
						R->lua_failures++;
					}
				}
				if (!ranked)
					nc = pipe_default_rank(cd, nc, k);
				nc = MIN(nc, k);
				for (uint32_t j = 0; j < nc; j++)
					L[n++] = cd[j].item;
				break;
			}
			default:
				break;
			}
			list_len[u] = n;
		}
		if (m == M_ENGINE) {
			live_destroy(&lv);
			ck_epoch_barrier(&wrec);
			ck_epoch_unregister(&wrec);
		}
		/* Score. */
		R->u_hr = qu_calloc(nu, sizeof(double));
		R->u_ndcg = qu_calloc(nu, sizeof(double));
		memset(seen, 0, ni);
		double shr = 0, sndcg = 0, sap = 0, srec = 0, sdiv = 0, slen = 0;
		for (uint32_t u = 0; u < nu; u++) {
			struct user *x = &U[u];
			if (!x->n_rel_total)
				continue;
			const uint32_t *L = lists + (size_t)u * k;
			struct qm_scores sc;
			qm_score(L, list_len[u], x->rel, x->n_rel, x->n_rel_total, k, &sc);
			shr += sc.hr, sndcg += sc.ndcg, sap += sc.ap, srec += sc.recall;
			R->u_hr[u] = sc.hr;
			R->u_ndcg[u] = sc.ndcg;
			for (uint32_t q = 0; q < list_len[u]; q++) {
				cats[q] = s->item_category[L[q]];
				if (!seen[L[q]])
					seen[L[q]] = 1, R->distinct++;
				R->excluded_shown += in_sorted(x->excl, x->n_excl, L[q]);
			}
			sdiv += qm_distinct(cats, list_len[u]);
			slen += list_len[u];
			R->users++;
		}
		double du = R->users ? R->users : 1;
		R->hr = shr / du, R->ndcg = sndcg / du, R->map = sap / du, R->recall = srec / du;
		R->diversity = sdiv / du, R->len = slen / du;
		R->coverage = (double)R->distinct / ni;
		R->seconds = qu_since(tm);
	}
	/* Standard errors over users, and paired differences to popularity. */
	for (int m = 0; m < M__COUNT; m++) {
		struct result *R = &res[m];
		if (!R->on || R->users < 2)
			continue;
		const struct result *P = &res[M_POPULAR];
		double v_hr = 0, v_ndcg = 0, dh = 0, dn = 0, vdh = 0, vdn = 0;
		for (uint32_t u = 0; u < nu; u++) {
			if (!U[u].n_rel_total)
				continue;
			v_hr += (R->u_hr[u] - R->hr) * (R->u_hr[u] - R->hr);
			v_ndcg += (R->u_ndcg[u] - R->ndcg) * (R->u_ndcg[u] - R->ndcg);
			if (P->on && m != M_POPULAR) {
				dh += R->u_hr[u] - P->u_hr[u];
				dn += R->u_ndcg[u] - P->u_ndcg[u];
			}
		}
		double n = R->users;
		R->se_hr = sqrt(v_hr / (n - 1) / n);
		R->se_ndcg = sqrt(v_ndcg / (n - 1) / n);
		if (P->on && m != M_POPULAR) {
			R->has_diff = true;
			R->d_hr = dh / n;
			R->d_ndcg = dn / n;
			for (uint32_t u = 0; u < nu; u++) {
				if (!U[u].n_rel_total)
					continue;
				double a = R->u_hr[u] - P->u_hr[u] - R->d_hr, b = R->u_ndcg[u] - P->u_ndcg[u] - R->d_ndcg;
				vdh += a * a;
				vdn += b * b;
			}
			R->se_d_hr = sqrt(vdh / (n - 1) / n);
			R->se_d_ndcg = sqrt(vdn / (n - 1) / n);
		}
		int bm = live_baseline(m);
		if (bm >= 0 && res[bm].on) {
			const struct result *B = &res[bm];
			double sh = 0, sn = 0, vh = 0, vn = 0;
			for (uint32_t u = 0; u < nu; u++)
				if (U[u].n_rel_total) {
					sh += R->u_hr[u] - B->u_hr[u];
					sn += R->u_ndcg[u] - B->u_ndcg[u];
				}
			R->b_hr = sh / n;
			R->b_ndcg = sn / n;
			for (uint32_t u = 0; u < nu; u++)
				if (U[u].n_rel_total) {
					double a = R->u_hr[u] - B->u_hr[u] - R->b_hr, b = R->u_ndcg[u] - B->u_ndcg[u] - R->b_ndcg;
					vh += a * a;
					vn += b * b;
				}
			R->se_b_hr = sqrt(vh / (n - 1) / n);
			R->se_b_ndcg = sqrt(vn / (n - 1) / n);
			R->has_base = true;
		}
	}
	if (live_rows) {
		ck_epoch_barrier(&F.wrec);
		live_destroy(&F.lv);
		ck_epoch_barrier(&F.wrec);
		ck_epoch_unregister(&F.wrec);
		foldin_gram_free(&F.gram);
		free(F.scratch);
		free(F.q);
	}

	/* ---- output ---- */
	char mdbuf[8192];
	size_t ml = 0;
#define MD(...) (ml += (size_t)snprintf(mdbuf + ml, ml < sizeof(mdbuf) ? sizeof(mdbuf) - ml : 0, __VA_ARGS__))
	MD("| method | HR@%u | NDCG@%u | MAP@%u | recall@%u | coverage | distinct items | categories per list |\n", k, k,
	   k, k);
	MD("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (int m = 0; m < M__COUNT; m++) {
		const struct result *R = &res[m];
		if (!R->on)
			continue;
		MD("| %s | %.4f | %.4f | %.4f | %.4f | %.2f%% | %llu | %.2f |\n", method_titles[m], R->hr, R->ndcg, R->map,
		   R->recall, 100 * R->coverage, (unsigned long long)R->distinct, R->diversity);
	}
	printf("recd-eval%s%s: %u test users, %u with train history, %u of them evaluated (%u bought nothing new), "
	       "%u with history but no embedding; catalogue %u items, k %u (load %.2f s)\n\n",
	       label[0] ? " " : "", label, test_users, with_history, evaluated, nothing_new, no_embedding, ni, k,
	       t_load);
	if (live_rows)
		printf("live rows: each user's last %u train events replayed; fold-in lambda %g, alpha %g%s (from %s), "
		       "prior %g; Gram matrix %.1f ms\n\n",
		       F.events, F.fp.lambda, F.fp.alpha, F.fp.log_eps > 0 ? ", log confidence" : "", params_from,
		       F.fp.prior, 1e3 * F.gram_s);
	fputs(mdbuf, stdout);
	for (int m = 0; m < M__COUNT; m++) {
		const struct result *R = &res[m];
		if (!R->on)
			continue;
		printf("\n%-13s HR %.4f +- %.4f, NDCG %.4f +- %.4f (standard errors)", method_names[m], R->hr, R->se_hr,
		       R->ndcg, R->se_ndcg);
		if (R->has_diff)
			printf("; vs popular: HR %+.4f +- %.4f, NDCG %+.4f +- %.4f (paired)", R->d_hr, R->se_d_hr, R->d_ndcg,
			       R->se_d_ndcg);
		printf("\n%-13s %.2f s, mean list length %.2f, %llu recommended items the user had bought in train", "",
		       R->seconds, R->len, (unsigned long long)R->excluded_shown);
		if (m == M_COVISIT)
			printf(", %llu co-visited pairs", (unsigned long long)covisit_pairs);
		if (is_live_method(m))
			printf(", %llu with nothing to search with (popularity)", (unsigned long long)R->fallbacks);
		if (R->solves)
			printf(", %.1f us per fold-in solve", 1e6 * R->solve_s / (double)R->solves);
		if (R->n_cos)
			printf(", mean cos(query, snapshot embedding) %.3f", R->cos_sum / (double)R->n_cos);
		if (R->has_base)
			printf("\n%-13s vs %s: HR %+.4f +- %.4f, NDCG %+.4f +- %.4f (paired)", "",
			       method_names[live_baseline(m)], R->b_hr, R->se_b_hr, R->b_ndcg, R->se_b_ndcg);
		if (m == M_ENGINE || m == M_ENGINE_GIVEN) {
			printf(", %llu Lua fallbacks; routes:", (unsigned long long)R->lua_failures);
			for (uint32_t q = 0; q < R->n_routes; q++)
				printf(" %s %llu", R->route_name[q], (unsigned long long)R->routes[q]);
		}
	}
	printf("\n");
	if (md_path) {
		FILE *f = fopen(md_path, "w");
		if (!f)
			qu_die_at(md_path, 0, "%s", strerror(errno));
		fputs(mdbuf, f);
		qu_close(f, md_path);
	}
	if (json_path) {
		FILE *f = fopen(json_path, "w");
		if (!f)
			qu_die_at(json_path, 0, "%s", strerror(errno));
		fputs("{\n  \"label\": ", f);
		json_str(f, label);
		fprintf(f, ",\n  \"k\": %u,\n  \"catalogue_items\": %u,\n  \"test_users\": %u,\n"
			"  \"with_train_history\": %u,\n  \"evaluated_users\": %u,\n  \"nothing_new\": %u,\n"
			"  \"test_type\": \"%s\",\n",
			k, ni, test_users, with_history, evaluated, nothing_new, any ? "any" : "purchase");
		if (live_rows)
			fprintf(f, "  \"foldin\": {\"replayed_events\": %u, \"lambda\": %g, \"alpha\": %g, \"log_confidence\": %g, "
				"\"prior\": %g, \"gram_ms\": %.3f},\n",
				F.events, F.fp.lambda, F.fp.alpha, F.fp.log_eps, F.fp.prior, 1e3 * F.gram_s);
		fputs("  \"methods\": {\n", f);
		bool first = true;
		for (int m = 0; m < M__COUNT; m++) {
			const struct result *R = &res[m];
			if (!R->on)
				continue;
			fprintf(f, "%s    \"%s\": {\"hr\": %.6f, \"ndcg\": %.6f, \"map\": %.6f, \"recall\": %.6f, "
				"\"coverage\": %.6f, \"distinct_items\": %llu, \"categories_per_list\": %.4f, "
				"\"mean_list_length\": %.4f, \"users\": %u, \"shown_train_items\": %llu, "
				"\"lua_fallbacks\": %llu, \"seconds\": %.3f, \"se_hr\": %.6f, \"se_ndcg\": %.6f",
				first ? "" : ",\n", method_names[m], R->hr, R->ndcg, R->map, R->recall, R->coverage,
				(unsigned long long)R->distinct, R->diversity, R->len, R->users,
				(unsigned long long)R->excluded_shown, (unsigned long long)R->lua_failures, R->seconds,
				R->se_hr, R->se_ndcg);
			if (R->has_diff)
				fprintf(f, ", \"vs_popular\": {\"hr\": %.6f, \"se_hr\": %.6f, \"ndcg\": %.6f, \"se_ndcg\": %.6f}",
					R->d_hr, R->se_d_hr, R->d_ndcg, R->se_d_ndcg);
			if (is_live_method(m))
				fprintf(f, ", \"replayed_events\": %u, \"fallbacks\": %llu", F.events,
					(unsigned long long)R->fallbacks);
			if (R->solves)
				fprintf(f, ", \"solve_us\": %.2f", 1e6 * R->solve_s / (double)R->solves);
			if (R->n_cos)
				fprintf(f, ", \"cos_to_snapshot\": %.4f", R->cos_sum / (double)R->n_cos);
			if (R->has_base)
				fprintf(f, ", \"vs_%s\": {\"hr\": %.6f, \"se_hr\": %.6f, \"ndcg\": %.6f, \"se_ndcg\": %.6f}",
					method_names[live_baseline(m)], R->b_hr, R->se_b_hr, R->b_ndcg, R->se_b_ndcg);
			fputc('}', f);
			first = false;
		}
		fprintf(f, "\n  }\n}\n");
		qu_close(f, json_path);
	}

	if (h)
		lua_host_destroy(h);
	pipe_worker_free(pw);
	free(cv.off), free(cv.nb), free(cv.cnt);
	for (int m = 0; m < M__COUNT; m++)
		free(res[m].u_hr), free(res[m].u_ndcg);
	for (uint32_t u = 0; u < nu; u++) {
		free(U[u].excl);
		free(U[u].hist);
		free(U[u].purchased);
		free(U[u].rel);
	}
	free(U);
	free(tmp);
	free(pop);
	free(pop_order);
	free(unservable);
	free(lists);
	free(list_len);
	free(score);
	free(skip);
	free(seen);
	free(cats);
	free(tr.v);
	free(te.v);
	free(tr_in.buf);
	free(te_in.buf);
	snap_close(s);
	return 0;
}
