/* updater.c: the updater thread (see updater.h for the protocol). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "core/log.h"
#include "live/checkpoint.h"
#include "live/updater.h"
#include "exp/exp_ledger.h"

#define UPD_BATCH 1024          /* events per ring per pass: keeps rings fair */
#define UPD_IDLE_POLL_MS 100    /* periodic work while idle */
#define UPD_STAGE 4096          /* events logged and applied together (group commit) */
#define UPD_LOG_RETRY_MS 1000   /* a failing event log is retried this often */

const uint64_t upd_wake_value = 1;

static int source_note(struct updater *u, const struct event *ev);

/* One event into live state (and trending). */
static void apply_one(struct updater *u, const struct event *ev, const struct snap *s, bool replay)
{
	if (ev->type == EVENT_SOURCE_MARK) {   /* a position, not a change (updater.h) */
		if (!replay)
			ck_pr_store_64(&u->stats.applied[ev->type], u->stats.applied[ev->type] + 1);
		return;
	}
	if (live_apply(&u->live, ev, s)) {
		ck_pr_store_64(&u->stats.apply_failed, u->stats.apply_failed + 1);
		log_warn("event_apply_failed", "type=%s err=\"out of memory\"%s", event_type_names[ev->type],
			 replay ? " during=replay" : "");
		return;
	}
	if (!replay)
		ck_pr_store_64(&u->stats.applied[ev->type], u->stats.applied[ev->type] + 1);
	float w = trend_event_weight(&u->trend, ev->type);
	if (w > 0 && (ev->flags & EVENT_HAS_ITEM))
		trend_add(&u->trend, ev->item_key, w, ev->ts_ms);
	/* Background candidates (refresh.h). Not during replay: no list
	 * exists yet, and the users who come back get theirs then. */
	if (!replay && (ev->flags & EVENT_HAS_USER)) {
		if (ev->type == EVENT_FORGET_USER || (ev->flags & EVENT_NO_PERSONALIZE))
			refresh_forget(&u->refresh, ev->user_key);
		else if (refresh_event_wanted(ev->type))
			refresh_request(&u->refresh, ev->user_key);
	}
	/* Clicks, carts and purchases to the experiment ledger (attribution);
	 * replayed ones were attributed by the process that served them. */
	struct exp_ledger *lg = ck_pr_load_ptr(&u->ledger);
	if (!replay && lg)
		exp_ledger_outcome(lg, ev);
}

/* What is applied (and durable) may be acknowledged: advance `applied`
 * and wake the workers holding answers for it. */
static void publish(struct updater *u)
{
	for (uint32_t i = 0; i < u->n_rings; i++) {
		struct upd_ring *r = &u->rings[i];
		if (r->taken == r->applied)
			continue;
		ck_pr_store_64(&r->applied, r->taken);
		/* Store-fence-load against the worker's waiting flag, as for
		 * the updater's own wake-up, so no held answer is forgotten. */
		ck_pr_fence_memory();
		if (ck_pr_load_int(&r->waiting) && r->wake_fd >= 0) {
			uint64_t one = 1;
			if (write(r->wake_fd, &one, sizeof(one)) < 0)
				log_warn("worker_wake_failed", "ring=%u err=\"%s\"", i, strerror(errno));
		}
	}
}

/* The log refused something: under batch/always stop taking events and
 * retry later; log it on the first failure and then every 10 s. */
static void log_trouble(struct updater *u, const char *what, int err)
{
	uint64_t now = now_ns();
	ck_pr_store_64(&u->stats.log_errors, u->stats.log_errors + 1);
	bool hold = u->durability != EVLOG_NONE;
	if (hold) {
		u->log_retry_ns = now + UPD_LOG_RETRY_MS * 1000000ull;
		if (!u->log_failed)
			u->log_complained_ns = 0;
		u->log_failed = true;
	}
	if (!u->log_complained_ns || now - u->log_complained_ns > 10000000000ull) {
		log_error("event_log_failed", "dir=%s op=%s err=\"%s\" detail=\"%s\"", u->log->dir, what,
			  strerror(-err),
			  hold ? "events are not acknowledged until the log works again"
			       : "durability=none: events are applied but not logged");
		u->log_complained_ns = now;
	}
}

/* Under batch the fdatasync waits for its interval; 1 = not yet. */
static int log_flush(struct updater *u, bool force)
{
	if (u->durability == EVLOG_NONE)
		return evlog_write(u->log);
	uint64_t now = now_ns();
	if (u->durability == EVLOG_BATCH && !force && now - u->last_sync_ns < u->sync_interval_ns)
		return 1;
	int r = evlog_sync(u->log);
	if (!r)
		u->last_sync_ns = now;
	return r;
}

/* Group commit of the staged events: one append to the log, the sync the
 * policy asks for, then apply, then publish. The write and the fdatasync
 * run outside any epoch section: a slow disk must not hold back the
 * reclamation of snapshots and live records. */
static void commit(struct updater *u)
{
	int r = 0;
	if (u->log && u->n_stage) {
		r = evlog_append(u->log, u->stage, u->n_stage);
		if (r) {
			log_trouble(u, "append", r);
			if (u->durability != EVLOG_NONE)
				return;   /* kept staged, not applied: the retry appends them */
		}
	}
	if (u->log && !r) {
		r = log_flush(u, false);
		if (r < 0) {
			log_trouble(u, u->durability == EVLOG_NONE ? "write" : "sync", r);
		} else if (u->log_failed) {
			u->log_failed = false;
			log_info("event_log_recovered", "dir=%s", u->log->dir);
		}
	}
	/* Applied even when the sync failed: the log still holds them in
	 * memory and rewrites them; only the acknowledgement waits. */
	ck_epoch_begin(&u->rec, NULL);
	const struct snap *s = srv_snapshot(u->srv);
	for (uint32_t i = 0; i < u->n_stage; i++) {
		const struct event *ev = &u->stage[i];
		apply_one(u, ev, s, false);
		if (ev->type == EVENT_SOURCE_MARK || (ev->flags & EVENT_FROM_SOURCE))
			if (source_note(u, ev))
				log_warn("source_track_failed", "err=\"out of memory\" detail=\"the next checkpoint "
					 "may resume Kafka from an older offset\"");
		u->rings[ev->seq >> 48].taken++;
	}
	ck_epoch_end(&u->rec, NULL);
	u->n_stage = 0;
	if (!u->log || u->durability == EVLOG_NONE || r == 0)
		publish(u);
}

/* A failed log is retried once its time has come: the staged events
 * (append failed) or everything unsynced (write/sync failed). */
static void log_retry(struct updater *u)
{
	if (u->n_stage) {
		commit(u);
		return;
	}
	int r = log_flush(u, true);
	if (r) {
		log_trouble(u, "sync", r);
		return;
	}
	u->log_failed = false;
	log_info("event_log_recovered", "dir=%s", u->log->dir);
	publish(u);
}

static uint32_t drain(struct updater *u)
{
	uint32_t total = 0;
	if (u->log_failed && now_ns() >= u->log_retry_ns)
		log_retry(u);
	for (uint32_t i = 0; i < u->n_rings && !u->log_failed; i++) {
		struct upd_ring *r = &u->rings[i];
		if (u->n_stage + UPD_BATCH > UPD_STAGE) {
			commit(u);
			if (u->log_failed)
				break;
		}
		uint32_t n = 0;
		while (n < UPD_BATCH && ck_ring_dequeue_spsc_event(&r->ring, r->buf, &u->stage[u->n_stage])) {
			u->n_stage++;
			n++;
		}
		total += n;
	}
	if (u->n_stage && !u->log_failed)
		commit(u);
	return total;
}

/* batch: sync what the interval held back once it is due. */
static void log_tick(struct updater *u)
{
	if (!u->log || u->log_failed || u->durability != EVLOG_BATCH || !evlog_pending(u->log))
		return;
	int r = log_flush(u, false);
	if (r < 0)
		log_trouble(u, "sync", r);
	else if (r == 0)
		publish(u);
}

/* How long the updater may sleep: until the next due sync or retry. */
static uint64_t idle_ns(struct updater *u)
{
	uint64_t t = UPD_IDLE_POLL_MS * 1000000ull, now = now_ns(), due;
	if (!u->log)
		return t;
	if (u->log_failed)
		due = u->log_retry_ns;
	else if (u->durability == EVLOG_BATCH && evlog_pending(u->log))
		due = u->last_sync_ns + u->sync_interval_ns;
	else
		return t;
	return due <= now ? 0 : MIN(t, due - now);
}

static bool rings_empty(struct updater *u)
{
	for (uint32_t i = 0; i < u->n_rings; i++)
		if (ck_ring_size(&u->rings[i].ring))
			return false;
	return true;
}

/* ---- checkpoints (checkpoint.h) ---- */

/* Sync and rotate the log, write live state at the log's position, then
 * keep the CKPT_KEEP newest checkpoints and delete the segments below the
 * oldest kept. Updater thread only, between batches. */
static int checkpoint(struct updater *u, const char *why)
{
	uint64_t t0 = now_ns();
	u->ckpt_last_ns = t0;   /* a failure is retried after the next interval, not in a loop */
	u->ckpt_last_bytes = u->log->stats.bytes;
	if (u->log_failed)
		return -EAGAIN;
	if (u->n_stage)
		commit(u);
	int r = evlog_rotate(u->log);
	if (r) {
		log_trouble(u, "rotate", r);
		return r;
	}
	publish(u);   /* everything is durable now */
	uint64_t pos = evlog_position(u->log);
	if (pos == u->ckpt_last_pos)
		return 0;   /* nothing new since the newest checkpoint */
	struct ckpt_stats st;
	/* No epoch section: this thread is the only one that retires or frees
	 * live records, and it does neither while writing; a section held for
	 * the whole write would only delay snapshot swaps. */
	r = ckpt_write(u->log->dir_fd, pos, &u->live, u->track, u->track_cap, u->track_cur, &st);
	if (r) {
		ck_pr_store_64(&u->stats.checkpoint_errors, u->stats.checkpoint_errors + 1);
		log_error("checkpoint_failed", "dir=%s position=%llu err=\"%s\" detail=\"the log is kept whole; "
			  "retried after checkpoint_interval_s\"", u->log->dir, (unsigned long long)pos, strerror(-r));
		return r;
	}
	u->ckpt_last_pos = pos;
	/* Retention: the log must reach back to the oldest kept checkpoint. */
	uint64_t *v = NULL, keep = pos, segs = 0, bytes = 0, disk = 0;
	size_t n = 0;
	int e = ckpt_list(u->log->dir_fd, &v, &n);
	if (!e && n >= CKPT_KEEP)
		keep = v[n - CKPT_KEEP];
	free(v);
	if (!e)
		e = ckpt_prune(u->log->dir_fd, keep);
	if (!e)
		e = evlog_trim_before(u->log, keep, &segs, &bytes);
	if (e)
		log_warn("checkpoint_trim_failed", "dir=%s err=\"%s\"", u->log->dir, strerror(-e));
	if (!evlog_disk_bytes(u->log, &disk))
		ck_pr_store_64(&u->stats.log_disk_bytes, disk);
	uint64_t ms = (now_ns() - t0) / 1000000;
	ck_pr_store_64(&u->stats.checkpoint_ms, ms);
	ck_pr_store_64(&u->stats.checkpoint_wall_ms, now_wall_ms());
	ck_pr_store_64(&u->stats.checkpoints, u->stats.checkpoints + 1);
	log_info("checkpoint", "file=%s position=%llu users=%llu items=%llu sources=%llu bytes=%llu ms=%llu "
		 "write_ms=%llu trimmed_segments=%llu trimmed_bytes=%llu log_bytes=%llu reason=%s",
		 st.name, (unsigned long long)pos, (unsigned long long)st.users, (unsigned long long)st.items,
		 (unsigned long long)st.sources, (unsigned long long)st.bytes, (unsigned long long)ms,
		 (unsigned long long)st.ms, (unsigned long long)segs, (unsigned long long)bytes,
		 (unsigned long long)disk, why);
	return 0;
}

/* Between batches: is a checkpoint due? */
static void checkpoint_tick(struct updater *u)
{
	if (!u->log || u->log_failed)
		return;
	const char *why = NULL;
	if (ck_pr_load_int(&u->ckpt_request)) {
		ck_pr_store_int(&u->ckpt_request, 0);
		why = "request";
	} else if (u->ckpt_log_bytes && u->log->stats.bytes - u->ckpt_last_bytes >= u->ckpt_log_bytes) {
		why = "log_bytes";
	} else if (u->ckpt_interval_ns && now_ns() - u->ckpt_last_ns >= u->ckpt_interval_ns &&
		   evlog_position(u->log) != u->ckpt_last_pos) {
		why = "interval";
	}
	if (why)
		checkpoint(u, why);
}

int upd_checkpoint_request(struct updater *u)
{
	if (!u->log || !u->started)
		return -ENOTSUP;
	ck_pr_store_int(&u->ckpt_request, 1);
	ck_pr_fence_memory();
	uint64_t one = 1;
	if (write(u->wake_fd, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

static void *upd_main(void *arg)
{
	struct updater *u = arg;
	uint64_t last_evict = now_ns();
	while (!ck_pr_load_int(&u->stop)) {
		uint32_t n = drain(u);
		log_tick(u);
		checkpoint_tick(u);
		ck_epoch_poll(&u->rec);
		/* At most one rebuild a second; the idle poll keeps ticks coming. */
		ck_epoch_begin(&u->rec, NULL);
		trend_tick(&u->trend, srv_snapshot(u->srv), now_wall_ms());
		ck_epoch_end(&u->rec, NULL);
		if (now_ns() - last_evict > 10000000000ull) {
			uint64_t ev = live_evict(&u->live, now_wall_ms(), u->idle_evict_ms);
			if (ev)
				log_info("users_evicted", "count=%llu users=%llu", (unsigned long long)ev,
					 (unsigned long long)u->live.stats.users);
			last_evict = now_ns();
		}
		if (n)
			continue;
		uint64_t sleep_ns = idle_ns(u);
		if (!sleep_ns)
			continue;
		ck_pr_store_int(&u->sleeping, 1);
		ck_pr_fence_memory();
		/* A failed log leaves events in the rings on purpose. */
		if ((!u->log_failed && !rings_empty(u)) || ck_pr_load_int(&u->stop)) {
			ck_pr_store_int(&u->sleeping, 0);
			continue;
		}
		struct pollfd pfd = { u->wake_fd, POLLIN, 0 };
		struct timespec ts = { (time_t)(sleep_ns / 1000000000ull), (long)(sleep_ns % 1000000000ull) };
		if (ppoll(&pfd, 1, &ts, NULL) > 0) {
			uint64_t v;
			if (read(u->wake_fd, &v, sizeof(v)) == sizeof(v))
				ck_pr_store_64(&u->stats.wakeups, u->stats.wakeups + 1);
		}
		ck_pr_store_int(&u->sleeping, 0);
	}
	/* Workers are gone: take the rest, and leave nothing unsynced. */
	u->log_retry_ns = 0;
	drain(u);
	if (u->log && !u->log_failed && evlog_pending(u->log)) {
		int r = log_flush(u, true);
		if (r)
			log_trouble(u, "sync", r);
		else
			publish(u);
	}
	/* A clean stop leaves a checkpoint: the next start replays nothing. */
	if (u->log && !u->log_failed && (u->ckpt_interval_ns || u->ckpt_log_bytes) &&
	    evlog_position(u->log) != u->ckpt_last_pos)
		checkpoint(u, "shutdown");
	return NULL;
}

/* ---- source positions (updater.h) ---- */

static uint64_t source_hash(uint64_t stream_key, uint32_t part)
{
	uint64_t h = (stream_key ^ part) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

/* The slot of (stream, part), or the free slot where it would go. */
static struct upd_source_pos *source_slot(struct upd_source_pos *tab, uint32_t cap, uint64_t key, uint32_t part,
					  const char *stream, size_t len)
{
	for (uint64_t i = source_hash(key, part);; i++) {
		struct upd_source_pos *p = &tab[i & (cap - 1)];
		if (!p->stream_key || (p->stream_key == key && p->part == part && !strncmp(p->stream, stream, len) &&
				       !p->stream[len]))
			return p;
	}
}

const struct upd_source_pos *upd_source_find(const struct updater *u, const char *stream, size_t len,
					     uint32_t part)
{
	if (!u->n_sources)
		return NULL;
	if (len >= EVENT_ID_MAX)
		return NULL;
	uint64_t key = event_key(stream, len);
	const struct upd_source_pos *p = source_slot(u->sources, u->sources_cap, key ? key : 1, part, stream, len);
	return p->stream_key ? p : NULL;
}

/* One source position table: `sources` (the replay's, read by the Kafka
 * thread after upd_start) or `track` (the updater's, for checkpoints). */
struct src_tab {
	struct upd_source_pos **tab;
	uint32_t *cap, *n;
	struct upd_source_pos **cur;
};
#define SRC_MAIN(u) ((struct src_tab){ &(u)->sources, &(u)->sources_cap, &(u)->n_sources, &(u)->source_cur })
#define SRC_TRACK(u) ((struct src_tab){ &(u)->track, &(u)->track_cap, &(u)->n_track, &(u)->track_cur })

/* The slot of (stream, part), created (offset -1) when missing. NULL: no memory. */
static struct upd_source_pos *source_get(struct src_tab t, uint64_t key, uint32_t part, const char *stream,
					 size_t len)
{
	if ((*t.n + 1) * 2 > *t.cap) {
		uint32_t cap = *t.cap ? *t.cap * 2 : 64;
		struct upd_source_pos *tab = calloc(cap, sizeof(*tab));
		if (!tab)
			return NULL;
		struct upd_source_pos *cur = NULL;
		for (uint32_t i = 0; i < *t.cap; i++) {
			struct upd_source_pos *o = &(*t.tab)[i];
			if (!o->stream_key)
				continue;
			struct upd_source_pos *n = source_slot(tab, cap, o->stream_key, o->part, o->stream,
							       strlen(o->stream));
			*n = *o;
			if (o == *t.cur)
				cur = n;
		}
		*t.cur = cur;
		free(*t.tab);
		*t.tab = tab;
		*t.cap = cap;
	}
	struct upd_source_pos *p = source_slot(*t.tab, *t.cap, key, part, stream, len);
	if (!p->stream_key) {
		p->stream_key = key;
		p->part = part;
		memcpy(p->stream, stream, len);
		p->stream[len] = 0;
		p->offset = -1;
		(*t.n)++;
	}
	return p;
}

/* One record as far as source positions go. A mark for the message the
 * current position is at continues it (the rest of a message of which
 * only the first events were logged before a crash). */
static int source_note_tab(struct src_tab t, const struct event *ev)
{
	if (ev->type != EVENT_SOURCE_MARK) {
		if ((ev->flags & EVENT_FROM_SOURCE) && *t.cur)
			(*t.cur)->events++;
		return 0;
	}
	uint64_t key = ev->item_key ? ev->item_key : 1;   /* 0 marks a free slot */
	struct upd_source_pos *p = source_get(t, key, ev->source_part, ev->item_id, ev->item_len);
	if (!p)
		return -ENOMEM;
	if (p->offset != ev->stock) {
		p->offset = ev->stock;
		p->events = 0;
	}
	*t.cur = p;
	return 0;
}

static int source_replay(struct updater *u, const struct event *ev)
{
	return source_note_tab(SRC_MAIN(u), ev);
}

/* A committed event into the updater's own positions (checkpoints). */
static int source_note(struct updater *u, const struct event *ev)
{
	return source_note_tab(SRC_TRACK(u), ev);
}

/* A position from a checkpoint into `sources` (ckpt_source_fn). */
static int source_restore(void *ctx, const struct upd_source_pos *s, bool cur)
{
	struct updater *u = ctx;
	struct upd_source_pos *p = source_get(SRC_MAIN(u), s->stream_key, s->part, s->stream, strlen(s->stream));
	if (!p)
		return -ENOMEM;
	p->offset = s->offset;
	p->events = s->events;
	if (cur)
		u->source_cur = p;
	return 0;
}

/* After the replay: the updater's own copy starts equal to `sources`. */
static int track_init(struct updater *u)
{
	for (uint32_t i = 0; i < u->sources_cap; i++) {
		const struct upd_source_pos *o = &u->sources[i];
		if (!o->stream_key)
			continue;
		struct upd_source_pos *p = source_get(SRC_TRACK(u), o->stream_key, o->part, o->stream,
						      strlen(o->stream));
		if (!p)
			return -ENOMEM;
		p->offset = o->offset;
		p->events = o->events;
		if (o == u->source_cur)
			u->track_cur = p;
	}
	return 0;
}

static int replay_one(void *ctx, const struct event *ev)
{
	struct updater *u = ctx;
	int r = source_replay(u, ev);
	if (r)
		return r;
	/* No snapshot swap can happen yet: ctl_run has not started. */
	apply_one(u, ev, srv_snapshot(u->srv), true);
	/* Nobody reads yet: let the retired record copies go as we go. */
	if (++u->stats.recovered % 4096 == 0)
		ck_epoch_poll(&u->rec);
	return 0;
}

/* The newest checkpoint of `dir` that reads back good, into live state
 * and `sources`. A bad one is logged and the next older one tried; with
 * none, *have stays false and the whole log is replayed. Never fails the
 * start: the log is still there. */
static void load_checkpoint(struct updater *u, const char *dir, struct ckpt_stats *cs, bool *have)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;   /* a new directory: evlog_open creates it */
	uint64_t *v = NULL;
	size_t n = 0;
	int e = ckpt_list(dfd, &v, &n);
	if (e)
		log_error("checkpoint_bad", "dir=%s err=\"%s\" detail=\"cannot list checkpoints: the whole log is "
			  "replayed\"", dir, strerror(-e));
	for (size_t i = n; i-- > 0;) {
		e = ckpt_load(dfd, v[i], &u->live, source_restore, u, cs);
		if (!e) {
			*have = true;
			break;
		}
		log_error("checkpoint_bad", "dir=%s file=%s err=\"%s\" detail=\"%s\"", dir, cs->name, strerror(-e),
			  i ? "the previous checkpoint is used" : "the whole log (what is left of it) is replayed");
		/* start over from nothing: part of it may be loaded */
		live_clear(&u->live);
		free(u->sources);
		u->sources = NULL;
		u->source_cur = NULL;
		u->sources_cap = u->n_sources = 0;
		ck_epoch_poll(&u->rec);
	}
	free(v);
	close(dfd);
}

/* Open the event log of srv->cfg and replay it into live state. Runs
 * before the updater thread exists, on the thread that will start it. */
static int open_log(struct updater *u)
{
	const struct recd_config *cfg = &u->srv->cfg;
	if (!cfg->event_log) {
		log_info("event_log_off", "durability=none detail=\"%s: live state starts empty at every start\"",
			 cfg->demo && !cfg->event_log_dir[0] ? "demo without event_log_dir" : "event_log = false");
		return 0;
	}
	char dir[PATH_MAX];
	int n = cfg->event_log_dir[0] ? snprintf(dir, sizeof(dir), "%s", cfg->event_log_dir)
				      : snprintf(dir, sizeof(dir), "%s/events", cfg->state_dir);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return -ENAMETOOLONG;
	int d = evlog_durability_parse(cfg->durability);
	if (d < 0)
		return d;   /* cfg_set refuses other values; here for direct callers */
	u->durability = d;
	u->sync_interval_ns = (uint64_t)cfg->durability_batch_ms * 1000000ull;
	u->log = calloc(1, sizeof(*u->log));
	if (!u->log)
		return -ENOMEM;
	u->ckpt_interval_ns = (uint64_t)cfg->checkpoint_interval_s * 1000000000ull;
	u->ckpt_log_bytes = (uint64_t)cfg->checkpoint_log_bytes;
	u->ckpt_last_pos = UINT64_MAX;
	uint64_t t0 = now_ns();
	struct ckpt_stats cs;
	memset(&cs, 0, sizeof(cs));
	bool have_ckpt = false;
	load_checkpoint(u, dir, &cs, &have_ckpt);
	struct evlog_opts o = { .retain = d != EVLOG_NONE, .replay_from = have_ckpt ? cs.position : 0 };
	struct evlog_recovery rec;
	int r = evlog_open(u->log, dir, &o, replay_one, u, &rec);
	if (r) {
		log_error("event_log_failed", "dir=%s op=open err=\"%s\" detail=\"%s\"", dir, strerror(-r),
			  r == -EBUSY ? "another process uses this event log"
				      : "set state_dir or event_log_dir to a writable directory (its parent must "
					"exist), or event_log = false");
		free(u->log);
		u->log = NULL;
		return r;
	}
	ck_epoch_poll(&u->rec);
	if ((r = track_init(u)))
		return r;
	u->ckpt_last_ns = now_ns();
	if (have_ckpt) {
		u->ckpt_last_pos = cs.position;
		ck_pr_store_64(&u->stats.checkpoint_wall_ms, cs.created_ms);
	}
	uint64_t disk = 0;
	if (!evlog_disk_bytes(u->log, &disk))
		ck_pr_store_64(&u->stats.log_disk_bytes, disk);
	uint64_t ms = (now_ns() - t0) / 1000000;
	ck_pr_store_64(&u->stats.recovery_ms, ms);
	log_info("recovered", "events=%llu ms=%llu checkpoint=%s users=%llu items=%llu sources=%llu checkpoint_ms=%llu "
		 "replay_ms=%llu segments=%llu bytes=%llu cut_bytes=%llu unreplayed_bytes=%llu "
		 "dir=%s durability=%s%s",
		 (unsigned long long)rec.events, (unsigned long long)ms, have_ckpt ? cs.name : "none",
		 (unsigned long long)u->live.stats.users, (unsigned long long)u->live.stats.items,
		 (unsigned long long)u->n_sources, (unsigned long long)cs.ms,
		 (unsigned long long)rec.ms, (unsigned long long)rec.segments,
		 (unsigned long long)rec.bytes, (unsigned long long)rec.cut_bytes,
		 (unsigned long long)rec.unreplayed_bytes, dir, evlog_durability_names[d],
		 rec.stopped ? " incomplete=true" : "");
	return 0;
}

int upd_start(struct updater *u, struct recd_server *srv, uint32_t n_rings, uint32_t ring_size,
	      uint32_t dim, uint64_t max_users, uint64_t idle_evict_ms)
{
	memset(u, 0, sizeof(*u));
	u->srv = srv;
	u->n_rings = n_rings;
	u->ring_size = ring_size;
	u->idle_evict_ms = idle_evict_ms;
	u->wake_fd = -1;
	ck_epoch_register(&srv->epoch, &u->rec, NULL);
	int r = live_init(&u->live, dim, max_users, &u->rec);
	if (r)
		return r;
	if ((r = trend_init(&u->trend, &u->rec, 0, 0)))
		goto fail;
	/* Its thread reads live state and the snapshot; stopped in upd_stop. */
	if ((r = refresh_start(&u->refresh, srv, &u->live, NULL)))
		goto fail;
	u->rings = aligned_alloc(CACHELINE, sizeof(*u->rings) * n_rings);
	if (!u->rings)
		goto nomem;
	memset(u->rings, 0, sizeof(*u->rings) * n_rings);
	for (uint32_t i = 0; i < n_rings; i++) {
		u->rings[i].buf = calloc(ring_size, sizeof(struct event));
		if (!u->rings[i].buf)
			goto nomem;
		ck_ring_init(&u->rings[i].ring, ring_size);
		u->rings[i].wake_fd = -1;
	}
	u->stage = calloc(UPD_STAGE, sizeof(*u->stage));
	if (!u->stage)
		goto nomem;
	u->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->wake_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = open_log(u);
	if (r)
		goto fail;
	r = pthread_create(&u->thread, NULL, upd_main, u);
	if (r) {
		r = -r;
		goto fail;
	}
	pthread_setname_np(u->thread, "recd-updater");
	u->started = true;
	return 0;
nomem:
	r = -ENOMEM;
fail:
	upd_stop(u);
	return r;
}

void upd_stop(struct updater *u)
{
	if (u->started) {
		ck_pr_store_int(&u->stop, 1);
		uint64_t one = 1;
		if (write(u->wake_fd, &one, sizeof(one)) < 0)
			log_warn("updater_wake_failed", "err=\"%s\"", strerror(errno));
		pthread_join(u->thread, NULL);
		u->started = false;
	}
	/* The producer is gone: stop the refresh thread, which reads live
	 * state, before live_destroy, and run its retired frees. */
	refresh_stop(&u->refresh);
	if (u->log) {
		evlog_close(u->log);
		free(u->log);
		u->log = NULL;
	}
	free(u->stage);
	u->stage = NULL;
	free(u->sources);
	u->sources = NULL;
	u->source_cur = NULL;
	u->sources_cap = u->n_sources = 0;
	free(u->track);
	u->track = NULL;
	u->track_cur = NULL;
	u->track_cap = u->n_track = 0;
	if (u->rings)
		for (uint32_t i = 0; i < u->n_rings; i++)
			free(u->rings[i].buf);
	free(u->rings);
	u->rings = NULL;
	live_destroy(&u->live);
	trend_destroy(&u->trend);
	/* Everything retired is unreachable now that readers are gone. */
	if (u->rec.global) {
		ck_epoch_barrier(&u->rec);
		ck_epoch_unregister(&u->rec);
	}
	if (u->wake_fd >= 0)
		close(u->wake_fd);
	u->wake_fd = -1;
}
