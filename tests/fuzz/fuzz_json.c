/* fuzz_json.c: parses the input as one JSON document and, when it parses,
 * walks the token tree checking next/count, slices, the accessors and
 * the token budget. Any broken invariant aborts. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "json/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXT 1024
static struct json_tok toks[MAXT], toks2[MAXT];

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)

/* Decoded text of a STRING token in a fresh exact-size block; decoding
 * never grows the text, so len + 1 bytes always suffice. */
static char *decode(const char *s, const struct json_tok *t, int *n)
{
	char *out = malloc(t->len + 1);
	REQUIRE(out);
	*n = json_str_decode(s, t, out, t->len + 1);
	REQUIRE(*n >= 0 && (uint32_t)*n <= t->len && out[*n] == '\0');
	if (*n > 0)
		REQUIRE(json_str_decode(s, t, out, (size_t)*n) == -ENOSPC);
	return out;
}

static void check_number(const char *s, const struct json_tok *t)
{
	int64_t v;
	double d;
	int ri = json_get_i64(s, t, &v);
	int rd = json_get_double(s, t, &d);
	REQUIRE(ri == 0 || ri == -ERANGE);
	REQUIRE(rd == 0 || rd == -ERANGE);
	if (ri == 0)
		REQUIRE(rd == 0 && d == (double)v);
}

/* Checks the subtree at i; returns the index after it. */
static uint32_t walk(const char *s, size_t size, uint32_t ntok, uint32_t i, int depth)
{
	REQUIRE(i < ntok);
	const struct json_tok *t = &toks[i];
	REQUIRE((uint64_t)t->start + t->len <= size);
	const char *p = s + t->start;

	switch (t->type) {
	case JSON_NULL:
		REQUIRE(t->len == 4 && !memcmp(p, "null", 4));
		break;
	case JSON_TRUE:
		REQUIRE(t->len == 4 && !memcmp(p, "true", 4));
		break;
	case JSON_FALSE:
		REQUIRE(t->len == 5 && !memcmp(p, "false", 5));
		break;
	case JSON_NUMBER:
		REQUIRE(t->len > 0);
		check_number(s, t);
		break;
	case JSON_STRING: {
		REQUIRE(t->start > 0 && p[-1] == '"' && t->start + t->len < size && p[t->len] == '"');
		REQUIRE(!!t->has_escape == !!memchr(p, '\\', t->len));
		int n;
		free(decode(s, t, &n));
		break;
	}
	case JSON_ARRAY:
	case JSON_OBJECT: {
		int obj = t->type == JSON_OBJECT;
		REQUIRE(depth <= 64);
		REQUIRE(t->len >= 2 && p[0] == (obj ? '{' : '[') && p[t->len - 1] == (obj ? '}' : ']'));
		uint32_t j = i + 1;
		for (uint32_t k = 0; k < t->count; k++) {
			if (obj) {
				const struct json_tok *key = &toks[j];
				REQUIRE(j < ntok && key->type == JSON_STRING);
				uint32_t v = walk(s, size, ntok, j, depth + 1);
				/* Lookup by the decoded key lands on this pair or an
				 * earlier one with the same key. */
				int n;
				char *name = decode(s, key, &n);
				if (strlen(name) == (size_t)n) {
					int f = json_obj_get(s, toks, (int)i, name);
					REQUIRE(f > (int)i && (uint32_t)f <= v);
					int n2;
					char *other = decode(s, &toks[f - 1], &n2);
					REQUIRE(n2 == n && !memcmp(other, name, (size_t)n));
					free(other);
				}
				free(name);
				j = v;
			} else {
				REQUIRE(json_array_at(toks, (int)i, k) == (int)j);
			}
			j = walk(s, size, ntok, j, depth + 1);
			REQUIRE(toks[j - 1].start + toks[j - 1].len <= t->start + t->len);
		}
		REQUIRE(j == t->next);
		if (!obj)
			REQUIRE(json_array_at(toks, (int)i, t->count) == -1);
		return j;
	}
	default:
		abort();
	}
	REQUIRE(t->next == i + 1);
	return i + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct json_err err = { 0, NULL };

	int r = json_parse(s, size, toks, MAXT, &err);
	if (r < 0) {
		REQUIRE(r == -EINVAL || r == -ENOSPC || r == -E2BIG);
		REQUIRE(err.msg != NULL && err.offset <= size);
		return 0;
	}
	REQUIRE(r >= 1 && r <= MAXT);
	REQUIRE(toks[0].next == (uint32_t)r);
	REQUIRE(walk(s, size, (uint32_t)r, 0, 1) == (uint32_t)r);

	/* The token budget is exact: r tokens suffice, r - 1 do not. */
	REQUIRE(json_parse(s, size, toks2, (uint32_t)r, &err) == r);
	for (int i = 0; i < r; i++)
		REQUIRE(toks[i].type == toks2[i].type && toks[i].start == toks2[i].start &&
			toks[i].len == toks2[i].len && toks[i].count == toks2[i].count &&
			toks[i].next == toks2[i].next && toks[i].has_escape == toks2[i].has_escape);
	REQUIRE(json_parse(s, size, toks2, (uint32_t)r - 1, &err) == -ENOSPC);
	return 0;
}
