//! `broadside demo`: the whole path on one machine with nothing to install — a
//! fresh SQLite data directory, the project's SMTP sink on loopback, the sample
//! campaign from `templates/sample` sent to generated recipients, a progress bar,
//! and a summary with the throughput, sample messages and the metrics URL.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use broadside_load_tests::sink::{self, SinkConfig};
use clap::Args;
use engine::clock::SystemClock;
use engine::config::{Config, RouteEntry};
use engine::import::{ImportOptions, import_csv};
use engine::model::{CampaignName, TenantName};
use engine::store::Store;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app;
use crate::cli::campaign::{definition_from_parts, launch_checked};
use crate::runtime::Runtime;
use crate::telemetry;

/// The sample campaign, built into the binary so the demo runs from anywhere.
const CAMPAIGN_TOML: &str = include_str!("../../../templates/sample/campaign.toml");
const CAMPAIGN_HTML: &str = include_str!("../../../templates/sample/campaign.html");
const CAMPAIGN_TEXT: &str = include_str!("../../../templates/sample/campaign.txt");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Recipients to generate.
    #[arg(long, default_value_t = 10_000)]
    recipients: u64,
    /// Where the demo keeps its data (a new directory is made inside).
    #[arg(long, default_value = "data")]
    dir: PathBuf,
}

pub fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.join(format!(
        "demo-{}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    config.data_dir = dir.join("store");
    config.store.backend = engine::config::Backend::Sqlite;
    config.send.dns = "disabled".to_owned();
    config.send.tls = "opportunistic".to_owned();
    actix::System::new().block_on(demo(config, dir, args.recipients))
}

async fn demo(mut config: Config, dir: PathBuf, recipients: u64) -> anyhow::Result<ExitCode> {
    let eml_dir = dir.join("eml");
    let sink = sink::start(SinkConfig {
        starttls: true,
        eml_dir: Some(eml_dir.clone()),
        eml_limit: 20,
        ..SinkConfig::default()
    })
    .await?;
    config.send.routes = vec![RouteEntry {
        domain: "*".to_owned(),
        target: sink.addr.to_string(),
        tls: None,
    }];
    let metrics = start_metrics(&config);
    let store = app::open_store(&config).await?;
    let (tenant, campaign) = prepare(store.as_ref(), &config, &dir, recipients).await?;

    let runtime = Runtime::start(&config, Arc::clone(&store), Arc::new(SystemClock))?;
    let started = Instant::now();
    let bar = progress(recipients);
    loop {
        let counters = store.counters(tenant, campaign).await?;
        let done = counters.total() - counters.pending - counters.deferred;
        bar.set_position(u64::try_from(done).unwrap_or(0));
        if counters.pending == 0 && counters.deferred == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    runtime.drain().await;
    let counters = store.counters(tenant, campaign).await?;
    let rate = counters.delivered as f64 / elapsed.as_secs_f64().max(1e-6);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "sent the sample campaign to {recipients} generated recipients in {:.1}s",
        elapsed.as_secs_f64()
    )?;
    writeln!(
        out,
        "  delivered {} · bounced {} · failed {} · {rate:.0} messages/s ({:.1} million/hour)",
        counters.delivered,
        counters.bounced,
        counters.failed,
        rate * 3600.0 / 1e6
    )?;
    writeln!(
        out,
        "  the sink on {} accepted {} messages",
        sink.addr,
        sink.recorder.total_messages()
    )?;
    writeln!(out, "  sample delivered messages: {}", eml_dir.display())?;
    if let Some(listen) = metrics {
        writeln!(
            out,
            "  metrics: http://{listen}/metrics (until the demo exits)"
        )?;
    }
    writeln!(out, "  data: {}", dir.display())?;
    Ok(ExitCode::SUCCESS)
}

fn start_metrics(config: &Config) -> Option<SocketAddr> {
    let listen: SocketAddr = config.metrics.listen.parse().ok()?;
    match telemetry::install(listen) {
        Ok(()) => Some(listen),
        Err(err) => {
            eprintln!("metrics endpoint not started ({err}); the demo goes on without it");
            None
        }
    }
}

/// Creates the tenant, generates and imports recipients, defines and launches the
/// campaign.
async fn prepare(
    store: &dyn Store,
    config: &Config,
    dir: &Path,
    recipients: u64,
) -> anyhow::Result<(engine::model::TenantId, engine::model::CampaignId)> {
    let tenant = store.create_tenant(&TenantName::parse("demo")?).await?;
    let campaign = store
        .create_campaign(tenant.id, &CampaignName::parse("spring")?)
        .await?;
    let file = dir.join("recipients.csv");
    write_recipients(&file, recipients)?;
    let options = ImportOptions::from(&config.import);
    let report = dir.join("recipients.errors.csv");
    let source = std::fs::File::open(&file)?;
    let outcome = import_csv(
        store,
        tenant.id,
        campaign.id,
        source,
        "recipients.csv",
        &report,
        &options,
        &|_| {},
    )
    .await?;
    println!(
        "imported {} recipients in {:.1}s",
        outcome.loaded,
        outcome.elapsed.as_secs_f64()
    );
    let definition = definition_from_parts(CAMPAIGN_TOML, |name| match name {
        "campaign.html" => Some(CAMPAIGN_HTML.to_owned()),
        "campaign.txt" => Some(CAMPAIGN_TEXT.to_owned()),
        _ => None,
    })?;
    store
        .set_campaign_definition(tenant.id, campaign.id, &serde_json::to_string(&definition)?)
        .await?;
    let campaign = store
        .campaign(tenant.id, campaign.id)
        .await?
        .context("campaign vanished")?;
    launch_checked(store, tenant.id, &campaign).await?;
    Ok((tenant.id, campaign.id))
}

/// Recipients with the sample campaign's columns, spread over 20 loopback domains.
fn write_recipients(path: &Path, rows: u64) -> std::io::Result<()> {
    const NAMES: [&str; 8] = [
        "Anna", "Ben", "Chloé", "David", "Emma", "Farid", "Greta", "Hiro",
    ];
    const CITIES: [&str; 6] = ["Berlin", "Lisboa", "Kraków", "Lyon", "Osaka", "Austin"];
    const COLOURS: [&str; 5] = ["green", "blue", "red", "yellow", ""];
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "email,first_name,city,favourite_colour")?;
    for i in 0..rows {
        let k = i as usize;
        writeln!(
            out,
            "reader{i}@d{}.example,{},{},{}",
            i % 20,
            NAMES[k % 8],
            CITIES[k % 6],
            COLOURS[k % 5]
        )?;
    }
    out.flush()
}

fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{spinner} sending [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
