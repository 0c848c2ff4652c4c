-- ack.lua: mark leased tasks done.
-- KEYS[1]: the queue's base. ARGV: id, token, attempt for each lease.
-- Returns {id, code, ...} for the leases that no longer own their task; code 1 means the
-- task is already done under this very lease (a retried ack whose first reply was lost).
local base = KEYS[1]
local now = int(now_us())
local lost, done, indexed = {}, {}, {}
for i = 1, #ARGV, 3 do
  local id, token, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = task_key(base, id)
  local f = redis.call('HMGET', key, 'status', 'token', 'attempts', 'idempotency_key')
  if f[1] == 'running' and f[2] == token and f[3] == attempt then
    redis.call('HSET', key, 'status', 'done', 'finished_at', now, 'updated_at', now)
    redis.call('HDEL', key, 'worker_id')
    if f[4] and redis.call('HGET', base .. ':idem', f[4]) == id then
      redis.call('HDEL', base .. ':idem', f[4])
    end
    done[#done + 1] = id
    indexed[#indexed + 1] = 0
    indexed[#indexed + 1] = id
  else
    lost[#lost + 1] = id
    lost[#lost + 1] = (f[1] == 'done' and f[2] == token and f[3] == attempt) and 1 or 0
  end
end
-- The indexes change with one command each, not one per task: acks are the hot path.
if #done > 0 then
  each_slice('ZREM', base .. ':leases', done)
  each_slice('ZREM', base .. ':s:running', done)
  each_slice('ZADD', base .. ':s:done', indexed)
end
return lost
