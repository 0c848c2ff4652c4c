-- list.lua: one page of a queue's tasks, newest (highest id) first: the order and filters
-- of shoal.backends.shared.listing. The status indexes asked are walked together, highest
-- id first, so no status is read further than the page needs.
-- KEYS[1]: the queue's base. ARGV: limit, above (ids below it; '' for no bound), lowest
-- (ids at or above it; '' for none), task name ('' for any), budget (ids examined at most,
-- so a rare name never holds the server long), then the statuses.
-- Returns {floor, id...}: the ids found, newest first (read.lua reads the tasks). floor is
-- '' when the walk filled the page or reached its end; else it is the last id examined: the
-- page is exact down to it, and the caller goes on below it.
local base, limit, name, budget = KEYS[1], tonumber(ARGV[1]), ARGV[4], tonumber(ARGV[5])
local top = ARGV[2] == '' and '+' or '(' .. ARGV[2]
local bottom = ARGV[3] == '' and '-' or '[' .. ARGV[3]
local chunk = name == '' and limit or 128

local walks = {}
for i = 6, #ARGV do
  walks[#walks + 1] = {key = base .. ':s:' .. ARGV[i], from = top, ids = {}, pos = 1}
end

-- The walk's next id, reading the next chunk of its index when its last one is used up.
local function head(walk)
  if walk.pos > #walk.ids and not walk.ended then
    walk.ids = redis.call('ZRANGE', walk.key, walk.from, bottom, 'BYLEX', 'REV', 'LIMIT', 0, chunk)
    walk.pos, walk.ended = 1, #walk.ids < chunk
    if #walk.ids > 0 then walk.from = '(' .. walk.ids[#walk.ids] end
  end
  return walk.ids[walk.pos]
end

local found, seen, last, floor = {}, 0, nil, ''
while #found < limit do
  local best, best_id = nil, nil
  for _, walk in ipairs(walks) do
    local id = head(walk)
    if id and (best_id == nil or id > best_id) then best, best_id = walk, id end
  end
  if not best then break end -- every index walked to its end
  if seen >= budget then
    floor = last -- every id at or above it was examined
    break
  end
  best.pos, seen, last = best.pos + 1, seen + 1, best_id
  if name == '' or redis.call('HGET', task_key(base, best_id), 'name') == name then
    found[#found + 1] = best_id
  end
end

table.insert(found, 1, floor)
return found
