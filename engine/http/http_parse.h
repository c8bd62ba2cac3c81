/* http_parse.h: strict, allocation-free HTTP/1.1 request parser.
 *
 * The parser works on the bytes received so far and is restartable: it
 * returns 0 until a whole request (head and body) is present, so a request
 * split across reads is simply parsed again once more bytes arrive. Slices
 * in struct http_request point into the caller's buffer.
 *
 * Strictness: CRLF line endings only, token characters in the method and
 * header names, no whitespace before ':', no obs-fold, HTTP/1.0 or 1.1 only,
 * one Content-Length (duplicates must agree), Transfer-Encoding refused
 * (501; chunked bodies are not supported), Content-Length together with
 * Transfer-Encoding refused (400).
 */
#ifndef RECD_HTTP_PARSE_H
#define RECD_HTTP_PARSE_H

#include "core/common.h"

#define HTTP_MAX_HEADERS_CAP 100

enum http_method {
	HTTP_M_OTHER = 0,
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_OPTIONS,
	HTTP_M_PATCH,
};

struct http_limits {
	uint32_t max_request_line;  /* bytes of the request line, without CRLF: 414 */
	uint32_t max_headers;       /* number of header fields (<= HTTP_MAX_HEADERS_CAP): 431 */
	uint32_t max_header_bytes;  /* bytes of the whole head incl. request line: 431 */
	uint32_t max_body_bytes;    /* Content-Length above this: 413 */
};

struct http_header {
	struct str name;
	struct str value;  /* leading/trailing OWS stripped */
};

struct http_request {
	enum http_method method;
	struct str method_str;
	struct str target;   /* as sent: path + optional ?query */
	struct str path;     /* before '?' */
	struct str query;    /* after '?', without it (len 0 if none) */
	int version_minor;   /* 0 or 1 */
	uint32_t n_headers;
	struct http_header headers[HTTP_MAX_HEADERS_CAP];
	struct str content_type;   /* len 0 if absent */
	struct str authorization;  /* len 0 if absent */
	bool has_content_length;
	uint64_t content_length;
	bool keep_alive;     /* 1.1 default on, 1.0 default off, Connection header wins */
	struct str body;
	uint32_t head_len;   /* bytes of request line + headers + blank line */
	const char *error;   /* short static text when the result is negative */
};

/* Parse one request at the start of buf[0..len).
 * Returns the request's total length (> 0) when complete; 0 when more bytes
 * are needed (and no limit is already exceeded); or -status on a malformed
 * request: -400, -413, -414, -431, -501 (Transfer-Encoding), -505 (version),
 * -411 never (a body-less POST is legal here; the router decides).
 * `req->error` then holds a static description for the JSON error body. */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
		       struct http_request *req);

/* Case-insensitive lookup; NULL when absent. */
const struct http_header *http_find_header(const struct http_request *req, const char *name);
/* Reason phrase for a status code ("Not Found"); "Unknown" otherwise. */
const char *http_reason(int status);
/* Percent-decode a path segment into out (NUL-terminated; '+' stays '+').
 * Returns the length, -EINVAL on a bad escape or %00, -ENOSPC. */
int http_path_decode(struct str seg, char *out, size_t outlen);

/* Find `key` in a query string (a=1&b=2) and percent-decode its value into
 * out (NUL-terminated). Returns the decoded length, -ENOENT when absent,
 * -EINVAL on bad %-escapes, -ENOSPC when out is too small. '+' decodes to
 * a space. */
int http_query_get(struct str query, const char *key, char *out, size_t outlen);

#endif
