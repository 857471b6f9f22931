-- The audit log: append-only. A trigger refuses UPDATE and DELETE, so history
-- cannot be rewritten through Broadside or by a stray statement. Entries name
-- recipients by id, never by address (see store::audit).
CREATE TABLE broadside.audit_log (
    id        bigserial PRIMARY KEY,
    tenant_id bigint REFERENCES broadside.tenants (id),
    actor     text NOT NULL,
    action    text NOT NULL,
    target    text,
    outcome   text NOT NULL,
    ip        text,
    detail    text,
    at        timestamptz NOT NULL
);
CREATE INDEX audit_log_tenant ON broadside.audit_log (tenant_id, id);

CREATE FUNCTION broadside.audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON broadside.audit_log
    FOR EACH ROW EXECUTE FUNCTION broadside.audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON broadside.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION broadside.audit_log_append_only();

-- Per-tenant settings as one JSON document (see engine::tenant).
CREATE TABLE broadside.tenant_settings (
    tenant_id  bigint PRIMARY KEY REFERENCES broadside.tenants (id),
    settings   text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
