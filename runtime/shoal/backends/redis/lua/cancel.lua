-- cancel.lua: cancel a task that has not started; record the request on a running one,
-- which its worker's next heartbeat reads (extend.lua; it ends at cancelled.lua).
-- KEYS[1]: the queue's base. ARGV: id, who asked, results channel (whoever waits for a
-- task cancelled now hears).
-- Returns 1 when cancelled or asked, 0 when finished, -1 when it does not exist.
local base, id = KEYS[1], ARGV[1]
local key = task_key(base, id)
local status = redis.call('HGET', key, 'status')
if not status then return -1 end
if status == 'running' then
  redis.call('HSET', key, 'cancelled_by', ARGV[2], 'updated_at', int(now_us()))
  return 1
end
if status ~= 'queued' and status ~= 'retrying' then return 0 end
local now = int(now_us())
redis.call('HSET', key, 'cancelled_by', ARGV[2])
redis.call('ZREM', base .. ':scheduled', id)
redis.call('ZREM', base .. ':ready', id)
index_move(base, id, status, 'cancelled', now)
redis.call('HSET', key, 'status', 'cancelled', 'finished_at', now, 'updated_at', now)
free_key(base, key, id)
finish_limited(base, id, redis.call('HGET', key, 'limits'))
redis.call('PUBLISH', ARGV[3], id)
return 1
