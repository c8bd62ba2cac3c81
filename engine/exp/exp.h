/* exp.h: A/B experiments — the declared set (plugins/experiments.lua,
 * read by exp_lua.c), the sticky assignment of a shopper to a variant,
 * and the slots that carry each (experiment, variant)'s runtime state
 * (guardrail switch, adaptive weight) across reloads.
 *
 * Assignment (docs/policies.md, "Experiments", states it for analysts):
 *   bucket          = XXH3_64(salt ":" user_id)            mod 10000
 *   exposure_bucket = XXH3_64(salt ":exposure:" user_id)   mod 10000
 * (XXH3 64-bit, seed 0, over the UTF-8 bytes; salt defaults to the
 * experiment's name). A shopper is in the experiment when exposure_bucket
 * < exposure x (10000 - H), in its holdout when exposure_bucket >= 10000 -
 * H, where H = holdout x 10000, and then gets the variant whose range
 * of `bucket` holds theirs: ranges follow the declared order, sized by
 * the weights. Two independent hashes make ramping (raising exposure)
 * move only the shoppers it adds: nobody leaves, nobody changes variant.
 * At most one experiment applies to a request: the first declared whose
 * placements match and whose exposure takes the shopper.
 *
 * Threads: the control thread builds a set and publishes it with the
 * policy generation it belongs to (exp_set_publish); workers read the
 * set of their Lua state's generation (exp_set_for) inside their epoch
 * section; the set a publish drops is retired through ck_epoch by the
 * caller. Slots are appended by the control thread only (names are
 * written before n_slots is raised); `disabled` and `alloc_bp` have one
 * writer, the experiment ledger.
 */
#ifndef RECD_EXP_H
#define RECD_EXP_H

#include <ck_epoch.h>
#include "core/common.h"
#include "lua/lua_types.h"

#define EXP_BUCKETS 10000u
#define EXP_MAX_EXPERIMENTS 16u
#define EXP_MAX_VARIANTS 8u            /* per experiment, shadow ones included */
#define EXP_MAX_PLACEMENTS 8u
#define EXP_NAME_LEN 48u               /* names of experiments, variants, placements, models */
#define EXP_SALT_LEN 64u
#define EXP_MAX_SLOTS 256u             /* (experiment, variant) pairs ever seen by this process */
#define EXP_NO_SLOT UINT32_MAX
#define LUA_HOOK_SLOTS 3u              /* route, rules, rerank (lua_host.h's enum lua_hook) */

/* One (experiment, variant) for the life of the process (or "holdout"). */
struct exp_slot {
	char experiment[EXP_NAME_LEN];
	char variant[EXP_NAME_LEN];
	uint32_t disabled;     /* ck_pr: a guardrail switched it off (control is served) */
	uint32_t alloc_bp;     /* ck_pr: adaptive (Thompson) weight in basis points; 0 = unset */
} cacheline_aligned;

extern struct exp_slot exp_slots[EXP_MAX_SLOTS];
uint32_t exp_slot_count(void);
/* Control thread: the slot of (experiment, variant), appended when new;
 * EXP_NO_SLOT when the table is full. */
uint32_t exp_slot_get(const char *experiment, const char *variant);

struct exp_source_weight {
	uint8_t source;        /* enum lua_source */
	float weight;          /* 0: drop it from the route; else its weight (0, 1] */
};

struct exp_variant {
	char name[EXP_NAME_LEN];
	char model[EXP_NAME_LEN];   /* "" = the main snapshot */
	int32_t model_slot;         /* srv model slot (0 = main) */
	uint32_t weight;            /* relative share of the experiment's exposed shoppers */
	uint32_t slot;
	uint32_t lua_index;         /* lua_req.variant: position over all variants of the set */
	bool shadow;                /* computed and compared, never served */
	bool has_params;            /* `params` override settings for its shoppers (Lua side) */
	char hooks[LUA_HOOK_SLOTS][EXP_NAME_LEN];   /* route, rules, rerank: its own hook file ("" = the set's) */
	uint32_t n_sources;
	struct exp_source_weight sources[LUA_ROUTE_MAX_SOURCES];
};

struct exp_guardrail {
	double error_rate;          /* a variant's rate may exceed control's by this much (absolute) */
	double fallback_rate;
	double p99_ratio;           /* its p99 may be this many times control's; 0 = unchecked */
	uint64_t min_requests;      /* both sides need this many requests before a check */
};

struct exp_experiment {
	char name[EXP_NAME_LEN];
	char salt[EXP_SALT_LEN];
	uint32_t salt_len;
	double exposure;            /* as declared: share of the shoppers outside the holdout */
	uint32_t exposure_bp;       /* exposure_bucket < this: in the experiment */
	uint32_t holdout_bp;
	uint32_t holdout_slot;      /* EXP_NO_SLOT without a holdout */
	uint32_t n_placements;      /* 0 = every request */
	char placements[EXP_MAX_PLACEMENTS][EXP_NAME_LEN];
	uint32_t n_variants;        /* served and shadow */
	uint32_t control;           /* index of the control variant ("control", else the first) */
	uint32_t n_shadow;
	bool thompson;              /* adaptive allocation between the served variants */
	double thompson_floor;      /* least share of each served variant */
	double min_detectable_effect, alpha, power;   /* for the sample size shown */
	struct exp_guardrail guard;
	uint32_t total_weight;      /* of the served variants */
	struct exp_variant v[EXP_MAX_VARIANTS];
};

struct exp_set {
	ck_epoch_entry_t retire;
	uint64_t generation;        /* the policy generation it belongs to */
	struct exp_set *prev;       /* the set published before (until the next publish), or NULL */
	uint32_t n;
	uint32_t n_lua;             /* variants over all experiments (lua_req.variant < n_lua) */
	struct exp_experiment e[EXP_MAX_EXPERIMENTS];
};

#define EXP_PICK_HOLDOUT 1u     /* in the holdout: control served, counted apart */
#define EXP_PICK_GUARDED 2u     /* assigned a variant a guardrail switched off: control served */

struct exp_pick {
	uint32_t experiment;        /* index in the set */
	uint32_t variant;           /* index of the variant served (control for holdout/guarded) */
	uint32_t assigned;          /* index of the variant the buckets gave */
	uint32_t slot;              /* counters: the served variant's, or the holdout's */
	uint32_t bucket, exposure_bucket;
	uint32_t flags;
};

/* The documented hash: XXH3_64(salt ":" tag user) mod 10000, tag "" or
 * "exposure:". */
uint32_t exp_bucket(const char *salt, size_t salt_len, const char *tag, const char *user, size_t user_len);

/* The variant a bucket falls in, from weights only (no runtime state):
 * ranges in declared order over the served variants. */
uint32_t exp_variant_for_bucket(const struct exp_experiment *e, uint32_t bucket);

/* Assign a shopper (user_id required; placement may be NULL). false: no
 * experiment applies. Lock-free, no allocation; reads the slots' runtime
 * state (guardrails, adaptive weights). */
bool exp_assign(const struct exp_set *set, const char *user, size_t user_len, const char *placement,
		size_t placement_len, struct exp_pick *out);

/* The name the response and the stats use for the pick's variant:
 * "holdout", else the served variant's name. */
const char *exp_pick_variant_name(const struct exp_set *set, const struct exp_pick *p);

/* Publication. Control thread: publish `s` (never NULL: no experiments
 * is an empty set; generation set by the caller); returns the set that is no longer reachable (the previous
 * set's prev), to retire with ck_epoch_call, or NULL. */
struct exp_set *exp_set_publish(struct exp_set *s);
/* Readers, inside an epoch section: the set for policy generation `gen`
 * (the current one or the one before), or NULL. */
const struct exp_set *exp_set_for(uint64_t gen);
/* The newest set (admin, ledger), inside an epoch section. */
const struct exp_set *exp_set_current(void);
/* Shutdown: forget the published sets (no reader may remain); returns
 * them for freeing (a chain through prev). */
struct exp_set *exp_set_take_all(void);

#endif
