/* updater.h: the event path from the workers to live state.
 *
 * Every worker thread (and the admin worker) owns one single-producer /
 * single-consumer ring (ck_ring, events stored by value); the updater
 * thread is the single consumer of all of them and the single writer of
 * live state (live.h). A worker never blocks on the updater: when its ring
 * lacks room for a whole request the request gets 503 + Retry-After and
 * nothing of it is enqueued.
 *
 * Wake-ups without syscalls on the request path: the updater sleeps on an
 * eventfd only after announcing it (`sleeping`, then a full fence, then a
 * last look at the rings); a worker commits its events, fences, and if it
 * sees `sleeping` it queues an eventfd write on its own io_uring, which
 * goes out with that loop turn's other submissions. Store-fence-load on
 * both sides means one of them always sees the other: no lost wake-up.
 *
 * Durability (events/evlog.h): each pass the updater dequeues a batch from
 * the rings, appends it to the event log with one write, fdatasyncs as the
 * `durability` setting says, applies it to live state, and only then
 * advances the rings' `applied` counters. Workers hold an event's answer
 * until `applied` covers it, so the 202 means "applied and as durable as
 * configured" with no change on the worker side:
 *  - none:   written (page cache), never fsync'ed; `applied` advances
 *            right after applying. Survives a crash of recd, not of the box.
 *  - batch:  fdatasync at most every durability_batch_ms; events are
 *            applied at once but `applied` advances only after the
 *            fdatasync covering them (until then they wait in memory).
 *  - always: write + fdatasync of every drained batch before it is
 *            applied and counted.
 * When the log fails (disk full, EIO) under batch or always, the updater
 * stops taking events until a retry succeeds: rings fill, new events get
 * 503, held answers wait. Nothing is acknowledged that is not durable.
 * At start (upd_start, before the thread and the listeners) the log is
 * replayed into live state in order, forget_user events included.
 *
 * External sources (the Kafka consumer, events/kafka.h) are one more
 * producer ring. Before the events of one source message the producer
 * queues an EVENT_SOURCE_MARK (stream, partition, offset) and flags the
 * events EVENT_FROM_SOURCE; one ring is FIFO and the log keeps the drain
 * order, so in the log every such event follows the mark of its message.
 * Replay therefore knows exactly which source positions live state holds:
 * for each (stream, partition) the offset of the last mark and how many
 * source events followed it (upd_source_find). Marks change no live state.
 * This relies on a single source ring: a second one would need its marks
 * and events told apart (e.g. by a source id in the mark).
 *
 * Checkpoints (live/checkpoint.h): the updater also keeps its own copy of
 * the source positions (`track`), continued from the replay and updated
 * by every committed event, because `sources` is read by the Kafka thread
 * without a lock and must not change after upd_start. A checkpoint stores
 * `track`; a start loads it into `sources` and the replay of the log tail
 * continues it, so source marks survive a checkpoint and the trimming of
 * the segments that held them. Checkpoints are written by the updater
 * thread between batches (no event is applied meanwhile): when
 * checkpoint_interval_s has passed or checkpoint_log_bytes were logged
 * since the last one, when upd_checkpoint_request asks, and at a clean
 * stop. With both settings 0 only the request writes one.
 */
#ifndef RECD_UPDATER_H
#define RECD_UPDATER_H

#include <ck_ring.h>
#include <pthread.h>
#include "core/srv.h"
#include "events/event.h"
#include "events/evlog.h"
#include "live/live.h"
struct exp_ledger;
#include "live/refresh.h"
#include "live/trend.h"

CK_RING_PROTOTYPE(event, event)

struct upd_ring {
	ck_ring_t ring;
	struct event *buf;
	uint64_t produced;      /* producer-only: sequence numbers */
	uint64_t applied;       /* consumer writes (ck_pr): events applied (and durable) */
	uint64_t taken;         /* consumer-only: applied to live state; becomes `applied`
	                           once the log makes it durable */
	int waiting;            /* producer sets (ck_pr): answers wait for `applied` */
	int wake_fd;            /* the producer's eventfd (-1: none), written when waiting */
} cacheline_aligned;

struct upd_stats {
	uint64_t applied[EVENT__TYPE_COUNT];
	uint64_t apply_failed;
	uint64_t wakeups;
	uint64_t recovered;     /* events replayed from the log at start */
	uint64_t log_errors;    /* failed event log appends, writes or syncs */
	uint64_t checkpoints;   /* written since start */
	uint64_t checkpoint_errors;
	uint64_t checkpoint_ms; /* duration of the last one */
	uint64_t checkpoint_wall_ms;  /* when the last one (written or loaded) was taken; 0: none */
	uint64_t log_disk_bytes;      /* event log segments on disk after the last checkpoint or start */
	uint64_t recovery_ms;   /* checkpoint load + log replay at start */
};

/* A source position recovered from the log (see above): the events of
 * `stream` partition `part` up to message `offset` are in live state, and
 * of message `offset` itself its first `events` valid events. */
struct upd_source_pos {
	uint64_t stream_key;    /* event_key(stream); 0: free slot */
	uint32_t part;
	uint32_t events;
	int64_t offset;
	char stream[EVENT_ID_MAX];
};

struct updater {
	struct recd_server *srv;
	struct live live;
	uint32_t n_rings;
	uint32_t ring_size;
	struct upd_ring *rings;
	int wake_fd;
	int sleeping;           /* ck_pr: the updater is (about to be) asleep */
	int stop;
	pthread_t thread;
	bool started;
	ck_epoch_record_t rec;  /* reader of snapshots, retirer of live records */
	struct exp_ledger *ledger; /* ck_pr: where outcomes are attributed (NULL: none) */
	struct upd_stats stats; /* written by the updater (ck_pr stores) */
	uint64_t idle_evict_ms;
	struct trend trend;     /* written by the updater, read by workers (trend.h) */
	struct refresh refresh; /* background candidates: fed by the updater (refresh.h) */
	/* The event log (NULL: event_log = false) and the batch being committed. */
	struct evlog *log;
	int durability;         /* enum evlog_durability */
	uint64_t sync_interval_ns;
	uint64_t last_sync_ns;
	bool log_failed;        /* batch/always: stop taking events until a retry works */
	uint64_t log_retry_ns;
	uint64_t log_complained_ns;
	struct event *stage;    /* UPD_STAGE events dequeued, not yet applied */
	uint32_t n_stage;
	/* Source positions (open addressing by stream key and partition):
	 * filled by the replay in upd_start, read-only afterwards. */
	struct upd_source_pos *sources;
	uint32_t sources_cap, n_sources;   /* cap: 0 or a power of two */
	struct upd_source_pos *source_cur; /* replay: the mark the next source events follow */
	/* The updater's own source positions, kept current for checkpoints. */
	struct upd_source_pos *track;
	uint32_t track_cap, n_track;
	struct upd_source_pos *track_cur;
	/* Checkpoints (checkpoint.h). */
	uint64_t ckpt_interval_ns;     /* 0: not by time */
	uint64_t ckpt_log_bytes;       /* 0: not by log growth */
	uint64_t ckpt_last_ns;
	uint64_t ckpt_last_bytes;      /* log->stats.bytes at the last checkpoint */
	uint64_t ckpt_last_pos;        /* log position of the newest checkpoint (UINT64_MAX: none) */
	int ckpt_request;              /* ck_pr: upd_checkpoint_request was called */
};

/* Create the rings (n_rings, each ring_size entries, a power of two),
 * open and replay the event log as srv->cfg says (event_log,
 * event_log_dir, durability...), then start the updater thread. dim:
 * session vector length (the snapshot's). */
int upd_start(struct updater *u, struct recd_server *srv, uint32_t n_rings, uint32_t ring_size,
	      uint32_t dim, uint64_t max_users, uint64_t idle_evict_ms);
/* Apply what is queued, stop the thread, free everything. */
void upd_stop(struct updater *u);

/* What the log replayed of one source partition (NULL: nothing). Valid
 * from upd_start to upd_stop. */
const struct upd_source_pos *upd_source_find(const struct updater *u, const char *stream, size_t len,
					     uint32_t part);

/* Ask the updater thread for a checkpoint as soon as it can (any thread);
 * stats.checkpoints counts it when done. -ENOTSUP without an event log. */
int upd_checkpoint_request(struct updater *u);

/* ---- producer side (worker `ring` only) ---- */
static inline uint32_t upd_room(struct updater *u, uint32_t ring)
{
	struct upd_ring *r = &u->rings[ring];
	/* ck_ring keeps one slot empty to tell full from empty. */
	return ck_ring_capacity(&r->ring) - 1 - ck_ring_size(&r->ring);
}
/* A slot to fill in place; NULL when full. Not visible until commit. */
static inline struct event *upd_reserve(struct updater *u, uint32_t ring)
{
	struct upd_ring *r = &u->rings[ring];
	return ck_ring_enqueue_reserve_spsc_event(&r->ring, r->buf);
}
static inline void upd_commit(struct updater *u, uint32_t ring, struct event *ev)
{
	struct upd_ring *r = &u->rings[ring];
	ev->seq = ((uint64_t)ring << 48) | ++r->produced;
	ck_ring_enqueue_commit_spsc(&r->ring);
}
/* After committing: does the updater need an eventfd write to wake up? */
static inline bool upd_needs_wake(struct updater *u)
{
	ck_pr_fence_memory();
	return ck_pr_load_int(&u->sleeping) != 0;
}
/* Events of this ring up to `seq` are applied to live state. */
static inline bool upd_applied(struct updater *u, uint32_t ring, uint64_t seq)
{
	return ck_pr_load_64(&u->rings[ring].applied) >= seq;
}
/* The worker has answers held until its events are applied: the updater
 * then writes `wake_fd` after each batch it applies from this ring. */
static inline void upd_set_waiting(struct updater *u, uint32_t ring, bool waiting)
{
	ck_pr_store_int(&u->rings[ring].waiting, waiting);
	ck_pr_fence_memory();
}
static inline uint64_t upd_produced(struct updater *u, uint32_t ring)
{
	return u->rings[ring].produced;
}

/* The value and fd a worker writes (through its ring) to wake it. */
extern const uint64_t upd_wake_value;

#endif
