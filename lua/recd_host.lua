-- recd_host.lua: builds one worker's policy set inside its LuaJIT state.
--
-- Run by engine/lua/lua_host.c with (ctx, lua_dir, plugins_dir). It
-- declares the FFI (recd_ffi.lua), checks the C/FFI layout, loads the API
-- (recd.lua), hardens the shared standard library, then loads
-- plugins/settings.lua and the hooks route.lua, rules.lua, rerank.lua (each
-- optional) into sandboxes and returns the dispatch functions the host
-- calls. This file and recd.lua run privileged; nothing a plugin can reach
-- leads back here.
-- shown_dir: how file:line messages name the plugins directory (the
-- operator's, when plugins_dir is the staged private copy).
local ctx_ud, lua_dir, plugins_dir, shown_dir = ...
shown_dir = shown_dir or plugins_dir

local ffi = require "ffi"
local C = ffi.C

local function run_file(path, ...)
	local f, err = loadfile(path, "t")
	if not f then error(err, 0) end
	return f(...)
end

run_file(lua_dir .. "/recd_ffi.lua")

-- Sizes and offsets of every shared struct, as C sees them, against ffi.
local function check_layout()
	local tab = ffi.new("const struct lua_layout *[1]")
	local n = C.lua_host_ffi_layout(tab)
	local bad = {}
	for i = 0, n - 1 do
		local e = tab[0][i]
		local t = "struct " .. ffi.string(e.type)
		if e.field == nil then
			local sz = ffi.sizeof(t)
			if sz ~= e.size then
				bad[#bad + 1] = string.format("sizeof(%s): C %d, ffi %d", t, e.size, sz)
			end
		else
			local f = ffi.string(e.field)
			local off = ffi.offsetof(t, f)
			if off ~= e.offset then
				bad[#bad + 1] = string.format("offsetof(%s, %s): C %d, ffi %s", t, f, e.offset,
					tostring(off))
			end
		end
	end
	if #bad > 0 then
		return nil, "recd_ffi.lua disagrees with lua_types.h: " .. table.concat(bad, "; ")
	end
	return n
end
local checked, layout_err = check_layout()
if not checked then error(layout_err, 0) end

local recd, host = run_file(lua_dir .. "/recd.lua", ctx_ud)
local REQ, CANDS = host.req, host.cands

------------------------------------------------------------- sandbox --
-- Shared library tables are hardened in place, because string methods
-- ("x"):dump() reach the real string table whatever a sandbox holds.
string.dump = nil
do
	local srep = string.rep
	string.rep = function(s, n, sep)
		if type(n) == "number" and n > 0 and (#tostring(s) + #(sep or "")) * n > 1048576 then
			error("string.rep: result larger than 1 MiB", 2)
		end
		return srep(s, n, sep)
	end
	getmetatable("").__metatable = false
end

local function copy(t)
	local r = {}
	for k, v in pairs(t) do r[k] = v end
	return r
end

local RECD = setmetatable({}, {
	__index = recd,
	__newindex = function() error("the recd module is read-only", 2) end,
	__metatable = false,
})
package.loaded.recd = RECD

-- pcall must not swallow the budget: once a limit tripped, every error
-- goes on up to the host.
local opcall, oxpcall, budget_tripped = pcall, xpcall, host.budget_tripped
local function rethrow(ok, ...)
	if not ok and budget_tripped() then error((...), 0) end
	return ok, ...
end

local function make_env()
	local env = {
		assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
		select = select, tonumber = tonumber, tostring = tostring, type = type,
		unpack = unpack, rawequal = rawequal, rawget = rawget,
		setmetatable = setmetatable, getmetatable = getmetatable,
		string = copy(string), table = copy(table), math = copy(math), bit = copy(bit),
		os = { time = os.time, clock = os.clock },
	}
	env.pcall = function(f, ...) return rethrow(opcall(f, ...)) end
	env.xpcall = function(f, h, ...) return rethrow(oxpcall(f, h, ...)) end
	env.require = function(name)
		if name == "recd" then return RECD end
		error("require: policies may only require \"recd\" (asked for " .. tostring(name) .. ")", 2)
	end
	-- Source text only, never bytecode, and always inside this sandbox.
	env.load = function(chunk, name)
		if type(chunk) ~= "string" then error("load: only source text is accepted", 2) end
		return load(chunk, name, "t", env)
	end
	env.loadstring = env.load
	env._G = env
	return env
end

------------------------------------------------------------- plugins --
local function exists(path)
	local f = io.open(path, "r")
	if f then f:close() return true end
	return false
end

local function load_plugin(name)
	local path = plugins_dir .. "/" .. name .. ".lua"
	if not exists(path) then return nil end
	local fh = assert(io.open(path, "rb"))
	local text = fh:read("*a")
	fh:close()
	local shown = shown_dir .. "/" .. name .. ".lua"
	local env = make_env()
	-- Source text only; named as the operator's file in every message.
	local f, err = load(text, "@" .. shown, "t", env)
	if not f then error(err, 0) end
	local ret = f()
	return shown, env, ret
end

local settings_path, _, settings = load_plugin("settings")
if settings_path then
	if type(settings) ~= "table" then
		error(settings_path .. ": must return a table of settings", 0)
	end
	recd.settings = settings
end

-- A hook from `file`.lua (default: the hook's own name): the function the
-- file returns, or the global it defines under the hook's name.
local function load_hook(name, file)
	local path, env, ret = load_plugin(file or name)
	if not path then return nil end
	local fn = type(ret) == "function" and ret or env[name]
	if type(fn) ~= "function" then
		error(path .. ": defines no function " .. name .. "(...)", 0)
	end
	local info = debug.getinfo(fn, "S")
	return fn, info.short_src .. ":" .. info.linedefined
end

-- experiments.lua: the engine validates it and assigns shoppers (C);
-- here each variant's params and its own hooks (`hooks = { rerank =
-- "rerank_b" }`: rerank_b.lua replaces rerank.lua for its shoppers) are
-- kept, by the index C puts in lua_req.variant (variants in file order
-- over all experiments).
do
	local exp_path, _, exps = load_plugin("experiments")
	local list, n = {}, 0
	if exp_path and type(exps) == "table" then
		local xs = type(exps.experiments) == "table" and exps.experiments or exps
		for _, x in ipairs(xs) do
			for _, v in ipairs(type(x) == "table" and type(x.variants) == "table" and x.variants or {}) do
				local entry = { experiment = x.name, variant = type(v) == "table" and v.name or nil,
					params = type(v) == "table" and type(v.params) == "table" and v.params or nil }
				if type(v) == "table" and type(v.hooks) == "table" then
					entry.hooks = {}
					for _, hook in ipairs({ "route", "rules", "rerank" }) do
						local file = v.hooks[hook]
						if type(file) == "string" then
							local fn, at = load_hook(hook, file)
							if not fn then
								error(exp_path .. ": variant '" .. tostring(v.name) .. "': no " .. file ..
									".lua for its " .. hook .. " hook", 0)
							end
							entry.hooks[hook], entry.hooks[hook .. "_at"] = fn, at
						end
					end
				end
				list[n] = entry
				n = n + 1
			end
		end
	end
	host.set_variants(list)
end

local route_fn, route_at = load_hook("route")
local rules_fn, rules_at = load_hook("rules")
local rerank_fn, rerank_at = load_hook("rerank")

------------------------------------------------------------ dispatch --
-- Each returns 0, or 1 and a message when the hook returned garbage
-- (errors are raised and caught by the host's lua_pcall).
local CTX = ffi.cast("struct lua_ctx *", ctx_ud)
local SOURCE, TIER = host.SOURCE, host.TIER
local MAX_SOURCES, MAX_N = 8, 10000

local function garbage(at, msg)
	return 1, at .. ": " .. msg
end

local function route_dispatch()
	host.begin()
	-- The shopper's experiment variant may bring its own hook.
	local vh = host.hooks()
	local fn, at = route_fn, route_at
	if vh and vh.route then fn, at = vh.route, vh.route_at end
	local a, b, c = fn(REQ)
	local policy, tier, sources
	if type(a) == "table" then
		policy, tier, sources = a.policy, a.tier, a.sources
	elseif type(a) == "string" then
		policy, sources, tier = a, b, c
	else
		return garbage(at, "route returned a " .. type(a) ..
			" (expected { policy = ..., sources = { { \"popular\", 50 }, ... } })")
	end
	if type(policy) ~= "string" or #policy == 0 or #policy >= 48 then
		return garbage(at, "route: policy must be a name of 1..47 characters")
	end
	if tier == nil then tier = recd.tier(REQ) end
	local t = TIER[tier]
	if t == nil then return garbage(at, "route: unknown tier " .. tostring(tier)) end
	if type(sources) ~= "table" or #sources == 0 or #sources > MAX_SOURCES then
		return garbage(at, "route: sources must be a list of 1.." .. MAX_SOURCES ..
			" { name, count [, weight] } entries")
	end
	local out = CTX.route
	for i = 1, #sources do
		local s = sources[i]
		local name, n, w
		if type(s) == "table" then name, n, w = s[1], s[2], s[3] else name, n = s, REQ.n * 4 end
		if w == nil then w = 1 end
		local code = SOURCE[name]
		if code == nil or code == 0 then
			return garbage(at, "route: unknown source " .. tostring(name))
		end
		if type(n) ~= "number" or not (n >= 1 and n <= MAX_N) then
			return garbage(at, "route: count for " .. name .. " must be 1.." .. MAX_N)
		end
		if type(w) ~= "number" or not (w > 0 and w <= 1) then
			return garbage(at, "route: weight for " .. name .. " must be in (0, 1]")
		end
		out.sources[i - 1].source = code
		out.sources[i - 1].n = n
		out.sources[i - 1].weight = w
	end
	out.n_sources = #sources
	out.tier = t
	ffi.copy(out.policy, policy)
	return 0
end

local function rank_dispatch(fn, at, name)
	return function()
		host.begin()
		local vh = host.hooks()
		local f, where = fn, at
		if vh and vh[name] then f, where = vh[name], vh[name .. "_at"] end
		local r = f(REQ, CANDS)
		if r == nil or r == CANDS or r == true then return 0 end
		return garbage(where, name .. " returned a " .. type(r) ..
			" (return nothing, or the candidate list)")
	end
end

local set_name = type(recd.settings.name) == "string" and recd.settings.name
	or plugins_dir:match("([^/]+)/*$") or "plugins"

return {
	route = route_fn and route_dispatch or nil,
	rules = rules_fn and rank_dispatch(rules_fn, rules_at, "rules") or nil,
	rerank = rerank_fn and rank_dispatch(rerank_fn, rerank_at, "rerank") or nil,
	route_at = route_at, rules_at = rules_at, rerank_at = rerank_at,
	name = set_name,
}
