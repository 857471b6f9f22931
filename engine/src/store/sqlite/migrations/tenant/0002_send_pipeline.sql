-- What the send pipeline needs. Recipients tables imported before this migration
-- get their `first_attempt_at` column from `migrations::add_first_attempt`, since
-- their names vary and SQL alone cannot loop over them.
ALTER TABLE campaigns ADD COLUMN definition TEXT;     -- JSON text, kept as given
ALTER TABLE campaigns ADD COLUMN launched_at INTEGER; -- unix ms
