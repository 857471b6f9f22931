//! The exchange's jobs against real stores and real folders: exports that
//! survive restarts without gaps or repeats, and retention driven by a manual
//! clock, down to scanning every table for the addresses it deleted.
#![allow(clippy::unwrap_used)]

mod export;
mod retention;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use engine::exchange::TenantFolders;
use engine::model::{CampaignId, CampaignName, RecipientId, RecipientState, TenantName};
use engine::store::pg::PgStore;
use engine::store::sqlite::SqliteStore;
use engine::store::{
    ImportSummary, Outcome, RecipientBatch, Store, Tenant, TrackingDetail, TrackingEvent,
    TrackingKind,
};
use tempfile::TempDir;

use crate::support::pg::{TestDatabase, test_database};

/// Where the store lives; kept so that a restart can open it again.
enum Backend {
    Sqlite,
    Pg(TestDatabase),
}

/// A store (SQLite in `dir/data`, or a fresh PostgreSQL database) and an
/// exchange root in `dir/exchange`. The store is declared first so that its
/// pool closes before the test database is dropped.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    backend: Backend,
    pub dir: TempDir,
}

impl Fixture {
    pub async fn sqlite() -> Option<Fixture> {
        let dir = TempDir::new().unwrap();
        let store = open_sqlite(dir.path()).await;
        Some(Fixture {
            store,
            backend: Backend::Sqlite,
            dir,
        })
    }

    pub async fn pg() -> Option<Fixture> {
        let db = test_database().await?;
        let store = open_pg(&db).await;
        Some(Fixture {
            store,
            backend: Backend::Pg(db),
            dir: TempDir::new().unwrap(),
        })
    }

    /// Closes the store and opens it again, as a restarted process would.
    pub async fn restart(&mut self) {
        self.store = match &self.backend {
            // The old store's workers finish when its last handle drops.
            Backend::Sqlite => open_sqlite(self.dir.path()).await,
            Backend::Pg(db) => open_pg(db).await,
        };
    }

    /// The test database's URL (PostgreSQL fixtures only).
    pub fn pg_url(&self) -> &str {
        match &self.backend {
            Backend::Pg(db) => &db.url,
            Backend::Sqlite => panic!("not a PostgreSQL fixture"),
        }
    }

    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("exchange")
    }

    pub fn folders(&self, tenant: &Tenant) -> TenantFolders {
        let folders = TenantFolders::new(&self.root(), &tenant.name);
        folders.create().unwrap();
        folders
    }

    pub async fn tenant(&self, name: &str) -> Tenant {
        let name = TenantName::parse(name).unwrap();
        self.store.create_tenant(&name).await.unwrap()
    }

    /// A campaign `name` with `emails` imported as recipients 1..=n.
    pub async fn campaign(&self, tenant: &Tenant, name: &str, emails: &[String]) -> CampaignId {
        let name = CampaignName::parse(name).unwrap();
        let campaign = self.store.create_campaign(tenant.id, &name).await.unwrap();
        let mut batch = RecipientBatch::new(1);
        for (i, email) in (1..).zip(emails) {
            batch.push(RecipientId(i), email, [format!("name{i}").as_str()]);
        }
        let columns = ["first_name".to_owned()];
        let mut writer = self
            .store
            .begin_import(tenant.id, campaign.id, &columns)
            .await
            .unwrap();
        writer.write(&batch).await.unwrap();
        let summary = ImportSummary {
            source: "list.csv".into(),
            rows_loaded: batch.len() as i64,
            rows_rejected: 0,
        };
        writer.commit(&summary).await.unwrap();
        campaign.id
    }

    /// Every text cell of every table that holds tenant or global data, as
    /// `(table, cell)`, read back with SQL.
    pub async fn all_cells(&self) -> Vec<(String, String)> {
        match &self.backend {
            Backend::Sqlite => sqlite_cells(&self.dir.path().join("data")),
            Backend::Pg(db) => pg_cells(&db.url).await,
        }
    }
}

async fn open_sqlite(dir: &Path) -> Arc<dyn Store> {
    let store = SqliteStore::open(&dir.join("data"), Duration::from_secs(5)).unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

async fn open_pg(db: &TestDatabase) -> Arc<dyn Store> {
    let store = PgStore::connect(&db.url, 4, Duration::from_secs(5))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

fn sqlite_cells(data: &Path) -> Vec<(String, String)> {
    let mut files = vec![data.join("broadside.db")];
    for entry in std::fs::read_dir(data.join("tenants")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "db") {
            files.push(entry.path());
        }
    }
    let mut cells = Vec::new();
    for file in files {
        let conn = rusqlite::Connection::open(&file).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap();
        let tables: Vec<String> = stmt
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for table in tables {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
            let width = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                for i in 0..width {
                    let text = match row.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        _ => continue,
                    };
                    cells.push((format!("{}:{table}", file.display()), text));
                }
            }
        }
    }
    cells
}

/// Each row of every table in the global schema and every tenant schema, as
/// its text form.
async fn pg_cells(url: &str) -> Vec<(String, String)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tables = client
        .query(
            "SELECT table_schema, table_name FROM information_schema.tables
             WHERE table_schema = 'broadside' OR table_schema LIKE 't\\_%'",
            &[],
        )
        .await
        .unwrap();
    let mut cells = Vec::new();
    for table in tables {
        let (schema, name): (String, String) = (table.get(0), table.get(1));
        let rows = client
            .query(&format!("SELECT t::text FROM {schema}.{name} t"), &[])
            .await
            .unwrap();
        for row in rows {
            cells.push((format!("{schema}.{name}"), row.get::<_, String>(0)));
        }
    }
    cells
}

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

pub fn outcome(id: i64, state: RecipientState, detail: &str, when: &str) -> Outcome {
    Outcome {
        recipient: RecipientId(id),
        state,
        attempted: true,
        detail: Some(detail.to_owned()),
        at: at(when),
    }
}

pub fn hit(id: i64, kind: TrackingKind, url: Option<&str>, when: &str) -> TrackingEvent {
    TrackingEvent {
        recipient: RecipientId(id),
        kind,
        detail: TrackingDetail {
            url: url.map(str::to_owned),
            ..TrackingDetail::default()
        },
        at: at(when),
    }
}

/// Every file under `root` (hidden work folders included) with its content.
pub fn all_files(root: &Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    out
}
