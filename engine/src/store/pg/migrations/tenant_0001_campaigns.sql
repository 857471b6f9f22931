-- A tenant's catalogue. `{{schema}}` is replaced by the tenant's schema name
-- (`t_<tenant id>`), built from the numeric id only.

CREATE TABLE {{schema}}.campaigns (
    id         bigint PRIMARY KEY DEFAULT nextval('broadside.campaign_ids'),
    name       text NOT NULL UNIQUE,
    status     text NOT NULL DEFAULT 'draft'
               CHECK (status IN ('draft', 'running', 'paused', 'cancelled', 'completed')),
    -- Personalization column names in import order; the recipients table calls
    -- them v1..vN so that no name a customer chose ever becomes an identifier.
    columns    text[] NOT NULL DEFAULT '{}',
    -- Whether the campaign's recipients and events tables exist.
    imported   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Counters by recipient state, moved by every state change so that reading
    -- them never counts rows.
    pending    bigint NOT NULL DEFAULT 0,
    deferred   bigint NOT NULL DEFAULT 0,
    delivered  bigint NOT NULL DEFAULT 0,
    bounced    bigint NOT NULL DEFAULT 0,
    failed     bigint NOT NULL DEFAULT 0,
    suppressed bigint NOT NULL DEFAULT 0
);

CREATE TABLE {{schema}}.imports (
    id            bigserial PRIMARY KEY,
    campaign_id   bigint NOT NULL REFERENCES {{schema}}.campaigns (id) ON DELETE CASCADE,
    source        text NOT NULL,
    rows_loaded   bigint NOT NULL,
    rows_rejected bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
