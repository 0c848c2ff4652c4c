-- list.lua: the newest tasks of one queue with the given statuses.
-- KEYS[1]: the queue's base. ARGV: limit, then the statuses.
-- Returns the tasks as exported() does (see lib.lua), newest (highest id) first.
local base, limit = KEYS[1], tonumber(ARGV[1])
local ids = {}
for i = 2, #ARGV do
  local got = redis.call('ZRANGE', base .. ':s:' .. ARGV[i], '+', '-', 'BYLEX', 'REV', 'LIMIT', 0, limit)
  for _, id in ipairs(got) do ids[#ids + 1] = id end
end
table.sort(ids, function(a, b) return a > b end)
local rows, payloads = {}, {}
for n = 1, math.min(limit, #ids) do export(rows, payloads, read(task_key(base, ids[n]))) end
return exported(rows, payloads)
