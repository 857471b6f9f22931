//! The HTTP API for upstream systems: one `App` factory used by `broadside
//! serve` and the tests alike ([`Application::build`] binds, possibly port 0),
//! unauthenticated health checks, and the Escher-signed, versioned routes.

mod allowlist;
mod auth;
mod error;
mod export_files;
pub mod keys;
mod rate;
mod tls;
pub mod tracking;
mod v1;
pub mod webapp;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use engine::auth::escher::EscherConfig;
use engine::auth::keys::MasterKey;
use engine::config::Config;
use engine::import::ImportOptions;
use engine::store::Store;

pub use auth::Caller;
pub use error::error_response;
pub use keys::KeyCache;
pub use rate::SubmitLimiter;
pub use v1::{BATCH_PREFIX, RouteTable, route_table};

use crate::runtime::Runtime;

/// What every request handler shares; read-only after start-up.
pub struct ApiState {
    pub store: Arc<dyn Store>,
    /// The engine: launches reconcile it, readiness asks whether its root lives.
    pub runtime: Runtime,
    pub keys: KeyCache,
    pub escher: EscherConfig,
    /// Largest JSON body in bytes.
    pub max_body: u64,
    /// Largest CSV upload in bytes.
    pub max_upload: u64,
    /// The same validation as file imports.
    pub import: ImportOptions,
    /// Where upload reports of rejected rows are written.
    pub reports_dir: PathBuf,
    /// Most rejected rows listed in an upload's response.
    pub report_rows: usize,
    /// The tenants' exchange folders, for imports by file name.
    pub exchange_root: PathBuf,
    /// Files SFTP clients still write: not importable yet.
    pub exchange_writes: engine::exchange::OpenWrites,
    /// The tenants' PGP keys: decrypting imports, serving the public key.
    pub pgp: engine::exchange::pgp::TenantKeys,
    /// Per-tenant submit rate of `POST /v1/messages`.
    pub limiter: SubmitLimiter,
    /// The unauthenticated `/t` endpoints.
    pub tracking: web::Data<tracking::TrackingEndpoints>,
    /// Tenants' IP allowlists for signed requests.
    pub allowlist: allowlist::AllowlistCache,
    /// The web application for people.
    pub web: web::Data<webapp::WebState>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

impl ApiState {
    /// The state for `config`, opening (or creating) the master key.
    pub fn new(config: &Config, runtime: Runtime) -> anyhow::Result<Self> {
        let api = &config.api;
        let master = MasterKey::configured_or_file(api.master_key.expose(), &config.data_dir)
            .context("api.master_key")?;
        let store = Arc::clone(&runtime.store);
        let keys = KeyCache::new(Arc::clone(&store), master, api.key_cache_ttl.as_std());
        Ok(Self {
            tracking: web::Data::new(tracking::TrackingEndpoints::new(
                config,
                Arc::clone(&store),
            )?),
            pgp: engine::exchange::pgp::TenantKeys::new(keys.master().clone()),
            web: web::Data::new(webapp::WebState::new(
                config,
                Arc::clone(&store),
                keys.clone(),
            )?),
            keys,
            allowlist: allowlist::AllowlistCache::new(
                Arc::clone(&store),
                api.key_cache_ttl.as_std(),
            ),
            store,
            runtime,
            escher: api.escher(),
            max_body: api.max_body.bytes(),
            max_upload: api.max_upload.bytes(),
            import: ImportOptions::from(&config.import),
            reports_dir: config.reports_dir(),
            report_rows: api.report_rows,
            exchange_root: config.exchange_root(),
            exchange_writes: Default::default(),
            limiter: SubmitLimiter::new(api.submit_rate, api.submit_burst),
        })
    }
}

/// A bound, not yet running server: `addr` is known (port 0 resolved) before
/// the first request, which is what tests need.
pub struct Application {
    pub addr: SocketAddr,
    /// Whether the listener speaks HTTPS.
    pub tls: bool,
    server: Server,
    /// The web state whose expired sessions the server sweeps while it runs.
    web: std::sync::Weak<webapp::WebState>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Binds `config.api.listen` (HTTPS when a certificate is configured) and
    /// prepares the server; call [`Application::spawn`] inside an actix System.
    pub fn build(config: &Config, state: web::Data<ApiState>) -> anyhow::Result<Self> {
        let api = &config.api;
        let listener = TcpListener::bind(&api.listen)
            .with_context(|| format!("binding the API to api.listen = {:?}", api.listen))?;
        let addr = listener.local_addr()?;
        let tls = tls::server_config(api.tls_cert.as_deref(), api.tls_key.as_deref())?;
        let shutdown = api.shutdown_timeout.as_std();
        let web = Arc::downgrade(&state.web.clone().into_inner());
        let server = HttpServer::new(move || App::new().configure(routes(state.clone())))
            .shutdown_timeout(shutdown.as_secs().max(1))
            .disable_signals();
        let (server, tls) = match tls {
            Some(tls) => (server.listen_rustls_0_23(listener, tls)?, true),
            None => (server.listen(listener)?, false),
        };
        Ok(Self {
            addr,
            tls,
            server: server.run(),
            web,
        })
    }

    /// Runs the server on the current actix System; stop it through the handle
    /// ([`ServerHandle::stop`] with `graceful = true` finishes requests in flight).
    pub fn spawn(self) -> ServerHandle {
        let handle = self.server.handle();
        let sweeper = actix::spawn(webapp::sweep_sessions(self.web));
        actix::spawn(async move {
            if let Err(error) = self.server.await {
                tracing::error!(%error, "the API server failed");
            }
            sweeper.abort();
        });
        handle
    }
}

/// Every route, for `App::configure`.
pub fn routes(state: web::Data<ApiState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state.tracking.clone())
            .app_data(state.web.clone())
            .app_data(state)
            .route("/healthz", web::get().to(healthz))
            .configure(tracking::routes)
            .route("/readyz", web::get().to(readyz))
            .configure(webapp::routes)
            .service(web::scope("/v1").configure(v1::routes));
    }
}

/// The process is up and answering.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready for traffic: the store answers and the engine's root actor lives.
async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    let store = tokio::time::timeout(Duration::from_secs(2), state.store.tenants()).await;
    let store_ok = matches!(store, Ok(Ok(_)));
    let engine_ok = state.runtime.root.connected();
    let body = serde_json::json!({
        "status": if store_ok && engine_ok { "ready" } else { "not_ready" },
        "store": store_ok,
        "engine": engine_ok,
    });
    if store_ok && engine_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
