/* http_parse.c: strict, allocation-free HTTP/1.1 request parser.
 *
 * Owns request-line and header-field syntax (RFC 9112), the framing of the
 * body by Content-Length, the keep-alive decision and the query-string
 * helper. It never allocates and never writes outside *req.
 *
 * Theory of operation: the parser is stateless between calls. Each call
 * re-scans the bytes received so far; heads are bounded by
 * max_header_bytes, so a slow client costs at most O(head^2) bytes scanned,
 * and in the common case (whole request in one read) the head is scanned
 * exactly once. Every syntax error in the received prefix is reported at
 * once, and every limit is checked against the prefix too, so a client
 * cannot make us buffer an over-long line or head by never finishing it.
 *
 * Choices beyond the header's contract:
 *  - empty lines (CRLF) before the request line are skipped, as RFC 9112
 *    section 2.2 asks of servers; they count in the returned length;
 *  - Host is not required: routing never looks at it;
 *  - Content-Length must be plain digits; a comma list is refused (400);
 *  - the request target must be non-empty visible ASCII (no obs-text).
 */
#include <errno.h>
#include <string.h>
#include "http/http_parse.h"

/* Byte classes: T = tchar (method, field names), V = visible ASCII
 * (request target, version), F = allowed in a field value. The ranges do
 * not overlap so that -Woverride-init stays quiet. */
#define T 1
#define V 2
#define F 4
static const uint8_t cls[256] = {
	['\t'] = F,
	[' '] = F,
	['!'] = T | V | F,
	['"'] = V | F,
	['#' ... '\''] = T | V | F,
	['(' ... ')'] = V | F,
	['*' ... '+'] = T | V | F,
	[','] = V | F,
	['-' ... '.'] = T | V | F,
	['/'] = V | F,
	['0' ... '9'] = T | V | F,
	[':' ... '@'] = V | F,
	['A' ... 'Z'] = T | V | F,
	['[' ... ']'] = V | F,
	['^' ... 'z'] = T | V | F,
	['{'] = V | F,
	['|'] = T | V | F,
	['}'] = V | F,
	['~'] = T | V | F,
	[0x80 ... 0xff] = F,
};
#undef T
#undef V
#undef F
#define IS_TCHAR(c) (cls[(uint8_t)(c)] & 1)
#define IS_VCHAR(c) (cls[(uint8_t)(c)] & 2)
#define IS_FVCHAR(c) (cls[(uint8_t)(c)] & 4)

static inline int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Compare a token (field name, Connection option) with a lowercase literal
 * made of letters and '-'. OR-ing 0x20 folds A-Z onto a-z; no other tchar
 * folds onto a letter or '-', so the comparison is exact. */
static inline bool tok_ieq(const char *p, size_t n, const char *lit, size_t litlen)
{
	if (n != litlen)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((p[i] | 0x20) != lit[i])
			return false;
	return true;
}
#define TOK_IEQ(p, n, lit) tok_ieq((p), (n), (lit), sizeof(lit) - 1)

static enum http_method method_of(const char *p, size_t n)
{
	switch (n) {
	case 3:
		if (!memcmp(p, "GET", 3))
			return HTTP_M_GET;
		if (!memcmp(p, "PUT", 3))
			return HTTP_M_PUT;
		break;
	case 4:
		if (!memcmp(p, "POST", 4))
			return HTTP_M_POST;
		if (!memcmp(p, "HEAD", 4))
			return HTTP_M_HEAD;
		break;
	case 5:
		if (!memcmp(p, "PATCH", 5))
			return HTTP_M_PATCH;
		break;
	case 6:
		if (!memcmp(p, "DELETE", 6))
			return HTTP_M_DELETE;
		break;
	case 7:
		if (!memcmp(p, "OPTIONS", 7))
			return HTTP_M_OPTIONS;
		break;
	}
	return HTTP_M_OTHER;
}

/* Content-Length: 1*DIGIT. Values past 18 digits saturate: they are far
 * above any body limit and end as 413, never as a wrapped small number. */
static int parse_content_length(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(uint8_t)p[i] - '0';
		if (d > 9)
			return -1;
		if (i < 18)
			v = v * 10 + d;
		else
			v = UINT64_MAX;
	}
	*out = v;
	return 0;
}

/* Connection: 1#token. "close" beats "keep-alive" when both appear. */
static void apply_connection(const char *p, size_t n, int *conn_close, int *conn_keep)
{
	size_t i = 0;

	while (i < n) {
		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
			i++;
		size_t s = i;
		while (i < n && p[i] != ',' && p[i] != ' ' && p[i] != '\t')
			i++;
		if (TOK_IEQ(p + s, i - s, "close"))
			*conn_close = 1;
		else if (TOK_IEQ(p + s, i - s, "keep-alive"))
			*conn_keep = 1;
	}
}

static int fail(struct http_request *req, int status, const char *msg)
{
	req->error = msg;
	return -status;
}

int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
		       struct http_request *req)
{
	/* NULL limits: permissive-but-bounded defaults, for tools and tests. */
	static const struct http_limits defaults = {
		.max_request_line = 8192,
		.max_headers = 64,
		.max_header_bytes = 16384,
		.max_body_bytes = 1 << 20,
	};
	if (!lim)
		lim = &defaults;

	const uint32_t max_headers = MIN(lim->max_headers, (uint32_t)HTTP_MAX_HEADERS_CAP);
	const size_t max_hb = lim->max_header_bytes;
	/* Everything in the head is scanned within [buf, hend): running into
	 * hend while more bytes exist means the head is over its limit. */
	const char *const end = buf + len;
	const char *const hend = buf + MIN(len, max_hb);
	const char *p = buf, *q, *e;
	uint32_t n = 0;
	int conn_close = 0, conn_keep = 0, has_te = 0;

	req->error = NULL;
	req->n_headers = 0;
	req->content_type = (struct str){ NULL, 0 };
	req->authorization = (struct str){ NULL, 0 };
	req->has_content_length = false;
	req->content_length = 0;
	req->keep_alive = false;
	req->body = (struct str){ NULL, 0 };

	while (p + 1 < hend && p[0] == '\r' && p[1] == '\n')
		p += 2;
	if (p < hend && p[0] == '\r' && p + 1 == hend)
		goto need_more;

	/* Request line. Its scan is bounded by max_request_line (+1 for the
	 * CR), not by hend, so that an over-long line reports 414 rather
	 * than 431. */
	const char *const line = p;
	e = end - line > (ptrdiff_t)lim->max_request_line ? line + lim->max_request_line + 1 : end;

	for (q = p; q < e && IS_TCHAR(*q); q++)
		;
	if (q == e)
		goto rl_short;
	if (*q != ' ' || q == p)
		return fail(req, 400, "invalid method");
	req->method_str = (struct str){ p, (size_t)(q - p) };
	req->method = method_of(p, (size_t)(q - p));

	p = ++q;
	for (; q < e && IS_VCHAR(*q); q++)
		;
	if (q == e)
		goto rl_short;
	if (*q != ' ' || q == p)
		return fail(req, 400, "invalid request target");
	req->target = (struct str){ p, (size_t)(q - p) };

	p = ++q;
	for (; q < e && IS_VCHAR(*q); q++)
		;
	if (q == e)
		goto rl_short;
	if (*q != '\r')
		return fail(req, 400, "invalid request line");
	if (q + 1 == end)
		goto need_more;
	if (q[1] != '\n')
		return fail(req, 400, "bare CR in request line");
	if (q - p != 8 || memcmp(p, "HTTP/", 5) || p[6] != '.' ||
	    (unsigned)(p[5] - '0') > 9 || (unsigned)(p[7] - '0') > 9)
		return fail(req, 400, "invalid HTTP version");
	if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
		return fail(req, 505, "HTTP version not supported");
	req->version_minor = p[7] - '0';
	p = q + 2;
	if (p > hend)
		goto need_more;

	/* Split the target once here: the router and the handlers need both. */
	{
		const char *t = req->target.p;
		const char *qm = memchr(t, '?', req->target.len);
		if (qm) {
			req->path = (struct str){ t, (size_t)(qm - t) };
			req->query = (struct str){ qm + 1, req->target.len - (size_t)(qm - t) - 1 };
		} else {
			req->path = req->target;
			req->query = (struct str){ qm, 0 };
		}
	}

	/* Header fields. */
	for (;;) {
		if (p >= hend)
			goto need_more;
		if (*p == '\r') {
			if (p + 1 >= hend)
				goto need_more;
			if (p[1] != '\n')
				return fail(req, 400, "bare CR in header");
			p += 2;
			break;
		}
		if (*p == ' ' || *p == '\t')
			return fail(req, 400, "obsolete line folding");
		if (n >= max_headers)
			return fail(req, 431, "too many header fields");

		const char *name = p;
		for (q = p; q < hend && IS_TCHAR(*q); q++)
			;
		if (q == hend)
			goto need_more;
		if (*q != ':' || q == name)
			return fail(req, 400, "invalid header name");
		size_t nlen = (size_t)(q - name);

		for (q++; q < hend && (*q == ' ' || *q == '\t'); q++)
			;
		const char *val = q;
		for (; q < hend && IS_FVCHAR(*q); q++)
			;
		if (q == hend)
			goto need_more;
		if (*q != '\r')
			return fail(req, 400, "invalid character in header");
		if (q + 1 >= hend)
			goto need_more;
		if (q[1] != '\n')
			return fail(req, 400, "bare CR in header");
		const char *vend = q;
		while (vend > val && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
		size_t vlen = (size_t)(vend - val);
		p = q + 2;

		struct http_header *h = &req->headers[n++];
		h->name = (struct str){ name, nlen };
		h->value = (struct str){ val, vlen };

		/* Headers the parser itself acts on; dispatch on length first. */
		switch (nlen) {
		case 10:
			if (TOK_IEQ(name, nlen, "connection"))
				apply_connection(val, vlen, &conn_close, &conn_keep);
			break;
		case 12:
			if (TOK_IEQ(name, nlen, "content-type") && !req->content_type.p)
				req->content_type = h->value;
			break;
		case 13:
			if (TOK_IEQ(name, nlen, "authorization") && !req->authorization.p)
				req->authorization = h->value;
			break;
		case 14:
			if (TOK_IEQ(name, nlen, "content-length")) {
				uint64_t cl;
				if (parse_content_length(val, vlen, &cl))
					return fail(req, 400, "invalid Content-Length");
				if (req->has_content_length && cl != req->content_length)
					return fail(req, 400, "conflicting Content-Length");
				req->has_content_length = true;
				req->content_length = cl;
			}
			break;
		case 17:
			if (TOK_IEQ(name, nlen, "transfer-encoding"))
				has_te = 1;
			break;
		}
	}
	req->n_headers = n;
	req->head_len = (uint32_t)(p - buf);

	/* Framing. CL + TE is the classic smuggling vector: refuse it. */
	if (has_te)
		return req->has_content_length
			? fail(req, 400, "Content-Length with Transfer-Encoding")
			: fail(req, 501, "Transfer-Encoding not supported");
	if (req->content_length > lim->max_body_bytes)
		return fail(req, 413, "request body too large");
	/* The total must fit the int we return. */
	if (req->content_length > (uint64_t)INT32_MAX - req->head_len)
		return fail(req, 413, "request body too large");

	size_t total = req->head_len + (size_t)req->content_length;
	if (len < total)
		return 0;
	req->body = (struct str){ p, (size_t)req->content_length };

	if (conn_close)
		req->keep_alive = false;
	else if (conn_keep)
		req->keep_alive = true;
	else
		req->keep_alive = req->version_minor == 1;
	return (int)total;

rl_short:
	/* Ran out of bytes (or hit the scan bound) inside the request line.
	 * A bound hit means max_request_line + 1 bytes without a CR. */
	if (e - line > (ptrdiff_t)lim->max_request_line)
		return fail(req, 414, "request line too long");
need_more:
	if (len > max_hb)
		return fail(req, 431, "request header too large");
	return 0;
}

const struct http_header *http_find_header(const struct http_request *req, const char *name)
{
	size_t nlen = strlen(name);

	for (uint32_t i = 0; i < req->n_headers; i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name.len != nlen)
			continue;
		size_t j = 0;
		while (j < nlen && lower((uint8_t)h->name.p[j]) == lower((uint8_t)name[j]))
			j++;
		if (j == nlen)
			return h;
	}
	return NULL;
}

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
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

/* Decode one form-urlencoded byte at s[*i] (s[..n)). Returns the byte, or
 * -1 on a bad escape. %00 counts as bad: values end up in C strings. */
static inline int query_byte(const char *s, size_t n, size_t *i)
{
	int c = (uint8_t)s[*i];

	if (c == '+') {
		(*i)++;
		return ' ';
	}
	if (c != '%') {
		(*i)++;
		return c;
	}
	if (n - *i < 3)
		return -1;
	int hi = hexval((uint8_t)s[*i + 1]), lo = hexval((uint8_t)s[*i + 2]);
	if (hi < 0 || lo < 0 || (hi | lo) == 0)
		return -1;
	*i += 3;
	return hi << 4 | lo;
}

/* Keys are compared after decoding, without a scratch buffer: a key with a
 * bad escape simply does not match. */
static bool query_key_eq(const char *k, size_t klen, const char *key)
{
	size_t i = 0, j = 0;

	while (i < klen) {
		int c = query_byte(k, klen, &i);
		if (c < 0 || key[j] == '\0' || (uint8_t)key[j] != c)
			return false;
		j++;
	}
	return key[j] == '\0';
}

int http_path_decode(struct str seg, char *out, size_t outlen)
{
	size_t i = 0, o = 0;
	while (i < seg.len) {
		/* In a path '+' is itself; only %XX escapes are decoded. */
		int c = seg.p[i] == '+' ? (i++, '+') : query_byte(seg.p, seg.len, &i);
		if (c < 0)
			return -EINVAL;
		if (o + 1 >= outlen)
			return -ENOSPC;
		out[o++] = (char)c;
	}
	if (outlen == 0)
		return -ENOSPC;
	out[o] = '\0';
	return (int)o;
}

int http_query_get(struct str query, const char *key, char *out, size_t outlen)
{
	const char *s = query.p;
	size_t n = query.len, i = 0;

	while (i < n) {
		size_t ps = i;
		while (i < n && s[i] != '&')
			i++;
		size_t pe = i++;      /* pair is s[ps..pe); skip the '&' */
		if (pe == ps)
			continue;
		const char *eq = memchr(s + ps, '=', pe - ps);
		size_t klen = eq ? (size_t)(eq - (s + ps)) : pe - ps;
		if (!query_key_eq(s + ps, klen, key))
			continue;

		const char *v = eq ? eq + 1 : s + pe;
		size_t vlen = (size_t)(s + pe - v), j = 0, o = 0;
		while (j < vlen) {
			int c = query_byte(v, vlen, &j);
			if (c < 0)
				return -EINVAL;
			if (o + 1 >= outlen)
				return -ENOSPC;
			out[o++] = (char)c;
		}
		if (outlen == 0)
			return -ENOSPC;
		out[o] = '\0';
		return (int)o;
	}
	return -ENOENT;
}
