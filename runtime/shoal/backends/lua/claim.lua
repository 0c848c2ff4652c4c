-- claim.lua: lease up to `limit` due tasks, best first across the queues given.
-- KEYS: the base of every queue claimed from.
-- ARGV: worker id, limit, lease (us), request id (32 hex), promotion cap, the queue names.
-- Returns one flat HGETALL array per claimed task. A task's lease token is the request id
-- followed by its queue name, so later calls find the queue's keys from the token alone.
local worker, limit, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local request, cap = ARGV[4], tonumber(ARGV[5])
local now = now_us()
local memo = KEYS[1] .. ':claim:' .. request
local claimed = {}

-- A retried request (its reply was lost with the connection) gets back what it already
-- took instead of leasing more tasks that nobody would run until their leases expire.
local previous = redis.call('LRANGE', memo, 0, -1)
if #previous > 0 then
  for j = 1, #previous, 2 do
    local qi = tonumber(previous[j])
    local key = task_key(KEYS[qi], previous[j + 1])
    local f = redis.call('HMGET', key, 'status', 'token')
    if f[1] == 'running' and f[2] == request .. ARGV[5 + qi] then
      claimed[#claimed + 1] = redis.call('HGETALL', key)
    end
  end
  return claimed
end

local candidates = {}
for qi, base in ipairs(KEYS) do
  -- Promote delayed and retrying tasks that came due, so they compete on priority.
  local due = redis.call('ZRANGEBYSCORE', base .. ':scheduled', '-inf', int(now), 'LIMIT', 0, cap)
  for _, id in ipairs(due) do
    redis.call('ZREM', base .. ':scheduled', id)
    if redis.call('EXISTS', task_key(base, id)) == 1 then
      requeue(base, task_key(base, id), id, now)
    end
  end
  local top = redis.call('ZRANGE', base .. ':ready', 0, limit - 1, 'WITHSCORES')
  for j = 1, #top, 2 do
    candidates[#candidates + 1] = {tonumber(top[j + 1]), top[j], qi}
  end
end
table.sort(candidates, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)

for n = 1, math.min(limit, #candidates) do
  local qi, id = candidates[n][3], candidates[n][2]
  local base = KEYS[qi]
  local key = task_key(base, id)
  redis.call('ZREM', base .. ':ready', id)
  local status = redis.call('HGET', key, 'status')
  if status == 'queued' or status == 'retrying' then
    redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'status', 'running', 'worker_id', worker,
      'token', request .. ARGV[5 + qi], 'updated_at', int(now))
    redis.call('ZADD', base .. ':leases', int(now + lease), id)
    index_move(base, id, status, 'running')
    claimed[#claimed + 1] = redis.call('HGETALL', key)
    redis.call('RPUSH', memo, qi, id)
  end
end
if #claimed > 0 then
  redis.call('PEXPIRE', memo, math.max(5000, math.floor(lease / 1000)))
end
return claimed
