-- ack.lua: mark leased tasks done.
-- KEYS[1]: the queue's base. ARGV: for each claim the leases come from, its token, how many
-- of its tasks follow, and their ids. A token names one claim (a request id and the queue),
-- so a task's token fences it exactly as (token, attempt) would: the ack is the hot path,
-- and sending each token once is a third as many arguments for the client to pack.
-- Return values to keep (keep_result) follow the leases, after an empty token: the results
-- channel, then id, value, expiry in ms since the epoch for each. Only a task this very call
-- acked keeps its value, in base..':r:'..id (see lib.lua), and its waiters are told.
-- Returns {id, code, ...} for the leases that no longer own their task; code 1 means the
-- task is already done under this very lease (a retried ack whose first reply was lost).
local base = KEYS[1]
local now = int(now_us())
local lost, done, indexed, finished = {}, {}, {}, {}
local token, left, values = nil, 0, nil
for i = 1, #ARGV do
  if left == 0 and ARGV[i] == '' then
    values = i + 1
    break
  elseif left == 0 then
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
if values then
  local acked, told = {}, {}
  for _, id in ipairs(done) do acked[id] = true end
  for i = values + 1, #ARGV, 3 do
    local id = ARGV[i]
    if acked[id] then
      keep_result(base, id, ARGV[i + 2], 'done', 'value', ARGV[i + 1])
      told[#told + 1] = id
    end
  end
  if #told > 0 then redis.call('PUBLISH', ARGV[values], table.concat(told, '\n')) end
end
return lost
