/* test_ann.c: the IVF index against exact search on small clustered sets
 * (both quantisers), filtered search, the kernels against their portable
 * twins, neighbours and category popularity from a hand-made interaction
 * log, rec's use of all of it, and build determinism. Snapshots are
 * written by the real builder and read by the real loader. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ann/ann.h"
#include "core/simd.h"
#include "rec/rec.h"
#include "snap/snap.h"
#include "snap/snapb.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

#define N_ITEMS 4000
#define N_USERS 60
#define DIM 24        /* not a multiple of 16 or 32: exercises the padding */
#define N_CLUSTERS 40
#define NLIST 64
#define K 10

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float frand(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

static struct snapb_item items[N_ITEMS];
static char ids[N_ITEMS][16], uids[N_USERS][16];
static const char *uid_ptrs[N_USERS];
static float item_emb[N_ITEMS * DIM], user_emb[N_USERS * DIM], pop[N_ITEMS];
static float centers[N_CLUSTERS][DIM];
static uint32_t cluster_of[N_ITEMS], user_clusters[N_USERS][2];
static const char *const cats[4] = { "c0", "c1", "c2", "c3" };

static bool servable_ref(uint32_t i)
{
	return items[i].available && items[i].stock > 0;
}

static void make_data(void)
{
	for (int c = 0; c < N_CLUSTERS; c++)
		for (int d = 0; d < DIM; d++)
			centers[c][d] = frand();
	for (uint32_t i = 0; i < N_ITEMS; i++) {
		snprintf(ids[i], sizeof(ids[i]), "it%u", i);
		cluster_of[i] = (uint32_t)((frand() + 1.0f) * 0.5f * N_CLUSTERS) % N_CLUSTERS;
		items[i] = (struct snapb_item){ ids[i], "", cats[i % 4], 1.0f, i % 13 ? 3u : 0u, i % 17 != 0 };
		for (int d = 0; d < DIM; d++)
			item_emb[i * DIM + d] = centers[cluster_of[i]][d] + 0.35f * frand();
		pop[i] = (float)(i % 100);
	}
	for (uint32_t u = 0; u < N_USERS; u++) {
		snprintf(uids[u], sizeof(uids[u]), "u%u", u);
		uid_ptrs[u] = uids[u];
		uint32_t a = u % N_CLUSTERS, b = (u * 7 + 3) % N_CLUSTERS;
		user_clusters[u][0] = a, user_clusters[u][1] = b;
		for (int d = 0; d < DIM; d++)
			user_emb[u * DIM + d] = 0.7f * centers[a][d] + 0.4f * centers[b][d] + 0.2f * frand();
	}
}

static struct snapb_input input(uint32_t quant, uint32_t neighbors_k)
{
	struct snapb_input in = {
		.model_version = "test-ann", .build_time = 1700000000, .dim = DIM, .n_items = N_ITEMS,
		.items = items, .item_emb = item_emb, .n_users = N_USERS, .user_ids = uid_ptrs,
		.user_emb = user_emb, .item_popularity = pop, .popular_k = 50,
		.ann_enabled = true, .ann = { .nlist = NLIST, .seed = 11, .quant = quant },
		.neighbors_k = neighbors_k,
	};
	return in;
}

static struct snap *build_open(const struct snapb_input *in, char *path_out)
{
	char path[] = "/tmp/recd-test-ann-XXXXXX", err[256];
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	int rc = snapb_write(in, path, err, sizeof(err));
	CHECK(rc == 0);
	if (rc)
		fprintf(stderr, "snapb_write: %s\n", err);
	struct snap *s = NULL;
	if (!rc && snap_open(path, &s, err, sizeof(err)))
		fprintf(stderr, "snap_open: %s\n", err);
	if (path_out)
		strcpy(path_out, path);
	else
		unlink(path);
	return s;
}

static bool in_set(const struct rec_item *v, uint32_t n, uint32_t item)
{
	for (uint32_t i = 0; i < n; i++)
		if (v[i].item == item)
			return true;
	return false;
}

/* Results: count, servable, unique, sorted best first, exact scores. */
static void check_results(const struct snap *s, const float *q, const struct rec_item *r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		CHECK(r[i].item < N_ITEMS && servable_ref(r[i].item));
		CHECK(fabsf(r[i].score - rec_dot(q, snap_item_vec(s, r[i].item), s->stride)) < 1e-5f);
		CHECK(!in_set(r, i, r[i].item));
		if (i)
			CHECK(r[i - 1].score > r[i].score || (r[i - 1].score == r[i].score && r[i - 1].item < r[i].item));
	}
}

static double recall_at(const struct snap *s, struct rec_scratch *sc, uint32_t nprobe, bool *all_full)
{
	struct rec_item exact[K], got[K];
	double hits = 0;
	*all_full = true;
	for (uint32_t u = 0; u < N_USERS; u++) {
		const float *q = snap_user_vec(s, u);
		uint32_t ne = rec_topk_exact(s, q, K, -1, exact);
		uint32_t na = rec_topk_ann(s, q, K, -1, nprobe, sc, got);
		*all_full &= ne == K && na == K;
		check_results(s, q, got, na);
		for (uint32_t i = 0; i < na; i++)
			hits += in_set(exact, ne, got[i].item);
	}
	return hits / (N_USERS * K);
}

struct filt {
	const uint32_t *cluster;
	uint32_t drop_a, drop_b;   /* clusters removed */
	uint32_t modulo, rest;     /* keep item % modulo == rest (modulo 0: off) */
	uint32_t calls;
};

static bool keep_fn(void *ctx, uint32_t item)
{
	struct filt *f = ctx;
	f->calls++;
	if (f->modulo)
		return item % f->modulo == f->rest;
	return f->cluster[item] != f->drop_a && f->cluster[item] != f->drop_b;
}

static void test_filtered(const struct snap *s, struct rec_scratch *sc)
{
	struct topk_item out[K];
	struct ann_scratch *as = rec_scratch_ann(sc);
	for (uint32_t u = 0; u < N_USERS; u += 7) {
		const float *q = snap_user_vec(s, u);
		/* The user's two clusters are where the best lists are: remove them. */
		struct filt f = { cluster_of, user_clusters[u][0], user_clusters[u][1], 0, 0, 0 };
		struct ann_query aq = { .vec = q, .k = K, .nprobe = 2, .exclude = -1, .keep = keep_fn, .ctx = &f };
		uint32_t n = ann_search(s, &aq, as, out);
		CHECK(n == K);
		for (uint32_t i = 0; i < n; i++) {
			CHECK(keep_fn(&f, out[i].item) && servable_ref(out[i].item));
			if (i)
				CHECK(topk_better(out[i - 1], out[i]));
		}
		/* A sparse filter: about 1 item in 97 passes. */
		struct filt g = { cluster_of, 0, 0, 97, 5, 0 };
		aq.keep = keep_fn, aq.ctx = &g, aq.nprobe = 1;
		n = ann_search(s, &aq, as, out);
		CHECK(n == K);
		CHECK(ann_scratch_stats(as)->widened > 0);
		for (uint32_t i = 0; i < n; i++)
			CHECK(out[i].item % 97 == 5 && servable_ref(out[i].item));
		/* Fewer valid items than k: every list is scanned, all returned. */
		uint32_t valid = 0;
		for (uint32_t i = 0; i < N_ITEMS; i++)
			valid += i % 1009 == 7 && servable_ref(i);
		struct filt h = { cluster_of, 0, 0, 1009, 7, 0 };
		aq.ctx = &h;
		n = ann_search(s, &aq, as, out);
		CHECK(n == valid && valid < K);
		CHECK(ann_scratch_stats(as)->lists == NLIST);
		for (uint32_t i = 0; i < n; i++)
			CHECK(out[i].item % 1009 == 7);
		/* exclude: the best exact item never comes back. */
		struct rec_item ex[1];
		CHECK(rec_topk_exact(s, q, 1, -1, ex) == 1);
		struct ann_query ae = { .vec = q, .k = K, .nprobe = NLIST, .exclude = ex[0].item };
		n = ann_search(s, &ae, as, out);
		CHECK(n == K);
		for (uint32_t i = 0; i < n; i++)
			CHECK(out[i].item != ex[0].item);
	}
}

static void test_kernels(void)
{
	const struct simd_ops *a = simd_get(), *p = simd_portable();
	static int8_t q[64] __attribute__((aligned(64))), codes[7 * 64] __attribute__((aligned(64)));
	int32_t ra[7], rp[7];
	for (int i = 0; i < 64; i++)
		q[i] = (int8_t)(frand() * 127.0f);
	for (int i = 0; i < 7 * 64; i++)
		codes[i] = (int8_t)(frand() * 127.0f);
	codes[5] = -128;    /* never written, but must not overflow either */
	a->dot_i8_rows(q, codes, 64, 7, ra);
	p->dot_i8_rows(q, codes, 64, 7, rp);
	for (int r = 0; r < 7; r++) {
		int32_t ref = 0;
		for (int j = 0; j < 64; j++)
			ref += q[j] * codes[r * 64 + j];
		CHECK(ra[r] == ref && rp[r] == ref);
	}
	static float qf[DIM], blocks[5 * DIM * 8], oa[40], op[40];
	for (int d = 0; d < DIM; d++)
		qf[d] = frand();
	for (int i = 0; i < 5 * DIM * 8; i++)
		blocks[i] = frand();
	a->score_blocks8(qf, blocks, DIM, 5, oa);
	p->score_blocks8(qf, blocks, DIM, 5, op);
	for (int l = 0; l < 40; l++) {
		double ref = 0;
		for (int d = 0; d < DIM; d++)
			ref += (double)qf[d] * blocks[((l / 8) * DIM + d) * 8 + l % 8];
		CHECK(fabs(oa[l] - ref) < 1e-4 && fabs(op[l] - ref) < 1e-4);
	}
}

/* Items 0..5 in two categories; users touch them in a known order. */
static void test_neighbors_log(void)
{
	static struct snapb_item it[6] = {
		{ "a", "", "x", 1, 1, true }, { "b", "", "x", 1, 1, true }, { "c", "", "y", 1, 1, true },
		{ "d", "", "y", 1, 0, true }, { "e", "", "x", 1, 1, true }, { "f", "", "y", 1, 1, true },
	};
	static float emb[6 * 3] = { 1, 0, 0, 0.9f, 0.1f, 0, 0, 1, 0, 0, 0.9f, 0.1f, 0.5f, 0.5f, 0, 0, 0, 1 };
	static float p[6] = { 1, 5, 3, 9, 5, 2 };
	static const struct snapb_event ev[] = {
		{ 10, 0, 0 }, { 10, 1000, 2 }, { 10, 2000, 5 },      /* a c f */
		{ 11, 0, 2 }, { 11, 500, 5 },                        /* c f */
		{ 12, 0, 5 }, { 12, 10, 2 }, { 12, 20, 5 },          /* f c f: f-c twice */
		{ 13, 0, 0 }, { 13, 7200000, 1 },                    /* a ... b, two hours apart */
	};
	struct snapb_input in = {
		.dim = 3, .n_items = 6, .items = it, .item_emb = emb, .item_popularity = p,
		.neighbors_k = 3, .events = ev, .n_events = ARRAY_SIZE(ev), .build_time = 1,
	};
	struct snap *s = build_open(&in, NULL);
	if (!s)
		return;
	CHECK(s->ann.nlist == 0 && s->neighbors_k == 3);
	/* f: c four times (users 10, 11, 12 twice), a once; then by embedding. */
	const struct snap_neighbor *r = snap_item_neighbors(s, 5);
	CHECK(r[0].item == 2 && r[1].item == 0);
	CHECK(r[2].item != 5 && r[2].item != 2 && r[2].item != 0 && r[2].item != SNAP_EMPTY_SLOT);
	CHECK(fabsf(r[0].score - (0 * 0 + 1 * 0 + 0 * 1)) < 1e-6f);
	/* a: c and f once each (tie: index order); b is outside the window. */
	r = snap_item_neighbors(s, 0);
	CHECK(r[0].item == 2 && r[1].item == 5);
	/* b has no co-visits: pure embedding neighbours, a (0.9) first. */
	r = snap_item_neighbors(s, 1);
	CHECK(r[0].item == 0 && r[1].item == 4);

	/* Category popularity: x = {a, b, e}, y = {c, d, f}; d out of stock. */
	struct rec_item out[6];
	uint32_t n = rec_popular_category(s, 0, 6, -1, out);
	CHECK(n == 3 && out[0].item == 1 && out[1].item == 4 && out[2].item == 0);
	n = rec_popular_category(s, 1, 6, 2, out);
	CHECK(n == 1 && out[0].item == 5);
	CHECK(rec_popular_category(s, 2, 6, -1, out) == 0);

	/* rec "similar": the neighbour row first, then the rest by embedding. */
	struct rec_scratch *sc = rec_scratch_new(6);
	enum rec_strategy st;
	struct rec_query q = { s, -1, 5, 4, 0 };
	n = rec_recommend(&q, sc, out, &st);
	CHECK(st == REC_SIMILAR && n == 4);
	CHECK(out[0].item == 2 && out[1].item == 0);
	for (uint32_t i = 0; i < n; i++) {
		CHECK(out[i].item != 5 && out[i].item != 3);   /* itself; out of stock */
		CHECK(!in_set(out, i, out[i].item));
	}
	rec_scratch_free(sc);
	snap_close(s);
}

static bool same_file(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	bool same = fa && fb;
	while (same) {
		int x = fgetc(fa), y = fgetc(fb);
		same = x == y;
		if (x == EOF || y == EOF)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

int main(void)
{
	make_data();
	test_kernels();
	struct rec_scratch *sc = rec_scratch_new(64);
	CHECK(sc != NULL);

	static const uint32_t quants[] = { SNAP_ANN_QUANT_DIM, SNAP_ANN_QUANT_VECTOR };
	for (size_t qi = 0; qi < ARRAY_SIZE(quants) && sc; qi++) {
		struct snapb_input in = input(quants[qi], 0);
		struct snap *s = build_open(&in, NULL);
		if (!s)
			continue;
		CHECK(s->ann.nlist == NLIST && s->ann.quant == quants[qi]);
		bool full;
		double r = recall_at(s, sc, 3, &full);
		printf("quantiser %u: recall@%d %.3f at nprobe 3 of %d\n", quants[qi], K, r, NLIST);
		CHECK(full);
		CHECK(r >= 0.95);
		r = recall_at(s, sc, NLIST, &full);
		CHECK(full);
		CHECK(r == 1.0);
		test_filtered(s, sc);

		/* rec_recommend uses the index when given a scratch. */
		struct rec_item a[K], b[K];
		enum rec_strategy st;
		struct rec_query q = { s, 3, -1, K, NLIST };
		uint32_t na = rec_recommend(&q, sc, a, &st);
		CHECK(st == REC_PERSONALIZED && na == K);
		uint32_t nb = rec_topk_exact(s, snap_user_vec(s, 3), K, -1, b);
		CHECK(nb == K);
		for (uint32_t i = 0; i < K && na == K && nb == K; i++)
			CHECK(a[i].item == b[i].item);
		snap_close(s);
	}

	/* Similar via neighbours (embedding only: no events) on the big set. */
	{
		struct snapb_input in = input(SNAP_ANN_QUANT_DIM, 5);
		struct snap *s = build_open(&in, NULL);
		if (s && sc) {
			CHECK(s->neighbors_k == 5);
			struct rec_item out[20];
			enum rec_strategy st;
			struct rec_query q = { s, -1, 42, 20, 8 };
			uint32_t n = rec_recommend(&q, sc, out, &st);
			CHECK(st == REC_SIMILAR && n == 20);
			const struct snap_neighbor *row = snap_item_neighbors(s, 42);
			uint32_t j = 0;
			for (uint32_t t = 0; t < 5; t++) {
				CHECK(row[t].item != 42 && row[t].item != SNAP_EMPTY_SLOT);
				if (servable_ref(row[t].item))
					CHECK(out[j++].item == row[t].item);
			}
			/* Embedding neighbours agree with the exact scan at full probe. */
			struct rec_item ex[6];
			uint32_t ne = rec_topk_exact(s, snap_item_vec(s, 42), 6, 42, ex);
			CHECK(ne == 6);
			uint32_t found = 0;
			for (uint32_t t = 0; t < 5; t++)
				found += in_set(ex, ne, row[t].item) || !servable_ref(row[t].item);
			CHECK(found >= 4);
			for (uint32_t i = 0; i < n; i++) {
				CHECK(out[i].item != 42 && servable_ref(out[i].item));
				CHECK(!in_set(out, i, out[i].item));
			}
		}
		snap_close(s);
	}

	/* Deterministic: the same input gives the same bytes. */
	{
		char p1[64], p2[64];
		struct snapb_input in = input(SNAP_ANN_QUANT_DIM, 4);
		struct snap *s1 = build_open(&in, p1), *s2 = build_open(&in, p2);
		CHECK(s1 && s2);
		CHECK(same_file(p1, p2));
		snap_close(s1);
		snap_close(s2);
		unlink(p1);
		unlink(p2);
	}

	test_neighbors_log();
	rec_scratch_free(sc);
	if (failures)
		fprintf(stderr, "test_ann: %d failures\n", failures);
	else
		printf("test_ann: all checks passed\n");
	return failures ? 1 : 0;
}
