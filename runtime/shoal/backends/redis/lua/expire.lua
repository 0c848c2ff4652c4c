-- expire.lua: retention: delete up to `cap` finished tasks of one queue past their time,
-- oldest first, off the finish-time indexes (the rules of shoal.core.retention.expiries
-- for this queue; the caller repeats while a full cap was used).
-- KEYS[1]: the queue's base. ARGV: cap, then for each rule its status and the
-- microseconds a task finished with it is kept.
-- Returns how many index entries were taken (tasks deleted, and entries found stale).
local base, cap = KEYS[1], tonumber(ARGV[1])
local now = now_us()
local taken = 0
for i = 2, #ARGV, 2 do
  if taken >= cap then break end
  local status, index = ARGV[i], base .. ':f:' .. ARGV[i]
  local cutoff = int(now - tonumber(ARGV[i + 1]))
  local ids = redis.call('ZRANGEBYSCORE', index, '-inf', cutoff, 'LIMIT', 0, cap - taken)
  for _, id in ipairs(ids) do
    local key = task_key(base, id)
    -- The hash decides: only a task still finished with this status goes (a finished task
    -- holds no idempotency key, so there is none to free).
    if redis.call('HGET', key, 'status') == status then
      finish_limited(base, id, redis.call('HGET', key, 'limits'))
      redis.call('DEL', key)
      redis.call('ZREM', base .. ':s:' .. status, id)
    end
  end
  if #ids > 0 then each_slice('ZREM', index, ids) end
  taken = taken + #ids
end
return taken
