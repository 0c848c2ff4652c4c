-- extend.lua: renew leases (heartbeat).
-- KEYS[1]: the queue's base. ARGV: lease (us), then id, token, attempt per lease.
-- Returns {{id whose lease was already lost, ...}, {id, who asked, ...}}: the second list
-- names the tasks renewed whose cancel was asked for.
local base = KEYS[1]
local deadline = int(now_us() + tonumber(ARGV[1]))
local lost, cancelling = {}, {}
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  local key = task_key(base, id)
  if holds(key, ARGV[i + 1], ARGV[i + 2]) then
    redis.call('ZADD', base .. ':leases', 'XX', deadline, id)
    local by = redis.call('HGET', key, 'cancelled_by')
    if by then
      cancelling[#cancelling + 1] = id
      cancelling[#cancelling + 1] = by
    end
  else
    lost[#lost + 1] = id
  end
end
return {lost, cancelling}
