-- The shoal version each worker runs, reported with its heartbeats (`shoal workers`); empty
-- for a worker too old to report it.
ALTER TABLE {schema}.workers ADD COLUMN IF NOT EXISTS version text NOT NULL DEFAULT '';
