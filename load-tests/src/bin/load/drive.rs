//! Runs a scenario: sink, engine (started here, or one already running),
//! ingress, then a monitor that samples the sink, the engine's counters and
//! /proc until every recipient is final or the scenario's time is up (killing
//! and restarting an engine started here on the crash schedule), with a
//! progress bar.

use std::net::SocketAddr;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use broadside_load_tests::dkim_check::DkimFixture;
use broadside_load_tests::engine_proc::{self, Backend, Engine, ProcSample};
use broadside_load_tests::scenario::{Crash, Scenario};
use broadside_load_tests::sink::{self, SinkHandle, SinkStats};
use broadside_load_tests::submit_client::SubmitClient;
use engine::config::Config;
use engine::model::TenantName;
use engine::store::pg::PgStore;
use engine::store::sqlite::SqliteStore;
use engine::store::{CampaignCounters, Store};
use indicatif::{ProgressBar, ProgressStyle};

use crate::Args;
use crate::ingress::{self, Ingress};
use crate::probe::{BatchLog, Probe};

/// The tenant every scenario runs as.
pub const TENANT: &str = "load";
/// How often the monitor samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// One monitor sample; `t` is seconds since the start of ingress.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Sample {
    pub t: f64,
    /// Messages the sink accepted so far.
    pub delivered_at_sink: u64,
    /// Recipients with a final state in the store.
    pub final_in_store: u64,
    /// Pending plus deferred recipients: the engine's queue.
    pub queued: u64,
    pub deferred: u64,
    /// The engine's resident memory, bytes.
    pub rss: u64,
}

/// Everything a run produced, for the checks and the report.
pub struct Run {
    pub sink: SinkHandle,
    pub dkim: Option<DkimFixture>,
    /// Wall-clock start of ingress (launch or first submit).
    pub started_at: SystemTime,
    /// From the start of ingress until every recipient was final (or the
    /// monitor gave up).
    pub seconds: f64,
    /// How long the ingress itself took (0 for a launch).
    pub ingress_seconds: f64,
    pub timeline: Vec<Sample>,
    /// Counters summed over the run's campaigns at the end.
    pub counters: CampaignCounters,
    /// CPU seconds of every engine process of the run, summed; `None` for a
    /// running engine (`--engine-url`), whose process is not ours to watch.
    pub engine_cpu_seconds: Option<f64>,
    /// The highest `VmHWM` of any engine process of the run.
    pub engine_peak_rss: Option<u64>,
    /// CPU seconds of this process over the same span: the sink, the
    /// monitor's store reads and, for a submit ingress, the API client.
    pub harness_cpu_seconds: f64,
    /// CPU seconds of PostgreSQL's processes over the same span, when the
    /// engine started here stores there.
    pub postgres_cpu_seconds: Option<f64>,
    /// SIGKILLs done.
    pub kills: u32,
    /// Recipients the ingress handed over (all of them for an import).
    pub expected: u64,
    /// Submit request latencies (submit ingress only).
    pub submit_latencies: Vec<Duration>,
    pub load_average_start: String,
    pub load_average_end: String,
    /// The sink's counters when the last recipient was final, before a
    /// baseline sends its own messages to the same sink.
    pub sink_stats: SinkStats,
    /// When the sink accepted the run's first and latest message.
    pub first_and_last: Option<(SystemTime, SystemTime)>,
    /// Why the monitor stopped waiting before every recipient was final.
    pub gave_up: Option<String>,
    /// The engine's configuration as far as the checks need it (retry
    /// policy, poll interval): its own for an engine started here.
    pub config: Config,
    /// Reads the engine's view for the checks (store or API).
    pub probe: Arc<Probe>,
    /// The engine started here, kept (with its data) until the checks ran;
    /// last, so that the probe's store closes before the data goes.
    pub _engine: Option<Engine>,
}

/// CPU seconds of the processes that share the machine with the engine.
struct OtherCpu {
    harness: f64,
    postgres: f64,
}

impl OtherCpu {
    fn now() -> Self {
        Self {
            harness: engine_proc::sample(std::process::id()).map_or(0.0, |s| s.cpu_seconds),
            postgres: engine_proc::postgres_cpu_seconds(),
        }
    }

    fn since(&self, start: &Self) -> Self {
        Self {
            harness: self.harness - start.harness,
            postgres: (self.postgres - start.postgres).max(0.0),
        }
    }
}

/// How the run reaches the engine.
struct Target {
    /// The engine started here; `None` with `--engine-url`.
    engine: Option<Engine>,
    dkim: Option<DkimFixture>,
    /// The signed API client, for a submit ingress or a running engine.
    api: Option<Arc<SubmitClient>>,
    config: Config,
}

/// Starts everything, drives the scenario to the end and stops an engine
/// started here.
pub async fn run(scenario: &Scenario, args: &Args) -> anyhow::Result<Run> {
    let load_average_start = engine_proc::load_average();
    let mut sink_config = scenario.sink.clone();
    sink_config.keep_bytes = scenario.verify.sample > 0;
    sink_config.record_limit = scenario.verify.sample;
    if let Some(listen) = args.sink_listen {
        sink_config.bind = listen;
    }
    let sink = sink::start(sink_config).await?;
    let definition = ingress::definition(&scenario.template)?;
    let target = match &args.engine_url {
        None => start_engine(scenario, args, &sink, &definition)?,
        Some(url) => running_engine(scenario, url, args)?,
    };
    let ingress = Ingress::prepare(scenario, target.engine.as_ref(), &definition)?;
    let batches = Arc::new(BatchLog::default());
    let probe = Arc::new(match (&target.engine, &target.api) {
        (Some(engine), _) => store_probe(scenario.backend, engine).await?,
        (None, Some(client)) => Probe::Api {
            client: Arc::clone(client),
            batches: Arc::clone(&batches),
            done: Default::default(),
        },
        (None, None) => bail!("a running engine is reached through its API; no client"),
    });
    let engine = target.engine.as_ref();
    let mut monitor = Monitor::new(scenario, engine, Arc::clone(&probe), &sink, args.quiet)?;
    let cpu_at_start = OtherCpu::now();
    let started = Instant::now();
    let started_at = SystemTime::now();
    let submitted = ingress.start(engine, target.api.clone(), batches)?;
    let (expected, submit_latencies, ingress_seconds) = match submitted {
        ingress::Started::Launched => (scenario.recipients, Vec::new(), 0.0),
        ingress::Started::Submitting(task) => {
            let (accepted, latencies) = monitor.while_submitting(task, started).await?;
            (accepted, latencies, started.elapsed().as_secs_f64())
        }
    };
    let gave_up = monitor.until_final(expected, started, engine).await?;
    let seconds = started.elapsed().as_secs_f64();
    let counters = probe.counters().await?;
    let other_cpu = OtherCpu::now().since(&cpu_at_start);
    let (cpu, peak) = monitor.finish();
    Ok(Run {
        sink_stats: sink.recorder.stats(),
        first_and_last: sink.recorder.first_and_last(),
        sink,
        dkim: target.dkim,
        started_at,
        seconds,
        ingress_seconds,
        timeline: std::mem::take(&mut monitor.timeline),
        counters,
        engine_cpu_seconds: cpu,
        engine_peak_rss: peak,
        harness_cpu_seconds: other_cpu.harness,
        postgres_cpu_seconds: (engine.is_some() && scenario.backend == Backend::Postgres)
            .then_some(other_cpu.postgres),
        kills: monitor.kills,
        expected,
        submit_latencies,
        load_average_start,
        load_average_end: engine_proc::load_average(),
        gave_up,
        config: target.config,
        probe,
        _engine: target.engine,
    })
}

/// `broadside serve`'s environment for the scenario (not started yet), the
/// tenant, a DKIM key if asked for, and an API key for a submit ingress.
fn start_engine(
    scenario: &Scenario,
    args: &Args,
    sink: &SinkHandle,
    definition: &serde_json::Value,
) -> anyhow::Result<Target> {
    let bin = match &args.broadside {
        Some(path) => path.clone(),
        None => engine_proc::default_bin()?,
    };
    let mut engine = Engine::new(
        &bin,
        scenario.backend,
        &args.database_url,
        sink,
        scenario.sink.starttls,
    )?;
    engine.set(
        "BROADSIDE_SEND__MAX_CONNECTIONS_PER_DOMAIN",
        scenario.engine.max_connections_per_domain.to_string(),
    );
    engine.set(
        "BROADSIDE_SEND__MAX_IN_FLIGHT",
        scenario.engine.max_in_flight.to_string(),
    );
    for (key, value) in &scenario.engine.env {
        engine.set(key, value.clone());
    }
    let dkim = if scenario.dkim {
        let domain = ingress::from_domain(definition)?;
        let fixture = DkimFixture::rsa2048(engine.dir.path(), &domain, "load")?;
        engine.set("BROADSIDE_SEND__DKIM", fixture.config_value());
        Some(fixture)
    } else {
        None
    };
    engine.run(&["tenant", "create", TENANT])?;
    let api = match scenario.ingress {
        broadside_load_tests::scenario::Ingress::Submit => {
            let (key_id, secret) = engine.create_key(TENANT)?;
            let base = format!("http://127.0.0.1:{}", engine.api_port);
            let client = SubmitClient::new(&base, &key_id, &secret, scenario.submit.concurrency)?;
            Some(Arc::new(client))
        }
        broadside_load_tests::scenario::Ingress::Import => None,
    };
    let config = engine.config()?;
    Ok(Target {
        engine: Some(engine),
        dkim,
        api,
        config,
    })
}

/// An engine someone else started: its API at `url` with the given key. Its
/// configuration is read from `--engine-config` (if given) with the
/// scenario's `[engine.env]` on top, which is what it must run with for the
/// retry check to mean anything.
fn running_engine(scenario: &Scenario, url: &str, args: &Args) -> anyhow::Result<Target> {
    let (Some(key_id), Some(secret)) = (&args.key_id, &args.secret) else {
        bail!("--engine-url needs --key-id and --secret (or BROADSIDE_LOAD_KEY_ID/_SECRET)");
    };
    let client = SubmitClient::new(url, key_id, secret, scenario.submit.concurrency)?;
    if let Some(sink) = args.sink_listen {
        println!(
            "driving the engine at {url}; its routes must send the scenario's domains here, e.g. \
             BROADSIDE_SEND__ROUTES=\"{}\"",
            routes_to(&scenario.domain_picker(), sink)
        );
    }
    let config = Config::load_from(args.engine_config.as_deref(), scenario.engine.env.clone())
        .context("the running engine's configuration (--engine-config and [engine.env])")?;
    Ok(Target {
        engine: None,
        dkim: None,
        api: Some(Arc::new(client)),
        config,
    })
}

/// A `send.routes` value sending every domain of the scenario to `sink`
/// (the first ten and the last, for long lists).
fn routes_to(picker: &broadside_load_tests::scenario::DomainPicker, sink: SocketAddr) -> String {
    let names = picker.names();
    let mut routes: Vec<String> = names
        .iter()
        .take(10)
        .map(|d| format!("{d}={sink}"))
        .collect();
    if names.len() > 11 {
        routes.push("…".to_owned());
    }
    if let Some(last) = names.last().filter(|_| names.len() > 10) {
        routes.push(format!("{last}={sink}"));
    }
    routes.join(",")
}

/// The store the engine writes, opened read-mostly for counters and events.
async fn store_probe(backend: Backend, engine: &Engine) -> anyhow::Result<Probe> {
    let store: Arc<dyn Store> = match (backend, &engine.db) {
        (Backend::Postgres, Some(db)) => {
            Arc::new(PgStore::connect(&db.url, 2, Duration::from_secs(10)).await?)
        }
        _ => Arc::new(SqliteStore::open(
            &engine.data_dir(),
            Duration::from_secs(10),
        )?),
    };
    let tenant = store
        .tenant(&TenantName::parse(TENANT)?)
        .await?
        .context("the load tenant")?;
    Ok(Probe::Store {
        store,
        tenant: tenant.id,
    })
}

/// Samples the run and owns the engine process, if it started one.
pub struct Monitor {
    /// `broadside serve`, when started here.
    serve: Option<Child>,
    probe: Arc<Probe>,
    timeline: Vec<Sample>,
    bar: ProgressBar,
    /// Sink message counts at which to SIGKILL the engine, ascending.
    kill_at: Vec<u64>,
    kills: u32,
    /// CPU seconds of engine processes already gone.
    cpu_before: f64,
    peak_rss: u64,
    last: ProcSample,
    timeout: Duration,
    recorder: Arc<sink::Recorder>,
}

impl Monitor {
    /// Starts `serve` for an engine set up here; watches a running one.
    fn new(
        scenario: &Scenario,
        engine: Option<&Engine>,
        probe: Arc<Probe>,
        sink: &SinkHandle,
        quiet: bool,
    ) -> anyhow::Result<Self> {
        let serve = engine.map(Engine::serve).transpose()?;
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(scenario.recipients)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} final  {per_sec}  {msg}",
            )?
            .progress_chars("=> "),
        );
        Ok(Self {
            serve,
            probe,
            timeline: Vec::new(),
            bar,
            kill_at: scenario
                .crash
                .as_ref()
                .map(|c| kill_points(c, scenario.recipients))
                .unwrap_or_default(),
            kills: 0,
            cpu_before: 0.0,
            peak_rss: 0,
            last: ProcSample::default(),
            timeout: Duration::from_secs(scenario.timeout_secs),
            recorder: Arc::clone(&sink.recorder),
        })
    }

    /// Reads the engine process's CPU and memory, if it is ours.
    fn sample_process(&mut self) {
        if let Some(serve) = &self.serve
            && let Ok(s) = engine_proc::sample(serve.id())
        {
            self.last = s;
            self.peak_rss = self.peak_rss.max(s.peak_rss);
        }
    }

    /// One sample; returns the counters it read.
    async fn sample(&mut self, started: Instant) -> anyhow::Result<CampaignCounters> {
        if let Some(serve) = &mut self.serve
            && let Some(status) = serve.try_wait()?
        {
            bail!("broadside serve exited on its own: {status}");
        }
        self.sample_process();
        let c = self.probe.counters().await?;
        let final_in_store = (c.delivered + c.bounced + c.failed + c.suppressed) as u64;
        self.timeline.push(Sample {
            t: started.elapsed().as_secs_f64(),
            delivered_at_sink: self.recorder.total_messages(),
            final_in_store,
            queued: (c.pending + c.deferred) as u64,
            deferred: c.deferred as u64,
            rss: self.last.rss,
        });
        self.bar.set_position(final_in_store);
        let rss = match self.serve {
            Some(_) => format!("  RSS {} MB", self.last.rss / 1_000_000),
            None => String::new(),
        };
        self.bar
            .set_message(format!("queued {}{rss}", c.pending + c.deferred));
        Ok(c)
    }

    /// Samples while the submit task runs; returns what it accepted.
    async fn while_submitting(
        &mut self,
        mut task: tokio::task::JoinHandle<anyhow::Result<ingress::Submitted>>,
        started: Instant,
    ) -> anyhow::Result<(u64, Vec<Duration>)> {
        loop {
            tokio::select! {
                done = &mut task => {
                    let submitted = done.context("the submit task panicked")??;
                    self.bar.set_length(submitted.accepted);
                    return Ok((submitted.accepted, submitted.latencies));
                }
                () = tokio::time::sleep(SAMPLE_EVERY) => {
                    self.sample(started).await?;
                }
            }
        }
    }

    /// Samples until no recipient is pending or deferred and `expected` are
    /// final, killing the engine at the crash points on the way. Past the
    /// scenario's time it stops waiting and says why, for the checks to
    /// report: a run that does not finish is a failed run, not a crash of
    /// the harness.
    async fn until_final(
        &mut self,
        expected: u64,
        started: Instant,
        engine: Option<&Engine>,
    ) -> anyhow::Result<Option<String>> {
        loop {
            tokio::time::sleep(SAMPLE_EVERY).await;
            let c = self.sample(started).await?;
            let done = (c.delivered + c.bounced + c.failed + c.suppressed) as u64;
            if c.pending == 0 && c.deferred == 0 && done >= expected {
                self.bar.finish();
                return Ok(None);
            }
            if started.elapsed() > self.timeout {
                self.bar.abandon();
                return Ok(Some(format!(
                    "not every recipient is final after {} s: {c:?}",
                    self.timeout.as_secs()
                )));
            }
            if let Some(engine) = engine
                && self
                    .kill_at
                    .first()
                    .is_some_and(|at| self.recorder.total_messages() >= *at)
            {
                self.kill_at.remove(0);
                self.crash_and_restart(engine)?;
            }
        }
    }

    /// SIGKILL, then a new `serve` on the same store.
    fn crash_and_restart(&mut self, engine: &Engine) -> anyhow::Result<()> {
        // The last sample is at most one interval old: close enough for CPU.
        self.sample_process();
        self.cpu_before += self.last.cpu_seconds;
        let Some(serve) = &mut self.serve else {
            bail!("no engine process to kill");
        };
        engine_proc::crash(serve)?;
        self.kills += 1;
        // `suspend` prints with the bar hidden too (`--quiet`), unlike `println`.
        let at = self.recorder.total_messages();
        self.bar
            .suspend(|| println!("SIGKILL {} at {at} messages; restarting", self.kills));
        self.serve = Some(tokio::task::block_in_place(|| engine.serve())?);
        Ok(())
    }

    /// Stops an engine started here; returns its CPU seconds (all
    /// processes) and peak RSS, `None` for a running engine.
    fn finish(&mut self) -> (Option<f64>, Option<u64>) {
        self.sample_process();
        let Some(mut serve) = self.serve.take() else {
            return (None, None);
        };
        engine_proc::stop(&mut serve);
        (
            Some(self.cpu_before + self.last.cpu_seconds),
            Some(self.peak_rss),
        )
    }
}

impl Drop for Monitor {
    /// A run that fails half-way stops the engine it started rather than
    /// leaving it sending.
    fn drop(&mut self) {
        if let Some(mut serve) = self.serve.take() {
            engine_proc::stop(&mut serve);
        }
    }
}

/// Sink message counts for the kills: spread over 5 % to 90 % of the run, at
/// moments drawn from the seed (splitmix64), so a run can be repeated.
fn kill_points(crash: &Crash, recipients: u64) -> Vec<u64> {
    let mut state = crash.seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut points: Vec<u64> = (0..crash.kills)
        .map(|_| ((0.05 + 0.85 * next()) * recipients as f64) as u64)
        .collect();
    points.sort_unstable();
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_points_are_sorted_inside_the_run_and_repeatable() {
        let crash = Crash { kills: 5, seed: 7 };
        let points = kill_points(&crash, 10_000);
        assert_eq!(points.len(), 5);
        assert!(points.windows(2).all(|w| w[0] <= w[1]), "{points:?}");
        assert!(
            points.iter().all(|p| (500..=9_000).contains(p)),
            "{points:?}"
        );
        assert_eq!(points, kill_points(&crash, 10_000));
        assert_ne!(points, kill_points(&Crash { kills: 5, seed: 8 }, 10_000));
    }
}
