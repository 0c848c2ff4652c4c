-- Results (keep_result): a task's kept return value or final failure, apart from the task,
-- so that the task's retention and the result's time to live are independent. An expired
-- row is never read, and is deleted by the reap every worker runs.
ALTER TABLE {schema}.tasks ADD COLUMN last_traceback text;

CREATE TABLE {schema}.results (
    task_id    text PRIMARY KEY,
    status     text NOT NULL CHECK (status IN ('done', 'dead')),
    value      bytea,
    error      text,
    traceback  text,
    expires_at timestamptz NOT NULL
);

CREATE INDEX results_expiry ON {schema}.results (expires_at);

-- Wakes whoever waits for these tasks' results: NOTIFY on the results channel with the ids,
-- newline-separated (an empty payload, sent when they would not fit in one notification,
-- means "any task"). Delivered on commit only, as wake() is.
CREATE FUNCTION {schema}.finished(ids text[]) RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT pg_notify({results_channel}, CASE WHEN octet_length(names) < 7900 THEN names ELSE '' END)
    FROM (SELECT string_agg(DISTINCT id, E'\n') AS names FROM unnest(ids) AS id) AS s
    WHERE names IS NOT NULL
$$;
