/* checkpoint.c: checkpoints of live state (see checkpoint.h for the format
 * and the theory of operation). */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "live/checkpoint.h"

_Static_assert(sizeof(struct ckpt_hdr) == 72, "checkpoint header layout changed: bump CKPT_MAGIC");
_Static_assert(sizeof(struct ckpt_blk) == 16, "checkpoint block header must be 16 bytes");

/* Largest encoded user: fixed part, touches, cart, purchases; the session
 * vector is added per dim. */
#define USER_FIXED (8 * 3 + 4 + 2 + 2 + 4 + 4)
#define TOUCH_BYTES 17
#define USER_MAX_NODIM (USER_FIXED + LIVE_RECENT * TOUCH_BYTES + LIVE_CART * 8 + LIVE_PURCHASED * 8)
#define ITEM_BYTES (8 + 8 + 4 + 4 + 1 + 8)

void ckpt_name(char *out, size_t len, uint64_t position)
{
	snprintf(out, len, "checkpoint-%020llu.ckpt", (unsigned long long)position);
}

/* "checkpoint-<digits>.ckpt[.tmp]" -> position; *tmp says which. */
static bool name_parse(const char *name, uint64_t *pos, bool *tmp)
{
	if (strncmp(name, "checkpoint-", 11))
		return false;
	const char *d = name + 11, *e = d;
	uint64_t v = 0;
	while (*e >= '0' && *e <= '9' && e - d < 20) {
		uint64_t nv = v * 10 + (uint64_t)(*e - '0');
		if (nv / 10 != v)
			return false;
		v = nv;
		e++;
	}
	if (e == d)
		return false;
	if (!strcmp(e, ".ckpt"))
		*tmp = false;
	else if (!strcmp(e, ".ckpt.tmp"))
		*tmp = true;
	else
		return false;
	*pos = v;
	return true;
}

static bool parse_wanted(const char *name, uint64_t *pos, void *want_tmp)
{
	bool tmp;
	return name_parse(name, pos, &tmp) && tmp == *(bool *)want_tmp;
}

/* Every name in the directory (tmp: the .tmp ones instead). */
static int list(int dir_fd, bool want_tmp, uint64_t **out, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	return dir_list_numbers(dir_fd, parse_wanted, &want_tmp, out, n_out);
}

int ckpt_list(int dir_fd, uint64_t **pos, size_t *n)
{
	*pos = NULL;
	*n = 0;
	return list(dir_fd, false, pos, n);
}

int ckpt_prune(int dir_fd, uint64_t position)
{
	int r = 0;
	for (int t = 0; t < 2; t++) {
		uint64_t *v = NULL;
		size_t n = 0;
		int e = list(dir_fd, t == 1, &v, &n);
		if (e) {
			r = e;
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			if (t == 0 && v[i] >= position)
				continue;
			char name[80];
			ckpt_name(name, sizeof(name), v[i]);
			if (t == 1)
				strcat(name, ".tmp");
			if (unlinkat(dir_fd, name, 0) && errno != ENOENT)
				r = -errno;
		}
		free(v);
	}
	if (fsync(dir_fd) && !r)
		r = -errno;
	return r;
}

/* ------------------------------------------------------------------ write */

struct wr {
	int fd;
	uint8_t *buf;       /* block header room + CKPT_BLOCK */
	size_t len;         /* payload bytes in buf */
	uint32_t kind;
	uint64_t bytes;
	int err;
};

static void wr_flush(struct wr *w)
{
	if (!w->len || w->err)
		return;
	struct ckpt_blk b = { w->kind, (uint32_t)w->len, XXH3_64bits(w->buf + sizeof(b), w->len) };
	memcpy(w->buf, &b, sizeof(b));
	w->err = fd_write_all(w->fd, w->buf, sizeof(b) + w->len);
	w->bytes += sizeof(b) + w->len;
	w->len = 0;
	/* A checkpoint is tens of milliseconds of CPU per 100k users: between
	 * blocks, let a request worker sharing this core (same real-time
	 * priority under chrt/CPUSchedulingPolicy) run. */
	sched_yield();
}

/* Room for `need` more payload bytes of this kind in the current block. */
static uint8_t *wr_room(struct wr *w, uint32_t kind, size_t need)
{
	if (w->kind != kind || w->len + need > CKPT_BLOCK) {
		wr_flush(w);
		w->kind = kind;
	}
	return w->buf + sizeof(struct ckpt_blk) + w->len;
}

#define PUT(p, v) do { __typeof__(v) v_ = (v); memcpy((p), &v_, sizeof(v_)); (p) += sizeof(v_); } while (0)

static void put_user(struct wr *w, const struct live_user *u, uint32_t dim)
{
	uint8_t *p0 = wr_room(w, CKPT_USERS, USER_MAX_NODIM + (size_t)dim * 4), *p = p0;
	uint32_t np = u->purchased ? u->purchased->n : 0;
	bool sess = u->session_weight > 0 && dim;
	PUT(p, u->key);
	PUT(p, u->first_seen_ms);
	PUT(p, u->last_seen_ms);
	PUT(p, u->n_interactions);
	PUT(p, u->n_recent);
	PUT(p, u->n_cart);
	PUT(p, sess ? u->session_weight : 0.0f);
	PUT(p, np);
	for (uint32_t i = 0; i < u->n_recent; i++) {
		PUT(p, u->recent[i].item_key);
		PUT(p, u->recent[i].ts_ms);
		PUT(p, u->recent[i].type);
	}
	memcpy(p, u->cart, (size_t)u->n_cart * 8);
	p += (size_t)u->n_cart * 8;
	if (np) {
		memcpy(p, u->purchased->order, (size_t)np * 8);
		p += (size_t)np * 8;
	}
	if (sess) {
		memcpy(p, u->session, (size_t)dim * 4);
		p += (size_t)dim * 4;
	}
	w->len += (size_t)(p - p0);
}

static void put_item(struct wr *w, const struct live_item *it)
{
	uint8_t *p0 = wr_room(w, CKPT_ITEMS, ITEM_BYTES), *p = p0;
	PUT(p, it->key);
	PUT(p, it->stock);
	PUT(p, it->price);
	PUT(p, it->boost);
	PUT(p, it->available);
	PUT(p, it->updated_ms);
	w->len += (size_t)(p - p0);
}

static void put_source(struct wr *w, const struct upd_source_pos *s, bool cur)
{
	size_t sl = strnlen(s->stream, EVENT_ID_MAX - 1);
	uint8_t *p0 = wr_room(w, CKPT_SOURCES, 8 + 4 + 4 + 8 + 1 + 1 + sl), *p = p0;
	PUT(p, s->stream_key);
	PUT(p, s->part);
	PUT(p, s->events);
	PUT(p, s->offset);
	PUT(p, (uint8_t)cur);
	PUT(p, (uint8_t)sl);
	memcpy(p, s->stream, sl);
	p += sl;
	w->len += (size_t)(p - p0);
}

int ckpt_write(int dir_fd, uint64_t position, struct live *lv, const struct upd_source_pos *src, uint32_t src_cap,
	       const struct upd_source_pos *cur, struct ckpt_stats *st)
{
	uint64_t t0 = now_ns();
	char name[64], tmp[80];
	ckpt_name(name, sizeof(name), position);
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	memset(st, 0, sizeof(*st));
	struct wr w = { .fd = -1 };
	w.buf = malloc(sizeof(struct ckpt_blk) + CKPT_BLOCK);
	if (!w.buf)
		return -ENOMEM;
	w.fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (w.fd < 0) {
		int e = -errno;
		free(w.buf);
		return e;
	}
	struct ckpt_hdr h = { .magic = CKPT_MAGIC, .version = CKPT_VERSION, .position = position,
			      .clock_ms = ck_pr_load_64(&lv->clock_ms), .dim = lv->dim, .created_ms = now_wall_ms() };
	h.users = ck_hs_count(&lv->users);
	h.items = ck_hs_count(&lv->items);
	for (uint32_t i = 0; i < src_cap; i++)
		h.sources += src[i].stream_key != 0;
	h.sum = XXH3_64bits(&h, offsetof(struct ckpt_hdr, sum));
	w.err = fd_write_all(w.fd, &h, sizeof(h));
	w.bytes = sizeof(h);

	uint64_t nu = 0, ni = 0, ns = 0;
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	void *obj;
	while (!w.err && ck_hs_next(&lv->users, &it, &obj)) {
		put_user(&w, obj, lv->dim);
		nu++;
	}
	ck_hs_iterator_init(&it);
	while (!w.err && ck_hs_next(&lv->items, &it, &obj)) {
		put_item(&w, obj);
		ni++;
	}
	for (uint32_t i = 0; i < src_cap && !w.err; i++)
		if (src[i].stream_key) {
			put_source(&w, &src[i], &src[i] == cur);
			ns++;
		}
	wr_flush(&w);
	uint64_t counts[3] = { nu, ni, ns };
	uint8_t *p = wr_room(&w, CKPT_END, sizeof(counts));
	memcpy(p, counts, sizeof(counts));
	w.len += sizeof(counts);
	wr_flush(&w);
	int r = w.err;
	if (!r && (nu != h.users || ni != h.items || ns != h.sources))
		r = -EIO;   /* cannot happen with one writer; refuse rather than write a lie */
	if (!r && fdatasync(w.fd))
		r = -errno;
	if (close(w.fd) && !r)
		r = -errno;
	free(w.buf);
	if (!r && renameat(dir_fd, tmp, dir_fd, name))
		r = -errno;
	if (!r && fsync(dir_fd))
		r = -errno;
	if (r) {
		unlinkat(dir_fd, tmp, 0);
		return r;
	}
	st->position = position;
	st->users = nu;
	st->items = ni;
	st->sources = ns;
	st->bytes = w.bytes;
	st->created_ms = h.created_ms;
	st->ms = (now_ns() - t0) / 1000000;
	snprintf(st->name, sizeof(st->name), "%s", name);
	return 0;
}

/* ------------------------------------------------------------------- load */

struct rd {
	const uint8_t *p, *end;
};

static bool get(struct rd *r, void *out, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		return false;
	memcpy(out, r->p, n);
	r->p += n;
	return true;
}

static int load_user(struct rd *r, struct live *lv, uint32_t file_dim)
{
	struct live_user *u = calloc(1, live_user_size(lv));
	if (!u)
		return -ENOMEM;
	u->dim = lv->dim;
	uint32_t np = 0;
	struct live_keyset *ks = NULL;
	bool ok = get(r, &u->key, 8) && get(r, &u->first_seen_ms, 8) && get(r, &u->last_seen_ms, 8) &&
		  get(r, &u->n_interactions, 4) && get(r, &u->n_recent, 2) && get(r, &u->n_cart, 2) &&
		  get(r, &u->session_weight, 4) && get(r, &np, 4);
	ok = ok && u->n_recent <= LIVE_RECENT && u->n_cart <= LIVE_CART && np <= LIVE_PURCHASED &&
	     u->session_weight >= 0 && u->session_weight <= 1000.0f;
	for (uint32_t i = 0; ok && i < u->n_recent; i++)
		ok = get(r, &u->recent[i].item_key, 8) && get(r, &u->recent[i].ts_ms, 8) &&
		     get(r, &u->recent[i].type, 1) && u->recent[i].type < EVENT__TYPE_COUNT;
	ok = ok && get(r, u->cart, (size_t)u->n_cart * 8);
	if (ok && np) {
		ks = malloc(sizeof(*ks) + 2 * (size_t)np * 8);
		if (!ks) {
			free(u);
			return -ENOMEM;
		}
		ks->n = np;
		ks->order = ks->keys + np;
		ok = get(r, ks->order, (size_t)np * 8);
		if (ok) {
			memcpy(ks->keys, ks->order, (size_t)np * 8);
			qsort(ks->keys, np, 8, cmp_u64);
			for (uint32_t i = 1; i < np && ok; i++)
				ok = ks->keys[i] != ks->keys[i - 1];
		}
	}
	if (ok && u->session_weight > 0 && file_dim) {
		if (file_dim == lv->dim) {
			ok = get(r, u->session, (size_t)file_dim * 4);
		} else {
			/* the snapshot's dimension changed: the vector means nothing now */
			ok = (size_t)(r->end - r->p) >= (size_t)file_dim * 4;
			r->p += ok ? (size_t)file_dim * 4 : 0;
			u->session_weight = 0;
		}
	} else if (!file_dim) {
		u->session_weight = 0;
	}
	if (!ok) {
		free(ks);
		free(u);
		return -EBADMSG;
	}
	u->purchased = ks;
	return live_restore_user(lv, u);
}

static int load_item(struct rd *r, struct live *lv)
{
	struct live_item *it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	if (!(get(r, &it->key, 8) && get(r, &it->stock, 8) && get(r, &it->price, 4) && get(r, &it->boost, 4) &&
	      get(r, &it->available, 1) && get(r, &it->updated_ms, 8)) ||
	    it->available < -1 || it->available > 1) {
		free(it);
		return -EBADMSG;
	}
	return live_restore_item(lv, it);
}

static int load_source(struct rd *r, ckpt_source_fn fn, void *ctx)
{
	struct upd_source_pos s;
	uint8_t cur, sl;
	memset(&s, 0, sizeof(s));
	if (!(get(r, &s.stream_key, 8) && get(r, &s.part, 4) && get(r, &s.events, 4) && get(r, &s.offset, 8) &&
	      get(r, &cur, 1) && get(r, &sl, 1)) ||
	    sl >= EVENT_ID_MAX || !s.stream_key || cur > 1 || !get(r, s.stream, sl))
		return -EBADMSG;
	s.stream[sl] = 0;
	return fn ? fn(ctx, &s, cur) : 0;
}

static int load_image(const uint8_t *m, uint64_t size, uint64_t position, struct live *lv, ckpt_source_fn fn,
		      void *ctx, struct ckpt_stats *st)
{
	struct ckpt_hdr h;
	if (size < sizeof(h))
		return -EBADMSG;
	memcpy(&h, m, sizeof(h));
	if (h.magic != CKPT_MAGIC || h.version != CKPT_VERSION || h.position != position ||
	    h.sum != XXH3_64bits(&h, offsetof(struct ckpt_hdr, sum)) || h.dim > 65536)
		return -EBADMSG;
	uint64_t off = sizeof(h), n[3] = { 0, 0, 0 };
	uint32_t last_kind = 0;
	bool end = false;
	while (off < size && !end) {
		struct ckpt_blk b;
		if (size - off < sizeof(b))
			return -EBADMSG;
		memcpy(&b, m + off, sizeof(b));
		off += sizeof(b);
		if (b.len > CKPT_BLOCK || size - off < b.len || XXH3_64bits(m + off, b.len) != b.sum ||
		    b.kind < last_kind)
			return -EBADMSG;
		last_kind = b.kind;
		struct rd r = { m + off, m + off + b.len };
		int e = 0;
		switch (b.kind) {
		case CKPT_USERS:
			while (!e && r.p < r.end) {
				e = load_user(&r, lv, h.dim);
				n[0]++;
			}
			break;
		case CKPT_ITEMS:
			while (!e && r.p < r.end) {
				e = load_item(&r, lv);
				n[1]++;
			}
			break;
		case CKPT_SOURCES:
			while (!e && r.p < r.end) {
				e = load_source(&r, fn, ctx);
				n[2]++;
			}
			break;
		case CKPT_END: {
			uint64_t c[3];
			if (b.len != sizeof(c))
				return -EBADMSG;
			memcpy(c, r.p, sizeof(c));
			if (c[0] != n[0] || c[1] != n[1] || c[2] != n[2])
				return -EBADMSG;
			end = true;
			break;
		}
		default:
			return -EBADMSG;
		}
		if (e)
			return e;
		off += b.len;
	}
	if (!end || off != size || n[0] != h.users || n[1] != h.items || n[2] != h.sources)
		return -EBADMSG;
	ck_pr_store_64(&lv->clock_ms, h.clock_ms);
	st->position = position;
	st->users = n[0];
	st->items = n[1];
	st->sources = n[2];
	st->bytes = size;
	st->created_ms = h.created_ms;
	return 0;
}

int ckpt_load(int dir_fd, uint64_t position, struct live *lv, ckpt_source_fn fn, void *ctx, struct ckpt_stats *st)
{
	uint64_t t0 = now_ns();
	memset(st, 0, sizeof(*st));
	ckpt_name(st->name, sizeof(st->name), position);
	int fd = openat(dir_fd, st->name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat sb;
	if (fstat(fd, &sb)) {
		int e = -errno;
		close(fd);
		return e;
	}
	int r = -EBADMSG;
	if (sb.st_size >= (off_t)sizeof(struct ckpt_hdr)) {
		void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			r = -errno;
		} else {
			madvise(m, (size_t)sb.st_size, MADV_SEQUENTIAL);
			r = load_image(m, (uint64_t)sb.st_size, position, lv, fn, ctx, st);
			munmap(m, (size_t)sb.st_size);
		}
	}
	close(fd);
	st->ms = (now_ns() - t0) / 1000000;
	return r;
}
