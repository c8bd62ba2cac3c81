/* buf.c: growable byte buffer (see buf.h for the contract). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/buf.h"

int buf_init(struct buf *b, size_t cap)
{
	b->len = 0;
	b->oom = false;
	b->cap = cap;
	b->data = cap ? malloc(cap) : NULL;
	if (cap && !b->data) {
		b->cap = 0;
		b->oom = true;
		return -ENOMEM;
	}
	return 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int buf_grow(struct buf *b, size_t extra)
{
	if (b->oom)
		return -ENOMEM;
	size_t need = b->len + extra;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p) {
		b->oom = true;
		return -ENOMEM;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	size_t room = b->cap - b->len;
	int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
	if (n < 0) {
		va_end(ap2);
		return;
	}
	if ((size_t)n >= room) {
		if (buf_reserve(b, (size_t)n + 1)) {
			va_end(ap2);
			return;
		}
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
	}
	va_end(ap2);
	b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void buf_put_u64(struct buf *b, uint64_t v)
{
	char tmp[24];
	int i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf_put(b, tmp + i, sizeof(tmp) - (size_t)i);
}

void buf_put_i64(struct buf *b, int64_t v)
{
	if (v < 0) {
		buf_putc(b, '-');
		buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		buf_put_u64(b, (uint64_t)v);
	}
}

/* The same text as printf("%.6g") for the values responses carry
 * (scores, |v| in [1e-4, 1e6)), without printf: formatting ten scores
 * per answer through it was a tenth of a request's CPU time. */
static bool put_g6_fast(struct buf *b, double v)
{
	double a = fabs(v);
	if (!(a >= 1e-4 && a < 1e6))
		return v == 0 ? (buf_puts(b, signbit(v) ? "-0" : "0"), true) : false;
	/* 6 significant digits: scale so the integer part has exactly 6. */
	int e = (int)floor(log10(a));                 /* -4 .. 5 */
	/* 10^(5-e) is exact (<= 10^9), and fma gives a * p - m with one
	 * rounding, so the digit is rounded from the exact value like printf
	 * does (ties to even), not from the rounded product. */
	double p = pow(10.0, 5 - e);
	double fl = floor(a * p);
	double frac = fma(a, p, -fl);
	if (frac < 0)
		fl -= 1, frac += 1;
	else if (frac >= 1)
		fl += 1, frac -= 1;
	uint64_t m = (uint64_t)fl;
	if (frac > 0.5 || (frac == 0.5 && (m & 1)))
		m++;
	/* A carry into a seventh digit (9.999995 -> 10.0000) or a log10 off by
	 * one at a power of ten: leave those rare cases to printf. */
	if (m >= 1000000 || m < 100000)
		return false;
	char digits[8];
	for (int i = 5; i >= 0; i--, m /= 10)
		digits[i] = (char)('0' + m % 10);
	int nd = 6;
	char out[24];
	int o = 0;
	if (v < 0)
		out[o++] = '-';
	if (e >= 0) {
		int ip = e + 1;                            /* integer digits */
		while (nd > ip && digits[nd - 1] == '0')
			nd--;
		for (int i = 0; i < ip; i++)
			out[o++] = digits[i];
		if (nd > ip) {
			out[o++] = '.';
			for (int i = ip; i < nd; i++)
				out[o++] = digits[i];
		}
	} else {
		while (nd > 1 && digits[nd - 1] == '0')
			nd--;
		out[o++] = '0';
		out[o++] = '.';
		for (int i = 0; i < -e - 1; i++)
			out[o++] = '0';
		for (int i = 0; i < nd; i++)
			out[o++] = digits[i];
	}
	buf_put(b, out, (size_t)o);
	return true;
}

void buf_put_double(struct buf *b, double v)
{
	if (!isfinite(v)) {
		buf_puts_lit(b, "null");
		return;
	}
	if (!put_g6_fast(b, v))
		buf_printf(b, "%.6g", v);
}

void buf_put_json_str(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (buf_reserve(b, n + 2))
		return;
	buf_putc(b, '"');
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		buf_put(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': buf_puts_lit(b, "\\\""); break;
		case '\\': buf_puts_lit(b, "\\\\"); break;
		case '\n': buf_puts_lit(b, "\\n"); break;
		case '\r': buf_puts_lit(b, "\\r"); break;
		case '\t': buf_puts_lit(b, "\\t"); break;
		default: {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			buf_put(b, esc, 6);
		}
		}
	}
	buf_put(b, s + run, n - run);
	buf_putc(b, '"');
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}
