-- fail.lua: record failed attempts: retrying until a due time, or dead.
-- KEYS[1]: the queue's base. ARGV: wake channel, queue name, then for each failure:
-- id, token, attempt, error, retry_at in us ('' for dead).
-- Returns {id, code, ...} for stale leases, as ack.lua does.
local base, channel, queue = KEYS[1], ARGV[1], ARGV[2]
local now = now_us()
local lost, woken = {}, false
for i = 3, #ARGV, 5 do
  local id, token, attempt, err, retry_at = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local key = task_key(base, id)
  local owns, f = holds(key, token, attempt)
  if owns and retry_at == '' then
    leave_running(base, key, id, 'dead', now)
    redis.call('HSET', key, 'last_error', err, 'finished_at', int(now))
    free_key(base, key, id)
  elseif owns then
    leave_running(base, key, id, 'retrying', now)
    redis.call('HSET', key, 'last_error', err, 'run_at', retry_at)
    woken = requeue(base, key, id, now) or woken
  else
    local done = (f[1] == 'dead' or f[1] == 'retrying') and f[2] == token and f[3] == attempt
    lost[#lost + 1] = id
    lost[#lost + 1] = done and 1 or 0
  end
end
if woken then redis.call('PUBLISH', channel, queue) end
return lost
