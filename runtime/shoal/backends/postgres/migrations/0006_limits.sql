-- Rate limits and concurrency keys (shoal.core.limits): each task carries its own, stamped
-- at push, and the claim enforces them by the rule of backends/shared/limiting.py, written
-- here in PL/pgSQL so that the choice, the buckets and the lease are one statement. Tasks
-- without limits leave every new column NULL.
ALTER TABLE {schema}.tasks
    ADD COLUMN rate_key text,
    ADD COLUMN rate_count integer,
    ADD COLUMN rate_period float8,
    ADD COLUMN concurrency_key text,
    ADD COLUMN concurrency_limit integer;

-- Limited claimable tasks only: a claim probes it first, and while no limits are in use it
-- is empty and the claim is the one of 0001 (bench/limits.py measures the difference).
CREATE INDEX tasks_limited ON {schema}.tasks (queue, priority DESC, run_at, id)
    WHERE status IN ('queued', 'retrying')
      AND (rate_key IS NOT NULL OR concurrency_key IS NOT NULL);

-- Running tasks per concurrency key: what a key's free slots are counted from.
CREATE INDEX tasks_running_keys ON {schema}.tasks (queue, concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;

-- One token bucket per queue and rate key: tokens left when last drawn from, and when.
CREATE TABLE {schema}.rate_buckets (
    queue  text COLLATE "C" NOT NULL,
    key    text COLLATE "C" NOT NULL,
    tokens float8 NOT NULL,
    at     timestamptz NOT NULL,
    PRIMARY KEY (queue, key)
);

-- The tasks a claim of `lim` takes when limited tasks are due: walk the due tasks of the
-- queues in claim order (at most lim + `scan`, locking them as it goes, skipping what others
-- hold), take every task without limits, and a limited one while its bucket holds a token
-- and its key a free slot. A bucket is locked (its row) and refilled when first met; a key
-- is locked (an advisory lock until commit) and its running tasks counted when first met,
-- each statement seeing what earlier claims committed. The buckets drawn from are stored.
CREATE FUNCTION {schema}.pick_limited(queues text[], lim integer, scan integer)
RETURNS SETOF text
-- Estimated small, like the claims' own LIMITs: the default estimate (1,000 rows) turned the
-- claim's UPDATE into a hash join over the whole table (8 ms to 58 ms at 40,000 tasks).
ROWS 10
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c record;
    taken integer := 0;
    spent_tokens jsonb := '{}';   -- queue \x1f rate key -> [queue, key, tokens left, refilled at]
    free_slots jsonb := '{}';    -- queue \x1f concurrency key -> slots left in this claim
    bucket text;
    slot text;
    have float8;
    burst float8;
    stored_at timestamptz;
    moment timestamptz;
BEGIN
    FOR c IN
        SELECT t.id, t.queue, t.rate_key, t.rate_count, t.rate_period, t.concurrency_key,
               t.concurrency_limit
        FROM {schema}.tasks AS t
        WHERE t.queue = ANY(queues) AND t.status IN ('queued', 'retrying') AND t.run_at <= now()
        ORDER BY t.priority DESC, t.run_at, t.id
        LIMIT lim + scan
        FOR UPDATE SKIP LOCKED
    LOOP
        EXIT WHEN taken >= lim;
        bucket := c.queue || E'\x1f' || c.rate_key;
        slot := c.queue || E'\x1f' || c.concurrency_key;
        IF c.rate_key IS NOT NULL AND NOT spent_tokens ? bucket THEN
            burst := greatest(1, c.rate_count / 20);  -- integer division, as Rate.burst
            INSERT INTO {schema}.rate_buckets (queue, key, tokens, at)
            VALUES (c.queue, c.rate_key, burst, clock_timestamp())
            ON CONFLICT (queue, key) DO NOTHING;
            SELECT b.tokens, b.at INTO have, stored_at FROM {schema}.rate_buckets AS b
            WHERE b.queue = c.queue AND b.key = c.rate_key FOR UPDATE;
            -- Read after the lock: a claim that waited must not credit the refill twice.
            moment := greatest(clock_timestamp(), stored_at);
            have := least(burst, have + extract(epoch FROM moment - stored_at)
                                        * c.rate_count / c.rate_period);
            spent_tokens := spent_tokens || jsonb_build_object(
                bucket, jsonb_build_array(c.queue, c.rate_key, have, moment));
        END IF;
        IF c.concurrency_key IS NOT NULL AND NOT free_slots ? slot THEN
            PERFORM pg_advisory_xact_lock(hashtext('shoal-key:' || c.queue),
                                          hashtext(c.concurrency_key));
            free_slots := free_slots || jsonb_build_object(slot, c.concurrency_limit - (
                SELECT count(*) FROM {schema}.tasks AS r
                WHERE r.queue = c.queue AND r.concurrency_key = c.concurrency_key
                  AND r.status = 'running'));
        END IF;
        CONTINUE WHEN c.rate_key IS NOT NULL AND (spent_tokens -> bucket ->> 2)::float8 < 1;
        CONTINUE WHEN c.concurrency_key IS NOT NULL AND (free_slots ->> slot)::integer < 1;
        IF c.rate_key IS NOT NULL THEN
            spent_tokens := jsonb_set(spent_tokens, ARRAY[bucket, '2'],
                                to_jsonb((spent_tokens -> bucket ->> 2)::float8 - 1));
        END IF;
        IF c.concurrency_key IS NOT NULL THEN
            free_slots := jsonb_set(free_slots, ARRAY[slot], to_jsonb((free_slots ->> slot)::integer - 1));
        END IF;
        taken := taken + 1;
        RETURN NEXT c.id;
    END LOOP;
    -- Dated when they were refilled, so the time the claim took is credited next time.
    UPDATE {schema}.rate_buckets AS b
    SET tokens = (spent.value ->> 2)::float8, at = (spent.value ->> 3)::timestamptz
    FROM jsonb_each(spent_tokens) AS spent
    WHERE b.queue = spent.value ->> 0 AND b.key = spent.value ->> 1;
END
$$;
