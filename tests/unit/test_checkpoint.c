/* test_checkpoint.c: checkpoints of live state: a write / load round trip
 * (users with touches, carts, purchases past the cap, session vectors;
 * live items; source positions), refusal of corrupt, truncated and
 * misnamed files, live_clear, the event log side (rotate, trim exactly the
 * segments below a position, replay_from skipping what a checkpoint
 * covers, a trimmed gap that is no loss), and the time of a 100k-user
 * checkpoint. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "events/evlog.h"
#include "live/checkpoint.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static ck_epoch_t epoch;
static ck_epoch_record_t wrec;

static char *tmp_dir(void)
{
	static char path[64];
	strcpy(path, "/tmp/test_ckpt.XXXXXX");
	if (!mkdtemp(path)) {
		perror("mkdtemp");
		exit(1);
	}
	return path;
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char p[512];
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static uint64_t K(const char *id)
{
	return event_key(id, strlen(id));
}

static struct event mk(uint8_t type, const char *user, const char *item, uint64_t ts)
{
	struct event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.ts_ms = ts;
	if (user) {
		ev.flags |= EVENT_HAS_USER;
		ev.user_key = K(user);
		ev.user_len = (uint8_t)strlen(user);
		memcpy(ev.user_id, user, ev.user_len);
	}
	if (item) {
		ev.flags |= EVENT_HAS_ITEM;
		ev.item_key = K(item);
		ev.item_len = (uint8_t)strlen(item);
		memcpy(ev.item_id, item, ev.item_len);
	}
	return ev;
}

#define DIM 4

static void fill(struct live *lv)
{
	char u[32], it[32];
	uint64_t ts = 1700000000000ull;
	for (int i = 0; i < 50; i++) {
		snprintf(u, sizeof(u), "user-%d", i);
		for (int j = 0; j < 5 + i; j++) {
			snprintf(it, sizeof(it), "item-%d", (i * 7 + j) % 300);
			uint8_t types[] = { EVENT_VIEW, EVENT_CLICK, EVENT_ADD_TO_CART, EVENT_PURCHASE, EVENT_REMOVE_FROM_CART };
			struct event e = mk(types[j % 5], u, it, ts++);
			CHECK(live_apply(lv, &e, NULL) == 0);
		}
	}
	/* past the purchase cap */
	for (int j = 0; j < LIVE_PURCHASED + 40; j++) {
		snprintf(it, sizeof(it), "buy-%d", j);
		struct event e = mk(EVENT_PURCHASE, "whale", it, ts++);
		CHECK(live_apply(lv, &e, NULL) == 0);
	}
	/* a session vector (no snapshot here: set through the restore path) */
	struct live_user *s = calloc(1, live_user_size(lv));
	s->key = K("sess");
	s->dim = DIM;
	s->first_seen_ms = 5;
	s->last_seen_ms = ts;
	s->n_interactions = 3;
	s->session_weight = 2.5f;
	for (int d = 0; d < DIM; d++)
		s->session[d] = 0.25f * (float)(d + 1);
	CHECK(live_restore_user(lv, s) == 0);
	for (int i = 0; i < 20; i++) {
		snprintf(it, sizeof(it), "item-%d", i);
		struct event e = mk(EVENT_ITEM_UPDATE, NULL, it, ts++);
		if (i % 2) {
			e.flags |= EVENT_HAS_STOCK;
			e.stock = i - 5;
		}
		if (i % 3) {
			e.flags |= EVENT_HAS_PRICE;
			e.price = 1.5f * (float)i;
		}
		if (i % 4 == 0) {
			e.flags |= EVENT_HAS_AVAILABLE;
			e.available = i % 8 == 0;
		}
		if (i % 5 == 0) {
			e.flags |= EVENT_HAS_BOOST;
			e.boost = 0.5f;
		}
		CHECK(live_apply(lv, &e, NULL) == 0);
	}
	ck_pr_store_64(&lv->clock_ms, ts);
}

static bool same_user(const struct live_user *a, const struct live_user *b)
{
	if (a->key != b->key || a->first_seen_ms != b->first_seen_ms || a->last_seen_ms != b->last_seen_ms ||
	    a->n_interactions != b->n_interactions || a->n_recent != b->n_recent || a->n_cart != b->n_cart ||
	    a->session_weight != b->session_weight)
		return false;
	for (uint32_t i = 0; i < a->n_recent; i++)
		if (a->recent[i].item_key != b->recent[i].item_key || a->recent[i].ts_ms != b->recent[i].ts_ms ||
		    a->recent[i].type != b->recent[i].type)
			return false;
	if (memcmp(a->cart, b->cart, a->n_cart * 8))
		return false;
	if (!a->purchased != !b->purchased)
		return false;
	if (a->purchased && (a->purchased->n != b->purchased->n ||
			     memcmp(a->purchased->keys, b->purchased->keys, 2 * (size_t)a->purchased->n * 8)))
		return false;
	if (a->session_weight > 0 && memcmp(a->session, b->session, DIM * sizeof(float)))
		return false;
	return true;
}

static bool same_item(const struct live_item *a, const struct live_item *b)
{
	return a->key == b->key && a->stock == b->stock && a->boost == b->boost && a->available == b->available &&
	       a->updated_ms == b->updated_ms && (a->price == b->price || (isnan(a->price) && isnan(b->price)));
}

static bool same_live(struct live *a, struct live *b)
{
	if (a->stats.users != b->stats.users || a->stats.items != b->stats.items || a->clock_ms != b->clock_ms)
		return false;
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	void *obj;
	while (ck_hs_next(&a->users, &it, &obj)) {
		const struct live_user *x = obj, *y = live_user_get(b, x->key);
		if (!y || !same_user(x, y))
			return false;
	}
	ck_hs_iterator_init(&it);
	while (ck_hs_next(&a->items, &it, &obj)) {
		const struct live_item *x = obj, *y = live_item_get(b, x->key);
		if (!y || !same_item(x, y))
			return false;
	}
	return true;
}

struct got_sources {
	struct upd_source_pos s[8];
	bool cur[8];
	int n;
};

static int got_source(void *ctx, const struct upd_source_pos *p, bool cur)
{
	struct got_sources *g = ctx;
	if (g->n == 8)
		return -ENOSPC;
	g->s[g->n] = *p;
	g->cur[g->n++] = cur;
	return 0;
}

static void flip_byte(const char *dir, const char *name, off_t at)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_RDWR);
	uint8_t b;
	CHECK(pread(fd, &b, 1, at) == 1);
	b ^= 0x40;
	CHECK(pwrite(fd, &b, 1, at) == 1);
	close(fd);
}

static void test_round_trip(void)
{
	char *dir = tmp_dir();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	struct live a, b;
	CHECK(live_init(&a, DIM, 100000, &wrec) == 0);
	CHECK(live_init(&b, DIM, 100000, &wrec) == 0);
	fill(&a);
	CHECK(a.stats.users == 52 && a.stats.items == 20);
	const struct live_user *whale = live_user_get(&a, K("whale"));
	CHECK(whale && whale->purchased && whale->purchased->n == LIVE_PURCHASED);

	struct upd_source_pos src[4];
	memset(src, 0, sizeof(src));
	src[1] = (struct upd_source_pos){ .stream_key = K("orders"), .part = 3, .events = 2, .offset = 41 };
	strcpy(src[1].stream, "orders");
	src[3] = (struct upd_source_pos){ .stream_key = K("views"), .part = 0, .events = 0, .offset = 7 };
	strcpy(src[3].stream, "views");

	struct ckpt_stats st, ls;
	CHECK(ckpt_write(dfd, 1234, &a, src, 4, &src[3], &st) == 0);
	CHECK(st.users == 52 && st.sources == 2 && st.position == 1234);
	CHECK(!strcmp(st.name, "checkpoint-00000000000000001234.ckpt"));
	struct got_sources g = { .n = 0 };
	CHECK(ckpt_load(dfd, 1234, &b, got_source, &g, &ls) == 0);
	CHECK(ls.users == 52 && ls.items == st.items && ls.bytes == st.bytes);
	CHECK(same_live(&a, &b));
	CHECK(same_live(&b, &a));
	CHECK(g.n == 2);
	for (int i = 0; i < g.n; i++) {
		bool orders = !strcmp(g.s[i].stream, "orders");
		CHECK(orders || !strcmp(g.s[i].stream, "views"));
		CHECK(g.cur[i] == !orders);
		CHECK(g.s[i].offset == (orders ? 41 : 7) && g.s[i].events == (orders ? 2u : 0u));
		CHECK(g.s[i].part == (orders ? 3u : 0u));
	}

	/* a second checkpoint, the list, prune */
	CHECK(ckpt_write(dfd, 2000, &a, NULL, 0, NULL, &st) == 0);
	uint64_t *v;
	size_t n;
	CHECK(ckpt_list(dfd, &v, &n) == 0 && n == 2 && v[0] == 1234 && v[1] == 2000);
	free(v);

	/* corrupt: one byte flipped anywhere is refused, whole */
	live_clear(&b);
	CHECK(b.stats.users == 0 && b.stats.items == 0 && live_user_get(&b, K("whale")) == NULL);
	ck_epoch_barrier(&wrec);
	char name[64];
	ckpt_name(name, sizeof(name), 2000);
	off_t offs[] = { 3, 80, (off_t)st.bytes / 2, (off_t)st.bytes - 3 };
	for (size_t i = 0; i < ARRAY_SIZE(offs); i++) {
		flip_byte(dir, name, offs[i]);
		CHECK(ckpt_load(dfd, 2000, &b, NULL, NULL, &ls) == -EBADMSG);
		flip_byte(dir, name, offs[i]);
		live_clear(&b);
	}
	CHECK(ckpt_load(dfd, 2000, &b, NULL, NULL, &ls) == 0);
	CHECK(same_live(&a, &b));
	live_clear(&b);
	/* truncated (no end block) */
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	CHECK(truncate(p, (off_t)st.bytes - 40) == 0);
	CHECK(ckpt_load(dfd, 2000, &b, NULL, NULL, &ls) == -EBADMSG);
	live_clear(&b);
	/* a file renamed to another position is not that position */
	char p2[256];
	snprintf(p2, sizeof(p2), "%s/checkpoint-00000000000000009999.ckpt", dir);
	snprintf(p, sizeof(p), "%s/checkpoint-00000000000000001234.ckpt", dir);
	CHECK(link(p, p2) == 0);
	CHECK(ckpt_load(dfd, 9999, &b, NULL, NULL, &ls) == -EBADMSG);
	CHECK(ckpt_load(dfd, 7, &b, NULL, NULL, &ls) == -ENOENT);
	live_clear(&b);
	/* prune keeps what is at or above the position, drops .tmp */
	snprintf(p, sizeof(p), "%s/checkpoint-00000000000000000005.ckpt.tmp", dir);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	CHECK(ckpt_prune(dfd, 2000) == 0);
	CHECK(ckpt_list(dfd, &v, &n) == 0 && n == 2 && v[0] == 2000 && v[1] == 9999);
	free(v);
	CHECK(access(p, F_OK) != 0);

	live_destroy(&a);
	live_destroy(&b);
	ck_epoch_barrier(&wrec);
	close(dfd);
	rm_tree(dir);
}

static uint64_t replayed;
static int count_fn(void *ctx, const struct event *ev)
{
	(void)ctx;
	(void)ev;
	replayed++;
	return 0;
}

static int count_segments(const char *dir, uint64_t *first)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	*first = UINT64_MAX;
	while ((de = readdir(d))) {
		unsigned long long v;
		if (sscanf(de->d_name, "events-%llu.log", &v) == 1) {
			n++;
			if (v < *first)
				*first = v;
		}
	}
	closedir(d);
	return n;
}

static void test_trim(void)
{
	char *dir = tmp_dir();
	struct evlog l;
	struct evlog_recovery rec;
	struct evlog_opts o = { .retain = true, .segment_bytes = 4096 };
	CHECK(evlog_open(&l, dir, &o, NULL, NULL, &rec) == 0);
	struct event e = mk(EVENT_VIEW, "trim-user", "trim-item", 1);
	for (int i = 0; i < 300; i++) {
		CHECK(evlog_append(&l, &e, 1) == 0);
		CHECK(evlog_sync(&l) == 0);
	}
	uint64_t first, before;
	int segs = count_segments(dir, &first);
	CHECK(segs > 3 && first == 0);
	CHECK(evlog_rotate(&l) == 0);
	uint64_t pos = evlog_position(&l);
	CHECK(pos == 300 && l.seg_first == 300 && l.seg_records == 0);
	CHECK(count_segments(dir, &first) == segs + 1);
	CHECK(evlog_rotate(&l) == 0);   /* empty: no new segment */
	CHECK(count_segments(dir, &first) == segs + 1);
	/* trim below a position inside an old segment: only those wholly below it go */
	uint64_t ns = 0, nb = 0;
	CHECK(evlog_trim_before(&l, 100, &ns, &nb) == 0);
	int left = count_segments(dir, &before);
	CHECK(before <= 100 && before > 0 && left == segs + 1 - (int)ns && nb > 0);
	/* trim at the rotation point: every closed segment goes, the open one stays */
	CHECK(evlog_trim_before(&l, pos, &ns, &nb) == 0);
	CHECK(count_segments(dir, &first) == 1 && first == 300);
	for (int i = 0; i < 10; i++)
		CHECK(evlog_append(&l, &e, 1) == 0);
	CHECK(evlog_sync(&l) == 0);
	uint64_t disk;
	CHECK(evlog_disk_bytes(&l, &disk) == 0 && disk == l.seg_bytes);
	evlog_close(&l);

	/* reopen from the checkpoint's position: only the tail replays, and
	 * the trimmed records below it are no gap */
	replayed = 0;
	o.replay_from = 300;
	CHECK(evlog_open(&l, dir, &o, count_fn, NULL, &rec) == 0);
	CHECK(replayed == 10 && rec.events == 10 && !rec.stopped);
	CHECK(evlog_position(&l) == 310);
	evlog_close(&l);
	/* a checkpoint inside the segment: the records below it are skipped */
	replayed = 0;
	o.replay_from = 304;
	CHECK(evlog_open(&l, dir, &o, count_fn, NULL, &rec) == 0);
	CHECK(replayed == 6 && !rec.stopped);
	evlog_close(&l);
	/* no checkpoint (full replay) over a trimmed log: the first segment defines the start */
	replayed = 0;
	o.replay_from = 0;
	CHECK(evlog_open(&l, dir, &o, count_fn, NULL, &rec) == 0);
	CHECK(replayed == 10 && !rec.stopped);
	evlog_close(&l);
	/* a checkpoint beyond the log's end: appends continue at its position */
	replayed = 0;
	o.replay_from = 500;
	CHECK(evlog_open(&l, dir, &o, count_fn, NULL, &rec) == 0);
	CHECK(replayed == 0 && evlog_position(&l) == 500);
	evlog_close(&l);
	/* ...and the next start from it finds no hole below it */
	replayed = 0;
	CHECK(evlog_open(&l, dir, &o, count_fn, NULL, &rec) == 0);
	CHECK(replayed == 0 && !rec.stopped && evlog_position(&l) == 500);
	evlog_close(&l);
	rm_tree(dir);
}

static void test_big(uint32_t users)
{
	char *dir = tmp_dir();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	struct live a, b;
	CHECK(live_init(&a, 32, users * 2, &wrec) == 0);
	CHECK(live_init(&b, 32, users * 2, &wrec) == 0);
	char u[32], it[32];
	for (uint32_t i = 0; i < users; i++) {
		snprintf(u, sizeof(u), "u%u", i);
		for (int j = 0; j < 4; j++) {
			snprintf(it, sizeof(it), "i%u", (i * 13 + (uint32_t)j) % 50000);
			struct event e = mk(j == 3 ? EVENT_PURCHASE : j == 2 ? EVENT_ADD_TO_CART : EVENT_VIEW, u, it,
					    1000 + i);
			CHECK(live_apply(&a, &e, NULL) == 0);
		}
		if (i % 1024 == 0)
			ck_epoch_poll(&wrec);
	}
	ck_epoch_barrier(&wrec);
	struct ckpt_stats st, ls;
	CHECK(ckpt_write(dfd, 1, &a, NULL, 0, NULL, &st) == 0);
	CHECK(ckpt_load(dfd, 1, &b, NULL, NULL, &ls) == 0);
	CHECK(ls.users == users);
	fprintf(stderr, "  %u users: checkpoint %.1f MiB written in %llu ms, loaded in %llu ms\n", users,
		(double)st.bytes / 1048576.0, (unsigned long long)st.ms, (unsigned long long)ls.ms);
	live_destroy(&a);
	live_destroy(&b);
	ck_epoch_barrier(&wrec);
	close(dfd);
	rm_tree(dir);
}

int main(int argc, char **argv)
{
	ck_epoch_init(&epoch);
	ck_epoch_register(&epoch, &wrec, NULL);
	test_round_trip();
	test_trim();
	test_big(argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 100000);
	if (failures)
		fprintf(stderr, "test_checkpoint: %d failures\n", failures);
	return failures ? 1 : 0;
}
