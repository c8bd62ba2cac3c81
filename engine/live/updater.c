/* updater.c: the updater thread (see updater.h for the protocol). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "core/log.h"
#include "live/updater.h"

#define UPD_BATCH 1024          /* events per ring per pass: keeps rings fair */
#define UPD_IDLE_POLL_MS 100    /* periodic work while idle */

const uint64_t upd_wake_value = 1;

static uint32_t drain(struct updater *u)
{
	uint32_t total = 0;
	struct event ev;
	ck_epoch_begin(&u->rec, NULL);
	const struct snap *s = srv_snapshot(u->srv);
	for (uint32_t i = 0; i < u->n_rings; i++) {
		struct upd_ring *r = &u->rings[i];
		uint32_t n = 0;
		while (n < UPD_BATCH && ck_ring_dequeue_spsc_event(&r->ring, r->buf, &ev)) {
			if (live_apply(&u->live, &ev, s)) {
				ck_pr_store_64(&u->stats.apply_failed, u->stats.apply_failed + 1);
				log_warn("event_apply_failed", "type=%s err=\"out of memory\"",
					 event_type_names[ev.type]);
			} else {
				ck_pr_store_64(&u->stats.applied[ev.type], u->stats.applied[ev.type] + 1);
				float w = trend_event_weight(&u->trend, ev.type);
				if (w > 0 && (ev.flags & EVENT_HAS_ITEM))
					trend_add(&u->trend, ev.item_key, w, ev.ts_ms);
			}
			n++;
		}
		if (n) {
			ck_pr_store_64(&r->applied, r->applied + n);
			/* Store-fence-load against the worker's waiting flag, as for
			 * the updater's own wake-up, so no held answer is forgotten. */
			ck_pr_fence_memory();
			if (ck_pr_load_int(&r->waiting) && r->wake_fd >= 0) {
				uint64_t one = 1;
				if (write(r->wake_fd, &one, sizeof(one)) < 0)
					log_warn("worker_wake_failed", "ring=%u err=\"%s\"", i, strerror(errno));
			}
		}
		total += n;
	}
	ck_epoch_end(&u->rec, NULL);
	return total;
}

static bool rings_empty(struct updater *u)
{
	for (uint32_t i = 0; i < u->n_rings; i++)
		if (ck_ring_size(&u->rings[i].ring))
			return false;
	return true;
}

static void *upd_main(void *arg)
{
	struct updater *u = arg;
	uint64_t last_evict = now_ns();
	while (!ck_pr_load_int(&u->stop)) {
		uint32_t n = drain(u);
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
		ck_pr_store_int(&u->sleeping, 1);
		ck_pr_fence_memory();
		if (!rings_empty(u) || ck_pr_load_int(&u->stop)) {
			ck_pr_store_int(&u->sleeping, 0);
			continue;
		}
		struct pollfd pfd = { u->wake_fd, POLLIN, 0 };
		if (poll(&pfd, 1, UPD_IDLE_POLL_MS) > 0) {
			uint64_t v;
			if (read(u->wake_fd, &v, sizeof(v)) == sizeof(v))
				ck_pr_store_64(&u->stats.wakeups, u->stats.wakeups + 1);
		}
		ck_pr_store_int(&u->sleeping, 0);
	}
	drain(u);
	return NULL;
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
	u->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->wake_fd < 0) {
		r = -errno;
		goto fail;
	}
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
