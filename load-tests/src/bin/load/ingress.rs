//! How recipients reach the engine: a generated CSV through `broadside import`
//! and `campaign launch` (an engine started here only), or Escher-signed
//! `POST /v1/messages` batches (any engine).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use broadside_load_tests::csv_gen::{self, COLUMNS};
use broadside_load_tests::engine_proc::Engine;
use broadside_load_tests::scenario::{self, DomainPicker, Scenario};
use broadside_load_tests::submit_client::{self, SubmitClient};
use tokio::task::JoinHandle;

use crate::drive::TENANT;
use crate::probe::BatchLog;

const CAMPAIGN: &str = "load";

/// The campaign definition as JSON (bodies read in), which is what both the
/// CLI's `--definition` file and the submit API's inline `template` mean.
pub fn definition(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    for (file_key, key) in [("html_file", "html"), ("text_file", "text")] {
        if let Some(file) = table.remove(file_key) {
            let name = file.as_str().context("a body file name is a string")?;
            let body = std::fs::read_to_string(base.join(name))
                .with_context(|| format!("reading {name} of {}", path.display()))?;
            table.insert(key.to_owned(), toml::Value::String(body));
        }
    }
    Ok(serde_json::to_value(table)?)
}

/// The domain of the definition's From address (the DKIM signing domain).
pub fn from_domain(definition: &serde_json::Value) -> anyhow::Result<String> {
    let address = definition["from"]["address"]
        .as_str()
        .context("the template has no from.address")?;
    Ok(address
        .rsplit_once('@')
        .context("from.address has no domain")?
        .1
        .to_ascii_lowercase())
}

/// What a submit ingress handed over.
pub struct Submitted {
    /// Recipients the API accepted.
    pub accepted: u64,
    pub latencies: Vec<Duration>,
}

/// How the scenario's ingress started.
pub enum Started {
    /// The campaign was launched; its recipients were imported before.
    Launched,
    /// Batches are being posted by this task.
    Submitting(JoinHandle<anyhow::Result<Submitted>>),
}

/// An ingress prepared before the clock starts.
pub enum Ingress {
    Import,
    Submit {
        template: serde_json::Value,
        picker: DomainPicker,
        recipients: u64,
        settings: scenario::Submit,
    },
}

impl Ingress {
    /// For an import: the CSV, the import and the campaign, all but the
    /// launch; it needs the engine started here (`engine`). For submit:
    /// nothing yet.
    pub fn prepare(
        scenario: &Scenario,
        engine: Option<&Engine>,
        definition: &serde_json::Value,
    ) -> anyhow::Result<Self> {
        let picker = scenario.domain_picker();
        match scenario.ingress {
            scenario::Ingress::Import => {
                let Some(engine) = engine else {
                    bail!("{IMPORT_NEEDS_CLI}");
                };
                let csv = engine.dir.path().join("recipients.csv");
                csv_gen::write_recipients_with(&csv, scenario.recipients, |i| picker.address(i))?;
                let csv = csv.to_str().context("temporary path is not UTF-8")?;
                let started = std::time::Instant::now();
                engine.run(&["import", "--tenant", TENANT, "--campaign", CAMPAIGN, csv])?;
                println!(
                    "imported {} recipients in {:.1} s",
                    scenario.recipients,
                    started.elapsed().as_secs_f64()
                );
                let file = scenario
                    .template
                    .to_str()
                    .context("template path is not UTF-8")?;
                let create = ["campaign", "create", "--tenant", TENANT, CAMPAIGN];
                engine.run(&[&create[..], &["--definition", file]].concat())?;
                Ok(Self::Import)
            }
            scenario::Ingress::Submit => Ok(Self::Submit {
                template: definition.clone(),
                picker,
                recipients: scenario.recipients,
                settings: scenario.submit.clone(),
            }),
        }
    }

    /// Starts the clock's work: the launch through the CLI of `engine`, or
    /// the submit workers through `api`, which log each batch in `batches`.
    pub fn start(
        self,
        engine: Option<&Engine>,
        api: Option<Arc<SubmitClient>>,
        batches: Arc<BatchLog>,
    ) -> anyhow::Result<Started> {
        match self {
            Self::Import => {
                let engine = engine.context(IMPORT_NEEDS_CLI)?;
                engine.run(&["campaign", "launch", "--tenant", TENANT, CAMPAIGN])?;
                Ok(Started::Launched)
            }
            Self::Submit {
                template,
                picker,
                recipients,
                settings,
            } => {
                let client = api.context("a submit ingress needs an API client")?;
                Ok(Started::Submitting(tokio::spawn(submit_all(
                    client,
                    Arc::new(template),
                    Arc::new(picker),
                    recipients,
                    settings,
                    batches,
                ))))
            }
        }
    }
}

/// Why an import scenario cannot drive a running engine.
pub const IMPORT_NEEDS_CLI: &str = "ingress = \"import\" runs `broadside import` and \
     `campaign launch` against the engine's own store, so it needs an engine started by \
     broadside-load; against a running engine (--engine-url) use a scenario with \
     ingress = \"submit\", e.g. load-tests/scenarios/running.toml";

/// Posts batches of `settings.batch` consecutive recipients from
/// `settings.concurrency` workers until all were sent.
async fn submit_all(
    client: Arc<SubmitClient>,
    template: Arc<serde_json::Value>,
    picker: Arc<DomainPicker>,
    recipients: u64,
    settings: scenario::Submit,
    batches: Arc<BatchLog>,
) -> anyhow::Result<Submitted> {
    let next = Arc::new(AtomicU64::new(1));
    let batch = settings.batch as u64;
    let mut workers = Vec::new();
    for _ in 0..settings.concurrency {
        let (client, template, picker, next, batches) = (
            Arc::clone(&client),
            Arc::clone(&template),
            Arc::clone(&picker),
            Arc::clone(&next),
            Arc::clone(&batches),
        );
        workers.push(tokio::spawn(async move {
            let mut done = Submitted {
                accepted: 0,
                latencies: Vec::new(),
            };
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first > recipients {
                    return Ok::<_, anyhow::Error>(done);
                }
                let last = (first + batch - 1).min(recipients);
                let body = batch_body(&template, &picker, first..=last)?;
                let answer = client.post(&body).await;
                done.latencies.push(answer.latency);
                match (answer.status, answer.body) {
                    (201, Some(body)) => {
                        let (id, accepted) = submit_client::batch_and_accepted(&body)
                            .with_context(|| format!("batch {first}..={last}: no id in the 201"))?;
                        batches.push(first, last, id);
                        done.accepted += accepted;
                    }
                    (401, _) => bail!(
                        "batch {first}..={last}: HTTP 401, the API refused the signature \
                         (check the key id and secret)"
                    ),
                    (status, _) => bail!("batch {first}..={last}: HTTP {status}"),
                }
            }
        }));
    }
    let mut all = Submitted {
        accepted: 0,
        latencies: Vec::new(),
    };
    for worker in workers {
        let done = worker.await.context("a submit worker panicked")??;
        all.accepted += done.accepted;
        all.latencies.extend(done.latencies);
    }
    Ok(all)
}

/// One batch: the template inline, each recipient with all generated columns.
fn batch_body(
    template: &serde_json::Value,
    picker: &DomainPicker,
    range: std::ops::RangeInclusive<u64>,
) -> anyhow::Result<Vec<u8>> {
    let recipients: Vec<serde_json::Value> = range
        .map(|i| {
            let data: serde_json::Map<String, serde_json::Value> = COLUMNS[1..]
                .iter()
                .zip(csv_gen::fields(i))
                .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v)))
                .collect();
            serde_json::json!({ "email": picker.address(i), "data": data })
        })
        .collect();
    Ok(serde_json::to_vec(&serde_json::json!({
        "template": template,
        "recipients": recipients,
    }))?)
}
