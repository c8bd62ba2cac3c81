/* kafka.c: the Kafka consumer thread (see kafka.h for the theory of
 * operation). Everything here runs on the thread `recd-kafka`, librdkafka
 * callbacks included (they are served by rd_kafka_consumer_poll and by
 * rd_kafka_consumer_close on this thread), except log_cb, which
 * librdkafka calls from its own threads. */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "api/api.h"
#include "core/log.h"
#include "events/kafka.h"

#define KAFKA_POLL_MS 100             /* longest wait for a message */
#define KAFKA_LAG_NS 1000000000ull    /* lag recomputed this often */
#define KAFKA_FLUSH_WAIT_NS (10 * 1000000000ull) /* revoke/stop: wait this long for the updater */
#define KAFKA_JOIN_WAIT_S 15          /* kafka_stop: then leave the thread to the exit
                                         (recd.service: TimeoutStopSec=30s) */
#define KAFKA_COMMITTED_MS 5000       /* committed offsets asked for on assignment */
#define KAFKA_LOG_EVERY_NS 1000000000ull

/* One partition the consumer has seen. */
struct kafka_part {
	char topic[EVENT_ID_MAX];
	size_t topic_len;
	int32_t partition;
	bool assigned;
	/* What live state holds (kafka.h, redelivery): messages below
	 * have_off, and the first have_events valid events of have_off. */
	int64_t have_off;          /* -1: nothing */
	uint32_t have_events;
	/* Commit pipeline (kafka.h, commits). */
	bool last_valid, ckpt_valid;
	int64_t last_off, ckpt_off;
	uint64_t last_seq, ckpt_seq;   /* the ring's produced count after that message */
	int64_t commit_next;       /* offset that may be committed (next unapplied); -1: none */
	int64_t commit_sent;       /* last one sent */
	int64_t commit_ok;         /* last one confirmed, or the group's at assignment */
};

struct kafka {
	struct recd_server *srv;
	struct updater *u;
	uint32_t ring;
	rd_kafka_t *rk;
	rd_kafka_queue_t *commit_q;        /* results of asynchronous commits */
	pthread_t thread;
	bool started;
	int stop;                          /* ck_pr */
	int ring_done;                     /* ck_pr: the thread no longer touches the updater */
	/* partitions: pointers (stable), found by topic and partition */
	struct kafka_part **parts;
	uint32_t n_parts, cap_parts;
	struct kafka_part *last_part;      /* the previous message's */
	/* one message's events, validated before any is queued */
	struct json_tok *toks;
	uint32_t n_toks;
	struct event *evs;
	uint32_t max_events;
	uint64_t commit_ns;                /* cfg kafka_commit_ms */
	uint64_t last_commit_ns, last_lag_ns;
	uint64_t reject_log_ns, reject_suppressed;
	uint64_t error_log_ns, error_suppressed;
	struct kafka_stats stats;          /* ck_pr stores by the thread */
};

#define STAT_ADD(k, f, v) ck_pr_store_64(&(k)->stats.f, (k)->stats.f + (v))
#define STAT_SET(k, f, v) ck_pr_store_64(&(k)->stats.f, (v))

void kafka_stats_read(const struct kafka *k, struct kafka_stats *out)
{
	uint64_t *s = (uint64_t *)(void *)&k->stats;
	uint64_t *d = (uint64_t *)(void *)out;
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		d[i] = ck_pr_load_64(&s[i]);
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ partitions */

static struct kafka_part *part_find(struct kafka *k, const char *topic, int32_t partition)
{
	struct kafka_part *p = k->last_part;
	if (p && p->partition == partition && !strcmp(p->topic, topic))
		return p;
	for (uint32_t i = 0; i < k->n_parts; i++) {
		p = k->parts[i];
		if (p->partition == partition && !strcmp(p->topic, topic))
			return k->last_part = p;
	}
	return NULL;
}

/* Found or created; a new one starts from what the event log replayed. */
static struct kafka_part *part_get(struct kafka *k, const char *topic, int32_t partition)
{
	struct kafka_part *p = part_find(k, topic, partition);
	if (p)
		return p;
	size_t tl = strlen(topic);
	if (!tl || tl >= EVENT_ID_MAX || partition < 0)
		return NULL;   /* cfg_validate keeps topic names short; a broker cannot send others */
	if (k->n_parts == k->cap_parts) {
		uint32_t cap = k->cap_parts ? k->cap_parts * 2 : 16;
		struct kafka_part **np = realloc(k->parts, cap * sizeof(*np));
		if (!np)
			return NULL;
		k->parts = np;
		k->cap_parts = cap;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	memcpy(p->topic, topic, tl + 1);
	p->topic_len = tl;
	p->partition = partition;
	p->have_off = -1;
	p->commit_next = p->commit_sent = p->commit_ok = -1;
	const struct upd_source_pos *pos = upd_source_find(k->u, topic, tl, (uint32_t)partition);
	if (pos) {
		p->have_off = pos->offset;
		p->have_events = pos->events;
	}
	k->parts[k->n_parts++] = p;
	return k->last_part = p;
}

/* ------------------------------------------------------------ logging */

static void kafka_error(struct kafka *k, const char *what, const char *detail)
{
	STAT_ADD(k, errors, 1);
	uint64_t now = now_ns();
	if (k->error_log_ns && now - k->error_log_ns < 10 * KAFKA_LOG_EVERY_NS) {
		k->error_suppressed++;
		return;
	}
	char q[512];
	log_warn("kafka_error", "op=%s err=%s suppressed=%llu", what, log_quote(q, sizeof(q), detail),
		 (unsigned long long)k->error_suppressed);
	k->error_log_ns = now;
	k->error_suppressed = 0;
}

static void reject(struct kafka *k, const rd_kafka_message_t *m, const char *topic, int64_t index, const char *why)
{
	STAT_ADD(k, rejected, 1);
	uint64_t now = now_ns();
	if (k->reject_log_ns && now - k->reject_log_ns < KAFKA_LOG_EVERY_NS) {
		k->reject_suppressed++;
		return;
	}
	char q[256];
	log_warn("kafka_event_rejected", "topic=%s partition=%d offset=%lld index=%lld err=%s suppressed=%llu", topic,
		 (int)m->partition, (long long)m->offset, (long long)index, log_quote(q, sizeof(q), why),
		 (unsigned long long)k->reject_suppressed);
	k->reject_log_ns = now;
	k->reject_suppressed = 0;
}

/* librdkafka's own log lines (from its threads): warnings and errors at
 * most 5 per 10 s, the rest at debug. FAIL lines (a broker connection
 * failed) come again through error_cb, which counts them. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	static uint64_t window_ns, in_window;
	char q[512];
	if (level >= 5 || !strcmp(fac, "FAIL")) {
		log_debug("kafka_log", "level=%d fac=%s text=%s", level, fac, log_quote(q, sizeof(q), buf));
		return;
	}
	uint64_t now = now_ns(), w = ck_pr_load_64(&window_ns);
	if (now - w > 10 * KAFKA_LOG_EVERY_NS) {
		if (ck_pr_cas_64(&window_ns, w, now))
			ck_pr_store_64(&in_window, 0);
	}
	if (ck_pr_faa_64(&in_window, 1) >= 5)
		return;
	log_warn("kafka_log", "level=%d fac=%s text=%s", level, fac, log_quote(q, sizeof(q), buf));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kafka *k = opaque;
	char d[512];
	snprintf(d, sizeof(d), "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
	kafka_error(k, "client", d);
}

/* ------------------------------------------------------------ the ring */

static void wake_updater(struct kafka *k)
{
	if (upd_needs_wake(k->u)) {
		uint64_t one = 1;
		if (write(k->u->wake_fd, &one, sizeof(one)) < 0)
			log_warn("updater_wake_failed", "err=\"%s\"", strerror(errno));
	}
}

/* A ring slot, waiting for one with a backoff; NULL only when stopping
 * and the updater has taken nothing for KAFKA_FLUSH_WAIT_NS. */
static struct event *ring_slot(struct kafka *k)
{
	uint64_t backoff = 50000, stop_t0 = 0;
	for (;;) {
		struct event *ev = upd_reserve(k->u, k->ring);
		if (ev)
			return ev;
		wake_updater(k);
		if (ck_pr_load_int(&k->stop)) {
			uint64_t now = now_ns();
			if (!stop_t0)
				stop_t0 = now;
			else if (now - stop_t0 > KAFKA_FLUSH_WAIT_NS)
				return NULL;
		}
		sleep_ns(backoff);
		backoff = MIN(backoff * 2, 10000000ull);
	}
}

static bool ring_put(struct kafka *k, const struct event *src)
{
	struct event *ev = ring_slot(k);
	if (!ev)
		return false;
	memcpy(ev, src, offsetof(struct event, user_id));
	memcpy(ev->user_id, src->user_id, src->user_len + 1u);
	memcpy(ev->item_id, src->item_id, src->item_len + 1u);
	memcpy(ev->request_id, src->request_id, src->request_len + 1u);
	memcpy(ev->placement, src->placement, src->placement_len + 1u);
	upd_commit(k->u, k->ring, ev);
	return true;
}

/* Wait until the updater applied (and made durable) all this thread
 * queued; false after KAFKA_FLUSH_WAIT_NS. */
static bool wait_applied(struct kafka *k)
{
	uint64_t t0 = now_ns(), backoff = 50000;
	while (!upd_applied(k->u, k->ring, upd_produced(k->u, k->ring))) {
		if (now_ns() - t0 > KAFKA_FLUSH_WAIT_NS)
			return false;
		wake_updater(k);
		sleep_ns(backoff);
		backoff = MIN(backoff * 2, 2000000ull);
	}
	return true;
}

/* ------------------------------------------------------------ messages */

/* Validate a message's events into k->evs; returns how many are valid. */
static uint32_t parse_message(struct kafka *k, const rd_kafka_message_t *m, const char *topic)
{
	if (!m->payload || !m->len) {
		reject(k, m, topic, -1, "empty message");
		return 0;
	}
	const char *s = m->payload;
	struct event_batch b;
	struct json_err jerr;
	int r = event_batch_init(&b, s, m->len, false, k->toks, k->n_toks, &jerr);
	if (r == -EINVAL && memchr(s, '\n', m->len))
		r = event_batch_init(&b, s, m->len, true, k->toks, k->n_toks, &jerr);
	char err[192];
	if (r == -ENOSPC) {
		snprintf(err, sizeof(err), "more JSON values than %u events may hold (max_events_per_request)",
			 k->max_events);
		reject(k, m, topic, -1, err);
		return 0;
	}
	if (r < 0) {
		snprintf(err, sizeof(err), "invalid JSON at byte %u: %s", jerr.offset, jerr.msg ? jerr.msg : "syntax error");
		reject(k, m, topic, -1, err);
		return 0;
	}
	if (b.n > k->max_events) {
		snprintf(err, sizeof(err), "%lld events; at most %u in one message (max_events_per_request)",
			 (long long)b.n, k->max_events);
		reject(k, m, topic, -1, err);
		return 0;
	}
	rd_kafka_timestamp_type_t tst;
	int64_t ts = rd_kafka_message_timestamp(m, &tst);
	uint64_t now = ts > 0 ? (uint64_t)ts : now_wall_ms();
	uint32_t n = 0;
	const char *src;
	int obj, got;
	for (int64_t index = 0; (got = event_batch_next(&b, &src, &obj, err, sizeof(err))) >= 0; index++) {
		if (!got || event_from_json(src, k->toks, obj, now, &k->evs[n], err, sizeof(err))) {
			reject(k, m, topic, index, err);
			continue;
		}
		k->evs[n].flags |= EVENT_FROM_SOURCE;
		n++;
	}
	if (!b.n)
		reject(k, m, topic, -1, "no events in the message");
	return n;
}

/* One message: skip what live state already holds, queue the rest behind
 * its mark. false: stopping, and the message could only be queued in
 * part (it stays uncommitted; its logged part is known to the log). */
static bool take_message(struct kafka *k, const rd_kafka_message_t *m)
{
	const char *topic = rd_kafka_topic_name(m->rkt);
	STAT_ADD(k, messages, 1);
	struct kafka_part *p = part_get(k, topic, m->partition);
	if (!p) {
		kafka_error(k, "partition", "out of memory, or a topic name beyond 127 bytes");
		return true;   /* never committed: redelivered after a restart */
	}
	if (p->have_off >= 0 && m->offset < p->have_off) {
		STAT_ADD(k, duplicates, 1);
		goto handled;
	}
	uint32_t skip = p->have_off == m->offset ? p->have_events : 0;
	uint32_t n = parse_message(k, m, topic);
	if (skip)
		STAT_ADD(k, duplicates, 1);
	if (n > skip) {
		struct event mark;
		if (event_source_mark(&mark, topic, p->topic_len, (uint32_t)m->partition, m->offset, now_wall_ms()) ||
		    !ring_put(k, &mark))
			return false;
		p->have_off = m->offset;
		p->have_events = skip;
		for (uint32_t i = skip; i < n; i++) {
			if (!ring_put(k, &k->evs[i]))
				return false;
			p->have_events++;
		}
		STAT_ADD(k, events, n - skip);
		wake_updater(k);
	}
handled:
	p->last_off = m->offset;
	p->last_seq = upd_produced(k->u, k->ring);
	p->last_valid = true;
	return true;
}

/* ------------------------------------------------------------ commits */

static void commit_result(struct kafka *k, rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t *offs)
{
	if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
		return;
	if (err)
		kafka_error(k, "commit", rd_kafka_err2str(err));
	else
		STAT_ADD(k, commits, 1);
	for (int i = 0; offs && i < offs->cnt; i++) {
		const rd_kafka_topic_partition_t *e = &offs->elems[i];
		struct kafka_part *p = part_find(k, e->topic, e->partition);
		if (!p)
			continue;
		if (err || e->err)
			p->commit_sent = p->commit_ok;   /* sent again with the next commit */
		else if (e->offset > p->commit_ok)
			p->commit_ok = e->offset;
	}
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offs, void *opaque)
{
	commit_result(opaque, err, offs);
}

/* Move checkpoints forward (the only place that reads the ring's
 * `applied`); returns how many partitions have an offset to commit. */
static uint32_t advance_checkpoints(struct kafka *k)
{
	uint32_t dirty = 0;
	for (uint32_t i = 0; i < k->n_parts; i++) {
		struct kafka_part *p = k->parts[i];
		if (!p->assigned)
			continue;
		for (int round = 0; round < 2; round++) {
			if (p->ckpt_valid && upd_applied(k->u, k->ring, p->ckpt_seq)) {
				p->commit_next = p->ckpt_off + 1;
				p->ckpt_valid = false;
			}
			if (p->ckpt_valid || !p->last_valid || p->last_off + 1 <= p->commit_next)
				break;
			p->ckpt_off = p->last_off;
			p->ckpt_seq = p->last_seq;
			p->ckpt_valid = true;
		}
		if (p->commit_next > p->commit_sent)
			dirty++;
	}
	return dirty;
}

/* Commit what is committable, asynchronously or (`sync`) in the call. */
static void send_commits(struct kafka *k, bool sync)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
	for (uint32_t i = 0; i < k->n_parts; i++) {
		struct kafka_part *p = k->parts[i];
		if (p->assigned && p->commit_next > p->commit_sent) {
			rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->commit_next;
			p->commit_sent = p->commit_next;
		}
	}
	k->last_commit_ns = now_ns();
	if (l->cnt) {
		/* A NULL queue makes the call synchronous, the callback served in it. */
		rd_kafka_resp_err_t err = rd_kafka_commit_queue(k->rk, l, sync ? NULL : k->commit_q, commit_cb, k);
		if (err && !sync)
			commit_result(k, err, l);
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* The poll loop's: at most every kafka_commit_ms. */
static void advance_commits(struct kafka *k)
{
	if (advance_checkpoints(k) && now_ns() - k->last_commit_ns >= k->commit_ns)
		send_commits(k, false);
}

static void serve_commit_results(struct kafka *k)
{
	rd_kafka_event_t *ev;
	while ((ev = rd_kafka_queue_poll(k->commit_q, 0))) {
		if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT)
			commit_result(k, rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev));
		rd_kafka_event_destroy(ev);
	}
}

/* Before partitions go (revocation, shutdown): everything queued applied,
 * then one synchronous commit. At shutdown (`last`) the updater is off
 * limits from before the commit on, which may wait for a coordinator. */
static void flush(struct kafka *k, const char *why, bool last)
{
	bool all = wait_applied(k);
	if (!all)
		log_warn("kafka_flush_incomplete",
			 "why=%s detail=\"the updater did not apply the queued events within 10 s; their offsets "
			 "stay uncommitted and are read again (and skipped where logged)\"",
			 why);
	serve_commit_results(k);
	uint32_t dirty = advance_checkpoints(k);
	if (last)
		ck_pr_store_int(&k->ring_done, 1);
	if (dirty)
		send_commits(k, true);
}

/* ------------------------------------------------------------ lag */

static void update_lag(struct kafka *k)
{
	uint64_t lag = 0, n = 0;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
	for (uint32_t i = 0; i < k->n_parts; i++)
		if (k->parts[i]->assigned)
			rd_kafka_topic_partition_list_add(l, k->parts[i]->topic, k->parts[i]->partition);
	if (l->cnt)
		rd_kafka_position(k->rk, l);
	for (int i = 0; i < l->cnt; i++) {
		struct kafka_part *p = part_find(k, l->elems[i].topic, l->elems[i].partition);
		int64_t lo, hi;
		n++;
		if (!p || rd_kafka_get_watermark_offsets(k->rk, p->topic, p->partition, &lo, &hi) || hi < 0)
			continue;
		int64_t next = MAX(p->commit_next, p->commit_ok);
		if (next < 0)
			next = l->elems[i].offset;   /* fetch position; < 0 while unknown */
		if (next >= 0 && hi > next)
			lag += (uint64_t)(hi - next);
	}
	rd_kafka_topic_partition_list_destroy(l);
	STAT_SET(k, lag, lag);
	STAT_SET(k, partitions, n);
}

/* ------------------------------------------------------------ rebalances */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct kafka *k = opaque;
	bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		/* The group's offsets: the lag's base until a message is handled. */
		rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_copy(parts);
		bool have_committed = !rd_kafka_committed(rk, c, KAFKA_COMMITTED_MS);
		for (int i = 0; i < parts->cnt; i++) {
			struct kafka_part *p = part_get(k, parts->elems[i].topic, parts->elems[i].partition);
			if (!p)
				continue;
			p->assigned = true;
			p->last_valid = p->ckpt_valid = false;
			p->commit_next = p->commit_sent = p->commit_ok = -1;
			if (have_committed && c->elems[i].offset >= 0 && !c->elems[i].err)
				p->commit_ok = p->commit_sent = c->elems[i].offset;
			log_info("kafka_assigned", "topic=%s partition=%d committed=%lld logged=%lld logged_events=%u",
				 p->topic, (int)p->partition, (long long)p->commit_ok, (long long)p->have_off,
				 p->have_events);
		}
		rd_kafka_topic_partition_list_destroy(c);
		rd_kafka_error_t *e = NULL;
		if (coop)
			e = rd_kafka_incremental_assign(rk, parts);
		else if (rd_kafka_assign(rk, parts))
			kafka_error(k, "assign", "rd_kafka_assign failed");
		if (e) {
			kafka_error(k, "assign", rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
		}
	} else {
		if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
			kafka_error(k, "rebalance", rd_kafka_err2str(err));
		/* Lost partitions (the session expired) may already belong to
		 * another member: committing for them would fail; skip. While
		 * closing, the stop has flushed and the updater is off limits. */
		if (!rd_kafka_assignment_lost(rk) && !ck_pr_load_int(&k->ring_done))
			flush(k, "revoke", false);
		for (int i = 0; i < parts->cnt; i++) {
			struct kafka_part *p = part_find(k, parts->elems[i].topic, parts->elems[i].partition);
			if (!p)
				continue;
			p->assigned = false;
			p->last_valid = p->ckpt_valid = false;
			log_info("kafka_revoked", "topic=%s partition=%d committed=%lld", p->topic, (int)p->partition,
				 (long long)p->commit_ok);
		}
		if (coop) {
			rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
			if (e) {
				kafka_error(k, "unassign", rd_kafka_error_string(e));
				rd_kafka_error_destroy(e);
			}
		} else {
			rd_kafka_assign(rk, NULL);
		}
	}
	update_lag(k);
}

/* ------------------------------------------------------------ the thread */

static void *kafka_main(void *arg)
{
	struct kafka *k = arg;
	uint32_t batch = (uint32_t)k->srv->cfg.kafka_batch;
	bool stopped_in_message = false;
	k->last_commit_ns = k->last_lag_ns = now_ns();
	while (!ck_pr_load_int(&k->stop)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, KAFKA_POLL_MS);
		for (uint32_t n = 0; m; n++) {
			bool ok = true;
			if (!m->err)
				ok = take_message(k, m);
			else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				char d[512];
				snprintf(d, sizeof(d), "%s [%d]: %s", m->rkt ? rd_kafka_topic_name(m->rkt) : "-",
					 (int)m->partition, rd_kafka_message_errstr(m));
				kafka_error(k, "consume", d);
			}
			rd_kafka_message_destroy(m);
			if (!ok) {
				stopped_in_message = true;
				break;
			}
			m = n + 1 < batch && !ck_pr_load_int(&k->stop) ? rd_kafka_consumer_poll(k->rk, 0) : NULL;
		}
		if (stopped_in_message)
			break;
		serve_commit_results(k);
		advance_commits(k);
		if (now_ns() - k->last_lag_ns >= KAFKA_LAG_NS) {
			update_lag(k);
			k->last_lag_ns = now_ns();
		}
	}
	/* Stop: what was taken is queued; once applied, commit it, then
	 * leave the group (the revocation callback flushes once more). */
	flush(k, "stop", true);
	rd_kafka_resp_err_t err = rd_kafka_consumer_close(k->rk);
	if (err)
		kafka_error(k, "close", rd_kafka_err2str(err));
	serve_commit_results(k);
	for (uint32_t i = 0; i < k->n_parts; i++) {
		struct kafka_part *p = k->parts[i];
		log_info("kafka_stopped", "topic=%s partition=%d committed=%lld logged=%lld logged_events=%u", p->topic,
			 (int)p->partition, (long long)p->commit_ok, (long long)p->have_off, p->have_events);
	}
	return NULL;
}

/* ------------------------------------------------------------ start, stop */

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err, size_t errlen)
{
	char e[256];
	if (rd_kafka_conf_set(conf, key, value, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
		for (char *q = e; *q; q++)
			if (*q == '"')
				*q = '\'';   /* it goes into a quoted log value */
		snprintf(err, errlen, "kafka: %s: %s", key, e);
		return -EINVAL;
	}
	return 0;
}

/* kafka_options "key=value;key=value" (shape checked by cfg_validate). */
static int conf_options(rd_kafka_conf_t *conf, const char *opts, char *err, size_t errlen)
{
	char item[sizeof(((struct recd_config *)0)->kafka_options)];
	for (const char *p = opts; *p;) {
		size_t len = strcspn(p, ";");
		memcpy(item, p, len);
		item[len] = 0;
		p += len + (p[len] == ';');
		char *eq = strchr(item, '=');
		if (!eq)
			continue;   /* blank */
		*eq = 0;
		char *key = item, *val = eq + 1;
		while (*key == ' ')
			key++;
		for (char *e = eq; e > key && e[-1] == ' ';)
			*--e = 0;
		while (*val == ' ')
			val++;
		for (char *e = val + strlen(val); e > val && e[-1] == ' ';)
			*--e = 0;
		int r = conf_set(conf, key, val, err, errlen);
		if (r)
			return r;
	}
	return 0;
}

static void kafka_free(struct kafka *k)
{
	if (k->commit_q)
		rd_kafka_queue_destroy(k->commit_q);
	if (k->rk)
		rd_kafka_destroy(k->rk);
	for (uint32_t i = 0; i < k->n_parts; i++)
		free(k->parts[i]);
	free(k->parts);
	free(k->toks);
	free(k->evs);
	free(k);
}

int kafka_start(struct kafka **out, struct recd_server *srv, struct updater *u, uint32_t ring, char *err,
		size_t errlen)
{
	const struct recd_config *cfg = &srv->cfg;
	*out = NULL;
	struct kafka *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->srv = srv;
	k->u = u;
	k->ring = ring;
	k->commit_ns = (uint64_t)cfg->kafka_commit_ms * 1000000ull;
	k->max_events = (uint32_t)cfg->max_events_per_request;
	k->n_toks = API_MAX_JSON_TOKENS + k->max_events * API_TOKENS_PER_EVENT;
	k->toks = calloc(k->n_toks, sizeof(*k->toks));
	k->evs = calloc(k->max_events, sizeof(*k->evs));
	if (!k->toks || !k->evs) {
		kafka_free(k);
		return -ENOMEM;
	}

	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	int r = 0;
	if ((r = conf_set(conf, "client.id", "recd", err, errlen)) ||
	    (r = conf_set(conf, "bootstrap.servers", cfg->kafka_brokers, err, errlen)) ||
	    (r = conf_set(conf, "group.id", cfg->kafka_group, err, errlen)) ||
	    (r = conf_set(conf, "enable.auto.commit", "false", err, errlen)) ||
	    (r = conf_set(conf, "enable.auto.offset.store", "false", err, errlen)) ||
	    (r = conf_set(conf, "enable.partition.eof", "false", err, errlen)) ||
	    (r = conf_set(conf, "auto.offset.reset", cfg->kafka_start, err, errlen)) ||
	    (r = conf_options(conf, cfg->kafka_options, err, errlen))) {
		rd_kafka_conf_destroy(conf);
		kafka_free(k);
		return r;
	}
	rd_kafka_conf_set_opaque(conf, k);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	char e[512];
	k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
	if (!k->rk) {
		snprintf(err, errlen, "kafka: %s", e);
		rd_kafka_conf_destroy(conf);
		kafka_free(k);
		return -EINVAL;
	}
	rd_kafka_poll_set_consumer(k->rk);
	k->commit_q = rd_kafka_queue_new(k->rk);

	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(4);
	char name[sizeof(cfg->kafka_topics)];
	for (const char *p = cfg->kafka_topics; *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t len = strcspn(p, ", ");
		if (!len)
			break;
		memcpy(name, p, len);
		name[len] = 0;
		rd_kafka_topic_partition_list_add(topics, name, RD_KAFKA_PARTITION_UA);
		p += len;
	}
	rd_kafka_resp_err_t se = rd_kafka_subscribe(k->rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (se) {
		snprintf(err, errlen, "kafka: subscribe %s: %s", cfg->kafka_topics, rd_kafka_err2str(se));
		kafka_free(k);
		return -EINVAL;
	}
	if (!u->log)
		log_warn("kafka_without_event_log",
			 "detail=\"event_log = false: live state starts empty at every start and the group resumes at "
			 "its committed offset; redelivered messages cannot be recognised\"");
	r = pthread_create(&k->thread, NULL, kafka_main, k);
	if (r) {
		snprintf(err, errlen, "kafka: thread: %s", strerror(r));
		kafka_free(k);
		return -r;
	}
	pthread_setname_np(k->thread, "recd-kafka");
	k->started = true;
	char q[1100];
	log_info("kafka_started", "brokers=%s topics=%s group=%s start=%s ring=%u positions_logged=%u librdkafka=%s",
		 log_quote(q, sizeof(q), cfg->kafka_brokers), cfg->kafka_topics, cfg->kafka_group, cfg->kafka_start,
		 ring, u->n_sources, rd_kafka_version_str());
	*out = k;
	return 0;
}

void kafka_stop(struct kafka *k)
{
	if (!k)
		return;
	if (k->started) {
		ck_pr_store_int(&k->stop, 1);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += KAFKA_JOIN_WAIT_S;
		if (pthread_timedjoin_np(k->thread, NULL, &ts)) {
			log_warn("kafka_stop_slow", "seconds=%d ring_done=%d", KAFKA_JOIN_WAIT_S,
				 ck_pr_load_int(&k->ring_done));
			/* Leaving the group takes long (brokers gone): once the
			 * thread no longer touches the updater, leave it and its
			 * handle to the exit. Before that, upd_stop must wait. */
			if (ck_pr_load_int(&k->ring_done))
				return;
			pthread_join(k->thread, NULL);
		}
	}
	kafka_free(k);
}
