-- Retention purges a campaign's batch-submit idempotency records with its
-- personal data; this finds them without scanning every tenant's keys.
CREATE INDEX idempotency_keys_batch ON broadside.idempotency_keys (tenant_id, batch_id);
