-- Event webhooks: events waiting to be posted to the tenant's webhook URL,
-- written by the code that records the events and removed once the receiver
-- acknowledged them (at least once).
CREATE TABLE broadside.webhook_outbox (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES broadside.tenants (id),
    event           text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_outbox_due ON broadside.webhook_outbox (tenant_id, next_attempt_at, id);
