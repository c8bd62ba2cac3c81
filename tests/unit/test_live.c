/* test_live.c: event validation, live state semantics, and one writer
 * racing lock-free readers (run under ASan/TSan, a reader touching a
 * freed record is caught). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "events/event.h"
#include "live/live.h"
#include "snap/snapb.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

/* Parse one event from text; returns 0 or -EINVAL with err. */
static int parse(const char *text, struct event *ev, char *err, size_t errlen)
{
	static struct json_tok toks[256];
	struct json_err jerr;
	int n = json_parse(text, strlen(text), toks, 256, &jerr);
	if (n < 0) {
		snprintf(err, errlen, "json");
		return -1;
	}
	return event_from_json(text, toks, 0, 1000, ev, err, errlen);
}

static void expect_error(const char *text, const char *msg)
{
	struct event ev;
	char err[200] = "";
	int r = parse(text, &ev, err, sizeof(err));
	if (r == 0 || !strstr(err, msg)) {
		fprintf(stderr, "%s: got r=%d err='%s', want '%s'\n", text, r, err, msg);
		failures++;
	}
}

static void test_validation(void)
{
	struct event ev;
	char err[200];
	CHECK(parse("{\"type\":\"view\",\"user_id\":\"u1\",\"item_id\":\"i9\",\"ts\":1234}", &ev, err, sizeof(err)) == 0);
	CHECK(ev.type == EVENT_VIEW && ev.ts_ms == 1234);
	CHECK(ev.user_key == event_key("u1", 2) && ev.item_key == event_key("i9", 2));
	CHECK(!strcmp(ev.user_id, "u1") && ev.user_len == 2);
	CHECK(parse("{\"type\":\"view\",\"user_id\":\"u1\",\"item_id\":\"i9\"}", &ev, err, sizeof(err)) == 0);
	CHECK(ev.ts_ms == 1000);   /* defaults to now */
	CHECK(parse("{\"type\":\"item_update\",\"item_id\":\"i9\",\"stock\":0,\"available\":false,\"price\":9.5}",
		    &ev, err, sizeof(err)) == 0);
	CHECK(ev.stock == 0 && ev.available == 0 && ev.price == 9.5f);
	CHECK((ev.flags & (EVENT_HAS_STOCK | EVENT_HAS_AVAILABLE | EVENT_HAS_PRICE)) ==
	      (EVENT_HAS_STOCK | EVENT_HAS_AVAILABLE | EVENT_HAS_PRICE));
	CHECK(parse("{\"type\":\"view\",\"user_id\":\"u\",\"item_id\":\"i\",\"personalize\":false}", &ev, err,
		    sizeof(err)) == 0);
	CHECK(ev.flags & EVENT_NO_PERSONALIZE);
	CHECK(parse("{\"type\":\"impression\",\"user_id\":\"u\",\"request_id\":\"r1\",\"item_ids\":[\"a\",\"b\"]}",
		    &ev, err, sizeof(err)) == 0);

	expect_error("[1]", "must be a JSON object");
	expect_error("{\"user_id\":\"u\",\"item_id\":\"i\"}", "missing field 'type'");
	expect_error("{\"type\":\"like\",\"user_id\":\"u\",\"item_id\":\"i\"}", "unknown type 'like'");
	expect_error("{\"type\":\"forget_user\",\"user_id\":\"u\"}", "unknown type 'forget_user'");
	expect_error("{\"type\":7,\"user_id\":\"u\",\"item_id\":\"i\"}", "type must be a string");
	expect_error("{\"type\":\"view\",\"item_id\":\"i\"}", "missing field 'user_id'");
	expect_error("{\"type\":\"view\",\"user_id\":\"u\"}", "missing field 'item_id'");
	expect_error("{\"type\":\"view\",\"user_id\":5,\"item_id\":\"i\"}", "user_id must be a string");
	expect_error("{\"type\":\"view\",\"user_id\":\"\",\"item_id\":\"i\"}", "user_id must not be empty");
	expect_error("{\"type\":\"view\",\"user_id\":\"u\",\"item_id\":\"i\",\"colour\":1}", "unknown field 'colour'");
	expect_error("{\"type\":\"view\",\"user_id\":\"u\",\"item_id\":\"i\",\"ts\":-5}", "ts must be a positive integer");
	expect_error("{\"type\":\"rating\",\"user_id\":\"u\",\"item_id\":\"i\"}", "rating needs value");
	expect_error("{\"type\":\"impression\",\"user_id\":\"u\"}", "impression needs request_id");
	expect_error("{\"type\":\"item_update\",\"item_id\":\"i\"}", "needs at least one of");
	expect_error("{\"type\":\"item_update\",\"item_id\":\"i\",\"stock\":-1}", "stock must be an integer");
	expect_error("{\"type\":\"item_update\",\"item_id\":\"i\",\"available\":1}", "available must be true or false");
	expect_error("{\"type\":\"view\",\"user_id\":\"u\",\"item_id\":\"i\",\"stock\":3}", "belong to item_update");
	expect_error("{\"type\":\"click\",\"user_id\":\"u\",\"item_id\":\"i\",\"price\":3}", "a purchase may carry price");
	expect_error("{\"type\":\"purchase\",\"user_id\":\"u\",\"item_id\":\"i\",\"stock\":3}", "belong to item_update");
	char big[400];
	int n = snprintf(big, sizeof(big), "{\"type\":\"view\",\"item_id\":\"i\",\"user_id\":\"");
	memset(big + n, 'x', 130);
	strcpy(big + n + 130, "\"}");
	expect_error(big, "user_id longer than 127 bytes");
}

static struct event mk(uint8_t type, const char *user, const char *item, uint64_t ts)
{
	struct event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.ts_ms = ts;
	if (user) {
		ev.flags |= EVENT_HAS_USER;
		ev.user_key = event_key(user, strlen(user));
	}
	if (item) {
		ev.flags |= EVENT_HAS_ITEM;
		ev.item_key = event_key(item, strlen(item));
	}
	return ev;
}

static uint64_t K(const char *id)
{
	return event_key(id, strlen(id));
}

static ck_epoch_t epoch;

static void test_semantics(const struct snap *s)
{
	static ck_epoch_record_t wrec;
	ck_epoch_register(&epoch, &wrec, NULL);
	struct live lv;
	CHECK(live_init(&lv, s->dim, 1000, &wrec) == 0);

	CHECK(live_user_get(&lv, K("alice")) == NULL);
	struct event e = mk(EVENT_VIEW, "alice", "it-1", 1000);
	CHECK(live_apply(&lv, &e, s) == 0);
	const struct live_user *u = live_user_get(&lv, K("alice"));
	CHECK(u && u->n_interactions == 1 && u->n_recent == 1 && u->recent[0].item_key == K("it-1"));
	/* session vector = the one item's vector */
	const float *v1 = snap_item_vec(s, 1);
	CHECK(u->session_weight == 1.0f);
	for (uint32_t d = 0; d < s->dim; d++)
		CHECK(fabsf(u->session[d] - v1[d]) < 1e-6f);

	e = mk(EVENT_ADD_TO_CART, "alice", "it-2", 1001);
	live_apply(&lv, &e, s);
	e = mk(EVENT_ADD_TO_CART, "alice", "it-3", 1002);
	live_apply(&lv, &e, s);
	e = mk(EVENT_REMOVE_FROM_CART, "alice", "it-2", 1003);
	live_apply(&lv, &e, s);
	u = live_user_get(&lv, K("alice"));
	CHECK(u->n_cart == 1 && live_user_in_cart(u, K("it-3")) && !live_user_in_cart(u, K("it-2")));
	CHECK(u->n_interactions == 4);
	CHECK(u->recent[0].item_key == K("it-3") && u->recent[1].item_key == K("it-2"));  /* newest first */

	e = mk(EVENT_PURCHASE, "alice", "it-3", 1004);
	live_apply(&lv, &e, s);
	u = live_user_get(&lv, K("alice"));
	CHECK(live_user_purchased(u, K("it-3")) && !live_user_purchased(u, K("it-1")));
	CHECK(u->n_cart == 0);   /* bought: out of the cart */
	/* purchases beyond the cap drop the oldest, and the set stays sorted */
	char id[32];
	for (int i = 0; i < LIVE_PURCHASED + 10; i++) {
		snprintf(id, sizeof(id), "p-%d", i);
		e = mk(EVENT_PURCHASE, "alice", id, 2000 + (uint64_t)i);
		CHECK(live_apply(&lv, &e, s) == 0);
	}
	u = live_user_get(&lv, K("alice"));
	CHECK(u->purchased->n == LIVE_PURCHASED);
	CHECK(!live_user_purchased(u, K("it-3")));          /* oldest gone */
	CHECK(!live_user_purchased(u, K("p-9")));
	CHECK(live_user_purchased(u, K("p-10")) && live_user_purchased(u, K("p-521")));
	for (uint32_t i = 1; i < u->purchased->n; i++)
		CHECK(u->purchased->keys[i - 1] < u->purchased->keys[i]);
	CHECK(u->n_recent == LIVE_RECENT);

	/* item updates */
	CHECK(!live_item_blocked(live_item_get(&lv, K("it-5"))));
	e = mk(EVENT_ITEM_UPDATE, NULL, "it-5", 3000);
	e.flags |= EVENT_HAS_STOCK;
	e.stock = 0;
	live_apply(&lv, &e, s);
	CHECK(live_item_blocked(live_item_get(&lv, K("it-5"))));
	e.stock = 4;
	live_apply(&lv, &e, s);
	const struct live_item *it = live_item_get(&lv, K("it-5"));
	CHECK(!live_item_blocked(it) && it->stock == 4 && isnan(it->price) && it->available == -1);
	e = mk(EVENT_ITEM_UPDATE, NULL, "not-in-snapshot-yet", 3001);
	e.flags |= EVENT_HAS_AVAILABLE;
	e.available = 0;
	live_apply(&lv, &e, s);
	CHECK(live_item_blocked(live_item_get(&lv, K("not-in-snapshot-yet"))));
	CHECK(lv.stats.items == 2);

	/* consent withdrawn, and forgetting */
	e = mk(EVENT_VIEW, "bob", "it-1", 4000);
	live_apply(&lv, &e, s);
	CHECK(live_user_get(&lv, K("bob")) != NULL);
	e.flags |= EVENT_NO_PERSONALIZE;
	live_apply(&lv, &e, s);
	CHECK(live_user_get(&lv, K("bob")) == NULL);
	e = mk(EVENT_FORGET_USER, "alice", NULL, 4001);
	live_apply(&lv, &e, s);
	CHECK(live_user_get(&lv, K("alice")) == NULL);
	CHECK(lv.stats.users == 0);

	/* idle eviction, then the size cap */
	for (int i = 0; i < 900; i++) {
		snprintf(id, sizeof(id), "user-%d", i);
		e = mk(EVENT_VIEW, id, "it-1", 10000 + (uint64_t)i);
		live_apply(&lv, &e, s);
	}
	CHECK(lv.stats.users == 900);
	uint64_t ev = live_evict(&lv, 10900, 500);   /* idle > 0.5 s: users 0..400 */
	CHECK(ev == 401);
	CHECK(live_user_get(&lv, K("user-400")) == NULL && live_user_get(&lv, K("user-401")) != NULL);
	for (int i = 1500; i < 2200; i++) {   /* 499 + 700 > the cap of 1000 */
		snprintf(id, sizeof(id), "user-%d", i);
		e = mk(EVENT_VIEW, id, "it-1", 20000 + (uint64_t)i);
		live_apply(&lv, &e, s);
	}
	CHECK(lv.stats.users > 1000);
	live_evict(&lv, 30000, 1000000);   /* nothing idle; over the cap of 1000 */
	CHECK(lv.stats.users <= 1000 && lv.stats.users > 800);
	CHECK(live_user_get(&lv, K("user-2199")) != NULL);   /* the newest stay */

	while (ck_epoch_poll(&wrec) && wrec.n_pending)
		;
	ck_epoch_barrier(&wrec);
	live_destroy(&lv);
	ck_epoch_unregister(&wrec);
}

/* One writer, two readers, bounded: readers check every record they see
 * is whole; ASan catches a record freed under a reader. */
struct race {
	struct live *lv;
	const struct snap *s;
	int stop;
	uint64_t reads;
	int bad;
	unsigned next_rec;
};

/* ck_epoch never unlinks a record: each must outlive every later
 * barrier, so the readers' records are static, not on their stacks. */
static ck_epoch_record_t reader_recs[2];

static void *reader(void *arg)
{
	struct race *r = arg;
	ck_epoch_record_t *rec = &reader_recs[ck_pr_faa_uint(&r->next_rec, 1) & 1];
	ck_epoch_register(&epoch, rec, NULL);
	char id[32];
	uint64_t n = 0;
	while (!ck_pr_load_int(&r->stop) && n < 50000000) {
		ck_epoch_begin(rec, NULL);
		for (int i = 0; i < 64; i++, n++) {
			snprintf(id, sizeof(id), "r-%d", (int)(n % 97));
			const struct live_user *u = live_user_get(r->lv, K(id));
			if (u && (u->key != K(id) || u->n_recent > LIVE_RECENT || u->n_cart > LIVE_CART ||
				  u->recent[0].ts_ms == 0 || (u->purchased && u->purchased->n > LIVE_PURCHASED)))
				ck_pr_store_int(&r->bad, 1);
			if (u && u->purchased)
				(void)live_user_purchased(u, u->purchased->keys[0]);
		}
		ck_epoch_end(rec, NULL);
	}
	ck_pr_add_64(&r->reads, n);
	ck_epoch_unregister(rec);
	return NULL;
}

static void test_race(const struct snap *s)
{
	static ck_epoch_record_t wrec;
	ck_epoch_register(&epoch, &wrec, NULL);
	struct live lv;
	CHECK(live_init(&lv, s->dim, 1000000, &wrec) == 0);
	struct race r = { &lv, s, 0, 0, 0, 0 };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, reader, &r);
	char user[32], item[32];
	static const uint8_t types[] = { EVENT_VIEW, EVENT_ADD_TO_CART, EVENT_PURCHASE, EVENT_REMOVE_FROM_CART,
					 EVENT_FORGET_USER };
	uint64_t t0 = now_ns();
	int i;
	for (i = 0; i < 200000 && now_ns() - t0 < 3000000000ull; i++) {
		snprintf(user, sizeof(user), "r-%d", i % 97);
		snprintf(item, sizeof(item), "it-%d", i % 50);
		uint8_t type = types[(i / 97) % 5];
		struct event e = mk(type, user, type == EVENT_FORGET_USER ? NULL : item, 1 + (uint64_t)i);
		CHECK(live_apply(&lv, &e, s) == 0);
		if (i % 256 == 0)
			ck_epoch_poll(&wrec);
	}
	ck_pr_store_int(&r.stop, 1);
	for (int k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
	CHECK(!r.bad);
	CHECK(r.reads > 0);
	fprintf(stderr, "race: %d writes, %llu reads\n", i, (unsigned long long)r.reads);
	ck_epoch_barrier(&wrec);
	live_destroy(&lv);
	ck_epoch_unregister(&wrec);
}

int main(void)
{
	test_validation();

	/* a small real snapshot for item vectors */
	enum { N = 60, DIM = 8 };
	static struct snapb_item items[N];
	static char ids[N][16];
	static float emb[N * DIM];
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "it-%d", i);
		items[i] = (struct snapb_item){ ids[i], "", "c", 1.0f, 10, true };
		for (int d = 0; d < DIM; d++)
			emb[i * DIM + d] = (float)((i * 7 + d * 3) % 11) / 11.0f;
	}
	struct snapb_input in = { .model_version = "live", .dim = DIM, .n_items = N, .items = items,
				  .item_emb = emb };
	char path[] = "/tmp/recd-test-live-XXXXXX", err[256];
	int fd = mkstemp(path);
	close(fd);
	CHECK(snapb_write(&in, path, err, sizeof(err)) == 0);
	struct snap *s;
	if (snap_open(path, &s, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	unlink(path);
	CHECK(snap_item_find_key(s, K("it-7")) == 7);
	CHECK(snap_item_find_key(s, K("nope")) == -1);

	ck_epoch_init(&epoch);
	test_semantics(s);
	test_race(s);
	snap_close(s);
	if (failures)
		fprintf(stderr, "test_live: %d failures\n", failures);
	return failures ? 1 : 0;
}
