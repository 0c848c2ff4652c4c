-- list.lua: one page of a queue's tasks, newest (highest id) first, below a cursor: the
-- order and filters of shoal.backends.shared.listing.
-- KEYS[1]: the queue's base. ARGV: limit, before ('' for the newest), task name ('' for
-- any), created since and until in us ('' for open), budget (ids examined at most, so a
-- rare name never holds the server long), then the statuses.
-- Returns {floor, exported tasks...}: the tasks as exported() does (see lib.lua). A status
-- whose walk ran out of budget leaves floor, the lowest id it examined: the page is exact
-- for ids at or above it (those below are left out), and the caller goes on below it.
-- floor is '' when every status was walked to its end or filled the page.
local base, limit, before, name = KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3]
local since, till, budget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local filtered = name ~= '' or since ~= nil or till ~= nil
local share = math.max(limit, math.floor(budget / math.max(1, #ARGV - 6)))

local function wanted(id)
  local f = redis.call('HMGET', task_key(base, id), 'name', 'created_at')
  local created = tonumber(f[2])
  return (name == '' or f[1] == name) and (since == nil or created >= since)
    and (till == nil or created < till)
end

local found, floor = {}, ''
for i = 7, #ARGV do
  local key = base .. ':s:' .. ARGV[i]
  local from, seen, taken, last = before == '' and '+' or '(' .. before, 0, 0, nil
  while true do
    local want = filtered and math.min(256, share - seen) or (limit - taken)
    local ids = redis.call('ZRANGE', key, from, '-', 'BYLEX', 'REV', 'LIMIT', 0, want)
    for _, id in ipairs(ids) do
      seen, last = seen + 1, id
      if not filtered or wanted(id) then
        found[#found + 1] = id
        taken = taken + 1
        if taken == limit then break end
      end
    end
    if taken == limit or #ids < want then break end -- page filled, or the status walked
    if seen >= share then -- out of budget: exact only down to the last id examined
      if floor == '' or last > floor then floor = last end
      break
    end
    from = '(' .. last
  end
end

table.sort(found, function(a, b) return a > b end)
local rows, payloads = {}, {}
for n = 1, math.min(limit, #found) do
  if floor ~= '' and found[n] < floor then break end
  export(rows, payloads, read(task_key(base, found[n])))
end
local reply = exported(rows, payloads)
table.insert(reply, 1, floor)
return reply
