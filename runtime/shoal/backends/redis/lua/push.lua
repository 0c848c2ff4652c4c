-- push.lua: store a batch of new tasks, all or nothing; the batch may span queues. The
-- client has resolved the batch against itself (no two of its tasks share a key in a queue);
-- this script resolves it against the keys unfinished tasks hold.
-- KEYS: the base of every queue in the batch.
-- ARGV: mode ('raise' | 'skip', or 'check': store nothing, only report the conflicts, for a
--       batch the client found conflicting with itself), wake channel, the queue names (one
--       per KEYS entry),
--       then 10 fields per task: queue index, id, name, payload, priority, run_at (us),
--       max_attempts, idempotency key ('' for none, else '=' .. key), metadata JSON or '',
--       limits JSON (TaskLimits.columns()) or ''.
-- Returns {1, id, ...} in order, or for 'raise' with conflicts (and for 'check') {0, queue
-- index, key, ...} having stored nothing.
local mode, channel = ARGV[1], ARGV[2]
local first = 3 + #KEYS
local now = now_us()

local ids, conflicts, accepted = {}, {}, {}
for i = first, #ARGV, 10 do
  local qi, id, ikey = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 7]
  local base = KEYS[qi]
  if redis.call('EXISTS', task_key(base, id)) == 1 then
    -- Stored by an earlier attempt of this very push whose reply was lost: not twice.
    ids[#ids + 1] = id
  elseif ikey ~= '' then
    local k = string.sub(ikey, 2)
    local holder = redis.call('HGET', base .. ':idem', k)
    if holder then
      conflicts[#conflicts + 1] = qi
      conflicts[#conflicts + 1] = k
      ids[#ids + 1] = holder
    else
      accepted[#accepted + 1] = i
      ids[#ids + 1] = id
    end
  else
    accepted[#accepted + 1] = i
    ids[#ids + 1] = id
  end
end

if (#conflicts > 0 and mode == 'raise') or mode == 'check' then
  local reply = {0}
  for _, v in ipairs(conflicts) do reply[#reply + 1] = v end
  return reply
end

local woken = {}
for _, i in ipairs(accepted) do
  local qi = tonumber(ARGV[i])
  local base = KEYS[qi]
  if store_new(base, ARGV[2 + qi], ARGV, i + 1, now) then woken[qi] = true end
end
for qi in pairs(woken) do redis.call('PUBLISH', channel, ARGV[2 + qi]) end

local reply = {1}
for _, id in ipairs(ids) do reply[#reply + 1] = id end
return reply
