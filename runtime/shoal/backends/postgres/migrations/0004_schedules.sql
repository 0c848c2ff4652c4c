-- Schedules of periodic tasks (shoal.core.schedule_records). next_tick_at is the watermark,
-- the de-duplication record of ticks: the moment of the last tick materialised, moved only
-- forward and in the transaction that inserts that tick's task (advance_schedule locks the
-- row, FOR UPDATE, so two workers materialising the same tick queue one behind the other).
CREATE TABLE {schema}.schedules (
    name         text COLLATE "C" PRIMARY KEY,
    app          text NOT NULL,
    task         text NOT NULL,
    queue        text COLLATE "C" NOT NULL,
    cadence      text NOT NULL,
    state        text NOT NULL DEFAULT 'active'
        CHECK (state IN ('active', 'paused', 'retired')),
    next_tick_at timestamptz,
    next_task_id text COLLATE "C",
    last_run_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Registration reads and retires one app's schedules.
CREATE INDEX schedules_app ON {schema}.schedules (app);
