/* recd_train.c: `recd-train`, implicit-feedback matrix factorisation by
 * weighted alternating least squares (Hu, Koren, Volinsky, "Collaborative
 * Filtering for Implicit Feedback Datasets", ICDM 2008).
 *
 * For every (user u, item i) the preference p_ui is 1 when u touched i,
 * else 0, with confidence c_ui = 1 + alpha * r_ui (r_ui: the pair's
 * interactions, each counted by its type weight relative to a purchase:
 * purchase 1, add_to_cart 0.6, view / click / rating 0.2), and
 *   min  sum_ui c_ui (p_ui - x_u . y_i)^2 + lambda (sum |x_u|^2 + sum |y_i|^2).
 * Each half-step solves, per user (then per item), the D x D system
 *   (Y'Y + sum_{i in N(u)} (c_ui - 1) y_i y_i' + lambda I) x_u = sum_{i in N(u)} c_ui y_i
 * exactly by Cholesky, in double precision, using the shared Gram matrix
 * Y'Y so the cost is O(nnz D^2 + (users + items) D^3) per iteration. The
 * Gram matrix and the solve are engine/live/foldin's, the code the engine
 * folds a live shopper in with, so training and serving solve one system.
 *
 * Determinism: every row is solved from the same inputs in the same
 * arithmetic order whichever thread takes it, Gram entries are summed in
 * item order, and the loss is summed in row order, so the output bytes
 * depend on the inputs, the options and the seed, not on --threads.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/common.h"
#include "events/evlog.h"
#include "live/foldin.h"
#include "quality_util.h"

static const char usage_text[] =
	"usage: recd-train --items FILE (--interactions FILE | --event-log DIR) --out DIR [options]\n"
	"Weighted ALS for implicit feedback (Hu, Koren, Volinsky 2008). Writes into DIR:\n"
	"  item_embeddings.npy  float32 (items, dim), rows in --items order\n"
	"  user_embeddings.npy  float32 (users, dim), rows in users.txt order\n"
	"  users.txt            the user ids (--users order, else first appearance)\n"
	"ready for recd-snapshot build --item-embeddings ... --users DIR/users.txt\n"
	"--user-embeddings DIR/user_embeddings.npy.\n"
	"inputs:\n"
	"  --items FILE          items.jsonl or items.csv: the catalogue ids and order\n"
	"  --interactions FILE   csv user_id,item_id,type[,ts]\n"
	"  --event-log DIR       also (or instead) recd's event log (event_log_dir):\n"
	"                        view, click, add_to_cart, purchase and positive ratings;\n"
	"                        a forgotten user's earlier events are left out. The\n"
	"                        directory is locked while read: copy a running\n"
	"                        daemon's log first\n"
	"  --users FILE          user ids and row order (others' interactions skipped);\n"
	"                        without it: every user with an interaction used, in\n"
	"                        order of first appearance\n"
	"  --before MS           only interactions with ts < MS (ms since the epoch)\n"
	"model:\n"
	"  --dim D               factors (default 64)\n"
	"  --iters N             ALS iterations (default 15)\n"
	"  --lambda L            L2 regularisation (default 0.1)\n"
	"  --alpha A             confidence slope: c = 1 + A * r (default 10)\n"
	"  --log-confidence E    c = 1 + A * ln(1 + r / E) instead\n"
	"  --seed S              initial item factors (default 1)\n"
	"  --threads T           worker threads (default: online CPUs); the result\n"
	"                        is the same for every T\n"
	"  --out DIR             output directory (created)\n"
	"  -q, --quiet           no per-iteration lines\n";

/* ---- data ---- */

struct csr {                   /* rows -> (col, r) */
	uint64_t *off;             /* rows + 1 */
	uint32_t *col;
	float *r;
	uint32_t rows;
};

struct trip {
	uint32_t u, i;
	float w;
};

struct loader {
	struct qu_items *items;
	struct qu_idx users;       /* when no --users: built here */
	struct qu_items *fixed_users;
	struct trip *t;
	uint64_t n, cap;
	uint64_t unknown_items, unknown_users, late;
	int64_t before;
	char **own_ids;            /* user ids copied from the event log */
	uint32_t n_own, cap_own;
	/* event log: forgotten users */
	uint64_t *forget_at;       /* per user: events before this index are dropped */
	uint32_t forget_cap;
	uint64_t forgotten;
};

static void add_trip(struct loader *L, uint32_t u, uint32_t i, float w)
{
	if (L->n == L->cap) {
		L->cap = L->cap ? L->cap * 2 : 1 << 16;
		L->t = qu_realloc(L->t, sizeof(*L->t) * L->cap);
	}
	L->t[L->n++] = (struct trip){ u, i, w };
}

static int64_t user_row(struct loader *L, const char *id, size_t len, bool copy)
{
	if (L->fixed_users)
		return qu_idx_find(&L->fixed_users->index, id, len);
	int64_t r = qu_idx_find(&L->users, id, len);
	if (r >= 0)
		return r;
	if (copy) {
		char *s = qu_malloc(len + 1);
		memcpy(s, id, len);
		s[len] = 0;
		if (L->n_own == L->cap_own) {
			L->cap_own = L->cap_own ? L->cap_own * 2 : 1024;
			L->own_ids = qu_realloc(L->own_ids, sizeof(char *) * L->cap_own);
		}
		L->own_ids[L->n_own++] = s;
		id = s;
	}
	return qu_idx_add(&L->users, id, len, NULL);
}

static void on_row(void *ctx, const struct qu_row *r)
{
	struct loader *L = ctx;
	if (r->ts >= L->before) {
		L->late++;
		return;
	}
	int64_t i = qu_idx_find(&L->items->index, r->item, r->item_len);
	if (i < 0) {
		L->unknown_items++;
		return;
	}
	int64_t u = user_row(L, r->user, r->user_len, false);
	if (u < 0) {
		L->unknown_users++;
		return;
	}
	add_trip(L, (uint32_t)u, (uint32_t)i, r->weight / 5.0f);
}

static int on_event(void *ctx, const struct event *ev)
{
	struct loader *L = ctx;
	float w;
	switch (ev->type) {
	case EVENT_VIEW:
	case EVENT_CLICK: w = 0.2f; break;
	case EVENT_RATING: w = ev->value > 0 ? 0.2f : 0; break;
	case EVENT_ADD_TO_CART: w = 0.6f; break;
	case EVENT_PURCHASE: w = 1.0f; break;
	case EVENT_FORGET_USER: w = -1; break;
	default: return 0;
	}
	if (!(ev->flags & EVENT_HAS_USER) || !ev->user_len)
		return 0;
	if (ev->flags & EVENT_NO_PERSONALIZE)
		w = -1;   /* consent withdrawn: as the engine does, keep nothing about them */
	int64_t u = user_row(L, ev->user_id, ev->user_len, true);
	if (u < 0) {
		L->unknown_users += w >= 0;
		return 0;
	}
	if (w < 0) {
		if ((uint32_t)u >= L->forget_cap) {
			uint32_t nc = MAX((uint32_t)u + 1, L->forget_cap * 2);
			L->forget_at = qu_realloc(L->forget_at, sizeof(uint64_t) * nc);
			memset(L->forget_at + L->forget_cap, 0, sizeof(uint64_t) * (nc - L->forget_cap));
			L->forget_cap = nc;
		}
		L->forget_at[u] = L->n;
		L->forgotten++;
		return 0;
	}
	if (w == 0)
		return 0;
	if ((int64_t)ev->ts_ms >= L->before) {
		L->late++;
		return 0;
	}
	int64_t i = qu_idx_find(&L->items->index, ev->item_id, ev->item_len);
	if (i < 0) {
		L->unknown_items++;
		return 0;
	}
	add_trip(L, (uint32_t)u, (uint32_t)i, w);
	return 0;
}

static int cmp_trip_ui(const void *a, const void *b)
{
	const struct trip *x = a, *y = b;
	if (x->u != y->u)
		return x->u < y->u ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

/* Sorted, merged (u, i, r) triples into the user-major and item-major CSR. */
static void build_csr(const struct trip *t, uint64_t n, uint32_t n_users, uint32_t n_items, struct csr *U,
		      struct csr *I)
{
	U->rows = n_users;
	I->rows = n_items;
	U->off = qu_calloc((size_t)n_users + 1, sizeof(uint64_t));
	I->off = qu_calloc((size_t)n_items + 1, sizeof(uint64_t));
	U->col = qu_malloc(sizeof(uint32_t) * n);
	U->r = qu_malloc(sizeof(float) * n);
	I->col = qu_malloc(sizeof(uint32_t) * n);
	I->r = qu_malloc(sizeof(float) * n);
	for (uint64_t k = 0; k < n; k++) {
		U->off[t[k].u + 1]++;
		I->off[t[k].i + 1]++;
	}
	for (uint32_t u = 0; u < n_users; u++)
		U->off[u + 1] += U->off[u];
	for (uint32_t i = 0; i < n_items; i++)
		I->off[i + 1] += I->off[i];
	uint64_t *fill = qu_malloc(sizeof(uint64_t) * ((size_t)n_items + 1));
	memcpy(fill, I->off, sizeof(uint64_t) * ((size_t)n_items + 1));
	for (uint64_t k = 0; k < n; k++) {   /* t is user-major: item rows get users in order */
		U->col[k] = t[k].i;
		U->r[k] = t[k].w;
		uint64_t p = fill[t[k].i]++;
		I->col[p] = t[k].u;
		I->r[p] = t[k].w;
	}
	free(fill);
}

/* ---- the solver ---- */

struct model {
	uint32_t dim;
	struct foldin_params p;    /* lambda, alpha, log_eps; prior 0 */
};

enum job_kind { JOB_SOLVE, JOB_LOSS };

struct job {
	enum job_kind kind;
	const struct model *m;
	const struct csr *R;       /* rows to solve (users or items) */
	const float *other;        /* the fixed side: (other rows, dim) */
	uint32_t n_other;
	float *out;                /* the side being solved: (R->rows, dim) */
	const double *gram;        /* dim x dim of `other` */
	double *loss_row;          /* JOB_LOSS: per row of R */
	atomic_uint_fast64_t next;
	uint64_t total;
	atomic_uint_fast64_t failed;
};

#define CHUNK 16u

static void run_solve(struct job *j, uint64_t row, double *scratch)
{
	const struct csr *R = j->R;
	uint32_t d = j->m->dim;
	uint64_t from = R->off[row];
	/* A system that is not positive definite leaves the row at 0. */
	if (foldin_solve_rows(j->gram, d, j->other, d, R->col + from, R->r + from, (uint32_t)(R->off[row + 1] - from),
			      NULL, &j->m->p, scratch, j->out + (size_t)row * d))
		atomic_fetch_add(&j->failed, 1);
}

/* Loss terms of one row of R: x' G x + sum_{observed} [c (1 - s)^2 - s^2]
 * (the unobserved pairs' s^2 come from the Gram matrix) + lambda |x|^2. */
static void run_loss(struct job *j, uint64_t row)
{
	const struct model *m = j->m;
	uint32_t d = m->dim;
	const float *x = j->out + (size_t)row * d;
	double q = 0, nx = 0;
	for (uint32_t a = 0; a < d; a++) {
		double t = 0;
		for (uint32_t b = 0; b < d; b++)
			t += j->gram[(size_t)a * d + b] * (double)x[b];
		q += (double)x[a] * t;
		nx += (double)x[a] * (double)x[a];
	}
	for (uint64_t k = j->R->off[row]; k < j->R->off[row + 1]; k++) {
		const float *y = j->other + (size_t)j->R->col[k] * d;
		double s = 0;
		for (uint32_t a = 0; a < d; a++)
			s += (double)x[a] * (double)y[a];
		q += foldin_confidence(&m->p, j->R->r[k]) * (1 - s) * (1 - s) - s * s;
	}
	j->loss_row[row] = q + m->p.lambda * nx;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	double *scratch = j->kind == JOB_SOLVE ? qu_malloc(sizeof(double) * foldin_scratch_doubles(j->m->dim)) : NULL;
	for (;;) {
		uint64_t from = atomic_fetch_add(&j->next, CHUNK);
		if (from >= j->total)
			break;
		uint64_t to = MIN(from + CHUNK, j->total);
		for (uint64_t r = from; r < to; r++) {
			if (j->kind == JOB_SOLVE)
				run_solve(j, r, scratch);
			else
				run_loss(j, r);
		}
	}
	free(scratch);
	return NULL;
}

static unsigned n_threads = 1;

static void run(struct job *j, uint64_t total)
{
	j->total = total;
	atomic_store(&j->next, 0);
	unsigned t = (unsigned)MIN((uint64_t)n_threads, (total + CHUNK - 1) / CHUNK);
	if (t <= 1) {
		worker(j);
		return;
	}
	pthread_t th[256];
	for (unsigned k = 0; k < t; k++)
		if (pthread_create(&th[k], NULL, worker, j) != 0)
			qu_die("pthread_create: %s", strerror(errno));
	for (unsigned k = 0; k < t; k++)
		pthread_join(th[k], NULL);
}

/* One thread: blocked, it streams the rows once (foldin.c); each entry
 * is summed in row order, so the bits do not depend on --threads. */
static void gram(struct foldin_gram *g, const float *v, uint32_t rows)
{
	foldin_gram_reset(g);
	foldin_gram_add(g, v, g->dim, rows);
	foldin_gram_finish(g);
}

static uint64_t solve(const struct model *m, const struct csr *R, const float *other, uint32_t n_other,
		      const double *g, float *out)
{
	struct job j = { .kind = JOB_SOLVE, .m = m, .R = R, .other = other, .n_other = n_other, .gram = g, .out = out };
	atomic_store(&j.failed, 0);
	run(&j, R->rows);
	return atomic_load(&j.failed);
}

static double loss(const struct model *m, const struct csr *U, const float *X, const float *Y, uint32_t n_items,
		   const double *gy, double *loss_row)
{
	struct job j = { .kind = JOB_LOSS, .m = m, .R = U, .other = Y, .n_other = n_items, .gram = gy, .out = (float *)X,
			 .loss_row = loss_row };
	run(&j, U->rows);
	double total = 0;
	for (uint32_t u = 0; u < U->rows; u++)
		total += loss_row[u];
	for (uint64_t k = 0; k < (uint64_t)n_items * m->dim; k++)
		total += m->p.lambda * (double)Y[k] * (double)Y[k];
	return total;
}

/* ---- main ---- */

/* A directory with at least one events-<N>.log segment (evlog_open would
 * create one in an empty directory: a training run must not). */
static bool has_segments(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool found = false;
	for (struct dirent *e; !found && (e = readdir(d));) {
		size_t l = strlen(e->d_name);
		found = l > 11 && !strncmp(e->d_name, "events-", 7) && !strcmp(e->d_name + l - 4, ".log");
	}
	closedir(d);
	return found;
}

int main(int argc, char **argv)
{
	qu_prog = "recd-train";
	static const struct option opts[] = {
		{ "items", required_argument, NULL, 'i' },
		{ "interactions", required_argument, NULL, 'I' },
		{ "event-log", required_argument, NULL, 'E' },
		{ "users", required_argument, NULL, 'u' },
		{ "before", required_argument, NULL, 'B' },
		{ "dim", required_argument, NULL, 'd' },
		{ "iters", required_argument, NULL, 'n' },
		{ "lambda", required_argument, NULL, 'l' },
		{ "alpha", required_argument, NULL, 'a' },
		{ "log-confidence", required_argument, NULL, 'g' },
		{ "seed", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "out", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *items_path = NULL, *inter_path = NULL, *evlog_dir = NULL, *users_path = NULL, *out = NULL;
	struct model m = { .dim = 64, .p = foldin_default_params };
	uint64_t iters = 15, seed = 1;
	int64_t before = INT64_MAX;
	bool quiet = false;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	n_threads = cpus > 0 ? (unsigned)MIN(cpus, 64) : 1;
	int c;
	while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'i': items_path = optarg; break;
		case 'I': inter_path = optarg; break;
		case 'E': evlog_dir = optarg; break;
		case 'u': users_path = optarg; break;
		case 'o': out = optarg; break;
		case 'B': before = (int64_t)qu_opt_u64("--before", optarg, 0, INT64_MAX); break;
		case 'd': m.dim = (uint32_t)qu_opt_u64("--dim", optarg, 1, 1024); break;
		case 'n': iters = qu_opt_u64("--iters", optarg, 1, 1000); break;
		case 'l': m.p.lambda = qu_opt_double("--lambda", optarg, 1e-9, 1e9); break;
		case 'a': m.p.alpha = qu_opt_double("--alpha", optarg, 0, 1e9); break;
		case 'g': m.p.log_eps = qu_opt_double("--log-confidence", optarg, 1e-9, 1e9); break;
		case 's': seed = qu_opt_u64("--seed", optarg, 0, UINT64_MAX); break;
		case 't': n_threads = (unsigned)qu_opt_u64("--threads", optarg, 1, 256); break;
		case 'q': quiet = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return QU_EXIT_USAGE;
		}
	}
	if (optind < argc || !items_path || (!inter_path && !evlog_dir) || !out) {
		fputs("recd-train: needs --items, --interactions and/or --event-log, and --out\n(see --help)\n", stderr);
		return QU_EXIT_USAGE;
	}

	uint64_t t0 = now_ns();
	struct qu_items items, fixed_users;
	qu_load_item_ids(&items, items_path);
	struct loader L = { .items = &items, .before = before };
	if (users_path) {
		qu_load_user_ids(&fixed_users, users_path);
		L.fixed_users = &fixed_users;
	} else {
		qu_idx_init(&L.users, 4096);
	}
	struct qu_input inter = { 0 };
	uint64_t rows = 0;
	if (inter_path)
		rows += qu_read_interactions(&inter, inter_path, on_row, &L);
	if (evlog_dir) {
		if (!has_segments(evlog_dir))
			qu_die_at(evlog_dir, 0, "not an event log directory");
		struct evlog lg;
		struct evlog_recovery rec;
		struct evlog_opts eo = { .retain = false };
		int r = evlog_open(&lg, evlog_dir, &eo, on_event, &L, &rec);
		if (r)
			qu_die_at(evlog_dir, 0, "event log: %s%s", strerror(-r),
				  r == -EBUSY ? " (a running recd holds it: copy the directory)" : "");
		evlog_close(&lg);
		rows += rec.events;
		/* Forgotten users: drop what they did before the forget (in the
		 * --interactions file too). */
		if (L.forget_at) {
			uint64_t w = 0;
			for (uint64_t k = 0; k < L.n; k++) {
				uint32_t u = L.t[k].u;
				if (u < L.forget_cap && k < L.forget_at[u])
					continue;
				L.t[w++] = L.t[k];
			}
			L.n = w;
		}
	}
	uint32_t n_users = users_path ? fixed_users.n : L.users.n, n_items = items.n;
	/* Without --users, the rows are the users with something left to
	 * train on, in order of first appearance: a forgotten user's id, or
	 * one seen only after --before, is not written. */
	const char **uid = qu_malloc(sizeof(char *) * (n_users ? n_users : 1));
	uint32_t *ulen = qu_malloc(sizeof(uint32_t) * (n_users ? n_users : 1));
	if (users_path) {
		for (uint32_t u = 0; u < n_users; u++)
			uid[u] = fixed_users.ids[u], ulen[u] = (uint32_t)strlen(fixed_users.ids[u]);
	} else {
		uint32_t *map = qu_malloc(sizeof(uint32_t) * (n_users ? n_users : 1)), kept = 0;
		memset(map, 0xff, sizeof(uint32_t) * n_users);
		for (uint64_t k = 0; k < L.n; k++)
			map[L.t[k].u] = 0;
		for (uint32_t u = 0; u < n_users; u++)
			if (map[u] == 0) {
				map[u] = kept;
				uid[kept] = L.users.key[u];
				ulen[kept++] = L.users.keylen[u];
			}
		for (uint64_t k = 0; k < L.n; k++)
			L.t[k].u = map[L.t[k].u];
		n_users = kept;
		free(map);
	}

	/* Merge duplicates: r_ui = sum of the pair's weights. */
	qsort(L.t, L.n, sizeof(*L.t), cmp_trip_ui);
	uint64_t nnz = 0;
	for (uint64_t k = 0; k < L.n; k++) {
		if (nnz && L.t[nnz - 1].u == L.t[k].u && L.t[nnz - 1].i == L.t[k].i)
			L.t[nnz - 1].w += L.t[k].w;
		else
			L.t[nnz++] = L.t[k];
	}
	struct csr U, I;
	build_csr(L.t, nnz, n_users, n_items, &U, &I);
	if (!quiet || L.unknown_items || L.unknown_users)
		printf("recd-train: %llu interactions read, %llu used (%llu distinct user-item pairs), %u users, %u items; "
		       "skipped %llu unknown items, %llu unknown users, %llu after --before%s (%.2f s)\n",
		       (unsigned long long)rows, (unsigned long long)L.n, (unsigned long long)nnz, n_users, n_items,
		       (unsigned long long)L.unknown_items, (unsigned long long)L.unknown_users,
		       (unsigned long long)L.late, L.forgotten ? "; forgotten users' earlier events dropped" : "",
		       qu_since(t0));
	if (!nnz)
		qu_die("no interactions to train on");

	uint32_t d = m.dim;
	float *X = qu_calloc((size_t)n_users * d, sizeof(float));
	float *Y = qu_malloc(sizeof(float) * (size_t)n_items * d);
	uint64_t st = seed;
	double scale = 0.1 / sqrt((double)d);
	for (uint64_t k = 0; k < (uint64_t)n_items * d; k++)
		Y[k] = (float)(((double)(qu_splitmix(&st) >> 11) * 0x1p-53 - 0.5) * 2.0 * scale);
	struct foldin_gram G;
	if (foldin_gram_init(&G, d))
		qu_die("out of memory");
	double *loss_row = qu_malloc(sizeof(double) * (n_users ? n_users : 1));
	if (!quiet)
		printf("recd-train: dim %u, lambda %g, alpha %g%s, %llu iterations, %u threads\n", d, m.p.lambda,
		       m.p.alpha, m.p.log_eps > 0 ? " (log confidence)" : "", (unsigned long long)iters, n_threads);
	uint64_t failed = 0;
	for (uint64_t it = 1; it <= iters; it++) {
		uint64_t t1 = now_ns();
		gram(&G, Y, n_items);
		failed += solve(&m, &U, Y, n_items, G.m, X);
		double tu = qu_since(t1);
		uint64_t t2 = now_ns();
		gram(&G, X, n_users);
		failed += solve(&m, &I, X, n_users, G.m, Y);
		double ti = qu_since(t2);
		if (!quiet) {
			gram(&G, Y, n_items);
			double l = loss(&m, &U, X, Y, n_items, G.m, loss_row);
			printf("iter %3llu: loss %.6e (%.4f per pair) users %.2f s, items %.2f s\n",
			       (unsigned long long)it, l, l / ((double)n_users * n_items), tu, ti);
			fflush(stdout);
		}
	}
	if (failed)
		fprintf(stderr, "recd-train: warning: %llu systems were not positive definite (rows set to 0)\n",
			(unsigned long long)failed);

	qu_mkdir(out);
	char path[4096];
	snprintf(path, sizeof(path), "%s/item_embeddings.npy", out);
	qu_write_npy(path, Y, n_items, d);
	snprintf(path, sizeof(path), "%s/user_embeddings.npy", out);
	qu_write_npy(path, X, n_users, d);
	FILE *f = qu_create(out, "users.txt", path, sizeof(path));
	for (uint32_t u = 0; u < n_users; u++) {
		fwrite(uid[u], 1, ulen[u], f);
		fputc('\n', f);
	}
	qu_close(f, path);
	printf("recd-train: wrote %s: item_embeddings.npy (%u x %u), user_embeddings.npy (%u x %u), users.txt "
	       "(%.2f s)\n", out, n_items, d, n_users, d, qu_since(t0));

	free(uid);
	free(ulen);
	foldin_gram_free(&G);
	free(loss_row);
	free(X);
	free(Y);
	free(U.off), free(U.col), free(U.r);
	free(I.off), free(I.col), free(I.r);
	free(L.t);
	for (uint32_t k = 0; k < L.n_own; k++)
		free(L.own_ids[k]);
	free(L.own_ids);
	free(L.forget_at);
	free(inter.buf);
	if (users_path)
		qu_items_free(&fixed_users);
	else
		qu_idx_free(&L.users);
	qu_items_free(&items);
	return 0;
}
