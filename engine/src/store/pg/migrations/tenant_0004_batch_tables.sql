-- Message batches (`POST /v1/messages`) append to two long-lived tables per
-- tenant instead of creating tables of their own: at tens of batches a second,
-- per-batch DDL dominated a submit's latency. Rows are keyed by the batch's
-- campaign id; the values of a batch's own variables are one array, in the
-- order of `campaigns.columns`. No foreign key to `campaigns`: it would cost a
-- check per row on the hot path, and purging a batch deletes its rows
-- explicitly (see engine::store::pg::tables).
ALTER TABLE {{schema}}.campaigns
    ADD COLUMN shared_tables boolean NOT NULL DEFAULT false;

-- Room on each page for the state updates of delivery to stay HOT (no index
-- covers the columns they change).
CREATE TABLE {{schema}}.batch_recipients (
    batch_id         bigint NOT NULL,
    id               bigint NOT NULL,
    email            text NOT NULL,
    vals             text[] NOT NULL,
    state            smallint NOT NULL DEFAULT 0,
    until            timestamptz,
    attempts         int NOT NULL DEFAULT 0,
    first_attempt_at timestamptz,
    last_reply       text,
    updated_at       timestamptz,
    PRIMARY KEY (batch_id, id)
) WITH (fillfactor = 80);

CREATE TABLE {{schema}}.batch_events (
    batch_id     bigint NOT NULL,
    id           bigserial,
    recipient_id bigint NOT NULL,
    kind         smallint NOT NULL,
    detail       text,
    at           timestamptz NOT NULL,
    PRIMARY KEY (batch_id, id)
);
CREATE INDEX ON {{schema}}.batch_events (batch_id, recipient_id);

-- The engine re-reads the campaigns it must act on every second (see
-- `Store::active_campaigns`); with batches the table grows by thousands of rows
-- an hour, so that read goes through an index of the running and paused ones.
CREATE INDEX campaigns_active ON {{schema}}.campaigns (id)
    WHERE status IN ('running', 'paused');
