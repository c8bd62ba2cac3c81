/* snapb.c: the snapshot builder (contract in snapb.h, layout in
 * snap_format.h).
 *
 * The file is produced in one sequential pass: sections are streamed
 * through a 1 MiB buffer, each section's XXH3 is computed over the buffer
 * as it is flushed, and the header, which needs every offset and checksum,
 * is written last at offset 0. The catalogue is never copied: beyond the
 * input, memory is two hash tables and a few uint32 per item, so a 1M x 64
 * build needs ~100 MB besides its input, not a second copy of the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include "snap/snap.h"
#include "snap/snapb.h"

#define WR_BUF_SIZE (1u << 20)
#define ID_MAX_LEN 255u
#define POPULAR_DEFAULT 1000u

float snapb_event_weight(const char *type, size_t len)
{
	static const struct {
		const char *name;
		float weight;
	} table[] = {
		{ "view", 1.0f },
		{ "click", 1.0f },
		{ "rating", 1.0f },
		{ "add_to_cart", 3.0f },
		{ "purchase", 5.0f },
	};
	for (size_t i = 0; i < ARRAY_SIZE(table); i++)
		if (strlen(table[i].name) == len && !memcmp(table[i].name, type, len))
			return table[i].weight;
	return -1.0f;
}

__attribute__((format(printf, 3, 4)))
static int berr(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static inline struct str cstr(const char *s)
{
	struct str r = { s ? s : "", s ? strlen(s) : 0 };
	return r;
}

/* ---- string sources: the sections' strings, read from the input ---- */

struct src {
	const struct snapb_input *in;
	const uint32_t *cat_first;   /* category -> first item using it */
};
typedef struct str (*str_get_fn)(const struct src *c, uint32_t i);

static struct str get_item_id(const struct src *c, uint32_t i) { return cstr(c->in->items[i].id); }
static struct str get_item_title(const struct src *c, uint32_t i) { return cstr(c->in->items[i].title); }
static struct str get_user_id(const struct src *c, uint32_t i) { return cstr(c->in->user_ids[i]); }
static struct str get_cat_name(const struct src *c, uint32_t i)
{
	return cstr(c->in->items[c->cat_first[i]].category);
}

/* ---- open-addressing table, the same shape as the file's index ---- */

struct htab {
	struct snap_hash_slot *slots;
	uint64_t cap, mask;
};

static int htab_init(struct htab *t, uint32_t count)
{
	uint64_t cap = 1;
	while (cap < 2 * (uint64_t)count)
		cap <<= 1;
	t->slots = malloc(cap * sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	for (uint64_t p = 0; p < cap; p++)
		t->slots[p] = (struct snap_hash_slot){ .hash = 0, .index = SNAP_EMPTY_SLOT };
	t->cap = cap;
	t->mask = cap - 1;
	return 0;
}

/* The slot holding string `s` (hash h), or the free slot where it goes. */
static struct snap_hash_slot *htab_lookup(struct htab *t, uint64_t h, struct str s,
					  str_get_fn get, const struct src *c)
{
	for (uint64_t p = h & t->mask;; p = (p + 1) & t->mask) {
		struct snap_hash_slot *sl = &t->slots[p];
		if (sl->index == SNAP_EMPTY_SLOT)
			return sl;
		if (sl->hash == h) {
			struct str o = get(c, sl->index);
			if (o.len == s.len && !memcmp(o.p, s.p, s.len))
				return sl;
		}
	}
}

/* Builds the index of `count` ids, refusing empty, long and duplicate ones. */
static int build_index(struct htab *t, uint32_t count, str_get_fn get, const struct src *c,
		       const char *what, char *err, size_t errlen)
{
	if (htab_init(t, count)) {
		berr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < count; i++) {
		struct str s = get(c, i);
		if (s.len == 0)
			return berr(err, errlen, "%s %u: empty id", what, i);
		if (s.len > ID_MAX_LEN)
			return berr(err, errlen, "%s %u: id of %zu bytes, at most %u",
				    what, i, s.len, ID_MAX_LEN);
		uint64_t h = XXH3_64bits(s.p, s.len);
		struct snap_hash_slot *sl = htab_lookup(t, h, s, get, c);
		if (sl->index != SNAP_EMPTY_SLOT)
			return berr(err, errlen, "duplicate %s id \"%.*s\" (rows %u and %u)",
				    what, (int)s.len, s.p, sl->index, i);
		sl->hash = h;
		sl->index = i;
	}
	return 0;
}

/* ---- input checks ---- */

static int check_vectors(const float *v, uint32_t count, uint32_t dim, const char *what,
			 str_get_fn get, const struct src *c, char *err, size_t errlen)
{
	for (uint32_t r = 0; r < count; r++) {
		const float *row = v + (size_t)r * dim;
		for (uint32_t j = 0; j < dim; j++) {
			if (unlikely(!isfinite(row[j]))) {
				struct str id = get(c, r);
				return berr(err, errlen, "%s %u (\"%.*s\"): embedding[%u] is NaN or infinite",
					    what, r, (int)id.len, id.p, j);
			}
		}
	}
	return 0;
}

static int check_input(const struct snapb_input *in, char *err, size_t errlen)
{
	if (in->dim == 0 || in->dim > SNAP_MAX_DIM)
		return berr(err, errlen, "dim %u out of range 1..%u", in->dim, SNAP_MAX_DIM);
	if (in->model_version && strlen(in->model_version) >= SNAP_MODEL_VERSION_LEN)
		return berr(err, errlen, "model_version of %zu bytes, at most %u",
			    strlen(in->model_version), SNAP_MODEL_VERSION_LEN - 1);
	if (in->n_items == 0 || !in->items || !in->item_emb)
		return berr(err, errlen, "no items");
	if (in->n_users && (!in->user_ids || !in->user_emb))
		return berr(err, errlen, "%u users but no user ids or embeddings", in->n_users);
	for (uint32_t i = 0; i < in->n_items; i++) {
		const struct snapb_item *it = &in->items[i];
		if (!isfinite(it->price))
			return berr(err, errlen, "item %u: price is NaN or infinite", i);
		if (in->item_popularity && !isfinite(in->item_popularity[i]))
			return berr(err, errlen, "item %u: popularity is NaN or infinite", i);
	}
	return 0;
}

/* ---- categories: interned in first-seen order ---- */

static int intern_categories(const struct snapb_input *in, uint32_t *cat_of, uint32_t *cat_first,
			     uint32_t *n_out, char *err, size_t errlen)
{
	struct src c = { in, cat_first };
	struct htab t;
	uint32_t n = 0;

	if (htab_init(&t, in->n_items)) {
		berr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < in->n_items; i++) {
		struct str s = cstr(in->items[i].category);
		uint64_t h = XXH3_64bits(s.p, s.len);
		struct snap_hash_slot *sl = htab_lookup(&t, h, s, get_cat_name, &c);
		if (sl->index == SNAP_EMPTY_SLOT) {
			sl->hash = h;
			sl->index = n;
			cat_first[n++] = i;
		}
		cat_of[i] = sl->index;
	}
	free(t.slots);
	*n_out = n;
	return 0;
}

/* ---- popular: top k servable items, score desc, index asc ---- */

struct pop {
	const float *score;   /* NULL = all zero */
};

static inline float pop_score(const struct pop *p, uint32_t i)
{
	return p->score ? p->score[i] : 0.0f;
}

static inline bool pop_better(const struct pop *p, uint32_t a, uint32_t b)
{
	float sa = pop_score(p, a), sb = pop_score(p, b);
	return sa > sb || (sa == sb && a < b);
}

/* Min-heap on "better": the root is the worst item kept. */
static void heap_down(const struct pop *p, uint32_t *h, uint32_t n, uint32_t k)
{
	for (;;) {
		uint32_t l = 2 * k + 1, r = l + 1, w = k;
		if (l < n && pop_better(p, h[w], h[l]))
			w = l;
		if (r < n && pop_better(p, h[w], h[r]))
			w = r;
		if (w == k)
			return;
		uint32_t t = h[k];
		h[k] = h[w];
		h[w] = t;
		k = w;
	}
}

static void heap_up(const struct pop *p, uint32_t *h, uint32_t k)
{
	while (k > 0) {
		uint32_t parent = (k - 1) / 2;
		if (!pop_better(p, h[parent], h[k]))
			return;
		uint32_t t = h[k];
		h[k] = h[parent];
		h[parent] = t;
		k = parent;
	}
}

/* Fills out[0..return) best first; out has room for k. O(n log k). */
static uint32_t select_popular(const struct snapb_input *in, uint32_t k, uint32_t *out)
{
	struct pop p = { in->item_popularity };
	uint32_t n = 0;
	if (k == 0)
		return 0;
	for (uint32_t i = 0; i < in->n_items; i++) {
		const struct snapb_item *it = &in->items[i];
		if (!it->available || it->stock == 0)
			continue;
		if (n < k) {
			out[n] = i;
			heap_up(&p, out, n++);
		} else if (pop_better(&p, i, out[0])) {
			out[0] = i;
			heap_down(&p, out, n, 0);
		}
	}
	/* Pop the worst to the back until the array reads best first. */
	for (uint32_t m = n; m > 1; m--) {
		uint32_t t = out[0];
		out[0] = out[m - 1];
		out[m - 1] = t;
		heap_down(&p, out, m - 1, 0);
	}
	return n;
}

/* ---- category popularity: per category, the top k servable items ---- */

static int cmp_cat_pop(const void *a, const void *b, void *ctx)
{
	const struct snapb_input *in = ((const void *const *)ctx)[0];
	const uint32_t *cat_of = ((const void *const *)ctx)[1];
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	if (cat_of[x] != cat_of[y])
		return cat_of[x] < cat_of[y] ? -1 : 1;
	struct pop p = { in->item_popularity };
	return pop_better(&p, x, y) ? -1 : pop_better(&p, y, x) ? 1 : 0;
}

/* Fills off[n_cat + 1] and items (room for n_items); returns 0 or -ENOMEM. */
static int select_cat_popular(const struct snapb_input *in, const uint32_t *cat_of, uint32_t n_cat, uint32_t k,
			      uint32_t *off, uint32_t *items)
{
	uint32_t *all = malloc((size_t)in->n_items * sizeof(*all)), m = 0;
	if (!all)
		return -ENOMEM;
	for (uint32_t i = 0; i < in->n_items; i++)
		if (in->items[i].available && in->items[i].stock > 0)
			all[m++] = i;
	const void *ctx[2] = { in, cat_of };
	qsort_r(all, m, sizeof(*all), cmp_cat_pop, ctx);
	uint32_t w = 0, j = 0;
	for (uint32_t c = 0; c < n_cat; c++) {
		off[c] = w;
		uint32_t taken = 0;
		for (; j < m && cat_of[all[j]] == c; j++)
			if (taken < k)
				items[w++] = all[j], taken++;
	}
	off[n_cat] = w;
	free(all);
	return 0;
}

/* ---- neighbours: co-visitation counts, topped up from the index ---- */

static float dot_rows(const float *a, const float *b, uint32_t dim)
{
	double s = 0;
	for (uint32_t d = 0; d < dim; d++)
		s += (double)a[d] * b[d];
	return (float)s;
}

static int cmp_event(const void *a, const void *b)
{
	const struct snapb_event *x = a, *y = b;
	if (x->user != y->user)
		return x->user < y->user ? -1 : 1;
	if (x->ts_ms != y->ts_ms)
		return x->ts_ms < y->ts_ms ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

/* Calls fn(ctx, a, b) for each ordered co-visited pair, both directions:
 * the same user, at most SNAPB_COVISIT_LOOKBACK events and `window` ms
 * apart, two different items. `ev` is sorted by user then time. */
static void covisit_pairs(const struct snapb_event *ev, uint64_t n, int64_t window,
			  void (*fn)(void *, uint32_t, uint32_t), void *ctx)
{
	for (uint64_t j = 1; j < n; j++) {
		for (uint64_t i = j; i-- > 0 && j - i <= SNAPB_COVISIT_LOOKBACK;) {
			if (ev[i].user != ev[j].user || ev[j].ts_ms - ev[i].ts_ms > window)
				break;
			if (ev[i].item == ev[j].item)
				continue;
			fn(ctx, ev[i].item, ev[j].item);
			fn(ctx, ev[j].item, ev[i].item);
		}
	}
}

struct adj {
	uint64_t *off;      /* n_items + 1 */
	uint32_t *to;
};

static void adj_count(void *ctx, uint32_t a, uint32_t b)
{
	(void)b;
	((struct adj *)ctx)->off[a + 1]++;
}

static void adj_fill(void *ctx, uint32_t a, uint32_t b)
{
	struct adj *g = ctx;
	g->to[g->off[a]++] = b;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Fills the first filled[i] entries of each row with item i's most
 * co-visited items (count desc, index asc), scored by inner product. */
static int covisit_neighbors(const struct snapb_input *in, uint32_t k, struct snap_neighbor *rows,
			     uint32_t *filled, uint64_t *pairs_out)
{
	uint32_t n = in->n_items;
	struct adj g = { 0 };
	struct snapb_event *ev = NULL;
	struct topk_item *h = NULL;
	int rc = -ENOMEM;
	uint64_t m = 0;

	ev = malloc(MAX(in->n_events, 1) * sizeof(*ev));
	g.off = calloc((size_t)n + 1, sizeof(*g.off));
	h = malloc((size_t)k * sizeof(*h));
	if (!ev || !g.off || !h)
		goto out;
	for (uint64_t e = 0; e < in->n_events; e++)
		if (in->events[e].item < n)
			ev[m++] = in->events[e];
	qsort(ev, m, sizeof(*ev), cmp_event);
	int64_t window = in->covisit_window_ms > 0 ? in->covisit_window_ms : SNAPB_COVISIT_WINDOW_MS;
	covisit_pairs(ev, m, window, adj_count, &g);
	for (uint32_t i = 0; i < n; i++)
		g.off[i + 1] += g.off[i];
	*pairs_out = g.off[n];
	g.to = malloc(MAX(g.off[n], 1) * sizeof(*g.to));
	if (!g.to)
		goto out;
	covisit_pairs(ev, m, window, adj_fill, &g);   /* off[a] now ends list a */
	for (uint32_t a = 0; a < n; a++) {
		uint64_t beg = a ? g.off[a - 1] : 0, end = g.off[a];
		uint32_t nh = 0;
		qsort(g.to + beg, end - beg, sizeof(*g.to), cmp_u32);
		for (uint64_t p = beg; p < end;) {
			uint64_t q = p;
			while (q < end && g.to[q] == g.to[p])
				q++;
			topk_push(h, &nh, k, (struct topk_item){ g.to[p], (float)(q - p) });
			p = q;
		}
		topk_sort(h, nh);
		struct snap_neighbor *row = rows + (size_t)a * k;
		for (uint32_t j = 0; j < nh; j++) {
			uint32_t b = h[j].item;
			row[j] = (struct snap_neighbor){ b, dot_rows(in->item_emb + (size_t)a * in->dim,
								     in->item_emb + (size_t)b * in->dim, in->dim) };
		}
		filled[a] = nh;
	}
	rc = 0;
out:
	free(ev);
	free(g.off);
	free(g.to);
	free(h);
	return rc;
}

/* ---- sequential writer ---- */

struct wr {
	int fd;
	int rc;                       /* first error, sticky */
	uint8_t *buf;
	size_t fill;                  /* bytes in buf */
	size_t hashed;                /* buf[0..hashed) is not part of the section hash */
	uint64_t buf_off;             /* file offset of buf[0] */
	XXH3_state_t *xs;
	struct snap_header *hdr;
	struct snap_section_entry *cur;
};

static const uint8_t zeros[SNAP_ALIGN];

static inline uint64_t wr_pos(const struct wr *w) { return w->buf_off + w->fill; }

static void wr_flush(struct wr *w)
{
	if (w->cur && w->fill > w->hashed)
		XXH3_64bits_update(w->xs, w->buf + w->hashed, w->fill - w->hashed);
	size_t done = 0;
	while (done < w->fill && !w->rc) {
		ssize_t n = pwrite(w->fd, w->buf + done, w->fill - done, (off_t)(w->buf_off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			w->rc = n < 0 ? -errno : -EIO;
		else
			done += (size_t)n;
	}
	w->buf_off += w->fill;
	w->fill = w->hashed = 0;
}

static inline void wr_put(struct wr *w, const void *p, size_t n)
{
	const uint8_t *s = p;
	while (n) {
		if (w->fill == WR_BUF_SIZE)
			wr_flush(w);
		size_t k = MIN(n, WR_BUF_SIZE - w->fill);
		memcpy(w->buf + w->fill, s, k);
		w->fill += k;
		s += k;
		n -= k;
	}
}

static inline void wr_u32(struct wr *w, uint32_t x) { wr_put(w, &x, sizeof(x)); }
static inline void wr_f32(struct wr *w, float x) { wr_put(w, &x, sizeof(x)); }

static void wr_begin(struct wr *w, uint32_t id)
{
	uint64_t pad = (SNAP_ALIGN - wr_pos(w) % SNAP_ALIGN) % SNAP_ALIGN;
	wr_put(w, zeros, pad);
	w->hashed = w->fill;
	XXH3_64bits_reset(w->xs);
	w->cur = &w->hdr->sections[w->hdr->n_sections++];
	w->cur->id = id;
	w->cur->offset = wr_pos(w);
}

static void wr_end(struct wr *w)
{
	XXH3_64bits_update(w->xs, w->buf + w->hashed, w->fill - w->hashed);
	w->hashed = w->fill;
	w->cur->length = wr_pos(w) - w->cur->offset;
	w->cur->checksum = XXH3_64bits_digest(w->xs);
	w->cur = NULL;
}

static int wr_strtab(struct wr *w, uint32_t id, uint32_t count, str_get_fn get,
		     const struct src *c, char *err, size_t errlen)
{
	uint64_t off = 0;
	wr_begin(w, id);
	wr_u32(w, 0);
	for (uint32_t i = 0; i < count; i++) {
		off += get(c, i).len;
		if (off > UINT32_MAX)
			return berr(err, errlen, "section %s: strings exceed 4 GiB",
				    snap_section_name(id));
		wr_u32(w, (uint32_t)off);
	}
	for (uint32_t i = 0; i < count; i++) {
		struct str s = get(c, i);
		wr_put(w, s.p, s.len);
	}
	wr_end(w);
	return 0;
}

static void wr_index(struct wr *w, uint32_t id, const struct htab *t)
{
	wr_begin(w, id);
	wr_put(w, t->slots, t->cap * sizeof(*t->slots));
	wr_end(w);
}

static void wr_emb(struct wr *w, uint32_t id, const float *v, uint32_t count, uint32_t dim)
{
	size_t pad = (snap_stride_for_dim(dim) - dim) * sizeof(float);
	wr_begin(w, id);
	for (uint32_t r = 0; r < count; r++) {
		wr_put(w, v + (size_t)r * dim, dim * sizeof(float));
		wr_put(w, zeros, pad);
	}
	wr_end(w);
}

static int fsync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

int snapb_write(const struct snapb_input *in, const char *path, char *err, size_t errlen)
{
	struct htab items = { 0 }, users = { 0 };
	uint32_t *cat_of = NULL, *cat_first = NULL, *popular = NULL, *cat_pop = NULL, *filled = NULL;
	struct snap_neighbor *nbr = NULL;
	struct ann_built ann = { 0 };
	bool ann_made = false;
	struct snap_header *hdr = NULL;
	struct wr w = { .fd = -1 };
	char tmp[PATH_MAX];
	bool tmp_made = false;
	uint32_t n = in->n_items, n_cat = 0, n_pop;
	int rc;

	if ((rc = check_input(in, err, errlen)))
		return rc;
	struct src c = { in, NULL };
	if ((rc = build_index(&items, n, get_item_id, &c, "item", err, errlen)) ||
	    (rc = check_vectors(in->item_emb, n, in->dim, "item", get_item_id, &c, err, errlen)))
		goto fail;
	if (in->n_users &&
	    ((rc = build_index(&users, in->n_users, get_user_id, &c, "user", err, errlen)) ||
	     (rc = check_vectors(in->user_emb, in->n_users, in->dim, "user", get_user_id, &c, err, errlen))))
		goto fail;

	uint32_t k = in->popular_k ? MIN(in->popular_k, n) : MIN(n, POPULAR_DEFAULT);
	cat_of = malloc((size_t)n * sizeof(*cat_of));
	cat_first = malloc((size_t)n * sizeof(*cat_first));
	popular = malloc((size_t)MAX(k, 1) * sizeof(*popular));
	hdr = calloc(1, sizeof(*hdr));
	w.buf = malloc(WR_BUF_SIZE);
	w.xs = XXH3_createState();
	if (!cat_of || !cat_first || !popular || !hdr || !w.buf || !w.xs) {
		berr(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = intern_categories(in, cat_of, cat_first, &n_cat, err, errlen)))
		goto fail;
	c.cat_first = cat_first;
	n_pop = select_popular(in, k, popular);
	cat_pop = malloc(((size_t)n_cat + 1 + n) * sizeof(*cat_pop));
	if (!cat_pop || select_cat_popular(in, cat_of, n_cat, k, cat_pop, cat_pop + n_cat + 1)) {
		berr(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}

	uint64_t t0 = now_ns();
	if (in->ann_enabled || in->neighbors_k) {
		if ((rc = ann_build(in->item_emb, n, in->dim, &in->ann, in->neighbors_k > 0, &ann, err, errlen)))
			goto fail;
		ann_made = true;
	}
	uint64_t t1 = now_ns(), pairs = 0;
	if (in->neighbors_k) {
		uint32_t nk = in->neighbors_k;
		if (nk > 1024) {
			rc = berr(err, errlen, "neighbors_k %u, at most 1024", nk);
			goto fail;
		}
		nbr = calloc((size_t)n * nk, sizeof(*nbr));
		filled = calloc(n, sizeof(*filled));
		if (!nbr || !filled || (in->n_events && covisit_neighbors(in, nk, nbr, filled, &pairs)) ||
		    ann_fill_neighbors(&ann, in->item_emb, n, nk, nbr, filled)) {
			berr(err, errlen, "out of memory");
			rc = -ENOMEM;
			goto fail;
		}
	}
	if (in->stats) {
		in->stats->ann_s = (double)(t1 - t0) / 1e9;
		in->stats->neighbors_s = (double)(now_ns() - t1) / 1e9;
		in->stats->covisit_pairs = pairs;
		in->stats->nlist = in->ann_enabled ? ann.params.nlist : 0;
	}

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		rc = -ENAMETOOLONG;
		berr(err, errlen, "%s: path too long", path);
		goto fail;
	}
	w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w.fd < 0) {
		rc = -errno;
		berr(err, errlen, "open %s: %s", tmp, strerror(-rc));
		goto fail;
	}
	tmp_made = true;

	w.hdr = hdr;
	w.buf_off = sizeof(*hdr);
	/* Small sections first; the embeddings, most of the file, last. */
	if ((rc = wr_strtab(&w, SNAP_SEC_ITEM_IDS, n, get_item_id, &c, err, errlen)))
		goto fail;
	wr_index(&w, SNAP_SEC_ITEM_INDEX, &items);
	if ((rc = wr_strtab(&w, SNAP_SEC_ITEM_TITLES, n, get_item_title, &c, err, errlen)) ||
	    (rc = wr_strtab(&w, SNAP_SEC_CATEGORY_NAMES, n_cat, get_cat_name, &c, err, errlen)))
		goto fail;
	wr_begin(&w, SNAP_SEC_ITEM_CATEGORY);
	wr_put(&w, cat_of, (size_t)n * sizeof(*cat_of));
	wr_end(&w);
	wr_begin(&w, SNAP_SEC_ITEM_PRICE);
	for (uint32_t i = 0; i < n; i++)
		wr_f32(&w, in->items[i].price);
	wr_end(&w);
	wr_begin(&w, SNAP_SEC_ITEM_POPULARITY);
	for (uint32_t i = 0; i < n; i++)
		wr_f32(&w, in->item_popularity ? in->item_popularity[i] : 0.0f);
	wr_end(&w);
	wr_begin(&w, SNAP_SEC_ITEM_STOCK);
	for (uint32_t i = 0; i < n; i++)
		wr_u32(&w, in->items[i].stock);
	wr_end(&w);
	wr_begin(&w, SNAP_SEC_ITEM_FLAGS);
	for (uint32_t i = 0; i < n; i++)
		wr_u32(&w, in->items[i].available ? SNAP_ITEM_AVAILABLE : 0);
	wr_end(&w);
	wr_begin(&w, SNAP_SEC_POPULAR);
	wr_put(&w, popular, (size_t)n_pop * sizeof(*popular));
	wr_end(&w);
	wr_begin(&w, SNAP_SEC_CATEGORY_POPULAR);
	wr_put(&w, cat_pop, ((size_t)n_cat + 1 + cat_pop[n_cat]) * sizeof(*cat_pop));
	wr_end(&w);
	if (nbr) {
		struct snap_neighbors_header nh = { .k = in->neighbors_k };
		wr_begin(&w, SNAP_SEC_ITEM_NEIGHBORS);
		wr_put(&w, &nh, sizeof(nh));
		wr_put(&w, nbr, (size_t)n * in->neighbors_k * sizeof(*nbr));
		wr_end(&w);
	}
	if (in->ann_enabled) {
		const struct ann_index *ix = &ann.ix;
		wr_begin(&w, SNAP_SEC_ANN_PARAMS);
		wr_put(&w, &ann.params, sizeof(ann.params));
		wr_put(&w, ann.dim_quant, 2 * (size_t)ix->code_dim * sizeof(float));
		wr_end(&w);
		wr_begin(&w, SNAP_SEC_ANN_CENTROIDS);
		wr_put(&w, ann.centroids, (size_t)(ix->nlist + 7) / 8 * ix->dim * 8 * sizeof(float));
		wr_end(&w);
		wr_begin(&w, SNAP_SEC_ANN_LIST_OFFSETS);
		wr_put(&w, ann.list_off, ((size_t)ix->nlist + 1) * sizeof(uint32_t));
		wr_end(&w);
		wr_begin(&w, SNAP_SEC_ANN_LIST_ITEMS);
		wr_put(&w, ann.list_items, (size_t)n * sizeof(uint32_t));
		wr_end(&w);
		wr_begin(&w, SNAP_SEC_ANN_CODES);
		wr_put(&w, ann.codes, (size_t)n * ix->code_dim);
		wr_end(&w);
		if (ann.code_scale) {
			wr_begin(&w, SNAP_SEC_ANN_CODE_SCALES);
			wr_put(&w, ann.code_scale, (size_t)n * sizeof(float));
			wr_end(&w);
		}
	}
	if (in->n_users) {
		if ((rc = wr_strtab(&w, SNAP_SEC_USER_IDS, in->n_users, get_user_id, &c, err, errlen)))
			goto fail;
		wr_index(&w, SNAP_SEC_USER_INDEX, &users);
	}
	wr_emb(&w, SNAP_SEC_ITEM_EMB, in->item_emb, n, in->dim);
	if (in->n_users)
		wr_emb(&w, SNAP_SEC_USER_EMB, in->user_emb, in->n_users, in->dim);
	wr_flush(&w);
	if ((rc = w.rc)) {
		berr(err, errlen, "write %s: %s", tmp, strerror(-rc));
		goto fail;
	}

	memcpy(hdr->magic, SNAP_MAGIC, SNAP_MAGIC_LEN);
	hdr->format_version = SNAP_FORMAT_VERSION;
	hdr->header_size = sizeof(*hdr);
	hdr->file_size = wr_pos(&w);
	hdr->build_time = in->build_time ? in->build_time : (uint64_t)time(NULL);
	snprintf(hdr->model_version, sizeof(hdr->model_version), "%s",
		 in->model_version ? in->model_version : "unversioned");
	hdr->dim = in->dim;
	hdr->emb_stride = snap_stride_for_dim(in->dim);
	hdr->n_items = n;
	hdr->n_users = in->n_users;
	hdr->n_categories = n_cat;
	hdr->n_popular = n_pop;
	hdr->header_checksum = XXH3_64bits(hdr, sizeof(*hdr));
	w.buf_off = 0;
	w.fill = sizeof(*hdr);
	memcpy(w.buf, hdr, sizeof(*hdr));
	wr_flush(&w);
	if ((rc = w.rc)) {
		berr(err, errlen, "write %s: %s", tmp, strerror(-rc));
		goto fail;
	}
	if (fsync(w.fd)) {
		rc = -errno;
		berr(err, errlen, "fsync %s: %s", tmp, strerror(-rc));
		goto fail;
	}
	if (close(w.fd)) {
		w.fd = -1;
		rc = -errno;
		berr(err, errlen, "close %s: %s", tmp, strerror(-rc));
		goto fail;
	}
	w.fd = -1;
	if (rename(tmp, path)) {
		rc = -errno;
		berr(err, errlen, "rename %s to %s: %s", tmp, path, strerror(-rc));
		goto fail;
	}
	tmp_made = false;
	/* The rename is durable only once the directory is. */
	if ((rc = fsync_dir(path))) {
		berr(err, errlen, "fsync directory of %s: %s", path, strerror(-rc));
		goto fail;
	}
	rc = 0;
fail:
	if (w.fd >= 0)
		close(w.fd);
	if (tmp_made)
		unlink(tmp);
	if (w.xs)
		XXH3_freeState(w.xs);
	free(w.buf);
	free(hdr);
	free(popular);
	free(cat_pop);
	free(nbr);
	free(filled);
	if (ann_made)
		ann_built_free(&ann);
	free(cat_first);
	free(cat_of);
	free(users.slots);
	free(items.slots);
	return rc;
}
