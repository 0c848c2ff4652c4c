-- ack.lua: mark leased tasks done.
-- KEYS[1]: the queue's base. ARGV: for each claim the leases come from, its token, how many
-- of its tasks follow, and their ids. A token names one claim (a request id and the queue),
-- so a task's token fences it exactly as (token, attempt) would: the ack is the hot path,
-- and sending each token once is a third as many arguments for the client to pack.
-- Returns {id, code, ...} for the leases that no longer own their task; code 1 means the
-- task is already done under this very lease (a retried ack whose first reply was lost).
local base = KEYS[1]
local now = int(now_us())
local lost, done, indexed, finished = {}, {}, {}, {}
local token, left = nil, 0
for i = 1, #ARGV do
  if left == 0 then
    token, left = ARGV[i], -1
  elseif left < 0 then
    left = tonumber(ARGV[i])
  else
    left = left - 1
    local id = ARGV[i]
    local key = task_key(base, id)
    local f = redis.call('HMGET', key, 'status', 'token', 'idempotency_key', 'limits')
    if f[1] == 'running' and f[2] == token then
      free_slot(base, f[4])
      finish_limited(base, id, f[4])
      redis.call('HSET', key, 'status', 'done', 'finished_at', now, 'updated_at', now)
      redis.call('HDEL', key, 'worker_id')
      if f[3] and redis.call('HGET', base .. ':idem', f[3]) == id then
        redis.call('HDEL', base .. ':idem', f[3])
      end
      done[#done + 1] = id
      indexed[#indexed + 1] = 0
      indexed[#indexed + 1] = id
      finished[#finished + 1] = now
      finished[#finished + 1] = id
    else
      lost[#lost + 1] = id
      lost[#lost + 1] = (f[1] == 'done' and f[2] == token) and 1 or 0
    end
  end
end
-- The indexes change with one command each, not one per task: acks are the hot path.
if #done > 0 then
  each_slice('ZREM', base .. ':leases', done)
  each_slice('ZREM', base .. ':s:running', done)
  each_slice('ZADD', base .. ':s:done', indexed)
  each_slice('ZADD', base .. ':f:done', finished)
end
return lost
