/* event.c: event validation (see event.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>
#include "events/event.h"

const char *const event_type_names[] = {
	NULL, "view", "click", "add_to_cart", "remove_from_cart", "purchase", "rating", "impression",
	"item_update", "forget_user", "source_mark", NULL,
};

uint64_t event_key(const char *id, size_t len)
{
	return XXH3_64bits(id, len);
}

static int type_of(const char *s, size_t len)
{
	for (int t = 1; t <= EVENT_ITEM_UPDATE; t++)
		if (strlen(event_type_names[t]) == len && !memcmp(event_type_names[t], s, len))
			return t;
	return -1;
}

/* A string field copied inline; ids must be 1..max-1 printable bytes. */
static int copy_id(const char *s, const struct json_tok *t, const char *name, char *dst, size_t dstlen,
		   uint8_t *len, char *err, size_t errlen)
{
	if (t->type != JSON_STRING) {
		snprintf(err, errlen, "%s must be a string", name);
		return -EINVAL;
	}
	int r = json_str_decode(s, t, dst, dstlen);
	if (r == -ENOSPC) {
		snprintf(err, errlen, "%s longer than %zu bytes", name, dstlen - 1);
		return -EINVAL;
	}
	if (r <= 0) {
		snprintf(err, errlen, "%s must not be empty", name);
		return -EINVAL;
	}
	for (int i = 0; i < r; i++)
		if ((unsigned char)dst[i] < 0x20) {
			snprintf(err, errlen, "%s contains a control character", name);
			return -EINVAL;
		}
	*len = (uint8_t)r;
	return 0;
}

static int number(const char *s, const struct json_tok *t, const char *name, double lo, double hi, double *out,
		  char *err, size_t errlen)
{
	if (t->type != JSON_NUMBER || json_get_double(s, t, out) || !isfinite(*out) || *out < lo || *out > hi) {
		snprintf(err, errlen, "%s must be a number between %g and %g", name, lo, hi);
		return -EINVAL;
	}
	return 0;
}

int event_from_json(const char *s, const struct json_tok *toks, int obj, uint64_t now_ms, struct event *ev,
		    char *err, size_t errlen)
{
	const struct json_tok *o = &toks[obj];
	if (o->type != JSON_OBJECT) {
		snprintf(err, errlen, "an event must be a JSON object");
		return -EINVAL;
	}
	memset(ev, 0, offsetof(struct event, user_id));
	ev->user_id[0] = ev->item_id[0] = ev->request_id[0] = ev->placement[0] = 0;
	ev->ts_ms = now_ms;

	int t_type = -1;
	bool has_value = false;
	int k = obj + 1;
	char key[24];
	for (uint32_t i = 0; i < o->count; i++) {
		const struct json_tok *kt = &toks[k], *vt = &toks[k + 1];
		int kl = json_str_decode(s, kt, key, sizeof(key));
		double d;
		if (kl < 0) {
			snprintf(err, errlen, "unknown field");
			return -EINVAL;
		}
		if (!strcmp(key, "type")) {
			t_type = k + 1;
		} else if (!strcmp(key, "user_id")) {
			if (copy_id(s, vt, "user_id", ev->user_id, sizeof(ev->user_id), &ev->user_len, err, errlen))
				return -EINVAL;
			ev->flags |= EVENT_HAS_USER;
		} else if (!strcmp(key, "item_id")) {
			if (copy_id(s, vt, "item_id", ev->item_id, sizeof(ev->item_id), &ev->item_len, err, errlen))
				return -EINVAL;
			ev->flags |= EVENT_HAS_ITEM;
		} else if (!strcmp(key, "session_id")) {
			if (vt->type != JSON_STRING) {
				snprintf(err, errlen, "session_id must be a string");
				return -EINVAL;
			}
		} else if (!strcmp(key, "request_id")) {
			if (copy_id(s, vt, "request_id", ev->request_id, sizeof(ev->request_id), &ev->request_len,
				    err, errlen))
				return -EINVAL;
		} else if (!strcmp(key, "placement")) {
			if (copy_id(s, vt, "placement", ev->placement, sizeof(ev->placement), &ev->placement_len,
				    err, errlen))
				return -EINVAL;
		} else if (!strcmp(key, "ts")) {
			int64_t ts;
			if (vt->type != JSON_NUMBER || json_get_i64(s, vt, &ts) || ts <= 0) {
				snprintf(err, errlen, "ts must be a positive integer (milliseconds since the epoch)");
				return -EINVAL;
			}
			ev->ts_ms = (uint64_t)ts;
		} else if (!strcmp(key, "stock")) {
			int64_t st;
			if (vt->type != JSON_NUMBER || json_get_i64(s, vt, &st) || st < 0 || st > 1000000000) {
				snprintf(err, errlen, "stock must be an integer between 0 and 1000000000");
				return -EINVAL;
			}
			ev->stock = st;
			ev->flags |= EVENT_HAS_STOCK;
		} else if (!strcmp(key, "price")) {
			if (number(s, vt, "price", 0, 1e9, &d, err, errlen))
				return -EINVAL;
			ev->price = (float)d;
			ev->flags |= EVENT_HAS_PRICE;
		} else if (!strcmp(key, "boost")) {
			if (number(s, vt, "boost", -100, 100, &d, err, errlen))
				return -EINVAL;
			ev->boost = (float)d;
			ev->flags |= EVENT_HAS_BOOST;
		} else if (!strcmp(key, "value")) {
			if (number(s, vt, "value", -1e6, 1e6, &d, err, errlen))
				return -EINVAL;
			ev->value = (float)d;
			has_value = true;
		} else if (!strcmp(key, "available")) {
			if (vt->type != JSON_TRUE && vt->type != JSON_FALSE) {
				snprintf(err, errlen, "available must be true or false");
				return -EINVAL;
			}
			ev->available = vt->type == JSON_TRUE;
			ev->flags |= EVENT_HAS_AVAILABLE;
		} else if (!strcmp(key, "personalize")) {
			if (vt->type != JSON_TRUE && vt->type != JSON_FALSE) {
				snprintf(err, errlen, "personalize must be true or false");
				return -EINVAL;
			}
			if (vt->type == JSON_FALSE)
				ev->flags |= EVENT_NO_PERSONALIZE;
		} else if (!strcmp(key, "item_ids")) {
			/* impressions list what was shown; checked for shape only */
			if (vt->type != JSON_ARRAY) {
				snprintf(err, errlen, "item_ids must be an array of strings");
				return -EINVAL;
			}
			for (int e = k + 2; e < (int)vt->next; e = (int)toks[e].next)
				if (toks[e].type != JSON_STRING) {
					snprintf(err, errlen, "item_ids must be an array of strings");
					return -EINVAL;
				}
		} else {
			snprintf(err, errlen, "unknown field '%s'", key);
			return -EINVAL;
		}
		k = (int)vt->next;
	}

	if (t_type < 0) {
		snprintf(err, errlen, "missing field 'type'");
		return -EINVAL;
	}
	const struct json_tok *tt = &toks[t_type];
	int type = tt->type == JSON_STRING ? type_of(s + tt->start, tt->len) : -1;
	if (type < 0) {
		if (tt->type == JSON_STRING)
			snprintf(err, errlen, "unknown type '%.*s'", (int)MIN(tt->len, 32u), s + tt->start);
		else
			snprintf(err, errlen, "type must be a string");
		return -EINVAL;
	}
	ev->type = (uint8_t)type;

	if (type == EVENT_ITEM_UPDATE) {
		if (!(ev->flags & EVENT_HAS_ITEM)) {
			snprintf(err, errlen, "missing field 'item_id'");
			return -EINVAL;
		}
		if (!(ev->flags & (EVENT_HAS_STOCK | EVENT_HAS_PRICE | EVENT_HAS_AVAILABLE | EVENT_HAS_BOOST))) {
			snprintf(err, errlen, "item_update needs at least one of stock, price, available, boost");
			return -EINVAL;
		}
	} else {
		if (!(ev->flags & EVENT_HAS_USER)) {
			snprintf(err, errlen, "missing field 'user_id'");
			return -EINVAL;
		}
		if (type == EVENT_IMPRESSION) {
			if (!ev->request_len) {
				snprintf(err, errlen, "impression needs request_id");
				return -EINVAL;
			}
		} else if (!(ev->flags & EVENT_HAS_ITEM)) {
			snprintf(err, errlen, "missing field 'item_id'");
			return -EINVAL;
		}
		/* A purchase may say what was paid (revenue, in experiments). */
		unsigned item_fields = EVENT_HAS_STOCK | EVENT_HAS_AVAILABLE | EVENT_HAS_BOOST |
				       (type == EVENT_PURCHASE ? 0u : EVENT_HAS_PRICE);
		if (ev->flags & item_fields) {
			snprintf(err, errlen, "stock, price, available and boost belong to item_update "
				 "(a purchase may carry price)");
			return -EINVAL;
		}
	}
	if (type == EVENT_RATING && !has_value) {
		snprintf(err, errlen, "rating needs value");
		return -EINVAL;
	}
	if (ev->flags & EVENT_HAS_USER)
		ev->user_key = event_key(ev->user_id, ev->user_len);
	if (ev->flags & EVENT_HAS_ITEM)
		ev->item_key = event_key(ev->item_id, ev->item_len);
	return 0;
}

int event_source_mark(struct event *ev, const char *stream, size_t len, uint32_t part, int64_t offset,
		      uint64_t now_ms)
{
	if (!len || len >= sizeof(ev->item_id))
		return -EINVAL;
	memset(ev, 0, offsetof(struct event, user_id));
	ev->user_id[0] = ev->request_id[0] = ev->placement[0] = 0;
	ev->type = EVENT_SOURCE_MARK;
	ev->ts_ms = now_ms;
	memcpy(ev->item_id, stream, len);
	ev->item_id[len] = 0;
	ev->item_len = (uint8_t)len;
	ev->item_key = event_key(stream, len);
	ev->stock = offset;
	ev->source_part = part;
	return 0;
}

/* ------------------------------------------------ bodies of several events */

static bool blank(const char *p, size_t n)
{
	for (size_t j = 0; j < n; j++)
		if (p[j] != ' ' && p[j] != '\t' && p[j] != '\r')
			return false;
	return true;
}

int event_batch_init(struct event_batch *b, const char *s, size_t len, bool ndjson, struct json_tok *toks,
		     uint32_t n_toks, struct json_err *jerr)
{
	memset(b, 0, sizeof(*b));
	b->s = s;
	b->len = len;
	b->ndjson = ndjson;
	b->toks = toks;
	b->n_toks = n_toks;
	b->line = s;
	b->elem = 1;
	if (!ndjson) {
		*jerr = (struct json_err){ 0, NULL };
		int ntok = json_parse(s, len, toks, n_toks, jerr);
		if (ntok == -ENOSPC)
			return -ENOSPC;
		if (ntok < 0)
			return -EINVAL;
		b->n = toks[0].type == JSON_ARRAY ? (int64_t)toks[0].count : 1;
		return 0;
	}
	/* Counted without parsing, so a caller can refuse a whole body
	 * (no room for it) before any of it is taken. */
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(s + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - s) : len;
		if (!blank(s + i, end - i))
			b->n++;
		i = end + 1;
	}
	return 0;
}

int event_batch_next(struct event_batch *b, const char **src, int *obj, char *err, size_t errlen)
{
	if (b->i >= b->n)
		return -1;
	b->i++;
	if (!b->ndjson) {
		*src = b->s;
		if (b->toks[0].type == JSON_ARRAY) {
			*obj = b->elem;
			b->elem = (int)b->toks[b->elem].next;
		} else {
			*obj = 0;
		}
		return 1;
	}
	const char *end = b->s + b->len;
	for (;;) {   /* the next non-blank line: b->n counted them, one is left */
		const char *nl = memchr(b->line, '\n', (size_t)(end - b->line));
		size_t ll = nl ? (size_t)(nl - b->line) : (size_t)(end - b->line);
		const char *cur = b->line;
		if (cur >= end)
			return -1;
		b->line = nl ? nl + 1 : end;
		if (blank(cur, ll))
			continue;
		struct json_err jerr = { 0, NULL };
		if (json_parse(cur, ll, b->toks, b->n_toks, &jerr) < 0) {
			snprintf(err, errlen, "invalid JSON at byte %u of the line: %s", jerr.offset,
				 jerr.msg ? jerr.msg : "syntax error");
			return 0;
		}
		b->n_json++;
		*src = cur;
		*obj = 0;
		return 1;
	}
}
