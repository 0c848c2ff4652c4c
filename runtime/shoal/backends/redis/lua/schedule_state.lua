-- schedule_state.lua: pause or resume a schedule; a retired one is left as it is.
-- KEYS: the base of its queue. ARGV: name, 'paused' or 'active'.
-- Returns 1 when the schedule exists, else 0.
local key = KEYS[1] .. ':sched:' .. ARGV[1]
local state = redis.call('HGET', key, 'state')
if not state then return 0 end
if state ~= 'retired' then redis.call('HSET', key, 'state', ARGV[2]) end
return 1
