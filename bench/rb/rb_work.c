/* rb_work.c: loading the recd-gen id lists and rendering requests. */
#include "rb_work.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const rb_kind_names[RB_KINDS] = {"rec", "event", "batch"};

void rb_work_defaults(struct rb_work_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->user_s = 0.99;
	c->item_s = 0.99;
	c->known = 0.9;
	c->anon = 0.05;
	c->home = 0.5;
	c->pdp = 0.3;
	c->events = 0.0;
	c->batch = 0.2;
	c->batch_size = 10;
	c->n = 10;
	c->host = "bench";
}

/* Read a whole file into a NUL-terminated buffer. */
static int slurp(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		fprintf(stderr, "recd-bench: %s: %s\n", path, strerror(e));
		return -e;
	}
	size_t cap = 1 << 20, n = 0;
	char *b = malloc(cap + 1);
	size_t got;
	while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			char *nb = realloc(b, cap * 2 + 1);
			if (!nb) {
				free(b);
				b = NULL;
				break;
			}
			b = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (!b)
		return -ENOMEM;
	b[n] = 0;
	*out = b;
	*len = n;
	return 0;
}

/* Split the buffer into lines in place; for items keep the "id" value.
 * Ids from recd-gen need no JSON unescaping; one that has an escape is
 * skipped rather than sent wrong. */
static int split_ids(char *buf, bool jsonl, char ***out, size_t *count)
{
	size_t cap = 1024, n = 0;
	char **v = malloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (char *line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		char *id = line;
		if (jsonl) {
			char *p = strstr(line, "\"id\"");
			id = NULL;
			if (p && (p = strchr(p + 4, '"'))) {
				char *end = strchr(p + 1, '"');
				if (end && !memchr(p + 1, '\\', (size_t)(end - p - 1))) {
					*end = 0;
					id = p + 1;
				}
			}
		} else {
			size_t l = strlen(id);
			while (l && (id[l - 1] == '\r' || id[l - 1] == ' '))
				id[--l] = 0;
		}
		if (id && *id) {
			if (n == cap) {
				char **nv = realloc(v, 2 * cap * sizeof(*v));
				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
				cap *= 2;
			}
			v[n++] = id;
		}
		line = nl ? nl + 1 : NULL;
	}
	*out = v;
	*count = n;
	return 0;
}

int rb_work_load(struct rb_work *w, const struct rb_work_cfg *cfg)
{
	memset(w, 0, sizeof(*w));
	w->cfg = *cfg;
	char *ub = NULL, *ib = NULL;
	size_t ul, il;
	int r = slurp(cfg->users_path, &ub, &ul);
	if (r)
		return r;
	r = slurp(cfg->items_path, &ib, &il);
	if (r) {
		free(ub);
		return r;
	}
	/* one allocation keeps both: ids point into it */
	w->pool = malloc(ul + il + 2);
	if (!w->pool) {
		free(ub);
		free(ib);
		return -ENOMEM;
	}
	memcpy(w->pool, ub, ul + 1);
	memcpy(w->pool + ul + 1, ib, il + 1);
	free(ub);
	free(ib);
	r = split_ids(w->pool, false, &w->users, &w->n_users);
	if (!r)
		r = split_ids(w->pool + ul + 1, true, &w->items, &w->n_items);
	if (!r && (!w->n_users || !w->n_items)) {
		fprintf(stderr, "recd-bench: no %s in %s\n", w->n_users ? "items" : "users",
			w->n_users ? cfg->items_path : cfg->users_path);
		r = -EINVAL;
	}
	if (!r)
		r = rb_zipf_init(&w->uz, w->n_users, cfg->user_s);
	if (!r)
		r = rb_zipf_init(&w->iz, w->n_items, cfg->item_s);
	if (r)
		rb_work_free(w);
	return r;
}

void rb_work_free(struct rb_work *w)
{
	rb_zipf_free(&w->uz);
	rb_zipf_free(&w->iz);
	free(w->users);
	free(w->items);
	free(w->pool);
	memset(w, 0, sizeof(*w));
}

static const char *const event_types[] = {"view", "click", "add_to_cart", "purchase"};
static const unsigned event_weights[] = {70, 15, 10, 5}; /* percent */

/* Known users only: events for anonymous shoppers carry no user. */
static const char *pick_user(const struct rb_work *w, struct rb_rng *r, char *tmp, size_t cap, bool *anon)
{
	double u = rb_rng_unit(r);
	*anon = false;
	if (u < w->cfg.known)
		return w->users[rb_zipf_sample(&w->uz, r)];
	if (u < w->cfg.known + w->cfg.anon) {
		*anon = true;
		return NULL;
	}
	snprintf(tmp, cap, "new-%llx", (unsigned long long)(rb_rng_next(r) >> 24));
	return tmp;
}

static int put_event(const struct rb_work *w, struct rb_rng *r, char *p, size_t cap)
{
	char tmp[32];
	bool anon;
	const char *user = pick_user(w, r, tmp, sizeof(tmp), &anon);
	if (!user)
		user = w->users[rb_zipf_sample(&w->uz, r)];
	unsigned x = (unsigned)rb_rng_below(r, 100), t = 0;
	while (x >= event_weights[t]) {
		x -= event_weights[t];
		t++;
	}
	return snprintf(p, cap, "{\"type\":\"%s\",\"user_id\":\"%s\",\"item_id\":\"%s\"}", event_types[t], user,
			w->items[rb_zipf_sample(&w->iz, r)]);
}

size_t rb_work_next(const struct rb_work *w, struct rb_rng *r, bool events_on, char *buf, size_t cap,
		    enum rb_kind *kind)
{
	const struct rb_work_cfg *c = &w->cfg;
	int n;
	if (events_on && c->events > 0 && rb_rng_unit(r) < c->events) {
		bool batch = rb_rng_unit(r) < c->batch;
		unsigned count = batch ? c->batch_size : 1;
		char body[16384];
		size_t bl = 0;
		for (unsigned i = 0; i < count; i++) {
			int k = put_event(w, r, body + bl, sizeof(body) - bl - 1);
			if (k < 0 || (size_t)k >= sizeof(body) - bl - 1)
				return 0;
			bl += (size_t)k;
			if (batch)
				body[bl++] = '\n';
		}
		*kind = batch ? RB_BATCH : RB_EVENT;
		n = snprintf(buf, cap,
			     "POST /v1/events HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n%.*s",
			     c->host, batch ? "application/x-ndjson" : "application/json", bl, (int)bl, body);
		return n > 0 && (size_t)n < cap ? (size_t)n : 0;
	}
	*kind = RB_REC;
	char tmp[32], ctx[160] = "";
	bool anon;
	const char *user = pick_user(w, r, tmp, sizeof(tmp), &anon);
	double u = rb_rng_unit(r);
	const char *placement = u < c->home ? "home" : u < c->home + c->pdp ? "pdp" : "cart";
	if (placement[0] == 'p')
		snprintf(ctx, sizeof(ctx), "&item_id=%s", w->items[rb_zipf_sample(&w->iz, r)]);
	n = snprintf(buf, cap, "GET /v1/recommendations?%s%s%sn=%u&placement=%s%s HTTP/1.1\r\nHost: %s\r\n\r\n",
		     user ? "user_id=" : "", user ? user : "", user ? "&" : "", c->n, placement, ctx, c->host);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
