/* kafka.h: the Kafka event source: a consumer thread that takes events
 * from Kafka topics, in the schema of POST /v1/events, and hands them to
 * the updater like a request worker does.
 *
 * Theory of operation
 *
 *  - Off unless kafka_brokers is set. One thread (`recd-kafka`) owns one
 *    librdkafka consumer in group kafka_group, subscribed to kafka_topics,
 *    with enable.auto.commit and enable.auto.offset.store off: recd alone
 *    decides which offsets are committed. A group that has no committed
 *    offset for a partition starts at kafka_start (auto.offset.reset).
 *    kafka_options passes further librdkafka properties (TLS, SASL,
 *    timeouts); cfg_validate refuses the ones recd relies on.
 *
 *  - A message value is what one POST /v1/events body may be: one JSON
 *    event, a JSON array of events, or NDJSON lines (a value that is not
 *    one JSON document and has a newline is read as NDJSON). It is split
 *    by event_batch_* and validated by event_from_json, the code the HTTP
 *    endpoint runs, with the same max_events_per_request. An event without
 *    "ts" gets the message's timestamp. An invalid event, or a message
 *    that is not events at all, is counted (recd_kafka_events_rejected_total)
 *    and logged (at most one line a second, with topic, partition, offset,
 *    index and reason, and how many lines were suppressed), then skipped:
 *    a partition never stops on a bad message.
 *
 *  - Delivery: the thread is the only producer of one more updater ring
 *    (index n_workers + 1; the admin worker's stays n_workers). Before the
 *    valid events of a message it queues an EVENT_SOURCE_MARK (topic,
 *    partition, offset) and it flags the events EVENT_FROM_SOURCE. The
 *    updater logs marks and events in ring order and applies the events
 *    as any others. When the ring is full the thread waits (backing off
 *    from 50 us to 10 ms, waking the updater): nothing is dropped. It is
 *    not a request worker; while it waits librdkafka keeps fetching, and
 *    beyond max.poll.interval.ms (librdkafka's, 5 min by default) the
 *    consumer leaves the group until it polls again.
 *
 *  - Commits: per partition the thread remembers the last message it has
 *    handled (offset, and the ring's produced count after it) and keeps
 *    one of them as a checkpoint. Once upd_applied says the ring has been
 *    applied up to the checkpoint's count, checkpoint offset + 1 becomes
 *    committable and the newest handled message the next checkpoint (so a
 *    steady stream cannot starve commits). The ring's `applied` advances
 *    only after the event log's durability point (updater.h), so under
 *    batch and always a committable offset is one whose events are on
 *    disk; under none, written to the page cache; without an event log,
 *    applied to memory. Commits are asynchronous, at most every
 *    kafka_commit_ms; on revocation and at shutdown the thread first waits
 *    (up to 10 s) until everything it queued is applied, then commits
 *    synchronously. A failed commit is retried with the next one.
 *
 *  - Redelivery is made idempotent by the event log, not by a second
 *    file: the marks are in the log, in order with the events, so after
 *    any restart or crash the replay knows exactly what live state holds
 *    of each partition (upd_source_find: the offset of the last mark and
 *    how many source events followed it). A redelivered message below that
 *    offset is skipped whole; the message at that offset skips as many
 *    valid events as were logged (a crash may log only the first part of
 *    a message: the rest is applied, and marked as a continuation). The
 *    consumer still resumes at the group's committed offset; what lies
 *    between it and the log's position is read and skipped
 *    (recd_kafka_duplicates_total). A separate offsets file written after
 *    each commit could not close the window between "logged" and
 *    "committed", which is exactly where a crash makes duplicates; the
 *    marks close it because they become durable with the events
 *    themselves. The same check covers redelivery inside one run (a
 *    partition revoked and assigned back).
 *
 *  - So, per partition, with the event log on: every message from the
 *    committed offset on is applied exactly once across SIGTERM, kill -9
 *    and restarts, under every durability; under batch and always also
 *    across a crash of the machine, because an offset is committed only
 *    once the fdatasync covering its events and mark is done. Under none
 *    a crash of the machine can take the log's tail after its offsets
 *    were committed: those events are lost, as acknowledged HTTP events
 *    are. Without the event log live state starts empty at every start
 *    and only the commit discipline holds: the group resumes at its
 *    committed offset, and a message between the last commit and a crash
 *    is applied again in the new (empty) live state.
 *    Limits: a topic deleted and created again under the same name starts
 *    its offsets again, and messages below the log's position for it are
 *    skipped as duplicates; after that, remove the event log (or rename
 *    the topic). A recd from before the Kafka source takes a source mark
 *    for a bad record: in the last segment it would cut the log there, in
 *    an earlier one stop the replay. Do not downgrade over such a log.
 *
 *  - Lag: once a second, per assigned partition, the high watermark
 *    librdkafka last saw minus the next offset not yet applied (or the
 *    group's committed offset, or the fetch position, before anything was
 *    handled), summed into recd_kafka_lag.
 *
 *  - Start and stop (main.c): kafka_start after upd_start and after the
 *    signal mask is set (librdkafka's threads inherit it), before the
 *    listeners and READY; kafka_stop after the workers drained and before
 *    upd_stop: it finishes the message in hand, waits for the updater to
 *    apply what it queued, commits synchronously, leaves the group and
 *    frees. Counters are written by the thread with ck_pr stores and read
 *    with kafka_stats_read.
 */
#ifndef RECD_KAFKA_H
#define RECD_KAFKA_H

#include "core/srv.h"
#include "live/updater.h"

struct kafka_stats {
	uint64_t messages;      /* messages taken (duplicates and invalid ones included) */
	uint64_t events;        /* events queued for the updater */
	uint64_t rejected;      /* invalid events, or messages that are no events, skipped */
	uint64_t duplicates;    /* messages (or leading parts of one) already in live state, skipped */
	uint64_t commits;       /* offset commits the group coordinator confirmed */
	uint64_t errors;        /* consumer, fetch and commit errors */
	uint64_t lag;           /* messages not yet applied, summed over assigned partitions */
	uint64_t partitions;    /* assigned now */
};

struct kafka;

/* Create the consumer for srv->cfg (kafka_brokers set, cfg_validate
 * passed) and start its thread, which queues into ring `ring` of u (a
 * ring nothing else produces into). 0, or -errno with err filled. */
int kafka_start(struct kafka **out, struct recd_server *srv, struct updater *u, uint32_t ring, char *err,
		size_t errlen);
/* See above; k may be NULL. */
void kafka_stop(struct kafka *k);
void kafka_stats_read(const struct kafka *k, struct kafka_stats *out);

#endif
