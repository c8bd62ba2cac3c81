/* common.h: small macros shared by every engine module. */
#ifndef RECD_COMMON_H
#define RECD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CACHELINE 64
#define cacheline_aligned __attribute__((aligned(CACHELINE)))
#define __cold __attribute__((cold))
#define RECD_UNUSED __attribute__((unused))

/* Functions Lua may reach through the FFI are exported explicitly. */
#define RECD_EXPORT __attribute__((visibility("default")))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* A borrowed, not NUL-terminated, string. */
struct str {
	const char *p;
	size_t len;
};

static inline bool str_eq_lit(struct str s, const char *lit, size_t litlen)
{
	return s.len == litlen && __builtin_memcmp(s.p, lit, litlen) == 0;
}
#define STR_EQ(s, lit) str_eq_lit((s), (lit), sizeof(lit) - 1)

/* Monotonic time in nanoseconds (vDSO, no syscall). */
uint64_t now_ns(void);
/* The calling thread does background work (reloads, precomputation):
 * out of a real-time policy (chrt, CPUSchedulingPolicy=fifo) into
 * SCHED_OTHER, and `nice_inc` steps nicer (0: no change), so request
 * workers sharing its core go first. 0, or -errno of what was refused
 * (the thread then runs as it was). */
int thread_background(int nice_inc);

/* Write all n bytes (retrying short writes and EINTR). 0 or -errno
 * (-EIO when write returns 0). */
int fd_write_all(int fd, const void *p, size_t n);

/* qsort comparator of uint64_t, ascending. */
int cmp_u64(const void *a, const void *b);

/* The numbers `parse` finds in the names of directory `dir_fd` (its
 * position is not moved: the listing uses a duplicate), sorted
 * ascending, in a malloc'ed array (NULL when none). 0 or -errno. */
int dir_list_numbers(int dir_fd, bool (*parse)(const char *name, uint64_t *num, void *ctx), void *ctx,
		     uint64_t **out, size_t *n_out);
/* Wall-clock time in milliseconds since the epoch (vDSO). */
uint64_t now_wall_ms(void);

#endif
