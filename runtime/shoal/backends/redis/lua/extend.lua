-- extend.lua: renew leases (heartbeat).
-- KEYS[1]: the queue's base. ARGV: lease (us), then id, token, attempt per lease.
-- Returns the ids whose lease was already lost.
local base = KEYS[1]
local deadline = int(now_us() + tonumber(ARGV[1]))
local lost = {}
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  if holds(task_key(base, id), ARGV[i + 1], ARGV[i + 2]) then
    redis.call('ZADD', base .. ':leases', 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
