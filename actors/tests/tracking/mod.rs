//! Tracking end to end: a campaign sent to the SMTP sink with tracking on, then
//! the links from the delivered messages followed through the real HTTP app, and
//! bounces and complaints delivered with swaks to the inbound SMTP listener.

mod domains;
mod flows;
mod inbound;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web;
use broadside::cli::campaign::launch_checked;
use broadside::http::{ApiState, Application};
use broadside::runtime::Runtime;
use broadside_load_tests::sink::{self, SinkConfig, SinkHandle};
use engine::clock::SystemClock;
use engine::config::{Config, RouteEntry};
use engine::model::{CampaignId, CampaignName, RecipientId, TenantId, TenantName};
use engine::render::{CampaignDefinition, Mailbox};
use engine::store::{ImportSummary, RecipientBatch, Store};
use engine::tracking::TokenKey;
use tempfile::TempDir;
use tokio::time::Instant;

pub const TRACKING_DOMAIN: &str = "t.acme.example";

pub struct TrackingApp {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub state: web::Data<ApiState>,
    /// Does not follow redirects: the tests look at them.
    pub client: reqwest::Client,
    pub sink: SinkHandle,
    pub tenant: TenantId,
    /// The key the app signs with (read from the data directory).
    pub key: TokenKey,
    /// The inbound SMTP listener (bounces, complaints), started as `serve` does.
    pub inbound: SocketAddr,
    inbound_server: broadside::inbound::InboundServer,
    /// The webhook sender, with short retries so tests see several.
    webhooks: tokio::task::JoinHandle<()>,
    server: ServerHandle,
    _dir: TempDir,
}

impl TrackingApp {
    pub async fn start() -> TrackingApp {
        Self::start_with_faults("").await
    }

    /// With sink faults (TOML `[[faults]]` tables, see sink-faults.example.toml).
    pub async fn start_with_faults(faults: &str) -> TrackingApp {
        let dir = TempDir::new().expect("tempdir");
        let mut sink_config =
            SinkConfig::from_toml(&format!("starttls = false\nkeep_bytes = true\n{faults}"))
                .expect("sink config");
        sink_config.keep_bytes = true;
        let sink = sink::start(sink_config).await.expect("sink");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        config.api.listen = "127.0.0.1:0".into();
        config.metrics.listen = String::new();
        config.send.dns = "disabled".into();
        config.send.tls = "disabled".into();
        config.send.poll_interval = engine::config::Duration::from_millis(50);
        config.send.routes = vec![RouteEntry {
            domain: "*".into(),
            target: sink.addr.to_string(),
            tls: None,
        }];
        config.tracking.domain = TRACKING_DOMAIN.into();
        config.tracking.flush_interval = engine::config::Duration::from_millis(20);
        config.tracking.inbound_listen = "127.0.0.1:0".into();
        let store = broadside::app::open_store(&config).await.expect("store");
        let runtime =
            Runtime::start(&config, Arc::clone(&store), Arc::new(SystemClock)).expect("engine");
        let state = web::Data::new(ApiState::new(&config, runtime).expect("state"));
        let inbound_server = broadside::inbound::start(
            &config,
            Arc::clone(&store),
            state.tracking.key(),
            state.tracking.events(),
        )
        .await
        .expect("inbound listener")
        .expect("inbound listener on");
        let webhooks = broadside::webhooks::start(
            Arc::clone(&store),
            broadside::webhooks::WebhookSettings {
                batch: 3,
                poll: Duration::from_millis(50),
                retry_first: Duration::from_millis(50),
                retry_max: Duration::from_millis(200),
                timeout: Duration::from_secs(2),
            },
        )
        .expect("webhook sender");
        let app = Application::build(&config, state.clone()).expect("app");
        let addr = app.addr;
        let server = app.spawn();
        let tenant = store
            .create_tenant(&TenantName::parse("acme").expect("name"))
            .await
            .expect("tenant")
            .id;
        let key = TokenKey::configured_or_file("", &config.data_dir).expect("key");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        TrackingApp {
            addr,
            store,
            state,
            client,
            sink,
            tenant,
            key,
            inbound: inbound_server.addr,
            inbound_server,
            webhooks,
            server,
            _dir: dir,
        }
    }

    pub async fn stop(self) {
        self.inbound_server.stop();
        self.webhooks.abort();
        self.server.stop(true).await;
        self.state.runtime.drain().await;
        self.sink.shutdown().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Creates, imports and launches a campaign to `emails`; waits until done.
    pub async fn send(&self, name: &str, emails: &[&str]) -> CampaignId {
        let store = self.store.as_ref();
        let name = CampaignName::parse(name).expect("name");
        let campaign = store
            .create_campaign(self.tenant, &name)
            .await
            .expect("create");
        let columns = vec!["first_name".to_owned()];
        let mut writer = store
            .begin_import(self.tenant, campaign.id, &columns)
            .await
            .expect("import");
        let mut batch = RecipientBatch::new(1);
        for (i, email) in emails.iter().enumerate() {
            batch.push(RecipientId(i as i64 + 1), email, ["Ann"]);
        }
        writer.write(&batch).await.expect("write");
        let summary = ImportSummary {
            source: "test".into(),
            rows_loaded: emails.len() as i64,
            rows_rejected: 0,
        };
        writer.commit(&summary).await.expect("commit");
        let json = serde_json::to_string(&definition()).expect("json");
        store
            .set_campaign_definition(self.tenant, campaign.id, &json)
            .await
            .expect("definition");
        let campaign = store
            .campaign(self.tenant, campaign.id)
            .await
            .expect("read")
            .expect("exists");
        launch_checked(store, self.tenant, &campaign)
            .await
            .expect("launch");
        self.state.runtime.reconcile();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let c = store
                .counters(self.tenant, campaign.id)
                .await
                .expect("counters");
            if c.pending == 0 && c.deferred == 0 {
                return campaign.id;
            }
            assert!(Instant::now() < deadline, "campaign did not finish: {c:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn definition() -> CampaignDefinition {
    CampaignDefinition {
        from: Mailbox {
            name: None,
            address: engine::model::EmailAddress::parse("news@acme.example").expect("from"),
        },
        reply_to: None,
        envelope_domain: "bounces.acme.example".into(),
        subject: "Hello {{first_name}}".into(),
        html: Some(
            "<html><body><p>Hi {{first_name}}</p>\n<a href=\"https://shop.example/sale?a=1&amp;b=2\">Sale</a>\n</body></html>\n"
                .into(),
        ),
        text: Some("Hi {{first_name}}, see https://shop.example/text\n".into()),
        headers: Vec::new(),
        track_clicks: true,
        track_opens: true,
    }
}

/// Polls `check` until it returns `Some`, for at most five seconds.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} did not happen in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
