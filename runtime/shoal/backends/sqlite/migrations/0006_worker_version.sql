-- The shoal version each worker runs, reported with its heartbeats (`shoal workers`); empty
-- for a worker too old to report it.
ALTER TABLE shoal_workers ADD COLUMN version TEXT NOT NULL DEFAULT '';
