-- Tasks, one row each for their whole life. Times are epoch seconds (REAL).
CREATE TABLE shoal_tasks (
    id                TEXT PRIMARY KEY,
    queue             TEXT NOT NULL,
    name              TEXT NOT NULL,
    payload           BLOB NOT NULL,
    status            TEXT NOT NULL DEFAULT 'queued',
    priority          INTEGER NOT NULL DEFAULT 0,
    run_at            REAL NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    idempotency_key   TEXT,
    metadata          TEXT NOT NULL DEFAULT '{}',
    last_error        TEXT,
    lease_expirations INTEGER NOT NULL DEFAULT 0,
    worker_id         TEXT,
    lease_token       TEXT,
    lease_expires_at  REAL,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL,
    finished_at       REAL
) WITHOUT ROWID;

-- What claims walk: only claimable rows, in claim order.
CREATE INDEX shoal_tasks_claimable
    ON shoal_tasks (queue, priority DESC, run_at, id)
    WHERE status IN ('queued', 'retrying');

-- What the reaper walks: only running rows, by lease deadline.
CREATE INDEX shoal_tasks_leases
    ON shoal_tasks (lease_expires_at)
    WHERE status = 'running';

-- Stats and admin listings by queue and status.
CREATE INDEX shoal_tasks_queue_status ON shoal_tasks (queue, status);

-- A key is held only while its task is unfinished.
CREATE UNIQUE INDEX shoal_tasks_idempotency
    ON shoal_tasks (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND status IN ('queued', 'retrying', 'running');

CREATE TABLE shoal_workers (
    id          TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    queues      TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    in_flight   INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    last_seen   REAL NOT NULL
) WITHOUT ROWID;
