//! Load scenarios (`load-tests/scenarios/*.toml`): how many recipients over
//! which domains, the template, DKIM, the ingress path, the sink's fault
//! profile, the engine's limits and what to verify. Parsed once, checked, and
//! then read by `broadside-load`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, ensure};
use serde::Deserialize;

use crate::engine_proc::Backend;
use crate::sink::SinkConfig;

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name; names the report files.
    pub name: String,
    /// One line for the report header.
    #[serde(default)]
    pub description: String,
    /// Recipients generated and sent to.
    pub recipients: u64,
    /// Where the engine keeps its data.
    #[serde(default = "default_backend")]
    pub backend: Backend,
    /// Recipient domains and their shares.
    pub domains: Domains,
    /// Campaign definition (TOML, as for `broadside campaign create`),
    /// relative to the scenario file.
    pub template: PathBuf,
    /// Sign with a fresh RSA-2048 key for the template's From domain.
    #[serde(default)]
    pub dkim: bool,
    /// How recipients reach the engine.
    #[serde(default)]
    pub ingress: Ingress,
    /// Batch submit settings (with `ingress = "submit"`).
    #[serde(default)]
    pub submit: Submit,
    /// Engine settings.
    #[serde(default)]
    pub engine: EngineSettings,
    /// The sink's settings and fault profile (see sink-faults.example.toml).
    #[serde(default = "default_sink")]
    pub sink: SinkConfig,
    /// What is checked after the run.
    #[serde(default)]
    pub verify: Verify,
    /// Kill the engine with SIGKILL during the run, then restart it.
    #[serde(default)]
    pub crash: Option<Crash>,
    /// Give up when not every recipient is final after this many seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_backend() -> Backend {
    Backend::Sqlite
}

fn default_timeout() -> u64 {
    3600
}

/// Plain SMTP: the engine's STARTTLS path is not what load runs measure.
fn default_sink() -> SinkConfig {
    SinkConfig {
        starttls: false,
        ..SinkConfig::default()
    }
}

/// The recipient domains: `count` generated ones (`d0.example` …) whose
/// weights follow Zipf's law with exponent `zipf` (0 is an even spread), or an
/// explicit `list`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domains {
    #[serde(default)]
    pub count: usize,
    #[serde(default)]
    pub zipf: f64,
    #[serde(default)]
    pub list: Vec<WeightedDomain>,
}

/// One domain with its share of the recipients (weights need not add to 1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedDomain {
    pub name: String,
    pub weight: f64,
}

/// How recipients reach the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ingress {
    /// A generated CSV file through `broadside import`, then `campaign launch`.
    #[default]
    Import,
    /// Escher-signed `POST /v1/messages` batches to the running server.
    Submit,
}

/// Batch submit settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Submit {
    /// Recipients per request.
    pub batch: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl Default for Submit {
    fn default() -> Self {
        Self {
            batch: 500,
            concurrency: 4,
        }
    }
}

/// Engine settings the scenario fixes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// `send.max_connections_per_domain`.
    pub max_connections_per_domain: u32,
    /// `send.max_in_flight` (also the per-kill duplicate bound of `crash`).
    pub max_in_flight: u32,
    /// Any other `BROADSIDE_*` variables, e.g. a short retry delay.
    pub env: BTreeMap<String, String>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_connections_per_domain: 10,
            max_in_flight: 2000,
            env: BTreeMap::new(),
        }
    }
}

/// What is checked at the sink after the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Verify {
    /// Messages kept whole at the sink for the content checks (the first ones
    /// accepted); the exactly-once check covers every recipient regardless.
    pub sample: usize,
    /// Columns whose values must appear in each sampled message.
    pub personalization: Vec<String>,
    /// Check that retries follow the engine's retry policy; absent: not checked.
    pub retries: Option<RetryCheck>,
    /// Check that no recipient domain was starved; absent: not checked.
    pub fairness: Option<FairnessCheck>,
}

impl Default for Verify {
    fn default() -> Self {
        Self {
            sample: 1000,
            personalization: vec!["first_name".into(), "city".into(), "customer_id".into()],
            retries: None,
            fairness: None,
        }
    }
}

/// How far an attempt after a deferral may stray from the retry policy. The
/// policy puts attempt k+1 at `base(k) × (1 ± jitter)` after attempt k; an
/// attempt is early before `base(k) × (1 − jitter) − early_margin_ms`, late
/// after `base(k) × (1 + jitter) + 2 × send.poll_interval + late_slack_secs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryCheck {
    /// Stored times have millisecond resolution and the engine rounds the
    /// delay down to a millisecond: a few ms of earliness is measurement.
    pub early_margin_ms: u64,
    /// What a retry may wait beyond two dispatcher polls: its turn in the
    /// domain queue, rendering and the SMTP round trips.
    pub late_slack_secs: f64,
}

impl Default for RetryCheck {
    fn default() -> Self {
        Self {
            early_margin_ms: 50,
            late_slack_secs: 5.0,
        }
    }
}

/// When a recipient domain counts as starved. Times are at the sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FairnessCheck {
    /// Every domain's first message arrives within this many seconds of the
    /// run's first message.
    pub first_delivery_within_secs: f64,
    /// When half of all expected messages had arrived, each domain has at
    /// least this share of its fair half: `(its arrivals / its expected) /
    /// 0.5`. 1.0 is perfectly even progress.
    pub min_rate_ratio: f64,
    /// Domains expecting fewer messages skip the rate check (too few to
    /// measure a rate); the first-delivery check still applies.
    pub min_messages: u64,
    /// No domain reaches 90 % of its expected messages more than this many
    /// seconds after the whole run reached 90 %.
    pub completion_lag_secs: f64,
}

impl Default for FairnessCheck {
    fn default() -> Self {
        Self {
            first_delivery_within_secs: 10.0,
            min_rate_ratio: 0.5,
            min_messages: 100,
            completion_lag_secs: 20.0,
        }
    }
}

/// The crash schedule: `kills` SIGKILLs at moments drawn from `seed`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crash {
    pub kills: u32,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_seed() -> u64 {
    0x5eed
}

impl Scenario {
    /// Reads, parses and checks a scenario file; the template path (relative
    /// to the file's folder) is made absolute and must exist.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut scenario: Scenario =
            toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        // Absolute: the engine's CLI runs in its own working directory.
        let base = path.parent().unwrap_or(Path::new("."));
        let template = base.join(&scenario.template);
        scenario.template = template
            .canonicalize()
            .with_context(|| format!("template {}", template.display()))?;
        scenario
            .check()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(scenario)
    }

    fn check(&self) -> anyhow::Result<()> {
        ensure!(self.recipients > 0, "recipients must be at least 1");
        ensure!(
            (self.domains.count > 0) == self.domains.list.is_empty(),
            "domains: give either `count` or `list`"
        );
        ensure!(
            self.domains.zipf >= 0.0 && self.domains.zipf.is_finite(),
            "domains.zipf must be 0 or more"
        );
        ensure!(
            self.domains.list.iter().all(|d| d.weight > 0.0),
            "every domain weight must be above 0"
        );
        ensure!(
            self.submit.batch > 0 && self.submit.concurrency > 0,
            "submit.batch and submit.concurrency must be at least 1"
        );
        if let Some(r) = &self.verify.retries {
            ensure!(
                r.late_slack_secs >= 0.0 && r.late_slack_secs.is_finite(),
                "verify.retries.late_slack_secs must be 0 or more"
            );
        }
        if let Some(f) = &self.verify.fairness {
            let bounds = [f.first_delivery_within_secs, f.completion_lag_secs];
            ensure!(
                bounds.iter().all(|b| *b >= 0.0 && b.is_finite()),
                "verify.fairness: the second bounds must be 0 or more"
            );
            ensure!(
                (0.0..=1.0).contains(&f.min_rate_ratio),
                "verify.fairness.min_rate_ratio must be in [0, 1]"
            );
        }
        ensure!(
            self.crash.is_none() || self.ingress == Ingress::Import,
            "crash runs need ingress = \"import\" (a killed server loses requests in flight)"
        );
        Ok(())
    }

    /// The domain picker this scenario describes.
    pub fn domain_picker(&self) -> DomainPicker {
        let list: Vec<WeightedDomain> = if self.domains.list.is_empty() {
            (0..self.domains.count)
                .map(|k| WeightedDomain {
                    name: format!("d{k}.example"),
                    weight: 1.0 / ((k + 1) as f64).powf(self.domains.zipf),
                })
                .collect()
        } else {
            self.domains.list.clone()
        };
        DomainPicker::new(list)
    }
}

/// Assigns recipient `i` to a domain by weight, the same way every time, so
/// the checker regenerates each address without storing any.
#[derive(Debug, Clone)]
pub struct DomainPicker {
    names: Vec<String>,
    /// Cumulative weights scaled to 1.
    cumulative: Vec<f64>,
}

impl DomainPicker {
    fn new(list: Vec<WeightedDomain>) -> Self {
        let total: f64 = list.iter().map(|d| d.weight).sum();
        let mut sum = 0.0;
        let cumulative = list
            .iter()
            .map(|d| {
                sum += d.weight / total;
                sum
            })
            .collect();
        Self {
            names: list.into_iter().map(|d| d.name).collect(),
            cumulative,
        }
    }

    /// The domain of recipient `i`: a multiplicative hash of `i` spread over
    /// [0, 1) and looked up in the cumulative weights.
    pub fn domain(&self, i: u64) -> &str {
        let point = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
        let at = self.cumulative.partition_point(|c| *c <= point);
        &self.names[at.min(self.names.len() - 1)]
    }

    /// Recipient `i`'s address.
    pub fn address(&self, i: u64) -> String {
        crate::csv_gen::address_at(i, self.domain(i))
    }

    /// The domains, in weight order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How many domains there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none (never, for a checked scenario).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> anyhow::Result<Scenario> {
        let s: Scenario = toml::from_str(text)?;
        s.check()?;
        Ok(s)
    }

    #[test]
    fn every_shipped_scenario_parses_and_passes_its_checks() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("scenarios folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::from_file(&path).unwrap_or_else(|e| panic!("{e:#}"));
                assert!(s.template.exists(), "{}", s.template.display());
                seen += 1;
            }
        }
        assert!(seen >= 5, "only {seen} scenarios");
    }

    #[test]
    fn zipf_weights_give_the_first_domain_the_biggest_share() {
        let s = scenario("name='t'\nrecipients=1\ntemplate='x'\n[domains]\ncount=10\nzipf=1.0\n")
            .expect("valid");
        let picker = s.domain_picker();
        let mut counts = [0u32; 10];
        for i in 1..=100_000 {
            let d = picker.domain(i);
            counts[d[1..d.len() - 8].parse::<usize>().expect("dN")] += 1;
        }
        // Zipf(1) over 10: the first has 1/H(10) ≈ 34%, the last ≈ 3.4%.
        assert!((32_000..36_000).contains(&counts[0]), "{counts:?}");
        assert!((2_800..4_000).contains(&counts[9]), "{counts:?}");
    }

    #[test]
    fn contradictory_or_empty_settings_are_refused() {
        let base = "name='t'\ntemplate='x'\n";
        assert!(scenario(&format!("{base}recipients=0\n[domains]\ncount=1\n")).is_err());
        assert!(
            scenario(&format!(
                "{base}recipients=1\n[domains]\ncount=1\nlist=[{{name='a',weight=1.0}}]\n"
            ))
            .is_err()
        );
        assert!(
            scenario(&format!(
                "{base}recipients=1\ningress='submit'\n[domains]\ncount=1\n[crash]\nkills=1\n"
            ))
            .is_err()
        );
        assert!(
            scenario(&format!(
                "{base}recipients=1\nbogus=1\n[domains]\ncount=1\n"
            ))
            .is_err()
        );
    }
}
