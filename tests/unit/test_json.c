/* test_json.c: the strict JSON parser, token layout (next/count) and the
 * accessors. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "json/json.h"

static int failures;
#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                            \
			failures++;                                          \
		}                                                            \
	} while (0)

#define MAXT 256
static struct json_tok toks[MAXT];
static struct json_err jerr;

static int parse(const char *s)
{
	jerr.offset = 0;
	jerr.msg = NULL;
	return json_parse(s, strlen(s), toks, MAXT, &jerr);
}

static bool tok_is(const char *s, int i, const char *lit)
{
	return toks[i].len == strlen(lit) && memcmp(s + toks[i].start, lit, toks[i].len) == 0;
}

static void test_scalars(void)
{
	CHECK(parse("null") == 1 && toks[0].type == JSON_NULL && toks[0].next == 1);
	CHECK(parse(" true ") == 1 && toks[0].type == JSON_TRUE);
	CHECK(toks[0].start == 1 && toks[0].len == 4);
	CHECK(parse("\t\r\nfalse\n") == 1 && toks[0].type == JSON_FALSE);
	CHECK(parse("0") == 1 && toks[0].type == JSON_NUMBER && toks[0].len == 1);
	CHECK(parse("-12.5e+3") == 1 && toks[0].type == JSON_NUMBER && toks[0].len == 8);
	const char *s = "\"hi there\"";
	CHECK(parse(s) == 1 && toks[0].type == JSON_STRING);
	CHECK(tok_is(s, 0, "hi there") && !toks[0].has_escape);
	CHECK(toks[0].start == 1);
	CHECK(parse("\"\"") == 1 && toks[0].type == JSON_STRING && toks[0].len == 0);
	s = "\"a\\nb\"";
	CHECK(parse(s) == 1 && toks[0].has_escape && toks[0].len == 4);
	/* UTF-8 passes through (validated). */
	CHECK(parse("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"") == 1);
}

static void test_nesting(void)
{
	/* 0:obj 1:"a" 2:arr 3:1 4:arr 5:2 6:3 7:obj 8:"b" 9:null 10:"c" 11:obj 12:"d" 13:true */
	const char *s = "{\"a\": [1, [2, 3], {}], \"b\": null, \"c\": {\"d\": true}}";
	int n = parse(s);
	CHECK(n == 14);
	CHECK(toks[0].type == JSON_OBJECT && toks[0].count == 3 && toks[0].next == 14);
	CHECK(toks[0].start == 0 && toks[0].len == strlen(s));
	CHECK(toks[1].type == JSON_STRING && tok_is(s, 1, "a") && toks[1].next == 2);
	CHECK(toks[2].type == JSON_ARRAY && toks[2].count == 3 && toks[2].next == 8);
	CHECK(tok_is(s, 2, "[1, [2, 3], {}]"));
	CHECK(toks[3].type == JSON_NUMBER && toks[3].next == 4);
	CHECK(toks[4].type == JSON_ARRAY && toks[4].count == 2 && toks[4].next == 7);
	CHECK(toks[7].type == JSON_OBJECT && toks[7].count == 0 && toks[7].next == 8);
	CHECK(tok_is(s, 7, "{}"));
	CHECK(toks[9].type == JSON_NULL);
	CHECK(toks[11].type == JSON_OBJECT && toks[11].count == 1 && toks[11].next == 14);
	CHECK(toks[13].type == JSON_TRUE && toks[13].next == 14);

	CHECK(json_obj_get(s, toks, 0, "a") == 2);
	CHECK(json_obj_get(s, toks, 0, "b") == 9);
	CHECK(json_obj_get(s, toks, 0, "c") == 11);
	CHECK(json_obj_get(s, toks, 0, "d") == -1);        /* not at top level */
	CHECK(json_obj_get(s, toks, 11, "d") == 13);
	CHECK(json_obj_get(s, toks, 2, "a") == -1);        /* not an object */
	CHECK(json_obj_get(s, toks, -1, "a") == -1);
	CHECK(json_obj_get(s, toks, 0, "") == -1);

	CHECK(json_array_at(toks, 2, 0) == 3);
	CHECK(json_array_at(toks, 2, 1) == 4);
	CHECK(json_array_at(toks, 2, 2) == 7);
	CHECK(json_array_at(toks, 2, 3) == -1);
	CHECK(json_array_at(toks, 4, 1) == 6);
	CHECK(json_array_at(toks, 0, 0) == -1);             /* not an array */
	CHECK(json_array_at(toks, -1, 0) == -1);

	CHECK(parse("[]") == 1 && toks[0].type == JSON_ARRAY && toks[0].count == 0);
	CHECK(toks[0].next == 1 && toks[0].len == 2);
	CHECK(parse("[ ]") == 1 && toks[0].len == 3);
	CHECK(parse("{ }") == 1 && toks[0].type == JSON_OBJECT && toks[0].count == 0);
	CHECK(parse("[[[]]]") == 3 && toks[0].next == 3 && toks[1].next == 3 && toks[2].next == 3);
	CHECK(toks[0].count == 1 && toks[1].count == 1 && toks[2].count == 0);

	/* Duplicate keys: the first wins. */
	s = "{\"k\":1,\"k\":2}";
	CHECK(parse(s) == 5);
	CHECK(json_obj_get(s, toks, 0, "k") == 2);
	/* Keys are compared decoded. */
	s = "{\"a\\u0062c\":1, \"\\u00e9\":2, \"x\\\"y\":3, \"ab\":4}";
	CHECK(parse(s) == 9);
	CHECK(json_obj_get(s, toks, 0, "abc") == 2);
	CHECK(json_obj_get(s, toks, 0, "\xc3\xa9") == 4);
	CHECK(json_obj_get(s, toks, 0, "x\"y") == 6);
	CHECK(json_obj_get(s, toks, 0, "ab") == 8);
	CHECK(json_obj_get(s, toks, 0, "a") == -1);
	CHECK(json_obj_get(s, toks, 0, "abcd") == -1);
}

static void test_strings(void)
{
	char out[64];
	const char *s = "\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t u\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"";
	CHECK(parse(s) == 1);
	int n = json_str_decode(s, &toks[0], out, sizeof(out));
	const char *want = "q\" b\\ s/ \b\f\n\r\t uA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	CHECK(n == (int)strlen(want) && !strcmp(out, want));
	/* Exact fit needs room for the NUL. */
	CHECK(json_str_decode(s, &toks[0], out, strlen(want) + 1) == (int)strlen(want));
	CHECK(json_str_decode(s, &toks[0], out, strlen(want)) == -ENOSPC);
	CHECK(json_str_decode(s, &toks[0], out, 3) == -ENOSPC);

	s = "\"plain\"";
	CHECK(parse(s) == 1);
	CHECK(json_str_decode(s, &toks[0], out, sizeof(out)) == 5 && !strcmp(out, "plain"));
	CHECK(json_str_decode(s, &toks[0], out, 6) == 5);
	CHECK(json_str_decode(s, &toks[0], out, 5) == -ENOSPC);
	CHECK(json_str_decode(s, &toks[0], out, 0) == -ENOSPC);

	/* \u0000 decodes to a NUL byte; the length tells. */
	s = "\"a\\u0000b\"";
	CHECK(parse(s) == 1);
	CHECK(json_str_decode(s, &toks[0], out, sizeof(out)) == 3 && !memcmp(out, "a\0b", 4));
	/* Upper-case hex. */
	s = "\"\\u00C9\\uD83D\\uDE00\"";
	CHECK(parse(s) == 1);
	CHECK(json_str_decode(s, &toks[0], out, sizeof(out)) == 6 &&
	      !strcmp(out, "\xc3\x89\xf0\x9f\x98\x80"));
	/* Highest code point. */
	s = "\"\\udbff\\udfff\"";
	CHECK(parse(s) == 1);
	CHECK(json_str_decode(s, &toks[0], out, sizeof(out)) == 4 && !strcmp(out, "\xf4\x8f\xbf\xbf"));

	/* Not a string. */
	CHECK(parse("1") == 1);
	CHECK(json_str_decode("1", &toks[0], out, sizeof(out)) == -EINVAL);

	/* A hand-made token with a lone surrogate is refused by the decoder
	 * too (the parser never produces one). */
	struct json_tok t = { .type = JSON_STRING, .has_escape = 1, .start = 0, .len = 6 };
	CHECK(json_str_decode("\\ud800", &t, out, sizeof(out)) == -EINVAL);
}

struct bad {
	const char *text;
	uint32_t offset;
};

static void test_syntax_errors(void)
{
	static const struct bad bad[] = {
		{ "", 0 }, { "   ", 3 },
		/* trailing garbage */
		{ "1 2", 2 }, { "{} x", 3 }, { "nullx", 4 }, { "[1]]", 3 }, { "\"a\"\"b\"", 3 },
		/* literals */
		{ "tru", 0 }, { "True", 0 }, { "nul", 0 }, { "falsy", 0 }, { "NaN", 0 }, { "Infinity", 0 },
		/* numbers */
		{ "01", 1 }, { "-01", 2 }, { "00", 1 }, { "-", 1 }, { "+1", 0 }, { ".5", 0 }, { "1.", 2 },
		{ "1.e5", 2 }, { "1e", 2 }, { "1e+", 3 }, { "-a", 1 }, { "0x10", 1 }, { "1.5.3", 3 },
		{ "[01]", 2 },
		/* strings */
		{ "\"abc", 0 }, { "\"a\x01\"", 2 }, { "\"a\nb\"", 2 }, { "\"a\tb\"", 2 },
		{ "'a'", 0 }, { "\"\\x\"", 1 }, { "\"\\u12\"", 1 }, { "\"\\u12g4\"", 1 },
		{ "\"\\", 1 }, { "\"\\\"", 0 },
		/* surrogates */
		{ "\"\\ud800\"", 1 }, { "\"\\udc00\"", 1 }, { "\"\\ud800\\u0041\"", 1 },
		{ "\"\\ud800x\"", 1 }, { "\"\\ud800\\ud800\"", 1 },
		/* UTF-8: stray continuation, overlong, encoded surrogate, > U+10FFFF, truncated */
		{ "\"\x80\"", 1 }, { "\"\xc0\xaf\"", 1 }, { "\"\xed\xa0\x80\"", 1 },
		{ "\"\xf4\x90\x80\x80\"", 1 }, { "\"\xe2\x82\"", 1 }, { "\"\xff\"", 1 },
		/* arrays */
		{ "[", 1 }, { "[1", 2 }, { "[1,]", 3 }, { "[,1]", 1 }, { "[1 2]", 3 }, { "[1,,2]", 3 },
		{ "]", 0 },
		/* objects */
		{ "{", 1 }, { "{\"a\"}", 4 }, { "{\"a\":}", 5 }, { "{\"a\":1,}", 7 }, { "{a:1}", 1 },
		{ "{\"a\" 1}", 5 }, { "{\"a\":1 \"b\":2}", 7 }, { "{1:2}", 1 }, { "{\"a\":1", 6 },
		{ "}", 0 }, { "{\"a\";1}", 4 },
		/* not JSON whitespace */
		{ "\f1", 0 }, { "[1,\v2]", 3 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = parse(bad[i].text);
		if (r != -EINVAL || jerr.offset != bad[i].offset || !jerr.msg)
			fprintf(stderr, "bad[%zu] %s -> %d at %u (%s)\n", i, bad[i].text, r,
				jerr.offset, jerr.msg ? jerr.msg : "-");
		CHECK(r == -EINVAL);
		CHECK(jerr.offset == bad[i].offset);
		CHECK(jerr.msg != NULL);
	}
	/* An embedded NUL is just a bad byte; the length is what counts. */
	CHECK(json_parse("[1]\0", 4, toks, MAXT, &jerr) == -EINVAL && jerr.offset == 3);
	CHECK(json_parse("[1]\0", 3, toks, MAXT, &jerr) == 2);
	/* A NULL err is allowed. */
	CHECK(json_parse("[", 1, toks, MAXT, NULL) == -EINVAL);
}

static void test_limits(void)
{
	/* -ENOSPC: exactly enough tokens passes, one fewer fails. */
	const char *s = "{\"a\":[1,2,3],\"b\":\"x\"}";
	CHECK(json_parse(s, strlen(s), toks, 8, &jerr) == 8);
	CHECK(json_parse(s, strlen(s), toks, 7, &jerr) == -ENOSPC);
	CHECK(json_parse(s, strlen(s), toks, 0, &jerr) == -ENOSPC);
	CHECK(json_parse("1", 1, toks, 1, &jerr) == 1);

	/* Depth: 64 nested arrays pass, 65 fail with -E2BIG. */
	char b[512];
	for (int d = 63; d <= 66; d++) {
		memset(b, '[', (size_t)d);
		memset(b + d, ']', (size_t)d);
		b[2 * d] = '\0';
		int r = parse(b);
		if (d <= 64) {
			CHECK(r == d);
			CHECK(toks[0].next == (uint32_t)d && toks[d - 1].count == 0);
		} else {
			CHECK(r == -E2BIG);
		}
	}
	/* Depth counts objects and arrays alike, and scalars do not count. */
	char *p = b;
	for (int i = 0; i < 32; i++)
		p += sprintf(p, "{\"k\":[");
	strcpy(p, "1");
	p += 1;
	for (int i = 0; i < 32; i++)
		p += sprintf(p, "]}");
	CHECK(parse(b) == 32 * 3 + 1);
	/* An unterminated deep document fails on depth before running out. */
	memset(b, '[', 100);
	b[100] = '\0';
	CHECK(parse(b) == -E2BIG);
}

static void test_numbers(void)
{
	static const struct { const char *t; int64_t v; } ok[] = {
		{ "0", 0 }, { "-0", 0 }, { "42", 42 }, { "-42", -42 },
		{ "9223372036854775807", INT64_MAX },
		{ "-9223372036854775808", INT64_MIN },
		{ "1.0", 1 }, { "2e3", 2000 }, { "-1.5e1", -15 }, { "1E2", 100 },
		{ "0.0", 0 }, { "100e-2", 1 },
	};
	int64_t v;
	double d;
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		CHECK(parse(ok[i].t) == 1);
		v = 12345;
		CHECK(json_get_i64(ok[i].t, &toks[0], &v) == 0);
		CHECK(v == ok[i].v);
	}
	static const char *const range[] = {
		"9223372036854775808", "-9223372036854775809", "99999999999999999999",
		"1.5", "0.1", "-0.5", "1e19", "-1e19", "1e400", "9223372036854775808.0",
	};
	for (size_t i = 0; i < ARRAY_SIZE(range); i++) {
		CHECK(parse(range[i]) == 1);
		v = 777;
		CHECK(json_get_i64(range[i], &toks[0], &v) == -ERANGE);
		CHECK(v == 777);
	}
	/* The largest double below 2^63 is integral and fits. */
	CHECK(parse("9223372036854774784.0") == 1);
	CHECK(json_get_i64("9223372036854774784.0", &toks[0], &v) == 0 && v == 9223372036854774784);
	CHECK(parse("-9.223372036854775808e18") == 1);
	CHECK(json_get_i64("-9.223372036854775808e18", &toks[0], &v) == 0 && v == INT64_MIN);

	CHECK(parse("3.25") == 1 && json_get_double("3.25", &toks[0], &d) == 0 && d == 3.25);
	CHECK(parse("-1e-3") == 1 && json_get_double("-1e-3", &toks[0], &d) == 0 && d == -1e-3);
	CHECK(parse("7") == 1 && json_get_double("7", &toks[0], &d) == 0 && d == 7.0);
	CHECK(parse("1e400") == 1 && json_get_double("1e400", &toks[0], &d) == -ERANGE);
	CHECK(parse("-1e400") == 1 && json_get_double("-1e400", &toks[0], &d) == -ERANGE);
	/* Underflow rounds to zero rather than failing. */
	CHECK(parse("1e-400") == 1 && json_get_double("1e-400", &toks[0], &d) == 0 && d == 0.0);
	/* A number followed by more text: only the token is read. */
	const char *s = "[1.5,2]";
	CHECK(parse(s) == 3);
	CHECK(json_get_double(s, &toks[1], &d) == 0 && d == 1.5);
	CHECK(json_get_i64(s, &toks[2], &v) == 0 && v == 2);
	/* Not a number. */
	CHECK(json_get_i64(s, &toks[0], &v) == -EINVAL);
	CHECK(json_get_double(s, &toks[0], &d) == -EINVAL);
	/* A number not NUL-terminated in its buffer (exact-size heap copy,
	 * so ASan catches a read past it). */
	char *h = malloc(3);
	memcpy(h, "125", 3);
	CHECK(json_parse(h, 3, toks, MAXT, &jerr) == 1);
	CHECK(json_get_double(h, &toks[0], &d) == 0 && d == 125.0);
	CHECK(json_get_i64(h, &toks[0], &v) == 0 && v == 125);
	free(h);
}

int main(void)
{
	test_scalars();
	test_nesting();
	test_strings();
	test_syntax_errors();
	test_limits();
	test_numbers();
	if (failures) {
		fprintf(stderr, "test_json: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_json: ok\n");
	return 0;
}
