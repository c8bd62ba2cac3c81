/* test_buf.c: the growable buffer: appends, growth, JSON escaping, printf,
 * consume and integer formatting at the edges. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"

static int failures;
#define CHECK(cond) do { \
	if (!(cond)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); failures++; } \
} while (0)

/* buf contents equal the C string s. */
static int buf_is(const struct buf *b, const char *s)
{
	return b->len == strlen(s) && memcmp(b->data, s, b->len) == 0;
}

static void json_is(const char *in, size_t n, const char *want, int line)
{
	struct buf b;
	buf_init(&b, 4);
	buf_put_json_str(&b, in, n);
	if (!buf_is(&b, want)) {
		fprintf(stderr, "%s:%d: json: got %.*s want %s\n", __FILE__, line, (int)b.len, b.data,
			want);
		failures++;
	}
	buf_free(&b);
}
#define JSON_IS(lit, want) json_is((lit), sizeof(lit) - 1, (want), __LINE__)

static void test_append_and_growth(void)
{
	struct buf b;
	CHECK(buf_init(&b, 0) == 0);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0 && !b.oom);
	buf_putc(&b, 'a');
	buf_puts(&b, "bc");
	buf_puts_lit(&b, "def");
	buf_put(&b, "ghXX", 2);
	CHECK(buf_is(&b, "abcdefgh"));
	CHECK(b.cap >= b.len);

	/* Grow far past the first allocation; every byte must survive. */
	for (int i = 0; i < 100000; i++)
		buf_putc(&b, (char)('a' + i % 26));
	CHECK(b.len == 8 + 100000);
	CHECK(b.cap >= b.len);
	CHECK(!b.oom);
	int ok = 1;
	for (int i = 0; i < 100000; i++)
		ok &= b.data[8 + i] == (char)('a' + i % 26);
	CHECK(ok);

	size_t cap = b.cap;
	buf_reset(&b);
	CHECK(b.len == 0 && b.cap == cap); /* reset keeps the memory */
	CHECK(buf_reserve(&b, cap) == 0 && b.cap == cap);
	CHECK(buf_reserve(&b, cap + 1) == 0 && b.cap > cap);
	buf_free(&b);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0);

	CHECK(buf_init(&b, 16) == 0);
	CHECK(b.cap == 16 && b.data != NULL);
	buf_put(&b, "0123456789abcdef", 16);
	CHECK(b.cap == 16);
	buf_putc(&b, 'g');
	CHECK(b.cap >= 17 && buf_is(&b, "0123456789abcdefg"));
	buf_free(&b);
}

static void test_json(void)
{
	JSON_IS("", "\"\"");
	JSON_IS("plain", "\"plain\"");
	JSON_IS("a\"b", "\"a\\\"b\"");
	JSON_IS("a\\b", "\"a\\\\b\"");
	JSON_IS("\n\r\t", "\"\\n\\r\\t\"");
	JSON_IS("\x01\x1f", "\"\\u0001\\u001f\"");
	JSON_IS("\b\f", "\"\\u0008\\u000c\"");
	JSON_IS("a\0b", "\"a\\u0000b\""); /* embedded NUL: length, not strlen */
	JSON_IS("\x7f", "\"\x7f\"");      /* DEL needs no escape in JSON */
	JSON_IS("/", "\"/\"");
	/* UTF-8 passes through byte for byte. */
	JSON_IS("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	JSON_IS("x\"\\\ny", "\"x\\\"\\\\\\ny\"");

	/* Appending after existing content keeps it. */
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, "{\"k\":");
	buf_put_json_str(&b, "v", 1);
	buf_putc(&b, '}');
	CHECK(buf_is(&b, "{\"k\":\"v\"}"));
	buf_free(&b);
}

static void test_printf(void)
{
	struct buf b;
	buf_init(&b, 0); /* printf on a buffer with no memory yet */
	buf_printf(&b, "%d-%s", 42, "x");
	CHECK(buf_is(&b, "42-x"));
	buf_free(&b);

	buf_init(&b, 8);
	buf_printf(&b, "%s", "abc");
	CHECK(buf_is(&b, "abc"));
	/* Exactly filling, then overflowing the remaining room. */
	buf_printf(&b, "%s", "defg");
	CHECK(buf_is(&b, "abcdefg"));
	char big[5000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_printf(&b, "[%s]", big);
	CHECK(b.len == 7 + 2 + 4999);
	CHECK(memcmp(b.data, "abcdefg[zzz", 11) == 0);
	CHECK(b.data[b.len - 1] == ']' && b.data[b.len - 2] == 'z');
	buf_printf(&b, "%s", "");
	CHECK(b.len == 7 + 2 + 4999);
	buf_free(&b);
}

static void test_consume(void)
{
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, "GET / HTTP/1.1\r\n\r\nnext");
	buf_consume(&b, 18);
	CHECK(buf_is(&b, "next"));
	buf_consume(&b, 0);
	CHECK(buf_is(&b, "next"));
	buf_consume(&b, 1);
	CHECK(buf_is(&b, "ext"));
	buf_consume(&b, 3);
	CHECK(b.len == 0);
	buf_puts(&b, "ab");
	buf_consume(&b, 100); /* more than held: empties it */
	CHECK(b.len == 0);
	buf_puts(&b, "again");
	CHECK(buf_is(&b, "again"));
	buf_free(&b);
}

static void test_ints(void)
{
	static const struct { uint64_t v; const char *s; } u[] = {
		{ 0, "0" }, { 9, "9" }, { 10, "10" }, { 4294967295u, "4294967295" },
		{ 4294967296u, "4294967296" }, { UINT64_MAX, "18446744073709551615" },
	};
	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		struct buf b;
		buf_init(&b, 1);
		buf_put_u64(&b, u[i].v);
		CHECK(buf_is(&b, u[i].s));
		buf_free(&b);
	}
	static const struct { int64_t v; const char *s; } s[] = {
		{ 0, "0" }, { -1, "-1" }, { 1, "1" }, { INT64_MAX, "9223372036854775807" },
		{ INT64_MIN, "-9223372036854775808" }, { -10, "-10" },
	};
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		struct buf b;
		buf_init(&b, 0);
		buf_put_i64(&b, s[i].v);
		CHECK(buf_is(&b, s[i].s));
		buf_free(&b);
	}
	struct buf b;
	buf_init(&b, 0);
	buf_put_double(&b, 0.5);
	buf_putc(&b, ' ');
	buf_put_double(&b, 1.0 / 0.0);
	buf_putc(&b, ' ');
	buf_put_double(&b, 0.0 / 0.0);
	CHECK(buf_is(&b, "0.5 null null"));
	buf_free(&b);
}

/* buf_put_double writes what printf("%.6g") writes, on its fast path and
 * off it: edge cases, then a deterministic spread over many magnitudes. */
static void test_double(void)
{
	static const double fixed[] = { 0, -0.0, 1, -1, 0.5, 0.1, 0.916667, 0.9166666666, 0.99999949, 0.9999995,
					0.99999951, 9.9999995, 999999.4, 999999.5, 1e6, 123456.5, 0.0001, 0.00009999996,
					0.000123456789, 1e-5, 3.14159265, 2.5e-7, 1e300, -7.25, 100, 10, 1e5, 99999.95 };
	char want[64];
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < (int)(sizeof(fixed) / sizeof(fixed[0])) + 200000; i++) {
		double v;
		if (i < (int)(sizeof(fixed) / sizeof(fixed[0]))) {
			v = fixed[i];
		} else {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			v = (double)(x >> 11) / 9007199254740992.0 * pow(10.0, (double)((int)(x % 15) - 7));
			if (x & 1)
				v = -v;
			if (i % 3 == 0)
				v = (float)v;   /* scores are floats */
		}
		snprintf(want, sizeof(want), "%.6g", v);
		struct buf b;
		buf_init(&b, 0);
		buf_put_double(&b, v);
		buf_putc(&b, 0);
		if (strcmp(b.data, want)) {
			fprintf(stderr, "buf_put_double(%.17g) = %s, printf says %s\n", v, b.data, want);
			failures++;
			buf_free(&b);
			return;
		}
		buf_free(&b);
	}
}

int main(void)
{
	test_append_and_growth();
	test_json();
	test_printf();
	test_consume();
	test_ints();
	test_double();
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
