-- schedule_read.lua: schedules of one queue, each with whether its watermark's task is
-- unfinished (the chain is intact).
-- KEYS: the base of the queue. ARGV: schedule names.
-- Returns a JSON array of [name, app, task, queue, cadence, state, next_tick_at,
-- next_task_id, last_run_at, pending] ('' for a missing field); unknown names are left out.
local base = KEYS[1]
local rows = {}
for i = 1, #ARGV do
  local f = redis.call('HMGET', base .. ':sched:' .. ARGV[i], 'app', 'task', 'queue',
    'cadence', 'state', 'next_tick_at', 'next_task_id', 'last_run_at')
  if f[1] then
    local pending = false
    if f[7] then
      local status = redis.call('HGET', task_key(base, f[7]), 'status')
      pending = status == 'queued' or status == 'retrying' or status == 'running'
    end
    rows[#rows + 1] = {ARGV[i], f[1], f[2], f[3], f[4], f[5], f[6] or '', f[7] or '',
      f[8] or '', pending}
  end
end
if #rows == 0 then return '[]' end
return cjson.encode(rows)
