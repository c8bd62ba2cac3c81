/* fuzz_http.c: drives the HTTP request parser like a pipelining server:
 * parse at the start of the buffer, move past each complete request, stop
 * at the first incomplete or refused one. Tight limits so that every limit
 * is reachable with small inputs. Any broken invariant aborts. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "http/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct http_limits lim = {
	.max_request_line = 256,
	.max_headers = 16,
	.max_header_bytes = 1024,
	.max_body_bytes = 4096,
};

static struct http_request req, req2;

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)

/* A slice must lie inside [lo, hi); empty slices may point anywhere. */
static void in_range(struct str s, const char *lo, const char *hi)
{
	if (s.len == 0)
		return;
	REQUIRE(s.p >= lo && s.p <= hi && s.len <= (size_t)(hi - s.p));
}

static int ascii_ieq(struct str a, struct str b)
{
	if (a.len != b.len)
		return 0;
	for (size_t i = 0; i < a.len; i++) {
		int x = (uint8_t)a.p[i], y = (uint8_t)b.p[i];
		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (y >= 'A' && y <= 'Z')
			y += 32;
		if (x != y)
			return 0;
	}
	return 1;
}

static void check_ok(const char *buf, size_t avail, int r)
{
	const char *head_end = buf + req.head_len;

	REQUIRE((size_t)r <= avail);
	REQUIRE(req.head_len <= (uint32_t)r && req.head_len <= lim.max_header_bytes);
	REQUIRE(req.error == NULL);
	REQUIRE(req.n_headers <= lim.max_headers);
	REQUIRE(req.version_minor == 0 || req.version_minor == 1);
	REQUIRE(req.method_str.len > 0 && req.target.len > 0);
	in_range(req.method_str, buf, head_end);
	in_range(req.target, buf, head_end);
	in_range(req.path, req.target.p, req.target.p + req.target.len);
	in_range(req.query, req.target.p, req.target.p + req.target.len);
	REQUIRE(req.path.p == req.target.p);
	/* The request line (method SP target SP HTTP/x.y) is within its limit. */
	REQUIRE((size_t)(req.target.p + req.target.len + 9 - req.method_str.p) <=
		lim.max_request_line);
	for (uint32_t i = 0; i < req.n_headers; i++) {
		const struct http_header *h = &req.headers[i];
		REQUIRE(h->name.len > 0);
		in_range(h->name, buf, head_end);
		in_range(h->value, buf, head_end);
		if (h->value.len)
			REQUIRE(h->value.p[0] != ' ' && h->value.p[h->value.len - 1] != '\t' &&
				h->value.p[h->value.len - 1] != ' ');
		for (size_t k = 0; k < h->value.len; k++)
			REQUIRE(h->value.p[k] != '\r' && h->value.p[k] != '\n');
		/* Lookup by this name finds it or an earlier header of that name. */
		char name[128];
		if (h->name.len < sizeof(name)) {
			memcpy(name, h->name.p, h->name.len);
			name[h->name.len] = '\0';
			const struct http_header *f = http_find_header(&req, name);
			REQUIRE(f && f <= h && ascii_ieq(f->name, h->name));
		}
	}
	in_range(req.content_type, buf, head_end);
	in_range(req.authorization, buf, head_end);
	REQUIRE(req.content_length <= lim.max_body_bytes);
	REQUIRE(req.body.len == (req.has_content_length ? req.content_length : 0));
	REQUIRE(req.head_len + req.body.len == (size_t)r);
	if (req.body.len)
		REQUIRE(req.body.p == head_end);

	/* The query helper stays within its output buffer. */
	static const char *const keys[] = { "user", "a", "n", "" };
	char out[8];
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		int q = http_query_get(req.query, keys[i], out, sizeof(out));
		REQUIRE(q == -ENOENT || q == -EINVAL || q == -ENOSPC ||
			(q >= 0 && (size_t)q < sizeof(out) && out[q] == '\0'));
	}

	/* Restartability: the request alone parses the same, one byte less
	 * is incomplete, and looser limits accept it unchanged. */
	REQUIRE(http_parse_request(buf, (size_t)r, &lim, &req2) == r);
	REQUIRE(req2.head_len == req.head_len && req2.n_headers == req.n_headers);
	REQUIRE(req2.keep_alive == req.keep_alive);
	REQUIRE(http_parse_request(buf, (size_t)r - 1, &lim, &req2) == 0);
	REQUIRE(http_parse_request(buf, avail, NULL, &req2) == r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t off = 0;

	while (off < size) {
		int r = http_parse_request(buf + off, size - off, &lim, &req);
		if (r == 0)
			break;
		if (r < 0) {
			REQUIRE(r == -400 || r == -413 || r == -414 || r == -431 ||
				r == -501 || r == -505);
			REQUIRE(req.error != NULL);
			REQUIRE(strcmp(http_reason(-r), "Unknown") != 0);
			break;
		}
		check_ok(buf + off, size - off, r);
		off += (size_t)r;
	}
	return 0;
}
