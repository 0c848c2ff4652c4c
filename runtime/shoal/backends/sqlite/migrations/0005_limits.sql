-- Rate limits and concurrency keys (shoal.core.limits): each task carries its own, stamped
-- at push, and the claim enforces them (sqlite/limits.py, the rule of
-- backends/shared/limiting.py). Tasks without limits leave every new column NULL.
ALTER TABLE shoal_tasks ADD COLUMN rate_key TEXT;
ALTER TABLE shoal_tasks ADD COLUMN rate_count INTEGER;
ALTER TABLE shoal_tasks ADD COLUMN rate_period REAL;
ALTER TABLE shoal_tasks ADD COLUMN concurrency_key TEXT;
ALTER TABLE shoal_tasks ADD COLUMN concurrency_limit INTEGER;

-- Only limited claimable rows: a claim looks here first, and finds it empty in one seek
-- when no limits are in use (the fast path stays the claim of 0001).
CREATE INDEX shoal_tasks_limited
    ON shoal_tasks (queue, priority DESC, run_at, id)
    WHERE status IN ('queued', 'retrying')
      AND (rate_key IS NOT NULL OR concurrency_key IS NOT NULL);

-- Running tasks per concurrency key: what a key's free slots are counted from.
CREATE INDEX shoal_tasks_running_keys
    ON shoal_tasks (queue, concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;

-- One token bucket per queue and rate key: tokens left when last drawn from, and when.
CREATE TABLE shoal_rate_buckets (
    queue  TEXT NOT NULL,
    key    TEXT NOT NULL,
    tokens REAL NOT NULL,
    at     REAL NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;
