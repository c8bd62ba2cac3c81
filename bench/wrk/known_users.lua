-- wrk script: GET /v1/recommendations for a uniform mix of known users.
-- Usage: wrk -t1 -c64 -d10s -s bench/wrk/known_users.lua http://127.0.0.1:8080 -- USERS [N]
local users, n = 1000, 10
local counter = 0

function init(args)
  users = tonumber(args[1] or users)
  n = tonumber(args[2] or n)
  math.randomseed(12345 + (id or 0))
end

function request()
  counter = counter + 1
  local u = math.random(0, users - 1)
  return wrk.format("GET", "/v1/recommendations?user_id=u" .. u .. "&n=" .. n)
end

function done(summary, latency, requests)
  -- non-2xx answers are counted in errors.status
  io.write(string.format("wrk: %d requests, %.0f req/s, p50 %.0f us, p99 %.0f us, errors %d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
