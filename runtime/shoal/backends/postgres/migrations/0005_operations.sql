-- Who cancelled a task, or asked to while it ran (its worker then stops it). Adding a
-- nullable column without a default rewrites nothing: instant on a large table.
ALTER TABLE {schema}.tasks ADD COLUMN cancelled_by text;
