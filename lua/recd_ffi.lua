-- recd_ffi.lua: every FFI declaration of recd, in one place.
--
-- Mirrors engine/lua/lua_types.h and the lua_host_ffi_* functions of
-- engine/lua/lua_host.c. Each state checks at load that sizes and offsets
-- agree with C (recd_host.lua, check_layout); change both sides together.
-- Declarations only: no code here.
local ffi = require "ffi"

ffi.cdef [[
struct lua_cand {
	uint32_t item;
	float score;
	uint8_t source;
	uint8_t reason;
	uint16_t flags;
	uint32_t reason_item;
	uint32_t orig;
};

struct lua_req {
	const char *user_id;
	const uint32_t *recent;
	const uint32_t *cart;
	const uint32_t *purchased;
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
	uint32_t user;
	uint32_t interactions;
	uint32_t context_item;
	uint32_t n;
	uint8_t known;
	uint8_t reserved[3];
	uint32_t variant;
};

struct lua_route_source {
	uint32_t source;
	uint32_t n;
	float weight;
};

struct lua_route {
	uint32_t tier;
	uint32_t n_sources;
	struct lua_route_source sources[8];
	char policy[48];
};

struct lua_cols {
	const uint32_t *category;
	const float *price;
	const float *popularity;
	const uint32_t *stock;
	const uint32_t *flags;
	const float *emb;
	const float *user_emb;
	uint32_t n_items;
	uint32_t n_categories;
	uint32_t n_users;
	uint32_t dim;
	uint32_t stride;
	uint32_t reserved;
};

struct lua_ctx {
	const struct lua_req *req;
	struct lua_cand *cands;
	struct lua_route *route;
	const void *snap;
	uint64_t deadline_ns;
	uint32_t snap_seq;
	uint32_t n_cands;
	uint32_t n_wanted;
	uint32_t tripped;
};

struct lua_layout {
	const char *type;
	const char *field;
	uint32_t offset;
	uint32_t size;
};

int lua_host_ffi_layout(const struct lua_layout **out);
int lua_host_ffi_budget_check(struct lua_ctx *ctx);
int lua_host_ffi_enum_name(int kind, uint32_t value, const char **name);
int lua_host_ffi_snap_columns(const struct lua_ctx *ctx, struct lua_cols *out);
int lua_host_ffi_item_id(const struct lua_ctx *ctx, uint32_t item, const char **p, uint32_t *len);
int lua_host_ffi_item_find(const struct lua_ctx *ctx, const char *id, uint32_t len, uint32_t *item);
int lua_host_ffi_category_name(const struct lua_ctx *ctx, uint32_t cat, const char **p, uint32_t *len);
int lua_host_ffi_category_find(const struct lua_ctx *ctx, const char *name, uint32_t len, uint32_t *cat);
int lua_host_ffi_item_similarity(const struct lua_ctx *ctx, uint32_t a, uint32_t b, float *out);
int lua_host_ffi_time_now(double *wall_s, double *mono_s);
int lua_host_ffi_log(const struct lua_ctx *ctx, const char *msg, uint32_t len);
int lua_host_ffi_cands_sort(struct lua_ctx *ctx);
int lua_host_ffi_cands_diversify(struct lua_ctx *ctx, uint32_t max_per_category);
int lua_host_ffi_cands_mmr(struct lua_ctx *ctx, float lambda, uint32_t k);
int lua_host_ffi_cands_drop_items(struct lua_ctx *ctx, const uint32_t *items, uint32_t n);
int lua_host_ffi_cands_drop_unservable(struct lua_ctx *ctx);
]]
