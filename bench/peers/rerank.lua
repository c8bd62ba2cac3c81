-- rerank.lua: the OpenResty-style peer. For each user a precomputed list
-- of candidates (id, score, category) is loaded at start; a request
-- re-scores them with per-category boosts and a diversity penalty (each
-- further item of a category already picked loses 10%), picks the top n
-- greedily and writes the JSON by hand — comparable work to a Lua
-- rerank() in recd, without the retrieval.
local M = {}
local cands, popular = {}, nil
local boost = {}

-- cands file: one line per user: "user_id<TAB>id:score:cat,id:score:cat,..."
-- (the user "__popular__" is the fallback for anyone else)
function M.load(path)
  for line in io.lines(path) do
    local user, rest = line:match("^([^\t]+)\t(.*)$")
    if user then
      local list = {}
      for id, score, cat in rest:gmatch("([^:,]+):([^:,]+):([^:,]+)") do
        list[#list + 1] = { id = id, score = tonumber(score), cat = cat }
        if not boost[cat] then
          boost[cat] = 1.0 + (#cat % 5) * 0.02
        end
      end
      cands[user] = list
    end
  end
  popular = cands["__popular__"] or {}
end

local picked = {}
local used = {}

function M.handle()
  local args = ngx.req.get_uri_args(16)
  local user = args.user_id
  local n = tonumber(args.n) or 10
  local list = (user and cands[user]) or popular
  local strategy = (user and cands[user]) and "personalized" or "popular"
  for k in pairs(used) do used[k] = nil end
  local out = { '{"user_id":', user and ('"' .. user .. '"') or "null", ',"items":[' }
  local count = 0
  for i = 1, #list do picked[i] = false end
  while count < n do
    local best, bs = nil, -math.huge
    for i = 1, #list do
      if not picked[i] then
        local c = list[i]
        local s = c.score * boost[c.cat] * (0.9 ^ (used[c.cat] or 0))
        if s > bs then best, bs = i, s end
      end
    end
    if not best then break end
    picked[best] = true
    local c = list[best]
    used[c.cat] = (used[c.cat] or 0) + 1
    count = count + 1
    out[#out + 1] = string.format('%s{"id":"%s","score":%.6f,"reason":"%s"}', count > 1 and "," or "",
      c.id, bs, strategy)
  end
  out[#out + 1] = '],"strategy":"' .. strategy .. '"}\n'
  local body = table.concat(out)
  ngx.header["Content-Type"] = "application/json"
  -- a length rather than chunked encoding, like the other servers
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

return M
