//! The HTTP API through a real client: the app on 127.0.0.1:0 over a fresh store
//! (SQLite, or a fresh PostgreSQL database), the engine delivering to the SMTP
//! sink on loopback, every request signed with Escher.

mod allowlist;
mod browser;
mod exports;
mod flows;
mod isolation;
mod messages;
mod openapi;
#[path = "../../../engine/tests/support/pg.rs"]
mod pg;
mod submit_safety;
mod upload;
mod webapp;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::web;
use broadside::http::{ApiState, Application};
use broadside::runtime::Runtime;
use broadside_load_tests::sink::{self, SinkConfig, SinkHandle};
use chrono::Utc;
use engine::auth::escher::{self, EscherConfig, Request, Secret};
use engine::auth::keys::NewApiKey;
use engine::clock::SystemClock;
use engine::config::{Backend, Config, RouteEntry};
use engine::model::{TenantId, TenantName};
use engine::store::Store;
use tempfile::TempDir;

pub struct TestApp {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub state: web::Data<ApiState>,
    pub client: reqwest::Client,
    pub sink: SinkHandle,
    server: ServerHandle,
    _dir: TempDir,
    _db: Option<pg::TestDatabase>,
}

/// A tenant's API credentials.
#[derive(Clone)]
pub struct Key {
    pub tenant: TenantId,
    pub key_id: String,
    pub secret: Secret,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::start(|_| {}, None).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::start(tweak, None).await
    }

    /// On a fresh PostgreSQL database; `None` (after a notice) without a server.
    pub async fn spawn_pg() -> Option<TestApp> {
        let db = pg::test_database().await?;
        Some(Self::start(|_| {}, Some(db)).await)
    }

    async fn start(tweak: impl FnOnce(&mut Config), db: Option<pg::TestDatabase>) -> TestApp {
        let dir = TempDir::new().expect("tempdir");
        // Bodies are kept so tests can see each recipient's own substitutions.
        let sink = sink::start(SinkConfig {
            keep_bytes: true,
            ..SinkConfig::default()
        })
        .await
        .expect("sink");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        config.api.listen = "127.0.0.1:0".into();
        config.metrics.listen = String::new();
        config.send.dns = "disabled".into();
        // The sample CSV has one bad row in four; the default 10% would reject it.
        config.import.max_invalid_share = 0.5;
        config.send.poll_interval = engine::config::Duration::from_millis(50);
        config.send.routes = vec![RouteEntry {
            domain: "*".into(),
            target: sink.addr.to_string(),
            tls: None,
        }];
        if let Some(db) = &db {
            config.store.backend = Backend::Postgres;
            config.store.postgres.url = engine::config::Secret::new(db.url.clone());
        }
        tweak(&mut config);
        let store = broadside::app::open_store(&config).await.expect("store");
        let runtime =
            Runtime::start(&config, Arc::clone(&store), Arc::new(SystemClock)).expect("engine");
        let state = web::Data::new(ApiState::new(&config, runtime).expect("state"));
        let app = Application::build(&config, state.clone()).expect("app");
        let addr = app.addr;
        let server = app.spawn();
        TestApp {
            addr,
            store,
            state,
            client: reqwest::Client::new(),
            sink,
            server,
            _dir: dir,
            _db: db,
        }
    }

    pub async fn stop(self) {
        self.server.stop(true).await;
        self.state.runtime.drain().await;
        self.sink.shutdown().await;
    }

    /// Creates tenant `name` and an API key for it, as `broadside key create` does.
    pub async fn tenant_with_key(&self, name: &str) -> Key {
        let tenant = self
            .store
            .create_tenant(&TenantName::parse(name).expect("name"))
            .await
            .expect("tenant");
        self.key_for(tenant.id, name).await
    }

    pub async fn key_for(&self, tenant: TenantId, name: &str) -> Key {
        let new = NewApiKey::generate(&TenantName::parse(name).expect("name")).expect("key");
        let master =
            engine::auth::keys::MasterKey::configured_or_file("", &self._dir.path().join("data"))
                .expect("master key");
        let sealed = master.seal(&new.key_id, &new.secret).expect("seal");
        self.store
            .create_api_key(tenant, &new.key_id, &sealed)
            .await
            .expect("stored");
        Key {
            tenant,
            key_id: new.key_id,
            secret: new.secret,
        }
    }

    /// The test database's URL when the app runs on PostgreSQL.
    pub fn db_url(&self) -> Option<&str> {
        self._db.as_ref().map(|db| db.url.as_str())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Escher headers for a request with this body, signed at `at`.
    pub fn sign_at(
        &self,
        key: &Key,
        method: &str,
        path: &str,
        body: &[u8],
        at: chrono::DateTime<Utc>,
    ) -> Vec<(String, String)> {
        let headers = vec![("host".to_owned(), self.addr.to_string())];
        let request = Request {
            method,
            url: path,
            headers: &headers,
            body,
        };
        escher::sign_request(
            &EscherConfig::default(),
            &key.key_id,
            &key.secret,
            &request,
            &["host"],
            at,
        )
        .expect("signs")
    }

    pub async fn send(
        &self,
        key: &Key,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> reqwest::Response {
        let headers = self.sign_at(key, method, path, body, Utc::now());
        self.send_with(method, path, body.to_vec(), &headers).await
    }

    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(String, String)],
    ) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, self.url(path)).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send().await.expect("request sent")
    }

    pub async fn json(
        &self,
        key: &Key,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let response = self.send(key, method, path, body).await;
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, value)
    }
}

/// A valid definition whose templates use `first_name`.
pub fn definition() -> serde_json::Value {
    serde_json::json!({
        "from": {"name": "Acme", "address": "news@acme.example"},
        "envelope_domain": "bounces.acme.example",
        "subject": "Hello {{first_name}}",
        "text": "Hi {{first_name}}, spring is here.",
        "html": "<p>Hi {{first_name}}</p>",
        "headers": [["X-Campaign", "spring"]]
    })
}

pub fn create_body(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "name": name, "definition": definition() }))
        .expect("json")
}

pub const CSV: &str = "email,first_name\nann@a.example,Ann\nbob@b.example,Bob\nnot-an-address,Eve\ncid@c.example,Cid\n";

/// The error code of a JSON error body.
pub fn code(body: &serde_json::Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

pub fn message(body: &serde_json::Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}
