//! `broadside-load`: runs a scenario from `load-tests/scenarios/*.toml`
//! against the real `broadside serve` — a child process it starts, or an
//! engine already running (`--engine-url`) whose routes send the scenario's
//! domains to the sink here (`--sink-listen`) — waits until every recipient
//! is final, verifies at the sink that each got exactly one correctly
//! personalized (and DKIM-valid) message, and where the scenario asks that
//! retries kept to the retry policy and no domain was starved, and writes a
//! report: a summary on stdout, `<name>.json` and `<name>.svg`.
//!
//! ```text
//! cargo build --release -p broadside -p broadside-load-tests
//! target/release/broadside-load load-tests/scenarios/smoke.toml
//! target/release/broadside-load load-tests/scenarios/newsletter-1m.toml --baseline
//! target/release/broadside-load load-tests/scenarios/running.toml \
//!     --engine-url http://127.0.0.1:8080 --key-id K --secret S --sink-listen 127.0.0.1:2525
//! ```

#[path = "load/baseline.rs"]
mod baseline;
#[path = "load/check.rs"]
mod check;
#[path = "load/drive.rs"]
mod drive;
#[path = "load/fairness.rs"]
mod fairness;
#[path = "load/ingress.rs"]
mod ingress;
#[path = "load/plot.rs"]
mod plot;
#[path = "load/probe.rs"]
mod probe;
#[path = "load/report.rs"]
mod report;
#[path = "load/retries.rs"]
mod retries;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, ensure};
use broadside_load_tests::engine_proc::Backend;
use broadside_load_tests::pgdb;
use broadside_load_tests::scenario::{self, Scenario};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Run a load scenario against broadside serve and a loopback SMTP sink")]
pub struct Args {
    /// The scenario file.
    scenario: PathBuf,
    /// Also measure the machine's ceilings: Postfix's smtp-source against the
    /// same sink, and `openssl speed rsa2048` on every core.
    #[arg(long)]
    baseline: bool,
    /// Where the JSON report and the SVG plot go.
    #[arg(long, default_value = "load-report")]
    out: PathBuf,
    /// Override the scenario's recipient count.
    #[arg(long)]
    recipients: Option<u64>,
    /// Override the scenario's DKIM setting.
    #[arg(long)]
    dkim: Option<bool>,
    /// Override the scenario's store.
    #[arg(long, value_parser = parse_backend)]
    backend: Option<Backend>,
    /// The broadside binary (default: next to this one).
    #[arg(long)]
    broadside: Option<PathBuf>,
    /// Server to create the scratch database on (PostgreSQL scenarios).
    #[arg(long, env = "BROADSIDE_TEST_DATABASE_URL", default_value = pgdb::DEFAULT_ADMIN_URL)]
    database_url: String,
    /// No progress bar (CI logs).
    #[arg(long)]
    quiet: bool,
    /// Drive the engine running at this URL instead of starting one. Only
    /// `ingress = "submit"` scenarios; needs --key-id, --secret and
    /// --sink-listen, and the engine's routes must send the scenario's
    /// domains to the sink.
    #[arg(long, env = "BROADSIDE_LOAD_ENGINE_URL")]
    engine_url: Option<String>,
    /// API key id of the running engine's tenant to submit as.
    #[arg(long, env = "BROADSIDE_LOAD_KEY_ID", requires = "engine_url")]
    key_id: Option<String>,
    /// That key's secret.
    #[arg(
        long,
        env = "BROADSIDE_LOAD_SECRET",
        requires = "engine_url",
        hide_env_values = true
    )]
    secret: Option<String>,
    /// Where the sink listens (default: a free loopback port); with
    /// --engine-url, where the running engine's routes point.
    #[arg(long)]
    sink_listen: Option<SocketAddr>,
    /// The running engine's configuration file, for its retry policy and
    /// poll interval (the scenario's [engine.env] applies on top).
    #[arg(long, requires = "engine_url")]
    engine_config: Option<PathBuf>,
}

/// Refuses what a running engine cannot do, before anything starts.
fn check_running_mode(scenario: &Scenario, args: &Args) -> anyhow::Result<()> {
    if args.engine_url.is_none() {
        return Ok(());
    }
    if scenario.ingress == scenario::Ingress::Import {
        bail!("{}", ingress::IMPORT_NEEDS_CLI);
    }
    ensure!(
        scenario.crash.is_none(),
        "a crash scenario kills the engine it started; it cannot drive a running one"
    );
    ensure!(
        !scenario.dkim,
        "dkim = true signs with a key made for the run, which a running engine does not \
         have; pass --dkim false"
    );
    ensure!(
        args.sink_listen.is_some(),
        "--engine-url needs --sink-listen: the address the running engine's routes send \
         the scenario's domains to"
    );
    ensure!(
        args.key_id.is_some() && args.secret.is_some(),
        "--engine-url needs --key-id and --secret (or BROADSIDE_LOAD_KEY_ID and \
         BROADSIDE_LOAD_SECRET)"
    );
    Ok(())
}

fn parse_backend(text: &str) -> Result<Backend, String> {
    match text {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" => Ok(Backend::Postgres),
        other => Err(format!("{other}: expected sqlite or postgres")),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut scenario = Scenario::from_file(&args.scenario)?;
    if let Some(n) = args.recipients {
        scenario.recipients = n;
    }
    if let Some(dkim) = args.dkim {
        scenario.dkim = dkim;
    }
    if let Some(backend) = args.backend {
        scenario.backend = backend;
    }
    check_running_mode(&scenario, &args)?;
    // Two workers for the sink, the monitor and the submit clients; `serve`
    // is a separate process with its own threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let run = drive::run(&scenario, &args).await?;
        let verdict = check::verify(&scenario, &run).await;
        let baseline = if args.baseline {
            Some(baseline::measure(&run).await?)
        } else {
            None
        };
        let report = report::Report::build(
            &scenario,
            &run,
            &verdict,
            baseline.as_ref(),
            args.engine_url.as_deref(),
        );
        report.print();
        std::fs::create_dir_all(&args.out)?;
        let json = args.out.join(format!("{}.json", scenario.name));
        std::fs::write(&json, serde_json::to_vec_pretty(&report)?)?;
        let svg = args.out.join(format!("{}.svg", scenario.name));
        plot::write(&svg, &scenario.name, &run.timeline)?;
        println!("report: {}  plot: {}", json.display(), svg.display());
        run.sink.shutdown().await;
        verdict.into_result()
    })
}
