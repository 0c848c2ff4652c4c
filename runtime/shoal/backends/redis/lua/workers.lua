-- workers.lua: the worker registry, on the server's clock.
-- KEYS: the registry hash (id -> JSON report) and the last-seen zset (id -> us).
-- ARGV: 'beat', id, report  -> records the worker as alive
--       'list'              -> {id, report, last seen us, ...}
--       'prune', timeout us -> forgets workers not seen for that long; returns their ids
local now = now_us()
if ARGV[1] == 'beat' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[2], int(now), ARGV[2])
  return {}
elseif ARGV[1] == 'list' then
  local found = {}
  local reports = redis.call('HGETALL', KEYS[1])
  for i = 1, #reports, 2 do
    local seen = redis.call('ZSCORE', KEYS[2], reports[i])
    found[#found + 1] = reports[i]
    found[#found + 1] = reports[i + 1]
    found[#found + 1] = seen and tonumber(seen) or 0
  end
  return found
end
local silent = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. int(now - tonumber(ARGV[2])))
for _, id in ipairs(silent) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return silent
