/* quality_util.c: see quality_util.h. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "core/common.h"
#include "json/json.h"
#include "snap/snapb.h"
#include "quality_util.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, ".npy '<f4' is read and written as is");

const char *qu_prog = "recd";

void qu_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", qu_prog);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(QU_EXIT_INPUT);
}

void qu_die_at(const char *file, uint64_t line, const char *fmt, ...)
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
	exit(QU_EXIT_INPUT);
}

void *qu_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		qu_die("out of memory (%zu bytes)", n);
	return p;
}

void *qu_calloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p)
		qu_die("out of memory (%zu x %zu bytes)", n, sz);
	return p;
}

void *qu_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		qu_die("out of memory (%zu bytes)", n);
	return q;
}

void qu_read_file(struct qu_input *in, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	in->path = path;
	if (fd < 0 || fstat(fd, &st) != 0)
		qu_die_at(path, 0, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		qu_die_at(path, 0, "not a regular file");
	in->buf = qu_malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, in->buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			qu_die_at(path, 0, "read: %s", strerror(errno));
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	in->len = got;
	in->buf[got] = 0;
}

/* ---- CSV ---- */

void qu_csv_init(struct qu_csv *c, const char *path, char *buf, size_t len)
{
	c->path = path;
	c->p = buf;
	c->end = buf + len;
	c->line = 1;
}

int qu_csv_next(struct qu_csv *c, char **f, size_t *flen, uint64_t *rec_line)
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
						qu_die_at(c->path, *rec_line, "unterminated quoted field");
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
					qu_die_at(c->path, c->line, "unexpected '%c' after a closing quote", *p);
			} else {
				while (p < c->end && *p != ',' && *p != '\n' && *p != '\r')
					p++;
				w = p;
			}
			char term = p < c->end ? *p : '\n';
			*w = 0;
			if (n == QU_CSV_MAX_FIELDS)
				qu_die_at(c->path, *rec_line, "more than %d fields", QU_CSV_MAX_FIELDS);
			f[n] = start;
			flen[n] = (size_t)(w - start);
			n++;
			if (term == ',') {
				c->p = p + 1;
				continue;
			}
			if (p < c->end && term == '\r')
				p++;
			if (p < c->end && (term == '\n' || *p == '\n'))
				p++;
			c->p = p;
			c->line++;
			break;
		}
		if (n == 1 && flen[0] == 0)
			continue;
		return n;
	}
}

int qu_csv_col(char *const *hdr, const size_t *hlen, int n, const char *name)
{
	size_t l = strlen(name);
	for (int k = 0; k < n; k++)
		if (hlen[k] == l && memcmp(hdr[k], name, l) == 0)
			return k;
	return -1;
}

/* ---- id index ---- */

static void idx_alloc(struct qu_idx *x, uint32_t keys)
{
	uint64_t cap = 16;
	while (cap < 2ull * keys)
		cap <<= 1;
	x->slot = qu_malloc(sizeof(*x->slot) * cap);
	memset(x->slot, 0xff, sizeof(*x->slot) * cap);
	x->mask = cap - 1;
}

void qu_idx_init(struct qu_idx *x, uint32_t expected)
{
	memset(x, 0, sizeof(*x));
	x->cap = expected > 16 ? expected : 16;
	idx_alloc(x, x->cap);
	x->key = qu_malloc(sizeof(*x->key) * x->cap);
	x->keylen = qu_malloc(sizeof(*x->keylen) * x->cap);
}

void qu_idx_free(struct qu_idx *x)
{
	free(x->slot);
	free(x->key);
	free(x->keylen);
	memset(x, 0, sizeof(*x));
}

int64_t qu_idx_find(const struct qu_idx *x, const char *k, size_t len)
{
	uint64_t h = XXH3_64bits(k, len);
	for (uint64_t s = h & x->mask;; s = (s + 1) & x->mask) {
		uint32_t r = x->slot[s];
		if (r == UINT32_MAX)
			return -1;
		if (x->keylen[r] == len && memcmp(x->key[r], k, len) == 0)
			return r;
	}
}

static void idx_place(struct qu_idx *x, uint32_t row)
{
	uint64_t h = XXH3_64bits(x->key[row], x->keylen[row]);
	uint64_t s = h & x->mask;
	while (x->slot[s] != UINT32_MAX)
		s = (s + 1) & x->mask;
	x->slot[s] = row;
}

uint32_t qu_idx_add(struct qu_idx *x, const char *k, size_t len, bool *added)
{
	int64_t r = qu_idx_find(x, k, len);
	if (added)
		*added = r < 0;
	if (r >= 0)
		return (uint32_t)r;
	if (x->n == UINT32_MAX - 1)
		qu_die("more than %u ids", UINT32_MAX - 1);
	if (x->n == x->cap) {
		x->cap = x->cap * 2;
		x->key = qu_realloc(x->key, sizeof(*x->key) * x->cap);
		x->keylen = qu_realloc(x->keylen, sizeof(*x->keylen) * x->cap);
		free(x->slot);
		idx_alloc(x, x->cap);
		for (uint32_t i = 0; i < x->n; i++)
			idx_place(x, i);
	}
	x->key[x->n] = k;
	x->keylen[x->n] = (uint32_t)len;
	idx_place(x, x->n);
	return x->n++;
}

/* ---- interactions ---- */

const char *const qu_type_names[] = { "view", "click", "rating", "add_to_cart", "purchase", NULL };

static int type_of(const char *s, size_t len)
{
	for (int k = 0; k < QU__TYPES; k++)
		if (strlen(qu_type_names[k]) == len && !memcmp(qu_type_names[k], s, len))
			return k;
	return -1;
}

uint64_t qu_read_interactions(struct qu_input *in, const char *path, qu_row_fn fn, void *ctx)
{
	qu_read_file(in, path);
	struct qu_csv cv;
	qu_csv_init(&cv, path, in->buf, in->len);
	char *f[QU_CSV_MAX_FIELDS];
	size_t fl[QU_CSV_MAX_FIELDS];
	uint64_t line, rows = 0;
	int k_user = 0, k_item = 1, k_type = 2, k_ts = 3;
	int n = qu_csv_next(&cv, f, fl, &line);
	if (n > 0 && (qu_csv_col(f, fl, n, "user_id") >= 0 || qu_csv_col(f, fl, n, "item_id") >= 0)) {
		k_user = qu_csv_col(f, fl, n, "user_id");
		k_item = qu_csv_col(f, fl, n, "item_id");
		k_type = qu_csv_col(f, fl, n, "type");
		k_ts = qu_csv_col(f, fl, n, "ts");
		if (k_user < 0 || k_item < 0 || k_type < 0)
			qu_die_at(path, line, "header needs user_id, item_id and type (user_id,item_id,type[,ts])");
		n = qu_csv_next(&cv, f, fl, &line);
	}
	int need = MAX(k_user, MAX(k_item, k_type)) + 1;
	for (; n > 0; n = qu_csv_next(&cv, f, fl, &line)) {
		if (n < need)
			qu_die_at(path, line, "%d fields, expected user_id,item_id,type[,ts]", n);
		struct qu_row r = { .user = f[k_user], .user_len = fl[k_user], .item = f[k_item],
				    .item_len = fl[k_item], .line = line };
		int t = type_of(f[k_type], fl[k_type]);
		if (t < 0)
			qu_die_at(path, line, "unknown type '%s' (view, click, rating, add_to_cart, purchase)", f[k_type]);
		r.type = (uint8_t)t;
		r.weight = snapb_event_weight(f[k_type], fl[k_type]);
		if (k_ts >= 0 && k_ts < n && fl[k_ts]) {
			char *end;
			errno = 0;
			long long v = strtoll(f[k_ts], &end, 10);
			if (errno || end == f[k_ts] || *end)
				qu_die_at(path, line, "ts '%s' is not an integer (milliseconds)", f[k_ts]);
			r.ts = v;
		}
		if (!r.user_len || !r.item_len)
			qu_die_at(path, line, "empty user_id or item_id");
		fn(ctx, &r);
		rows++;
	}
	return rows;
}

/* ---- catalogue and user ids ---- */

static uint64_t count_lines(const struct qu_input *in)
{
	uint64_t n = 1;
	for (const char *p = in->buf; (p = memchr(p, '\n', (size_t)(in->buf + in->len - p))); p++)
		n++;
	return n;
}

static void ids_add(struct qu_items *it, const char *path, uint64_t line, const char *id, size_t len)
{
	if (!len)
		qu_die_at(path, line, "empty id");
	bool added;
	qu_idx_add(&it->index, id, len, &added);
	if (!added)
		qu_die_at(path, line, "duplicate id '%.*s'", (int)len, id);
	it->ids[it->n++] = id;
}

void qu_load_item_ids(struct qu_items *it, const char *path)
{
	memset(it, 0, sizeof(*it));
	qu_read_file(&it->in, path);
	uint64_t max = count_lines(&it->in);
	it->ids = qu_malloc(sizeof(*it->ids) * max);
	qu_idx_init(&it->index, (uint32_t)MIN(max, UINT32_MAX - 1));
	char *p = it->in.buf;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p == '{') {
		enum { TOKS = 1024 };
		struct json_tok *toks = qu_malloc(sizeof(*toks) * TOKS);
		char *s = it->in.buf, *end = it->in.buf + it->in.len;
		for (uint64_t no = 1; s < end; no++) {
			char *nl = memchr(s, '\n', (size_t)(end - s));
			char *e = nl ? nl : end;
			size_t len = (size_t)(e - s);
			bool blank = true;
			for (size_t k = 0; k < len && blank; k++)
				blank = s[k] == ' ' || s[k] == '\t' || s[k] == '\r';
			if (!blank) {
				struct json_err je = { 0, "" };
				int nt = json_parse(s, len, toks, TOKS, &je);
				if (nt < 0 || toks[0].type != JSON_OBJECT)
					qu_die_at(path, no, "invalid JSON object (%s)", nt < 0 ? je.msg : "not an object");
				int fi = json_obj_get(s, toks, 0, "id");
				if (fi < 0 || (toks[fi].type != JSON_STRING && toks[fi].type != JSON_NUMBER))
					qu_die_at(path, no, "missing field 'id'");
				if (toks[fi].has_escape)
					qu_die_at(path, no, "escaped characters in 'id' are not supported here");
				char *id = s + toks[fi].start;
				id[toks[fi].len] = 0;
				ids_add(it, path, no, id, toks[fi].len);
			}
			s = nl ? nl + 1 : end;
		}
		free(toks);
	} else {
		struct qu_csv cv;
		qu_csv_init(&cv, path, it->in.buf, it->in.len);
		char *f[QU_CSV_MAX_FIELDS];
		size_t fl[QU_CSV_MAX_FIELDS];
		uint64_t line;
		int n = qu_csv_next(&cv, f, fl, &line);
		int k = n > 0 ? qu_csv_col(f, fl, n, "id") : -1;
		if (k < 0)
			qu_die_at(path, 0, "expected .jsonl objects or a CSV with an 'id' column");
		while ((n = qu_csv_next(&cv, f, fl, &line)) > 0) {
			if (n <= k)
				qu_die_at(path, line, "no id field");
			ids_add(it, path, line, f[k], fl[k]);
		}
	}
	if (!it->n)
		qu_die_at(path, 0, "no items");
}

void qu_load_user_ids(struct qu_items *u, const char *path)
{
	memset(u, 0, sizeof(*u));
	qu_read_file(&u->in, path);
	uint64_t max = count_lines(&u->in);
	u->ids = qu_malloc(sizeof(*u->ids) * max);
	qu_idx_init(&u->index, (uint32_t)MIN(max, UINT32_MAX - 1));
	char *s = u->in.buf, *end = u->in.buf + u->in.len;
	for (uint64_t no = 1; s < end; no++) {
		char *nl = memchr(s, '\n', (size_t)(end - s));
		char *e = nl ? nl : end;
		char *b = s;
		while (e > b && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			e--;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		char *next = nl ? nl + 1 : end;
		if (e > b) {
			*e = 0;
			ids_add(u, path, no, b, (size_t)(e - b));
		}
		s = next;
	}
}

void qu_items_free(struct qu_items *it)
{
	free(it->ids);
	qu_idx_free(&it->index);
	free(it->in.buf);
	memset(it, 0, sizeof(*it));
}

/* ---- .npy ---- */

void qu_write_npy(const char *path, const float *v, uint64_t rows, uint32_t cols)
{
	FILE *f = fopen(path, "w");
	if (!f)
		qu_die_at(path, 0, "%s", strerror(errno));
	char dict[128];
	int n = snprintf(dict, sizeof(dict), "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu, %u), }",
			 (unsigned long long)rows, cols);
	size_t total = 10 + (size_t)n + 1;
	size_t pad = (64 - total % 64) % 64;
	uint16_t hlen = (uint16_t)((size_t)n + pad + 1);
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	fputc(hlen & 0xff, f);
	fputc(hlen >> 8, f);
	fwrite(dict, 1, (size_t)n, f);
	for (size_t k = 0; k < pad; k++)
		fputc(' ', f);
	fputc('\n', f);
	if (rows && cols)
		fwrite(v, sizeof(float) * cols, rows, f);
	qu_close(f, path);
}

float *qu_read_npy(const char *path, uint64_t *rows, uint32_t *cols)
{
	struct qu_input in;
	qu_read_file(&in, path);
	const unsigned char *b = (const unsigned char *)in.buf;
	if (in.len < 10 || memcmp(b, "\x93NUMPY", 6) != 0 || b[6] != 1)
		qu_die_at(path, 0, "not a version 1 .npy file");
	size_t hlen = b[8] | (size_t)b[9] << 8, off = 10 + hlen;
	if (off > in.len)
		qu_die_at(path, 0, "truncated .npy header");
	char h[512];
	snprintf(h, sizeof(h), "%.*s", (int)MIN(hlen, sizeof(h) - 1), (const char *)b + 10);
	if (!strstr(h, "'<f4'") || strstr(h, "True"))
		qu_die_at(path, 0, "need a C-ordered float32 ('<f4') array");
	const char *sh = strstr(h, "'shape':");
	unsigned long long r, c;
	if (!sh || sscanf(sh + 8, " (%llu , %llu )", &r, &c) != 2 || c == 0 || c > UINT32_MAX)
		qu_die_at(path, 0, "need a 2-D array");
	if (r * c * 4 != in.len - off)
		qu_die_at(path, 0, "shape (%llu, %llu) does not match the data size", r, c);
	float *v = qu_malloc(r * c * 4);
	memcpy(v, in.buf + off, r * c * 4);
	free(in.buf);
	*rows = r;
	*cols = (uint32_t)c;
	return v;
}

/* ---- dates ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;
	for (size_t k = 0; k < n; k++) {
		if (s[k] < '0' || s[k] > '9')
			return false;
		v = v * 10 + (unsigned)(s[k] - '0');
	}
	*out = v;
	return true;
}

bool qu_parse_date(const char *s, size_t len, int64_t *ms)
{
	unsigned y, mo, d, hh = 0, mi = 0, ss = 0;
	if (len < 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
	    !digits(s + 8, 2, &d))
		return false;
	if (len > 10) {
		if ((s[10] != ' ' && s[10] != 'T') || len < 16 || s[13] != ':' || !digits(s + 11, 2, &hh) ||
		    !digits(s + 14, 2, &mi))
			return false;
		if (len > 16 && (len != 19 || s[16] != ':' || !digits(s + 17, 2, &ss)))
			return false;
	}
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || hh > 23 || mi > 59 || ss > 60)
		return false;
	*ms = ((days_from_civil(y, mo, d) * 24 + hh) * 60 + mi) * 60000ll + ss * 1000ll;
	return true;
}

void qu_format_ms(int64_t ms, char out[32])
{
	int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
	int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
	int64_t rem = secs - days * 86400;
	/* civil_from_days */
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	snprintf(out, 32, "%04lld-%02u-%02u %02u:%02u:%02u", (long long)y, m, d, (unsigned)(rem / 3600),
		 (unsigned)(rem / 60 % 60), (unsigned)(rem % 60));
}

/* ---- options, files ---- */

uint64_t qu_opt_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
		fprintf(stderr, "%s: %s: expected an integer in %llu..%llu, got '%s'\n", qu_prog, opt,
			(unsigned long long)lo, (unsigned long long)hi, s);
		exit(QU_EXIT_USAGE);
	}
	return v;
}

double qu_opt_double(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
		fprintf(stderr, "%s: %s: expected a number in %g..%g, got '%s'\n", qu_prog, opt, lo, hi, s);
		exit(QU_EXIT_USAGE);
	}
	return v;
}

void qu_mkdir(const char *dir)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s", dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			qu_die_at(p, 0, "mkdir: %s", strerror(errno));
		*s = '/';
	}
	if (mkdir(p, 0755) != 0 && errno != EEXIST)
		qu_die_at(dir, 0, "mkdir: %s", strerror(errno));
}

FILE *qu_create(const char *dir, const char *name, char *path, size_t pathlen)
{
	snprintf(path, pathlen, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		qu_die_at(path, 0, "%s", strerror(errno));
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	return f;
}

void qu_close(FILE *f, const char *path)
{
	bool bad = ferror(f);
	if (fclose(f) != 0 || bad)
		qu_die_at(path, 0, "write failed: %s", strerror(errno));
}

double qu_since(uint64_t t0_ns)
{
	return (double)(now_ns() - t0_ns) / 1e9;
}
