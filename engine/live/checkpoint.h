/* checkpoint.h: checkpoints of live state, so a start replays only the
 * tail of the event log and old log segments can be deleted.
 *
 * What a checkpoint is: one file `checkpoint-<position>.ckpt` in the event
 * log directory (events/evlog.h) holding live state (every live user and
 * live item record, the live clock) and the Kafka source positions
 * (updater.h) as they were after applying exactly the log records below
 * <position> (a log position: the number of the first record NOT
 * included). Start = load the newest good checkpoint, then replay the log
 * from its position on.
 *
 * Format (host byte order, like the log; version in the magic):
 *   header   struct ckpt_hdr, XXH3-64 over its bytes before `sum`
 *   blocks   {kind, len, XXH3-64 of the payload} + payload of whole records
 *            (users, then items, then sources; at most CKPT_BLOCK bytes)
 *   end      a block of kind CKPT_END with the three counts again
 * A file without its end block, with a bad checksum anywhere, a record that
 * does not parse, or counts that differ from the header is refused whole.
 *
 * Theory of operation:
 *  - who writes: the updater thread, the single writer of live state, so
 *    it reads every record without racing a writer (ck_hs iteration is
 *    safe for the writer) and no event is applied while it writes: the
 *    checkpoint is live state at one log position, with no copying. The
 *    cost is a pause of the event path while it writes (measured in
 *    docs/operations.md): the rings absorb it, a full ring answers 503.
 *  - when (updater.c): every checkpoint_interval_s and/or after
 *    checkpoint_log_bytes of log, on POST /admin/checkpoint, and at a clean
 *    shutdown (so the next start replays nothing). First the log is synced
 *    and rotated (evlog_rotate), so every record the checkpoint covers is
 *    durable and in a closed segment.
 *  - crash safety: written to `<name>.tmp`, fdatasync'ed, renamed into
 *    place, directory fsync'ed. A crash leaves either the old set of
 *    checkpoints or the new one complete; stray .tmp files are deleted by
 *    the next prune.
 *  - retention: the two newest checkpoints are kept, and every log segment
 *    whose records all lie below the OLDER one's position is deleted. So a
 *    newest checkpoint that reads back bad (a disk that lied) falls back to
 *    the previous one plus the log, never to a log with a hole. Loading
 *    never crashes: a bad file is logged and the next older one (or a full
 *    replay of what the log still holds) is used.
 *  - privacy (compaction): a forgotten user is not in live state, so not in
 *    any checkpoint written after the forget. Records hold 64-bit key
 *    hashes, never the external ids. Once two checkpoints have been written
 *    after DELETE /v1/users/{id}, the segments with that user's events and
 *    the checkpoint that still held their live record are deleted: nothing
 *    of them remains on disk except in segments newer than the older kept
 *    checkpoint.
 *  - not in a checkpoint: trending counters (trend.h). They decay with a
 *    one-hour half-life and are rebuilt from the replayed tail only, so
 *    after a restart trending starts from the events since the older kept
 *    checkpoint (all of them when the log was never trimmed).
 */
#ifndef RECD_CHECKPOINT_H
#define RECD_CHECKPOINT_H

#include "core/common.h"
#include "live/live.h"
#include "live/updater.h"

#define CKPT_MAGIC 0x314b4352u      /* "RCK1": bump with the layout */
#define CKPT_VERSION 1u
#define CKPT_BLOCK (1u << 20)       /* payload bytes per block at most */
#define CKPT_KEEP 2                 /* checkpoints kept; the log is trimmed below the oldest kept */

enum ckpt_block_kind { CKPT_USERS = 1, CKPT_ITEMS = 2, CKPT_SOURCES = 3, CKPT_END = 0x454e44 };

struct ckpt_hdr {
	uint32_t magic, version;
	uint64_t position;          /* first log record not included */
	uint64_t clock_ms;          /* live->clock_ms */
	uint64_t users, items, sources;
	uint32_t dim, flags;        /* session vector length of the user records */
	uint64_t created_ms;        /* wall clock */
	uint64_t sum;               /* XXH3-64 of the bytes before it */
};

struct ckpt_blk {
	uint32_t kind, len;
	uint64_t sum;               /* XXH3-64 of the payload */
};

struct ckpt_stats {
	uint64_t position, users, items, sources;
	uint64_t bytes;             /* file size */
	uint64_t ms;                /* time taken */
	uint64_t created_ms;        /* wall clock when it was written */
	char name[64];
};

/* `checkpoint-<20 digits>.ckpt` */
void ckpt_name(char *out, size_t len, uint64_t position);
/* Positions of the checkpoints in the directory, ascending (*pos
 * malloc'ed, NULL when none). 0 or -errno. */
int ckpt_list(int dir_fd, uint64_t **pos, size_t *n);

/* Write live state at `position` (the caller has applied exactly the log
 * records below it) and the source positions (src: open-addressing table
 * of src_cap slots, empty slots have stream_key 0; cur: the slot later
 * source events continue, or NULL). Writer thread only. 0 or -errno. */
int ckpt_write(int dir_fd, uint64_t position, struct live *lv, const struct upd_source_pos *src, uint32_t src_cap,
	       const struct upd_source_pos *cur, struct ckpt_stats *st);

/* Called once per source position of a checkpoint being loaded. */
typedef int (*ckpt_source_fn)(void *ctx, const struct upd_source_pos *p, bool cur);
/* Verify the checkpoint at `position` and load it into `lv` (empty, no
 * readers yet). On an error (-EBADMSG: bad file, -ENOENT, -ENOMEM...) part
 * of it may have been loaded: the caller starts over with a fresh live
 * state. 0 or -errno. */
int ckpt_load(int dir_fd, uint64_t position, struct live *lv, ckpt_source_fn fn, void *ctx, struct ckpt_stats *st);

/* Delete checkpoints below `position`, and leftover .tmp files. 0 or -errno. */
int ckpt_prune(int dir_fd, uint64_t position);

#endif
