/* test_evlog.c: the event log: the record codec, append / reopen / replay
 * round trips, rotation across segments, torn and corrupt tails of the
 * last segment (cut, the rest replays, appends continue after the cut),
 * corruption and gaps in earlier segments (replay stops, nothing is
 * deleted), the directory lock, and a replay of 100k events. Every case
 * works in its own temp directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "events/evlog.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

/* ------------------------------------------------------------- helpers */

static char *tmp_dir(void)
{
	static char path[64];
	strcpy(path, "/tmp/test_evlog.XXXXXX");
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
		struct stat st;
		if (!lstat(p, &st) && S_ISDIR(st.st_mode))
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static void set_id(char *dst, uint8_t *len, const char *src)
{
	*len = (uint8_t)strlen(src);
	memcpy(dst, src, *len + 1u);
}

/* Event i: every type, ids of many lengths, some optional fields. */
static void make_event(uint64_t i, struct event *ev)
{
	char tmp[200];
	memset(ev, 0, sizeof(*ev));
	ev->type = (uint8_t)(1 + i % (EVENT__TYPE_COUNT - 1));
	ev->flags = EVENT_HAS_USER | EVENT_HAS_ITEM;
	ev->ts_ms = 1700000000000ull + i;
	ev->seq = i;
	ev->stock = (int64_t)(i % 7) - 1;
	ev->price = (float)i * 0.5f;
	ev->boost = 1.0f;
	ev->value = (float)(i % 5);
	snprintf(tmp, sizeof(tmp), "user-%llu", (unsigned long long)(i % 97));
	set_id(ev->user_id, &ev->user_len, tmp);
	snprintf(tmp, sizeof(tmp), "item-%llu-%.*s", (unsigned long long)i, (int)(i % 100), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	set_id(ev->item_id, &ev->item_len, tmp);
	if (i % 3 == 0) {
		snprintf(tmp, sizeof(tmp), "req-%llu", (unsigned long long)i);
		set_id(ev->request_id, &ev->request_len, tmp);
	}
	if (i % 4 == 0)
		set_id(ev->placement, &ev->placement_len, "home");
	ev->user_key = event_key(ev->user_id, ev->user_len);
	ev->item_key = event_key(ev->item_id, ev->item_len);
}

static bool same_event(const struct event *a, const struct event *b)
{
	return !memcmp(a, b, EVLOG_FIXED) && !strcmp(a->user_id, b->user_id) && !strcmp(a->item_id, b->item_id) &&
	       !strcmp(a->request_id, b->request_id) && !strcmp(a->placement, b->placement);
}

static size_t rec_size(uint64_t i)
{
	struct event ev;
	make_event(i, &ev);
	return sizeof(struct evlog_rec_hdr) + evlog_encoded_len(&ev);
}

/* Replay collector: checks event i arrives i-th. */
struct collect {
	uint64_t n;
	uint64_t first;       /* index of the first expected event */
	uint64_t bad;
	int fail_at;          /* >0: return -EIO at this call */
};

static int collect_cb(void *ctx, const struct event *ev)
{
	struct collect *c = ctx;
	struct event want;
	make_event(c->first + c->n, &want);
	if (!same_event(ev, &want))
		c->bad++;
	c->n++;
	if (c->fail_at && (int)c->n == c->fail_at)
		return -EIO;
	return 0;
}

static const struct evlog_opts retain_opts = { .retain = true, .segment_bytes = 0 };

/* Append events [from, to) in batches of `batch`, syncing each. */
static void append_range(struct evlog *l, uint64_t from, uint64_t to, uint64_t batch)
{
	static struct event evs[1024];
	for (uint64_t i = from; i < to;) {
		size_t n = 0;
		while (n < batch && n < 1024 && i < to)
			make_event(i++, &evs[n++]);
		CHECK(evlog_append(l, evs, n) == 0);
		CHECK(evlog_sync(l) == 0);
	}
}

static int reopen(const char *dir, const struct evlog_opts *o, struct collect *c, struct evlog_recovery *rec)
{
	struct evlog l;
	int r = evlog_open(&l, dir, o, collect_cb, c, rec);
	if (!r)
		evlog_close(&l);
	return r;
}

/* Sorted segment paths of dir. */
static int segments(const char *dir, char paths[][512], int max)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, "events-", 7) && n < max)
			snprintf(paths[n++], 512, "%s/%s", dir, de->d_name);
	if (d)
		closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && strcmp(paths[j - 1], paths[j]) > 0; j--) {
			char t[512];
			strcpy(t, paths[j]);
			strcpy(paths[j], paths[j - 1]);
			strcpy(paths[j - 1], t);
		}
	return n;
}

static off_t file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) ? -1 : st.st_size;
}

static void append_bytes(const char *p, const void *data, size_t n)
{
	int fd = open(p, O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	CHECK(write(fd, data, n) == (ssize_t)n);
	close(fd);
}

static void flip_byte(const char *p, off_t at)
{
	int fd = open(p, O_RDWR);
	unsigned char b;
	CHECK(fd >= 0);
	CHECK(pread(fd, &b, 1, at) == 1);
	b ^= 0x40;
	CHECK(pwrite(fd, &b, 1, at) == 1);
	close(fd);
}

/* --------------------------------------------------------------- cases */

static void test_codec(void)
{
	struct event ev, back;
	uint8_t buf[EVLOG_MAX_PAYLOAD + 16];
	make_event(12, &ev);
	/* max-length ids */
	memset(ev.user_id, 'u', EVENT_ID_MAX - 1);
	ev.user_id[EVENT_ID_MAX - 1] = 0;
	ev.user_len = EVENT_ID_MAX - 1;
	memset(ev.request_id, 'r', 63);
	ev.request_id[63] = 0;
	ev.request_len = 63;
	size_t n = evlog_encoded_len(&ev);
	CHECK(n == EVLOG_FIXED + 127 + ev.item_len + 63 + ev.placement_len);
	CHECK(n <= EVLOG_MAX_PAYLOAD);

	struct evlog l;
	char *dir = tmp_dir();
	struct evlog_recovery rec;
	CHECK(evlog_open(&l, dir, &retain_opts, NULL, NULL, &rec) == 0);
	CHECK(evlog_append(&l, &ev, 1) == 0);
	CHECK(l.len == 16 + n && l.n_buf == 1);
	struct evlog_rec_hdr h;
	memcpy(&h, l.buf, sizeof(h));
	CHECK(h.magic == EVLOG_MAGIC && h.len == n);
	memcpy(buf, l.buf + 16, n);
	CHECK(evlog_decode(buf, n, &back) == 0);
	CHECK(same_event(&ev, &back));
	CHECK(back.user_len == 127 && back.request_len == 63);

	/* lengths must add up; types must exist */
	CHECK(evlog_decode(buf, n - 1, &back) == -EINVAL);
	CHECK(evlog_decode(buf, EVLOG_FIXED - 1, &back) == -EINVAL);
	buf[0] = 0;
	CHECK(evlog_decode(buf, n, &back) == -EINVAL);
	buf[0] = EVENT__TYPE_COUNT;
	CHECK(evlog_decode(buf, n, &back) == -EINVAL);
	buf[0] = EVENT_VIEW;
	buf[4] = 200;   /* user_len beyond the field */
	CHECK(evlog_decode(buf, n, &back) == -EINVAL);

	/* an event with an impossible length is refused whole */
	struct event two[2];
	make_event(1, &two[0]);
	make_event(2, &two[1]);
	two[1].item_len = EVENT_ID_MAX;
	size_t before = l.len;
	CHECK(evlog_append(&l, two, 2) == -EINVAL);
	CHECK(l.len == before);
	evlog_close(&l);
	rm_tree(dir);
}

static void test_round_trip(void)
{
	char *dir = tmp_dir();
	char sub[128];
	snprintf(sub, sizeof(sub), "%s/events", dir);
	struct evlog l;
	struct evlog_recovery rec;

	/* the directory is created; an empty log replays nothing */
	CHECK(evlog_open(&l, sub, &retain_opts, NULL, NULL, &rec) == 0);
	CHECK(rec.events == 0 && rec.segments == 0 && rec.cut_bytes == 0);
	append_range(&l, 0, 300, 64);
	CHECK(!evlog_pending(&l));
	CHECK(evlog_position(&l) == 300);
	evlog_close(&l);

	struct collect c = { 0 };
	CHECK(reopen(sub, &retain_opts, &c, &rec) == 0);
	CHECK(c.n == 300 && c.bad == 0);
	CHECK(rec.events == 300 && rec.segments == 1 && rec.cut_bytes == 0 && !rec.stopped);

	/* appends after a reopen continue the same log, in order */
	CHECK(evlog_open(&l, sub, &retain_opts, NULL, NULL, &rec) == 0);
	CHECK(evlog_position(&l) == 300);
	append_range(&l, 300, 350, 7);
	/* staged and written but not synced (none-style write) is pending in retain mode */
	struct event ev;
	make_event(350, &ev);
	CHECK(evlog_append(&l, &ev, 1) == 0);
	CHECK(evlog_pending(&l));
	CHECK(evlog_write(&l) == 0);
	CHECK(evlog_pending(&l));   /* written, not covered by a sync */
	CHECK(evlog_sync(&l) == 0);
	CHECK(!evlog_pending(&l));
	evlog_close(&l);
	c = (struct collect){ 0 };
	CHECK(reopen(sub, &retain_opts, &c, &rec) == 0);
	CHECK(c.n == 351 && c.bad == 0);

	/* close syncs what is staged */
	CHECK(evlog_open(&l, sub, &retain_opts, NULL, NULL, &rec) == 0);
	make_event(351, &ev);
	CHECK(evlog_append(&l, &ev, 1) == 0);
	evlog_close(&l);
	c = (struct collect){ 0 };
	CHECK(reopen(sub, &retain_opts, &c, &rec) == 0);
	CHECK(c.n == 352 && c.bad == 0);

	/* one writer per directory */
	struct evlog l2;
	CHECK(evlog_open(&l, sub, &retain_opts, NULL, NULL, &rec) == 0);
	CHECK(evlog_open(&l2, sub, &retain_opts, NULL, NULL, &rec) == -EBUSY);
	evlog_close(&l);

	/* a failing callback fails the open */
	c = (struct collect){ .fail_at = 10 };
	CHECK(reopen(sub, &retain_opts, &c, &rec) == -EIO);
	CHECK(c.n == 10);
	/* and leaves the directory unlocked and the log intact */
	c = (struct collect){ 0 };
	CHECK(reopen(sub, &retain_opts, &c, &rec) == 0 && c.n == 352);

	/* the parent must exist */
	char deep[160];
	snprintf(deep, sizeof(deep), "%s/no/such", dir);
	CHECK(evlog_open(&l, deep, &retain_opts, NULL, NULL, &rec) == -ENOENT);
	rm_tree(dir);
}

static void test_rotation(void)
{
	char *dir = tmp_dir();
	struct evlog l;
	struct evlog_recovery rec;
	/* without retain (durability none): write only, no fsync per batch */
	struct evlog_opts o = { .retain = false, .segment_bytes = 4096 };
	CHECK(evlog_open(&l, dir, &o, NULL, NULL, &rec) == 0);
	static struct event evs[16];
	uint64_t i = 0;
	while (i < 500) {
		size_t n = 0;
		while (n < 16 && i < 500)
			make_event(i++, &evs[n++]);
		CHECK(evlog_append(&l, evs, n) == 0);
		CHECK(evlog_write(&l) == 0);
		CHECK(!evlog_pending(&l));
	}
	CHECK(l.stats.rotations > 5);
	uint64_t rotations = l.stats.rotations;
	evlog_close(&l);

	char paths[256][512];
	int n = segments(dir, paths, 256);
	CHECK(n == (int)rotations + 1);
	/* each name is the position of its first record; a segment ends
	 * near the limit (a batch is never split across two) */
	uint64_t pos = 0;
	for (int s = 0; s < n; s++) {
		char want[512];
		snprintf(want, sizeof(want), "%s/events-%020llu.log", dir, (unsigned long long)pos);
		CHECK(!strcmp(paths[s], want));
		off_t size = file_size(paths[s]);
		uint64_t recs = 0;
		for (off_t b = 0; b < size; recs++)
			b += (off_t)rec_size(pos + recs);
		if (s + 1 < n)
			CHECK(size > 0 && size <= 4096 + 16 * (16 + (off_t)EVLOG_MAX_PAYLOAD));
		pos += recs;
	}
	CHECK(pos == 500);

	struct collect c = { 0 };
	CHECK(reopen(dir, &o, &c, &rec) == 0);
	CHECK(c.n == 500 && c.bad == 0);
	CHECK(rec.segments == (uint64_t)n && !rec.stopped && rec.cut_bytes == 0);

	/* retain mode across rotations too, and after a reopen */
	struct evlog_opts ro = { .retain = true, .segment_bytes = 4096 };
	CHECK(evlog_open(&l, dir, &ro, NULL, NULL, &rec) == 0);
	CHECK(evlog_position(&l) == 500);
	append_range(&l, 500, 800, 10);
	evlog_close(&l);
	c = (struct collect){ 0 };
	CHECK(reopen(dir, &ro, &c, &rec) == 0);
	CHECK(c.n == 800 && c.bad == 0);
	rm_tree(dir);
}

static void test_torn_tail(void)
{
	char *dir = tmp_dir();
	struct evlog l;
	struct evlog_recovery rec;
	CHECK(evlog_open(&l, dir, &retain_opts, NULL, NULL, &rec) == 0);
	append_range(&l, 0, 100, 25);
	evlog_close(&l);
	char paths[4][512];
	CHECK(segments(dir, paths, 4) == 1);
	off_t full = file_size(paths[0]);

	/* a crash in mid-record: the last record is cut, never replayed */
	size_t last = rec_size(99);
	CHECK(truncate(paths[0], full - 10) == 0);
	struct collect c = { 0 };
	CHECK(reopen(dir, &retain_opts, &c, &rec) == 0);
	CHECK(c.n == 99 && c.bad == 0);
	CHECK(rec.events == 99 && rec.cut_bytes == last - 10 && !rec.stopped);
	CHECK(file_size(paths[0]) == full - (off_t)last);

	/* garbage after the last good record: cut, the rest replays */
	char junk[300];
	for (size_t k = 0; k < sizeof(junk); k++)
		junk[k] = (char)(k * 37 + 11);
	append_bytes(paths[0], junk, sizeof(junk));
	c = (struct collect){ 0 };
	CHECK(reopen(dir, &retain_opts, &c, &rec) == 0);
	CHECK(c.n == 99 && rec.cut_bytes == sizeof(junk));
	CHECK(file_size(paths[0]) == full - (off_t)last);

	/* a short header (fewer than 16 bytes) */
	append_bytes(paths[0], "\x45\x56\x4c\x31\x10", 5);
	c = (struct collect){ 0 };
	CHECK(reopen(dir, &retain_opts, &c, &rec) == 0);
	CHECK(c.n == 99 && rec.cut_bytes == 5);

	/* a header whose payload never arrived */
	struct evlog_rec_hdr h = { EVLOG_MAGIC, 100, 0 };
	append_bytes(paths[0], &h, sizeof(h));
	append_bytes(paths[0], junk, 30);
	c = (struct collect){ 0 };
	CHECK(reopen(dir, &retain_opts, &c, &rec) == 0);
	CHECK(c.n == 99 && rec.cut_bytes == sizeof(h) + 30);

	/* appends after a cut follow the last good record */
	CHECK(evlog_open(&l, dir, &retain_opts, NULL, NULL, &rec) == 0);
	CHECK(evlog_position(&l) == 99);
	append_range(&l, 99, 150, 20);
	evlog_close(&l);
	c = (struct collect){ 0 };
	CHECK(reopen(dir, &retain_opts, &c, &rec) == 0);
	CHECK(c.n == 150 && c.bad == 0 && rec.cut_bytes == 0);

	/* the whole only segment torn: nothing replays, the log still opens */
	CHECK(truncate(paths[0], 7) == 0);
	c = (struct collect){ 0 };
	CHECK(reopen(dir, &retain_opts, &c, &rec) == 0);
	CHECK(c.n == 0 && rec.cut_bytes == 7 && file_size(paths[0]) == 0);
	rm_tree(dir);
}

static void test_bad_checksum_in_last_segment(void)
{
	char *dir = tmp_dir();
	struct evlog l;
	struct evlog_recovery rec;
	CHECK(evlog_open(&l, dir, &retain_opts, NULL, NULL, &rec) == 0);
	append_range(&l, 0, 200, 50);
	evlog_close(&l);
	char paths[4][512];
	CHECK(segments(dir, paths, 4) == 1);
	off_t full = file_size(paths[0]);

	/* flip one payload byte of record 120: it and everything after go */
	off_t at = 0;
	for (uint64_t i = 0; i < 120; i++)
		at += (off_t)rec_size(i);
	flip_byte(paths[0], at + 16 + 70);
	struct collect c = { 0 };
	CHECK(reopen(dir, &retain_opts, &c, &rec) == 0);
	CHECK(c.n == 120 && c.bad == 0);
	CHECK(rec.cut_bytes == (uint64_t)(full - at));
	CHECK(file_size(paths[0]) == at);

	/* a bad magic in the middle is the same */
	CHECK(evlog_open(&l, dir, &retain_opts, NULL, NULL, &rec) == 0);
	append_range(&l, 120, 140, 5);
	evlog_close(&l);
	flip_byte(paths[0], at);   /* the magic of record 120 */
	c = (struct collect){ 0 };
	CHECK(reopen(dir, &retain_opts, &c, &rec) == 0);
	CHECK(c.n == 120 && rec.cut_bytes > 0);
	rm_tree(dir);
}

static void test_bad_earlier_segment(void)
{
	char *dir = tmp_dir();
	struct evlog l;
	struct evlog_recovery rec;
	struct evlog_opts o = { .retain = true, .segment_bytes = 4096 };
	CHECK(evlog_open(&l, dir, &o, NULL, NULL, &rec) == 0);
	append_range(&l, 0, 400, 8);
	evlog_close(&l);
	char paths[128][512];
	int n = segments(dir, paths, 128);
	CHECK(n >= 4);
	off_t size1 = file_size(paths[1]);

	/* a flipped byte in segment 1: replay stops there, nothing is cut */
	uint64_t in_seg0 = strtoull(strrchr(paths[1], '-') + 1, NULL, 10);
	flip_byte(paths[1], 16 + 5);   /* payload of its first record */
	struct collect c = { 0 };
	CHECK(reopen(dir, &o, &c, &rec) == 0);
	CHECK(c.n == in_seg0 && c.bad == 0);
	CHECK(rec.stopped && rec.events == in_seg0 && rec.cut_bytes == 0);
	CHECK(rec.unreplayed_bytes > (uint64_t)size1);
	CHECK(file_size(paths[1]) == size1);
	CHECK(segments(dir, paths, 128) == n);

	/* the log still takes appends at its end */
	CHECK(evlog_open(&l, dir, &o, NULL, NULL, &rec) == 0);
	CHECK(evlog_position(&l) == 400);
	append_range(&l, 400, 410, 10);
	evlog_close(&l);
	flip_byte(paths[1], 16 + 5);   /* repaired: everything replays again */
	c = (struct collect){ 0 };
	CHECK(reopen(dir, &o, &c, &rec) == 0);
	CHECK(c.n == 410 && c.bad == 0 && !rec.stopped);

	/* a missing segment in the middle is a gap: replay stops before it */
	uint64_t at2 = strtoull(strrchr(paths[2], '-') + 1, NULL, 10);
	CHECK(unlink(paths[2]) == 0);
	c = (struct collect){ 0 };
	CHECK(reopen(dir, &o, &c, &rec) == 0);
	CHECK(c.n == at2 && rec.stopped);
	rm_tree(dir);
}

static void test_replay_100k(void)
{
	char *dir = tmp_dir();
	struct evlog l;
	struct evlog_recovery rec;
	struct evlog_opts o = { .retain = true, .segment_bytes = 2u << 20 };
	CHECK(evlog_open(&l, dir, &o, NULL, NULL, &rec) == 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	append_range(&l, 0, 100000, 1000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(l.stats.syncs == 100);
	evlog_close(&l);
	double wms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;

	struct collect c = { 0 };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(reopen(dir, &o, &c, &rec) == 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double rms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	CHECK(c.n == 100000 && c.bad == 0);
	CHECK(rec.events == 100000 && rec.segments > 1 && !rec.stopped && rec.cut_bytes == 0);
	fprintf(stderr, "100k events: %.1f MB in %llu segments, appended (100 syncs) in %.0f ms, replayed in %.0f ms\n",
		(double)rec.bytes / 1e6, (unsigned long long)rec.segments, wms, rms);
	rm_tree(dir);
}

int main(void)
{
	test_codec();
	test_round_trip();
	test_rotation();
	test_torn_tail();
	test_bad_checksum_in_last_segment();
	test_bad_earlier_segment();
	test_replay_100k();
	if (failures) {
		fprintf(stderr, "test_evlog: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_evlog: ok\n");
	return 0;
}
