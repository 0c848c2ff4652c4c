-- lib.lua: helpers prepended to every other script when it is loaded (a Redis script
-- cannot include another). Every script gets the base name "{prefix:queue}" of each queue
-- it touches in KEYS and derives that queue's keys from it, so a queue's keys share one hash
-- tag and therefore one Cluster slot:
--
--   base..':t:'..id     hash     the task body, stored once
--   base..':ready'      zset     due tasks; score = (1023 - priority) * 2^42 + run_at in ms,
--                                ties broken by member (the id, a UUIDv7: FIFO)
--   base..':scheduled'  zset     delayed and retrying tasks by due time (microseconds)
--   base..':leases'     zset     running tasks by lease deadline (microseconds)
--   base..':s:'..status zset     every task by status, score 0, so listing is by id
--   base..':f:'..status zset     finished tasks (done, cancelled, dead) by finish time
--                                (microseconds): what retention deletes, oldest first
--   base..':idem'       hash     idempotency key -> id of the unfinished task holding it
--   base..':claim:'..r  list     what claim request r took, so a retried claim is not doubled
--   base..':limited'    set      ids of unfinished tasks with limits: stats reads it, and a
--                                claim reads candidates whole only while it is empty
--   base..':ckeys'      hash     concurrency key -> running tasks with it
--   base..':rate:'..k   hash     the rate bucket k: tokens, at (us) when last drawn from
--
-- A task with limits holds them in its 'limits' field, the JSON array of
-- TaskLimits.columns(): rate key, rate count, rate period, concurrency key and limit.
--   base..':sched:'..n  hash     schedule n of this queue: app, task, queue, cadence, state,
--                                next_tick_at and last_run_at (us), next_task_id; the
--                                watermark next_tick_at is the ticks' de-duplication record
--                                ("{prefix}:schedules", a hash of its own, maps n to queue)
--   base..':r:'..id     hash     a kept result (status, value or error and traceback,
--                                expires_at in ms), deleted by Redis at its expiry
--
-- Times are integer microseconds from the server's clock (TIME), so leases never depend on
-- how well the clocks of workers agree. Numbers are written with int() because Lua's own
-- number formatting keeps only 14 significant digits.

local BAND = 4398046511104 -- 2^42: milliseconds until the year 2109, one band per priority

local function int(n)
  return string.format('%d', n)
end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function task_key(base, id)
  return base .. ':t:' .. id
end

-- Higher priority sorts first, then earlier run_at; 2047 bands * 2^42 stays below 2^53, so
-- a double holds every score exactly.
local function ready_score(priority, run_at_us)
  local ms = math.floor(run_at_us / 1000)
  if ms < 0 then ms = 0 elseif ms >= BAND then ms = BAND - 1 end
  return (1023 - priority) * BAND + ms
end

local FINISHED = {done = true, cancelled = true, dead = true}

-- Move an id from one status index to another (from may be nil for a new task); a task
-- that finishes `now` enters its status's finish-time index, one that leaves it leaves it.
local function index_move(base, id, from, to, now)
  if from then
    redis.call('ZREM', base .. ':s:' .. from, id)
    if FINISHED[from] then redis.call('ZREM', base .. ':f:' .. from, id) end
  end
  if to then
    redis.call('ZADD', base .. ':s:' .. to, 0, id)
    if FINISHED[to] then redis.call('ZADD', base .. ':f:' .. to, int(now), id) end
  end
end

-- Put a claimable task where claim finds it: ready if due, else scheduled.
-- Returns true when it is ready now, so the caller wakes the listeners.
local function enqueue(base, id, priority, run_at, now)
  if run_at <= now then
    redis.call('ZADD', base .. ':ready', int(ready_score(priority, run_at)), id)
    return true
  end
  redis.call('ZADD', base .. ':scheduled', int(run_at), id)
  return false
end

-- Store one new task of queue `queue` from the 8 fields at args[at]: id, name, payload,
-- priority, run_at (us), max_attempts, idempotency key ('' or '=' .. key), metadata JSON or
-- ''. Returns true when it is ready now (push.lua and schedule_advance.lua).
local function store_new(base, queue, args, at, now)
  local id, priority, run_at = args[at], args[at + 3], args[at + 4]
  local key = task_key(base, id)
  redis.call('HSET', key, 'id', id, 'queue', queue, 'name', args[at + 1],
    'payload', args[at + 2], 'status', 'queued', 'priority', priority,
    'run_at', run_at, 'attempts', '0', 'max_attempts', args[at + 5],
    'lease_expirations', '0', 'created_at', int(now), 'updated_at', int(now))
  if args[at + 6] ~= '' then
    local k = string.sub(args[at + 6], 2)
    redis.call('HSET', key, 'idempotency_key', k)
    redis.call('HSET', base .. ':idem', k, id)
  end
  if args[at + 7] ~= '' then redis.call('HSET', key, 'metadata', args[at + 7]) end
  if args[at + 8] ~= '' then
    redis.call('HSET', key, 'limits', args[at + 8])
    redis.call('SADD', base .. ':limited', id)
  end
  index_move(base, id, nil, 'queued', now)
  return enqueue(base, id, tonumber(priority), tonumber(run_at), now)
end

local function requeue(base, key, id, now)
  local f = redis.call('HMGET', key, 'priority', 'run_at')
  return enqueue(base, id, tonumber(f[1]), tonumber(f[2]), now)
end

-- A finished task frees its idempotency key, unless another task took it meanwhile.
local function free_key(base, key, id)
  local k = redis.call('HGET', key, 'idempotency_key')
  if k and redis.call('HGET', base .. ':idem', k) == id then
    redis.call('HDEL', base .. ':idem', k)
  end
end

-- Keep a task's result until expires_ms (ms since the epoch): Redis deletes it then. The key
-- is new (a task ends once per run, and retry.lua deletes the last run's), so it is written
-- without being deleted first: the ack is the hot path.
local function keep_result(base, id, expires_ms, status, ...)
  local key = base .. ':r:' .. id
  redis.call('HSET', key, 'status', status, 'expires_at', expires_ms, ...)
  redis.call('PEXPIREAT', key, expires_ms)
end

-- Whether the lease (token, attempt) still owns the running task; also the fields read.
local function holds(key, token, attempt)
  local f = redis.call('HMGET', key, 'status', 'token', 'attempts')
  return f[1] == 'running' and f[2] == token and f[3] == attempt, f
end

-- The fields a client reads, in this order (codec.FIELDS is the same list), and the
-- payload, which read() fetches in the same HMGET.
local FIELDS = {'id', 'queue', 'name', 'status', 'priority', 'run_at', 'attempts',
  'max_attempts', 'created_at', 'updated_at', 'idempotency_key', 'metadata', 'last_error',
  'lease_expirations', 'worker_id', 'finished_at', 'token', 'cancelled_by', 'limits', 'payload'}
local STATUS, ATTEMPTS, UPDATED_AT, WORKER_ID, TOKEN, LIMITS, PAYLOAD = 4, 7, 10, 15, 17, 19, 20

local function read(key)
  return redis.call('HMGET', key, unpack(FIELDS))
end

-- Tasks go back to a client as one reply: the values of FIELDS of every task in a single
-- JSON array of arrays (false for a field the hash lacks), then the payloads, binary and
-- apart. Parsing replies is what costs a client most, and one JSON document is parsed in
-- one C call where 17 bulk strings per task would be 17 objects each. export() collects a
-- task read with read(); exported() makes the reply.
local function export(rows, payloads, values)
  payloads[#payloads + 1] = values[PAYLOAD]
  values[PAYLOAD] = nil
  rows[#rows + 1] = values
end

local function exported(rows, payloads)
  if #rows == 0 then return {} end -- cjson would encode an empty table as an object
  local reply = {cjson.encode(rows)}
  for i = 1, #payloads do reply[i + 1] = payloads[i] end
  return reply
end

-- Run `command key item...` over a list in slices, within Lua's limit on unpack().
local function each_slice(command, key, items)
  for i = 1, #items, 1000 do
    redis.call(command, key, unpack(items, i, math.min(i + 999, #items)))
  end
end

-- The concurrency key of a task's 'limits' field (nil for none).
local function concurrency_key(limits)
  if not limits then return nil end
  local key = cjson.decode(limits)[4]
  if key == cjson.null then return nil end
  return key
end

-- A task with a concurrency key stops running: its key has a slot free again.
local function free_slot(base, limits)
  local k = concurrency_key(limits)
  if k then redis.call('HINCRBY', base .. ':ckeys', k, -1) end
end

-- A task with limits finished: it leaves the set of unfinished limited tasks.
local function finish_limited(base, id, limits)
  if limits then redis.call('SREM', base .. ':limited', id) end
end

local function leave_running(base, key, id, to, now)
  local limits = redis.call('HGET', key, 'limits')
  free_slot(base, limits)
  if FINISHED[to] then finish_limited(base, id, limits) end
  redis.call('ZREM', base .. ':leases', id)
  redis.call('HDEL', key, 'worker_id')
  redis.call('HSET', key, 'status', to, 'updated_at', int(now))
  index_move(base, id, 'running', to, now)
end
