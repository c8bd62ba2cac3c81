/* event.h: the event schema shared by the HTTP endpoint, the event log
 * and the Kafka consumer (events/kafka.h), and its strict JSON validation.
 *
 * An event is a fixed-size struct so it can live by value in the
 * per-worker rings and the log: ids are copied inline (at most
 * EVENT_ID_MAX bytes; longer ids are refused, not truncated).
 */
#ifndef RECD_EVENT_H
#define RECD_EVENT_H

#include "core/common.h"
#include "json/json.h"

#define EVENT_ID_MAX 128

enum event_type {
	EVENT_VIEW = 1,
	EVENT_CLICK,
	EVENT_ADD_TO_CART,
	EVENT_REMOVE_FROM_CART,
	EVENT_PURCHASE,
	EVENT_RATING,
	EVENT_IMPRESSION,
	EVENT_ITEM_UPDATE,
	EVENT_FORGET_USER,       /* internal: DELETE /v1/users/{id}; not accepted as input */
	EVENT_SOURCE_MARK,       /* internal: where the next EVENT_FROM_SOURCE events come from
	                            (a Kafka message, events/kafka.h); logged and replayed,
	                            changes no live state; not accepted as input */
	EVENT__TYPE_COUNT,
};

enum event_flag {
	EVENT_HAS_STOCK = 1u << 0,
	EVENT_HAS_PRICE = 1u << 1,
	EVENT_HAS_AVAILABLE = 1u << 2,
	EVENT_HAS_BOOST = 1u << 3,
	EVENT_NO_PERSONALIZE = 1u << 4,   /* "personalize": false */
	EVENT_HAS_USER = 1u << 5,
	EVENT_HAS_ITEM = 1u << 6,
	EVENT_FROM_SOURCE = 1u << 7,      /* from an external source (Kafka): in the log it
	                                     follows the EVENT_SOURCE_MARK of its message */
};

struct event {
	uint8_t type;            /* enum event_type */
	uint8_t available;
	uint16_t flags;          /* enum event_flag */
	uint8_t user_len, item_len, request_len, placement_len;
	uint64_t ts_ms;
	uint64_t user_key;       /* XXH3_64 of user_id (0 when none) */
	uint64_t item_key;       /* XXH3_64 of item_id, as in the snapshot index */
	uint64_t seq;            /* assigned by the worker: (worker << 48) | n */
	int64_t stock;
	float price;
	float boost;
	float value;             /* rating */
	uint32_t source_part;    /* EVENT_SOURCE_MARK: the partition; 0 otherwise */
	char user_id[EVENT_ID_MAX];
	char item_id[EVENT_ID_MAX];
	char request_id[64];
	char placement[64];
};

/* Names as in the API ("view", "add_to_cart", ...); NULL-terminated,
 * indexed by enum event_type (index 0 is NULL). */
extern const char *const event_type_names[];

/* Fill *ev from the JSON object at token `obj`. On a bad event returns
 * -EINVAL and writes a precise reason into err ("missing field 'item_id'",
 * "unknown type 'like'", "user_id longer than 128 bytes"). `now_ms` is the
 * default timestamp. Keys are hashed here, so the updater never hashes. */
int event_from_json(const char *s, const struct json_tok *toks, int obj, uint64_t now_ms, struct event *ev,
		    char *err, size_t errlen);

/* Stable 64-bit key of an external id (the snapshot index uses the same). */
uint64_t event_key(const char *id, size_t len);

/* An EVENT_SOURCE_MARK: the events of `stream` (a Kafka topic, 1..127
 * bytes) partition `part` at `offset` follow. The stream goes in item_id
 * (item_key its event_key, no EVENT_HAS_ITEM), the offset in stock, the
 * partition in source_part. -EINVAL when the stream name does not fit. */
int event_source_mark(struct event *ev, const char *stream, size_t len, uint32_t part, int64_t offset,
		      uint64_t now_ms);

/* ---- bodies of several events ----
 * One JSON object, a JSON array of objects, or NDJSON (one object per
 * non-blank line): what POST /v1/events takes and what one Kafka message
 * may hold. The caller owns the token array (reused between bodies). */
struct event_batch {
	const char *s;
	size_t len;
	bool ndjson;
	struct json_tok *toks;
	uint32_t n_toks;
	int64_t n;               /* events in the body (values or non-blank lines) */
	uint32_t n_json;         /* NDJSON: lines that parsed as JSON so far */
	/* iteration */
	int64_t i;
	const char *line;
	int elem;
};

/* Parse the body (NDJSON: only count its lines; each line is parsed by
 * event_batch_next) and count its events. 0; -EINVAL when a JSON body is
 * not JSON (*jerr says where); -ENOSPC when it has more tokens than n_toks. */
int event_batch_init(struct event_batch *b, const char *s, size_t len, bool ndjson, struct json_tok *toks,
		     uint32_t n_toks, struct json_err *jerr);
/* The next of the b->n events, in order. 1: a JSON value at token *obj of
 * text *src, for event_from_json(*src, b->toks, *obj, ...) (valid until the
 * next call); 0: an NDJSON line that is not JSON (err says why); -1: no
 * more. */
int event_batch_next(struct event_batch *b, const char **src, int *obj, char *err, size_t errlen);

#endif
