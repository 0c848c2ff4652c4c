-- retry.lua: queue dead, cancelled or retrying tasks of one queue again with fresh attempts
-- (one by id, or a page of ids bulk repair listed: an id of another queue is not here),
-- forgetting each one's kept result (the next run's is the one to wait for) and who
-- cancelled it.
-- KEYS[1]: the queue's base. ARGV: run_at in us ('' for now), wake channel, the queue's
-- name (what the wake-up says), then the ids.
-- Returns, per id: 1 when queued, 0 when in another state, -1 when it is not in this queue.
local base = KEYS[1]
local now = now_us()
local run_at = ARGV[1] == '' and int(now) or ARGV[1]
local replies, woke = {}, false
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = task_key(base, id)
  local status = redis.call('HGET', key, 'status')
  if not status then
    replies[#replies + 1] = -1
  elseif status ~= 'dead' and status ~= 'cancelled' and status ~= 'retrying' then
    replies[#replies + 1] = 0
  else
    redis.call('ZREM', base .. ':scheduled', id)
    redis.call('ZREM', base .. ':ready', id)
    index_move(base, id, status, 'queued', now)
    redis.call('HSET', key, 'status', 'queued', 'attempts', '0', 'run_at', run_at,
      'updated_at', int(now))
    redis.call('HDEL', key, 'finished_at', 'worker_id', 'token', 'cancelled_by')
    redis.call('DEL', base .. ':r:' .. id)
    -- Unfinished again: take the idempotency key back if nobody took it meanwhile.
    local k = redis.call('HGET', key, 'idempotency_key')
    if k then redis.call('HSETNX', base .. ':idem', k, id) end
    -- Limited tasks are in the set stats reads while unfinished (stats drops finished ones).
    if redis.call('HEXISTS', key, 'limits') == 1 then redis.call('SADD', base .. ':limited', id) end
    woke = requeue(base, key, id, now) or woke
    replies[#replies + 1] = 1
  end
end
if woke then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return replies
