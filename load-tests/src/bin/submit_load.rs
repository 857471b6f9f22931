//! Batch-submit load: Escher-signed `POST /v1/messages` of N recipients each, at
//! a given concurrency, for a duration or a number of batches; reports
//! recipients accepted per second and request latency percentiles, with the
//! machine's load average (the figures mean little without it on a shared box).
//!
//! ```text
//! cargo build --release -p broadside -p broadside-load-tests
//! target/release/broadside-submit-load --spawn                  # PostgreSQL
//! target/release/broadside-submit-load --spawn --sqlite
//! target/release/broadside-submit-load --url http://127.0.0.1:8080 --key-id K --secret S
//! ```

#[path = "submit_load/spawn.rs"]
mod spawn;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use broadside_load_tests::engine_proc;
use broadside_load_tests::pgdb;
use broadside_load_tests::sink::{self, SinkConfig};
use broadside_load_tests::submit_client::{self, SubmitClient};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Load `POST /v1/messages` with signed batches and report throughput and latency")]
struct Args {
    /// A running server; with `--key-id` and `--secret`.
    #[arg(long)]
    url: Option<String>,
    #[arg(long)]
    key_id: Option<String>,
    #[arg(long)]
    secret: Option<String>,
    /// Start `broadside serve` on a scratch store with a loopback sink instead.
    #[arg(long)]
    spawn: bool,
    /// With `--spawn`: SQLite instead of PostgreSQL.
    #[arg(long)]
    sqlite: bool,
    /// With `--spawn`: the server to create the scratch database on.
    #[arg(long, env = "BROADSIDE_TEST_DATABASE_URL", default_value = pgdb::DEFAULT_ADMIN_URL)]
    database_url: String,
    /// Recipients per batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long to send, in seconds (ignored with `--count`).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Send this many batches in all instead of running for `--duration`.
    #[arg(long)]
    count: Option<u64>,
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    accepted: u64,
    /// Non-201 answers by status code.
    failures: Vec<u16>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let sink = sink::start(SinkConfig {
        record_limit: 1_000,
        ..SinkConfig::default()
    })
    .await?;
    let mut spawned = None;
    let (url, key_id, secret) = if args.spawn {
        let postgres = (!args.sqlite).then_some(args.database_url.as_str());
        // No submit limit: the point is what the engine takes, not the limiter.
        let extra = [("BROADSIDE_API__SUBMIT_RATE".to_owned(), "0".to_owned())];
        let s = spawn::start(&engine_proc::default_bin()?, postgres, &sink, &extra)?;
        let credentials = (s.url.clone(), s.key_id.clone(), s.secret.clone());
        spawned = Some(s);
        credentials
    } else {
        let need = |v: &Option<String>, name: &str| {
            v.clone().with_context(|| format!("--{name} (or --spawn)"))
        };
        (
            need(&args.url, "url")?,
            need(&args.key_id, "key-id")?,
            need(&args.secret, "secret")?,
        )
    };
    let client = Arc::new(SubmitClient::new(&url, &key_id, &secret, args.concurrency)?);
    let started = Instant::now();
    let tallies = drive(&args, client).await?;
    let elapsed = started.elapsed();
    report(&args, &tallies, elapsed);
    drop(spawned);
    sink.shutdown().await;
    Ok(())
}

/// Runs `concurrency` workers until the time or the batch count is used up.
async fn drive(args: &Args, client: Arc<SubmitClient>) -> anyhow::Result<Vec<Tally>> {
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let remaining = Arc::new(std::sync::atomic::AtomicI64::new(
        args.count.map_or(i64::MAX, |c| c as i64),
    ));
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let body = batch_body(worker, args.batch);
        let (client, remaining) = (Arc::clone(&client), Arc::clone(&remaining));
        let timed = args.count.is_none();
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while (!timed || Instant::now() < deadline)
                && remaining.fetch_sub(1, std::sync::atomic::Ordering::Relaxed) > 0
            {
                let answer = client.post(&body).await;
                tally.latencies.push(answer.latency);
                match (answer.status, answer.body) {
                    (201, Some(bytes)) => tally.accepted += submit_client::accepted_count(&bytes),
                    (status, _) => tally.failures.push(status),
                }
            }
            tally
        }));
    }
    let mut tallies = Vec::new();
    for worker in workers {
        tallies.push(worker.await?);
    }
    Ok(tallies)
}

/// A batch of `n` recipients over 20 domains, distinct per worker.
fn batch_body(worker: usize, n: usize) -> Vec<u8> {
    let recipients: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "email": format!("w{worker}r{i}@d{}.example", i % 20),
                "data": { "first_name": format!("First{i}"), "city": format!("City{}", i % 97) },
            })
        })
        .collect();
    let body = serde_json::json!({
        "template": {
            "from": { "name": "Load", "address": "news@load.example" },
            "envelope_domain": "bounces.load.example",
            "subject": "Hello {{first_name}}",
            "text": "Hi {{first_name}} from {{city}}.",
            "html": "<p>Hi {{first_name}} from {{city}}.</p>",
        },
        "recipients": recipients,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn report(args: &Args, tallies: &[Tally], elapsed: Duration) {
    let mut latencies: Vec<Duration> = tallies
        .iter()
        .flat_map(|t| t.latencies.iter().copied())
        .collect();
    latencies.sort();
    let accepted: u64 = tallies.iter().map(|t| t.accepted).sum();
    let mut failures: Vec<u16> = tallies
        .iter()
        .flat_map(|t| t.failures.iter().copied())
        .collect();
    failures.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let seconds = elapsed.as_secs_f64();
    println!(
        "batch {} recipients, concurrency {}, {:.1} s",
        args.batch, args.concurrency, seconds
    );
    println!(
        "requests  {} ({:.1}/s), failed {}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        failures.len()
    );
    if let (Some(first), Some(last)) = (failures.first(), failures.last()) {
        println!("failure statuses from {first} to {last} (0 = no answer)");
    }
    println!(
        "accepted  {accepted} recipients, {:.0} recipients/s",
        accepted as f64 / seconds
    );
    println!(
        "latency   p50 {:.1} ms  p90 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        pct(0.50),
        pct(0.90),
        pct(0.95),
        pct(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    println!("loadavg   {}", engine_proc::load_average());
}
