/* quality_util.h: what recd-import-retail, recd-train and recd-eval share:
 * whole-file input, an RFC 4180 CSV reader, an id index, the interactions
 * CSV (user_id,item_id,type[,ts], the format recd-snapshot reads), the
 * catalogue ids of items.jsonl / items.csv, .npy float32 output, UTC dates.
 *
 * Errors are fatal: the message names the file and line and the process
 * exits 1 (2 for usage errors, from the tools themselves).
 */
#ifndef RECD_QUALITY_UTIL_H
#define RECD_QUALITY_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define QU_EXIT_INPUT 1
#define QU_EXIT_USAGE 2

/* Program name for messages ("recd-train"). */
extern const char *qu_prog;

__attribute__((format(printf, 1, 2), noreturn)) void qu_die(const char *fmt, ...);
/* "file:line: message" (line 0: "file: message"), exit 1. */
__attribute__((format(printf, 3, 4), noreturn)) void qu_die_at(const char *file, uint64_t line, const char *fmt, ...);
void *qu_malloc(size_t n);
void *qu_calloc(size_t n, size_t sz);
void *qu_realloc(void *p, size_t n);

/* Whole file in memory, NUL-terminated (buf[len] == 0). */
struct qu_input {
	const char *path;
	char *buf;
	size_t len;
};
void qu_read_file(struct qu_input *in, const char *path);

/* RFC 4180 records over a buffer. Fields are unquoted in place and
 * NUL-terminated; the buffer is modified. Blank lines are skipped. */
#define QU_CSV_MAX_FIELDS 64
struct qu_csv {
	const char *path;
	char *p, *end;
	uint64_t line;             /* line of the next record (1-based) */
};
void qu_csv_init(struct qu_csv *c, const char *path, char *buf, size_t len);
/* Fields of the next record; 0 at the end. *rec_line: its first line. */
int qu_csv_next(struct qu_csv *c, char **f, size_t *flen, uint64_t *rec_line);
/* Column `name` in a header record, or -1. */
int qu_csv_col(char *const *hdr, const size_t *hlen, int n, const char *name);

/* Id -> row, open addressing over XXH3; keys are not copied (they must
 * outlive the index). */
struct qu_idx {
	uint32_t *slot;
	uint64_t mask;
	const char **key;
	uint32_t *keylen;
	uint32_t n, cap;
};
void qu_idx_init(struct qu_idx *x, uint32_t expected);
void qu_idx_free(struct qu_idx *x);
/* Row of `k`, or -1. */
int64_t qu_idx_find(const struct qu_idx *x, const char *k, size_t len);
/* Row of `k`, added as row n when absent (*added set). */
uint32_t qu_idx_add(struct qu_idx *x, const char *k, size_t len, bool *added);

/* Interaction types: snapb_event_weight's names. */
enum qu_type { QU_VIEW = 0, QU_CLICK, QU_RATING, QU_ADD_TO_CART, QU_PURCHASE, QU__TYPES };
extern const char *const qu_type_names[];

/* One interaction as read; strings are NUL-terminated inside the buffer. */
struct qu_row {
	const char *user, *item;
	size_t user_len, item_len;
	uint8_t type;              /* enum qu_type */
	float weight;              /* snapb_event_weight of the type */
	int64_t ts;                /* ms; 0 when the file has no ts column */
	uint64_t line;
};
typedef void (*qu_row_fn)(void *ctx, const struct qu_row *r);
/* Read an interactions CSV (header user_id,item_id,type[,ts] optional:
 * without one, the columns are in that order) and call fn per row, in
 * file order. Unknown types and bad ts are fatal. `in` keeps the buffer
 * (free in->buf when the strings are no longer needed). Returns rows. */
uint64_t qu_read_interactions(struct qu_input *in, const char *path, qu_row_fn fn, void *ctx);

/* Catalogue ids in file order: items.jsonl ("id" field) or a CSV with an
 * id column. ids[k] point into in->buf. */
struct qu_items {
	struct qu_input in;
	const char **ids;
	uint32_t n;
	struct qu_idx index;
};
void qu_load_item_ids(struct qu_items *it, const char *path);
/* users.txt: one id per line (blank lines skipped), duplicates fatal. */
void qu_load_user_ids(struct qu_items *u, const char *path);
void qu_items_free(struct qu_items *it);

/* Write a 2-D little-endian float32 .npy (v1.0, data 64-byte aligned). */
void qu_write_npy(const char *path, const float *v, uint64_t rows, uint32_t cols);
/* Read one; rows and cols out. The result is malloc'ed. */
float *qu_read_npy(const char *path, uint64_t *rows, uint32_t *cols);

/* "YYYY-MM-DD", "YYYY-MM-DD HH:MM" or "YYYY-MM-DD HH:MM:SS" (also with
 * 'T') as UTC, to ms since the epoch. false when malformed. */
bool qu_parse_date(const char *s, size_t len, int64_t *ms);
/* ms -> "YYYY-MM-DD HH:MM:SS" (UTC). */
void qu_format_ms(int64_t ms, char out[32]);

/* Unsigned / double option values; usage error (exit 2) when bad. */
uint64_t qu_opt_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi);
double qu_opt_double(const char *opt, const char *s, double lo, double hi);

/* mkdir -p; fatal on failure. */
void qu_mkdir(const char *dir);
FILE *qu_create(const char *dir, const char *name, char *path, size_t pathlen);
void qu_close(FILE *f, const char *path);

/* Seconds since t0 (now_ns()). */
double qu_since(uint64_t t0_ns);

/* A small deterministic PRNG (splitmix64). */
static inline uint64_t qu_splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#endif
