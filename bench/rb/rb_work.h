/* rb_work.h: the workload: which request comes next. Built from the same
 * recd-gen files the server's snapshot was built from (users.txt,
 * items.jsonl): Zipf-popular known users and items, a share of anonymous
 * and brand-new users, recommendations by placement, and optionally
 * events (single JSON and NDJSON batches). Deterministic per (seed, stream).
 */
#ifndef RB_WORK_H
#define RB_WORK_H

#include <stdbool.h>
#include <stddef.h>
#include "rb_rng.h"
#include "rb_zipf.h"

enum rb_kind {
	RB_REC = 0,   /* GET /v1/recommendations */
	RB_EVENT,     /* POST /v1/events, one JSON event */
	RB_BATCH,     /* POST /v1/events, NDJSON batch */
	RB_KINDS,
};

extern const char *const rb_kind_names[RB_KINDS];

struct rb_work_cfg {
	const char *users_path;  /* users.txt: one known user id a line */
	const char *items_path;  /* items.jsonl: {"id": ...} a line */
	double user_s, item_s;   /* Zipf exponents (default 0.99) */
	double known, anon;      /* shares of requests by known / anonymous users; the rest are new users */
	double home, pdp;        /* placement shares; the rest is "cart" */
	double events;           /* share of requests that are events (0 = none) */
	double batch;            /* share of event requests that are NDJSON batches */
	unsigned batch_size;     /* events per batch */
	unsigned n;              /* items asked for */
	const char *host;        /* Host header */
};

struct rb_work {
	struct rb_work_cfg cfg;
	char **users, **items;
	size_t n_users, n_items;
	struct rb_zipf uz, iz;
	char *pool; /* backing store of the id strings */
};

void rb_work_defaults(struct rb_work_cfg *c);

/* Load the id lists and build the samplers. 0 or -errno (message on stderr). */
int rb_work_load(struct rb_work *w, const struct rb_work_cfg *cfg);
void rb_work_free(struct rb_work *w);

/* Write the next request (complete HTTP/1.1 bytes) into buf; returns its
 * length, or 0 when it does not fit. `events_on` false forces a
 * recommendation request (the server has no events endpoint). */
size_t rb_work_next(const struct rb_work *w, struct rb_rng *r, bool events_on, char *buf, size_t cap,
		    enum rb_kind *kind);

#endif
