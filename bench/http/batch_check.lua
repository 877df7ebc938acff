-- wrk script: POST /v1/check with `checks` random (user, segment) pairs per request.
-- Arguments after `--`: users (default 1000000), segment (default bench), checks (1000).
--   wrk -t2 -c8 -d10s -s bench/http/batch_check.lua http://127.0.0.1:8080 -- 1000000 bench 1000
local bodies = {}
local checks = 1000

function init(args)
  local users = tonumber(args[1] or 1000000)
  local segment = args[2] or "bench"
  checks = tonumber(args[3] or checks)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
  -- A few dozen different bodies, built once, so that Lua is not in the measured path.
  for b = 1, 32 do
    local items = {}
    for i = 1, checks do
      items[i] = '{"user_id":"u' .. math.random(users) .. '","segment":"' .. segment .. '"}'
    end
    local body = '{"checks":[' .. table.concat(items, ",") .. ']}'
    bodies[b] = wrk.format("POST", "/v1/check", {["Content-Type"] = "application/json"}, body)
  end
end

function request()
  return bodies[math.random(#bodies)]
end

function done(summary, latency, requests)
  local rps = summary.requests / (summary.duration / 1e6)
  io.write(string.format("requests_per_second %.0f checks_per_second %.0f p50_ms %.3f p99_ms %.3f errors %d\n",
                         rps, rps * checks, latency:percentile(50) / 1000,
                         latency:percentile(99) / 1000, summary.errors.status))
end
