//! `broadside-sink`: the SMTP test sink as a process, for the demo and for
//! load runs against a separately started Broadside.
//!
//! ```text
//! broadside-sink --listen 127.0.0.1:2525 --config faults.toml --eml-dir samples/
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use broadside_load_tests::sink::{self, SinkConfig, SinkStats};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "SMTP sink that records (and, if scripted, mistreats) what it receives")]
struct Args {
    /// Address to listen on (overrides `bind` in the config file).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// TOML file with sink settings and fault rules.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write accepted messages as .eml files here (overrides the config).
    #[arg(long)]
    eml_dir: Option<PathBuf>,
    /// Seconds between progress lines; 0 for none.
    #[arg(long, default_value_t = 5)]
    stats_every: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => SinkConfig::from_file(path)?,
        None => SinkConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.bind = listen;
    }
    if let Some(dir) = args.eml_dir {
        config.eml_dir = Some(dir);
    }
    let handle = sink::start(config).await?;
    println!("broadside-sink listening on {}", handle.addr);

    let started = Instant::now();
    let mut last = (Instant::now(), SinkStats::default());
    let period = Duration::from_secs(args.stats_every.max(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = ticks.tick(), if args.stats_every > 0 => {
                let now = (Instant::now(), handle.recorder.stats());
                println!("{}", line(&now.1, now.1.messages - last.1.messages, now.0 - last.0));
                last = now;
            }
            signal = tokio::signal::ctrl_c() => {
                signal?;
                break;
            }
        }
    }
    let stats = handle.recorder.stats();
    println!("final: {}", line(&stats, stats.messages, started.elapsed()));
    let duplicates = handle.recorder.duplicates().len();
    println!(
        "final: {} distinct recipients, {duplicates} with more than one message",
        handle.recorder.distinct_recipients()
    );
    handle.shutdown().await;
    Ok(())
}

/// One progress line; the rate covers `messages` over `elapsed`.
fn line(stats: &SinkStats, messages: u64, elapsed: Duration) -> String {
    let rate = messages as f64 / elapsed.as_secs_f64().max(1e-9);
    format!(
        "messages={} msgs/s={rate:.0} MiB={:.1} connections={} open={} max_open={} \
         replies 2xx={} 4xx={} 5xx={}",
        stats.messages,
        stats.bytes as f64 / (1024.0 * 1024.0),
        stats.connections,
        stats.open_connections,
        stats.max_concurrent_connections,
        stats.replies_ok,
        stats.replies_transient,
        stats.replies_permanent,
    )
}
