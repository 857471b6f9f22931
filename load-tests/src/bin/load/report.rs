//! The run's figures: a human summary on stdout and the same as JSON.

use std::time::Duration;

use broadside_load_tests::engine_proc::Backend;
use broadside_load_tests::scenario::{Ingress, Scenario};
use broadside_load_tests::sink::SinkStats;
use engine::store::CampaignCounters;
use serde::Serialize;

use crate::baseline::Baseline;
use crate::check::Verdict;
use crate::drive::Run;

/// Everything the JSON file holds.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub scenario: &'a str,
    pub description: &'a str,
    /// The engine driven when it was already running (`--engine-url`);
    /// `None` when the run started it.
    pub engine_url: Option<&'a str>,
    pub recipients: u64,
    pub domains: usize,
    pub backend: &'static str,
    pub ingress: &'static str,
    pub dkim: bool,
    /// The machine: the figures mean little without it.
    pub cores: usize,
    pub load_average_start: &'a str,
    pub load_average_end: &'a str,
    /// From the start of ingress until every recipient was final.
    pub seconds: f64,
    pub ingress_seconds: f64,
    /// Messages accepted by the sink per second over `seconds`.
    pub messages_per_second: f64,
    pub messages_per_hour: f64,
    pub time_to_first_delivery_s: Option<f64>,
    pub time_to_last_delivery_s: Option<f64>,
    /// Seconds from the start until a given share of the messages was at the
    /// sink (from the 250 ms timeline): the latency of a message in a run
    /// where everything is handed over at once.
    pub delivery_latency_s: Percentiles,
    /// Submit request latencies, seconds (submit ingress only).
    pub submit_latency_s: Option<Percentiles>,
    /// The engine process's figures; `None` for a running engine.
    pub engine_cpu_seconds: Option<f64>,
    pub cpu_seconds_per_1000_messages: Option<f64>,
    pub engine_peak_rss_bytes: Option<u64>,
    /// Where the machine's CPU went per message; `None` for a running engine.
    pub cpu_per_message: Option<CpuPerMessage>,
    pub outcomes: CampaignCounters,
    pub sink: SinkFigures,
    pub kills: u32,
    pub verify: &'a Verdict,
    pub baseline: Option<&'a Baseline>,
    /// Broadside's rate over the baselines' (1.0 = the ceiling).
    pub ratio_to_smtp_source: Option<f64>,
    pub ratio_to_signing_ceiling: Option<f64>,
    /// The highest ratio to the signing ceiling this run's CPU cost per
    /// message allows with every core busy: one signature's share of it.
    pub signing_ratio_bound: Option<f64>,
}

/// Milliseconds of CPU per message accepted by the sink, by process.
#[derive(Debug, Serialize)]
pub struct CpuPerMessage {
    pub engine_ms: f64,
    /// This process: the sink and the monitor (and the API client of a
    /// submit run).
    pub harness_and_sink_ms: f64,
    /// `None` for SQLite, which runs inside the engine.
    pub postgres_ms: Option<f64>,
    pub total_ms: f64,
    /// CPU used over CPU available (cores × seconds).
    pub cores_busy: f64,
}

impl CpuPerMessage {
    fn of(run: &Run, messages: u64, cores: usize) -> Option<Self> {
        let engine = run.engine_cpu_seconds?;
        let per = |cpu: f64| cpu * 1000.0 / messages.max(1) as f64;
        let total = engine + run.harness_cpu_seconds + run.postgres_cpu_seconds.unwrap_or(0.0);
        Some(Self {
            engine_ms: per(engine),
            harness_and_sink_ms: per(run.harness_cpu_seconds),
            postgres_ms: run.postgres_cpu_seconds.map(per),
            total_ms: per(total),
            cores_busy: total / (cores as f64 * run.seconds.max(1e-9)),
        })
    }
}

/// p50/p90/p99/max.
#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// The sink's counters.
#[derive(Debug, Serialize)]
pub struct SinkFigures {
    pub messages: u64,
    pub bytes: u64,
    pub connections: u64,
    pub max_concurrent_connections: usize,
    pub replies_transient: u64,
    pub replies_permanent: u64,
}

impl From<SinkStats> for SinkFigures {
    fn from(s: SinkStats) -> Self {
        Self {
            messages: s.messages,
            bytes: s.bytes,
            connections: s.connections,
            max_concurrent_connections: s.max_concurrent_connections,
            replies_transient: s.replies_transient,
            replies_permanent: s.replies_permanent,
        }
    }
}

impl<'a> Report<'a> {
    pub fn build(
        scenario: &'a Scenario,
        run: &'a Run,
        verdict: &'a Verdict,
        baseline: Option<&'a Baseline>,
        engine_url: Option<&'a str>,
    ) -> Self {
        let stats = run.sink_stats;
        let rate = stats.messages as f64 / run.seconds.max(1e-9);
        let since_start = |t: std::time::SystemTime| {
            t.duration_since(run.started_at)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let first_last = run.first_and_last;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu_per_message = CpuPerMessage::of(run, stats.messages, cores);
        let signs_per_second = baseline
            .and_then(|b| b.rsa2048_signs_per_second)
            .filter(|_| scenario.dkim);
        Self {
            scenario: &scenario.name,
            description: &scenario.description,
            engine_url,
            recipients: scenario.recipients,
            domains: scenario.domain_picker().len(),
            backend: match (engine_url, scenario.backend) {
                (Some(_), _) => "the running engine's store",
                (None, Backend::Sqlite) => "sqlite",
                (None, Backend::Postgres) => "postgres",
            },
            ingress: match scenario.ingress {
                Ingress::Import => "import",
                Ingress::Submit => "submit",
            },
            dkim: scenario.dkim,
            cores,
            load_average_start: &run.load_average_start,
            load_average_end: &run.load_average_end,
            seconds: run.seconds,
            ingress_seconds: run.ingress_seconds,
            messages_per_second: rate,
            messages_per_hour: rate * 3600.0,
            time_to_first_delivery_s: first_last.map(|(f, _)| since_start(f)),
            time_to_last_delivery_s: first_last.map(|(_, l)| since_start(l)),
            delivery_latency_s: timeline_percentiles(run, stats.messages),
            submit_latency_s: (!run.submit_latencies.is_empty())
                .then(|| percentiles(&run.submit_latencies)),
            engine_cpu_seconds: run.engine_cpu_seconds,
            cpu_seconds_per_1000_messages: run
                .engine_cpu_seconds
                .map(|cpu| cpu * 1000.0 / stats.messages.max(1) as f64),
            engine_peak_rss_bytes: run.engine_peak_rss,
            signing_ratio_bound: signs_per_second
                .zip(cpu_per_message.as_ref())
                .map(|(signs, cpu)| signing_ms(signs, cores) / cpu.total_ms),
            cpu_per_message,
            outcomes: run.counters,
            sink: stats.into(),
            kills: run.kills,
            verify: verdict,
            baseline,
            ratio_to_smtp_source: baseline
                .and_then(|b| b.smtp_source_per_second)
                .map(|ceiling| rate / ceiling),
            ratio_to_signing_ceiling: signs_per_second.map(|ceiling| rate / ceiling),
        }
    }

    /// The summary for people.
    pub fn print(&self) {
        println!();
        println!("scenario   {} — {}", self.scenario, self.description);
        println!(
            "setup      {} recipients, {} domains, {}, {} ingress, DKIM {}, {} cores, load {} → {}",
            self.recipients,
            self.domains,
            self.backend,
            self.ingress,
            if self.dkim { "RSA-2048" } else { "off" },
            self.cores,
            self.load_average_start,
            self.load_average_end
        );
        println!(
            "throughput {:.0} msg/s = {:.2} M msg/h over {:.1} s (ingress {:.1} s)",
            self.messages_per_second,
            self.messages_per_hour / 1e6,
            self.seconds,
            self.ingress_seconds
        );
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2} s"));
        println!(
            "delivery   first {}  last {}  p50 {:.1} s  p90 {:.1} s  p99 {:.1} s",
            opt(self.time_to_first_delivery_s),
            opt(self.time_to_last_delivery_s),
            self.delivery_latency_s.p50,
            self.delivery_latency_s.p90,
            self.delivery_latency_s.p99
        );
        if let Some(s) = &self.submit_latency_s {
            println!(
                "submit     request p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms",
                s.p50 * 1e3,
                s.p90 * 1e3,
                s.p99 * 1e3
            );
        }
        match (
            self.engine_cpu_seconds,
            self.cpu_seconds_per_1000_messages,
            self.engine_peak_rss_bytes,
        ) {
            (Some(cpu), Some(per_1000), Some(rss)) => println!(
                "engine     {cpu:.1} CPU s = {per_1000:.3} CPU s per 1,000 messages, peak RSS \
                 {:.0} MB, {} SIGKILLs",
                rss as f64 / 1e6,
                self.kills
            ),
            _ => println!(
                "engine     running at {}: its process is not measured, its own settings apply",
                self.engine_url.unwrap_or("?")
            ),
        }
        if let Some(c) = &self.cpu_per_message {
            let postgres = c
                .postgres_ms
                .map_or(String::new(), |ms| format!(", PostgreSQL {ms:.3} ms"));
            println!(
                "cpu        per message: engine {:.3} ms, harness and sink {:.3} ms{postgres} = \
                 {:.3} ms; cores {:.0}% busy",
                c.engine_ms,
                c.harness_and_sink_ms,
                c.total_ms,
                c.cores_busy * 100.0
            );
        }
        let o = &self.outcomes;
        println!(
            "outcomes   delivered {}  bounced {}  failed {}  suppressed {}  (sink: {} connections, {} 4xx, {} 5xx)",
            o.delivered,
            o.bounced,
            o.failed,
            o.suppressed,
            self.sink.connections,
            self.sink.replies_transient,
            self.sink.replies_permanent
        );
        self.print_verdict();
        self.print_baseline();
    }

    fn print_verdict(&self) {
        let v = self.verify;
        println!(
            "verify     {} — missing {}, duplicates {} (bound {}), personalization {}/{} wrong, DKIM {}/{} failed",
            if v.passed() { "PASSED" } else { "FAILED" },
            v.missing,
            v.duplicate_messages,
            v.duplicate_bound,
            v.personalization_wrong,
            v.personalization_checked,
            v.dkim_failed,
            v.dkim_checked
        );
        for address in &v.missing_examples {
            println!("  missing    {address}");
        }
        for (address, n) in &v.duplicate_examples {
            println!("  duplicate  {address} ×{n}");
        }
        for why in &v.personalization_examples {
            println!("  content    {why}");
        }
        if let Some(why) = &v.store_mismatch {
            println!("  store      {why}");
        }
        let f = &v.finality;
        println!(
            "final      {} — {} pending, {} deferred at the end",
            if f.passed() { "passed" } else { "FAILED" },
            f.not_final.pending,
            f.not_final.deferred
        );
        for why in f
            .gave_up
            .iter()
            .chain(&f.error)
            .chain(&f.not_final.examples)
        {
            println!("  not final  {why}");
        }
        for findings in v.retries.iter().chain(&v.retries_at_sink) {
            findings.print();
        }
        if let Some(fairness) = &v.fairness {
            fairness.print();
        }
    }

    fn print_baseline(&self) {
        let Some(b) = self.baseline else { return };
        if let Some(rate) = b.smtp_source_per_second {
            println!(
                "baseline   smtp-source {rate:.0} msg/s ({} connections); Broadside {:.0}% of it",
                b.smtp_source_connections,
                self.ratio_to_smtp_source.unwrap_or(0.0) * 100.0
            );
        }
        if let Some(signs) = b.rsa2048_signs_per_second {
            let ratio = self
                .ratio_to_signing_ceiling
                .map_or("-".to_owned(), |r| format!("{:.0}%", r * 100.0));
            println!(
                "baseline   openssl rsa2048 {signs:.0} signs/s on all cores; Broadside {ratio} of it"
            );
            if let (Some(bound), Some(cpu)) = (self.signing_ratio_bound, &self.cpu_per_message) {
                println!(
                    "           one signature is {:.3} ms of a core, {:.0}% of the {:.3} ms of CPU \
                     this run spent per message: the most it allows with every core busy",
                    signing_ms(signs, self.cores),
                    bound * 100.0,
                    cpu.total_ms
                );
            }
        }
    }
}

/// Milliseconds of one core per RSA-2048 signature, from the all-core rate.
fn signing_ms(signs_per_second: f64, cores: usize) -> f64 {
    cores as f64 * 1000.0 / signs_per_second.max(1e-9)
}

/// Percentiles of the time at which each message reached the sink, read off
/// the timeline.
fn timeline_percentiles(run: &Run, total: u64) -> Percentiles {
    let at = |share: f64| {
        let wanted = (total as f64 * share).ceil() as u64;
        run.timeline
            .iter()
            .find(|s| s.delivered_at_sink >= wanted)
            .map_or(run.seconds, |s| s.t)
    };
    Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn percentiles(latencies: &[Duration]) -> Percentiles {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at = |p: f64| {
        let i = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
        sorted.get(i).map_or(0.0, Duration::as_secs_f64)
    };
    Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: at(1.0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_signature_costs_the_cores_over_the_all_core_rate() {
        // 8,000 signs/s on two cores: each takes 0.25 ms of one core.
        assert!((super::signing_ms(8_000.0, 2) - 0.25).abs() < 1e-12);
        assert!((super::signing_ms(1_000.0, 1) - 1.0).abs() < 1e-12);
    }
}
