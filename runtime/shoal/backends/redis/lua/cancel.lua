-- cancel.lua: cancel a task that has not started.
-- KEYS[1]: the queue's base. ARGV: id, results channel (whoever waits for it hears).
-- Returns 1 when cancelled, 0 when running or finished, -1 when it does not exist.
local base, id = KEYS[1], ARGV[1]
local key = task_key(base, id)
local status = redis.call('HGET', key, 'status')
if not status then return -1 end
if status ~= 'queued' and status ~= 'retrying' then return 0 end
local now = int(now_us())
redis.call('ZREM', base .. ':scheduled', id)
redis.call('ZREM', base .. ':ready', id)
index_move(base, id, status, 'cancelled')
redis.call('HSET', key, 'status', 'cancelled', 'finished_at', now, 'updated_at', now)
free_key(base, key, id)
redis.call('PUBLISH', ARGV[2], id)
return 1
