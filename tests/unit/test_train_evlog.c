/* test_train_evlog.c: recd-train reads recd's own event log: a log
 * written with the engine's writer (evlog, as the updater does), with a
 * deletion (DELETE /v1/users/{id}) and a consent withdrawal in it, trains
 * on the remaining interactions only and leaves the forgotten users'
 * earlier events (and, when nothing is left, their ids) out.
 * usage: test_train_evlog RECD_TRAIN */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "events/evlog.h"

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		failures++; \
	} \
} while (0)

static struct event ev(uint8_t type, const char *user, const char *item, uint64_t ts, uint16_t extra)
{
	struct event e;
	memset(&e, 0, sizeof(e));
	e.type = type;
	e.ts_ms = ts;
	e.flags = EVENT_HAS_USER | extra;
	e.user_len = (uint8_t)strlen(user);
	memcpy(e.user_id, user, e.user_len);
	e.user_key = event_key(user, e.user_len);
	if (item) {
		e.flags |= EVENT_HAS_ITEM;
		e.item_len = (uint8_t)strlen(item);
		memcpy(e.item_id, item, e.item_len);
		e.item_key = event_key(item, e.item_len);
	}
	return e;
}

static char *slurp(const char *path)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	return buf;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_train_evlog RECD_TRAIN\n");
		return 2;
	}
	char dir[] = "/tmp/test_train_evlog.XXXXXX", path[512], cmd[2048];
	if (!mkdtemp(dir))
		return 2;
	snprintf(path, sizeof(path), "%s/events", dir);
	struct evlog l;
	struct evlog_recovery rec;
	struct evlog_opts o = { .retain = true };
	CHECK(evlog_open(&l, path, &o, NULL, NULL, &rec) == 0);
	struct event evs[] = {
		ev(EVENT_PURCHASE, "u1", "i1", 1000, 0),
		ev(EVENT_VIEW, "u1", "i2", 2000, 0),
		ev(EVENT_PURCHASE, "u2", "i1", 3000, 0),
		ev(EVENT_ADD_TO_CART, "u3", "i3", 4000, 0),
		ev(EVENT_IMPRESSION, "u1", "i3", 4500, 0),       /* not an interaction */
		ev(EVENT_PURCHASE, "u1", "i9", 4600, 0),         /* unknown item */
		ev(EVENT_FORGET_USER, "u3", NULL, 5000, 0),      /* DELETE /v1/users/u3 */
		ev(EVENT_VIEW, "u2", "i3", 6000, EVENT_NO_PERSONALIZE),
		ev(EVENT_PURCHASE, "u2", "i2", 7000, 0),         /* after the withdrawal: kept */
		ev(EVENT_PURCHASE, "u4", "i3", 8000, 0),
	};
	CHECK(evlog_append(&l, evs, sizeof(evs) / sizeof(evs[0])) == 0);
	CHECK(evlog_sync(&l) == 0);
	evlog_close(&l);

	snprintf(path, sizeof(path), "%s/items.csv", dir);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("id,price,stock\ni1,1,1\ni2,1,1\ni3,1,1\n", f);
		fclose(f);
	}
	snprintf(cmd, sizeof(cmd), "'%s' --items '%s/items.csv' --event-log '%s/events' --out '%s/m' --dim 2 --iters 2 "
		 "--threads 2 > '%s/out.txt' 2>&1", argv[1], dir, dir, dir, dir);
	CHECK(system(cmd) == 0);
	snprintf(path, sizeof(path), "%s/out.txt", dir);
	const char *out = slurp(path);
	/* Read: the 10 records; used: u1 i1, u1 i2, u2 i2, u4 i3. */
	CHECK(strstr(out, "10 interactions read, 4 used (4 distinct user-item pairs), 3 users, 3 items; "
			  "skipped 1 unknown items") != NULL);
	CHECK(strstr(out, "forgotten users' earlier events dropped") != NULL);
	if (failures)
		fprintf(stderr, "%s", out);
	snprintf(path, sizeof(path), "%s/m/users.txt", dir);
	CHECK(strcmp(slurp(path), "u1\nu2\nu4\n") == 0);
	/* The directory is left as it was: still one segment, still readable. */
	CHECK(system(cmd) == 0);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_train_evlog: could not remove %s\n", dir);
	if (failures) {
		fprintf(stderr, "test_train_evlog: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_train_evlog: ok\n");
	return 0;
}
