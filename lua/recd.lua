-- recd.lua: the policy API, what `local recd = require "recd"` returns.
--
-- Policies never see FFI objects: the candidate list and the request are
-- plain Lua objects whose methods read and write the engine's arrays in
-- place (zero copy, no table per item). Every position and item index is
-- checked, so a policy cannot reach memory outside the current request.
-- Heavy loops (sort, diversify, MMR, set lookups) run in C through
-- lua_host_ffi_*; loops that call back into the policy check the time
-- budget every 64 items. Reference: docs/policies.md.
--
-- Loaded by recd_host.lua with the call context (lightuserdata); returns
-- the public module and the host's private handle.
local ffi = require "ffi"
local bit = require "bit"

local C = ffi.C
local CTX = ffi.cast("struct lua_ctx *", (...))
local band, bor = bit.band, bit.bor
local type, error, tostring, select = type, error, tostring, select
local floor, huge = math.floor, math.huge
local fstring = ffi.string

local NO_ITEM = 0xffffffff
local F_ON_SALE, F_OUT_OF_STOCK, F_BOOSTED, F_DEMOTED = 1, 2, 256, 512
local CAND_FLAGS = { on_sale = F_ON_SALE, out_of_stock = F_OUT_OF_STOCK,
	boosted = F_BOOSTED, demoted = F_DEMOTED }
local SNAP_FLAGS = { available = 1 }   -- SNAP_ITEM_*

-- Out-parameters, allocated once (OpenResty style).
local strp = ffi.new("const char *[1]")
local u32p = ffi.new("uint32_t[1]")
local fltp = ffi.new("float[1]")
local dblp = ffi.new("double[2]")
local TMP = ffi.new("struct lua_cand")
local CAND_SIZE = ffi.sizeof("struct lua_cand")

-- Enum names come from C, the one source of truth.
local function enum_names(kind)
	local byname, byval, i = {}, {}, 0
	while C.lua_host_ffi_enum_name(kind, i, strp) == 0 do
		local s = fstring(strp[0])
		byval[i], byname[s] = s, i
		i = i + 1
	end
	return byval, byname
end
local SOURCE_NAME, SOURCE = enum_names(0)
local REASON_NAME, REASON = enum_names(1)
local TIER_NAME, TIER = enum_names(2)

local recd = {
	version = 1,
	settings = {},      -- set by the host from plugins/settings.lua
	sources = SOURCE_NAME, reasons = REASON_NAME, tiers = TIER_NAME,
}

---------------------------------------------------------------- state --
-- Refreshed by begin() at the start of every hook call.
local P                                   -- struct lua_cand *
local COLS = ffi.new("struct lua_cols")
local CAT, PRICE, POP, STOCK, SFLAGS      -- column pointers
local N_ITEMS = 0
local seen_seq = -1
local cat_cache, id_cache = {}, {}        -- per snapshot
local busy = false                        -- inside a filter/boost callback

local function budget_error(level)
	error("time budget exceeded", level + 1)
end
local function check_budget(level)
	if C.lua_host_ffi_budget_check(CTX) ~= 0 then budget_error(level + 1) end
end

-- Columns are fetched on every call (a snapshot may be swapped between
-- requests); the name caches only when the snapshot changed.
local function refresh_snapshot()
	if CTX.snap_seq ~= seen_seq then
		seen_seq = CTX.snap_seq
		cat_cache, id_cache = {}, {}
	end
	if C.lua_host_ffi_snap_columns(CTX, COLS) ~= 0 then
		N_ITEMS = 0
	else
		N_ITEMS = COLS.n_items
	end
	CAT, PRICE, POP, STOCK, SFLAGS = COLS.category, COLS.price, COLS.popularity,
		COLS.stock, COLS.flags
end

local function check_item(item, level)
	if type(item) ~= "number" or not (item >= 0 and item < N_ITEMS) then
		error("not an item index of the current snapshot: " .. tostring(item), level + 1)
	end
	return floor(item)
end

------------------------------------------------------------ the items --
-- Item accessors take a snapshot item index (what cands:item(i) returns).

function recd.id(item)
	item = check_item(item, 2)
	C.lua_host_ffi_item_id(CTX, item, strp, u32p)
	return fstring(strp[0], u32p[0])
end

-- Index of an item id, or nil when the snapshot has no such item.
function recd.item(id)
	if type(id) ~= "string" then error("recd.item: expects an item id string", 2) end
	local v = id_cache[id]
	if v == nil then
		v = C.lua_host_ffi_item_find(CTX, id, #id, u32p) == 0 and u32p[0] or false
		id_cache[id] = v
	end
	return v or nil
end

function recd.category(item) return CAT[check_item(item, 2)] end
function recd.price(item) return PRICE[check_item(item, 2)] end
function recd.popularity(item) return POP[check_item(item, 2)] end
function recd.stock(item) return STOCK[check_item(item, 2)] end
function recd.available(item) return band(SFLAGS[check_item(item, 2)], 1) ~= 0 end

function recd.category_name(item)
	local c = CAT[check_item(item, 2)]
	C.lua_host_ffi_category_name(CTX, c, strp, u32p)
	return fstring(strp[0], u32p[0])
end

-- Category index of a category name, or nil.
function recd.category_index(name)
	if type(name) ~= "string" then error("recd.category_index: expects a name", 2) end
	local v = cat_cache[name]
	if v == nil then
		v = C.lua_host_ffi_category_find(CTX, name, #name, u32p) == 0 and u32p[0] or false
		cat_cache[name] = v
	end
	return v or nil
end

-- Snapshot flags of an item by name ("available"); false for a flag the
-- snapshot format does not define, so a policy can test for one safely.
function recd.has_flag(item, name)
	local f = SNAP_FLAGS[name]
	item = check_item(item, 2)
	return f ~= nil and band(SFLAGS[item], f) ~= 0
end
function recd.flag_defined(name)
	return SNAP_FLAGS[name] ~= nil or CAND_FLAGS[name] ~= nil
end

-- Cosine similarity of two items' embeddings.
function recd.similarity(a, b)
	a, b = check_item(a, 2), check_item(b, 2)
	C.lua_host_ffi_item_similarity(CTX, a, b, fltp)
	return fltp[0]
end

-------------------------------------------------------------- the time --
function recd.now()              -- wall clock, seconds since the epoch
	C.lua_host_ffi_time_now(dblp, nil)
	return dblp[0]
end
function recd.clock()            -- monotonic seconds, for measuring
	C.lua_host_ffi_time_now(nil, dblp + 1)
	return dblp[1]
end
-- Hour of the day 0..23 and weekday 1..7 (Monday = 1), in UTC shifted by
-- utc_offset hours (e.g. 1 for Paris in winter).
function recd.hour(utc_offset)
	return floor((recd.now() / 3600 + (utc_offset or 0)) % 24)
end
function recd.weekday(utc_offset)
	local days = floor(recd.now() / 86400 + (utc_offset or 0) / 24)
	return (days + 3) % 7 + 1   -- 1970-01-01 was a Thursday
end

----------------------------------------------------------- the request --
-- req fields: user_id (string or nil), known (boolean), interactions, n,
-- placement, device, region (strings or nil), context_item (item index or
-- nil), user (snapshot user index or nil), recent_count, cart_count,
-- purchased_count, experiment and variant (names, or nil outside an
-- experiment). Methods below read the item lists.
local Req = {}
Req.__index = Req
Req.__metatable = false
local VARIANTS = {}                       -- lua_req.variant -> { experiment, variant, params }
local PARAMS                              -- the request variant's params, or nil
local HOOKS                               -- the request variant's own hooks, or nil
local REQ = setmetatable({}, Req)

local function opt_str(p, len)
	if p == nil then return nil end
	return fstring(p, len)
end

local function refresh_req()
	local r = CTX.req
	if r == nil then return end
	REQ.user_id = opt_str(r.user_id, r.user_id_len)
	REQ.known = r.known ~= 0
	REQ.interactions = r.interactions
	REQ.n = r.n
	REQ.placement = opt_str(r.placement, r.placement_len)
	REQ.device = opt_str(r.device, r.device_len)
	REQ.region = opt_str(r.region, r.region_len)
	REQ.context_item = r.context_item ~= NO_ITEM and r.context_item or nil
	REQ.user = r.user ~= NO_ITEM and r.user or nil
	REQ.recent_count = r.n_recent
	REQ.cart_count = r.n_cart
	REQ.purchased_count = r.n_purchased
	local vi = r.variant
	local v = vi ~= NO_ITEM and VARIANTS[vi] or nil
	REQ.experiment = v and v.experiment or nil
	REQ.variant = v and v.variant or nil
	PARAMS = v and v.params or nil
	HOOKS = v and v.hooks or nil
end

local function list_get(arr, n, i, what)
	if type(i) ~= "number" or not (i >= 1 and i <= n) then
		error(what .. ": position " .. tostring(i) .. " out of range 1.." .. n, 3)
	end
	return arr[i - 1]
end
local function list_has(arr, n, item)
	for j = 0, n - 1 do
		if arr[j] == item then return true end
	end
	return false
end

function Req.recent(_, i) local r = CTX.req return list_get(r.recent, r.n_recent, i, "req:recent") end
function Req.cart(_, i) local r = CTX.req return list_get(r.cart, r.n_cart, i, "req:cart") end
function Req.purchased(_, i)
	local r = CTX.req
	return list_get(r.purchased, r.n_purchased, i, "req:purchased")
end
function Req.viewed(_, item) local r = CTX.req return list_has(r.recent, r.n_recent, item) end
function Req.in_cart(_, item) local r = CTX.req return list_has(r.cart, r.n_cart, item) end
function Req.has_purchased(_, item)
	local r = CTX.req
	return list_has(r.purchased, r.n_purchased, item)
end

-- Cold-start tier of a request: "anonymous" (no history), "new"
-- (1 .. returning_after-1 interactions) or "returning" (that many, or a
-- trained embedding in the snapshot: the model already knows them).
function recd.tier(req, returning_after)
	if req.user then return "returning" end
	local n = req.interactions or 0
	if n <= 0 then return "anonymous" end
	if n < (returning_after or 10) then return "new" end
	return "returning"
end

-- Stable bucket 0..n-1 of a string (e.g. a user id), for experiments.
function recd.bucket(s, n)
	if type(s) ~= "string" or type(n) ~= "number" or n < 1 then
		error("recd.bucket: expects (string, count)", 2)
	end
	local h = 2166136261            -- FNV-1a, 32 bits
	for i = 1, #s do
		h = bit.bxor(h, s:byte(i))
		h = bit.tobit(h * 16777619 % 4294967296)
	end
	return (h % 4294967296) % floor(n)
end

-------------------------------------------------- the candidate list --
-- Positions are 1-based like Lua arrays: for i = 1, cands:count() do ... end
local Cands = {}
Cands.__index = Cands
Cands.__metatable = false
Cands.__newindex = function() error("the candidate list has no fields to set; use its methods", 2) end
local CANDS = setmetatable({}, Cands)

local function at(i, level)
	if type(i) ~= "number" or not (i >= 1 and i <= CTX.n_cands) then
		error("candidate position " .. tostring(i) .. " out of range 1.." .. CTX.n_cands, level + 1)
	end
	return floor(i) - 1
end
local function not_busy(what)
	if busy then error(what .. ": the list cannot change inside a filter or boost callback", 3) end
end
local function c_call(rc)
	if rc ~= 0 then
		if rc == -62 then budget_error(3) end          -- -ETIME
		error("candidate operation failed (" .. rc .. ")", 3)
	end
end

function Cands.count() return CTX.n_cands end
function Cands.item(_, i) return P[at(i, 2)].item end
function Cands.id(_, i) return recd.id(P[at(i, 2)].item) end
function Cands.score(_, i) return P[at(i, 2)].score end
function Cands.source(_, i) return SOURCE_NAME[P[at(i, 2)].source] end
function Cands.reason(_, i) return REASON_NAME[P[at(i, 2)].reason] end
function Cands.category(_, i) return CAT[P[at(i, 2)].item] end
function Cands.price(_, i) return PRICE[P[at(i, 2)].item] end
-- Item the candidate's source or reason refers to (e.g. the viewed item a
-- similar item was found from), or nil.
function Cands.ref_item(_, i)
	local r = P[at(i, 2)].reason_item
	return r ~= NO_ITEM and r or nil
end
function Cands.has_flag(_, i, name)
	local f = CAND_FLAGS[name]
	return f ~= nil and band(P[at(i, 2)].flags, f) ~= 0
end

function Cands.set_score(_, i, s)
	local j = at(i, 2)
	if type(s) ~= "number" or s ~= s or s == huge or s == -huge then
		error("set_score: score must be a finite number", 2)
	end
	P[j].score = s
end

-- Say why position i is shown: a name of recd.reasons, optionally with the
-- item it refers to ("because_you_viewed", item). "because_you_viewed:<id>"
-- is accepted too.
function Cands.explain(_, i, reason, ref)
	local j = at(i, 2)
	local code = REASON[reason]
	if code == nil and type(reason) == "string" then
		local name, id = reason:match("^([%w_]+):(.+)$")
		if name then code, ref = REASON[name], recd.item(id) end
	end
	if code == nil then error("explain: unknown reason " .. tostring(reason), 2) end
	if ref ~= nil then ref = check_item(ref, 2) end
	P[j].reason = code
	P[j].reason_item = ref or NO_ITEM
end

-- Iterate positions and items: for i, item in cands:each() do ... end
local function each_next(_, i)
	i = i + 1
	if i <= CTX.n_cands then return i, P[i - 1].item end
end
function Cands.each() return each_next, CANDS, 0 end

-- Keep the candidates for which fn(item, i) is true, in order.
function Cands.filter(self, fn)
	if type(fn) ~= "function" then error("filter: expects a function(item, i)", 2) end
	not_busy("filter")
	busy = true
	local n, w = CTX.n_cands, 0
	for r = 0, n - 1 do
		if band(r, 63) == 63 and C.lua_host_ffi_budget_check(CTX) ~= 0 then
			busy = false
			budget_error(2)
		end
		if fn(P[r].item, r + 1) then
			if w ~= r then P[w] = P[r] end
			w = w + 1
		end
	end
	busy = false
	CTX.n_cands = w
	return self
end

-- Scale a score by factor m: above 1 boosts, below 1 demotes, whatever
-- the score's sign.
local function scale(j, m)
	local s = P[j].score
	if s >= 0 then P[j].score = s * m else P[j].score = s / m end
	if m > 1 then
		P[j].flags = bor(P[j].flags, F_BOOSTED)
	elseif m < 1 then
		P[j].flags = bor(P[j].flags, F_DEMOTED)
	end
end
local function check_factor(m, what)
	if type(m) ~= "number" or not (m > 0 and m < huge) then
		error(what .. ": a factor must be a positive number, got " .. tostring(m), 3)
	end
end

-- boost(fn): fn(item, i) returns a factor (or nil for no change).
-- boost{ on_sale = 1.2, categories = { shoes = 1.5 }, items = { ["sku-1"] = 2 } }
function Cands.boost(self, spec)
	not_busy("boost")
	local n = CTX.n_cands
	if type(spec) == "function" then
		busy = true
		for r = 0, n - 1 do
			if band(r, 63) == 63 and C.lua_host_ffi_budget_check(CTX) ~= 0 then
				busy = false
				budget_error(2)
			end
			local m = spec(P[r].item, r + 1)
			if m ~= nil then
				if type(m) ~= "number" or not (m > 0 and m < huge) then busy = false end
				check_factor(m, "boost")
				scale(r, m)
			end
		end
		busy = false
		return self
	end
	if type(spec) ~= "table" then error("boost: expects a function or a table", 2) end
	local sale = spec.on_sale
	if sale ~= nil then
		check_factor(sale, "boost.on_sale")
		for r = 0, n - 1 do
			if band(P[r].flags, F_ON_SALE) ~= 0 then scale(r, sale) end
		end
	end
	if spec.categories ~= nil then
		for name, m in pairs(spec.categories) do
			check_factor(m, "boost.categories")
			local c = recd.category_index(name)
			if c then
				for r = 0, n - 1 do
					if CAT[P[r].item] == c then scale(r, m) end
				end
			end
		end
	end
	if spec.items ~= nil then
		for id, m in pairs(spec.items) do
			check_factor(m, "boost.items")
			local it = recd.item(id)
			if it then
				for r = 0, n - 1 do
					if P[r].item == it then scale(r, m) end
				end
			end
		end
	end
	return self
end

-- Best score first; equal scores keep their order.
function Cands.sort(self)
	not_busy("sort")
	c_call(C.lua_host_ffi_cands_sort(CTX))
	return self
end

-- At most max_per_category items of one category, in order; the others
-- move to the end (in order), so the list is never shorter than before.
function Cands.diversify(self, opts)
	not_busy("diversify")
	local m = type(opts) == "table" and opts.max_per_category or opts
	if type(m) ~= "number" or m < 1 then
		error("diversify: max_per_category must be a number >= 1", 2)
	end
	c_call(C.lua_host_ffi_cands_diversify(CTX, floor(m)))
	return self
end

-- Maximal marginal relevance over item embeddings: pick k items one at a
-- time, each maximising lambda * relevance - (1 - lambda) * similarity to
-- those already picked. lambda 1 = pure score order. Defaults: lambda 0.7,
-- k = the number of items asked for.
function Cands.mmr(self, opts)
	not_busy("mmr")
	opts = opts or {}
	local lambda, k = opts.lambda or 0.7, opts.k or CTX.n_wanted
	if type(lambda) ~= "number" or not (lambda >= 0 and lambda <= 1) then
		error("mmr: lambda must be between 0 and 1", 2)
	end
	if type(k) ~= "number" or k < 1 then error("mmr: k must be >= 1", 2) end
	c_call(C.lua_host_ffi_cands_mmr(CTX, lambda, floor(k)))
	return self
end

-- Keep the first n.
function Cands.top(self, n)
	not_busy("top")
	if type(n) ~= "number" or n < 0 then error("top: expects a count", 2) end
	if n < CTX.n_cands then CTX.n_cands = floor(n) end
	return self
end

function Cands.swap(self, i, j)
	not_busy("swap")
	local a, b = at(i, 2), at(j, 2)
	ffi.copy(TMP, P + a, CAND_SIZE)
	P[a] = P[b]
	P[b] = TMP
	return self
end

-- Unavailable or out of stock in the snapshot or in live state.
function Cands.drop_out_of_stock(self)
	not_busy("drop_out_of_stock")
	c_call(C.lua_host_ffi_cands_drop_unservable(CTX))
	return self
end
function Cands.drop_purchased(self)
	not_busy("drop_purchased")
	local r = CTX.req
	c_call(C.lua_host_ffi_cands_drop_items(CTX, r.purchased, r.n_purchased))
	return self
end
function Cands.drop_in_cart(self)
	not_busy("drop_in_cart")
	local r = CTX.req
	c_call(C.lua_host_ffi_cands_drop_items(CTX, r.cart, r.n_cart))
	return self
end

-- Drop items of the named categories (a list of names).
function Cands.drop_categories(self, names)
	if type(names) ~= "table" then error("drop_categories: expects a list of names", 2) end
	local c1, c2, c3, more
	for _, name in ipairs(names) do
		local c = recd.category_index(name)
		if c then
			if not c1 then c1 = c elseif not c2 then c2 = c elseif not c3 then c3 = c
			else more = more or {}; more[c] = true end
		end
	end
	if not c1 then return self end
	return self:filter(function(item)
		local c = CAT[item]
		return c ~= c1 and c ~= c2 and c ~= c3 and not (more and more[c])
	end)
end

-- Keep items priced within [lo, hi] (either may be nil).
function Cands.price_between(self, lo, hi)
	lo, hi = lo or -huge, hi or huge
	if type(lo) ~= "number" or type(hi) ~= "number" then
		error("price_between: bounds must be numbers", 2)
	end
	return self:filter(function(item)
		local p = PRICE[item]
		return p >= lo and p <= hi
	end)
end

----------------------------------------------------------------- misc --
-- Log a line at debug level (recd runs with log_level=debug to see them).
function recd.log(fmt, ...)
	local msg = select("#", ...) > 0 and string.format(fmt, ...) or tostring(fmt)
	C.lua_host_ffi_log(CTX, msg, #msg)
end

-- Lua memory in use by this worker's policies, in KiB.
function recd.memory_kb() return collectgarbage("count") end
-- Let the collector run a step (policies cannot call collectgarbage).
function recd.gc_step() collectgarbage("step") end

-- setting("rules", "max_price", 100) = settings.rules.max_price or 100,
-- unless the request's experiment variant overrides it (params.rules.max_price).
function recd.setting(section, key, default)
	local p = PARAMS and PARAMS[section]
	if type(p) == "table" and p[key] ~= nil then return p[key] end
	local s = recd.settings[section]
	if type(s) ~= "table" then return default end
	local v = s[key]
	if v == nil then return default end
	return v
end

------------------------------------------------------- host interface --
-- Not visible to policies: recd_host.lua calls these around each hook.
local host = { req = REQ, cands = CANDS, SOURCE = SOURCE, TIER = TIER }

function host.begin()
	refresh_snapshot()
	P = CTX.cands
	busy = false
	refresh_req()
end

function host.budget_tripped()
	return CTX.tripped ~= 0
end

host.check_budget = check_budget

-- The experiments' variants by lua_req.variant (0-based, the order of
-- plugins/experiments.lua), for req.experiment / req.variant and the
-- variant's params in recd.setting.
function host.set_variants(list)
	VARIANTS = list
end

-- The current request's variant hooks ({ route = fn, route_at = "file:line", ... }) or nil.
function host.hooks()
	return HOOKS
end

return recd, host
