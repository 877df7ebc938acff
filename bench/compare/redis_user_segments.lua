-- A user's segments when each segment is a Redis set: ask every segment, inside the server.
-- KEYS: none. ARGV[1]: the user id; ARGV[2]: how many segments (seg-1 .. seg-N).
local found = {}
for k = 1, tonumber(ARGV[2]) do
  local key = 'seg-' .. k
  if redis.call('SISMEMBER', key, ARGV[1]) == 1 then
    found[#found + 1] = key
  end
end
return found
