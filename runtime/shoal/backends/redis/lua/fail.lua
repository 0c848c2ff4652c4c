-- fail.lua: record failed attempts: retrying until a due time, or dead.
-- KEYS[1]: the queue's base. ARGV: wake channel, queue name, results channel, then for
-- each failure: id, token, attempt, error, retry_at in us ('' for dead), traceback, and for
-- a dead one whose failure is kept as its result, the expiry in ms ('' for none).
-- Returns {id, code, ...} for stale leases, as ack.lua does.
local base, channel, queue, results = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local now = now_us()
local lost, woken, dead = {}, false, {}
for i = 4, #ARGV, 7 do
  local id, token, attempt, err, retry_at = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local trace, keep_ms = ARGV[i + 5], ARGV[i + 6]
  local key = task_key(base, id)
  local owns, f = holds(key, token, attempt)
  if owns and retry_at == '' then
    leave_running(base, key, id, 'dead', now)
    redis.call('HSET', key, 'last_error', err, 'last_traceback', trace, 'finished_at', int(now))
    free_key(base, key, id)
    if keep_ms ~= '' then
      keep_result(base, id, keep_ms, 'dead', 'error', err, 'traceback', trace)
    end
    dead[#dead + 1] = id
  elseif owns then
    leave_running(base, key, id, 'retrying', now)
    redis.call('HSET', key, 'last_error', err, 'last_traceback', trace, 'run_at', retry_at)
    woken = requeue(base, key, id, now) or woken
  else
    local done = (f[1] == 'dead' or f[1] == 'retrying') and f[2] == token and f[3] == attempt
    lost[#lost + 1] = id
    lost[#lost + 1] = done and 1 or 0
  end
end
if woken then redis.call('PUBLISH', channel, queue) end
if #dead > 0 then redis.call('PUBLISH', results, table.concat(dead, '\n')) end
return lost
