-- release.lua: give back leased tasks unfinished, without charging the attempt.
-- KEYS[1]: the queue's base. ARGV: wake channel, queue name, then id, token, attempt per
-- lease. Stale leases are skipped: someone else owns those tasks now.
local base, channel, queue = KEYS[1], ARGV[1], ARGV[2]
local now = now_us()
local woken = false
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local key = task_key(base, id)
  if holds(key, ARGV[i + 1], ARGV[i + 2]) then
    leave_running(base, key, id, 'queued', now)
    redis.call('HINCRBY', key, 'attempts', -1)
    -- Forget the token so that the released lease can never act on the task again.
    redis.call('HDEL', key, 'token')
    woken = requeue(base, key, id, now) or woken
  end
end
if woken then redis.call('PUBLISH', channel, queue) end
return 0
