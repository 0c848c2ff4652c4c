-- retry.lua: queue a dead, cancelled or retrying task again with fresh attempts.
-- KEYS[1]: the queue's base. ARGV: id, run_at in us ('' for now), wake channel.
-- Returns 1 when queued, 0 when the task is in another state, -1 when it does not exist.
local base, id = KEYS[1], ARGV[1]
local key = task_key(base, id)
local now = now_us()
local status = redis.call('HGET', key, 'status')
if not status then return -1 end
if status ~= 'dead' and status ~= 'cancelled' and status ~= 'retrying' then return 0 end
redis.call('ZREM', base .. ':scheduled', id)
redis.call('ZREM', base .. ':ready', id)
index_move(base, id, status, 'queued')
local run_at = ARGV[2] == '' and int(now) or ARGV[2]
redis.call('HSET', key, 'status', 'queued', 'attempts', '0', 'run_at', run_at, 'updated_at', int(now))
redis.call('HDEL', key, 'finished_at', 'worker_id', 'token')
redis.call('DEL', base .. ':r:' .. id) -- the next run's result is the one to wait for
-- Unfinished again: take the idempotency key back if nobody took it meanwhile.
local k = redis.call('HGET', key, 'idempotency_key')
if k then redis.call('HSETNX', base .. ':idem', k, id) end
if requeue(base, key, id, now) then
  redis.call('PUBLISH', ARGV[3], redis.call('HGET', key, 'queue'))
end
return 1
