/* evlog.c: the append-only event log (see evlog.h for the format and the
 * crash semantics). Single writer: no locking inside; the directory flock
 * only keeps a second process out. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "core/log.h"
#include "events/evlog.h"

_Static_assert(EVLOG_FIXED == 64, "struct event's head changed: bump EVLOG_MAGIC, then update this check");
_Static_assert(sizeof(struct evlog_rec_hdr) == 16, "record header must be 16 bytes");

#define EVLOG_HDR sizeof(struct evlog_rec_hdr)
#define EVLOG_KEEP_BUF (8u << 20)   /* free a larger staging buffer once it is empty */

const char *const evlog_durability_names[] = { "none", "batch", "always", NULL };

int evlog_durability_parse(const char *name)
{
	for (int i = 0; evlog_durability_names[i]; i++)
		if (!strcmp(name, evlog_durability_names[i]))
			return i;
	return -EINVAL;
}

/* ------------------------------------------------------------------ codec */

size_t evlog_encoded_len(const struct event *ev)
{
	if (ev->user_len >= sizeof(ev->user_id) || ev->item_len >= sizeof(ev->item_id) ||
	    ev->request_len >= sizeof(ev->request_id) || ev->placement_len >= sizeof(ev->placement))
		return 0;
	return EVLOG_FIXED + ev->user_len + ev->item_len + ev->request_len + ev->placement_len;
}

static uint8_t *put_id(uint8_t *p, const char *id, uint8_t len)
{
	memcpy(p, id, len);
	return p + len;
}

static const uint8_t *get_id(const uint8_t *p, char *id, uint8_t len)
{
	memcpy(id, p, len);
	id[len] = '\0';
	return p + len;
}

int evlog_decode(const uint8_t *p, size_t len, struct event *ev)
{
	if (len < EVLOG_FIXED || len > EVLOG_MAX_PAYLOAD)
		return -EINVAL;
	memset(ev, 0, sizeof(*ev));
	memcpy(ev, p, EVLOG_FIXED);
	if (ev->type == 0 || ev->type >= EVENT__TYPE_COUNT || evlog_encoded_len(ev) != len)
		return -EINVAL;
	p += EVLOG_FIXED;
	p = get_id(p, ev->user_id, ev->user_len);
	p = get_id(p, ev->item_id, ev->item_len);
	p = get_id(p, ev->request_id, ev->request_len);
	get_id(p, ev->placement, ev->placement_len);
	return 0;
}

int evlog_append(struct evlog *l, const struct event *evs, size_t n)
{
	size_t need = 0;
	for (size_t i = 0; i < n; i++) {
		size_t el = evlog_encoded_len(&evs[i]);
		if (!el)
			return -EINVAL;
		need += EVLOG_HDR + el;
	}
	if (l->len + need > l->cap) {
		size_t cap = l->cap ? l->cap : 64 * 1024;
		while (cap < l->len + need)
			cap *= 2;
		uint8_t *nb = realloc(l->buf, cap);
		if (!nb)
			return -ENOMEM;
		l->buf = nb;
		l->cap = cap;
	}
	uint8_t *p = l->buf + l->len;
	for (size_t i = 0; i < n; i++) {
		const struct event *ev = &evs[i];
		uint8_t *payload = p + EVLOG_HDR, *q = payload;
		memcpy(q, ev, EVLOG_FIXED);
		q += EVLOG_FIXED;
		q = put_id(q, ev->user_id, ev->user_len);
		q = put_id(q, ev->item_id, ev->item_len);
		q = put_id(q, ev->request_id, ev->request_len);
		q = put_id(q, ev->placement, ev->placement_len);
		struct evlog_rec_hdr h = { EVLOG_MAGIC, (uint32_t)(q - payload), XXH3_64bits(payload, (size_t)(q - payload)) };
		memcpy(p, &h, sizeof(h));
		p = q;
	}
	l->len += need;
	l->n_buf += n;
	l->stats.records += n;
	l->stats.bytes += need;
	return 0;
}

/* --------------------------------------------------------------- segments */

static void seg_name(char *out, size_t outlen, uint64_t first)
{
	snprintf(out, outlen, "events-%020llu.log", (unsigned long long)first);
}

/* "events-<digits>.log" -> first position; false for anything else. */
static bool seg_parse(const char *name, uint64_t *first)
{
	if (strncmp(name, "events-", 7))
		return false;
	const char *d = name + 7, *e = d;
	uint64_t v = 0;
	while (*e >= '0' && *e <= '9' && e - d < 20) {
		uint64_t nv = v * 10 + (uint64_t)(*e - '0');
		if (nv / 10 != v)
			return false;
		v = nv;
		e++;
	}
	if (e == d || strcmp(e, ".log"))
		return false;
	*first = v;
	return true;
}

static bool seg_parse_any(const char *name, uint64_t *first, void *ctx)
{
	(void)ctx;
	return seg_parse(name, first);
}

/* Sorted positions of the segments in the directory. */
static int seg_list(int dir_fd, uint64_t **out, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	return dir_list_numbers(dir_fd, seg_parse_any, NULL, out, n_out);
}

/* Create the segment starting at `first` and make its name durable. */
static int seg_create(struct evlog *l, uint64_t first)
{
	char name[64];
	seg_name(name, sizeof(name), first);
	int fd = openat(l->dir_fd, name, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (fsync(l->dir_fd)) {
		int e = -errno;
		close(fd);
		unlinkat(l->dir_fd, name, 0);
		return e;
	}
	return fd;
}

/* Put the open segment back to `size` after a failed write or sync. If
 * even that fails, later appends would land after garbage: stop for good. */
static void put_back(struct evlog *l, uint64_t size, uint64_t records)
{
	if (ftruncate(l->fd, (off_t)size)) {
		l->broken = -errno;
		log_error("event_log_broken", "dir=%s err=\"ftruncate: %s\"", l->dir, strerror(-l->broken));
		return;
	}
	l->seg_bytes = size;
	l->seg_records = records;
}

static void drop_staged(struct evlog *l)
{
	l->len = l->written = 0;
	l->n_buf = l->n_written = 0;
	if (l->cap > EVLOG_KEEP_BUF) {
		/* a burst grew it: give the memory back */
		free(l->buf);
		l->buf = NULL;
		l->cap = 0;
	}
}

/* The open segment is full: make it durable, then start the next one. A
 * segment is complete on disk before its successor exists, which is what
 * lets evlog_open treat a bad record in an earlier segment as real loss. */
static int rotate(struct evlog *l)
{
	if (fdatasync(l->fd)) {
		int e = -errno;
		if (l->retain) {
			put_back(l, l->synced_bytes, l->synced_records);
			l->written = 0;
			l->n_written = 0;
		}
		return e;
	}
	l->synced_bytes = l->seg_bytes;
	l->synced_records = l->seg_records;
	/* What was written is durable now: only the unwritten rest stays. */
	if (l->len > l->written)
		memmove(l->buf, l->buf + l->written, l->len - l->written);
	l->len -= l->written;
	l->n_buf -= l->n_written;
	l->written = 0;
	l->n_written = 0;
	uint64_t first = l->seg_first + l->seg_records;
	int fd = seg_create(l, first);
	if (fd < 0)
		return fd;   /* the old segment stays open and valid: retried next time */
	close(l->fd);
	l->fd = fd;
	l->seg_first = first;
	l->seg_records = l->seg_bytes = 0;
	l->synced_bytes = l->synced_records = 0;
	l->stats.rotations++;
	return 0;
}

int evlog_write(struct evlog *l)
{
	if (l->broken)
		return l->broken;
	if (l->written == l->len)
		return 0;
	int r = 0;
	if (l->seg_bytes > 0 && l->seg_bytes + (l->len - l->written) > l->seg_limit) {
		r = rotate(l);
		if (r)
			goto fail;
	}
	uint64_t size = l->seg_bytes, records = l->seg_records;
	r = fd_write_all(l->fd, l->buf + l->written, l->len - l->written);
	if (r) {
		/* no torn record may stay in front of the next append */
		put_back(l, size, records);
		goto fail;
	}
	l->seg_bytes += l->len - l->written;
	l->seg_records += l->n_buf - l->n_written;
	l->written = l->len;
	l->n_written = l->n_buf;
	l->stats.writes++;
	if (!l->retain)
		drop_staged(l);
	return 0;
fail:
	l->stats.errors++;
	if (!l->retain)
		drop_staged(l);   /* never promised durable: not kept for a retry */
	return r;
}

int evlog_sync(struct evlog *l)
{
	int r = evlog_write(l);
	if (r)
		return r;
	if (l->seg_bytes != l->synced_bytes) {
		if (fdatasync(l->fd)) {
			r = -errno;
			l->stats.errors++;
			/* The kernel may have dropped the pages it failed to write
			 * and still call them clean: rewrite them from memory. */
			if (l->retain) {
				put_back(l, l->synced_bytes, l->synced_records);
				l->written = 0;
				l->n_written = 0;
			}
			return r;
		}
		l->synced_bytes = l->seg_bytes;
		l->synced_records = l->seg_records;
		l->stats.syncs++;
	}
	drop_staged(l);
	return 0;
}

int evlog_rotate(struct evlog *l)
{
	int r = evlog_sync(l);
	if (r)
		return r;
	if (!l->seg_records)
		return 0;
	r = rotate(l);
	if (r)
		l->stats.errors++;
	return r;
}

int evlog_trim_before(struct evlog *l, uint64_t pos, uint64_t *segments, uint64_t *bytes)
{
	uint64_t *segs = NULL;
	size_t n = 0;
	int r = seg_list(l->dir_fd, &segs, &n);
	if (r)
		return r;
	uint64_t gone = 0;
	/* Segment i holds [segs[i], segs[i + 1]): all below pos when its
	 * successor starts at or before pos. The open one is never removed. */
	for (size_t i = 0; i + 1 < n && segs[i + 1] <= pos && segs[i] != l->seg_first; i++) {
		char name[64];
		struct stat st;
		seg_name(name, sizeof(name), segs[i]);
		uint64_t size = fstatat(l->dir_fd, name, &st, 0) ? 0 : (uint64_t)st.st_size;
		if (unlinkat(l->dir_fd, name, 0)) {
			r = -errno;
			break;
		}
		gone++;
		if (segments)
			(*segments)++;
		if (bytes)
			*bytes += size;
	}
	free(segs);
	if (gone && fsync(l->dir_fd) && !r)
		r = -errno;
	return r;
}

int evlog_disk_bytes(struct evlog *l, uint64_t *bytes)
{
	uint64_t *segs = NULL;
	size_t n = 0;
	int r = seg_list(l->dir_fd, &segs, &n);
	if (r)
		return r;
	*bytes = 0;
	for (size_t i = 0; i < n; i++) {
		char name[64];
		struct stat st;
		seg_name(name, sizeof(name), segs[i]);
		if (!fstatat(l->dir_fd, name, &st, 0))
			*bytes += (uint64_t)st.st_size;
	}
	free(segs);
	return 0;
}

/* ------------------------------------------------------------------- open */

struct scan {
	uint64_t good_end;      /* bytes of good records from the start */
	uint64_t records;
	const char *why;        /* NULL: the whole file is good */
};

/* Verify records from the start of a segment image; replay them through
 * fn when it is set. Stops at the first bad record. */
static int scan(const uint8_t *p, uint64_t size, uint64_t skip, evlog_replay_fn fn, void *ctx, struct scan *sc)
{
	struct event ev;
	uint64_t off = 0;
	memset(sc, 0, sizeof(*sc));
	while (off < size) {
		struct evlog_rec_hdr h;
		if (size - off < EVLOG_HDR) {
			sc->why = "short header";
			break;
		}
		memcpy(&h, p + off, sizeof(h));
		if (h.magic != EVLOG_MAGIC) {
			sc->why = "bad magic";
			break;
		}
		if (h.len < EVLOG_FIXED || h.len > EVLOG_MAX_PAYLOAD) {
			sc->why = "bad length";
			break;
		}
		if (size - off - EVLOG_HDR < h.len) {
			sc->why = "short payload";
			break;
		}
		const uint8_t *payload = p + off + EVLOG_HDR;
		if (XXH3_64bits(payload, h.len) != h.sum) {
			sc->why = "bad checksum";
			break;
		}
		if (evlog_decode(payload, h.len, &ev)) {
			sc->why = "bad event";
			break;
		}
		if (fn && sc->records >= skip) {
			int r = fn(ctx, &ev);
			if (r < 0)
				return r;
		}
		off += EVLOG_HDR + h.len;
		sc->records++;
	}
	sc->good_end = off;
	return 0;
}

static int scan_fd(int fd, uint64_t *size, uint64_t skip, evlog_replay_fn fn, void *ctx, struct scan *sc)
{
	struct stat st;
	if (fstat(fd, &st))
		return -errno;
	*size = (uint64_t)st.st_size;
	memset(sc, 0, sizeof(*sc));
	if (!*size)
		return 0;
	void *m = mmap(NULL, (size_t)*size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	madvise(m, (size_t)*size, MADV_SEQUENTIAL);
	int r = scan(m, *size, skip, fn, ctx, sc);
	munmap(m, (size_t)*size);
	return r;
}

/* Make the directory exist and be ours alone. */
static int open_dir(struct evlog *l)
{
	if (mkdir(l->dir, 0750) == 0) {
		/* the new name must survive a crash too */
		char parent[PATH_MAX];
		memcpy(parent, l->dir, sizeof(parent));
		char *slash = strrchr(parent, '/');
		if (!slash)
			strcpy(parent, ".");
		else
			slash[slash == parent] = '\0';   /* "/x" -> "/" */
		int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd >= 0) {
			if (fsync(pfd))
				log_warn("event_log_dir_sync_failed", "dir=%s err=\"%s\"", l->dir, strerror(errno));
			close(pfd);
		}
		log_info("event_log_created", "dir=%s", l->dir);
	} else if (errno != EEXIST) {
		return -errno;
	}
	l->dir_fd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dir_fd < 0)
		return -errno;
	if (flock(l->dir_fd, LOCK_EX | LOCK_NB))
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	return 0;
}

int evlog_open(struct evlog *l, const char *dir, const struct evlog_opts *o, evlog_replay_fn fn, void *ctx,
	       struct evlog_recovery *rec)
{
	uint64_t t0 = now_ns();
	uint64_t *segs = NULL;
	size_t n_segs = 0;
	int r;
	memset(l, 0, sizeof(*l));
	memset(rec, 0, sizeof(*rec));
	l->fd = l->dir_fd = -1;
	l->retain = o->retain;
	l->seg_limit = o->segment_bytes ? o->segment_bytes : EVLOG_SEGMENT_BYTES;
	if (strlen(dir) >= sizeof(l->dir) - 32)
		return -ENAMETOOLONG;
	strcpy(l->dir, dir);
	for (size_t n = strlen(l->dir); n > 1 && l->dir[n - 1] == '/'; n--)
		l->dir[n - 1] = '\0';
	r = open_dir(l);
	if (r)
		goto fail;
	r = seg_list(l->dir_fd, &segs, &n_segs);
	if (r)
		goto fail;
	rec->segments = n_segs;

	bool replay = true;
	uint64_t from = o->replay_from;
	/* A first segment after `from` means records a checkpoint does not
	 * cover are gone: caught as a gap below. */
	uint64_t expect = n_segs ? (from && segs[0] > from ? from : segs[0]) : 0;
	for (size_t i = 0; i < n_segs; i++) {
		bool last = i + 1 == n_segs;
		char name[64];
		seg_name(name, sizeof(name), segs[i]);
		/* records missing below `from` were trimmed after a checkpoint */
		bool trimmed_gap = segs[i] > expect && segs[i] <= from;
		if (segs[i] != expect && replay && !trimmed_gap) {
			char why[96];
			if (segs[i] > expect)
				snprintf(why, sizeof(why), "records %llu..%llu are missing", (unsigned long long)expect,
					 (unsigned long long)(segs[i] - 1));
			else
				snprintf(why, sizeof(why), "overlaps the previous segment (which ends at %llu)",
					 (unsigned long long)expect);
			log_error("event_log_corrupt", "dir=%s segment=%s reason=\"%s\" "
				  "detail=\"replay stops here; later segments are kept, not replayed\"",
				  l->dir, name, why);
			replay = false;
			rec->stopped = true;
		}
		int fd = openat(l->dir_fd, name, (last ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			goto fail;
		}
		uint64_t size = 0;
		struct scan sc;
		uint64_t skip = from > segs[i] ? from - segs[i] : 0;
		r = scan_fd(fd, &size, skip, replay ? fn : NULL, ctx, &sc);
		if (r) {
			close(fd);
			goto fail;
		}
		if (replay) {
			rec->events += sc.records > skip ? sc.records - skip : 0;
			rec->bytes += sc.good_end;
		} else {
			rec->unreplayed_bytes += sc.good_end;
		}
		if (sc.why && last) {
			/* A torn append from a crash: never replayed, cut so the
			 * next record follows the last good one. */
			if (ftruncate(fd, (off_t)sc.good_end) || fdatasync(fd)) {
				r = -errno;
				close(fd);
				goto fail;
			}
			rec->cut_bytes = size - sc.good_end;
			log_warn("event_log_tail_cut", "dir=%s segment=%s offset=%llu cut_bytes=%llu reason=\"%s\"",
				 l->dir, name, (unsigned long long)sc.good_end, (unsigned long long)rec->cut_bytes,
				 sc.why);
		} else if (sc.why) {
			log_error("event_log_corrupt", "dir=%s segment=%s offset=%llu reason=\"%s\" bad_bytes=%llu "
				  "detail=\"replay stops here; later segments are kept, not replayed\"",
				  l->dir, name, (unsigned long long)sc.good_end, sc.why,
				  (unsigned long long)(size - sc.good_end));
			if (replay)
				rec->stopped = true;
			replay = false;
			rec->unreplayed_bytes += size - sc.good_end;
		}
		expect = segs[i] + sc.records;
		if (last) {
			l->fd = fd;
			l->seg_first = segs[i];
			l->seg_records = l->synced_records = sc.records;
			l->seg_bytes = l->synced_bytes = sc.good_end;
		} else {
			close(fd);
		}
	}
	if (l->fd >= 0 && l->seg_first + l->seg_records < from) {
		/* The checkpoint covers more than the log holds: continue at its
		 * position so later records are not counted as covered by it. */
		log_warn("event_log_short", "dir=%s end=%llu checkpoint=%llu detail=\"the log ends before the "
			 "checkpoint's position: a new segment starts there\"", l->dir,
			 (unsigned long long)(l->seg_first + l->seg_records), (unsigned long long)from);
		int fd = seg_create(l, from);
		if (fd < 0) {
			r = fd;
			goto fail;
		}
		close(l->fd);
		l->fd = fd;
		l->seg_first = from;
		l->seg_records = l->seg_bytes = 0;
		l->synced_bytes = l->synced_records = 0;
	}
	if (l->fd < 0) {
		l->fd = seg_create(l, from);
		if (l->fd < 0) {
			r = l->fd;
			goto fail;
		}
		l->seg_first = from;
	}
	free(segs);
	rec->ms = (now_ns() - t0) / 1000000;
	return 0;
fail:
	free(segs);
	evlog_close(l);
	return r;
}

void evlog_close(struct evlog *l)
{
	if (l->fd >= 0) {
		int r = evlog_sync(l);
		if (r)
			log_error("event_log_sync_failed", "dir=%s err=\"%s\" detail=\"at close\"", l->dir, strerror(-r));
		close(l->fd);
	}
	if (l->dir_fd >= 0)
		close(l->dir_fd);   /* releases the flock */
	free(l->buf);
	l->buf = NULL;
	l->len = l->cap = l->written = 0;
	l->fd = l->dir_fd = -1;
}
