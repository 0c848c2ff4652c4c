-- The queries of the postgresql:// backend, one named section each.
--
-- {schema} stands for the backend's schema as a quoted identifier ("shoal"), {channel} for
-- its NOTIFY channel as a string literal ('shoal.work'). Every table name is qualified, so
-- these queries also run on a caller's connection whatever its search_path.
--
-- Statuses: claimable = queued | retrying; unfinished = claimable | running. The predicates
-- below are written exactly as the partial indexes of 0001_initial.sql so that the planner
-- can use them.

-- name: lock_migrations
-- Held until the migrating transaction ends: concurrent setups run one after the other,
-- and the later ones find every migration already recorded.
SELECT pg_advisory_xact_lock(hashtext('shoal-migrate:' || $1::text));

-- name: bootstrap
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: applied_migrations
SELECT version FROM {schema}.schema_migrations ORDER BY version;

-- name: record_migration
INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2);

-- name: missing_objects
SELECT name FROM (VALUES
    ('{schema}.schema_migrations'), ('{schema}.tasks'), ('{schema}.workers'),
    ('{schema}.tasks_claimable'), ('{schema}.tasks_running'), ('{schema}.tasks_dead'),
    ('{schema}.tasks_finished'), ('{schema}.tasks_idempotency'), ('{schema}.results')
) AS wanted(name)
WHERE to_regclass(name) IS NULL
UNION ALL
SELECT '{schema}.wake(text[])' WHERE to_regprocedure('{schema}.wake(text[])') IS NULL
UNION ALL
SELECT '{schema}.finished(text[])'
WHERE to_regprocedure('{schema}.finished(text[])') IS NULL;

-- name: ping
SELECT 1;

-- name: push
-- One statement for the whole batch: atomic on its own, so a reused idempotency key
-- (unique violation) stores nothing. The NOTIFY is sent by the same statement and is
-- delivered when its transaction commits.
WITH stored AS (
    INSERT INTO {schema}.tasks
        (id, queue, name, payload, priority, run_at, max_attempts, idempotency_key, metadata,
         rate_key, rate_count, rate_period, concurrency_key, concurrency_limit)
    SELECT id, queue, name, payload, priority, run_at, max_attempts, idempotency_key,
           metadata::jsonb, rate_key, rate_count, rate_period, concurrency_key, concurrency_limit
    FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::bytea[], $5::integer[], $6::timestamptz[],
        $7::integer[], $8::text[], $9::text[],
        $10::text[], $11::integer[], $12::float8[], $13::text[], $14::integer[]
    ) AS new(id, queue, name, payload, priority, run_at, max_attempts, idempotency_key, metadata,
             rate_key, rate_count, rate_period, concurrency_key, concurrency_limit)
    RETURNING queue
)
SELECT {schema}.wake(array_agg(queue)) FROM stored;

-- name: push_skip
-- As push, but a task whose key an unfinished task holds is skipped; for those rows the
-- holder's id is returned (holders committed after this statement began are not visible
-- to it: the caller looks them up again with the holders query).
WITH new AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::bytea[], $5::integer[], $6::timestamptz[],
        $7::integer[], $8::text[], $9::text[],
        $10::text[], $11::integer[], $12::float8[], $13::text[], $14::integer[]
    ) WITH ORDINALITY
      AS new(id, queue, name, payload, priority, run_at, max_attempts, idempotency_key,
             metadata, rate_key, rate_count, rate_period, concurrency_key, concurrency_limit,
             ord)
), stored AS (
    INSERT INTO {schema}.tasks
        (id, queue, name, payload, priority, run_at, max_attempts, idempotency_key, metadata,
         rate_key, rate_count, rate_period, concurrency_key, concurrency_limit)
    SELECT id, queue, name, payload, priority, run_at, max_attempts, idempotency_key,
           metadata::jsonb, rate_key, rate_count, rate_period, concurrency_key, concurrency_limit
    FROM new ORDER BY ord
    ON CONFLICT (queue, idempotency_key)
        WHERE idempotency_key IS NOT NULL AND status IN ('queued', 'running', 'retrying')
        DO NOTHING
    RETURNING id, queue
), woken AS (
    SELECT {schema}.wake(array_agg(queue)) FROM stored
)
SELECT new.id, stored.id IS NOT NULL AS stored, holder.id AS holder,
       (SELECT count(*) FROM woken) AS woken
FROM new
LEFT JOIN stored ON stored.id = new.id
LEFT JOIN {schema}.tasks AS holder
       ON stored.id IS NULL
      AND holder.queue = new.queue AND holder.idempotency_key = new.idempotency_key
      AND holder.status IN ('queued', 'running', 'retrying')
ORDER BY new.ord;

-- name: holders
SELECT t.queue, t.idempotency_key, t.id
FROM unnest($1::text[], $2::text[]) AS wanted(queue, idempotency_key)
JOIN {schema}.tasks AS t
  ON t.queue = wanted.queue AND t.idempotency_key = wanted.idempotency_key
 AND t.status IN ('queued', 'running', 'retrying');

-- name: claim
-- One statement: per queue, walk tasks_claimable in claim order and lock what no one else
-- holds (SKIP LOCKED); keep the best $3 of those across queues and lease them. Rows a
-- multi-queue claim locked but did not keep are unlocked when the statement ends.
--
-- While limited tasks are due (tasks_limited, migration 0006: empty while no limits are in
-- use), pick_limited chooses instead, by the rule of backends/shared/limiting.py; $6 is
-- how many candidates beyond $3 it may examine.
WITH limited AS (
    SELECT EXISTS (
        SELECT 1 FROM {schema}.tasks AS t
        WHERE t.queue = ANY($1::text[]) AND t.status IN ('queued', 'retrying')
          AND (t.rate_key IS NOT NULL OR t.concurrency_key IS NOT NULL) AND t.run_at <= now()
    ) AS due
), free AS (
    SELECT candidate.id
    FROM unnest($1::text[]) AS wanted(queue)
    CROSS JOIN LATERAL (
        SELECT t.id, t.priority, t.run_at
        FROM {schema}.tasks AS t
        WHERE t.queue = wanted.queue
          AND t.status IN ('queued', 'retrying')
          AND t.run_at <= now()
        ORDER BY t.priority DESC, t.run_at, t.id
        LIMIT $3
        FOR UPDATE SKIP LOCKED
    ) AS candidate
    WHERE NOT (SELECT due FROM limited)
    ORDER BY candidate.priority DESC, candidate.run_at, candidate.id
    LIMIT $3
), picked AS (
    SELECT id FROM free
    UNION ALL
    SELECT id FROM {schema}.pick_limited($1::text[], $3::integer, $6::integer) AS id
    WHERE (SELECT due FROM limited)
), claimed AS (
    UPDATE {schema}.tasks AS t
    SET status = 'running', attempts = t.attempts + 1, worker_id = $2, lease_token = $5,
        lease_expires_at = now() + make_interval(secs => $4), updated_at = now()
    FROM picked
    WHERE t.id = picked.id
    RETURNING t.*
)
SELECT * FROM claimed ORDER BY priority DESC, run_at, id;

-- name: claim_queue
-- The claim above for a worker of one queue (the usual case), with the same parameters
-- ($1 an array holding that one queue). One plan fits every call, so PostgreSQL settles on
-- a generic plan for it after a few executions; the multi-queue form, whose generic plan
-- it estimates as dearer, it plans afresh on every call.
WITH limited AS (
    SELECT EXISTS (
        SELECT 1 FROM {schema}.tasks AS t
        WHERE t.queue = ($1::text[])[1] AND t.status IN ('queued', 'retrying')
          AND (t.rate_key IS NOT NULL OR t.concurrency_key IS NOT NULL) AND t.run_at <= now()
    ) AS due
), free AS (
    SELECT t.id
    FROM {schema}.tasks AS t
    WHERE t.queue = ($1::text[])[1]
      AND t.status IN ('queued', 'retrying')
      AND t.run_at <= now()
      AND NOT (SELECT due FROM limited)
    ORDER BY t.priority DESC, t.run_at, t.id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM free
    UNION ALL
    SELECT id FROM {schema}.pick_limited($1::text[], $3::integer, $6::integer) AS id
    WHERE (SELECT due FROM limited)
), claimed AS (
    UPDATE {schema}.tasks AS t
    SET status = 'running', attempts = t.attempts + 1, worker_id = $2, lease_token = $5,
        lease_expires_at = now() + make_interval(secs => $4), updated_at = now()
    FROM picked
    WHERE t.id = picked.id
    RETURNING t.*
)
SELECT * FROM claimed ORDER BY priority DESC, run_at, id;

-- name: ack
UPDATE {schema}.tasks AS t
SET status = 'done', finished_at = now(), updated_at = now(),
    worker_id = NULL, lease_token = NULL, lease_expires_at = NULL
FROM unnest($1::text[], $2::text[], $3::integer[]) AS lease(id, token, attempt)
WHERE t.id = lease.id AND t.status = 'running'
  AND t.lease_token = lease.token AND t.attempts = lease.attempt
RETURNING t.id;

-- name: ack_delete
-- The ack when finished work is not kept (retention=0): a task that succeeded is deleted at
-- once rather than marked done and deleted at the next reap, which spares a row version and
-- its index entries per task. Fenced exactly as the ack above.
DELETE FROM {schema}.tasks AS t
USING unnest($1::text[], $2::text[], $3::integer[]) AS lease(id, token, attempt)
WHERE t.id = lease.id AND t.status = 'running'
  AND t.lease_token = lease.token AND t.attempts = lease.attempt
RETURNING t.id;

-- name: fail
WITH failed AS (
    UPDATE {schema}.tasks AS t
    SET status = CASE WHEN f.retry_at IS NULL THEN 'dead' ELSE 'retrying' END,
        run_at = coalesce(f.retry_at, t.run_at),
        finished_at = CASE WHEN f.retry_at IS NULL THEN now() END,
        last_error = f.error, last_traceback = f.traceback, updated_at = now(),
        worker_id = NULL, lease_token = NULL, lease_expires_at = NULL
    FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::timestamptz[],
                $6::text[], $7::timestamptz[])
         AS f(id, token, attempt, error, retry_at, traceback, keep_until)
    WHERE t.id = f.id AND t.status = 'running'
      AND t.lease_token = f.token AND t.attempts = f.attempt
    RETURNING t.id, t.queue, t.status, t.run_at, f.error, f.traceback, f.keep_until
), woken AS (
    -- Only retries that are already due need a worker now.
    SELECT {schema}.wake(array_agg(queue))
    FROM failed WHERE status = 'retrying' AND run_at <= now()
), kept AS (
    -- A final failure of a task that keeps its result is that result.
    INSERT INTO {schema}.results (task_id, status, error, traceback, expires_at)
    SELECT id, 'dead', error, traceback, keep_until
    FROM failed WHERE status = 'dead' AND keep_until IS NOT NULL
    ON CONFLICT (task_id) DO UPDATE
    SET status = 'dead', value = NULL, error = excluded.error,
        traceback = excluded.traceback, expires_at = excluded.expires_at
), told AS (
    -- Whoever waits for a dead task hears of it, kept or not.
    SELECT {schema}.finished(array_agg(id)) FROM failed WHERE status = 'dead'
)
SELECT id, (SELECT count(*) FROM woken) AS woken, (SELECT count(*) FROM told) AS told
FROM failed;

-- name: release
WITH released AS (
    UPDATE {schema}.tasks AS t
    SET status = 'queued', attempts = t.attempts - 1, updated_at = now(),
        worker_id = NULL, lease_token = NULL, lease_expires_at = NULL
    FROM unnest($1::text[], $2::text[], $3::integer[]) AS lease(id, token, attempt)
    WHERE t.id = lease.id AND t.status = 'running'
      AND t.lease_token = lease.token AND t.attempts = lease.attempt
    RETURNING t.queue
)
SELECT {schema}.wake(array_agg(queue)) FROM released;

-- name: heartbeat
-- Upsert the worker, renew the leases it still holds and return their ids, each with who
-- asked to cancel it. Renewing touches only unindexed columns: a HOT update.
WITH seen AS (
    INSERT INTO {schema}.workers AS w
        (id, host, pid, queues, concurrency, in_flight, started_at, last_seen, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $12)
    ON CONFLICT (id) DO UPDATE
    SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
        concurrency = excluded.concurrency, in_flight = excluded.in_flight,
        last_seen = excluded.last_seen, version = excluded.version
)
UPDATE {schema}.tasks AS t
SET lease_expires_at = now() + make_interval(secs => $11)
FROM unnest($8::text[], $9::text[], $10::integer[]) AS lease(id, token, attempt)
WHERE t.id = lease.id AND t.status = 'running'
  AND t.lease_token = lease.token AND t.attempts = lease.attempt
RETURNING t.id, t.cancelled_by;

-- name: cancel_running
-- An attempt that stopped on a cancel request, fenced as the ack; whoever waits for these
-- tasks' results hears that they ended, as after a cancel before they ran.
WITH cancelled AS (
    UPDATE {schema}.tasks AS t
    SET status = 'cancelled', finished_at = now(), updated_at = now(),
        worker_id = NULL, lease_token = NULL, lease_expires_at = NULL
    FROM unnest($1::text[], $2::text[], $3::integer[]) AS lease(id, token, attempt)
    WHERE t.id = lease.id AND t.status = 'running'
      AND t.lease_token = lease.token AND t.attempts = lease.attempt
    RETURNING t.id
), told AS (
    SELECT {schema}.finished(array_agg(id)) FROM cancelled
)
SELECT id, (SELECT count(*) FROM told) AS told FROM cancelled;

-- name: deregister
DELETE FROM {schema}.workers WHERE id = $1;

-- name: reap_expired
-- Running tasks are few (bounded by the workers' concurrency): scanning them through
-- tasks_running and filtering on the unindexed lease expiry is cheap. The columns are those
-- of shoal.backends.shared.reaping.Expired, in order.
SELECT id, attempts, max_attempts, lease_expirations
FROM {schema}.tasks
WHERE status = 'running' AND lease_expires_at < now()
ORDER BY id
FOR UPDATE SKIP LOCKED;

-- name: reap_apply
-- The verdicts of shoal.backends.shared.reaping.judge on the rows reap_expired locked.
WITH reaped AS (
    UPDATE {schema}.tasks AS t
    SET status = r.status, lease_expirations = r.expirations,
        last_error = coalesce(r.error, t.last_error),
        finished_at = CASE WHEN r.status = 'dead' THEN now() END, updated_at = now(),
        worker_id = NULL, lease_token = NULL, lease_expires_at = NULL
    FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[])
         AS r(id, status, expirations, error)
    WHERE t.id = r.id AND t.status = 'running'
    RETURNING t.id, t.queue, t.status
)
SELECT {schema}.wake(array_agg(queue) FILTER (WHERE status = 'queued')),
       {schema}.finished(array_agg(id) FILTER (WHERE status = 'dead'))
FROM reaped;

-- name: forget_workers
DELETE FROM {schema}.workers WHERE last_seen < now() - make_interval(secs => $1);

-- name: prune_finished
-- Retention: delete up to $4 finished tasks past their time, oldest first, by the rules
-- ($1 queue, $2 status, $3 seconds kept: shoal.core.retention.expiries). Each rule walks
-- the partial index of its status (tasks_finished for done and cancelled, tasks_dead), so
-- the cost follows the rows deleted, not the rows kept; the statuses are spelt out for the
-- planner to see that those indexes apply.
WITH rule AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[]) AS r(queue, status, secs)
), doomed AS (
    (SELECT old.id FROM rule CROSS JOIN LATERAL (
        SELECT t.id FROM {schema}.tasks AS t
        WHERE t.queue = rule.queue AND t.status IN ('done', 'cancelled')
          AND t.status = rule.status
          AND t.finished_at <= now() - make_interval(secs => rule.secs)
        ORDER BY t.finished_at
        LIMIT $4
    ) AS old WHERE rule.status IN ('done', 'cancelled'))
    UNION ALL
    (SELECT old.id FROM rule CROSS JOIN LATERAL (
        SELECT t.id FROM {schema}.tasks AS t
        WHERE t.queue = rule.queue AND t.status = 'dead'
          AND t.finished_at <= now() - make_interval(secs => rule.secs)
        ORDER BY t.finished_at
        LIMIT $4
    ) AS old WHERE rule.status = 'dead')
    LIMIT $4
)
DELETE FROM {schema}.tasks AS t
USING doomed
WHERE t.id = doomed.id AND t.status IN ('done', 'cancelled', 'dead');

-- name: stats
-- One statement for any number of queues; every count is an index-only walk over one
-- partial index, so finished work never costs anything here.
--
-- limited: ready limited tasks counted by their limits, each group with its bucket and the
-- running tasks of its key, as JSON (postgres/limits.py computes the held-back figure from
-- it by the shared rule); NULL, after one probe of the empty tasks_limited, without limits.
SELECT wanted.queue, claimable.ready, claimable.scheduled, running.running, dead.dead,
       extract(epoch FROM now() - claimable.oldest_ready)::float8 AS oldest_ready_age,
       extract(epoch FROM claimable.next_scheduled - now())::float8 AS next_due_in,
       limited.groups AS limited, extract(epoch FROM clock_timestamp())::float8 AS clock
FROM unnest($1::text[]) AS wanted(queue)
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE t.run_at <= now()) AS ready,
           count(*) FILTER (WHERE t.run_at > now()) AS scheduled,
           min(t.run_at) FILTER (WHERE t.run_at <= now()) AS oldest_ready,
           min(t.run_at) FILTER (WHERE t.run_at > now()) AS next_scheduled
    FROM {schema}.tasks AS t
    WHERE t.queue = wanted.queue AND t.status IN ('queued', 'retrying')
) AS claimable
CROSS JOIN LATERAL (
    SELECT count(*) AS running FROM {schema}.tasks AS t
    WHERE t.queue = wanted.queue AND t.status = 'running'
) AS running
CROSS JOIN LATERAL (
    SELECT count(*) AS dead FROM {schema}.tasks AS t
    WHERE t.queue = wanted.queue AND t.status = 'dead'
) AS dead
CROSS JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_array(
        g.rate_key, g.rate_count, g.rate_period, g.concurrency_key, g.concurrency_limit,
        g.tasks, b.tokens, extract(epoch FROM b.at)::float8,
        (SELECT count(*) FROM {schema}.tasks AS r
         WHERE r.queue = wanted.queue AND r.concurrency_key = g.concurrency_key
           AND r.status = 'running'))) AS groups
    FROM (
        SELECT t.rate_key, t.rate_count, t.rate_period, t.concurrency_key,
               t.concurrency_limit, count(*) AS tasks
        FROM {schema}.tasks AS t
        WHERE t.queue = wanted.queue AND t.status IN ('queued', 'retrying')
          AND (t.rate_key IS NOT NULL OR t.concurrency_key IS NOT NULL) AND t.run_at <= now()
        GROUP BY 1, 2, 3, 4, 5
    ) AS g
    LEFT JOIN {schema}.rate_buckets AS b ON b.queue = wanted.queue AND b.key = g.rate_key
) AS limited;

-- name: work_due
SELECT EXISTS (
    SELECT 1 FROM unnest($1::text[]) AS wanted(queue)
    WHERE EXISTS (
        SELECT 1 FROM {schema}.tasks AS t
        WHERE t.queue = wanted.queue AND t.status IN ('queued', 'retrying')
          AND t.run_at <= now()
    )
);

-- name: queues
-- Every task sits in exactly one of four partial indexes led by the queue: a loose index
-- scan over the four lists the queues without reading finished rows one by one.
WITH RECURSIVE found(queue) AS (
    SELECT least(
        (SELECT min(queue) FROM {schema}.tasks WHERE status IN ('queued', 'retrying')),
        (SELECT min(queue) FROM {schema}.tasks WHERE status = 'running'),
        (SELECT min(queue) FROM {schema}.tasks WHERE status = 'dead'),
        (SELECT min(queue) FROM {schema}.tasks WHERE status IN ('done', 'cancelled')))
    UNION ALL
    SELECT least(
        (SELECT min(t.queue) FROM {schema}.tasks AS t
         WHERE t.status IN ('queued', 'retrying') AND t.queue > found.queue),
        (SELECT min(t.queue) FROM {schema}.tasks AS t
         WHERE t.status = 'running' AND t.queue > found.queue),
        (SELECT min(t.queue) FROM {schema}.tasks AS t
         WHERE t.status = 'dead' AND t.queue > found.queue),
        (SELECT min(t.queue) FROM {schema}.tasks AS t
         WHERE t.status IN ('done', 'cancelled') AND t.queue > found.queue))
    FROM found WHERE found.queue IS NOT NULL
)
SELECT queue FROM found WHERE queue IS NOT NULL ORDER BY queue;

-- name: workers
SELECT * FROM {schema}.workers ORDER BY id;

-- name: get
SELECT * FROM {schema}.tasks WHERE id = $1;

-- name: retry
WITH revived AS (
    UPDATE {schema}.tasks
    SET status = 'queued', attempts = 0, run_at = coalesce($2, now()), finished_at = NULL,
        updated_at = now(), cancelled_by = NULL
    WHERE id = $1 AND status IN ('dead', 'cancelled', 'retrying')
    RETURNING id, queue
), woken AS (
    SELECT {schema}.wake(array_agg(queue)) FROM revived
), forgotten AS (
    -- The next run's result is the one to wait for.
    DELETE FROM {schema}.results AS r USING revived WHERE r.task_id = revived.id
)
SELECT EXISTS (SELECT 1 FROM {schema}.tasks WHERE id = $1) AS found,
       EXISTS (SELECT 1 FROM revived) AS revived,
       (SELECT count(*) FROM woken) AS woken;

-- name: retry_many
-- A page of ids bulk repair listed, in one statement. A task whose idempotency key another
-- unfinished task holds stays as it is (one retry would conflict), and of tasks sharing a
-- key only the newest is queued: the unique index allows one unfinished holder. The
-- status is checked again as each row is updated: a worker may claim a retrying task.
WITH chosen AS (
    SELECT id FROM (
        SELECT t.id, t.idempotency_key,
               row_number() OVER (PARTITION BY t.queue, t.idempotency_key ORDER BY t.id DESC)
                   AS n
        FROM {schema}.tasks AS t
        WHERE t.id = ANY ($1::text[]) AND t.status IN ('dead', 'cancelled', 'retrying')
          AND NOT EXISTS (
              SELECT 1 FROM {schema}.tasks AS holder
              WHERE holder.queue = t.queue AND holder.idempotency_key = t.idempotency_key
                AND holder.status IN ('queued', 'running', 'retrying') AND holder.id <> t.id)
    ) AS keyed
    WHERE idempotency_key IS NULL OR n = 1
), revived AS (
    UPDATE {schema}.tasks AS t
    SET status = 'queued', attempts = 0, run_at = now(), finished_at = NULL, updated_at = now(),
        cancelled_by = NULL
    FROM chosen
    WHERE t.id = chosen.id AND t.status IN ('dead', 'cancelled', 'retrying')
    RETURNING t.id, t.queue
), woken AS (
    SELECT {schema}.wake(array_agg(DISTINCT queue)) FROM revived
), forgotten AS (
    -- As retry: the next run's result is the one to wait for.
    DELETE FROM {schema}.results AS r USING revived WHERE r.task_id = revived.id
)
SELECT (SELECT count(*) FROM revived) AS revived, (SELECT count(*) FROM woken) AS woken;

-- name: cancel
-- A task not started ends cancelled; a running one only records the request ($2, who
-- asked), which its worker's next heartbeat reads.
WITH cancelled AS (
    UPDATE {schema}.tasks
    SET status = CASE status WHEN 'running' THEN 'running' ELSE 'cancelled' END,
        finished_at = CASE status WHEN 'running' THEN NULL ELSE now() END,
        cancelled_by = $2, updated_at = now()
    WHERE id = $1 AND status IN ('queued', 'retrying', 'running')
    RETURNING id, status
), told AS (
    -- Only a task that ended now: a running one ends at its worker's cancel_running.
    SELECT {schema}.finished(array_agg(id)) FROM cancelled WHERE status = 'cancelled'
)
SELECT EXISTS (SELECT 1 FROM {schema}.tasks WHERE id = $1) AS found,
       EXISTS (SELECT 1 FROM cancelled) AS cancelled,
       (SELECT count(*) FROM told) AS told;

-- name: purge
-- A batch of at most $3 rows per statement: no long transaction, no lock pile-up.
WITH doomed AS (
    SELECT id FROM {schema}.tasks
    WHERE status = ANY ($1::text[]) AND ($2::text IS NULL OR queue = $2)
    LIMIT $3
)
DELETE FROM {schema}.tasks AS t
USING doomed
WHERE t.id = doomed.id AND t.status = ANY ($1::text[]);

-- name: purge_ids
-- A page of ids bulk repair listed: one statement, bounded by the page.
DELETE FROM {schema}.tasks
WHERE id = ANY ($1::text[]) AND status IN ('done', 'dead', 'cancelled');
-- name: schedules
-- Each schedule with whether its watermark's task is unfinished (the chain is intact); a
-- task deleted by retention is finished.
SELECT s.*, coalesce(t.status IN ('queued', 'retrying', 'running'), false) AS pending
FROM {schema}.schedules s LEFT JOIN {schema}.tasks t ON t.id = s.next_task_id
WHERE $1::text IS NULL OR s.app = $1
ORDER BY s.name;

-- name: schedules_known
-- What registration decides from, locked until it commits: the app's schedules and any of
-- the names declared.
SELECT s.*, false AS pending FROM {schema}.schedules s
WHERE s.app = $1 OR s.name = ANY($2::text[])
ORDER BY s.name
FOR UPDATE;

-- name: schedule_locked
SELECT s.*, false AS pending FROM {schema}.schedules s WHERE s.name = $1 FOR UPDATE;

-- name: schedules_store
INSERT INTO {schema}.schedules AS s (name, app, task, queue, cadence, state)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
ON CONFLICT (name) DO UPDATE SET
    app = excluded.app, task = excluded.task, queue = excluded.queue,
    cadence = excluded.cadence, state = excluded.state, updated_at = now();

-- name: schedule_advance
UPDATE {schema}.schedules
SET next_tick_at = $2, next_task_id = $3, last_run_at = $4, updated_at = now()
WHERE name = $1;

-- name: schedule_set_state
UPDATE {schema}.schedules SET state = $2, updated_at = now()
WHERE name = $1 AND state <> 'retired';

-- name: keep_values
-- An ack that keeps return values: the placeholder below is the ack in use (ack or
-- ack_delete, with its $1-$3), and only the tasks it applied keep theirs ($4-$6), in the
-- same statement.
WITH acked AS (
    {ack}
), kept AS (
    INSERT INTO {schema}.results (task_id, status, value, expires_at)
    SELECT k.id, 'done', k.value, k.expires_at
    FROM unnest($4::text[], $5::bytea[], $6::timestamptz[]) AS k(id, value, expires_at)
    JOIN acked ON acked.id = k.id
    ON CONFLICT (task_id) DO UPDATE
    SET status = 'done', value = excluded.value, error = NULL, traceback = NULL,
        expires_at = excluded.expires_at
    RETURNING task_id
), told AS (
    SELECT {schema}.finished(array_agg(task_id)) FROM kept
)
SELECT id, (SELECT count(*) FROM told) AS told FROM acked;

-- name: result
-- The task and its unexpired result in one statement, so in one snapshot: a result stored
-- with its task's end is seen together with it. A purged task's columns are all NULL.
SELECT t.*, r.status AS kept_status, r.value AS kept_value, r.error AS kept_error,
       r.traceback AS kept_traceback, r.expires_at AS kept_expires_at
FROM (SELECT $1::text AS id) AS wanted
LEFT JOIN {schema}.tasks AS t ON t.id = wanted.id
LEFT JOIN {schema}.results AS r ON r.task_id = wanted.id AND r.expires_at > now();

-- name: expire_results
-- Up to $1 expired results, oldest first, off the expiry index.
DELETE FROM {schema}.results
WHERE task_id IN (
    SELECT task_id FROM {schema}.results WHERE expires_at <= now() ORDER BY expires_at LIMIT $1
);

-- name: count_finished
-- Done and dead tasks of one queue per minute of a window: one branch per status, so each
-- matches the predicate of its partial index (tasks_finished, tasks_dead: (queue,
-- finished_at)); one IN over both would match neither and scan the table.
SELECT status, floor((extract(epoch FROM finished_at) - $2) / 60)::int AS bucket,
       count(*)::int AS n
FROM (
    SELECT 'done' AS status, finished_at FROM {schema}.tasks
    WHERE queue = $1 AND status = 'done'
      AND finished_at >= to_timestamp($2) AND finished_at < to_timestamp($3)
    UNION ALL
    SELECT 'dead' AS status, finished_at FROM {schema}.tasks
    WHERE queue = $1 AND status = 'dead'
      AND finished_at >= to_timestamp($2) AND finished_at < to_timestamp($3)
) AS finished
GROUP BY status, bucket;
