/* test_eval_metrics.c: recd-eval's ranking metrics (tools/eval_metrics.c)
 * on hand-made cases whose HR, NDCG, AP and recall are worked out here. */
#include <math.h>
#include <stdio.h>
#include "eval_metrics.h"

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		failures++; \
	} \
} while (0)
#define NEAR(a, b) CHECK(fabs((a) - (b)) < 1e-9)

static const double L3 = 0.63092975357145743710;   /* 1 / log2(3) */

static void test_score(void)
{
	struct qm_scores s;

	/* One of two relevant items, at rank 2; the list is shorter than k. */
	uint32_t l1[] = { 5, 3, 9, 1 }, r1[] = { 3, 7 };
	qm_score(l1, 4, r1, 2, 2, 10, &s);
	NEAR(s.hr, 1);
	NEAR(s.ndcg, L3 / (1 + L3));
	NEAR(s.ap, 0.5 / 2);
	NEAR(s.recall, 0.5);

	/* k = 3 cuts the list; 5 relevant (one unknown to the catalogue), so
	 * the ideal has 3 hits: 1 + 1/log2(3) + 1/2. Hits at ranks 1 and 3:
	 * AP = (1/1 + 2/3) / 3. Item 5 at rank 5 is beyond k. */
	uint32_t l2[] = { 1, 2, 3, 4, 5 }, r2[] = { 1, 3, 5, 8 };
	qm_score(l2, 5, r2, 4, 5, 3, &s);
	NEAR(s.hr, 1);
	NEAR(s.ndcg, (1 + 0.5) / (1 + L3 + 0.5));
	NEAR(s.ap, (1.0 + 2.0 / 3.0) / 3.0);
	NEAR(s.recall, 2.0 / 5.0);

	/* A miss. */
	uint32_t l3[] = { 4, 6 }, r3[] = { 5 };
	qm_score(l3, 2, r3, 1, 1, 10, &s);
	NEAR(s.hr, 0);
	NEAR(s.ndcg, 0);
	NEAR(s.ap, 0);
	NEAR(s.recall, 0);

	/* A repeated item is one hit, not two. */
	uint32_t l4[] = { 3, 3 }, r4[] = { 3 };
	qm_score(l4, 2, r4, 1, 1, 2, &s);
	NEAR(s.hr, 1);
	NEAR(s.ndcg, 1);
	NEAR(s.ap, 1);
	NEAR(s.recall, 1);

	/* Nothing relevant: zeros, no division by zero. */
	qm_score(l4, 2, r4, 0, 0, 2, &s);
	NEAR(s.hr + s.ndcg + s.ap + s.recall, 0);
	/* Only items the catalogue does not know: they cannot be hit. */
	qm_score(l1, 4, r1, 0, 2, 10, &s);
	NEAR(s.hr + s.ndcg + s.ap + s.recall, 0);
	/* Every hit, in order: 1 everywhere. */
	uint32_t l5[] = { 2, 4, 6 }, r5[] = { 2, 4, 6 };
	qm_score(l5, 3, r5, 3, 3, 10, &s);
	NEAR(s.hr, 1);
	NEAR(s.ndcg, 1);
	NEAR(s.ap, 1);
	NEAR(s.recall, 1);
	/* The same hits reversed in a longer relevant set: AP and NDCG drop. */
	uint32_t l6[] = { 9, 2, 4 }, r6[] = { 2, 4, 6 };
	qm_score(l6, 3, r6, 3, 3, 3, &s);
	NEAR(s.ndcg, (L3 + 0.5) / (1 + L3 + 0.5));
	NEAR(s.ap, (0.5 + 2.0 / 3.0) / 3.0);
	NEAR(s.recall, 2.0 / 3.0);
}

static void test_topk(void)
{
	double sc[] = { 0.5, 0.9, 0.5, 0.1, 0.9, -INFINITY, 0.7 };
	uint8_t skip[] = { 0, 0, 0, 0, 1, 0, 0 };
	uint32_t out[8];
	/* 0.9 (index 1; index 4 skipped), 0.7, then the 0.5 tie by index. */
	CHECK(qm_topk(sc, 7, skip, 4, out) == 4);
	CHECK(out[0] == 1 && out[1] == 6 && out[2] == 0 && out[3] == 2);
	/* No skip list; more asked for than there are (-inf never counts). */
	CHECK(qm_topk(sc, 7, NULL, 10, out) == 6);
	CHECK(out[0] == 1 && out[1] == 4 && out[2] == 6 && out[3] == 0 && out[4] == 2 && out[5] == 3);
	CHECK(qm_topk(sc, 7, NULL, 1, out) == 1 && out[0] == 1);
	CHECK(qm_topk(sc, 7, NULL, 0, out) == 0);
	/* A larger case against a full sort by (score desc, index asc). */
	enum { N = 1000, K = 37 };
	static double big[N];
	uint64_t x = 1;
	for (int i = 0; i < N; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		big[i] = (double)(x >> 54);   /* 0..1023: many ties */
	}
	uint32_t top[K];
	CHECK(qm_topk(big, N, NULL, K, top) == K);
	for (int r = 0; r < K; r++) {
		int better = 0;
		for (int i = 0; i < N; i++)
			better += big[i] > big[top[r]] || (big[i] == big[top[r]] && (uint32_t)i < top[r]);
		CHECK(better == r);
	}
}

static void test_distinct(void)
{
	uint32_t c[] = { 1, 2, 1, 3, 2 };
	CHECK(qm_distinct(c, 5) == 3);
	CHECK(qm_distinct(c, 1) == 1);
	CHECK(qm_distinct(c, 0) == 0);
}

int main(void)
{
	test_score();
	test_topk();
	test_distinct();
	if (failures) {
		fprintf(stderr, "test_eval_metrics: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_eval_metrics: ok\n");
	return 0;
}
