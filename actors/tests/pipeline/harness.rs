//! The send pipeline under test: a fresh store (SQLite in a temporary directory,
//! or a fresh PostgreSQL database), the SMTP sink on loopback, and the runtime
//! started the way `broadside serve` starts it, with every route pointing at the
//! sink and DNS disabled so nothing can leave the machine.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use broadside::cli::campaign::launch_checked;
use broadside::runtime::Runtime;
use broadside_load_tests::sink::{self, SinkConfig, SinkHandle};
use engine::clock::{Clock, SystemClock};
use engine::config::{self, Config, RouteEntry};
use engine::model::{CampaignId, CampaignName, EmailAddress, RecipientId, TenantId, TenantName};
use engine::render::{CampaignDefinition, Mailbox};
use engine::store::pg::PgStore;
use engine::store::sqlite::SqliteStore;
use engine::store::{
    Campaign, CampaignCounters, CampaignStatus, Event, ImportSummary, Recipient, RecipientBatch,
    Store,
};
use tempfile::TempDir;
use tokio::time::Instant;

use super::pg::{TestDatabase, test_database};

/// How often polls look again; short next to every interval the engine uses.
const POLL: Duration = Duration::from_millis(20);

/// Runs a test body inside an actix system, as the runtime requires.
pub fn run(body: impl Future<Output = ()>) {
    actix::System::new().block_on(body);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A sink scenario (TOML, see `load-tests/sink-faults.example.toml`) without
/// STARTTLS: the engine is configured with `send.tls = "disabled"`.
pub fn sink_config(scenario: &str) -> SinkConfig {
    SinkConfig::from_toml(&format!("starttls = false\n{scenario}")).expect("valid sink scenario")
}

/// One generated recipient and its personalization values.
#[derive(Debug, Clone)]
pub struct Person {
    pub email: String,
    pub first_name: String,
    pub city: String,
    /// Holds `<` and `>`, so the HTML part must show it escaped.
    pub tag: String,
}

/// The personalization columns, in import order.
pub const COLUMNS: [&str; 3] = ["first_name", "city", "tag"];

/// `n` recipients spread round-robin over `domains`; `prefix` keeps the
/// addresses of two campaigns on one sink apart.
pub fn people(prefix: &str, n: usize, domains: &[&str]) -> Vec<Person> {
    (0..n)
        .map(|i| Person {
            email: format!("{prefix}{i}@{}", domains[i % domains.len()]),
            first_name: format!("Name{i}"),
            city: format!("City{}", i * 7 % 1000),
            tag: format!("<vip-{prefix}{i}>"),
        })
        .collect()
}

/// `d0.example` … `d{n-1}.example`.
pub fn numbered_domains(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("d{i}.example")).collect()
}

/// A campaign using every column in the subject and both bodies.
pub fn definition(from: &str) -> CampaignDefinition {
    CampaignDefinition {
        from: Mailbox {
            name: Some("Acme News".into()),
            address: EmailAddress::parse(from).expect("valid sender"),
        },
        reply_to: None,
        envelope_domain: "bounces.acme.example".into(),
        subject: "Hello {{first_name}} from {{city}}".into(),
        html: Some("<p>Hi {{first_name}}, {{tag}} in {{city}}.</p>\n<p>To {{email}}</p>\n".into()),
        text: Some("Hi {{first_name}}, {{tag}} in {{city}}.\nTo {{email}}\n".into()),
        headers: Vec::new(),
        track_clicks: true,
        track_opens: true,
    }
}

/// The configuration every test starts from: all mail to the sink, short
/// intervals; tests change what they exercise.
fn base_config(sink: &SinkHandle) -> Config {
    let mut config = Config::default();
    let send = &mut config.send;
    send.routes = vec![RouteEntry {
        domain: "*".into(),
        target: sink.addr.to_string(),
        tls: None,
    }];
    send.dns = "disabled".into();
    send.tls = "disabled".into();
    send.poll_interval = config::Duration::from_millis(50);
    send.tracking_flush = config::Duration::from_millis(20);
    send.idle_timeout = config::Duration::from_secs(2);
    send.render_threads = 2;
    // A stuck session fails the test quickly instead of after RFC timeouts.
    let t = &mut send.timeouts;
    for limit in [
        &mut t.connect,
        &mut t.greeting,
        &mut t.mail,
        &mut t.rcpt,
        &mut t.data_init,
        &mut t.data_end,
    ] {
        *limit = config::Duration::from_secs(10);
    }
    config.metrics.listen = String::new();
    config
}

pub struct Harness {
    pub runtime: Runtime,
    pub store: Arc<dyn Store>,
    pub sink: SinkHandle,
    pub tenant: TenantId,
    /// Holds the SQLite files for the harness's life.
    _dir: TempDir,
    /// Dropped after the store's pool, which the database drop forces closed.
    _database: Option<TestDatabase>,
}

/// What a test changes before the runtime starts.
pub struct Setup {
    pub backend: Backend,
    pub sink: SinkConfig,
    pub clock: Arc<dyn Clock>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            sink: sink_config(""),
            clock: Arc::new(SystemClock),
        }
    }
}

impl Harness {
    /// Starts sink, store and runtime; `None` when the backend is PostgreSQL and
    /// no server answers (the skip has been announced).
    pub async fn start(setup: Setup, configure: impl FnOnce(&mut Config)) -> Option<Self> {
        let dir = TempDir::new().expect("tempdir");
        let (store, database) = open_store(setup.backend, &dir).await?;
        let sink = sink::start(setup.sink).await.expect("the sink starts");
        let mut config = base_config(&sink);
        configure(&mut config);
        let tenant = store
            .create_tenant(&TenantName::parse("acme").expect("valid"))
            .await
            .expect("create tenant")
            .id;
        let runtime =
            Runtime::start(&config, Arc::clone(&store), setup.clock).expect("the runtime starts");
        Some(Self {
            runtime,
            store,
            sink,
            tenant,
            _dir: dir,
            _database: database,
        })
    }

    /// Creates a campaign sent from `from`, imports `people` and stores the
    /// definition; the campaign stays a draft until `launch`.
    pub async fn campaign(&self, name: &str, from: &str, people: &[Person]) -> Campaign {
        let name = CampaignName::parse(name).expect("valid campaign name");
        let created = self
            .store
            .create_campaign(self.tenant, &name)
            .await
            .expect("create campaign");
        self.import(created.id, people).await;
        let json = serde_json::to_string(&definition(from)).expect("serializable");
        self.store
            .set_campaign_definition(self.tenant, created.id, &json)
            .await
            .expect("store the definition");
        self.load(created.id).await
    }

    async fn import(&self, campaign: CampaignId, people: &[Person]) {
        let columns: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
        let mut writer = self
            .store
            .begin_import(self.tenant, campaign, &columns)
            .await
            .expect("begin import");
        for (chunk_index, chunk) in people.chunks(1000).enumerate() {
            let mut batch = RecipientBatch::new(COLUMNS.len());
            for (i, p) in chunk.iter().enumerate() {
                let id = RecipientId((chunk_index * 1000 + i + 1) as i64);
                batch.push(id, &p.email, [&*p.first_name, &p.city, &p.tag]);
            }
            writer.write(&batch).await.expect("write rows");
        }
        let summary = ImportSummary {
            source: "generated".into(),
            rows_loaded: people.len() as i64,
            rows_rejected: 0,
        };
        writer.commit(&summary).await.expect("commit import");
    }

    pub async fn load(&self, campaign: CampaignId) -> Campaign {
        self.store
            .campaign(self.tenant, campaign)
            .await
            .expect("read campaign")
            .expect("campaign exists")
    }

    /// Launches as the command line does, then lets the tree act at once.
    pub async fn launch(&self, campaign: &Campaign) {
        let campaign = self.load(campaign.id).await;
        launch_checked(self.store.as_ref(), self.tenant, &campaign)
            .await
            .expect("launch");
        self.runtime.reconcile();
    }

    /// Changes a campaign's status (pause, resume, cancel) and reconciles now.
    pub async fn set_status(&self, campaign: CampaignId, status: CampaignStatus) {
        self.store
            .set_campaign_status(self.tenant, campaign, status)
            .await
            .expect("change status");
        self.runtime.reconcile();
    }

    pub async fn counters(&self, campaign: CampaignId) -> CampaignCounters {
        self.store
            .counters(self.tenant, campaign)
            .await
            .expect("read counters")
    }

    /// Polls the counters until `done` holds; panics with the last counters after
    /// `within`.
    pub async fn wait_for_counters(
        &self,
        campaign: CampaignId,
        within: Duration,
        done: impl Fn(&CampaignCounters) -> bool,
    ) -> CampaignCounters {
        let deadline = Instant::now() + within;
        loop {
            let counters = self.counters(campaign).await;
            if done(&counters) {
                return counters;
            }
            assert!(
                Instant::now() < deadline,
                "campaign {campaign} did not get there within {within:?}: {counters:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until nothing is pending or deferred.
    pub async fn settle(&self, campaign: CampaignId, within: Duration) -> CampaignCounters {
        self.wait_for_counters(campaign, within, |c| c.pending == 0 && c.deferred == 0)
            .await
    }

    /// Waits for the dispatcher to store the campaign's end.
    pub async fn wait_for_status(&self, campaign: CampaignId, status: CampaignStatus) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.load(campaign).await.status != status {
            assert!(
                Instant::now() < deadline,
                "campaign {campaign} never became {status:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn recipient(&self, campaign: CampaignId, email: &str) -> Recipient {
        let email = EmailAddress::parse(email).expect("valid address");
        self.store
            .recipient_by_email(self.tenant, campaign, &email)
            .await
            .expect("read recipient")
            .expect("recipient exists")
    }

    pub async fn events(&self, campaign: CampaignId, email: &str) -> Vec<Event> {
        let id = self.recipient(campaign, email).await.id;
        self.store
            .events(self.tenant, campaign, id)
            .await
            .expect("read events")
    }

    /// Waits until the sink has accepted nothing new for `quiet`, and returns the
    /// count; panics if it keeps changing for `within`.
    pub async fn sink_quiet(&self, quiet: Duration, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        let mut last = self.sink.recorder.total_messages();
        let mut since = Instant::now();
        loop {
            tokio::time::sleep(POLL).await;
            let now = self.sink.recorder.total_messages();
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() >= quiet {
                return now;
            }
            assert!(Instant::now() < deadline, "the sink never went quiet");
        }
    }

    /// Stores every buffered outcome and stops the sink.
    pub async fn shutdown(self) {
        self.runtime.drain().await;
        self.sink.shutdown().await;
    }
}

async fn open_store(
    backend: Backend,
    dir: &TempDir,
) -> Option<(Arc<dyn Store>, Option<TestDatabase>)> {
    let (store, database): (Arc<dyn Store>, _) = match backend {
        Backend::Sqlite => {
            let store = SqliteStore::open(&dir.path().join("data"), Duration::from_secs(5))
                .expect("open SQLite");
            (Arc::new(store), None)
        }
        Backend::Postgres => {
            let database = test_database().await?;
            let store = PgStore::connect(&database.url, 8, Duration::from_secs(5))
                .await
                .expect("connect to PostgreSQL");
            (Arc::new(store), Some(database))
        }
    };
    store.migrate().await.expect("migrate");
    Some((store, database))
}

/// The text of a message as the sink kept it.
pub fn text_of(message: &broadside_load_tests::sink::MessageRecord) -> String {
    let bytes = message.bytes.as_deref().expect("the sink keeps bodies");
    String::from_utf8_lossy(bytes).into_owned()
}
