/* test_http.c: the HTTP/1.1 request parser, its limits on partial input,
 * and the query-string helper. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http/http_parse.h"

static int failures;
#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                            \
			failures++;                                          \
		}                                                            \
	} while (0)

static const struct http_limits lim = {
	.max_request_line = 256,
	.max_headers = 8,
	.max_header_bytes = 1024,
	.max_body_bytes = 64,
};

static struct http_request req;

static int parse(const char *s)
{
	return http_parse_request(s, strlen(s), &lim, &req);
}

static bool str_is(struct str s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static void test_get(void)
{
	const char *r = "GET /v1/recs?user=u1&n=10 HTTP/1.1\r\n"
			"Host: example\r\n"
			"Authorization:  Bearer abc \t\r\n"
			"X-Empty:\r\n"
			"\r\n";
	CHECK(parse(r) == (int)strlen(r));
	CHECK(req.method == HTTP_M_GET);
	CHECK(str_is(req.method_str, "GET"));
	CHECK(str_is(req.target, "/v1/recs?user=u1&n=10"));
	CHECK(str_is(req.path, "/v1/recs"));
	CHECK(str_is(req.query, "user=u1&n=10"));
	CHECK(req.version_minor == 1);
	CHECK(req.n_headers == 3);
	CHECK(str_is(req.headers[0].name, "Host"));
	CHECK(str_is(req.headers[0].value, "example"));
	CHECK(str_is(req.authorization, "Bearer abc"));
	CHECK(str_is(req.headers[2].name, "X-Empty"));
	CHECK(req.headers[2].value.len == 0);
	CHECK(req.content_type.len == 0);
	CHECK(!req.has_content_length);
	CHECK(req.body.len == 0);
	CHECK(req.keep_alive);
	CHECK(req.head_len == strlen(r));
	CHECK(req.error == NULL);

	const struct http_header *h = http_find_header(&req, "host");
	CHECK(h && str_is(h->value, "example"));
	h = http_find_header(&req, "AUTHORIZATION");
	CHECK(h && str_is(h->value, "Bearer abc"));
	CHECK(http_find_header(&req, "Cookie") == NULL);
	CHECK(http_find_header(&req, "Hos") == NULL);

	/* No query string. */
	CHECK(parse("GET / HTTP/1.1\r\n\r\n") == 18);
	CHECK(str_is(req.path, "/") && req.query.len == 0);
	CHECK(req.n_headers == 0);
	/* Empty query string after '?'. */
	CHECK(parse("GET /a? HTTP/1.1\r\n\r\n") > 0);
	CHECK(str_is(req.path, "/a") && req.query.len == 0);

	/* Every known method, and an unknown but well-formed one. */
	static const struct { const char *m; enum http_method e; } ms[] = {
		{ "GET", HTTP_M_GET }, { "HEAD", HTTP_M_HEAD }, { "POST", HTTP_M_POST },
		{ "PUT", HTTP_M_PUT }, { "DELETE", HTTP_M_DELETE },
		{ "OPTIONS", HTTP_M_OPTIONS }, { "PATCH", HTTP_M_PATCH },
		{ "BREW", HTTP_M_OTHER }, { "get", HTTP_M_OTHER },
	};
	for (size_t i = 0; i < ARRAY_SIZE(ms); i++) {
		char b[64];
		snprintf(b, sizeof(b), "%s / HTTP/1.1\r\n\r\n", ms[i].m);
		CHECK(parse(b) == (int)strlen(b));
		CHECK(req.method == ms[i].e);
		CHECK(str_is(req.method_str, ms[i].m));
	}

	/* Leading empty lines are skipped (RFC 9112 2.2) and counted. */
	CHECK(parse("\r\n\r\nGET / HTTP/1.1\r\n\r\n") == 22);
	CHECK(str_is(req.path, "/"));
}

static void test_post(void)
{
	const char *r = "POST /v1/events HTTP/1.1\r\n"
			"Content-Type: application/json\r\n"
			"Content-Length: 13\r\n"
			"\r\n"
			"{\"a\":[1,2,3]}";
	CHECK(parse(r) == (int)strlen(r));
	CHECK(req.method == HTTP_M_POST);
	CHECK(str_is(req.content_type, "application/json"));
	CHECK(req.has_content_length && req.content_length == 13);
	CHECK(str_is(req.body, "{\"a\":[1,2,3]}"));
	CHECK(req.head_len == strlen(r) - 13);

	/* Body bytes beyond Content-Length belong to the next request. */
	char b[256];
	snprintf(b, sizeof(b), "%sGET", r);
	CHECK(parse(b) == (int)strlen(r));

	/* Body-less POST is legal here; CL: 0 too. */
	CHECK(parse("POST /x HTTP/1.1\r\n\r\n") == 20);
	CHECK(!req.has_content_length && req.body.len == 0);
	CHECK(parse("POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n") == 39);
	CHECK(req.has_content_length && req.content_length == 0);
	/* Leading zeros are digits like any other. */
	CHECK(parse("POST /x HTTP/1.1\r\nContent-Length: 003\r\n\r\nabc") == 44);
	CHECK(req.content_length == 3 && str_is(req.body, "abc"));
	/* Agreeing duplicates are fine. */
	CHECK(parse("POST /x HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab") > 0);
	CHECK(str_is(req.body, "ab"));
	/* Body present but incomplete. */
	CHECK(parse("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nab") == 0);
}

static void test_pipelined(void)
{
	const char *two = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
			  "POST /b?x=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
			  "GET /c HTTP/1.0\r\n\r\n";
	size_t len = strlen(two), off = 0;

	int r = http_parse_request(two, len, &lim, &req);
	CHECK(r == 28);
	CHECK(str_is(req.path, "/a"));
	off += (size_t)r;

	r = http_parse_request(two + off, len - off, &lim, &req);
	CHECK(r == 46);
	CHECK(req.method == HTTP_M_POST);
	CHECK(str_is(req.path, "/b") && str_is(req.query, "x=1"));
	CHECK(str_is(req.body, "xyz"));
	off += (size_t)r;

	r = http_parse_request(two + off, len - off, &lim, &req);
	CHECK(r == 19);
	CHECK(str_is(req.path, "/c") && req.version_minor == 0 && !req.keep_alive);
	off += (size_t)r;
	CHECK(off == len);
	CHECK(http_parse_request(two + off, 0, &lim, &req) == 0);
}

/* Feeding every prefix of a complete request must return 0, and the full
 * buffer the same result as parsing it in one go. The prefix is copied
 * to an exact-size heap block so ASan catches any read past it. */
static void check_split(const char *r)
{
	size_t len = strlen(r);
	struct http_request whole;
	int want = http_parse_request(r, len, &lim, &whole);
	CHECK(want == (int)len);

	for (size_t cut = 0; cut < len; cut++) {
		char *b = malloc(cut ? cut : 1);
		memcpy(b, r, cut);
		int got = http_parse_request(b, cut, &lim, &req);
		if (got != 0)
			fprintf(stderr, "split at %zu -> %d\n", cut, got);
		CHECK(got == 0);
		free(b);
	}
	char *b = malloc(len);
	memcpy(b, r, len);
	CHECK(http_parse_request(b, len, &lim, &req) == want);
	CHECK(req.method == whole.method && req.n_headers == whole.n_headers);
	CHECK(req.path.p - b == whole.path.p - r && req.path.len == whole.path.len);
	CHECK(req.body.p - b == whole.body.p - r && req.body.len == whole.body.len);
	CHECK(req.keep_alive == whole.keep_alive);
	CHECK(req.head_len == whole.head_len);
	free(b);
}

static void test_split(void)
{
	check_split("GET /v1/recs?user=u1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	check_split("POST /v1/events HTTP/1.1\r\nContent-Type: application/json\r\n"
		    "Content-Length: 10\r\n\r\n0123456789");
	check_split("\r\nGET / HTTP/1.0\r\n\r\n");
}

static void test_limits(void)
{
	char b[4096];

	/* 414: a line exactly at the limit passes, one byte over fails,
	 * and so does a partial line already past the limit. */
	size_t fixed = strlen("GET / HTTP/1.1") - 1;   /* without the path's '/' */
	memset(b, 0, sizeof(b));
	strcpy(b, "GET /");
	memset(b + 5, 'a', lim.max_request_line - fixed - 1);
	strcat(b, " HTTP/1.1\r\n\r\n");
	CHECK(strlen(b) == lim.max_request_line + 4);
	CHECK(parse(b) == (int)strlen(b));

	strcpy(b, "GET /");
	memset(b + 5, 'a', lim.max_request_line - fixed);
	b[5 + lim.max_request_line - fixed] = '\0';
	strcat(b, " HTTP/1.1\r\n\r\n");
	CHECK(parse(b) == -414);
	CHECK(req.error != NULL);

	strcpy(b, "GET /");
	memset(b + 5, 'a', 300);
	b[305] = '\0';
	CHECK(parse(b) == -414);                 /* no CRLF yet */
	b[5 + lim.max_request_line - 5] = '\0';  /* exactly max bytes so far */
	CHECK(parse(b) == 0);
	/* Even the method alone. */
	memset(b, 'G', 300);
	b[300] = '\0';
	CHECK(parse(b) == -414);

	/* 431 by count: max_headers fields pass; one more fails, complete or
	 * not. */
	strcpy(b, "GET / HTTP/1.1\r\n");
	for (uint32_t i = 0; i < lim.max_headers; i++)
		sprintf(b + strlen(b), "X-%u: v\r\n", i);
	size_t at_limit = strlen(b);
	strcat(b, "\r\n");
	CHECK(parse(b) == (int)strlen(b));
	CHECK(req.n_headers == lim.max_headers);
	b[at_limit] = '\0';
	strcat(b, "X-more: v\r\n\r\n");
	CHECK(parse(b) == -431);
	b[at_limit + 1] = '\0';                  /* just "X" of the extra one */
	CHECK(parse(b) == -431);

	/* 431 by bytes: a complete head over the limit, and a partial one. */
	strcpy(b, "GET / HTTP/1.1\r\nX-Big: ");
	memset(b + strlen(b), 'v', 1100);
	b[23 + 1100] = '\0';
	strcat(b, "\r\n\r\n");
	CHECK(parse(b) == -431);
	b[lim.max_header_bytes + 1] = '\0';
	CHECK(parse(b) == -431);
	b[lim.max_header_bytes] = '\0';
	CHECK(parse(b) == 0);
	/* A head of exactly max_header_bytes passes. */
	strcpy(b, "GET / HTTP/1.1\r\nX-Big: ");
	size_t fill = lim.max_header_bytes - strlen(b) - 4;
	memset(b + strlen(b), 'v', fill);
	b[23 + fill] = '\0';
	strcat(b, "\r\n\r\n");
	CHECK(strlen(b) == lim.max_header_bytes);
	CHECK(parse(b) == (int)lim.max_header_bytes);
	/* Many small headers, no final CRLF, past the byte limit. */
	struct http_limits many = lim;
	many.max_headers = HTTP_MAX_HEADERS_CAP;
	many.max_header_bytes = 200;
	strcpy(b, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 40; i++)
		strcat(b, "A: b\r\n");
	CHECK(http_parse_request(b, strlen(b), &many, &req) == -431);
	/* max_headers above the cap is clamped to it. */
	many.max_headers = 1000;
	many.max_header_bytes = 65536;
	strcpy(b, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS_CAP + 1; i++)
		strcat(b, "A: b\r\n");
	CHECK(http_parse_request(b, strlen(b), &many, &req) == -431);

	/* 413 as soon as the head is complete, without the body. */
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n") == -413);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 64\r\n\r\n") == 0);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n") == -413);
	/* ... but not while the Content-Length line itself is incomplete. */
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 65\r\n") == 0);
}

static void test_malformed(void)
{
	/* Method characters. */
	CHECK(parse("G(T / HTTP/1.1\r\n\r\n") == -400);
	CHECK(parse("GE\x01 / HTTP/1.1\r\n\r\n") == -400);
	CHECK(parse("G@") == -400);               /* found on partial input */
	CHECK(parse(" GET / HTTP/1.1\r\n\r\n") == -400);
	/* Request-line shape. */
	CHECK(parse("GET  / HTTP/1.1\r\n\r\n") == -400);
	CHECK(parse("GET /  HTTP/1.1\r\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1.1 \r\n\r\n") == -400);
	CHECK(parse("GET /\r\n\r\n") == -400);     /* HTTP/0.9 */
	CHECK(parse("GET /a\tb HTTP/1.1\r\n\r\n") == -400);
	CHECK(parse("GET /\xc3\xa9 HTTP/1.1\r\n\r\n") == -400);
	/* Bare LF and bare CR. */
	CHECK(parse("GET / HTTP/1.1\n\n") == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost: x\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost: x\r\n\n") == -400);
	CHECK(parse("GET / HTTP/1.1\rX") == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1.1\r\n\rX") == -400);
	/* Header names. */
	CHECK(parse("GET / HTTP/1.1\r\nHost : x\r\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1.1\r\n: x\r\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1.1\r\nX(y): x\r\n\r\n") == -400);
	/* Field values: controls refused, obs-text allowed. */
	CHECK(parse("GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n") > 0);
	/* obs-fold, and whitespace before the first header. */
	CHECK(parse("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1.1\r\n Host: x\r\n\r\n") == -400);

	/* Versions: malformed -> 400, well-formed but unsupported -> 505. */
	CHECK(parse("GET / HTTP/1.2\r\n\r\n") == -505);
	CHECK(parse("GET / HTTP/2.0\r\n\r\n") == -505);
	CHECK(parse("GET / HTTP/0.9\r\n\r\n") == -505);
	CHECK(parse("GET / HTTP/1.10\r\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1\r\n\r\n") == -400);
	CHECK(parse("GET / http/1.1\r\n\r\n") == -400);
	CHECK(parse("GET / HTTP/1,1\r\n\r\n") == -400);
	CHECK(parse("GET / HTTQ/1.1\r\n\r\n") == -400);
	CHECK(req.error != NULL);

	/* Content-Length. */
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab") == -400);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n") == -400);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\na") == -400);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n") == -400);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nab") == -400);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n") == -400);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n") == -400);
	/* Transfer-Encoding: 501 alone, 400 with Content-Length (either order). */
	CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == -501);
	CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n") == -501);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n") == -400);
	CHECK(parse("POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nContent-Length: 3\r\n\r\n") == -400);
	/* ... decided only once the head is complete. */
	CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n") == 0);
}

static void test_keep_alive(void)
{
	CHECK(parse("GET / HTTP/1.1\r\n\r\n") > 0 && req.keep_alive);
	CHECK(parse("GET / HTTP/1.0\r\n\r\n") > 0 && !req.keep_alive);
	CHECK(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n") > 0 && !req.keep_alive);
	CHECK(parse("GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n") > 0 && !req.keep_alive);
	CHECK(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") > 0 && req.keep_alive);
	CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0 && req.keep_alive);
	CHECK(parse("GET / HTTP/1.1\r\nConnection: Upgrade, close\r\n\r\n") > 0 && !req.keep_alive);
	CHECK(parse("GET / HTTP/1.0\r\nConnection: te,keep-alive\r\n\r\n") > 0 && req.keep_alive);
	CHECK(parse("GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n") > 0 && !req.keep_alive);
	CHECK(parse("GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n") > 0 &&
	      !req.keep_alive);
	/* Tokens match whole: "closed" is not "close". */
	CHECK(parse("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n") > 0 && req.keep_alive);
	CHECK(parse("GET / HTTP/1.0\r\nConnection: upgrade\r\n\r\n") > 0 && !req.keep_alive);
}

static void test_query(void)
{
	char out[16];
	struct str q = { "a=1&b=hello+world&c=%41%2f%e2%82%ac&d&e=&a=2&k%20x=y&bad=%4&bad2=%zz&nul=%00", 0 };
	q.len = strlen(q.p);

	CHECK(http_query_get(q, "a", out, sizeof(out)) == 1 && !strcmp(out, "1"));
	CHECK(http_query_get(q, "b", out, sizeof(out)) == 11 && !strcmp(out, "hello world"));
	CHECK(http_query_get(q, "c", out, sizeof(out)) == 5 && !strcmp(out, "A/\xe2\x82\xac"));
	CHECK(http_query_get(q, "d", out, sizeof(out)) == 0 && out[0] == '\0');
	CHECK(http_query_get(q, "e", out, sizeof(out)) == 0 && out[0] == '\0');
	CHECK(http_query_get(q, "k x", out, sizeof(out)) == 1 && !strcmp(out, "y"));
	CHECK(http_query_get(q, "missing", out, sizeof(out)) == -ENOENT);
	CHECK(http_query_get(q, "", out, sizeof(out)) == -ENOENT);
	CHECK(http_query_get(q, "bad", out, sizeof(out)) == -EINVAL);
	CHECK(http_query_get(q, "bad2", out, sizeof(out)) == -EINVAL);
	CHECK(http_query_get(q, "nul", out, sizeof(out)) == -EINVAL);
	/* Exact fit, one short, and no room at all. */
	CHECK(http_query_get(q, "b", out, 12) == 11);
	CHECK(http_query_get(q, "b", out, 11) == -ENOSPC);
	CHECK(http_query_get(q, "e", out, 0) == -ENOSPC);
	/* Prefix keys do not match. */
	struct str q2 = { "user_id=7&user=8", 16 };
	CHECK(http_query_get(q2, "user", out, sizeof(out)) == 1 && !strcmp(out, "8"));
	CHECK(http_query_get(q2, "use", out, sizeof(out)) == -ENOENT);
	/* Trailing '%' and empty query. */
	struct str q3 = { "x=ab%", 5 };
	CHECK(http_query_get(q3, "x", out, sizeof(out)) == -EINVAL);
	struct str q4 = { "", 0 };
	CHECK(http_query_get(q4, "x", out, sizeof(out)) == -ENOENT);
	/* Through the parser. */
	CHECK(parse("GET /r?user=a%2Bb&n=3 HTTP/1.1\r\n\r\n") > 0);
	CHECK(http_query_get(req.query, "user", out, sizeof(out)) == 3 && !strcmp(out, "a+b"));
}

static void test_reason(void)
{
	CHECK(!strcmp(http_reason(200), "OK"));
	CHECK(!strcmp(http_reason(404), "Not Found"));
	CHECK(!strcmp(http_reason(414), "URI Too Long"));
	CHECK(!strcmp(http_reason(431), "Request Header Fields Too Large"));
	CHECK(!strcmp(http_reason(505), "HTTP Version Not Supported"));
	CHECK(!strcmp(http_reason(999), "Unknown"));
	CHECK(!strcmp(http_reason(-400), "Unknown"));
}

int main(void)
{
	test_get();
	test_post();
	test_pipelined();
	test_split();
	test_limits();
	test_malformed();
	test_keep_alive();
	test_query();
	test_reason();
	if (failures) {
		fprintf(stderr, "test_http: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_http: ok\n");
	return 0;
}
