/* log.c: logfmt lines to stderr, one write(2) per line.
 *
 * Each line is formatted into a stack buffer no larger than PIPE_BUF and
 * written with a single write(2): when stderr is a pipe (journald, a
 * supervisor) writes up to PIPE_BUF are atomic, so lines from concurrent
 * threads never interleave and no lock is needed.
 *
 * Repeats: each thread keeps a small table of the msgs it logged lately
 * (by pointer: msgs are string literals), with a count per window of
 * LOG_REPEAT_WINDOW_MS. Past LOG_REPEAT_MAX lines in a window the line is
 * dropped and counted; the next line of that msg in a later window says
 * `repeated=N`. A msg pushed out of the table with drops pending gets a
 * line of its own (`msg=<it> repeated=N`), so no count is lost silently.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "core/log.h"

int log_threshold = LOG_LVL_INFO;

/* Where lines go (log_set_fd); read relaxed on every line. */
static int log_fd = STDERR_FILENO;

struct log_repeat {
	const char *msg;           /* NULL: free slot */
	uint64_t window_ms;        /* start of the current window (monotonic) */
	uint64_t last_ms;          /* last time this msg was logged (replacement) */
	uint32_t count;            /* lines in the current window, dropped ones included */
	uint32_t dropped;          /* lines dropped and not reported yet */
	int level;                 /* of the last line (for a flushed count) */
};
static __thread struct log_repeat log_rep[LOG_REPEAT_SLOTS];

/* journald stamps every line itself and reads the `<N>` prefix as the
 * priority; a terminal or a file wants the timestamp instead. */
static bool log_journal;

#define LOG_LINE_MAX (PIPE_BUF < 4096 ? PIPE_BUF : 4096)

int log_level_parse(const char *name)
{
	if (!strcmp(name, "error"))
		return LOG_LVL_ERROR;
	if (!strcmp(name, "warn") || !strcmp(name, "warning"))
		return LOG_LVL_WARN;
	if (!strcmp(name, "info"))
		return LOG_LVL_INFO;
	if (!strcmp(name, "debug"))
		return LOG_LVL_DEBUG;
	return -EINVAL;
}

const char *log_level_name(int level)
{
	switch (level) {
	case LOG_LVL_ERROR: return "error";
	case LOG_LVL_WARN: return "warn";
	case LOG_LVL_INFO: return "info";
	case LOG_LVL_DEBUG: return "debug";
	default: return level < LOG_LVL_ERROR ? "error" : "debug";
	}
}

void log_set_level(int level)
{
	log_threshold = level;
}

void log_init(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	log_journal = js && *js;
}

const char *log_quote(char *dst, size_t len, const char *s)
{
	if (!len)
		return dst;
	bool plain = *s != '\0';
	for (const char *p = s; *p && plain; p++)
		plain = (unsigned char)*p > ' ' && *p != '=' && *p != '"' && *p != '\\';
	if (plain) {
		snprintf(dst, len, "%s", s);
		return dst;
	}
	size_t o = 0;
	/* Leave room for the closing quote and the NUL. */
#define PUT(c) do { if (o + 2 < len) dst[o++] = (c); } while (0)
	PUT('"');
	for (const char *p = s; *p; p++) {
		switch (*p) {
		case '"': PUT('\\'); PUT('"'); break;
		case '\\': PUT('\\'); PUT('\\'); break;
		case '\n': PUT('\\'); PUT('n'); break;
		case '\r': PUT('\\'); PUT('r'); break;
		case '\t': PUT('\\'); PUT('t'); break;
		default: PUT((unsigned char)*p < ' ' ? '?' : *p);
		}
	}
#undef PUT
	if (o + 1 < len)
		dst[o++] = '"';
	dst[o] = '\0';
	return dst;
}

/* Append with snprintf semantics, clamping the cursor to the buffer. */
static size_t log_append(char *line, size_t off, size_t cap, int n)
{
	if (n < 0)
		return off;
	return off + (size_t)n >= cap ? cap - 1 : off + (size_t)n;
}

/* Format and write one line; `repeated` > 0 appends repeated=N. */
static void log_vline(int level, const char *msg, uint64_t repeated, const char *kv_fmt, va_list ap)
{
	int saved = errno;
	char line[LOG_LINE_MAX];
	/* One byte kept for the newline, and room for " repeated=N". */
	const size_t cap = sizeof(line) - 1;
	const size_t kv_cap = repeated ? cap - 32 : cap;
	size_t off = 0;

	if (log_journal) {
		off = log_append(line, off, cap, snprintf(line, cap, "<%d>", level));
	} else {
		uint64_t ms = now_wall_ms();
		time_t secs = (time_t)(ms / 1000);
		struct tm tm;
		gmtime_r(&secs, &tm);
		off = log_append(line, off, cap,
				 snprintf(line, cap, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03uZ ",
					  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
					  tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000)));
	}
	off = log_append(line, off, cap, snprintf(line + off, cap - off, "level=%s msg=%s",
						  log_level_name(level), msg && *msg ? msg : "-"));
	if (kv_fmt && *kv_fmt && off + 1 < kv_cap) {
		line[off++] = ' ';
		size_t start = off;
		int n = vsnprintf(line + off, kv_cap - off, kv_fmt, ap);
		bool truncated = n >= 0 && (size_t)n >= kv_cap - off;
		off = log_append(line, off, kv_cap, n);
		/* A stray newline in a value would split the event in two. */
		for (size_t i = start; i < off; i++)
			if (line[i] == '\n' || line[i] == '\r')
				line[i] = ' ';
		if (truncated && off >= 3)
			memcpy(line + off - 3, "...", 3);
		if (off == start)
			off--; /* nothing formatted: drop the separator */
	}
	if (repeated)
		off = log_append(line, off, cap, snprintf(line + off, cap - off, " repeated=%llu",
							  (unsigned long long)repeated));
	line[off++] = '\n';

	int fd = __atomic_load_n(&log_fd, __ATOMIC_RELAXED);
	const char *p = line;
	while (off) {
		ssize_t w = write(fd, p, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		off -= (size_t)w;
	}
	errno = saved;
}

/* A line of its own for drops that no later line will report. */
static void log_flush_repeats(int level, const char *msg, uint64_t n, ...)
{
	va_list ap;
	va_start(ap, n);
	log_vline(level, msg, n, NULL, ap);
	va_end(ap);
}

/* May this thread print a line of `msg` now? *repeated gets the drops to
 * report on it. */
static bool log_repeat_admit(int level, const char *msg, uint64_t *repeated)
{
	uint64_t now = now_ns() / 1000000;
	struct log_repeat *r = NULL, *victim = NULL;
	for (unsigned i = 0; i < LOG_REPEAT_SLOTS; i++) {
		struct log_repeat *e = &log_rep[i];
		if (e->msg == msg) {
			r = e;
			break;
		}
		if (!victim || (victim->msg && (!e->msg || e->last_ms < victim->last_ms)))
			victim = e;
	}
	if (!r) {
		r = victim;
		if (r->msg && r->dropped)
			log_flush_repeats(r->level, r->msg, r->dropped);
		*r = (struct log_repeat){ .msg = msg, .window_ms = now };
	}
	r->last_ms = now;
	*repeated = 0;
	if (now - r->window_ms >= LOG_REPEAT_WINDOW_MS) {
		*repeated = r->dropped;
		r->dropped = 0;
		r->count = 0;
		r->window_ms = now;
	}
	r->level = level;
	if (++r->count > LOG_REPEAT_MAX) {
		r->dropped++;
		return false;
	}
	return true;
}

void log_emit(int level, const char *msg, const char *kv_fmt, ...)
{
	uint64_t repeated;
	if (!log_repeat_admit(level, msg, &repeated))
		return;
	va_list ap;
	va_start(ap, kv_fmt);
	log_vline(level, msg, repeated, kv_fmt, ap);
	va_end(ap);
}

void log_emit_always(int level, const char *msg, const char *kv_fmt, ...)
{
	va_list ap;
	va_start(ap, kv_fmt);
	log_vline(level, msg, 0, kv_fmt, ap);
	va_end(ap);
}

int log_set_fd(int fd)
{
	return __atomic_exchange_n(&log_fd, fd, __ATOMIC_RELAXED);
}
