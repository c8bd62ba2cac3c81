/* event.h: the event schema shared by the HTTP endpoint, the event log
 * and (later) the Kafka consumer, and its strict JSON validation.
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
	uint32_t reserved;
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

#endif
