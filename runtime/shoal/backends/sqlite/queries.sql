-- Queries of the SQLite backend. Lists travel as JSON arrays, so every query has a fixed
-- text whatever the batch size, and a batch is one statement.

-- name: claim_candidates
-- The best due tasks of one queue, read in order from the claimable index (no sort).
SELECT id, priority, run_at FROM shoal_tasks
WHERE queue = :queue AND status IN ('queued', 'retrying') AND run_at <= :now
ORDER BY priority DESC, run_at, id
LIMIT :limit;

-- name: claim
UPDATE shoal_tasks
SET status = 'running', attempts = attempts + 1, worker_id = :worker_id,
    lease_token = :token, lease_expires_at = :expires_at, updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND status IN ('queued', 'retrying')
RETURNING *;

-- name: ack
UPDATE shoal_tasks
SET status = 'done', worker_id = NULL, lease_token = NULL, lease_expires_at = NULL,
    updated_at = :now, finished_at = :now
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS token,
             json_extract(value, '$[2]') AS attempt
      FROM json_each(:items)) AS lease
WHERE shoal_tasks.id = lease.id AND shoal_tasks.lease_token = lease.token
  AND shoal_tasks.attempts = lease.attempt AND shoal_tasks.status = 'running'
RETURNING shoal_tasks.id;

-- name: fail
UPDATE shoal_tasks
SET status = CASE WHEN failure.retry_at IS NULL THEN 'dead' ELSE 'retrying' END,
    run_at = coalesce(failure.retry_at, shoal_tasks.run_at),
    last_error = failure.error, last_traceback = failure.traceback,
    finished_at = CASE WHEN failure.retry_at IS NULL THEN :now END,
    worker_id = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = :now
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS token,
             json_extract(value, '$[2]') AS attempt,
             json_extract(value, '$[3]') AS error, json_extract(value, '$[4]') AS retry_at,
             json_extract(value, '$[5]') AS traceback
      FROM json_each(:items)) AS failure
WHERE shoal_tasks.id = failure.id AND shoal_tasks.lease_token = failure.token
  AND shoal_tasks.attempts = failure.attempt AND shoal_tasks.status = 'running'
RETURNING shoal_tasks.id;

-- name: release
UPDATE shoal_tasks
SET status = 'queued', attempts = attempts - 1, worker_id = NULL, lease_token = NULL,
    lease_expires_at = NULL, updated_at = :now
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS token,
             json_extract(value, '$[2]') AS attempt
      FROM json_each(:items)) AS lease
WHERE shoal_tasks.id = lease.id AND shoal_tasks.lease_token = lease.token
  AND shoal_tasks.attempts = lease.attempt AND shoal_tasks.status = 'running';

-- name: extend_leases
-- Renew the leases still held; each renewed task comes back with who asked to cancel it.
UPDATE shoal_tasks
SET lease_expires_at = :expires_at
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS token,
             json_extract(value, '$[2]') AS attempt
      FROM json_each(:items)) AS lease
WHERE shoal_tasks.id = lease.id AND shoal_tasks.lease_token = lease.token
  AND shoal_tasks.attempts = lease.attempt AND shoal_tasks.status = 'running'
RETURNING shoal_tasks.id, shoal_tasks.cancelled_by;

-- name: cancel_running
-- An attempt that stopped on a cancel request, fenced as the ack.
UPDATE shoal_tasks
SET status = 'cancelled', worker_id = NULL, lease_token = NULL, lease_expires_at = NULL,
    updated_at = :now, finished_at = :now
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS token,
             json_extract(value, '$[2]') AS attempt
      FROM json_each(:items)) AS lease
WHERE shoal_tasks.id = lease.id AND shoal_tasks.lease_token = lease.token
  AND shoal_tasks.attempts = lease.attempt AND shoal_tasks.status = 'running'
RETURNING shoal_tasks.id;

-- name: upsert_worker
INSERT INTO shoal_workers
    (id, host, pid, queues, concurrency, in_flight, started_at, last_seen, version)
VALUES (:id, :host, :pid, :queues, :concurrency, :in_flight, :started_at, :now, :version)
ON CONFLICT (id) DO UPDATE
SET in_flight = excluded.in_flight, queues = excluded.queues,
    concurrency = excluded.concurrency, last_seen = excluded.last_seen,
    version = excluded.version;

-- name: deregister
DELETE FROM shoal_workers WHERE id = :id;

-- name: reap_expired
-- The columns of shoal.backends.shared.reaping.Expired, in order.
SELECT id, attempts, max_attempts, lease_expirations FROM shoal_tasks
WHERE status = 'running' AND lease_expires_at < :now;

-- name: reap_apply
-- The verdicts of shoal.backends.shared.reaping.judge on the rows reap_expired read, in the
-- same transaction: [id, status, lease_expirations, error or null] each.
UPDATE shoal_tasks
SET status = verdict.status, lease_expirations = verdict.expirations,
    last_error = coalesce(verdict.error, last_error),
    finished_at = CASE WHEN verdict.status = 'dead' THEN :now END,
    worker_id = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = :now
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS status,
             json_extract(value, '$[2]') AS expirations, json_extract(value, '$[3]') AS error
      FROM json_each(:verdicts)) AS verdict
WHERE shoal_tasks.id = verdict.id AND shoal_tasks.status = 'running';

-- name: forget_silent_workers
DELETE FROM shoal_workers WHERE last_seen < :cutoff;

-- name: stats
SELECT queue,
       sum(status IN ('queued', 'retrying') AND run_at <= :now) AS ready,
       sum(status IN ('queued', 'retrying') AND run_at > :now) AS scheduled,
       sum(status = 'running') AS running,
       sum(status = 'dead') AS dead,
       min(CASE WHEN status IN ('queued', 'retrying') AND run_at <= :now THEN run_at END)
           AS oldest_ready,
       min(CASE WHEN status IN ('queued', 'retrying') AND run_at > :now THEN run_at END)
           AS next_scheduled
FROM shoal_tasks
WHERE queue IN (SELECT value FROM json_each(:queues))
  AND status IN ('queued', 'retrying', 'running', 'dead')
GROUP BY queue;

-- name: queues
SELECT DISTINCT queue FROM shoal_tasks ORDER BY queue;

-- name: workers
SELECT * FROM shoal_workers ORDER BY id;

-- name: get
SELECT * FROM shoal_tasks WHERE id = :id;

-- name: held_keys
SELECT idempotency_key, id FROM shoal_tasks
WHERE queue = :queue AND status IN ('queued', 'retrying', 'running')
  AND idempotency_key IN (SELECT value FROM json_each(:keys));

-- name: insert
INSERT INTO shoal_tasks (id, queue, name, payload, priority, run_at, max_attempts,
                         idempotency_key, metadata, created_at, updated_at,
                         rate_key, rate_count, rate_period, concurrency_key, concurrency_limit)
VALUES (:id, :queue, :name, :payload, :priority, :run_at, :max_attempts,
        :idempotency_key, :metadata, :now, :now,
        :rate_key, :rate_count, :rate_period, :concurrency_key, :concurrency_limit);

-- name: retry
UPDATE shoal_tasks
SET status = 'queued', attempts = 0, run_at = :run_at, finished_at = NULL, updated_at = :now,
    cancelled_by = NULL
WHERE id = :id AND status IN ('dead', 'cancelled', 'retrying');

-- name: retry_many
-- A page of ids bulk repair listed, in one statement. A task whose idempotency key another
-- unfinished task holds stays as it is (one retry would conflict), and of tasks sharing a
-- key only the newest is queued: the unique index allows one unfinished holder.
UPDATE shoal_tasks
SET status = 'queued', attempts = 0, run_at = :now, finished_at = NULL, updated_at = :now,
    cancelled_by = NULL
FROM (
    SELECT id FROM (
        SELECT t.id, t.idempotency_key,
               row_number() OVER (PARTITION BY t.queue, t.idempotency_key ORDER BY t.id DESC)
                   AS n
        FROM shoal_tasks AS t
        WHERE t.id IN (SELECT value FROM json_each(:ids))
          AND t.status IN ('dead', 'cancelled', 'retrying')
          AND NOT EXISTS (
              SELECT 1 FROM shoal_tasks AS holder
              WHERE holder.queue = t.queue AND holder.idempotency_key = t.idempotency_key
                AND holder.status IN ('queued', 'retrying', 'running') AND holder.id <> t.id)
    )
    WHERE idempotency_key IS NULL OR n = 1
) AS chosen
WHERE shoal_tasks.id = chosen.id
RETURNING shoal_tasks.id;

-- name: cancel
-- A task not started ends cancelled; a running one only records the request, which its
-- worker's next heartbeat reads.
UPDATE shoal_tasks
SET status = CASE status WHEN 'running' THEN 'running' ELSE 'cancelled' END,
    finished_at = CASE status WHEN 'running' THEN NULL ELSE :now END,
    cancelled_by = :by, updated_at = :now
WHERE id = :id AND status IN ('queued', 'retrying', 'running');

-- name: purge
DELETE FROM shoal_tasks
WHERE (:queue IS NULL OR queue = :queue)
  AND status IN ('done', 'dead', 'cancelled')
  AND status IN (SELECT value FROM json_each(:statuses));

-- name: purge_ids
DELETE FROM shoal_tasks
WHERE id IN (SELECT value FROM json_each(:ids))
  AND status IN ('done', 'dead', 'cancelled');

-- name: exists
SELECT 1 FROM shoal_tasks WHERE id = :id;

-- name: prune_finished
-- Retention: delete up to :limit tasks of :queue finished with :status at or before
-- :cutoff, oldest first, off shoal_tasks_finished (migration 0004; the planner uses a
-- partial index only when the query repeats its condition, hence the IN).
DELETE FROM shoal_tasks
WHERE id IN (SELECT id FROM shoal_tasks
             WHERE queue = :queue AND status = :status AND finished_at <= :cutoff
               AND status IN ('done', 'cancelled', 'dead')
             ORDER BY finished_at LIMIT :limit);

-- name: limited_due
-- Whether any due task of the queue is limited: one seek into an index that is empty
-- while no limits are in use. INDEXED BY: without it the planner walked the queue's tasks
-- by (queue, status), every claim reading every queued row (a third of the worker's time).
SELECT 1 FROM shoal_tasks INDEXED BY shoal_tasks_limited
WHERE queue = :queue AND status IN ('queued', 'retrying') AND run_at <= :now
  AND (rate_key IS NOT NULL OR concurrency_key IS NOT NULL)
LIMIT 1;

-- name: limited_candidates
-- The claim's candidates when limits are in use, with their limits, in claim order.
SELECT id, queue, priority, run_at, rate_key, rate_count, rate_period, concurrency_key,
       concurrency_limit
FROM shoal_tasks
WHERE queue = :queue AND status IN ('queued', 'retrying') AND run_at <= :now
ORDER BY priority DESC, run_at, id
LIMIT :limit;

-- name: limited_ready
-- Ready limited tasks counted by their limits, for the stats' held-back figure.
SELECT queue, rate_key, rate_count, rate_period, concurrency_key, concurrency_limit,
       count(*) AS tasks
FROM shoal_tasks INDEXED BY shoal_tasks_limited
WHERE queue IN (SELECT value FROM json_each(:queues))
  AND status IN ('queued', 'retrying') AND run_at <= :now
  AND (rate_key IS NOT NULL OR concurrency_key IS NOT NULL)
GROUP BY queue, rate_key, rate_count, rate_period, concurrency_key, concurrency_limit;

-- name: running_keys
SELECT queue, concurrency_key, count(*) AS running FROM shoal_tasks
    INDEXED BY shoal_tasks_running_keys
WHERE queue IN (SELECT value FROM json_each(:queues))
  AND status = 'running' AND concurrency_key IS NOT NULL
GROUP BY queue, concurrency_key;

-- name: rate_buckets
SELECT queue, key, tokens, at FROM shoal_rate_buckets
WHERE queue IN (SELECT value FROM json_each(:queues));

-- name: store_bucket
INSERT INTO shoal_rate_buckets (queue, key, tokens, at) VALUES (:queue, :key, :tokens, :at)
ON CONFLICT (queue, key) DO UPDATE SET tokens = excluded.tokens, at = excluded.at;

-- name: schedules
-- Each schedule with whether its watermark's task is unfinished (the chain is intact).
SELECT s.*, t.status IN ('queued', 'retrying', 'running') AS pending
FROM shoal_schedules s LEFT JOIN shoal_tasks t ON t.id = s.next_task_id
WHERE :app IS NULL OR s.app = :app
ORDER BY s.name;

-- name: schedules_known
-- What registration decides from: the app's schedules and any of the names declared.
SELECT s.*, 0 AS pending FROM shoal_schedules s
WHERE s.app = :app OR s.name IN (SELECT value FROM json_each(:names));

-- name: schedule
SELECT s.*, 0 AS pending FROM shoal_schedules s WHERE s.name = :name;

-- name: schedule_store
INSERT INTO shoal_schedules (name, app, task, queue, cadence, state, updated_at)
VALUES (:name, :app, :task, :queue, :cadence, :state, :now)
ON CONFLICT (name) DO UPDATE SET
    app = excluded.app, task = excluded.task, queue = excluded.queue,
    cadence = excluded.cadence, state = excluded.state, updated_at = excluded.updated_at;

-- name: schedule_advance
UPDATE shoal_schedules
SET next_tick_at = :next_tick_at, next_task_id = :next_task_id, last_run_at = :last_run_at,
    updated_at = :now
WHERE name = :name;

-- name: schedule_set_state
UPDATE shoal_schedules SET state = :state, updated_at = :now
WHERE name = :name AND state <> 'retired';

-- name: keep_result
-- One kept result (a done task's value, or a dead task's failure); a retried task's next
-- run replaces what it kept before.
INSERT OR REPLACE INTO shoal_results (task_id, status, value, error, traceback, expires_at)
VALUES (:task_id, :status, :value, :error, :traceback, :expires_at);

-- name: result
SELECT * FROM shoal_results WHERE task_id = :id AND expires_at > :now;

-- name: forget_result
DELETE FROM shoal_results WHERE task_id = :id;

-- name: forget_results
-- The kept results of the tasks retry_many queued again (their next run's is the one).
DELETE FROM shoal_results WHERE task_id IN (SELECT value FROM json_each(:ids));

-- name: expire_results
DELETE FROM shoal_results WHERE expires_at <= :now;

-- name: count_finished
-- Done and dead tasks of one queue per minute of a window, read from the retention index
-- (queue, status, finished_at): the cost follows the window's finishes, not the tasks kept.
SELECT status, CAST((finished_at - :start) / 60 AS INTEGER) AS bucket, count(*) AS n
FROM shoal_tasks
WHERE queue = :queue AND status IN ('done', 'dead')
  AND finished_at >= :start AND finished_at < :end
GROUP BY status, bucket;
