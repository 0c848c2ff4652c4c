-- Results: what a task kept (keep_result), apart from the task so that the task's
-- retention and the result's time to live are independent. Deleted once expired by the
-- reap every worker runs; reads ignore an expired row before that.
ALTER TABLE shoal_tasks ADD COLUMN last_traceback TEXT;

CREATE TABLE shoal_results (
    task_id    TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    value      BLOB,
    error      TEXT,
    traceback  TEXT,
    expires_at REAL NOT NULL
) WITHOUT ROWID;

CREATE INDEX shoal_results_expiry ON shoal_results (expires_at);
