/* buf.h: growable byte buffer used for responses, metrics text and files.
 *
 * Buffers are created once (per connection, per worker) and reused, so the
 * request path appends into memory that already exists; growth is the rare
 * case. A failed growth sets `oom` and later appends become no-ops, so
 * callers check once at the end instead of after every append.
 */
#ifndef RECD_BUF_H
#define RECD_BUF_H

#include <stdarg.h>
#include <string.h>
#include "core/common.h"

struct buf {
	char *data;
	size_t len;
	size_t cap;
	bool oom;
};

int buf_init(struct buf *b, size_t cap);
void buf_free(struct buf *b);
/* Make room for `extra` more bytes; 0 or -ENOMEM (and sets oom). */
int buf_grow(struct buf *b, size_t extra);

static inline int buf_reserve(struct buf *b, size_t extra)
{
	if (likely(b->len + extra <= b->cap))
		return 0;
	return buf_grow(b, extra);
}

static inline void buf_reset(struct buf *b)
{
	b->len = 0;
	b->oom = false;
}

static inline void buf_put(struct buf *b, const void *p, size_t n)
{
	if (unlikely(buf_reserve(b, n)))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static inline void buf_putc(struct buf *b, char c)
{
	if (unlikely(buf_reserve(b, 1)))
		return;
	b->data[b->len++] = c;
}

#define buf_puts_lit(b, lit) buf_put((b), (lit), sizeof(lit) - 1)
static inline void buf_puts(struct buf *b, const char *s) { buf_put(b, s, strlen(s)); }

void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_put_u64(struct buf *b, uint64_t v);
void buf_put_i64(struct buf *b, int64_t v);
/* Shortest-enough decimal for a float score ("%.6g"), JSON-safe (no nan/inf: null). */
void buf_put_double(struct buf *b, double v);
/* A JSON string literal with quotes, escaping what RFC 8259 requires. */
void buf_put_json_str(struct buf *b, const char *s, size_t n);
/* Remove `n` bytes from the front (consumed input), moving the rest down. */
void buf_consume(struct buf *b, size_t n);

#endif
