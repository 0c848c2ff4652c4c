-- purge_ids.lua: delete those of the given tasks of one queue that are finished (bulk
-- repair deletes a page of ids it listed; an id of another queue is simply not here).
-- KEYS[1]: the queue's base. ARGV: the ids. Returns how many tasks were deleted.
local base = KEYS[1]
local deleted = 0
for i = 1, #ARGV do
  local id = ARGV[i]
  local key = task_key(base, id)
  local status = redis.call('HGET', key, 'status')
  if status == 'done' or status == 'dead' or status == 'cancelled' then
    free_key(base, key, id)
    finish_limited(base, id, redis.call('HGET', key, 'limits'))
    redis.call('DEL', key)
    redis.call('ZREM', base .. ':s:' .. status, id)
    redis.call('ZREM', base .. ':f:' .. status, id)
    deleted = deleted + 1
  end
end
return deleted
