-- How far each campaign's events were exported to the exchange (see
-- engine::exchange::export). `pending_through` fixes a run's range before its
-- file is written, so a crash before `exported_through` advances rewrites the
-- same file instead of exporting any event twice.
CREATE TABLE {{schema}}.export_watermarks (
    campaign_id      bigint PRIMARY KEY REFERENCES {{schema}}.campaigns (id) ON DELETE CASCADE,
    exported_through bigint NOT NULL DEFAULT 0,
    pending_through  bigint,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
