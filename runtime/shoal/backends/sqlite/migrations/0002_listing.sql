-- Listings by status, newest first (shoal.backends.shared.listing): a WITHOUT ROWID table's
-- indexes end in its primary key, so this is (status, id), and the existing
-- shoal_tasks_queue_status is already (queue, status, id).
CREATE INDEX shoal_tasks_status ON shoal_tasks (status);
