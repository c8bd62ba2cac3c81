/* test_rec.c: the C recommendation path against a brute-force reference
 * on a small snapshot written by the real builder and read by the real
 * loader. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "rec/rec.h"
#include "snap/snap.h"
#include "snap/snapb.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

#define N_ITEMS 500
#define N_USERS 20
#define DIM 37   /* not a multiple of 16: exercises the zero padding */

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

static double ref_dot(const float *a, const float *b)
{
	double s = 0;
	for (int i = 0; i < DIM; i++)
		s += (double)a[i] * b[i];
	return s;
}

static void test_dot(void)
{
	float a[64] __attribute__((aligned(64))), b[64] __attribute__((aligned(64)));
	for (int stride = 16; stride <= 64; stride += 16) {
		double ref = 0;
		for (int i = 0; i < stride; i++) {
			a[i] = frand();
			b[i] = frand();
			ref += (double)a[i] * b[i];
		}
		CHECK(fabs(rec_dot(a, b, (uint32_t)stride) - ref) < 1e-4);
	}
}

int main(void)
{
	static struct snapb_item items[N_ITEMS];
	static char ids[N_ITEMS][16], uids[N_USERS][16];
	static const char *uid_ptrs[N_USERS];
	static float item_emb[N_ITEMS * DIM], user_emb[N_USERS * DIM], pop[N_ITEMS];
	for (int i = 0; i < N_ITEMS; i++) {
		snprintf(ids[i], sizeof(ids[i]), "item-%d", i);
		items[i] = (struct snapb_item){ ids[i], "t", i % 3 ? "a" : "b", 1.0f, (uint32_t)(i % 7 ? 5 : 0),
						i % 11 != 0 };
		for (int d = 0; d < DIM; d++)
			item_emb[i * DIM + d] = frand();
		pop[i] = (float)(i % 50);   /* many ties: order must fall back to index */
	}
	/* Two items identical to item 1: equal scores, tie broken by index. */
	memcpy(&item_emb[2 * DIM], &item_emb[1 * DIM], sizeof(float) * DIM);
	for (int u = 0; u < N_USERS; u++) {
		snprintf(uids[u], sizeof(uids[u]), "user-%d", u);
		uid_ptrs[u] = uids[u];
		for (int d = 0; d < DIM; d++)
			user_emb[u * DIM + d] = frand();
	}
	struct snapb_input in = {
		.model_version = "test-rec", .dim = DIM, .n_items = N_ITEMS, .items = items, .item_emb = item_emb,
		.n_users = N_USERS, .user_ids = uid_ptrs, .user_emb = user_emb, .item_popularity = pop,
		.popular_k = 100,
	};
	char path[] = "/tmp/recd-test-rec-XXXXXX", err[256];
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	CHECK(snapb_write(&in, path, err, sizeof(err)) == 0);
	struct snap *s;
	if (snap_open(path, &s, err, sizeof(err))) {
		fprintf(stderr, "snap_open: %s\n", err);
		unlink(path);
		return 1;
	}
	unlink(path);

	test_dot();

	struct rec_item out[128];
	for (int u = 0; u < N_USERS; u++) {
		enum rec_strategy st;
		struct rec_query q = { s, u, -1, 25 };
		uint32_t n = rec_recommend(&q, NULL, out, &st);
		CHECK(st == REC_PERSONALIZED);
		CHECK(n == 25);
		/* Reference: the 25th best exact score among servable items. */
		double best[N_ITEMS];
		int nb = 0;
		for (int i = 0; i < N_ITEMS; i++)
			if (items[i].stock > 0 && items[i].available)
				best[nb++] = ref_dot(&user_emb[u * DIM], &item_emb[i * DIM]);
		for (int a = 0; a < nb; a++)       /* partial selection sort, 25 rounds */
			for (int b = a + 1; b < nb && a < 25; b++)
				if (best[b] > best[a]) {
					double t = best[a]; best[a] = best[b]; best[b] = t;
				}
		for (uint32_t i = 0; i < n; i++) {
			uint32_t it = out[i].item;
			CHECK(items[it].stock > 0 && items[it].available);
			CHECK(fabs(out[i].score - ref_dot(&user_emb[u * DIM], &item_emb[it * DIM])) < 1e-4);
			CHECK(fabs(out[i].score - best[i]) < 1e-4);
			if (i)
				CHECK(out[i - 1].score > out[i].score ||
				      (out[i - 1].score == out[i].score && out[i - 1].item < out[i].item));
		}
	}

	/* Similar to item 1: item 2 (identical vector) first, item 1 excluded. */
	enum rec_strategy st;
	struct rec_query qs = { s, -1, 1, 10 };
	uint32_t n = rec_recommend(&qs, NULL, out, &st);
	CHECK(st == REC_SIMILAR && n == 10);
	CHECK(out[0].item == 2);
	for (uint32_t i = 0; i < n; i++)
		CHECK(out[i].item != 1);

	/* Popular: servable only, by popularity then index; n larger than the list. */
	struct rec_query qp = { s, -1, -1, 64 };
	n = rec_recommend(&qp, NULL, out, &st);
	CHECK(st == REC_POPULAR);
	CHECK(n == 64);
	for (uint32_t i = 0; i < n; i++) {
		CHECK(items[out[i].item].stock > 0 && items[out[i].item].available);
		CHECK(out[i].score == pop[out[i].item]);
		if (i)
			CHECK(out[i - 1].score > out[i].score ||
			      (out[i - 1].score == out[i].score && out[i - 1].item < out[i].item));
	}
	CHECK(out[0].score == 49.0f);
	uint32_t first = out[0].item, second = out[1].item;
	CHECK(first == 149);   /* 49 is out of stock, 99 unavailable */
	uint32_t k = rec_popular(s, 128, first, out);   /* more than n_popular (100) */
	CHECK(k > 0 && k <= s->n_popular);
	CHECK(out[0].item == second);
	for (uint32_t i = 0; i < k; i++)
		CHECK(out[i].item != first);

	snap_close(s);
	if (failures)
		fprintf(stderr, "test_rec: %d failures\n", failures);
	return failures ? 1 : 0;
}
