/* json.c: strict RFC 8259 parser into a caller-owned token array, plus the
 * accessors the request and event paths use (object lookup, string
 * decoding, numbers).
 *
 * Theory of operation: one recursive-descent pass over the text. Each value
 * takes one token, written in document order, so a container's children
 * follow it and `next` (set when the container closes) lets a reader skip a
 * whole subtree in O(1). Recursion is bounded by JSON_MAX_DEPTH, so stack
 * use is bounded whatever the input.
 *
 * Strictness beyond the grammar, so that later accessors cannot fail on a
 * token that parsed: strings must be valid UTF-8 (no overlongs, no encoded
 * surrogates, nothing past U+10FFFF) and \u escapes must not form a lone
 * surrogate. Duplicate object keys are accepted; json_obj_get returns the
 * first. Numbers go through strtod, which assumes the process keeps the
 * "C" LC_NUMERIC locale (recd never calls setlocale).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "json/json.h"

#define JSON_MAX_DEPTH 64

struct jp {
	const char *s;
	uint32_t len;
	uint32_t pos;
	struct json_tok *toks;
	uint32_t max;
	uint32_t n;
	int depth;
	struct json_err *err;
};

/* String byte classes: 0 plain ASCII, 1 '"', 2 '\\', 3 control, 4 non-ASCII. */
static const uint8_t str_cls[256] = {
	[0x00 ... 0x1f] = 3,
	['"'] = 1,
	['\\'] = 2,
	[0x80 ... 0xff] = 4,
};

static __cold int fail(struct jp *p, uint32_t off, int code, const char *msg)
{
	if (p->err) {
		p->err->offset = off;
		p->err->msg = msg;
	}
	return code;
}

static inline void skip_ws(struct jp *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];
		if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
			break;
		p->pos++;
	}
}

static inline int new_tok(struct jp *p, uint8_t type, uint32_t start)
{
	if (unlikely(p->n >= p->max))
		return fail(p, start, -ENOSPC, "too many tokens");
	struct json_tok *t = &p->toks[p->n];
	t->type = type;
	t->has_escape = 0;
	t->start = start;
	t->len = 0;
	t->count = 0;
	t->next = p->n + 1;
	return (int)p->n++;
}

static inline int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Four hex digits at s[i..i+4) within end, or -1. */
static int hex4(const char *s, uint32_t i, uint32_t end)
{
	if (end - i < 4)
		return -1;
	int a = hexval((uint8_t)s[i]), b = hexval((uint8_t)s[i + 1]);
	int c = hexval((uint8_t)s[i + 2]), d = hexval((uint8_t)s[i + 3]);
	if ((a | b | c | d) < 0)
		return -1;
	return a << 12 | b << 8 | c << 4 | d;
}

/* Decode the escape at s[*i] == '\\' (string ends at `end`) into UTF-8.
 * Returns the number of bytes written to out[4], or -EINVAL. Shared by the
 * parser (validation) and the accessors (decoding), so they cannot
 * disagree. */
static int esc_decode(const char *s, uint32_t *i, uint32_t end, uint8_t out[4])
{
	uint32_t k = *i + 1;
	uint32_t cp;

	if (k >= end)
		return -EINVAL;
	switch (s[k]) {
	case '"': out[0] = '"'; *i = k + 1; return 1;
	case '\\': out[0] = '\\'; *i = k + 1; return 1;
	case '/': out[0] = '/'; *i = k + 1; return 1;
	case 'b': out[0] = '\b'; *i = k + 1; return 1;
	case 'f': out[0] = '\f'; *i = k + 1; return 1;
	case 'n': out[0] = '\n'; *i = k + 1; return 1;
	case 'r': out[0] = '\r'; *i = k + 1; return 1;
	case 't': out[0] = '\t'; *i = k + 1; return 1;
	case 'u': break;
	default: return -EINVAL;
	}
	int h = hex4(s, k + 1, end);
	if (h < 0)
		return -EINVAL;
	cp = (uint32_t)h;
	k += 5;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return -EINVAL;                 /* low surrogate first */
	if (cp >= 0xd800 && cp <= 0xdbff) {
		/* A high surrogate must be followed by an escaped low one. */
		if (end - k < 6 || s[k] != '\\' || s[k + 1] != 'u')
			return -EINVAL;
		int lo = hex4(s, k + 2, end);
		if (lo < 0xdc00 || lo > 0xdfff)
			return -EINVAL;
		cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
		k += 6;
	}
	*i = k;
	if (cp < 0x80) {
		out[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (uint8_t)(0xc0 | cp >> 6);
		out[1] = (uint8_t)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (uint8_t)(0xe0 | cp >> 12);
		out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (uint8_t)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (uint8_t)(0xf0 | cp >> 18);
	out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (uint8_t)(0x80 | (cp & 0x3f));
	return 4;
}

/* Length of the well-formed UTF-8 sequence at u[0..avail) (u[0] >= 0x80),
 * or 0 if ill-formed (RFC 3629, table 3-7 of Unicode). */
static uint32_t utf8_seq(const uint8_t *u, uint32_t avail)
{
	uint8_t c = u[0], lo = 0x80, hi = 0xbf;
	uint32_t n;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;      /* no overlongs */
		else if (c == 0xed)
			hi = 0x9f;      /* no UTF-16 surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;      /* <= U+10FFFF */
	} else
		return 0;
	if (avail < n || u[1] < lo || u[1] > hi)
		return 0;
	for (uint32_t k = 2; k < n; k++)
		if ((u[k] & 0xc0) != 0x80)
			return 0;
	return n;
}

static int parse_string(struct jp *p)
{
	uint32_t open = p->pos, i = open + 1;
	const char *s = p->s;
	const uint32_t len = p->len;
	uint8_t esc = 0, tmp[4];

	for (;;) {
		/* Plain ASCII is the common case: one table load per byte. */
		while (i < len && str_cls[(uint8_t)s[i]] == 0)
			i++;
		if (unlikely(i >= len))
			return fail(p, open, -EINVAL, "unterminated string");
		switch (str_cls[(uint8_t)s[i]]) {
		case 1:
			goto done;
		case 2:
			esc = 1;
			if (esc_decode(s, &i, len, tmp) < 0)
				return fail(p, i, -EINVAL, "invalid escape");
			break;
		case 3:
			return fail(p, i, -EINVAL, "control character in string");
		default: {
			uint32_t n = utf8_seq((const uint8_t *)s + i, len - i);
			if (!n)
				return fail(p, i, -EINVAL, "invalid UTF-8");
			i += n;
		}
		}
	}
done:;
	int t = new_tok(p, JSON_STRING, open + 1);
	if (t < 0)
		return t;
	p->toks[t].len = i - open - 1;
	p->toks[t].has_escape = esc;
	p->pos = i + 1;
	return t;
}

static inline bool is_digit(char c)
{
	return (unsigned)(c - '0') <= 9;
}

static int parse_number(struct jp *p)
{
	const char *s = p->s;
	uint32_t start = p->pos, i = start, len = p->len;

	if (s[i] == '-')
		i++;
	if (i >= len || !is_digit(s[i]))
		return fail(p, i, -EINVAL, "invalid number");
	if (s[i] == '0') {
		i++;
		if (i < len && is_digit(s[i]))
			return fail(p, i, -EINVAL, "leading zero in number");
	} else {
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (i < len && s[i] == '.') {
		i++;
		if (i >= len || !is_digit(s[i]))
			return fail(p, i, -EINVAL, "digit expected after '.'");
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= len || !is_digit(s[i]))
			return fail(p, i, -EINVAL, "digit expected in exponent");
		while (i < len && is_digit(s[i]))
			i++;
	}
	int t = new_tok(p, JSON_NUMBER, start);
	if (t < 0)
		return t;
	p->toks[t].len = i - start;
	p->pos = i;
	return t;
}

static int parse_literal(struct jp *p, const char *lit, uint32_t n, uint8_t type)
{
	if (p->len - p->pos < n || memcmp(p->s + p->pos, lit, n))
		return fail(p, p->pos, -EINVAL, "invalid literal");
	int t = new_tok(p, type, p->pos);
	if (t < 0)
		return t;
	p->toks[t].len = n;
	p->pos += n;
	return t;
}

static int parse_value(struct jp *p);

/* Arrays and objects share one loop; `obj` adds the "key :" part. */
static int parse_container(struct jp *p, bool obj)
{
	const char close = obj ? '}' : ']';
	uint32_t start = p->pos;
	int t = new_tok(p, obj ? JSON_OBJECT : JSON_ARRAY, start);
	if (t < 0)
		return t;
	if (++p->depth > JSON_MAX_DEPTH)
		return fail(p, start, -E2BIG, "nesting too deep");
	p->pos++;
	skip_ws(p);
	uint32_t count = 0;
	if (p->pos < p->len && p->s[p->pos] == close)
		goto closed;
	for (;;) {
		int r;
		if (obj) {
			if (p->pos >= p->len || p->s[p->pos] != '"')
				return fail(p, p->pos, -EINVAL, "object key expected");
			if ((r = parse_string(p)) < 0)
				return r;
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':')
				return fail(p, p->pos, -EINVAL, "':' expected");
			p->pos++;
			skip_ws(p);
		}
		if ((r = parse_value(p)) < 0)
			return r;
		count++;
		skip_ws(p);
		if (p->pos >= p->len)
			return fail(p, p->pos, -EINVAL, obj ? "unterminated object" : "unterminated array");
		if (p->s[p->pos] == close)
			break;
		if (p->s[p->pos] != ',')
			return fail(p, p->pos, -EINVAL, obj ? "',' or '}' expected" : "',' or ']' expected");
		p->pos++;
		skip_ws(p);
	}
closed:
	p->pos++;
	p->depth--;
	p->toks[t].count = count;
	p->toks[t].len = p->pos - start;
	p->toks[t].next = p->n;
	return t;
}

static int parse_value(struct jp *p)
{
	if (p->pos >= p->len)
		return fail(p, p->pos, -EINVAL, "value expected");
	switch (p->s[p->pos]) {
	case '{': return parse_container(p, true);
	case '[': return parse_container(p, false);
	case '"': return parse_string(p);
	case 't': return parse_literal(p, "true", 4, JSON_TRUE);
	case 'f': return parse_literal(p, "false", 5, JSON_FALSE);
	case 'n': return parse_literal(p, "null", 4, JSON_NULL);
	case '-':
	case '0' ... '9':
		return parse_number(p);
	default:
		return fail(p, p->pos, -EINVAL, "unexpected character");
	}
}

int json_parse(const char *s, size_t len, struct json_tok *toks, uint32_t max_toks,
	       struct json_err *err)
{
	struct jp p = {
		.s = s,
		.len = (uint32_t)len,
		.toks = toks,
		.max = MIN(max_toks, (uint32_t)INT32_MAX),
		.err = err,
	};

	/* Offsets are 32-bit; a document that large is refused outright. */
	if (len >= UINT32_MAX)
		return fail(&p, 0, -EINVAL, "document too large");
	skip_ws(&p);
	int r = parse_value(&p);
	if (r < 0)
		return r;
	skip_ws(&p);
	if (p.pos != p.len)
		return fail(&p, p.pos, -EINVAL, "trailing characters after value");
	return (int)p.n;
}

/* Compare a STRING token, decoded, with a NUL-terminated key. */
static bool str_tok_eq(const char *s, const struct json_tok *t, const char *key)
{
	if (!t->has_escape) {
		size_t kl = strlen(key);
		return kl == t->len && memcmp(s + t->start, key, kl) == 0;
	}
	uint32_t i = t->start, end = t->start + t->len;
	size_t j = 0;
	uint8_t tmp[4];
	while (i < end) {
		if (s[i] != '\\') {
			if (key[j] == '\0' || key[j] != s[i])
				return false;
			i++;
			j++;
			continue;
		}
		int n = esc_decode(s, &i, end, tmp);
		if (n < 0)
			return false;
		for (int k = 0; k < n; k++, j++)
			if (key[j] == '\0' || (uint8_t)key[j] != tmp[k])
				return false;
	}
	return key[j] == '\0';
}

int json_obj_get(const char *s, const struct json_tok *toks, int obj, const char *key)
{
	if (obj < 0 || toks[obj].type != JSON_OBJECT)
		return -1;
	uint32_t i = (uint32_t)obj + 1;
	for (uint32_t k = 0; k < toks[obj].count; k++) {
		if (str_tok_eq(s, &toks[i], key))
			return (int)i + 1;
		i = toks[i + 1].next;
	}
	return -1;
}

int json_str_decode(const char *s, const struct json_tok *t, char *out, size_t outlen)
{
	if (t->type != JSON_STRING)
		return -EINVAL;
	if (!t->has_escape) {
		if (t->len >= outlen)
			return -ENOSPC;
		memcpy(out, s + t->start, t->len);
		out[t->len] = '\0';
		return (int)t->len;
	}
	uint32_t i = t->start, end = t->start + t->len;
	size_t o = 0;
	uint8_t tmp[4];
	while (i < end) {
		/* Copy the run up to the next backslash in one go. */
		const char *bs = memchr(s + i, '\\', end - i);
		uint32_t run = bs ? (uint32_t)(bs - (s + i)) : end - i;
		if (o + run >= outlen)
			return -ENOSPC;
		memcpy(out + o, s + i, run);
		o += run;
		i += run;
		if (i == end)
			break;
		int n = esc_decode(s, &i, end, tmp);
		if (n < 0)
			return -EINVAL;
		if (o + (size_t)n >= outlen)
			return -ENOSPC;
		memcpy(out + o, tmp, (size_t)n);
		o += (size_t)n;
	}
	if (o >= outlen)
		return -ENOSPC;
	out[o] = '\0';
	return (int)o;
}

int json_get_i64(const char *s, const struct json_tok *t, int64_t *out)
{
	if (t->type != JSON_NUMBER)
		return -EINVAL;
	const char *p = s + t->start, *e = p + t->len;
	bool neg = *p == '-';
	const char *d = p + neg;
	const char *q = d;
	while (q < e && is_digit(*q))
		q++;
	if (q != e) {
		/* Fraction or exponent: accept it when the value is integral
		 * (1.0, 2e3) and fits. The bounds are exact doubles: -2^63 is
		 * in range, 2^63 is not. */
		double v;
		int r = json_get_double(s, t, &v);
		if (r < 0)
			return r;
		if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0))
			return -ERANGE;
		int64_t iv = (int64_t)v;
		if ((double)iv != v)
			return -ERANGE;
		*out = iv;
		return 0;
	}
	/* Pure integer: exact, no detour through double. */
	const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	uint64_t v = 0;
	for (; d < e; d++) {
		unsigned dig = (unsigned)(*d - '0');
		if (v > (limit - dig) / 10)
			return -ERANGE;
		v = v * 10 + dig;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int json_get_double(const char *s, const struct json_tok *t, double *out)
{
	/* strtod needs a terminator the source may not have: copy. Numbers
	 * longer than this are refused rather than rounded by hand. */
	char tmp[320];

	if (t->type != JSON_NUMBER)
		return -EINVAL;
	if (t->len >= sizeof(tmp))
		return -ERANGE;
	memcpy(tmp, s + t->start, t->len);
	tmp[t->len] = '\0';

	int saved = errno;
	errno = 0;
	double v = strtod(tmp, NULL);
	int e = errno;
	errno = saved;
	/* Underflow to a denormal or zero is a fine answer; overflow is not. */
	if (e == ERANGE && (v > 1.0 || v < -1.0))
		return -ERANGE;
	*out = v;
	return 0;
}

int json_array_at(const struct json_tok *toks, int arr, uint32_t i)
{
	if (arr < 0 || toks[arr].type != JSON_ARRAY || i >= toks[arr].count)
		return -1;
	uint32_t k = (uint32_t)arr + 1;
	while (i--)
		k = toks[k].next;
	return (int)k;
}
