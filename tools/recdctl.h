/* recdctl.h: what the commands of recdctl share (recdctl.c: the transport,
 * status, reload, metrics, snapshot inspect, main; recdctl_cmds.c:
 * explain, user, item, experiments, quality, events send). */
#ifndef RECDCTL_H
#define RECDCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "json/json.h"

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

struct ctl {
	const char *admin;     /* host:port, [v6]:port or unix:/path */
	const char *token;
	bool json;
	int timeout_ms;
	uint64_t deadline_ms;  /* CLOCK_MONOTONIC */
	/* explain */
	const char *placement, *item, *device, *region;
	long n;                /* 0: the daemon's default_n */
};

struct response {
	int status;
	char *data;            /* the whole response, NUL-terminated */
	size_t len;
	const char *body;      /* into data */
	size_t body_len;
};

/* Tokens for one JSON document; grows until it fits. */
struct doc {
	const char *s;
	struct json_tok *t;
};

uint64_t mono_ms(void);
/* One request, one connection, under c->deadline_ms. Returns 0 or an exit
 * code (message printed). ctype NULL: no body. */
int ctl_request(const struct ctl *c, const char *method, const char *target, struct response *rsp);
int ctl_request_body(const struct ctl *c, const char *method, const char *target, const char *ctype,
		     const char *body, size_t body_len, struct response *rsp);

/* On failure d->t is NULL, so free(d->t) is always right. */
int doc_parse(struct doc *d, const char *s, size_t len);
/* Value index of key in object `obj`, or -1 (also when obj is not an object). */
int doc_get(const struct doc *d, int obj, const char *key);
const char *doc_str(const struct doc *d, int obj, const char *key, char *out, size_t outlen);
int64_t doc_i64(const struct doc *d, int obj, const char *key);
/* A JSON array of strings at token a as "x, y" ("-" when empty). */
const char *doc_list(const struct doc *d, int a, char *out, size_t len);

void print_body(const struct response *rsp);
/* A non-2xx answer: "recdctl: HTTP 401: unauthorized: detail". Returns 1. */
int report_http_error(const struct response *rsp);
void fmt_time_ms(int64_t ms, char *out, size_t len);

/* recdctl_cmds.c */
int cmd_explain(const struct ctl *c, const char *user);
int cmd_user(const struct ctl *c, const char *id);
int cmd_item(const struct ctl *c, const char *id);
int cmd_experiments(const struct ctl *c);
int cmd_quality(const struct ctl *c);
int cmd_events_send(struct ctl *c, const char *file);

#endif
