/* test_snap_swap.c: readers searching continuously while a writer swaps
 * snapshots many times (bounded in count and in wall-clock time).
 *
 *   test_snap_swap [READERS [SWAPS [SECONDS]]]     defaults: 2 200 10
 *
 * Exit 0 pass, 1 fail, 77 skip (no temporary files or threads here).
 *
 * Set-up: three small snapshot files written by the real builder (3000+
 * items x 16 dims, the ANN index forced on, embedding neighbours), each
 * with its own model version, item count, prices, servability pattern,
 * embeddings and one id only it has, so a reader can tell which file a
 * snapshot came from.
 *
 * The writer (the main thread) plays the control thread of ctl.c: it
 * snap_opens the next file, records which file the next generation will
 * be, publishes through srv_publish_snapshot (core/srv.c: generation,
 * store fence, pointer store), hands the old snapshot to ck_epoch_call
 * and polls (a barrier every 50 swaps). The retire callback poisons the
 * struct snap (0xAB) before snap_close unmaps and frees it, so a reader
 * still holding it trips a check here (plain build), or ASan (use after
 * free, or a fault in the unmapped pages).
 *
 * Readers play the workers: ck_epoch_begin, load the pointer once, then
 * several ANN searches (rec_topk_keep with a scratch from
 * rec_scratch_new, with and without a keep filter), id lookups and
 * neighbour rows on that one snapshot, checking: the header magic; no
 * poison; the generation maps to the file the writer recorded for it
 * (model version, item count, its own id present, the others' absent,
 * its price band); generations never go backwards; every result index <
 * n_items, servable, not the query item, kept by the filter, scored
 * exactly, sorted best first; ck_epoch_end.
 *
 * ThreadSanitizer cannot see ck_pr (x86 inline asm) nor ck_epoch's
 * grace-period logic (libck.so is not instrumented), so under TSan the
 * test states the two guarantees the engine relies on as happens-before
 * annotations: publication (the writer releases the finished snapshot
 * before srv_publish_snapshot; a reader acquires it after the load) and
 * reclamation (a reader releases a shared token just before
 * ck_epoch_end; the retire callback acquires it before poisoning). TSan
 * then still reports any access outside those edges: a reader touching
 * a snapshot after its section ended, a writer changing one after
 * publishing it, any other shared state. One field falls outside them:
 * srv_publish_snapshot writes s->generation after the annotation point,
 * just before its store fence, so readers load the generation with
 * ck_pr_load_64 (snap_gen), which TSan does not see either (no
 * suppression needed, and none that a lost write stack could defeat).
 * Records are static: ck_epoch never unlinks a record, so each must
 * outlive every later barrier.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ck_epoch.h>
#include <ck_pr.h>
#include "core/srv.h"
#include "rec/rec.h"
#include "snap/snap.h"
#include "snap/snapb.h"

#if defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#endif
#endif
#ifdef STRESS_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define HB_ACQUIRE(p) __tsan_acquire((void *)(p))
#define HB_RELEASE(p) __tsan_release((void *)(p))
#else
#define HB_ACQUIRE(p) ((void)(p))
#define HB_RELEASE(p) ((void)(p))
#endif

#define N_FILES 3
#define BASE_ITEMS 3000u
#define DIM 16u
#define NLIST 32u
#define NEIGHBORS_K 8u
#define TOP_K 10u
#define QUERIES_PER_SECTION 4
#define MAX_READERS 64
#define MAX_SWAPS 1000000
#define BARRIER_EVERY 50
#define PACE_WAIT_NS 20000000ull   /* a swap waits this long at most for a read */
#define MAX_MESSAGES 20
#define POISON 0xAB
#define POISON64 0xABABABABABABABABull

struct file_spec {
	char path[256];
	char model[SNAP_MODEL_VERSION_LEN];
	char own_id[32];          /* the id only this file has (its last item) */
	uint32_t n_items;
	float price_lo;           /* every price in [price_lo, price_lo + 10) */
};

static struct file_spec files[N_FILES];

/* The served snapshot, published as the engine does (core/srv.h). */
static struct recd_server srv;
/* gen_file[g]: the file generation g was loaded from; written by the
 * writer before it publishes generation g. */
static uint8_t *gen_file;
static uint64_t max_gen;

/* ck_epoch never unlinks a record: static, never on a thread's stack. */
static ck_epoch_record_t writer_rec;
static ck_epoch_record_t reader_recs[MAX_READERS];
static char epoch_hb;             /* TSan token: section ends -> retire callback */

struct retired {
	ck_epoch_entry_t entry;   /* first member: the callback casts back */
	struct snap *snap;
};
static uint64_t retired, freed;   /* writer only */

struct reader {
	pthread_t thread;
	unsigned id;
	uint64_t sections, queries, results, overlapped, max_gen_seen;
	uint64_t reads_published cacheline_aligned;   /* ck_pr: sections, for pacing */
} cacheline_aligned;

static struct reader readers[MAX_READERS];
static int stop;                  /* ck_pr */
static uint64_t reader_deadline_ns;
static unsigned bad;              /* ck_pr: invariant violations */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	unsigned n = ck_pr_faa_uint(&bad, 1);
	if (n >= MAX_MESSAGES)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "test_snap_swap: %s\n", msg);
}

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

/* The generation srv_publish_snapshot gave `s` (see the header comment). */
static uint64_t snap_gen(const struct snap *s)
{
	return ck_pr_load_64(&s->generation);
}

static float frand(uint64_t *x)
{
	return (float)((double)(xorshift(x) >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

/* ------------------------------------------------------------ set-up */

static int build_file(unsigned k, const char *dir, char *err, size_t errlen)
{
	struct file_spec *f = &files[k];
	uint32_t n = BASE_ITEMS + 16u * k;
	f->n_items = n;
	f->price_lo = 100.0f * (float)(k + 1);
	snprintf(f->model, sizeof(f->model), "stress-v%u", k);
	snprintf(f->own_id, sizeof(f->own_id), "only-v%u", k);
	snprintf(f->path, sizeof(f->path), "%s/recd-stress-swap-XXXXXX", dir);
	int fd = mkstemp(f->path);
	if (fd < 0) {
		snprintf(err, errlen, "mkstemp %.300s: %s", f->path, strerror(errno));
		f->path[0] = 0;
		return 77;
	}
	close(fd);

	struct snapb_item *items = calloc(n, sizeof(*items));
	char (*ids)[32] = calloc(n, sizeof(*ids));
	float *emb = malloc((size_t)n * DIM * sizeof(float));
	float *pop = malloc(n * sizeof(float));
	float centers[24][DIM];
	static const char *const cats[4] = { "c0", "c1", "c2", "c3" };
	int rc = 1;
	if (!items || !ids || !emb || !pop) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	uint64_t rng = 0x9E3779B97F4A7C15ull * (k + 1);
	for (unsigned c = 0; c < 24; c++)
		for (unsigned d = 0; d < DIM; d++)
			centers[c][d] = frand(&rng);
	for (uint32_t i = 0; i < n; i++) {
		if (i == n - 1)
			snprintf(ids[i], sizeof(ids[i]), "%s", f->own_id);
		else
			snprintf(ids[i], sizeof(ids[i]), "it%u", i);
		bool in_stock = (i + k) % 11 != 0, available = (i + 2 * k) % 13 != 0;
		items[i] = (struct snapb_item){ ids[i], "", cats[(i + k) % 4], f->price_lo + (float)(i % 10),
						in_stock ? 5u : 0u, available };
		unsigned c = (unsigned)(xorshift(&rng) % 24);
		for (unsigned d = 0; d < DIM; d++)
			emb[(size_t)i * DIM + d] = centers[c][d] + 0.3f * frand(&rng);
		pop[i] = (float)((i * 7 + k) % 101);
	}
	struct snapb_input in = {
		.model_version = f->model, .build_time = 1700000000 + k, .dim = DIM, .n_items = n,
		.items = items, .item_emb = emb, .item_popularity = pop, .popular_k = 100,
		.ann_enabled = true, .ann = { .nlist = NLIST, .seed = 7 + k },
		.neighbors_k = NEIGHBORS_K,
	};
	rc = snapb_write(&in, f->path, err, errlen) ? 1 : 0;
out:
	free(items);
	free(ids);
	free(emb);
	free(pop);
	return rc;
}

static void remove_files(void)
{
	for (unsigned k = 0; k < N_FILES; k++)
		if (files[k].path[0])
			unlink(files[k].path);
}

/* ------------------------------------------------------------ readers */

static bool keep_not_mult3(void *ctx, uint32_t item)
{
	(void)ctx;
	return item % 3 != 0;
}

static bool near(float a, float b)
{
	return fabsf(a - b) <= 1e-4f * (1.0f + fabsf(b));
}

/* Whole, unpoisoned, and the file the writer recorded for its
 * generation. Returns that file, or -1 (reported). */
static int check_snapshot(const struct snap *s, unsigned rid)
{
	uint64_t g = snap_gen(s);
	if (g == POISON64 || (uintptr_t)s->hdr == (uintptr_t)POISON64 || s->n_items == 0xABABABABu) {
		fail("reader %u: snapshot %p is poisoned (retired under the reader)", rid, (const void *)s);
		return -1;
	}
	if (g == 0 || g > max_gen) {
		fail("reader %u: generation %llu out of range (half-built snapshot?)", rid, (unsigned long long)g);
		return -1;
	}
	unsigned k = gen_file[g];
	if (k >= N_FILES) {
		fail("reader %u: generation %llu was never recorded by the writer", rid, (unsigned long long)g);
		return -1;
	}
	const struct file_spec *f = &files[k];
	if (memcmp(s->hdr->magic, SNAP_MAGIC, SNAP_MAGIC_LEN)) {
		fail("reader %u: generation %llu: header magic damaged", rid, (unsigned long long)g);
		return -1;
	}
	if (strcmp(s->hdr->model_version, f->model) || s->n_items != f->n_items || s->hdr->n_items != f->n_items ||
	    s->dim != DIM || s->ann.nlist != NLIST || s->neighbors_k != NEIGHBORS_K) {
		fail("reader %u: generation %llu: got model '%.64s' n_items %u dim %u nlist %u k %u, the writer "
		     "recorded %s (%u items)", rid, (unsigned long long)g, s->hdr->model_version, s->n_items, s->dim,
		     s->ann.nlist, s->neighbors_k, f->model, f->n_items);
		return -1;
	}
	for (unsigned j = 0; j < N_FILES; j++) {
		int64_t idx = snap_item_find(s, files[j].own_id, strlen(files[j].own_id));
		if (j == k ? idx != (int64_t)f->n_items - 1 : idx != -1) {
			fail("reader %u: generation %llu (%s): id %s found at %lld", rid, (unsigned long long)g, f->model,
			     files[j].own_id, (long long)idx);
			return -1;
		}
	}
	return (int)k;
}

static void check_query(const struct snap *s, const struct file_spec *f, uint32_t q, bool filtered,
			const struct rec_item *out, uint32_t n, unsigned rid)
{
	const float *qv = snap_item_vec(s, q);
	if (n != TOP_K)   /* thousands of servable items: always k */
		fail("reader %u: %s: query %u%s returned %u results, want %u", rid, f->model, q,
		     filtered ? " (filtered)" : "", n, TOP_K);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t it = out[i].item;
		if (it >= s->n_items) {
			fail("reader %u: %s: query %u: result %u index %u >= n_items %u", rid, f->model, q, i, it,
			     s->n_items);
			return;
		}
		if (!snap_item_servable(s, it) || it == q || (filtered && !keep_not_mult3(NULL, it)))
			fail("reader %u: %s: query %u: result %u (item %u) unservable, excluded or filtered out", rid,
			     f->model, q, i, it);
		float exact = rec_dot(qv, snap_item_vec(s, it), s->stride);
		if (!isfinite(out[i].score) || !near(out[i].score, exact))
			fail("reader %u: %s: query %u: item %u score %g, exact %g", rid, f->model, q, it,
			     (double)out[i].score, (double)exact);
		if (i && !(out[i - 1].score > out[i].score ||
			   (out[i - 1].score == out[i].score && out[i - 1].item < out[i].item)))
			fail("reader %u: %s: query %u: results %u and %u out of order", rid, f->model, q, i - 1, i);
		if (s->item_price[it] < f->price_lo || s->item_price[it] >= f->price_lo + 10.0f)
			fail("reader %u: %s: item %u price %g is not this file's", rid, f->model, it,
			     (double)s->item_price[it]);
	}
}

static void check_item(const struct snap *s, const struct file_spec *f, uint32_t q, unsigned rid)
{
	struct str id = snap_item_id(s, q);
	char want[32];
	if (q == f->n_items - 1)
		snprintf(want, sizeof(want), "%s", f->own_id);
	else
		snprintf(want, sizeof(want), "it%u", q);
	if (id.len != strlen(want) || memcmp(id.p, want, id.len) || snap_item_find(s, want, strlen(want)) != q)
		fail("reader %u: %s: item %u: id '%.*s' / lookup of '%s' disagree", rid, f->model, q, (int)id.len,
		     id.p, want);
	const struct snap_neighbor *row = snap_item_neighbors(s, q);
	const float *qv = snap_item_vec(s, q);
	for (uint32_t t = 0; t < s->neighbors_k; t++) {
		uint32_t it = row[t].item;
		if (it == SNAP_EMPTY_SLOT)
			continue;
		if (it >= s->n_items || it == q) {
			fail("reader %u: %s: item %u: neighbour %u is item %u", rid, f->model, q, t, it);
			continue;
		}
		float exact = rec_dot(qv, snap_item_vec(s, it), s->stride);
		if (fabsf(row[t].score - exact) > 1e-3f * (1.0f + fabsf(exact)))
			fail("reader %u: %s: item %u: neighbour %u score %g, exact %g", rid, f->model, q, it,
			     (double)row[t].score, (double)exact);
	}
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	ck_epoch_record_t *rec = &reader_recs[r->id];
	ck_epoch_register(&srv.epoch, rec, NULL);
	struct rec_scratch *sc = rec_scratch_new(TOP_K);
	if (!sc) {
		fail("reader %u: rec_scratch_new: out of memory", r->id);
		ck_epoch_unregister(rec);
		return NULL;
	}
	uint64_t rng = 0x2545F4914F6CDD1Dull + r->id * 0x100000001B3ull;
	uint64_t last_gen = 0;
	struct rec_item out[TOP_K];
	while (!ck_pr_load_int(&stop) && now_ns() < reader_deadline_ns) {
		ck_epoch_begin(rec, NULL);
		const struct snap *s = srv_snapshot(&srv);   /* once per section */
		HB_ACQUIRE(s);
		int k = check_snapshot(s, r->id);
		if (k >= 0) {
			const struct file_spec *f = &files[k];
			uint64_t g = snap_gen(s);
			if (g < last_gen)
				fail("reader %u: generation went back from %llu to %llu", r->id,
				     (unsigned long long)last_gen, (unsigned long long)g);
			last_gen = g;
			for (int i = 0; i < QUERIES_PER_SECTION; i++) {
				uint32_t q = (uint32_t)(xorshift(&rng) % s->n_items);
				bool filtered = i & 1;
				uint32_t nprobe = (i & 2) ? 4 : 0;
				uint32_t n = rec_topk_keep(s, snap_item_vec(s, q), TOP_K, q, nprobe, sc,
							   filtered ? keep_not_mult3 : NULL, NULL, out);
				check_query(s, f, q, filtered, out, n, r->id);
				check_item(s, f, q, r->id);
				r->queries++;
				r->results += n;
			}
			/* Still whole at the end of the section, and was it replaced meanwhile? */
			if (snap_gen(s) != g || memcmp(s->hdr->magic, SNAP_MAGIC, SNAP_MAGIC_LEN))
				fail("reader %u: generation %llu changed under the reader", r->id, (unsigned long long)g);
			if (ck_pr_load_64(&srv.snapshot_generation) > g)
				r->overlapped++;
		}
		HB_RELEASE(&epoch_hb);
		ck_epoch_end(rec, NULL);
		r->sections++;
		ck_pr_store_64(&r->reads_published, r->sections);
	}
	r->max_gen_seen = last_gen;
	rec_scratch_free(sc);
	ck_epoch_unregister(rec);
	return NULL;
}

/* ------------------------------------------------------------- writer */

static void retire_cb(ck_epoch_entry_t *e)
{
	struct retired *r = (struct retired *)e;
	struct snap *s = r->snap;
	HB_ACQUIRE(&epoch_hb);
	/* Poison the struct, keeping only what snap_close needs to unmap. */
	const uint8_t *base = s->base;
	size_t size = s->size;
	bool mapped = s->mapped;
	memset(s, POISON, sizeof(*s));
	s->base = base;
	s->size = size;
	s->mapped = mapped;
	snap_close(s);
	free(r);
	freed++;
}

static uint64_t total_sections(unsigned n_readers)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < n_readers; i++)
		t += ck_pr_load_64(&readers[i].reads_published);
	return t;
}

static int publish_file(unsigned k, char *err, size_t errlen)
{
	struct snap *s;
	if (snap_open(files[k].path, &s, err, errlen))
		return -1;
	snap_warm(s);
	uint64_t g = srv.snapshot_generation + 1;
	if (g > max_gen) {
		snprintf(err, errlen, "generation %llu beyond the table", (unsigned long long)g);
		snap_close(s);
		return -1;
	}
	gen_file[g] = (uint8_t)k;
	HB_RELEASE(s);            /* everything snap_open wrote, and gen_file[g] */
	struct snap *old = srv_publish_snapshot(&srv, s);
	if (s->generation != g) {
		snprintf(err, errlen, "published generation %llu, expected %llu", (unsigned long long)s->generation,
			 (unsigned long long)g);
		return -1;
	}
	if (old) {
		struct retired *r = malloc(sizeof(*r));
		if (!r) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		r->snap = old;
		retired++;
		ck_epoch_call(&writer_rec, &r->entry, retire_cb);
	}
	return 0;
}

static long arg(int argc, char **argv, int i, long def, long lo, long hi)
{
	if (argc <= i)
		return def;
	char *end;
	long v = strtol(argv[i], &end, 10);
	if (*end || v < lo || v > hi) {
		fprintf(stderr, "usage: test_snap_swap [READERS 1..%d [SWAPS 1..%d [SECONDS 1..3600]]]\n",
			MAX_READERS, MAX_SWAPS);
		exit(1);
	}
	return v;
}

int main(int argc, char **argv)
{
	unsigned n_readers = (unsigned)arg(argc, argv, 1, 2, 1, MAX_READERS);
	long n_swaps = arg(argc, argv, 2, 200, 1, MAX_SWAPS);
	long cap_s = arg(argc, argv, 3, 10, 1, 3600);
	char err[512];
	uint64_t t0 = now_ns();

	const char *dir = getenv("TMPDIR");
	if (!dir || !dir[0])
		dir = "/tmp";
	for (unsigned k = 0; k < N_FILES; k++) {
		int rc = build_file(k, dir, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "test_snap_swap: %s: %s\n", rc == 77 ? "skip" : "snapb_write", err);
			remove_files();
			return rc;
		}
	}
	uint64_t t_built = now_ns();

	max_gen = (uint64_t)n_swaps + 1;
	gen_file = malloc(max_gen + 1);
	if (!gen_file) {
		remove_files();
		return 1;
	}
	memset(gen_file, 0xFF, max_gen + 1);

	ck_epoch_init(&srv.epoch);
	ck_epoch_register(&srv.epoch, &writer_rec, NULL);
	if (publish_file(0, err, sizeof(err))) {
		fprintf(stderr, "test_snap_swap: initial snapshot: %s\n", err);
		remove_files();
		return 1;
	}

	uint64_t cap_ns = (uint64_t)cap_s * 1000000000ull;
	reader_deadline_ns = now_ns() + cap_ns + 5000000000ull;   /* a stuck writer cannot hold them */
	unsigned started = 0;
	for (; started < n_readers; started++) {
		readers[started].id = started;
		int e = pthread_create(&readers[started].thread, NULL, reader_main, &readers[started]);
		if (e) {
			fprintf(stderr, "test_snap_swap: pthread_create: %s\n", strerror(e));
			break;
		}
	}

	uint64_t t_start = now_ns();
	long swaps = 0;
	bool capped = false;
	int werr = 0;
	while (started == n_readers && swaps < n_swaps) {
		if (now_ns() - t_start >= cap_ns) {
			capped = true;
			break;
		}
		/* Mostly let the readers see each snapshot; every fourth swap
		 * follows at once, so several can be pending retirement. */
		if (swaps % 4 != 3) {
			uint64_t seen = total_sections(n_readers), w0 = now_ns();
			while (total_sections(n_readers) < seen + n_readers && now_ns() - w0 < PACE_WAIT_NS)
				sched_yield();
		}
		if (publish_file((unsigned)(swaps + 1) % N_FILES, err, sizeof(err))) {
			fprintf(stderr, "test_snap_swap: swap %ld: %s\n", swaps + 1, err);
			werr = 1;
			break;
		}
		swaps++;
		ck_epoch_poll(&writer_rec);
		if (swaps % BARRIER_EVERY == 0)
			ck_epoch_barrier(&writer_rec);
	}
	uint64_t t_swapped = now_ns();

	ck_pr_store_int(&stop, 1);
	for (unsigned i = 0; i < started; i++)
		pthread_join(readers[i].thread, NULL);
	/* No reader left: every retired snapshot can go now. */
	while (freed < retired)
		ck_epoch_barrier(&writer_rec);
	ck_epoch_unregister(&writer_rec);
	struct snap *last = srv_snapshot(&srv);
	uint64_t last_gen = last ? last->generation : 0;
	snap_close(last);
	srv.snapshot = NULL;
	free(gen_file);
	remove_files();

	uint64_t sections = 0, queries = 0, results = 0, overlapped = 0, max_seen = 0;
	for (unsigned i = 0; i < started; i++) {
		sections += readers[i].sections;
		queries += readers[i].queries;
		results += readers[i].results;
		overlapped += readers[i].overlapped;
		if (readers[i].max_gen_seen > max_seen)
			max_seen = readers[i].max_gen_seen;
	}
	printf("test_snap_swap: %u readers, %ld/%ld swaps%s in %.2f s (files built in %.2f s); %llu sections, "
	       "%llu searches, %llu results; %llu sections outlived their snapshot's replacement; retired %llu, "
	       "freed %llu; last generation %llu, highest seen %llu; %u violations\n",
	       started, swaps, n_swaps, capped ? " (time cap)" : "", (double)(t_swapped - t_start) / 1e9,
	       (double)(t_built - t0) / 1e9, (unsigned long long)sections, (unsigned long long)queries,
	       (unsigned long long)results, (unsigned long long)overlapped, (unsigned long long)retired,
	       (unsigned long long)freed, (unsigned long long)last_gen, (unsigned long long)max_seen, bad);

	if (started < n_readers) {
		fprintf(stderr, "test_snap_swap: skip: started %u of %u readers\n", started, n_readers);
		return 77;
	}
	int failed = werr || bad;
	if (freed != retired || retired != (uint64_t)swaps || last_gen != (uint64_t)swaps + 1) {
		fprintf(stderr, "test_snap_swap: bookkeeping: %llu retired, %llu freed, %ld swaps, last generation %llu\n",
			(unsigned long long)retired, (unsigned long long)freed, swaps, (unsigned long long)last_gen);
		failed = 1;
	}
	if (sections == 0 || queries == 0) {
		fprintf(stderr, "test_snap_swap: the readers never read\n");
		failed = 1;
	}
	if (!capped && swaps != n_swaps)
		failed = 1;
	return failed ? 1 : 0;
}
