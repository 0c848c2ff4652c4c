-- cancelled.lua: mark leased tasks cancelled: attempts that stopped on a cancel request.
-- KEYS[1]: the queue's base. ARGV: results channel, then id, token, attempt per lease.
-- Whoever waits for these tasks' results hears that they ended, as after cancel.lua.
-- Returns {id, code, ...} for stale leases, as ack.lua does.
local base, results = KEYS[1], ARGV[1]
local now = now_us()
local lost, ended = {}, {}
for i = 2, #ARGV, 3 do
  local id, token, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = task_key(base, id)
  local owns, f = holds(key, token, attempt)
  if owns then
    leave_running(base, key, id, 'cancelled', now)
    redis.call('HSET', key, 'finished_at', int(now))
    free_key(base, key, id)
    ended[#ended + 1] = id
  else
    lost[#lost + 1] = id
    lost[#lost + 1] = (f[1] == 'cancelled' and f[2] == token and f[3] == attempt) and 1 or 0
  end
end
if #ended > 0 then redis.call('PUBLISH', results, table.concat(ended, '\n')) end
return lost
