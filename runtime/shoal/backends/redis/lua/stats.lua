-- stats.lua: depth figures for one queue (callers pipeline one call per queue).
-- KEYS[1]: the queue's base.
-- Returns {ready, scheduled, running, dead, oldest ready run_at in us or -1, now, total,
-- limited, upcoming}: limited is '' or the JSON the client computes the held-back figure
-- from (backends/shared/limiting.py): {groups = {{limits, ready tasks}, ...}, buckets = {rate
-- key = {tokens, at}}, running = {concurrency key = running tasks}}; upcoming is the first
-- scheduled run_at not yet due in us or -1.
local base = KEYS[1]
local now = now_us()
local due = redis.call('ZCOUNT', base .. ':scheduled', '-inf', int(now))
local scheduled = redis.call('ZCARD', base .. ':scheduled') - due
local ready = redis.call('ZCARD', base .. ':ready') + due

-- Scheduled tasks that came due but are not promoted yet are ready; the first is oldest.
local oldest = -1
if due > 0 then
  oldest = tonumber(redis.call('ZRANGE', base .. ':scheduled', 0, 0, 'WITHSCORES')[2])
end
-- The ready set is ordered by priority first: the first task of each priority band is the
-- oldest of that band, so visit one task per band (at most 2048) rather than all of them.
local low = '-inf'
for _ = 1, 2048 do
  local top = redis.call('ZRANGEBYSCORE', base .. ':ready', low, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #top == 0 then break end
  local run_at = tonumber(redis.call('HGET', task_key(base, top[1]), 'run_at'))
  if run_at and (oldest < 0 or run_at < oldest) then oldest = run_at end
  low = int((math.floor(tonumber(top[2]) / BAND) + 1) * BAND)
end

local total = 0
for _, status in ipairs({'queued', 'running', 'retrying', 'done', 'dead', 'cancelled'}) do
  total = total + redis.call('ZCARD', base .. ':s:' .. status)
end
-- Ready limited tasks by their limits; finished ones leave the set (retry puts them back).
local limited = ''
local counts, groups, buckets, running = {}, {}, {}, {}
for _, id in ipairs(redis.call('SMEMBERS', base .. ':limited')) do
  local f = redis.call('HMGET', task_key(base, id), 'status', 'run_at', 'limits')
  if f[1] == 'queued' or f[1] == 'retrying' then
    if tonumber(f[2]) <= now then counts[f[3]] = (counts[f[3]] or 0) + 1 end
  elseif f[1] ~= 'running' then
    redis.call('SREM', base .. ':limited', id)
  end
end
for raw, count in pairs(counts) do
  groups[#groups + 1] = {raw, count}
  local l = cjson.decode(raw)
  if l[1] ~= cjson.null then
    local b = redis.call('HMGET', base .. ':rate:' .. l[1], 'tokens', 'at')
    if b[1] then buckets[l[1]] = {tonumber(b[1]), tonumber(b[2])} end
  end
  if l[4] ~= cjson.null then
    running[l[4]] = tonumber(redis.call('HGET', base .. ':ckeys', l[4]) or 0)
  end
end
if #groups > 0 then
  limited = cjson.encode({groups = groups, buckets = buckets, running = running})
end
-- The first scheduled task not yet due: the due ones sort before it.
local upcoming = -1
if scheduled > 0 then
  upcoming = tonumber(redis.call('ZRANGE', base .. ':scheduled', due, due, 'WITHSCORES')[2])
end
return {ready, scheduled, redis.call('ZCARD', base .. ':leases'),
  redis.call('ZCARD', base .. ':s:dead'), oldest, now, total, limited, upcoming}
