/* log.h: structured (logfmt) logging to stderr.
 *
 * One line per event: `level=info msg=listening addr=127.0.0.1:8080`.
 * When stderr is journald (JOURNAL_STREAM set) each line is prefixed with
 * the sd-daemon `<N>` priority so journald keeps the level. The level is
 * checked before any formatting happens; nothing on the request path logs
 * by default.
 *
 * Repeats are rate-limited per thread: a thread that logs the same `msg`
 * (the same string literal) more than LOG_REPEAT_MAX times within
 * LOG_REPEAT_WINDOW_MS drops the extra lines, and its next line with that
 * msg after the window carries `repeated=N` (the lines dropped). A small
 * per-thread table of recent msg pointers does it: no lock, no atomics.
 */
#ifndef RECD_LOG_H
#define RECD_LOG_H

#include "core/common.h"

enum log_level {
	LOG_LVL_ERROR = 3,
	LOG_LVL_WARN = 4,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

extern int log_threshold;

/* Parse "error"|"warn"|"info"|"debug"; -EINVAL when unknown. */
int log_level_parse(const char *name);
const char *log_level_name(int level);
void log_set_level(int level);
/* Decide the `<N>` prefix from the environment (JOURNAL_STREAM). */
void log_init(void);

/* `msg` is a bare word (no spaces) and a string literal (it is the key of
 * the repeat limit, compared by pointer); `kv_fmt` formats `key=value ...`
 * pairs (values with spaces must be quoted by the caller; log_quote
 * helps). Rate-limited as described above. */
void log_emit(int level, const char *msg, const char *kv_fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same without the repeat limit, for lines that are already sampled
 * (the access log). */
void log_emit_always(int level, const char *msg, const char *kv_fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define LOG_REPEAT_MAX 10           /* lines of one msg per thread and window */
#define LOG_REPEAT_WINDOW_MS 1000
#define LOG_REPEAT_SLOTS 16         /* msgs tracked per thread (least recently seen replaced) */

/* Write the lines to `fd` instead of stderr (tests); returns the previous
 * descriptor. */
int log_set_fd(int fd);
/* Format `s` as one logfmt value into dst: as is when it is a bare word,
 * else double-quoted with `"`, `\\` and control characters escaped.
 * Truncates to len; returns dst (for use as a "%s" argument). */
const char *log_quote(char *dst, size_t len, const char *s);

#define LOG_AT(lvl, msg, ...) \
	do { if (unlikely((lvl) <= log_threshold)) log_emit((lvl), (msg), __VA_ARGS__); } while (0)
#define log_error(msg, ...) LOG_AT(LOG_LVL_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...)  LOG_AT(LOG_LVL_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...)  LOG_AT(LOG_LVL_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...) LOG_AT(LOG_LVL_DEBUG, msg, __VA_ARGS__)

#endif
