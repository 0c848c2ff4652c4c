-- purge.lua: delete up to `chunk` finished tasks of one queue, so that no single call
-- blocks the server for long; the caller repeats while a full chunk was deleted.
-- KEYS[1]: the queue's base. ARGV: chunk, then statuses (done, dead and cancelled only).
-- Returns how many tasks were deleted.
local base, chunk = KEYS[1], tonumber(ARGV[1])
local deleted = 0
for i = 2, #ARGV do
  local status = ARGV[i]
  if status == 'done' or status == 'dead' or status == 'cancelled' then
    local ids = redis.call('ZRANGE', base .. ':s:' .. status, 0, chunk - deleted - 1)
    for _, id in ipairs(ids) do
      local key = task_key(base, id)
      free_key(base, key, id)
      finish_limited(base, id, redis.call('HGET', key, 'limits'))
      redis.call('DEL', key)
      redis.call('ZREM', base .. ':s:' .. status, id)
      redis.call('ZREM', base .. ':f:' .. status, id)
    end
    deleted = deleted + #ids
    if deleted >= chunk then break end
  end
end
return deleted
