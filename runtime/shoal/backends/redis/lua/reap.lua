-- reap.lua: put back running tasks whose lease expired, or end them dead when their
-- attempts are spent, counting a lease expiration either way: the rule of
-- shoal.backends.shared.reaping, whose parameters come from there.
-- KEYS[1]: the queue's base. ARGV: cap, wake channel, queue name, the attempts a task must
-- have left to be queued again, and the dead message split around its count.
-- Returns {{requeued id, ...}, {dead id, ...}}.
local base, cap, channel, queue = KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3]
local min_left, before, after = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local now = now_us()
local requeued, dead = {}, {}
local expired = redis.call('ZRANGEBYSCORE', base .. ':leases', '-inf', '(' .. int(now), 'LIMIT', 0, cap)
for _, id in ipairs(expired) do
  local key = task_key(base, id)
  local f = redis.call('HMGET', key, 'attempts', 'max_attempts', 'lease_expirations')
  if not f[1] then
    redis.call('ZREM', base .. ':leases', id)
  else
    local n = tonumber(f[3] or '0') + 1
    local spent = tonumber(f[2]) - tonumber(f[1]) < min_left
    leave_running(base, key, id, spent and 'dead' or 'queued', now)
    -- The expired lease must never act on the task again, even if its worker wakes up.
    redis.call('HDEL', key, 'token')
    redis.call('HSET', key, 'lease_expirations', n)
    if spent then
      redis.call('HSET', key, 'finished_at', int(now), 'last_error', before .. n .. after)
      free_key(base, key, id)
      dead[#dead + 1] = id
    else
      requeue(base, key, id, now)
      requeued[#requeued + 1] = id
    end
  end
end
if #requeued > 0 then redis.call('PUBLISH', channel, queue) end
return {requeued, dead}
