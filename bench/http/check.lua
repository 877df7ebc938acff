-- wrk script: GET /v1/segments/{segment}/users/{user} for random users u1..uN.
-- Arguments after `--`: users (default 1000000), segment (default bench), pipeline depth (1).
--   wrk -t2 -c50 -d10s -s bench/http/check.lua http://127.0.0.1:8080 -- 1000000 bench 16
local users, segment, depth = 1000000, "bench", 1

function init(args)
  users = tonumber(args[1] or users)
  segment = args[2] or segment
  depth = tonumber(args[3] or depth)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
end

-- Requests are formatted once, in init, into a pool that request() cycles through, so that
-- the load generator spends its CPU on sending, as redis-benchmark does.
local pool = {}
local next_index = 0
local pool_size = 8192

local function build_pool()
  for p = 1, pool_size do
    local parts = {}
    for i = 1, depth do
      parts[i] = wrk.format("GET", "/v1/segments/" .. segment .. "/users/u" .. math.random(users))
    end
    pool[p] = table.concat(parts)
  end
end

function request()
  if #pool == 0 then build_pool() end
  next_index = next_index % pool_size + 1
  return pool[next_index]
end

function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read +
                 summary.errors.write + summary.errors.timeout
  io.write(string.format("requests_per_second %.0f p50_ms %.3f p99_ms %.3f errors %d\n",
                         summary.requests / (summary.duration / 1e6),
                         latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
