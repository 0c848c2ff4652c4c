-- schedule_advance.lua: materialise a schedule's next tick, atomically with its
-- de-duplication: the rule of shoal.backends.shared.schedules.judge_advance and later_run.
-- KEYS: the base of the schedule's queue.
-- ARGV: wake channel, queue, schedule name, expected watermark (us, '' for none), tick_at
--       (us, '' for none), ran (us, '' for none), then the tick's task, if any, as the 9
--       fields store_new takes.
-- Returns 'advanced', 'stale', 'paused' or 'retired'.
local channel, queue, name = ARGV[1], ARGV[2], ARGV[3]
local expected, tick_at, ran = ARGV[4], ARGV[5], ARGV[6]
local base = KEYS[1]
local key = base .. ':sched:' .. name
local f = redis.call('HMGET', key, 'state', 'next_tick_at', 'last_run_at')
local state, watermark, last = f[1], f[2] or '', f[3]
if not state or state == 'retired' then return 'retired' end
if ran ~= '' and (not last or tonumber(ran) > tonumber(last)) then
  redis.call('HSET', key, 'last_run_at', ran)
end
if state == 'paused' then return 'paused' end
if tick_at == '' or watermark ~= expected then return 'stale' end
if expected ~= '' and tonumber(tick_at) <= tonumber(expected) then return 'stale' end
if #ARGV >= 15 then
  if store_new(base, queue, ARGV, 7, now_us()) then redis.call('PUBLISH', channel, queue) end
  redis.call('HSET', key, 'next_tick_at', tick_at, 'next_task_id', ARGV[7])
end
return 'advanced'
