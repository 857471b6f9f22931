-- Global tables. The schema `broadside` and `broadside.schema_migrations` are
-- created by the migration runner itself, before any numbered migration.

CREATE TABLE broadside.tenants (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Campaign ids are unique across tenants, so an id from tenant A does not exist in
-- tenant B's schema at all (rather than naming a different campaign there).
CREATE SEQUENCE broadside.campaign_ids;
