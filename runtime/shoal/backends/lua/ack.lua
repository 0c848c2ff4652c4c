-- ack.lua: mark leased tasks done.
-- KEYS[1]: the queue's base. ARGV: id, token, attempt for each lease.
-- Returns {id, code, ...} for the leases that no longer own their task; code 1 means the
-- task is already done under this very lease (a retried ack whose first reply was lost).
local base = KEYS[1]
local now = now_us()
local lost = {}
for i = 1, #ARGV, 3 do
  local id, token, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = task_key(base, id)
  local owns, f = holds(key, token, attempt)
  if owns then
    leave_running(base, key, id, 'done', now)
    redis.call('HSET', key, 'finished_at', int(now))
    free_key(base, key, id)
  else
    lost[#lost + 1] = id
    lost[#lost + 1] = (f[1] == 'done' and f[2] == token and f[3] == attempt) and 1 or 0
  end
end
return lost
