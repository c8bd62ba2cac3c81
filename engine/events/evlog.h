/* evlog.h: the append-only event log: accepted events survive a crash and
 * are replayed into live state at the next start.
 *
 * What it owns: one directory (event_log_dir) of segment files
 * `events-<first>.log`, where <first> is the log position (0-based count
 * of records before it in the whole log) of the segment's first record.
 * Each record is a 16-byte header {magic, payload length, XXH3-64 of the
 * payload} followed by the payload: the fixed head of struct event (its
 * bytes up to user_id, host byte order) and then the four ids, each
 * user_len / item_len / request_len / placement_len bytes long.
 *
 * Theory of operation:
 *  - one writer: the updater thread is the only user of an open log; the
 *    directory is flock()ed so a second process cannot append to it.
 *  - group commit: the writer appends a whole batch into a memory buffer
 *    (evlog_append) and hands it to the kernel with one write
 *    (evlog_write) or one write plus one fdatasync (evlog_sync). Callers
 *    decide when to sync (the durability policy lives in the updater).
 *  - what a crash can leave: only the tail of the LAST segment can be torn
 *    (a short header, a short payload, or bytes that never reached the
 *    disk and read back wrong). A segment is fdatasync'ed before the next
 *    one is created, and the directory is fsync'ed after each creation,
 *    so every earlier segment is complete on disk.
 *  - on open every record of every segment is verified (magic, length
 *    bounds, checksum, id lengths). A bad record in the last segment cuts
 *    the file there (ftruncate + fdatasync, logged with the bytes cut) and
 *    it is never replayed; appends continue after the last good record.
 *    A bad record, or a gap in positions, in an earlier segment means the
 *    disk lost data it said was durable: replay stops there, an error is
 *    logged, later segments are verified but not replayed, and nothing is
 *    deleted, so an operator can look at it. recd keeps running.
 *  - retain mode (durability batch/always): records stay in memory until
 *    an fdatasync covers them. When a write or an fdatasync fails, the
 *    segment is truncated back to its last synced size and the next
 *    evlog_sync writes everything again, so a failed fsync (whose dirty
 *    pages the kernel may already have dropped) never counts as durable.
 *    Without retain (durability none) a failed write is truncated away and
 *    its records are lost from the log (they were never promised durable).
 *  - privacy: EVENT_FORGET_USER is logged like any event and replayed in
 *    order, so a forgotten user stays forgotten after a restart. The
 *    user's earlier events are still physically in the log until the
 *    segments holding them are trimmed: compaction is done by checkpoints
 *    (live/checkpoint.h), which hold live state (where a forgotten user no
 *    longer is) and let every segment below them be deleted
 *    (evlog_rotate, then evlog_trim_before).
 *  - checkpoints: evlog_open's replay_from skips (verifies, does not
 *    replay) the records a checkpoint already covers; a gap in positions
 *    below replay_from is no loss (those segments were trimmed). When the
 *    log ends before replay_from (its tail was lost after the checkpoint
 *    was written), a new segment starts at replay_from so positions stay
 *    those the checkpoint counts in.
 */
#ifndef RECD_EVLOG_H
#define RECD_EVLOG_H

#include <limits.h>
#include "core/common.h"
#include "events/event.h"

#define EVLOG_MAGIC 0x314c5645u          /* "EVL1" little-endian; bump with the layout */
#define EVLOG_SEGMENT_BYTES (64ull << 20) /* rotate after this much */
#define EVLOG_FIXED offsetof(struct event, user_id)
#define EVLOG_MAX_PAYLOAD (EVLOG_FIXED + EVENT_ID_MAX * 2 + 64 * 2)

struct evlog_rec_hdr {
	uint32_t magic;
	uint32_t len;       /* payload bytes */
	uint64_t sum;       /* XXH3_64bits(payload) */
};

enum evlog_durability {
	EVLOG_NONE,         /* written, never fsync'ed (except at rotation and close) */
	EVLOG_BATCH,        /* fsync at most every durability_batch_ms */
	EVLOG_ALWAYS,       /* fsync every drained batch */
};
/* "none" | "batch" | "always" -> enum, or -EINVAL. */
int evlog_durability_parse(const char *name);
extern const char *const evlog_durability_names[];

struct evlog_stats {
	uint64_t records, bytes;     /* appended since open */
	uint64_t writes, syncs, rotations;
	uint64_t errors;             /* failed writes, syncs or rotations */
};

struct evlog_recovery {
	uint64_t events;             /* replayed */
	uint64_t segments;           /* found */
	uint64_t bytes;              /* of the records replayed */
	uint64_t cut_bytes;          /* bad tail removed from the last segment */
	uint64_t unreplayed_bytes;   /* kept but not replayed (after a bad earlier segment) */
	uint64_t ms;                 /* time taken by evlog_open */
	bool stopped;                /* an earlier segment was bad: replay stopped there */
};

struct evlog {
	char dir[PATH_MAX];
	int dir_fd;                  /* flock'ed: one writer per directory */
	int fd;                      /* the last segment, O_APPEND */
	bool retain;                 /* keep records in memory until fdatasync covers them */
	int broken;                  /* sticky -errno: the file could not be put back in order */
	uint64_t seg_limit;
	uint64_t seg_first;          /* position of the open segment's first record */
	uint64_t seg_records;        /* records in it (written) */
	uint64_t seg_bytes;          /* its size as written */
	uint64_t synced_bytes;       /* its size at the last fdatasync that worked */
	uint64_t synced_records;
	/* Records appended and not yet covered by a sync (retain) or not yet
	 * written (without retain); buf[0..written) is already in the file. */
	uint8_t *buf;
	size_t len, cap, written;
	uint64_t n_buf, n_written;
	struct evlog_stats stats;
};

struct evlog_opts {
	bool retain;                 /* see above: true for batch and always */
	uint64_t segment_bytes;      /* 0 = EVLOG_SEGMENT_BYTES */
	uint64_t replay_from;        /* records below this position are verified, not replayed */
};

/* Called once per good record, in log order. A negative return stops
 * evlog_open with that error. */
typedef int (*evlog_replay_fn)(void *ctx, const struct event *ev);

/* Create `dir` if missing (its parent must exist), lock it, verify and
 * replay every segment through `fn` (may be NULL), cut a bad tail of the
 * last one, and open it for appending. Fills *rec. 0 or -errno (-EBUSY:
 * another process holds the directory). */
int evlog_open(struct evlog *l, const char *dir, const struct evlog_opts *o, evlog_replay_fn fn, void *ctx,
	       struct evlog_recovery *rec);
/* Sync what is pending (best effort, logged) and close. */
void evlog_close(struct evlog *l);

/* Stage n events for the next write; all or nothing. 0, -ENOMEM, or
 * -EINVAL for an event whose id lengths are out of range. */
int evlog_append(struct evlog *l, const struct event *evs, size_t n);
/* Write what is staged with one write (rotating first when the segment is
 * full). No fsync. 0 or -errno. */
int evlog_write(struct evlog *l);
/* Write, then fdatasync: on success everything appended so far is on
 * disk. On failure the file is put back to its last synced size and the
 * records stay staged (retain) for the next call. 0 or -errno. */
int evlog_sync(struct evlog *l);
/* Records appended that no fdatasync covers yet. */
static inline bool evlog_pending(const struct evlog *l)
{
	return l->len > 0;
}
/* Log position of the next record (= records in the log). */
static inline uint64_t evlog_position(const struct evlog *l)
{
	return l->seg_first + l->seg_records + (l->n_buf - l->n_written);
}

/* Sync everything, then start a new segment at the current position (no-op
 * when the open one is empty): afterwards every record below
 * evlog_position is in a closed, durable segment. 0 or -errno. */
int evlog_rotate(struct evlog *l);
/* Delete every closed segment whose records all lie below `pos` (never
 * the open one), then fsync the directory. Adds the segments and bytes
 * removed to *segments / *bytes (either may be NULL). 0 or -errno. */
int evlog_trim_before(struct evlog *l, uint64_t pos, uint64_t *segments, uint64_t *bytes);
/* Bytes of all segments on disk now (one stat per segment). 0 or -errno. */
int evlog_disk_bytes(struct evlog *l, uint64_t *bytes);

/* ---- record codec (exposed for the tests) ---- */
/* Payload bytes of ev; 0 when its id lengths are out of range. */
size_t evlog_encoded_len(const struct event *ev);
/* Decode a payload; -EINVAL unless it is a well-formed event. */
int evlog_decode(const uint8_t *p, size_t len, struct event *ev);

#endif
