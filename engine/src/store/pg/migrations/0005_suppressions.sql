-- Per tenant, the addresses never to mail again (unsubscribes, hard bounces,
-- complaints, manual entries). Global so one lookup serves every campaign.
CREATE TABLE broadside.suppressions (
    tenant_id  bigint NOT NULL REFERENCES broadside.tenants (id),
    email      text NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, email)
);
