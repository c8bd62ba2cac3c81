/* recd_snapshot.c: `recd-snapshot build` turns the files an ML pipeline
 * produces (catalogue, embeddings, interaction log) into a snapshot via
 * snapb_write; `recd-snapshot inspect` prints what a snapshot holds.
 *
 * Memory: each input is read with one read() into one buffer, strings are
 * NUL-terminated in place and the items point into that buffer, and .npy
 * floats are used where they lie. A 1M-item catalogue costs its file sizes
 * plus a few arrays, not a heap object per field.
 * Errors name the file and line ("items.jsonl:17: missing field 'id'");
 * exit codes: 0 ok, 1 input error, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include "json/json.h"
#include "snap/snap.h"
#include "snap/snapb.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, ".npy '<f4' data is used in place");

#define EXIT_INPUT 1
#define EXIT_USAGE 2
#define ID_MAX 255u
#define JSON_LINE_TOKS 1024u

static const char usage_text[] =
	"usage: recd-snapshot build --items FILE --item-embeddings FILE [options] -o OUT\n"
	"       recd-snapshot inspect FILE [--rows N]\n"
	"build inputs:\n"
	"  --items FILE            .jsonl (one object per line) or .csv with a header;\n"
	"                          fields id, price, stock, optional title, category,\n"
	"                          available (default true)\n"
	"  --item-embeddings FILE  .npy float32 (n_items, dim) in items order, or text\n"
	"                          lines \"id v1 ... vD\" in any order\n"
	"  --users FILE            known user ids, one per line\n"
	"  --user-embeddings FILE  .npy rows in --users order, or text \"id v1 ... vD\"\n"
	"                          lines (then --users is optional)\n"
	"  --interactions FILE     csv user_id,item_id,type[,ts] (ts in ms); popularity\n"
	"                          is the sum of type weights (view 1, add_to_cart 3,\n"
	"                          purchase 5)\n"
	"  --half-life-days H      decay each interaction by 2^(-age/H), age relative\n"
	"                          to the newest ts\n"
	"  --model-version STR     up to 63 bytes (default \"unversioned\")\n"
	"  --popular-k N           length of the popular list (default min(items, 1000))\n"
	"  --build-time UNIX       header build time (default now; set it for\n"
	"                          reproducible files)\n"
	"  --ann, --no-ann         write the ANN index (default: on from 50000 items)\n"
	"  --ann-lists N           index lists (default 2 * sqrt(items))\n"
	"  --ann-quant dim|vector  int8 code scales: per dimension (default) or per\n"
	"                          vector\n"
	"  --ann-seed S            k-means sample and initial centroids (default 1)\n"
	"  --neighbors K           neighbours per item (default 20; 0 = none): items\n"
	"                          co-visited in --interactions, then embedding ones\n"
	"  --covisit-window-ms MS  co-visit window (default 3600000)\n"
	"  -o, --out OUT           snapshot path (written atomically)\n"
	"inspect:\n"
	"  --rows N                sample rows per table (default 5)\n";

static __attribute__((format(printf, 1, 2))) void die_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("recd-snapshot: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(see recd-snapshot --help)\n", stderr);
	exit(EXIT_USAGE);
}

/* "file:line: message" (line 0: "file: message"), then exit 1. Input
 * errors end the build, so the process exit frees the buffers. */
static __attribute__((format(printf, 3, 4))) void die_at(const char *file, uint64_t line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (line)
		fprintf(stderr, "%s:%llu: ", file, (unsigned long long)line);
	else
		fprintf(stderr, "%s: ", file);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_INPUT);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "recd-snapshot: out of memory (%zu bytes)\n", n);
		exit(EXIT_INPUT);
	}
	return p;
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);
	if (!p) {
		fprintf(stderr, "recd-snapshot: out of memory (%zu x %zu bytes)\n", n, sz);
		exit(EXIT_INPUT);
	}
	return p;
}

/* ---- whole-file input ---- */

struct input {
	const char *path;
	char *buf;        /* len + 1 bytes; buf[len] = 0 */
	size_t len;
};

static void input_read(struct input *in, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	in->path = path;
	if (fd < 0 || fstat(fd, &st) != 0)
		die_at(path, 0, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		die_at(path, 0, "not a regular file");
	in->buf = xmalloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, in->buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die_at(path, 0, "read: %s", strerror(errno));
		if (n == 0)
			break;  /* shrank under us: take what is there */
		got += (size_t)n;
	}
	close(fd);
	in->len = got;
	in->buf[got] = 0;
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcasecmp(s + a - b, suf) == 0;
}

/* ---- lines ---- */

struct lines {
	char *p, *end;
	uint64_t no;
};

/* Next line without its "\n" / "\r\n"; s[len] may be overwritten with a
 * NUL by the caller (it is the line ending or the buffer's spare byte). */
static bool next_line(struct lines *l, char **s, size_t *len)
{
	if (l->p >= l->end)
		return false;
	char *nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
	char *e = nl ? nl : l->end;
	*s = l->p;
	*len = (size_t)(e - l->p);
	if (*len && (*s)[*len - 1] == '\r')
		(*len)--;
	l->p = nl ? nl + 1 : l->end;
	l->no++;
	return true;
}

static bool blank(const char *s, size_t len)
{
	for (size_t k = 0; k < len; k++)
		if (s[k] != ' ' && s[k] != '\t')
			return false;
	return true;
}

/* ---- CSV (RFC 4180) ---- */

struct csv {
	struct input *in;
	char *p, *end;
	uint64_t line;     /* line of the next record */
};

#define CSV_MAX_FIELDS 64

/* Parse the next non-empty record. Fields are unquoted in place and
 * NUL-terminated (the unquoted text is never longer than the raw one and
 * the terminator has been read before it is overwritten). Returns the
 * number of fields, 0 at end of input; malformed input exits with the
 * record's line. */
static int csv_next(struct csv *c, char **f, size_t *flen, uint64_t *rec_line)
{
	for (;;) {
		if (c->p >= c->end)
			return 0;
		*rec_line = c->line;
		int n = 0;
		for (;;) {
			char *start = c->p, *w = c->p, *p = c->p;
			if (p < c->end && *p == '"') {
				p++;
				for (;;) {
					if (p >= c->end)
						die_at(c->in->path, *rec_line, "unterminated quoted field");
					if (*p == '"') {
						if (p + 1 < c->end && p[1] == '"') {
							*w++ = '"';
							p += 2;
							continue;
						}
						p++;
						break;
					}
					if (*p == '\n')
						c->line++;
					*w++ = *p++;
				}
				if (p < c->end && *p != ',' && *p != '\n' && *p != '\r')
					die_at(c->in->path, c->line, "unexpected '%c' after a closing quote", *p);
			} else {
				while (p < c->end && *p != ',' && *p != '\n' && *p != '\r')
					p++;
				w = p;
			}
			char term = p < c->end ? *p : '\n';
			*w = 0;
			if (n == CSV_MAX_FIELDS)
				die_at(c->in->path, *rec_line, "more than %d fields", CSV_MAX_FIELDS);
			f[n] = start;
			flen[n] = (size_t)(w - start);
			n++;
			if (term == ',') {
				c->p = p + 1;
				continue;
			}
			/* *p may be the NUL just written: go by the saved terminator. */
			if (p < c->end && term == '\r')
				p++;
			if (p < c->end && (term == '\n' || *p == '\n'))
				p++;
			c->p = p;
			c->line++;
			break;
		}
		if (n == 1 && flen[0] == 0)
			continue;  /* blank line */
		return n;
	}
}

static int csv_col(char **hdr, const size_t *hlen, int n, const char *name)
{
	for (int k = 0; k < n; k++)
		if (hlen[k] == strlen(name) && memcmp(hdr[k], name, hlen[k]) == 0)
			return k;
	return -1;
}

/* ---- id index: open addressing over row numbers ---- */

struct idx {
	uint32_t *slot;        /* row or UINT32_MAX */
	uint64_t mask;
	const char **key;
	uint32_t *keylen;
	uint32_t n, cap_keys;
};

static void idx_init(struct idx *x, uint32_t max_keys)
{
	uint64_t cap = 16;
	while (cap < 2ull * max_keys)
		cap <<= 1;
	x->slot = xmalloc(sizeof(*x->slot) * cap);
	memset(x->slot, 0xff, sizeof(*x->slot) * cap);
	x->mask = cap - 1;
	x->key = xmalloc(sizeof(*x->key) * (max_keys ? max_keys : 1));
	x->keylen = xmalloc(sizeof(*x->keylen) * (max_keys ? max_keys : 1));
	x->n = 0;
	x->cap_keys = max_keys;
}

static void idx_free(struct idx *x)
{
	free(x->slot);
	free(x->key);
	free(x->keylen);
}

/* Find `k`; when absent and `add`, insert it as row x->n. Returns the row
 * found, or -1 (absent, or just added). */
static int64_t idx_lookup(struct idx *x, const char *k, size_t len, bool add)
{
	uint64_t h = XXH3_64bits(k, len);
	for (uint64_t s = h & x->mask;; s = (s + 1) & x->mask) {
		uint32_t r = x->slot[s];
		if (r == UINT32_MAX) {
			if (add) {
				x->slot[s] = x->n;
				x->key[x->n] = k;
				x->keylen[x->n] = (uint32_t)len;
				x->n++;
			}
			return -1;
		}
		if (x->keylen[r] == len && memcmp(x->key[r], k, len) == 0)
			return r;
	}
}

static void check_id(const char *file, uint64_t line, const char *what, const char *id, size_t len)
{
	if (len == 0)
		die_at(file, line, "empty %s", what);
	if (len > ID_MAX)
		die_at(file, line, "%s longer than %u bytes", what, ID_MAX);
	if (strlen(id) != len)
		die_at(file, line, "%s contains a NUL byte", what);
}

/* ---- items ---- */

struct catalog {
	struct input in;
	struct snapb_item *items;
	uint32_t *line;        /* source line of each item */
	uint32_t n, cap;
	struct idx index;
};

static uint64_t count_lines(const struct input *in)
{
	uint64_t n = 1;
	for (const char *p = in->buf; (p = memchr(p, '\n', (size_t)(in->buf + in->len - p))); p++)
		n++;
	return n;
}

static void catalog_add(struct catalog *c, const struct snapb_item *it, uint64_t line)
{
	check_id(c->in.path, line, "id", it->id, strlen(it->id));
	if (c->n == UINT32_MAX - 1)
		die_at(c->in.path, line, "too many items");
	int64_t prev = idx_lookup(&c->index, it->id, strlen(it->id), true);
	if (prev >= 0)
		die_at(c->in.path, line, "duplicate id '%s' (first on line %u)", it->id, c->line[prev]);
	c->items[c->n] = *it;
	c->line[c->n] = (uint32_t)line;
	c->n++;
}

/* Turn a STRING (or, for ids and categories, NUMBER) token into a
 * NUL-terminated string in place: unescaped text is never longer than the
 * escaped one, and the byte after it (closing quote or delimiter) is no
 * longer needed once every key has been looked up. */
static char *tok_cstr(const struct input *in, uint64_t lineno, char *s, const struct json_tok *t,
		      const char *field, bool number_ok, char *scratch)
{
	if (t->type == JSON_NULL) {
		s[t->start] = 0;  /* "null" -> "" */
		return s + t->start;
	}
	if (t->type == JSON_NUMBER && number_ok) {
		s[t->start + t->len] = 0;
		return s + t->start;
	}
	if (t->type != JSON_STRING)
		die_at(in->path, lineno, "field '%s' must be a string", field);
	char *p = s + t->start;
	if (!t->has_escape) {
		p[t->len] = 0;
		return p;
	}
	int n = json_str_decode(s, t, scratch, (size_t)t->len + 1);
	if (n < 0)
		die_at(in->path, lineno, "field '%s': bad string escape", field);
	if (strlen(scratch) != (size_t)n)
		die_at(in->path, lineno, "field '%s' contains a NUL character", field);
	memcpy(p, scratch, (size_t)n + 1);
	return p;
}

static void load_items_jsonl(struct catalog *c)
{
	struct json_tok *toks = xmalloc(sizeof(*toks) * JSON_LINE_TOKS);
	char *scratch = xmalloc(c->in.len + 1);
	struct lines l = { c->in.buf, c->in.buf + c->in.len, 0 };
	const char *path = c->in.path;
	char *s;
	size_t len;

	while (next_line(&l, &s, &len)) {
		if (blank(s, len))
			continue;
		struct json_err je = { 0, "" };
		int nt = json_parse(s, len, toks, JSON_LINE_TOKS, &je);
		if (nt == -ENOSPC)
			die_at(path, l.no, "too many JSON values on one line (max %u)", JSON_LINE_TOKS);
		if (nt < 0)
			die_at(path, l.no, "invalid JSON at column %u: %s", je.offset + 1, je.msg);
		if (toks[0].type != JSON_OBJECT)
			die_at(path, l.no, "expected a JSON object");
		int f_id = json_obj_get(s, toks, 0, "id");
		int f_title = json_obj_get(s, toks, 0, "title");
		int f_cat = json_obj_get(s, toks, 0, "category");
		int f_price = json_obj_get(s, toks, 0, "price");
		int f_stock = json_obj_get(s, toks, 0, "stock");
		int f_avail = json_obj_get(s, toks, 0, "available");
		if (f_id < 0)
			die_at(path, l.no, "missing field 'id'");
		if (f_price < 0)
			die_at(path, l.no, "missing field 'price'");
		if (f_stock < 0)
			die_at(path, l.no, "missing field 'stock'");

		struct snapb_item it = { .title = "", .category = "", .available = true };
		double price;
		int64_t stock;
		if (json_get_double(s, &toks[f_price], &price) != 0 || !isfinite(price) || price < 0 ||
		    price > 3.4e38)
			die_at(path, l.no, "field 'price' must be a finite number >= 0");
		if (json_get_i64(s, &toks[f_stock], &stock) != 0 || stock < 0 || stock > UINT32_MAX)
			die_at(path, l.no, "field 'stock' must be an integer in 0..%u", UINT32_MAX);
		it.price = (float)price;
		it.stock = (uint32_t)stock;
		if (f_avail >= 0) {
			uint8_t ty = toks[f_avail].type;
			if (ty != JSON_TRUE && ty != JSON_FALSE && ty != JSON_NULL)
				die_at(path, l.no, "field 'available' must be true or false");
			it.available = ty != JSON_FALSE;
		}
		if (toks[f_id].type == JSON_NULL)
			die_at(path, l.no, "field 'id' is null");
		it.id = tok_cstr(&c->in, l.no, s, &toks[f_id], "id", true, scratch);
		if (f_title >= 0)
			it.title = tok_cstr(&c->in, l.no, s, &toks[f_title], "title", false, scratch);
		if (f_cat >= 0)
			it.category = tok_cstr(&c->in, l.no, s, &toks[f_cat], "category", true, scratch);
		catalog_add(c, &it, l.no);
	}
	free(toks);
	free(scratch);
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "1", "yes", "t", "y" };
	static const char *const no[] = { "false", "0", "no", "f", "n" };
	for (size_t k = 0; k < ARRAY_SIZE(yes); k++) {
		if (!strcasecmp(s, yes[k]))
			return *out = true, true;
		if (!strcasecmp(s, no[k]))
			return *out = false, true;
	}
	return false;
}

static void load_items_csv(struct catalog *c)
{
	struct csv cv = { &c->in, c->in.buf, c->in.buf + c->in.len, 1 };
	char *f[CSV_MAX_FIELDS], *end;
	size_t fl[CSV_MAX_FIELDS];
	uint64_t line;
	const char *path = c->in.path;

	int nh = csv_next(&cv, f, fl, &line);
	if (nh == 0)
		die_at(path, 0, "empty file (expected a header: id,title,category,price,stock)");
	char *hdr[CSV_MAX_FIELDS];
	size_t hl[CSV_MAX_FIELDS];
	memcpy(hdr, f, sizeof(hdr[0]) * (size_t)nh);
	memcpy(hl, fl, sizeof(hl[0]) * (size_t)nh);
	int k_id = csv_col(hdr, hl, nh, "id"), k_title = csv_col(hdr, hl, nh, "title");
	int k_cat = csv_col(hdr, hl, nh, "category"), k_price = csv_col(hdr, hl, nh, "price");
	int k_stock = csv_col(hdr, hl, nh, "stock"), k_avail = csv_col(hdr, hl, nh, "available");
	static const char *const required[] = { "id", "price", "stock" };
	int kreq[] = { k_id, k_price, k_stock };
	for (size_t k = 0; k < ARRAY_SIZE(required); k++)
		if (kreq[k] < 0)
			die_at(path, line, "header has no '%s' column (need id,price,stock; "
			       "optional title,category,available)", required[k]);

	int n;
	while ((n = csv_next(&cv, f, fl, &line)) > 0) {
		if (n != nh)
			die_at(path, line, "%d fields, the header has %d", n, nh);
		struct snapb_item it = { .id = f[k_id], .title = "", .category = "", .available = true };
		if (k_title >= 0)
			it.title = f[k_title];
		if (k_cat >= 0)
			it.category = f[k_cat];
		errno = 0;
		double price = strtod(f[k_price], &end);
		if (errno || end == f[k_price] || *end || !isfinite(price) || price < 0 || price > 3.4e38)
			die_at(path, line, "price '%s' is not a finite number >= 0", f[k_price]);
		errno = 0;
		unsigned long long stock = strtoull(f[k_stock], &end, 10);
		if (errno || end == f[k_stock] || *end || f[k_stock][0] == '-' || stock > UINT32_MAX)
			die_at(path, line, "stock '%s' is not an integer in 0..%u", f[k_stock], UINT32_MAX);
		it.price = (float)price;
		it.stock = (uint32_t)stock;
		if (k_avail >= 0 && fl[k_avail] && !parse_bool(f[k_avail], &it.available))
			die_at(path, line, "available '%s' is not true/false", f[k_avail]);
		catalog_add(c, &it, line);
	}
}

static void load_items(struct catalog *c, const char *path)
{
	input_read(&c->in, path);
	/* A line per item at most: size every array once. */
	uint64_t max = count_lines(&c->in);
	if (max >= UINT32_MAX)
		die_at(path, 0, "too many lines");
	c->items = xmalloc(sizeof(*c->items) * max);
	c->line = xmalloc(sizeof(*c->line) * max);
	idx_init(&c->index, (uint32_t)max);
	const char *p = c->in.buf;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	bool json = has_suffix(path, ".jsonl") || has_suffix(path, ".ndjson") || has_suffix(path, ".json") ||
		    (!has_suffix(path, ".csv") && *p == '{');
	if (json)
		load_items_jsonl(c);
	else
		load_items_csv(c);
	if (c->n == 0)
		die_at(path, 0, "no items");
}

/* ---- users ---- */

struct users {
	struct input in;
	const char **ids;
	uint32_t *line;
	uint32_t n;
	struct idx index;
	bool loaded;
};

static void users_add(struct users *u, const char *path, uint64_t line, const char *id, size_t len)
{
	check_id(path, line, "user id", id, len);
	int64_t prev = idx_lookup(&u->index, id, len, true);
	if (prev >= 0)
		die_at(path, line, "duplicate user id '%s' (first on line %u)", id, u->line[prev]);
	u->ids[u->n] = id;
	u->line[u->n] = (uint32_t)line;
	u->n++;
}

static void users_alloc(struct users *u, uint64_t max, const char *path)
{
	if (max >= UINT32_MAX)
		die_at(path, 0, "too many lines");
	u->ids = xmalloc(sizeof(*u->ids) * max);
	u->line = xmalloc(sizeof(*u->line) * max);
	idx_init(&u->index, (uint32_t)max);
	u->loaded = true;
}

static void load_users(struct users *u, const char *path)
{
	input_read(&u->in, path);
	users_alloc(u, count_lines(&u->in), path);
	struct lines l = { u->in.buf, u->in.buf + u->in.len, 0 };
	char *s;
	size_t len;
	while (next_line(&l, &s, &len)) {
		while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		while (len && (*s == ' ' || *s == '\t'))
			s++, len--;
		if (len == 0)
			continue;
		s[len] = 0;
		users_add(u, path, l.no, s, len);
	}
}

/* ---- embeddings ---- */

struct emb {
	struct input in;
	float *v;        /* rows * dim, inside in.buf (.npy) or its own block */
	float *own;
	uint64_t rows;
	uint32_t dim;
	bool npy;
};

/* Value of `'key':` in a .npy header dict; NULL if absent. */
static const char *npy_field(const char *h, const char *key)
{
	char pat[32];
	snprintf(pat, sizeof(pat), "'%s'", key);
	const char *p = strstr(h, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	if (*p != ':')
		return NULL;
	p++;
	while (*p == ' ')
		p++;
	return p;
}

static void load_npy(struct emb *e)
{
	const char *path = e->in.path;
	unsigned char *b = (unsigned char *)e->in.buf;
	size_t len = e->in.len, hstart, hlen;
	if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
		die_at(path, 0, "not a .npy file (bad magic)");
	if (b[6] == 1) {
		hstart = 10;
		hlen = b[8] | (size_t)b[9] << 8;
	} else if (b[6] == 2 || b[6] == 3) {
		if (len < 12)
			die_at(path, 0, "truncated .npy header");
		hstart = 12;
		hlen = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
	} else {
		die_at(path, 0, ".npy format version %u.%u not supported", b[6], b[7]);
	}
	if (hstart + hlen > len)
		die_at(path, 0, "truncated .npy header");
	/* The dict is parsed from a NUL-terminated copy. */
	char *h = xmalloc(hlen + 1);
	memcpy(h, b + hstart, hlen);
	h[hlen] = 0;
	const char *d = npy_field(h, "descr"), *fo = npy_field(h, "fortran_order"), *sh = npy_field(h, "shape");
	if (!d || !fo || !sh)
		die_at(path, 0, ".npy header lacks descr, fortran_order or shape: %s", h);
	size_t esize;
	if (!strncmp(d, "'<f4'", 5))
		esize = 4;
	else if (!strncmp(d, "'<f8'", 5))
		esize = 8;  /* numpy's default dtype: accepted and narrowed */
	else
		die_at(path, 0, "dtype %.*s not supported (need '<f4' float32)", (int)strcspn(d, ","), d);
	if (!strncmp(fo, "True", 4))
		die_at(path, 0, "fortran_order arrays not supported (save a C-ordered array)");
	unsigned long long r, c;
	int used = 0;
	if (sscanf(sh, "(%llu , %llu )%n", &r, &c, &used) != 2 || used == 0)
		die_at(path, 0, "shape %.*s: expected a 2-D array (rows, dim)", (int)strcspn(sh, ")") + 1, sh);
	free(h);
	if (c == 0 || c > SNAP_MAX_DIM)
		die_at(path, 0, "shape (%llu, %llu): dim must be 1..%u", r, c, SNAP_MAX_DIM);
	size_t off = hstart + hlen, have = len - off;
	if (r > (SIZE_MAX / esize) / c || r * c * esize != have)
		die_at(path, 0, "shape (%llu, %llu) needs %llu bytes of data, the file has %zu", r, c,
		       r * c * esize, have);
	uint64_t n = r * c;
	float *out = (float *)b;
	if (esize == 8) {
		/* Narrow in place front to back: float k lands at byte 4k, below
		 * the double k+1.. still to be read at off + 8(k+1). */
		for (uint64_t k = 0; k < n; k++) {
			double x;
			memcpy(&x, b + off + 8 * k, 8);
			out[k] = (float)x;
		}
	} else if (off % 4 == 0) {
		out = (float *)(b + off);
	} else {
		memmove(b, b + off, have);
	}
	e->v = out;
	e->rows = r;
	e->dim = (uint32_t)c;
	for (uint64_t k = 0; k < n; k++)
		if (!isfinite(out[k]))
			die_at(path, 0, "row %llu, column %llu: %g is not a finite number",
			       (unsigned long long)(k / c), (unsigned long long)(k % c), (double)out[k]);
}

/* Values after the id on a text line: separated by spaces, tabs or
 * commas. Returns the count parsed (stops at `max`; reports more as max+1). */
static uint32_t parse_floats(const char *path, uint64_t line, char *p, char *end, float *out, uint32_t max)
{
	uint32_t n = 0;
	for (;;) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		if (p >= end)
			return n;
		if (n == max)
			return max + 1;
		char *q;
		errno = 0;
		float v = strtof(p, &q);
		if (q == p || (q < end && *q != ' ' && *q != '\t' && *q != ',') || q > end)
			die_at(path, line, "value %u: not a number", n + 1);
		if (!isfinite(v))
			die_at(path, line, "value %u: not a finite number", n + 1);
		out[n++] = v;
		p = q;
	}
}

/* Text embeddings "id v1 ... vD". With `idx`, rows are matched to its
 * keys by id (each exactly once); without, ids are taken in file order
 * into `u`. `what` names the rows in messages ("item", "user"). */
static void load_text_emb(struct emb *e, struct idx *idx, struct users *u, const char *what)
{
	const char *path = e->in.path;
	struct lines l = { e->in.buf, e->in.buf + e->in.len, 0 };
	uint64_t max_rows = idx ? idx->n : count_lines(&e->in);
	uint32_t *row_line = NULL;
	float *tmp = NULL;
	char *s;
	size_t len;

	if (!idx)
		users_alloc(u, max_rows, path);
	while (next_line(&l, &s, &len)) {
		if (blank(s, len))
			continue;
		char *end = s + len, *p = s;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		char *id = p;
		while (p < end && *p != ' ' && *p != '\t' && *p != ',')
			p++;
		size_t idlen = (size_t)(p - id);
		if (!e->dim) {
			/* The first line fixes the dim. */
			tmp = xmalloc(sizeof(float) * (SNAP_MAX_DIM + 1));
			uint32_t d = parse_floats(path, l.no, p, end, tmp, SNAP_MAX_DIM);
			if (d == 0 || d > SNAP_MAX_DIM)
				die_at(path, l.no, "%u values; the dim must be 1..%u", d, SNAP_MAX_DIM);
			e->dim = d;
			if (max_rows > SIZE_MAX / sizeof(float) / d)
				die_at(path, 0, "too large");
			e->own = xcalloc(max_rows, sizeof(float) * d);
			e->v = e->own;
			row_line = xcalloc(max_rows, sizeof(*row_line));
		}
		uint64_t row;
		if (idx) {
			int64_t r = idx_lookup(idx, id, idlen, false);
			if (r < 0)
				die_at(path, l.no, "unknown %s '%.*s'", what, (int)idlen, id);
			row = (uint64_t)r;
			if (row_line[row])
				die_at(path, l.no, "second embedding for %s '%.*s' (first on line %u)", what,
				       (int)idlen, id, row_line[row]);
		} else {
			char save = id[idlen];
			id[idlen] = 0;  /* the separator: the values are parsed below from p + 1 */
			row = u->n;
			users_add(u, path, l.no, id, idlen);
			if (save != 0)
				p = id + idlen + 1;
		}
		uint32_t d = parse_floats(path, l.no, p, end, e->v + row * e->dim, e->dim);
		if (d != e->dim)
			die_at(path, l.no, "%s%u values, the first line has %u", d > e->dim ? "more than " : "",
			       d > e->dim ? e->dim : d, e->dim);
		row_line[row] = (uint32_t)l.no;
		e->rows++;
	}
	if (!e->dim)
		die_at(path, 0, "no embeddings");
	if (idx && e->rows != idx->n) {
		uint32_t missing = 0, first = 0;
		for (uint32_t r = idx->n; r-- > 0;)
			if (!row_line[r])
				missing++, first = r;
		die_at(path, 0, "%llu embeddings but %u %ss: no embedding for %s '%s'%s",
		       (unsigned long long)e->rows, idx->n, what, what, idx->key[first],
		       missing > 1 ? " (and more)" : "");
	}
	free(row_line);
	free(tmp);
	if (!idx)
		e->rows = u->n;
}

static bool is_npy(const struct input *in)
{
	return in->len >= 6 && memcmp(in->buf, "\x93NUMPY", 6) == 0;
}

/* ---- interactions ---- */

struct pop_stats {
	uint64_t events, unknown_items, unknown_users;
	uint64_t first_unknown_item_line, first_unknown_user_line;
	char first_unknown_item[ID_MAX + 1], first_unknown_user[ID_MAX + 1];
};

static bool parse_ts(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

struct events {
	struct snapb_event *v;
	uint64_t n;
};

static float *load_interactions(const char *path, struct catalog *cat, struct users *u,
				double half_life_days, struct pop_stats *st, struct events *evs)
{
	struct input in;
	input_read(&in, path);
	struct csv cv = { &in, in.buf, in.buf + in.len, 1 };
	char *f[CSV_MAX_FIELDS];
	size_t fl[CSV_MAX_FIELDS];
	uint64_t line;
	int k_user = 0, k_item = 1, k_type = 2, k_ts = 3, min_fields = 3;

	int n = csv_next(&cv, f, fl, &line);
	if (n > 0 && (csv_col(f, fl, n, "user_id") >= 0 || csv_col(f, fl, n, "item_id") >= 0)) {
		k_user = csv_col(f, fl, n, "user_id");
		k_item = csv_col(f, fl, n, "item_id");
		k_type = csv_col(f, fl, n, "type");
		k_ts = csv_col(f, fl, n, "ts");
		if (k_item < 0 || k_type < 0)
			die_at(path, line, "header needs item_id and type columns (user_id,item_id,type[,ts])");
		min_fields = MAX(k_item, k_type) + 1;
		n = csv_next(&cv, f, fl, &line);
	} else if (n > 0 && n < 4) {
		k_ts = -1;
	}
	if (half_life_days > 0 && k_ts < 0)
		die_at(path, 0, "--half-life-days needs a ts column");

	/* With decay, the newest ts is needed first: keep (item, weight, ts). */
	uint64_t cap = half_life_days > 0 ? count_lines(&in) : 0;
	uint32_t *ev_item = cap ? xmalloc(sizeof(*ev_item) * cap) : NULL;
	float *ev_w = cap ? xmalloc(sizeof(*ev_w) * cap) : NULL;
	int64_t *ev_ts = cap ? xmalloc(sizeof(*ev_ts) * cap) : NULL;
	int64_t ts_max = INT64_MIN;
	double *acc = xcalloc(cat->n, sizeof(*acc));
	if (evs)
		evs->v = xmalloc(sizeof(*evs->v) * count_lines(&in));

	for (; n > 0; n = csv_next(&cv, f, fl, &line)) {
		if (n < min_fields)
			die_at(path, line, "%d fields, expected user_id,item_id,type[,ts]", n);
		float w = snapb_event_weight(f[k_type], fl[k_type]);
		if (w < 0)
			die_at(path, line, "unknown type '%s' (view, click, rating, add_to_cart, purchase)",
			       f[k_type]);
		int64_t ts = 0;
		if (k_ts >= 0 && k_ts < n && (fl[k_ts] || half_life_days > 0) && !parse_ts(f[k_ts], &ts))
			die_at(path, line, "ts '%s' is not an integer (milliseconds)", f[k_ts]);
		st->events++;
		if (u->loaded && k_user >= 0 && k_user < n &&
		    idx_lookup(&u->index, f[k_user], fl[k_user], false) < 0) {
			if (!st->unknown_users++) {
				st->first_unknown_user_line = line;
				snprintf(st->first_unknown_user, sizeof(st->first_unknown_user), "%s", f[k_user]);
			}
		}
		int64_t it = idx_lookup(&cat->index, f[k_item], fl[k_item], false);
		if (it < 0) {
			if (!st->unknown_items++) {
				st->first_unknown_item_line = line;
				snprintf(st->first_unknown_item, sizeof(st->first_unknown_item), "%s", f[k_item]);
			}
			continue;
		}
		if (evs) {
			struct snapb_event *e = &evs->v[evs->n++];
			e->user = k_user >= 0 && k_user < n ? XXH3_64bits(f[k_user], fl[k_user]) : 0;
			e->item = (uint32_t)it;
			e->ts_ms = ts;
		}
		if (cap) {
			uint64_t k = st->events - st->unknown_items - 1;
			ev_item[k] = (uint32_t)it;
			ev_w[k] = w;
			ev_ts[k] = ts;
			ts_max = MAX(ts_max, ts);
		} else {
			acc[it] += w;
		}
	}
	if (cap) {
		double hl_ms = half_life_days * 86400000.0;
		for (uint64_t k = 0; k < st->events - st->unknown_items; k++)
			acc[ev_item[k]] += ev_w[k] * exp2(-(double)(ts_max - ev_ts[k]) / hl_ms);
	}
	float *pop = xmalloc(sizeof(*pop) * cat->n);
	for (uint32_t i = 0; i < cat->n; i++)
		pop[i] = (float)acc[i];
	free(acc);
	free(ev_item);
	free(ev_w);
	free(ev_ts);
	free(in.buf);
	return pop;
}

/* ---- build ---- */

static double since(uint64_t t0) { return (double)(now_ns() - t0) / 1e9; }

static int cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "items", required_argument, NULL, 'i' },
		{ "item-embeddings", required_argument, NULL, 'e' },
		{ "users", required_argument, NULL, 'u' },
		{ "user-embeddings", required_argument, NULL, 'U' },
		{ "interactions", required_argument, NULL, 'I' },
		{ "half-life-days", required_argument, NULL, 'H' },
		{ "model-version", required_argument, NULL, 'm' },
		{ "popular-k", required_argument, NULL, 'k' },
		{ "build-time", required_argument, NULL, 'b' },
		{ "ann", no_argument, NULL, 'A' },
		{ "no-ann", no_argument, NULL, 'N' },
		{ "ann-lists", required_argument, NULL, 'L' },
		{ "ann-quant", required_argument, NULL, 'Q' },
		{ "ann-seed", required_argument, NULL, 'S' },
		{ "neighbors", required_argument, NULL, 'K' },
		{ "covisit-window-ms", required_argument, NULL, 'W' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *items_path = NULL, *iemb_path = NULL, *users_path = NULL, *uemb_path = NULL;
	const char *inter_path = NULL, *model = NULL, *out = NULL;
	double half_life = 0;
	unsigned long long popular_k = 0, build_time = 0, ann_lists = 0, ann_seed = 1, neighbors = 20;
	unsigned long long window_ms = 0;
	int ann = -1;   /* -1: by catalogue size */
	uint32_t quant = SNAP_ANN_QUANT_DIM;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i': items_path = optarg; break;
		case 'e': iemb_path = optarg; break;
		case 'u': users_path = optarg; break;
		case 'U': uemb_path = optarg; break;
		case 'I': inter_path = optarg; break;
		case 'm': model = optarg; break;
		case 'o': out = optarg; break;
		case 'H':
			errno = 0;
			half_life = strtod(optarg, &end);
			if (errno || *end || end == optarg || !(half_life > 0) || !isfinite(half_life))
				die_usage("--half-life-days: expected a positive number, got '%s'", optarg);
			break;
		case 'k':
			errno = 0;
			popular_k = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-' || popular_k > UINT32_MAX)
				die_usage("--popular-k: expected a count, got '%s'", optarg);
			break;
		case 'b':
			errno = 0;
			build_time = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-')
				die_usage("--build-time: expected unix seconds, got '%s'", optarg);
			break;
		case 'A': ann = 1; break;
		case 'N': ann = 0; break;
		case 'L':
		case 'S':
		case 'K':
		case 'W': {
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-')
				die_usage("--%s: expected a count, got '%s'",
					  c == 'L' ? "ann-lists" : c == 'S' ? "ann-seed" : c == 'K' ? "neighbors"
					  : "covisit-window-ms", optarg);
			if (c == 'L' && (v < 1 || v > SNAP_ANN_MAX_LISTS))
				die_usage("--ann-lists: 1..%u", SNAP_ANN_MAX_LISTS);
			if (c == 'K' && v > 1024)
				die_usage("--neighbors: at most 1024");
			*(c == 'L' ? &ann_lists : c == 'S' ? &ann_seed : c == 'K' ? &neighbors : &window_ms) = v;
			break;
		}
		case 'Q':
			if (!strcmp(optarg, "dim"))
				quant = SNAP_ANN_QUANT_DIM;
			else if (!strcmp(optarg, "vector"))
				quant = SNAP_ANN_QUANT_VECTOR;
			else
				die_usage("--ann-quant: dim or vector, got '%s'", optarg);
			break;
		case 'h': fputs(usage_text, stdout); exit(0);
		default: fputs(usage_text, stderr); exit(EXIT_USAGE);
		}
	}
	if (optind < argc)
		die_usage("build: unexpected argument '%s'", argv[optind]);
	if (!items_path || !iemb_path || !out)
		die_usage("build needs --items, --item-embeddings and -o OUT");
	if (model && strlen(model) >= SNAP_MODEL_VERSION_LEN)
		die_usage("--model-version: at most %u bytes", SNAP_MODEL_VERSION_LEN - 1);
	if (users_path && !uemb_path)
		die_usage("--users needs --user-embeddings");
	if (half_life > 0 && !inter_path)
		die_usage("--half-life-days needs --interactions");

	uint64_t t0 = now_ns();
	struct catalog cat = { 0 };
	load_items(&cat, items_path);

	struct emb ie = { 0 };
	input_read(&ie.in, iemb_path);
	ie.npy = is_npy(&ie.in);
	if (ie.npy) {
		load_npy(&ie);
		if (ie.rows != cat.n)
			die_at(iemb_path, 0, "shape (%llu, %u) but %u items", (unsigned long long)ie.rows,
			       ie.dim, cat.n);
	} else {
		load_text_emb(&ie, &cat.index, NULL, "item");
	}

	struct users users = { 0 };
	struct emb ue = { 0 };
	if (uemb_path) {
		if (users_path)
			load_users(&users, users_path);
		input_read(&ue.in, uemb_path);
		ue.npy = is_npy(&ue.in);
		if (ue.npy) {
			if (!users_path)
				die_usage("--user-embeddings %s is .npy: --users FILE gives the ids of its rows",
					  uemb_path);
			load_npy(&ue);
			if (ue.rows != users.n)
				die_at(uemb_path, 0, "shape (%llu, %u) but %u users in %s",
				       (unsigned long long)ue.rows, ue.dim, users.n, users_path);
		} else {
			load_text_emb(&ue, users_path ? &users.index : NULL, &users, "user");
		}
		if (ue.dim != ie.dim)
			die_at(uemb_path, 0, "dim %u, the item embeddings have dim %u", ue.dim, ie.dim);
	}

	float *pop = NULL;
	struct pop_stats st = { 0 };
	struct events evs = { 0 };
	if (inter_path) {
		pop = load_interactions(inter_path, &cat, &users, half_life, &st, neighbors ? &evs : NULL);
		if (st.unknown_items)
			fprintf(stderr, "%s:%llu: warning: unknown item '%s' (%llu of %llu interactions "
				"reference unknown items; skipped)\n", inter_path,
				(unsigned long long)st.first_unknown_item_line, st.first_unknown_item,
				(unsigned long long)st.unknown_items, (unsigned long long)st.events);
		if (st.unknown_users)
			fprintf(stderr, "%s:%llu: warning: unknown user '%s' (%llu of %llu interactions "
				"are from users not in %s; still counted in popularity)\n", inter_path,
				(unsigned long long)st.first_unknown_user_line, st.first_unknown_user,
				(unsigned long long)st.unknown_users, (unsigned long long)st.events,
				users_path ? users_path : uemb_path);
	}
	double t_load = since(t0);

	struct snapb_input in = {
		.model_version = model,
		.build_time = build_time,
		.dim = ie.dim,
		.n_items = cat.n,
		.items = cat.items,
		.item_emb = ie.v,
		.n_users = users.n,
		.user_ids = users.ids,
		.user_emb = ue.v,
		.item_popularity = pop,
		.popular_k = (uint32_t)popular_k,
		.ann_enabled = ann < 0 ? cat.n >= 50000 : ann == 1,
		.ann = { .nlist = (uint32_t)ann_lists, .seed = ann_seed, .quant = quant },
		.neighbors_k = (uint32_t)neighbors,
		.events = evs.v,
		.n_events = evs.n,
		.covisit_window_ms = (int64_t)window_ms,
	};
	struct snapb_stats bst = { 0 };
	in.stats = &bst;
	char err[512] = "";
	int rc = snapb_write(&in, out, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "recd-snapshot: %s: %s\n", out, err[0] ? err : strerror(-rc));
		return EXIT_INPUT;
	}
	struct stat sb;
	long long size = stat(out, &sb) == 0 ? (long long)sb.st_size : -1;
	printf("recd-snapshot: wrote %s (%lld bytes): %u items, %u users, dim %u, %llu interactions "
	       "(read %.2f s, total %.2f s)\n",
	       out, size, cat.n, users.n, ie.dim, (unsigned long long)(st.events - st.unknown_items),
	       t_load, since(t0));
	if (bst.nlist || in.neighbors_k)
		printf("recd-snapshot: ann index %s (%u lists, %.2f s), neighbours %u per item (%llu co-visit "
		       "pairs, %.2f s)\n", bst.nlist ? "written" : "not written", bst.nlist, bst.ann_s,
		       in.neighbors_k, (unsigned long long)bst.covisit_pairs, bst.neighbors_s);

	free(evs.v);
	free(pop);
	free(ue.own);
	free(ue.in.buf);
	free(ie.own);
	free(ie.in.buf);
	idx_free(&users.index);
	free(users.ids);
	free(users.line);
	free(users.in.buf);
	idx_free(&cat.index);
	free(cat.items);
	free(cat.line);
	free(cat.in.buf);
	return 0;
}

/* ---- inspect ---- */

/* Left-aligned in `width` columns; control bytes (a CSV title may hold a
 * newline) shown as '?' so each row stays on one line. */
static void print_str(struct str s, int width)
{
	for (size_t k = 0; k < s.len; k++)
		putchar((unsigned char)s.p[k] < 0x20 || s.p[k] == 0x7f ? '?' : s.p[k]);
	for (int k = (int)s.len; k < width; k++)
		putchar(' ');
}

static int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rows", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long rows = 5;
	char *end;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			errno = 0;
			rows = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-')
				die_usage("--rows: expected a count, got '%s'", optarg);
			break;
		case 'h': fputs(usage_text, stdout); exit(0);
		default: fputs(usage_text, stderr); exit(EXIT_USAGE);
		}
	}
	if (optind + 1 != argc)
		die_usage("inspect needs exactly one FILE");
	const char *path = argv[optind];
	struct snap *s;
	char err[512] = "";
	int rc = snap_open(path, &s, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", path, err[0] ? err : strerror(-rc));
		return EXIT_INPUT;
	}
	const struct snap_header *h = s->hdr;
	char when[64] = "?";
	time_t bt = (time_t)h->build_time;
	struct tm tm;
	if (gmtime_r(&bt, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);

	printf("file:          %s\n", path);
	printf("size:          %zu bytes\n", s->size);
	printf("format:        %.8s v%u\n", h->magic, h->format_version);
	printf("model version: %.*s\n", (int)strnlen(h->model_version, SNAP_MODEL_VERSION_LEN),
	       h->model_version);
	printf("built:         %s (%llu)\n", when, (unsigned long long)h->build_time);
	printf("dim:           %u (row stride %u floats)\n", s->dim, s->stride);
	printf("items:         %u\n", s->n_items);
	printf("users:         %u\n", s->n_users);
	printf("categories:    %u\n", s->n_categories);
	printf("popular:       %u\n", s->n_popular);

	printf("\nsections (%u):\n  %-16s %14s %14s  %s\n", h->n_sections, "name", "offset", "length",
	       "checksum");
	for (uint32_t k = 0; k < h->n_sections && k < SNAP_MAX_SECTIONS; k++) {
		const struct snap_section_entry *e = &h->sections[k];
		printf("  %-16s %14llu %14llu  %016llx\n", snap_section_name(e->id),
		       (unsigned long long)e->offset, (unsigned long long)e->length,
		       (unsigned long long)e->checksum);
	}

	uint32_t ni = (uint32_t)MIN((unsigned long)s->n_items, rows);
	printf("\nitems (first %u):\n  %-8s %-16s %-32s %-12s %10s %8s %10s\n", ni, "index", "id", "title",
	       "category", "price", "stock", "popularity");
	for (uint32_t i = 0; i < ni; i++) {
		printf("  %-8u ", i);
		print_str(snap_item_id(s, i), 16);
		putchar(' ');
		print_str(snap_strtab_get(&s->item_titles, i), 32);
		putchar(' ');
		print_str(snap_strtab_get(&s->category_names, s->item_category[i]), 12);
		printf(" %10.2f %8u %10.2f%s\n", s->item_price[i], s->item_stock[i], s->item_popularity[i],
		       (s->item_flags[i] & SNAP_ITEM_AVAILABLE) ? "" : "  (unavailable)");
	}

	uint32_t np = (uint32_t)MIN((unsigned long)s->n_popular, rows);
	printf("\npopular (first %u of %u):\n  %-6s %-16s %-32s %10s\n", np, s->n_popular, "rank", "id",
	       "title", "popularity");
	for (uint32_t k = 0; k < np; k++) {
		uint32_t i = s->popular[k];
		printf("  %-6u ", k + 1);
		print_str(snap_item_id(s, i), 16);
		putchar(' ');
		print_str(snap_strtab_get(&s->item_titles, i), 32);
		printf(" %10.2f\n", s->item_popularity[i]);
	}

	if (s->ann.nlist) {
		const struct ann_index *ix = &s->ann;
		printf("\nann index: %u lists (longest %u, mean %.1f), int8 codes of %u bytes, %s quantiser\n",
		       ix->nlist, ix->max_list, (double)s->n_items / ix->nlist, ix->code_dim,
		       ix->quant == SNAP_ANN_QUANT_DIM ? "per-dimension" : "per-vector");
		uint64_t bytes = 0;
		for (uint32_t k = 0; k < h->n_sections && k < SNAP_MAX_SECTIONS; k++)
			if (h->sections[k].id >= SNAP_SEC_ANN_PARAMS && h->sections[k].id <= SNAP_SEC_ANN_CODE_SCALES)
				bytes += h->sections[k].length;
		printf("  %llu bytes, %.1f bytes per item\n", (unsigned long long)bytes, (double)bytes / s->n_items);
	} else {
		printf("\nann index: none (exact scan)\n");
	}
	if (s->cat_popular_off) {
		uint32_t nc = (uint32_t)MIN((unsigned long)s->n_categories, rows);
		printf("\ncategory popular (%u items over %u categories; first %u):\n",
		       s->cat_popular_off[s->n_categories], s->n_categories, nc);
		for (uint32_t k = 0; k < nc; k++) {
			uint32_t b = s->cat_popular_off[k], e = s->cat_popular_off[k + 1];
			printf("  ");
			print_str(snap_strtab_get(&s->category_names, k), 12);
			printf(" %6u items:", e - b);
			for (uint32_t j = b; j < e && j < b + 5; j++) {
				putchar(' ');
				print_str(snap_item_id(s, s->cat_popular[j]), 0);
			}
			printf("%s\n", e - b > 5 ? " ..." : "");
		}
	}
	if (s->neighbors_k) {
		uint32_t ni2 = (uint32_t)MIN((unsigned long)s->n_items, rows);
		printf("\nneighbours (%u per item; first %u items):\n", s->neighbors_k, ni2);
		for (uint32_t i = 0; i < ni2; i++) {
			const struct snap_neighbor *r = snap_item_neighbors(s, i);
			printf("  ");
			print_str(snap_item_id(s, i), 16);
			for (uint32_t j = 0; j < s->neighbors_k && j < 5 && r[j].item != SNAP_EMPTY_SLOT; j++) {
				printf(" ");
				print_str(snap_item_id(s, r[j].item), 0);
				printf(" (%.3f)", r[j].score);
			}
			printf("%s\n", s->neighbors_k > 5 ? " ..." : "");
		}
	}

	uint32_t nu = (uint32_t)MIN((unsigned long)s->n_users, rows);
	printf("\nusers (first %u of %u):\n  %-8s %-16s %s\n", nu, s->n_users, "index", "id", "embedding");
	for (uint32_t k = 0; k < nu; k++) {
		const float *v = snap_user_vec(s, k);
		printf("  %-8u ", k);
		print_str(snap_user_id(s, k), 16);
		printf(" [");
		for (uint32_t d = 0; d < MIN(s->dim, 4u); d++)
			printf("%s%.4f", d ? ", " : "", v[d]);
		printf("%s]\n", s->dim > 4 ? ", ..." : "");
	}
	snap_close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die_usage("missing command (build or inspect)");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "build"))
		return cmd_build(argc - 1, argv + 1);
	if (!strcmp(argv[1], "inspect"))
		return cmd_inspect(argc - 1, argv + 1);
	die_usage("unknown command '%s' (build or inspect)", argv[1]);
}
