//! `--baseline`: the machine's ceilings measured in the same run, so that
//! Broadside's figures read as a share of what the box can do at all.
//! - Postfix's `smtp-source` sends as many messages of the run's average size
//!   over as many connections as the engine used at most, to the same sink:
//!   the raw SMTP ceiling.
//! - `openssl speed -multi <cores> rsa2048`: the RSA-2048 signing ceiling.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::drive::Run;

/// Where Debian's postfix package puts it.
const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";

/// The ceilings, each `None` when its tool is missing (the reason is printed).
#[derive(Debug, Default, Serialize)]
pub struct Baseline {
    pub smtp_source_per_second: Option<f64>,
    pub smtp_source_messages: u64,
    pub smtp_source_connections: u64,
    pub smtp_source_message_bytes: u64,
    pub rsa2048_signs_per_second: Option<f64>,
    pub openssl_processes: usize,
}

pub async fn measure(run: &Run) -> anyhow::Result<Baseline> {
    let stats = run.sink_stats;
    let mut baseline = Baseline {
        smtp_source_messages: stats.messages.max(1),
        smtp_source_connections: (stats.max_concurrent_connections as u64).max(1),
        smtp_source_message_bytes: stats.bytes / stats.messages.max(1),
        openssl_processes: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..Baseline::default()
    };
    if Path::new(SMTP_SOURCE).exists() {
        let addr = run.sink.addr;
        let (messages, sessions, size) = (
            baseline.smtp_source_messages,
            baseline.smtp_source_connections,
            baseline.smtp_source_message_bytes,
        );
        let seconds = tokio::task::spawn_blocking(move || {
            smtp_source(&addr.to_string(), messages, sessions, size)
        })
        .await??;
        baseline.smtp_source_per_second = Some(messages as f64 / seconds);
    } else {
        println!("baseline: {SMTP_SOURCE} missing (apt-get install postfix); skipped");
    }
    let processes = baseline.openssl_processes;
    baseline.rsa2048_signs_per_second =
        Some(tokio::task::spawn_blocking(move || openssl_rsa2048(processes)).await??);
    Ok(baseline)
}

/// Runs smtp-source; returns its wall-clock seconds.
fn smtp_source(addr: &str, messages: u64, sessions: u64, size: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let output = Command::new(SMTP_SOURCE)
        .args(["-c", "-d"]) // count on stdout; reuse connections
        .args(["-m", &messages.to_string()])
        .args(["-s", &sessions.to_string()])
        .args(["-l", &size.to_string()])
        .args(["-f", "baseline@load.example", "-t", "baseline@d0.example"])
        .arg(addr)
        .output()
        .context("running smtp-source")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "smtp-source failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(seconds)
}

/// `openssl speed -seconds 3 -multi <n> rsa2048`: sign/s summed over the
/// processes (openssl prints the total on its last `rsa 2048 bits` line).
fn openssl_rsa2048(processes: usize) -> anyhow::Result<f64> {
    let output = Command::new("openssl")
        .args(["speed", "-seconds", "3", "-multi", &processes.to_string()])
        .arg("rsa2048")
        .output()
        .context("running openssl speed")?;
    if !output.status.success() {
        bail!(
            "openssl speed failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_openssl_speed(&String::from_utf8_lossy(&output.stdout))
        .context("no `rsa 2048 bits` line in the output of openssl speed")
}

fn parse_openssl_speed(text: &str) -> Option<f64> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("rsa 2048 bits"))?;
    // rsa 2048 bits <sign s> <verify s> <sign/s> <verify/s>
    line.split_whitespace().nth(5)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signing_rate_is_read_from_openssls_summary_line() {
        let text = "                  sign    verify    sign/s verify/s\n\
                    rsa 2048 bits 0.000701s 0.000020s   1426.5  50102.3\n";
        assert_eq!(super::parse_openssl_speed(text), Some(1426.5));
        assert_eq!(super::parse_openssl_speed("nothing"), None);
    }
}
