-- Listings newest first (shoal.backends.shared.listing): one index range per status asked,
-- read backwards by id, with or without a queue. The primary key serves a listing of every
-- status of every queue.
--
-- Built without CONCURRENTLY (migrations run in a transaction): on a large table, pushes
-- and claims wait while these two are built.
CREATE INDEX tasks_listing ON {schema}.tasks (status, id);
CREATE INDEX tasks_listing_queue ON {schema}.tasks (queue, status, id);
