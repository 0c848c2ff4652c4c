-- The first schema of the postgresql:// backend.
--
-- {schema} stands for the backend's own schema (default "shoal") as a quoted identifier,
-- {channel} for its NOTIFY channel as a string literal; the backend creates the schema and
-- its schema_migrations table before running this file.
--
-- Every task is in exactly one of four partial indexes (claimable, running, dead,
-- finished), each led by the queue: claims, stats and the queue list read only the part
-- of the table they need, however many finished rows it holds.

CREATE TABLE {schema}.tasks (
    id                text COLLATE "C" PRIMARY KEY,
    queue             text COLLATE "C" NOT NULL,
    name              text NOT NULL,
    payload           bytea NOT NULL,
    status            text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'retrying', 'dead', 'cancelled')),
    priority          integer NOT NULL DEFAULT 0,
    run_at            timestamptz NOT NULL,
    attempts          integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL CHECK (max_attempts >= 1),
    idempotency_key   text,
    metadata          jsonb NOT NULL DEFAULT '{}',
    last_error        text,
    lease_expirations integer NOT NULL DEFAULT 0,
    worker_id         text,
    lease_token       text,
    lease_expires_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
) WITH (
    -- Room on each page so that lease renewals (heartbeats touch only unindexed columns)
    -- are HOT updates: no new index entries, no page splits.
    fillfactor = 80,
    -- A queue table churns: vacuum it after 1% of its rows changed, not the default 20%.
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02
);

-- Claims: due tasks of a queue, best first; also ready/scheduled counts for stats.
CREATE INDEX tasks_claimable ON {schema}.tasks (queue, priority DESC, run_at, id)
    WHERE status IN ('queued', 'retrying');

-- Running tasks: stats, and the reaper's scan for expired leases (lease_expires_at is
-- deliberately not indexed, so that renewing a lease stays a HOT update).
CREATE INDEX tasks_running ON {schema}.tasks (queue) WHERE status = 'running';

-- Dead letters, counted by stats without touching finished work.
CREATE INDEX tasks_dead ON {schema}.tasks (queue, finished_at) WHERE status = 'dead';

-- Finished work, oldest first per queue: what retention deletes in small batches.
CREATE INDEX tasks_finished ON {schema}.tasks (queue, finished_at)
    WHERE status IN ('done', 'cancelled');

-- An idempotency key is held only while its task is unfinished.
CREATE UNIQUE INDEX tasks_idempotency ON {schema}.tasks (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND status IN ('queued', 'running', 'retrying');

CREATE TABLE {schema}.workers (
    id          text PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    queues      text[] NOT NULL,
    concurrency integer NOT NULL,
    in_flight   integer NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL
) WITH (
    -- Rewritten on every heartbeat; only the primary key is indexed, so with free room on
    -- the page every heartbeat is a HOT update.
    fillfactor = 50
);

-- Wake waiting workers: one NOTIFY per statement naming the distinct queues that got work
-- (never one per row: every NOTIFY takes a global lock at commit). Delivered on commit
-- only, so a rolled-back enqueue wakes nobody. An empty payload, sent when the names would
-- not fit in one notification, means "any queue".
CREATE FUNCTION {schema}.wake(queues text[]) RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT pg_notify({channel}, CASE WHEN octet_length(names) < 7900 THEN names ELSE '' END)
    FROM (SELECT string_agg(DISTINCT queue, E'\n') AS names FROM unnest(queues) AS queue) AS s
    WHERE names IS NOT NULL
$$;
