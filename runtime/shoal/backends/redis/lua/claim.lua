-- claim.lua: lease up to `limit` due tasks, best first across the queues given.
-- KEYS: the base of every queue claimed from.
-- ARGV: worker id, limit, lease (us), request id (32 hex), promotion cap, scan (candidates
-- examined beyond the limit while limits hold some back), the queue names.
-- Returns the claimed tasks as exported() does (see lib.lua). A task's lease token is the
-- request id followed by its queue name, so later calls find the queue from the token.
--
-- Limits follow backends/shared/limiting.py: a task with limits is taken only while its
-- rate bucket holds a token and its concurrency key a free slot; a claim that held some
-- back looks at up to `scan` further candidates, so the tasks behind them still flow.
local worker, limit, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local request, cap, scan = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local NAMES = 6 -- ARGV[NAMES + qi] is the name of queue qi
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
    if values[STATUS] == 'running' and values[TOKEN] == request .. ARGV[NAMES + qi] then
      export(rows, payloads, values)
    end
  end
  return exported(rows, payloads)
end

for _, base in ipairs(KEYS) do
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
end

-- The ready tasks ranked first..last in each queue, best first across the queues.
local function gather(first, last)
  local found = {}
  for qi, base in ipairs(KEYS) do
    local top = redis.call('ZRANGE', base .. ':ready', first, last, 'WITHSCORES')
    for j = 1, #top, 2 do
      found[#found + 1] = {tonumber(top[j + 1]), top[j], qi}
    end
  end
  if #KEYS > 1 then
    table.sort(found, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      return a[2] < b[2]
    end)
  end
  return found
end

-- What the limits still allow in this claim: bucket key -> {tokens, at}, refilled when
-- first met; concurrency key -> free slots, counted when first met.
local tokens, slots, refused = {}, {}, {}
local function admits_group(base, l)
  local bucket, slot = nil, nil
  if l[1] ~= cjson.null then
    bucket = base .. ':rate:' .. l[1]
    if not tokens[bucket] then
      local burst = math.max(1, math.floor(l[2] / 20)) -- as Rate.burst
      local b = redis.call('HMGET', bucket, 'tokens', 'at')
      local have, at = burst, now
      if b[1] then
        at = math.max(now, tonumber(b[2]))
        have = math.min(burst, tonumber(b[1]) + (at - tonumber(b[2])) / 1e6 * l[2] / l[3])
      end
      tokens[bucket] = {have, at}
    end
    if tokens[bucket][1] < 1 then return false end
  end
  if l[4] ~= cjson.null then
    slot = base .. ':ckeys:' .. l[4]
    if not slots[slot] then
      slots[slot] = l[5] - tonumber(redis.call('HGET', base .. ':ckeys', l[4]) or 0)
    end
    if slots[slot] < 1 then return false end
  end
  if bucket then tokens[bucket][1] = tokens[bucket][1] - 1 end
  if slot then slots[slot] = slots[slot] - 1 end
  return true
end

-- A set of limits refused once stays refused for the rest of the claim (it only spends), so
-- the tasks of a held-back group cost a lookup each, not a decoding.
local function admits(base, raw)
  if not raw then return true end
  local group = base .. '\0' .. raw
  if refused[group] then return false end
  if not admits_group(base, cjson.decode(raw)) then
    refused[group] = true
    return false
  end
  return true
end

-- Walk candidates in order: claimable ones the limits admit are chosen, the rest of the
-- claimable ones stay ready, and ids whose task is no longer claimable leave the ready set.
local chosen, stale, held = {}, {}, false
for qi = 1, #KEYS do stale[qi] = {} end
-- While no queue holds limited tasks each candidate is read whole, once (the claim without
-- limits); otherwise its status and limits first, and the rest only for a task taken.
local function walk(candidates, light)
  for _, c in ipairs(candidates) do
    if #chosen >= limit then return end
    local qi, id = c[3], c[2]
    local key = task_key(KEYS[qi], id)
    local status, limits, values
    if light then
      local f = redis.call('HMGET', key, 'status', 'limits')
      status, limits = f[1], f[2]
    else
      values = read(key)
      status, limits = values[STATUS], values[LIMITS]
    end
    if status ~= 'queued' and status ~= 'retrying' then
      local t = stale[qi]
      t[#t + 1] = id
    elseif admits(KEYS[qi], limits) then
      chosen[#chosen + 1] = {qi, id, values or read(key)}
    else
      held = true
    end
  end
end
local light = false
for _, base in ipairs(KEYS) do
  if redis.call('SCARD', base .. ':limited') > 0 then light = true end
end
walk(gather(0, limit - 1), light)
if held and #chosen < limit then walk(gather(limit, limit + scan - 1), true) end

-- Per queue: ids taken off ready, leases, and moves between the status indexes, each
-- written with one command per queue rather than one per task.
local taken, leases, from_queued, from_retrying, running, remember = {}, {}, {}, {}, {}, {}
for qi = 1, #KEYS do
  taken[qi], leases[qi], from_queued[qi], from_retrying[qi], running[qi] = {}, {}, {}, {}, {}
end
local deadline = int(now + lease)
for qi = 1, #KEYS do
  for _, id in ipairs(stale[qi]) do taken[qi][#taken[qi] + 1] = id end
end
for _, c in ipairs(chosen) do
  local qi, id, values = c[1], c[2], c[3]
  local key = task_key(KEYS[qi], id)
  local t = taken[qi]
  t[#t + 1] = id
  local status = values[STATUS]
  local token, attempts = request .. ARGV[NAMES + qi], int(tonumber(values[ATTEMPTS]) + 1)
  redis.call('HSET', key, 'status', 'running', 'attempts', attempts, 'worker_id', worker,
    'token', token, 'updated_at', int(now))
  local k = concurrency_key(values[LIMITS])
  if k then redis.call('HINCRBY', KEYS[qi] .. ':ckeys', k, 1) end
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
for bucket, b in pairs(tokens) do
  redis.call('HSET', bucket, 'tokens', string.format('%.17g', b[1]), 'at', int(b[2]))
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
