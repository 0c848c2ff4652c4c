-- Retention: finished rows of a queue by status, oldest first, so that reap deletes those
-- past their time without reading the rows it keeps. Only finished rows are in it: a claim
-- never touches it and an ack adds one entry.
CREATE INDEX shoal_tasks_finished
    ON shoal_tasks (queue, status, finished_at)
    WHERE status IN ('done', 'cancelled', 'dead');

-- Who cancelled a task, or asked to while it ran (its worker then stops it).
ALTER TABLE shoal_tasks ADD COLUMN cancelled_by TEXT;
