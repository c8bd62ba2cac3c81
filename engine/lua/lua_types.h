/* lua_types.h: the structures C and the Lua policies share through the FFI.
 *
 * Lua reads and writes these in place (zero copy). The matching ffi.cdef is
 * lua/recd_ffi.lua; every state checks at load that both sides agree on
 * every size and offset (lua_host_ffi_layout), and so does test_lua_host.
 * Change both files together. Only fixed-width fields, no bool, no size_t:
 * 32-bit numbers read as plain Lua numbers, 64-bit ones would be boxed.
 */
#ifndef RECD_LUA_TYPES_H
#define RECD_LUA_TYPES_H

#include <stdint.h>

#define LUA_NO_ITEM UINT32_MAX        /* "no item / no user" in index fields */
#define LUA_ROUTE_MAX_SOURCES 8u
#define LUA_ROUTE_MAX_N 10000u        /* most candidates one source may be asked for */
#define LUA_POLICY_NAME_LEN 48u

/* Where a candidate came from (set by the engine's candidate sources). */
enum lua_source {
	LUA_SRC_NONE = 0,
	LUA_SRC_POPULAR,       /* the snapshot's popularity list */
	LUA_SRC_TRENDING,      /* live decayed counters */
	LUA_SRC_SIMILAR,       /* neighbours of the context or a recent item */
	LUA_SRC_CONTENT,       /* same categories as recent items */
	LUA_SRC_PERSONALIZED,  /* the user's embedding */
	LUA_SRC_SESSION,       /* ANN over the session vector */
	LUA_SRC__COUNT,
};

/* Why an item is shown; "because_you_viewed" names reason_item. */
enum lua_reason {
	LUA_REASON_NONE = 0,
	LUA_REASON_POPULAR,
	LUA_REASON_TRENDING,
	LUA_REASON_SIMILAR,
	LUA_REASON_PERSONALIZED,
	LUA_REASON_BECAUSE_YOU_VIEWED,
	LUA_REASON_SAME_CATEGORY,
	LUA_REASON_ON_SALE,
	LUA_REASON__COUNT,
};

/* Cold-start tiers (route); counted per request by the engine. */
enum lua_tier {
	LUA_TIER_ANONYMOUS = 0,  /* no id or no history: popular / trending */
	LUA_TIER_NEW,            /* 1..9 interactions: content-based */
	LUA_TIER_RETURNING,      /* 10+: collaborative */
	LUA_TIER__COUNT,
};

/* lua_cand.flags: the low byte is set by the engine from live state, the
 * high byte by the policy API. */
#define LUA_CAND_ON_SALE      (1u << 0)  /* live price below the list price */
#define LUA_CAND_OUT_OF_STOCK (1u << 1)  /* live stock is 0 (snapshot may lag) */
#define LUA_CAND_BOOSTED      (1u << 8)
#define LUA_CAND_DEMOTED      (1u << 9)

/** One candidate, 20 bytes. Policies change score, reason, flags and the
 * order of the array; never item or orig (the API has no way to). */
struct lua_cand {
	uint32_t item;          /**< snapshot item index */
	float score;            /**< higher is better */
	uint8_t source;         /**< enum lua_source */
	uint8_t reason;         /**< enum lua_reason */
	uint16_t flags;         /**< LUA_CAND_* */
	uint32_t reason_item;   /**< item the reason refers to, or LUA_NO_ITEM */
	uint32_t orig;          /**< position on entry; set and checked by the host */
};

/** What a policy may know about the request. Strings are not
 * NUL-terminated; a NULL pointer means absent. Arrays hold snapshot item
 * indexes (items unknown to the snapshot are left out by the caller). */
struct lua_req {
	const char *user_id;
	const uint32_t *recent;     /**< most recent first */
	const uint32_t *cart;
	const uint32_t *purchased;  /**< any order */
	const char *placement;
	const char *device;
	const char *region;
	uint32_t user_id_len;
	uint32_t n_recent;
	uint32_t n_cart;
	uint32_t n_purchased;
	uint32_t placement_len;
	uint32_t device_len;
	uint32_t region_len;
	uint32_t user;              /**< snapshot user index or LUA_NO_ITEM */
	uint32_t interactions;      /**< lifetime interaction count (tiers) */
	uint32_t context_item;      /**< item on the page, or LUA_NO_ITEM */
	uint32_t n;                 /**< items the client asked for */
	uint8_t known;              /**< 1: the engine knows this user (embedding or history) */
	uint8_t reserved[3];
	uint32_t variant;           /**< experiment variant (exp.h lua_index) or LUA_NO_ITEM */
};

struct lua_route_source {
	uint32_t source;            /**< enum lua_source */
	uint32_t n;                 /**< candidates wanted from it, 1..LUA_ROUTE_MAX_N */
	float weight;               /**< its best item's score (0..1]: 1 = leads, less = fills in */
};

/** route()'s answer, written by recd.lua after validating the hook's result. */
struct lua_route {
	uint32_t tier;              /**< enum lua_tier */
	uint32_t n_sources;         /**< 1..LUA_ROUTE_MAX_SOURCES */
	struct lua_route_source sources[LUA_ROUTE_MAX_SOURCES]; /**< priority order */
	char policy[LUA_POLICY_NAME_LEN]; /**< NUL-terminated, e.g. "cold_start_popular" */
};

/** The current snapshot's columns (lua_host_ffi_snap_columns). */
struct lua_cols {
	const uint32_t *category;
	const float *price;
	const float *popularity;
	const uint32_t *stock;
	const uint32_t *flags;      /**< SNAP_ITEM_* */
	const float *emb;           /**< n_items rows of stride floats, 64-byte aligned */
	const float *user_emb;      /**< n_users rows, NULL when the snapshot has none */
	uint32_t n_items;
	uint32_t n_categories;
	uint32_t n_users;
	uint32_t dim;
	uint32_t stride;
	uint32_t reserved;
};

/** Per-state call context: one per host, created before the state; Lua
 * holds a pointer to it from load time on. The host fills it before each
 * hook call. Lua passes it back to every lua_host_ffi_* function. */
struct lua_ctx {
	const struct lua_req *req;
	struct lua_cand *cands;
	struct lua_route *route;
	const void *snap;           /**< const struct snap * (NULL in route without a snapshot) */
	uint64_t deadline_ns;       /**< monotonic; the call's budget ends here */
	uint32_t snap_seq;          /**< changes whenever snap does: Lua drops its caches */
	uint32_t n_cands;           /**< in/out: live candidates in cands[] */
	uint32_t n_wanted;          /**< what the client asked for */
	uint32_t tripped;           /**< enum lua_trip, set by the host when a limit hit */
};

enum lua_trip { LUA_TRIP_NONE = 0, LUA_TRIP_BUDGET, LUA_TRIP_MEMORY };

/** One row of the layout table (lua_host_ffi_layout): field NULL is the
 * struct's sizeof. */
struct lua_layout {
	const char *type;
	const char *field;
	uint32_t offset;
	uint32_t size;
};

#endif
