//! `broadside-load`: runs a scenario from `load-tests/scenarios/*.toml` against
//! the real `broadside serve` (a child process) and the SMTP sink (in this
//! process), waits until every recipient is final, verifies at the sink that
//! each got exactly one correctly personalized (and DKIM-valid) message, and
//! writes a report: a summary on stdout, `<name>.json` and `<name>.svg`.
//!
//! ```text
//! cargo build --release -p broadside -p broadside-load-tests
//! target/release/broadside-load load-tests/scenarios/smoke.toml
//! target/release/broadside-load load-tests/scenarios/newsletter-1m.toml --baseline
//! ```

#[path = "load/baseline.rs"]
mod baseline;
#[path = "load/check.rs"]
mod check;
#[path = "load/drive.rs"]
mod drive;
#[path = "load/ingress.rs"]
mod ingress;
#[path = "load/plot.rs"]
mod plot;
#[path = "load/report.rs"]
mod report;

use std::path::PathBuf;

use broadside_load_tests::engine_proc::{self, Backend};
use broadside_load_tests::pgdb;
use broadside_load_tests::scenario::Scenario;
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
    let bin = match &args.broadside {
        Some(path) => path.clone(),
        None => engine_proc::default_bin()?,
    };
    // Two workers for the sink, the monitor and the submit clients; `serve`
    // is a separate process with its own threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let run = drive::run(&scenario, &bin, &args).await?;
        let verdict = check::verify(&scenario, &run).await;
        let baseline = if args.baseline {
            Some(baseline::measure(&run).await?)
        } else {
            None
        };
        let report = report::Report::build(&scenario, &run, &verdict, baseline.as_ref());
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
