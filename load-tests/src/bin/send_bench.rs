//! Send benchmark: the real `broadside` binary sends a campaign (default 100,000
//! recipients over 20 domains, the ~10 KB template in templates/bench/) from
//! PostgreSQL to the SMTP sink on loopback in this process. Reports messages per
//! second from launch to the last stored outcome, peak RSS and CPU time of
//! `serve`, and checks that every recipient got exactly one message.
//!
//! ```text
//! cargo build --release -p broadside -p broadside-load-tests
//! target/release/broadside-send-bench              # without DKIM
//! target/release/broadside-send-bench --dkim       # RSA-2048 signatures
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use broadside_load_tests::dkim_check::DkimFixture;
use broadside_load_tests::engine_proc::{self, Backend, Engine};
use broadside_load_tests::sink::{self, SinkConfig, SinkHandle};
use broadside_load_tests::{csv_gen, pgdb};
use clap::Parser;
use engine::model::{CampaignName, TenantName};
use engine::store::Store;
use engine::store::pg::PgStore;

const TENANT: &str = "bench";
const CAMPAIGN: &str = "spring";

#[derive(Debug, Parser)]
#[command(about = "Time `broadside serve` sending a campaign to a loopback SMTP sink")]
struct Args {
    /// Recipients to generate and send to.
    #[arg(long, default_value_t = 100_000)]
    recipients: u64,
    /// Recipient domains (d0.example … ), each its own queue and connections.
    #[arg(long, default_value_t = 20)]
    domains: u64,
    /// Sign with a freshly generated RSA-2048 DKIM key for the From domain.
    #[arg(long)]
    dkim: bool,
    /// send.max_connections_per_domain.
    #[arg(long, default_value_t = 10)]
    max_connections_per_domain: u32,
    /// send.max_in_flight.
    #[arg(long, default_value_t = 2000)]
    max_in_flight: u32,
    /// Have the sink offer STARTTLS (the engine then encrypts every session).
    #[arg(long)]
    starttls: bool,
    /// Server to create the scratch database on.
    #[arg(long, env = "BROADSIDE_TEST_DATABASE_URL", default_value = pgdb::DEFAULT_ADMIN_URL)]
    database_url: String,
    /// The broadside binary (default: next to this one).
    #[arg(long)]
    broadside: Option<PathBuf>,
    /// Campaign definition (default: templates/bench/campaign.toml of this repository).
    #[arg(long)]
    definition: Option<PathBuf>,
}

/// What one run measured.
struct Figures {
    seconds: f64,
    peak_rss: u64,
    cpu_seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Two workers for the sink and the progress poll; `serve` is a separate process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bin = match &args.broadside {
        Some(path) => path.clone(),
        None => engine_proc::default_bin()?,
    };
    let definition = match &args.definition {
        Some(path) => path.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/bench/campaign.toml"),
    };
    let sink = sink::start(SinkConfig {
        starttls: args.starttls,
        // Per-recipient counts are kept regardless; full records are not needed.
        record_limit: 1_000,
        ..SinkConfig::default()
    })
    .await?;
    let mut engine = Engine::new(
        &bin,
        Backend::Postgres,
        &args.database_url,
        &sink,
        args.starttls,
    )?;
    engine.set(
        "BROADSIDE_SEND__MAX_CONNECTIONS_PER_DOMAIN",
        args.max_connections_per_domain.to_string(),
    );
    engine.set(
        "BROADSIDE_SEND__MAX_IN_FLIGHT",
        args.max_in_flight.to_string(),
    );
    // Nothing scrapes it here.
    engine.set("BROADSIDE_METRICS__LISTEN", "");
    let _dkim = if args.dkim {
        let fixture = DkimFixture::rsa2048(engine.dir.path(), "bench.example", "bench")?;
        engine.set("BROADSIDE_SEND__DKIM", fixture.config_value());
        Some(fixture)
    } else {
        None
    };
    let csv = engine.dir.path().join("recipients.csv");
    csv_gen::write_recipients_over(&csv, args.recipients, args.domains)?;
    prepare(&engine, &csv, &definition)?;
    let figures = send(&engine, args.recipients).await?;
    verify(&sink, &args)?;
    report(&args, &figures);
    sink.shutdown().await;
    Ok(())
}

/// Tenant, import and definition; everything but the launch.
fn prepare(engine: &Engine, csv: &Path, definition: &Path) -> anyhow::Result<()> {
    let text = |p: &Path| p.to_str().map(str::to_owned).context("path is not UTF-8");
    engine.run(&["tenant", "create", TENANT])?;
    let started = Instant::now();
    let (csv, definition) = (text(csv)?, text(definition)?);
    engine.run(&["import", "--tenant", TENANT, "--campaign", CAMPAIGN, &csv])?;
    println!("imported in {:.1}s", started.elapsed().as_secs_f64());
    let create = ["campaign", "create", "--tenant", TENANT, CAMPAIGN];
    engine.run(&[&create[..], &["--definition", &definition]].concat())?;
    Ok(())
}

/// Launches, runs `serve` until every recipient has a final outcome, and
/// measures it.
async fn send(engine: &Engine, recipients: u64) -> anyhow::Result<Figures> {
    let url = &engine.db.as_ref().context("a PostgreSQL run")?.url;
    let store = PgStore::connect(url, 1, Duration::from_secs(5)).await?;
    let tenant = store
        .tenant(&TenantName::parse(TENANT)?)
        .await?
        .context("tenant")?;
    let campaign = store
        .campaign_by_name(tenant.id, &CampaignName::parse(CAMPAIGN)?)
        .await?
        .context("campaign")?;
    let started = Instant::now();
    engine.run(&["campaign", "launch", "--tenant", TENANT, CAMPAIGN])?;
    let mut serve = engine.command(&["serve"]).stdout(Stdio::null()).spawn()?;
    let result = poll_until_final(&store, tenant.id, campaign.id, recipients, &mut serve).await;
    let seconds = started.elapsed().as_secs_f64();
    // Read before the process exits: VmHWM is the kernel's own high-water mark.
    let measured = engine_proc::sample(serve.id());
    engine_proc::stop(&mut serve);
    result?;
    let measured = measured?;
    Ok(Figures {
        seconds,
        peak_rss: measured.peak_rss,
        cpu_seconds: measured.cpu_seconds,
    })
}

/// Polls the stored counters every 100 ms until no recipient is pending or
/// deferred, printing progress every few seconds.
async fn poll_until_final(
    store: &PgStore,
    tenant: engine::model::TenantId,
    campaign: engine::model::CampaignId,
    recipients: u64,
    serve: &mut Child,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(status) = serve.try_wait()? {
            bail!("serve exited early: {status}");
        }
        let c = store.counters(tenant, campaign).await?;
        let done = c.delivered + c.bounced + c.failed + c.suppressed;
        if last_print.elapsed() >= Duration::from_secs(5) {
            let s = started.elapsed().as_secs_f64();
            println!("{s:>6.1}s  {done} of {recipients} final");
            last_print = Instant::now();
        }
        if c.pending == 0 && c.deferred == 0 {
            ensure!(c.delivered as u64 == recipients, "not all delivered: {c:?}");
            return Ok(());
        }
    }
}

/// Exactly one message per recipient at the sink.
fn verify(sink: &SinkHandle, args: &Args) -> anyhow::Result<()> {
    let recorder = &sink.recorder;
    let missing = (1..=args.recipients)
        .filter(|i| recorder.count_for(&csv_gen::address(*i, args.domains)) == 0)
        .count();
    let duplicates = recorder.duplicates().len();
    ensure!(
        missing == 0 && duplicates == 0 && recorder.total_messages() == args.recipients,
        "sink: {} messages, {missing} recipients missing, {duplicates} with more than one",
        recorder.total_messages()
    );
    println!(
        "sink: {} messages, each recipient exactly once",
        recorder.total_messages()
    );
    Ok(())
}

fn report(args: &Args, f: &Figures) {
    let rate = args.recipients as f64 / f.seconds;
    println!();
    println!(
        "| recipients | domains | conns/domain | DKIM | seconds | msg/s | msg/h | peak RSS MB | CPU s / 1k msgs |"
    );
    println!("|---:|---:|---:|---|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {:.1} | {:.0} | {:.2}M | {:.0} | {:.3} |",
        args.recipients,
        args.domains,
        args.max_connections_per_domain,
        if args.dkim { "RSA-2048" } else { "none" },
        f.seconds,
        rate,
        rate * 3600.0 / 1e6,
        f.peak_rss as f64 / 1e6,
        f.cpu_seconds * 1000.0 / args.recipients as f64,
    );
}
