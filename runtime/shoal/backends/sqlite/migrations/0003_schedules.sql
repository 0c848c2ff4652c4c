-- Schedules of periodic tasks (shoal.core.schedule_records). next_tick_at is the watermark,
-- the de-duplication record of ticks: the moment of the last tick materialised, moved only
-- forward and in the transaction that inserts that tick's task. Times are epoch seconds.
CREATE TABLE shoal_schedules (
    name         TEXT PRIMARY KEY,
    app          TEXT NOT NULL,
    task         TEXT NOT NULL,
    queue        TEXT NOT NULL,
    cadence      TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'active',
    next_tick_at REAL,
    next_task_id TEXT,
    last_run_at  REAL,
    updated_at   REAL NOT NULL
) WITHOUT ROWID;

-- Registration reads and retires one app's schedules.
CREATE INDEX shoal_schedules_app ON shoal_schedules (app);
