-- How far each campaign's events were exported to the exchange (see
-- engine::exchange::export). `pending_through` fixes a run's range before its
-- file is written, so a crash before `exported_through` advances rewrites the
-- same file instead of exporting any event twice.
CREATE TABLE export_watermarks (
    campaign_id      INTEGER PRIMARY KEY,
    exported_through INTEGER NOT NULL DEFAULT 0,
    pending_through  INTEGER,
    updated_at       INTEGER NOT NULL -- unix ms
);
