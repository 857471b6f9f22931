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
    pub outcomes: CampaignCounters,
    pub sink: SinkFigures,
    pub kills: u32,
    pub verify: &'a Verdict,
    pub baseline: Option<&'a Baseline>,
    /// Broadside's rate over the baselines' (1.0 = the ceiling).
    pub ratio_to_smtp_source: Option<f64>,
    pub ratio_to_signing_ceiling: Option<f64>,
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
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
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
            outcomes: run.counters,
            sink: stats.into(),
            kills: run.kills,
            verify: verdict,
            baseline,
            ratio_to_smtp_source: baseline
                .and_then(|b| b.smtp_source_per_second)
                .map(|ceiling| rate / ceiling),
            ratio_to_signing_ceiling: baseline
                .and_then(|b| b.rsa2048_signs_per_second)
                .filter(|_| scenario.dkim)
                .map(|ceiling| rate / ceiling),
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
        }
    }
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
