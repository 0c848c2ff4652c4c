-- read.lua: tasks of one queue by id, for a listing page (list.lua finds the ids).
-- KEYS[1]: the queue's base. ARGV: the ids. Returns the tasks as exported() does (see
-- lib.lua), in the order asked; an id purged since it was found is left out.
local base = KEYS[1]
local rows, payloads = {}, {}
for _, id in ipairs(ARGV) do
  local values = read(task_key(base, id))
  if values[1] then export(rows, payloads, values) end
end
return exported(rows, payloads)
