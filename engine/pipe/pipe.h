/* pipe.h: one recommendation request from start to answer — resolve the
 * shopper (snapshot + live state), route (Lua route() or the C tiers),
 * gather candidates from the C sources, apply the freshness rules, rank
 * (Lua rules() + rerank() or the C default) and hand back the list.
 *
 * Freshness rules hold on every path, whatever a policy does: an item
 * that is out of stock or unavailable (in the snapshot or in live state)
 * or that the shopper bought is never a candidate, so no policy, fallback
 * or error can serve it. Neither are the page's own item, the items in
 * the cart and the items the shopper just viewed or clicked (the live
 * recent list): the next page shows something new.
 *
 * A struct pipe_worker is one worker thread's scratch, made once: a
 * request allocates nothing. Callers run inside their epoch section (live
 * records and the snapshot stay valid for the whole call).
 */
#ifndef RECD_PIPE_H
#define RECD_PIPE_H

#include "core/common.h"
#include "lua/lua_types.h"
#include "rec/rec.h"
#include "snap/snap.h"

#define PIPE_MAX_CANDS 1024u      /* candidates per request, all sources together */
#define PIPE_MAX_REFS 3u          /* recent items that seed "similar" / "content" */

struct live;
struct trend;
struct refresh;
struct lua_host;
struct pipe_worker;

/** What the client asked, resolved against the snapshot by the caller. */
struct exp_variant;

struct pipe_request {
	const struct snap *snap;
	struct live *live;            /**< NULL: no live state */
	const struct trend *trend;    /**< NULL: no trending lists */
	struct refresh *refresh;      /**< NULL: no precomputed per-user lists */
	uint32_t worker;              /**< the calling request worker (its refresh hint ring) */
	const char *user_id;          /**< NULL: anonymous */
	uint32_t user_id_len;
	int64_t context_item;         /**< snapshot index of the page's item, or -1 */
	const char *placement, *device, *region; /**< NULL: absent */
	uint32_t placement_len, device_len, region_len;
	const uint32_t *cart;         /**< items the client says are in the cart (snapshot indexes) */
	uint32_t n_cart;
	uint32_t n;                   /**< items wanted */
	uint32_t nprobe;              /**< ANN lists probed first (0 = default) */
	uint32_t nprobe_miss;         /**< the same for a personal search on demand while the
	                                   shopper's precomputed list is on its way (0 = nprobe) */
	const struct exp_variant *variant; /**< the shopper's experiment variant (params, sources), or NULL */
	bool personalize;             /**< false: consent withdrawn — no user state is read */
	bool shed;                    /**< the worker is behind: no personal search on demand */
};

/** Where the personal candidates came from (the per-user lists are
 * recd's cache: this is its hit rate). */
enum pipe_cache {
	PIPE_CACHE_NONE = 0,          /**< the route asked for no personal source */
	PIPE_CACHE_FRESH,             /**< the precomputed list, up to date */
	PIPE_CACHE_CARRIED,           /**< up to date but made on the previous snapshot: translated by item key */
	PIPE_CACHE_STALE,             /**< a list older than the shopper's last event: searched again */
	PIPE_CACHE_MISS,              /**< no list yet: searched on demand (and one is asked for) */
	PIPE_CACHE_NO_VECTOR,         /**< nothing to personalise with: other sources only */
	PIPE_CACHE_SHED,              /**< no list and the worker was behind: other sources only */
	PIPE_CACHE__COUNT,
};
extern const char *const pipe_cache_names[];

/** How the list came about. */
struct pipe_result {
	const struct lua_cand *items; /**< best first; valid until the next call */
	uint32_t n;
	enum lua_tier tier;
	const char *route;            /**< the route's policy name ("collaborative", ...) */
	uint8_t strategy;             /**< enum lua_source of the first item (LUA_SRC_NONE: empty) */
	bool policy;                  /**< Lua ranked the list (else the C default did) */
	int lua_rc;                   /**< 0, or the lua_host code that made a hook fall back */
	uint8_t failed_hook;          /**< enum lua_hook of lua_rc */
	uint8_t cache;                /**< enum pipe_cache */
};

struct exp_variant;

struct pipe_worker *pipe_worker_new(void);
void pipe_worker_free(struct pipe_worker *pw);

/* The whole path. `h` may be NULL (C policies only). Never fails: a
 * policy failure falls back to the C default and is reported in res. */
void pipe_recommend(struct pipe_worker *pw, struct lua_host *h, const struct pipe_request *rq,
		    struct pipe_result *res);

/* An experiment variant's `sources`: weight 0 drops a source from the
 * route, another weight replaces its weight, a source the route lacks is
 * appended (as many candidates as the route's largest source). */
void pipe_apply_sources(struct lua_route *rt, const struct exp_variant *v);

/* The pieces, for recd-policy (offline) and tests. */
/* Resolve the shopper into the Lua request view (arrays in pw). */
const struct lua_req *pipe_resolve(struct pipe_worker *pw, const struct pipe_request *rq);
/* Offline (recd-policy, replays): take a request view built by the
 * caller instead of reading live state; its cart, purchased and recent
 * items are excluded from the candidates as the live ones would be. */
const struct lua_req *pipe_resolve_given(struct pipe_worker *pw, const struct pipe_request *rq,
					 const struct lua_req *given);
/* The C tiers: context item → similar; the "cart" placement with a cart
 * → items like the cart's; snapshot embedding or 10+ interactions →
 * collaborative; 1..9 → content-based; else trending and popular. The
 * same as plugins/route.lua. */
void pipe_default_route(const struct lua_req *q, struct lua_route *rt);
/* Candidates for a route into pw's array; returns how many. */
uint32_t pipe_gather(struct pipe_worker *pw, const struct pipe_request *rq, const struct lua_route *rt,
		     struct lua_cand **cands);
/* enum pipe_cache of the last pipe_resolve + pipe_gather (admin explain). */
uint8_t pipe_cache_status(const struct pipe_worker *pw);
/* The C ranking: best score first (ties: gathering order), first n. */
uint32_t pipe_default_rank(struct lua_cand *c, uint32_t n, uint32_t n_wanted);
/* Reason of a candidate ranked without Lua, from its source. */
void pipe_default_reasons(struct lua_cand *c, uint32_t n, const struct lua_req *q);

#endif
