-- claim.lua: lease up to `limit` due tasks, best first across the queues given.
-- KEYS: the base of every queue claimed from.
-- ARGV: worker id, limit, lease (us), request id (32 hex), promotion cap, the queue names.
-- Returns the claimed tasks as exported() does (see lib.lua). A task's lease token is the
-- request id followed by its queue name, so later calls find the queue from the token.
local worker, limit, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local request, cap = ARGV[4], tonumber(ARGV[5])
local now = now_us()
local memo = KEYS[1] .. ':claim:' .. request
local rows, payloads = {}, {}

-- A retried request (its reply was lost with the connection) gets back what it already
-- took instead of leasing more tasks that nobody would run until their leases expire.
local previous = redis.call('LRANGE', memo, 0, -1)
if #previous > 0 then
  for j = 1, #previous, 2 do
    local qi = tonumber(previous[j])
    local key = task_key(KEYS[qi], previous[j + 1])
    local values = read(key)
    if values[STATUS] == 'running' and values[TOKEN] == request .. ARGV[5 + qi] then
      export(rows, payloads, values)
    end
  end
  return exported(rows, payloads)
end

local candidates = {}
for qi, base in ipairs(KEYS) do
  -- Promote delayed and retrying tasks that came due, so they compete on priority.
  local due = redis.call('ZRANGEBYSCORE', base .. ':scheduled', '-inf', int(now), 'LIMIT', 0, cap)
  if #due > 0 then
    each_slice('ZREM', base .. ':scheduled', due)
    for _, id in ipairs(due) do
      if redis.call('EXISTS', task_key(base, id)) == 1 then
        requeue(base, task_key(base, id), id, now)
      end
    end
  end
  local top = redis.call('ZRANGE', base .. ':ready', 0, limit - 1, 'WITHSCORES')
  for j = 1, #top, 2 do
    candidates[#candidates + 1] = {tonumber(top[j + 1]), top[j], qi}
  end
end
if #KEYS > 1 then
  table.sort(candidates, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
end

-- Per queue: ids taken off ready, leases, and moves between the status indexes, each
-- written with one command per queue rather than one per task.
local taken, leases, from_queued, from_retrying, running, remember = {}, {}, {}, {}, {}, {}
for qi = 1, #KEYS do
  taken[qi], leases[qi], from_queued[qi], from_retrying[qi], running[qi] = {}, {}, {}, {}, {}
end
local deadline = int(now + lease)
for n = 1, math.min(limit, #candidates) do
  local qi, id = candidates[n][3], candidates[n][2]
  local key = task_key(KEYS[qi], id)
  local t = taken[qi]
  t[#t + 1] = id
  local values = read(key)
  local status = values[STATUS]
  if status == 'queued' or status == 'retrying' then
    local token, attempts = request .. ARGV[5 + qi], int(tonumber(values[ATTEMPTS]) + 1)
    redis.call('HSET', key, 'status', 'running', 'attempts', attempts, 'worker_id', worker,
      'token', token, 'updated_at', int(now))
    local l = leases[qi]
    l[#l + 1] = deadline
    l[#l + 1] = id
    local from = status == 'queued' and from_queued[qi] or from_retrying[qi]
    from[#from + 1] = id
    local r = running[qi]
    r[#r + 1] = 0
    r[#r + 1] = id
    remember[#remember + 1] = qi
    remember[#remember + 1] = id
    -- The reply shows the task as it is now, without reading it again.
    values[STATUS], values[ATTEMPTS], values[UPDATED_AT] = 'running', attempts, int(now)
    values[WORKER_ID], values[TOKEN] = worker, token
    export(rows, payloads, values)
  end
end
for qi, base in ipairs(KEYS) do
  if #taken[qi] > 0 then each_slice('ZREM', base .. ':ready', taken[qi]) end
  if #leases[qi] > 0 then each_slice('ZADD', base .. ':leases', leases[qi]) end
  if #from_queued[qi] > 0 then each_slice('ZREM', base .. ':s:queued', from_queued[qi]) end
  if #from_retrying[qi] > 0 then each_slice('ZREM', base .. ':s:retrying', from_retrying[qi]) end
  if #running[qi] > 0 then each_slice('ZADD', base .. ':s:running', running[qi]) end
end
if #remember > 0 then
  each_slice('RPUSH', memo, remember)
  redis.call('PEXPIRE', memo, math.max(5000, math.floor(lease / 1000)))
end
return exported(rows, payloads)
