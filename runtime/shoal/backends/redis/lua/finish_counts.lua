-- finish_counts.lua: done and dead tasks of one queue per minute of a window, counted over
-- the finish-time indexes (:f:done, :f:dead, scored by finish time in us): one ZCOUNT per
-- bucket, so the cost is the window's length, not the tasks kept.
-- KEYS[1]: the queue's base. ARGV: the window's start in us, its buckets, a bucket in us.
-- Returns {done counts..., dead counts...}, oldest bucket first.
local base = KEYS[1]
local start, buckets, width = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local counts = {}
for _, status in ipairs({'done', 'dead'}) do
  for n = 0, buckets - 1 do
    local low = start + n * width
    counts[#counts + 1] = redis.call('ZCOUNT', base .. ':f:' .. status,
      int(low), '(' .. int(low + width))
  end
end
return counts
