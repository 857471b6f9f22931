//! Numbered migrations: SQL files compiled into the binary, applied in order to the
//! global schema and then to every tenant schema, each recorded in the
//! `schema_migrations` table beside it, so running them again changes nothing.

use tokio_postgres::Transaction;

use super::sql;
use crate::model::TenantId;

struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

const GLOBAL: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_global",
        sql: include_str!("migrations/0001_global.sql"),
    },
    Migration {
        version: 2,
        name: "0002_api_keys",
        sql: include_str!("migrations/0002_api_keys.sql"),
    },
    Migration {
        version: 3,
        name: "0003_exchange_accounts",
        sql: include_str!("migrations/0003_exchange_accounts.sql"),
    },
    Migration {
        version: 4,
        name: "0004_idempotency",
        sql: include_str!("migrations/0004_idempotency.sql"),
    },
    Migration {
        version: 5,
        name: "0005_suppressions",
        sql: include_str!("migrations/0005_suppressions.sql"),
    },
    Migration {
        version: 6,
        name: "0006_audit_settings",
        sql: include_str!("migrations/0006_audit_settings.sql"),
    },
    Migration {
        version: 7,
        name: "0007_retention",
        sql: include_str!("migrations/0007_retention.sql"),
    },
    Migration {
        version: 8,
        name: "0008_pgp_keys",
        sql: include_str!("migrations/0008_pgp_keys.sql"),
    },
    Migration {
        version: 9,
        name: "0009_webhook_outbox",
        sql: include_str!("migrations/0009_webhook_outbox.sql"),
    },
    Migration {
        version: 10,
        name: "0010_users_sessions",
        sql: include_str!("migrations/0010_users_sessions.sql"),
    },
];

/// Tenant migrations; `{{schema}}` stands for the tenant's schema.
const TENANT: &[Migration] = &[
    Migration {
        version: 1,
        name: "tenant_0001_campaigns",
        sql: include_str!("migrations/tenant_0001_campaigns.sql"),
    },
    Migration {
        version: 2,
        name: "tenant_0002_send_pipeline",
        sql: include_str!("migrations/tenant_0002_send_pipeline.sql"),
    },
    Migration {
        version: 3,
        name: "tenant_0003_exports",
        sql: include_str!("migrations/tenant_0003_exports.sql"),
    },
    Migration {
        version: 4,
        name: "tenant_0004_batch_tables",
        sql: include_str!("migrations/tenant_0004_batch_tables.sql"),
    },
];

/// Serializes migrations (exclusive) against each other and against tenant creation
/// (shared): the key is arbitrary but fixed ("bRoadSde").
const LOCK_KEY: i64 = 0x6252_6f61_6453_6465;

/// Takes the migration lock for the rest of the transaction. `exclusive` for
/// `migrate`, shared for `create_tenant`, so a tenant created while another process
/// migrates is either seen by it or created with every migration already applied.
pub(crate) async fn lock(
    tx: &Transaction<'_>,
    exclusive: bool,
) -> Result<(), tokio_postgres::Error> {
    let function = if exclusive {
        "pg_advisory_xact_lock"
    } else {
        "pg_advisory_xact_lock_shared"
    };
    tx.execute(&format!("SELECT {function}($1)"), &[&LOCK_KEY])
        .await
        .map(drop)
}

fn bootstrap(schema: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
             version    int PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    )
}

/// Applies the migrations of `list` that `schema` lacks; returns their names,
/// prefixed with the schema for tenant schemas.
async fn apply(
    tx: &Transaction<'_>,
    schema: &str,
    list: &[Migration],
    label: Option<&str>,
) -> Result<Vec<String>, tokio_postgres::Error> {
    tx.batch_execute(&bootstrap(schema)).await?;
    let applied: Vec<i32> = tx
        .query(
            &format!("SELECT version FROM {schema}.schema_migrations"),
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut names = Vec::new();
    for migration in list.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(&migration.sql.replace("{{schema}}", schema))
            .await?;
        tx.execute(
            &format!("INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)"),
            &[&migration.version, &migration.name],
        )
        .await?;
        names.push(match label {
            Some(label) => format!("{label}/{}", migration.name),
            None => migration.name.to_owned(),
        });
    }
    Ok(names)
}

/// Migrates the global schema, then every tenant, in the caller's transaction (so a
/// failure leaves everything as it was).
pub(crate) async fn migrate_all(
    tx: &Transaction<'_>,
) -> Result<Vec<String>, tokio_postgres::Error> {
    lock(tx, true).await?;
    let mut names = apply(tx, "broadside", GLOBAL, None).await?;
    let tenants = tx
        .query("SELECT id FROM broadside.tenants ORDER BY id", &[])
        .await?;
    for row in tenants {
        let schema = sql::schema(TenantId(row.get(0)));
        names.extend(apply(tx, &schema, TENANT, Some(&schema)).await?);
    }
    Ok(names)
}

/// Creates a new tenant's schema with every tenant migration.
pub(crate) async fn create_tenant_schema(
    tx: &Transaction<'_>,
    tenant: TenantId,
) -> Result<(), tokio_postgres::Error> {
    let schema = sql::schema(tenant);
    tx.batch_execute(&format!("CREATE SCHEMA {schema}")).await?;
    apply(tx, &schema, TENANT, None).await.map(drop)
}
