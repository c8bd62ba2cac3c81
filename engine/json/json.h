/* json.h: strict, allocation-free JSON parser (RFC 8259) into a caller-owned
 * token array, in the spirit of jsmn but validating everything.
 *
 * Why hand-written: Debian 12 has no yyjson, and cJSON/jansson/json-c
 * allocate a node per value, which the request and event paths must not
 * do. This parser writes only into the token array the caller passes
 * (per-worker, reused), never allocates, and is fuzzed (tests/fuzz).
 */
#ifndef RECD_JSON_H
#define RECD_JSON_H

#include "core/common.h"

enum json_type {
	JSON_NULL = 1,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,   /* start/len exclude the quotes; escapes not decoded */
	JSON_ARRAY,
	JSON_OBJECT,   /* children alternate key (STRING), value */
};

struct json_tok {
	uint8_t type;
	uint8_t has_escape;  /* string contains a backslash escape */
	uint32_t start;      /* offset into the source text */
	uint32_t len;
	uint32_t count;      /* arrays: elements; objects: key/value pairs */
	uint32_t next;       /* index of the first token after this subtree */
};

struct json_err {
	uint32_t offset;     /* byte offset of the problem */
	const char *msg;     /* static text */
};

/* Parse exactly one JSON value (surrounded by optional whitespace) from
 * s[0..len). Returns the number of tokens used (>= 1), or -EINVAL (syntax,
 * see err), -ENOSPC (more than max_toks tokens), -E2BIG (nesting deeper
 * than 64). Token 0 is the root. */
int json_parse(const char *s, size_t len, struct json_tok *toks, uint32_t max_toks,
	       struct json_err *err);

/* In object token `obj`, the index of the value whose key equals `key`
 * (keys compared after unescaping); -1 when absent. */
int json_obj_get(const char *s, const struct json_tok *toks, int obj, const char *key);
/* Decode a STRING token into out (NUL-terminated, UTF-8 from \u escapes
 * incl. surrogate pairs). Returns length or -ENOSPC / -EINVAL. */
int json_str_decode(const char *s, const struct json_tok *t, char *out, size_t outlen);
/* Numbers: -EINVAL if not a NUMBER, -ERANGE if not representable
 * (int: not integral or out of int64 range). */
int json_get_i64(const char *s, const struct json_tok *t, int64_t *out);
int json_get_double(const char *s, const struct json_tok *t, double *out);
/* Index of the i-th element of an ARRAY token (0-based); -1 if out of range. */
int json_array_at(const struct json_tok *toks, int arr, uint32_t i);

#endif
