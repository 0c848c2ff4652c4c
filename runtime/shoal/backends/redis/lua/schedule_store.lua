-- schedule_store.lua: write what registration decided about one schedule
-- (shoal.backends.shared.schedules.registered), keeping its watermark.
-- KEYS: the base of its queue. ARGV: name, app, task, queue, cadence, state, then pairs of
-- field and value ('' deletes the field) carried over from the queue it left, if it moved.
local key = KEYS[1] .. ':sched:' .. ARGV[1]
redis.call('HSET', key, 'app', ARGV[2], 'task', ARGV[3], 'queue', ARGV[4],
  'cadence', ARGV[5], 'state', ARGV[6])
for i = 7, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', key, ARGV[i])
  else
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  end
end
return 1
