-- What the send pipeline needs. `{{schema}}` is the tenant's schema, as in 0001.

-- The campaign's sender, subject and templates as JSON text: `text`, not `jsonb`,
-- because the store hands back exactly what it was given and never looks inside.
ALTER TABLE {{schema}}.campaigns
    ADD COLUMN definition  text,
    ADD COLUMN launched_at timestamptz;

-- Recipients tables are created by imports, so tables imported before this
-- migration get the column here (imports from now on create it). Rows attempted
-- before it keep NULL: their first attempt time was never recorded.
DO $$
DECLARE
    recipients text;
BEGIN
    FOR recipients IN
        SELECT tablename FROM pg_tables
        WHERE schemaname = '{{schema}}' AND tablename ~ '^c[0-9]+_recipients$'
    LOOP
        EXECUTE format('ALTER TABLE %I.%I ADD COLUMN first_attempt_at timestamptz',
                       '{{schema}}', recipients);
    END LOOP;
END
$$;
