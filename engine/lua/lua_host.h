/* lua_host.h: the Lua policy layer — one LuaJIT state per worker thread
 * running the product team's hooks (route, rules, rerank) in a sandbox,
 * within a time budget and a memory ceiling, with a breaker.
 *
 * Threading: a struct lua_host belongs to one thread, which is the only
 * one that calls it and the only writer of its stats. Other threads may
 * read a struct lua_host_stats (ck_pr_load_64 per counter;
 * lua_host_stats_last_error for the message).
 *
 * Every call returns 0 or a negative code; on any negative code the
 * caller serves its C fallback, and lua_host_rank has restored the
 * candidate array exactly as it was passed in:
 *   -ENOENT     the hook is not defined (use the C default; not a failure)
 *   -ECANCELED  the breaker is open (too many consecutive failures)
 *   -ESTALE     the state went over the hard memory ceiling; it is rebuilt
 *               at the next lua_host_maybe_reload
 *   -EIO        the hook raised an error
 *   -ETIME      the time budget ran out
 *   -ENOMEM     the memory ceiling was crossed
 *   -EBADMSG    the hook returned garbage
 * Reloads: the control thread runs lua_host_compile_check on the new set,
 * then publishes a new generation (lua_host_publish); each worker calls
 * lua_host_maybe_reload between requests and swaps to a fresh state.
 * docs/policies.md is the guide for policy authors.
 */
#ifndef RECD_LUA_HOST_H
#define RECD_LUA_HOST_H

#include "core/common.h"
#include "lua/lua_types.h"

struct snap;
struct lua_host;

enum lua_hook { LUA_HOOK_ROUTE = 0, LUA_HOOK_RULES, LUA_HOOK_RERANK, LUA_HOOK__COUNT };
enum lua_fail { LUA_FAIL_ERROR = 0, LUA_FAIL_BUDGET, LUA_FAIL_MEMORY, LUA_FAIL_GARBAGE, LUA_FAIL__COUNT };

extern const char *const lua_hook_names[];    /* "route", "rules", "rerank" */
extern const char *const lua_fail_names[];    /* "error", "budget", "memory", "garbage" */
extern const char *const lua_source_names[];  /* enum lua_source; NULL-terminated */
extern const char *const lua_reason_names[];  /* enum lua_reason ("" for none) */
extern const char *const lua_tier_names[];    /* enum lua_tier */

/** Limits; 0 in any field means its default. */
struct lua_host_limits {
	uint32_t budget_us;          /**< per hook call (2000) */
	uint32_t memory_mb;          /**< soft ceiling after a call (64); hard = 2x: state rebuilt */
	uint32_t breaker_threshold;  /**< consecutive failures that open the breaker (20) */
	uint32_t preflight_ms;       /**< compile_check's forked run, whole set (1000) */
	const char *shown_dir;       /**< how messages name the plugins directory: the operator's one when
	                                  the state loads a staged copy (NULL: the directory loaded) */
};

/** Counters of one worker's policy layer. Plain stores by the owning
 * thread; survive reloads when the caller owns the struct. */
struct lua_host_stats {
	uint64_t calls[LUA_HOOK__COUNT];
	uint64_t failures[LUA_HOOK__COUNT][LUA_FAIL__COUNT];
	uint64_t breaker_skips;      /**< calls refused while the breaker was open */
	uint64_t breaker_trips;
	uint64_t rebuilds;           /**< states discarded over the hard memory ceiling */
	uint64_t reloads;            /**< successful swaps to a new generation */
	uint64_t reload_failures;
	uint64_t generation;         /**< of the running set */
	uint64_t memory_kb;          /**< Lua heap after the last call */
	uint32_t breaker_open;       /**< 1 until the next reload */
	uint32_t consecutive;        /**< failures since the last success */
	uint32_t err_seq;            /**< odd while last_error is being written */
	char last_error[256];        /**< "file:line: message" of the last failure */
};

/* Build a state: load lua_dir/recd_host.lua (which loads recd_ffi.lua and
 * recd.lua) and plugins_dir/{settings,route,rules,rerank}.lua, each
 * optional. `stats` may be NULL (the host keeps its own); the caller's
 * struct outlives reloads. err gets "file:line: message". */
int lua_host_create(struct lua_host **out, const char *plugins_dir, const char *lua_dir,
		    const struct lua_host_limits *lim, struct lua_host_stats *stats, uint64_t generation,
		    char *err, size_t errlen);
void lua_host_destroy(struct lua_host *h);

/* route(req) -> *out. -ENOENT without route.lua. Call once per request
 * before fetching candidates. The snapshot is optional here (NULL: the
 * item accessors see an empty catalogue). */
int lua_host_route(struct lua_host *h, const struct snap *snap, const struct lua_req *req,
		   struct lua_route *out);

/* rules(req, cands) then rerank(req, cands), in place: on 0, cands[0..*n)
 * is the answer, best first (the caller takes the first n_wanted); on a
 * negative code cands and *n are exactly as passed in. Items must be
 * snapshot indexes of `snap`, no duplicates. Returns 0 without change
 * when neither hook is defined. */
int lua_host_rank(struct lua_host *h, const struct snap *snap, const struct lua_req *req,
		  struct lua_cand *cands, uint32_t *n_cands, uint32_t n_wanted);
/* One of the two (recd-policy explain shows the list between them). */
int lua_host_run(struct lua_host *h, enum lua_hook hook, const struct snap *snap, const struct lua_req *req,
		 struct lua_cand *cands, uint32_t *n_cands, uint32_t n_wanted);
bool lua_host_has_hook(const struct lua_host *h, enum lua_hook hook);
/* The hook the last failing call failed in (rules or rerank after a
 * failed lua_host_rank; the first hook asked for when the gate refused). */
enum lua_hook lua_host_failed_hook(const struct lua_host *h);

/* Compile the whole set in a scratch state, then run it in a forked child
 * against fixture requests built from `snap` (NULL: route only and empty
 * candidate lists) with a wall-clock deadline (preflight_ms): a set that
 * fails to load, errors, returns garbage, crashes or hangs is refused with
 * "file:line: message" in err. Control thread only; blocks up to
 * preflight_ms. */
int lua_host_compile_check(const char *plugins_dir, const char *lua_dir, const struct lua_host_limits *lim,
			   const struct snap *snap, char *err, size_t errlen);

/* Generation published by the control thread after a successful
 * compile_check (ck_pr; starts at 1). */
uint64_t lua_host_publish(void);
uint64_t lua_host_published(void);

/* Between requests: when generation differs from the state's, or the
 * state must be rebuilt (memory), build a fresh state from the same
 * directories and swap *hp to it (breaker closed, stats kept). On failure
 * the old state keeps serving, reload_failures counts it and the error is
 * in last_error. Returns 1 when swapped, 0 when nothing to do, -errno. */
int lua_host_maybe_reload(struct lua_host **hp, uint64_t generation);

/* The owning thread swaps *hp to `n`, a state another thread built with
 * lua_host_create (own stats) and handed over with release/acquire
 * ordering, never used since: n takes over *hp's stats (breaker closed),
 * or `stats` when *hp is NULL (a worker whose first state failed).
 * Returns the old state (or NULL), which nothing uses any more: destroy
 * it on any thread. So a reload never compiles Lua on a worker. */
struct lua_host *lua_host_adopt(struct lua_host **hp, struct lua_host *n, struct lua_host_stats *stats);

/* The generation this state was built for. */
uint64_t lua_host_generation(const struct lua_host *h);

/* "<set name>@<generation>", e.g. "default@3". */
const char *lua_host_policy_name(const struct lua_host *h);
const struct lua_host_stats *lua_host_stats(const struct lua_host *h);
/* Copy last_error consistently from another thread. */
void lua_host_stats_last_error(const struct lua_host_stats *st, char *out, size_t len);

/* "because_you_viewed:<id>", "popular", ... for a ranked candidate
 * ("" when the policy set no reason). Returns the length written. */
size_t lua_host_reason_string(const struct snap *snap, const struct lua_cand *c, char *out, size_t len);
/* Functions the Lua API calls through the FFI (declared again in
 * lua/recd_ffi.lua; exported from the binary). Each takes the call
 * context, returns 0 or -errno, and checks every index it is given. */
RECD_EXPORT int lua_host_ffi_layout(const struct lua_layout **out);  /* count of rows */
RECD_EXPORT int lua_host_ffi_budget_check(struct lua_ctx *ctx);       /* -ETIME when over */
RECD_EXPORT int lua_host_ffi_enum_name(int kind, uint32_t value, const char **name); /* 0 src 1 reason 2 tier */
RECD_EXPORT int lua_host_ffi_snap_columns(const struct lua_ctx *ctx, struct lua_cols *out);
RECD_EXPORT int lua_host_ffi_item_id(const struct lua_ctx *ctx, uint32_t item, const char **p, uint32_t *len);
RECD_EXPORT int lua_host_ffi_item_find(const struct lua_ctx *ctx, const char *id, uint32_t len, uint32_t *item);
RECD_EXPORT int lua_host_ffi_category_name(const struct lua_ctx *ctx, uint32_t cat, const char **p,
					   uint32_t *len);
RECD_EXPORT int lua_host_ffi_category_find(const struct lua_ctx *ctx, const char *name, uint32_t len,
					   uint32_t *cat);
RECD_EXPORT int lua_host_ffi_item_similarity(const struct lua_ctx *ctx, uint32_t a, uint32_t b, float *out);
RECD_EXPORT int lua_host_ffi_time_now(double *wall_s, double *mono_s);
RECD_EXPORT int lua_host_ffi_log(const struct lua_ctx *ctx, const char *msg, uint32_t len);
RECD_EXPORT int lua_host_ffi_cands_sort(struct lua_ctx *ctx);
RECD_EXPORT int lua_host_ffi_cands_diversify(struct lua_ctx *ctx, uint32_t max_per_category);
RECD_EXPORT int lua_host_ffi_cands_mmr(struct lua_ctx *ctx, float lambda, uint32_t k);
RECD_EXPORT int lua_host_ffi_cands_drop_items(struct lua_ctx *ctx, const uint32_t *items, uint32_t n);
RECD_EXPORT int lua_host_ffi_cands_drop_unservable(struct lua_ctx *ctx);

#endif
