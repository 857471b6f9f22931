//! The engine's own view of the run, for the monitor and the checks: counters,
//! the recipients not final, and attempt histories. Read from its store when
//! the engine was started here, over its signed HTTP API when it runs
//! elsewhere (`--engine-url`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use broadside_load_tests::submit_client::SubmitClient;
use chrono::{DateTime, Utc};
use engine::model::{RecipientId, RecipientState, StateCode, TenantId};
use engine::store::{CampaignCounters, EventKind, Store};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::retries::{Attempt, History};

/// Recipients listed at most.
const LISTED: usize = 20;
/// Rows and events read per store call.
const PAGE: u32 = 5000;
/// Signed API reads in flight at once, so the checks do not flood a server
/// that others may be using.
const API_CONCURRENCY: usize = 8;

/// The batches a submit ingress created: which recipient numbers went into
/// which batch (a campaign on the engine's side).
#[derive(Debug, Default)]
pub struct BatchLog {
    /// (first, last, batch id); a short lock per push or read, never held
    /// across an await.
    batches: Mutex<Vec<(u64, u64, i64)>>,
}

impl BatchLog {
    pub fn push(&self, first: u64, last: u64, id: i64) {
        self.lock().push((first, last, id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, u64, i64)>> {
        // Poisoned only if a push panicked; the list is still whole.
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ids(&self) -> Vec<i64> {
        self.lock().iter().map(|b| b.2).collect()
    }

    /// The batch recipient `i` went into.
    fn batch_of(&self, i: u64) -> Option<i64> {
        let batches = self.lock();
        batches
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&i))
            .map(|b| b.2)
    }
}

/// Where the engine's view is read.
pub enum Probe {
    /// The store of the engine started here.
    Store {
        store: Arc<dyn Store>,
        tenant: TenantId,
    },
    /// The HTTP API of a running engine: the run's batches only.
    Api {
        client: Arc<SubmitClient>,
        batches: Arc<BatchLog>,
        /// Counters of batches already final: not asked again.
        done: Mutex<HashMap<i64, CampaignCounters>>,
    },
}

/// Recipients not in a final state at the end.
#[derive(Debug, Default, Serialize)]
pub struct NotFinal {
    /// Pending and deferred recipients by the counters.
    pub pending: u64,
    pub deferred: u64,
    /// Some of them: `address: state (attempts, last reply)`.
    pub examples: Vec<String>,
}

/// A recipient as `GET /v1/campaigns/{id}/recipients/{email}` shows it.
#[derive(Debug, Deserialize)]
struct ApiRecipient {
    state: RecipientState,
    attempts: i32,
    last_reply: Option<String>,
    events: Vec<ApiEvent>,
}

#[derive(Debug, Deserialize)]
struct ApiEvent {
    kind: StateCode,
    at: DateTime<Utc>,
}

impl Probe {
    /// Counters summed over the run's campaigns (one for an import, one per
    /// batch for submit).
    pub async fn counters(&self) -> anyhow::Result<CampaignCounters> {
        let mut sum = CampaignCounters::default();
        match self {
            Probe::Store { store, tenant } => {
                for campaign in store.campaigns(*tenant).await? {
                    add(&mut sum, &store.counters(*tenant, campaign.id).await?);
                }
            }
            Probe::Api {
                client,
                batches,
                done,
            } => {
                for id in batches.ids() {
                    let known = lock(done).get(&id).copied();
                    let c = match known {
                        Some(c) => c,
                        None => batch_counters(client, id, done).await?,
                    };
                    add(&mut sum, &c);
                }
            }
        }
        Ok(sum)
    }

    /// The recipients not final at the end, with up to [`LISTED`] examples.
    /// Through the API the examples are looked up among `suspects` (the
    /// addresses the sink is missing), as the API cannot list by state.
    pub async fn not_final(&self, suspects: &[String]) -> anyhow::Result<NotFinal> {
        let c = self.counters().await?;
        let mut found = NotFinal {
            pending: c.pending as u64,
            deferred: c.deferred as u64,
            examples: Vec::new(),
        };
        if found.pending + found.deferred == 0 {
            return Ok(found);
        }
        match self {
            Probe::Store { store, tenant } => {
                store_not_final(store.as_ref(), *tenant, &mut found.examples).await?;
            }
            Probe::Api { .. } => {
                for address in suspects.iter().take(LISTED) {
                    if let Some(r) = self.api_recipient(address).await?
                        && !r.state.code().is_final()
                    {
                        found.examples.push(describe(address, &r));
                    }
                }
            }
        }
        Ok(found)
    }

    /// Attempt histories of the recipients deferred at least once: every one
    /// from the store; through the API those among `deferred_at_sink` (the
    /// sink cannot name a recipient deferred before `RCPT TO`).
    pub async fn histories(&self, deferred_at_sink: &[String]) -> anyhow::Result<Vec<History>> {
        match self {
            Probe::Store { store, tenant } => store_histories(store.as_ref(), *tenant).await,
            Probe::Api { .. } => {
                let fetched: Vec<anyhow::Result<Option<(String, ApiRecipient)>>> =
                    futures_util::stream::iter(deferred_at_sink)
                        .map(|address| async move {
                            Ok(self
                                .api_recipient(address)
                                .await?
                                .map(|r| (address.clone(), r)))
                        })
                        .buffered(API_CONCURRENCY)
                        .collect()
                        .await;
                let mut histories = Vec::new();
                for item in fetched {
                    let Some((address, r)) = item? else { continue };
                    let attempts = r
                        .events
                        .iter()
                        .filter_map(|e| attempt(e.kind, e.at))
                        .collect();
                    histories.push(History { address, attempts });
                }
                Ok(histories)
            }
        }
    }

    /// Where the histories come from, for the report.
    pub fn source(&self) -> &'static str {
        match self {
            Probe::Store { .. } => "store events",
            Probe::Api { .. } => "API events",
        }
    }

    /// A recipient of the run through the API; `None` if the API does not
    /// know it (never submitted) or this is the store probe.
    async fn api_recipient(&self, address: &str) -> anyhow::Result<Option<ApiRecipient>> {
        let Probe::Api {
            client, batches, ..
        } = self
        else {
            return Ok(None);
        };
        let Some(batch) =
            broadside_load_tests::csv_gen::index_of(address).and_then(|i| batches.batch_of(i))
        else {
            return Ok(None);
        };
        let path = format!("/v1/campaigns/{batch}/recipients/{address}");
        match client.get(&path).await? {
            (200, body) => Ok(Some(
                serde_json::from_slice(&body).with_context(|| format!("GET {path}"))?,
            )),
            (404, _) => Ok(None),
            (status, body) => bail!(
                "GET {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn add(sum: &mut CampaignCounters, c: &CampaignCounters) {
    for code in StateCode::ALL {
        *sum.get_mut(code) += c.get(code);
    }
}

/// One batch's counters from `GET /v1/messages/{id}`, remembered once final.
async fn batch_counters(
    client: &SubmitClient,
    id: i64,
    done: &Mutex<HashMap<i64, CampaignCounters>>,
) -> anyhow::Result<CampaignCounters> {
    let path = format!("/v1/messages/{id}");
    let (status, body) = client.get(&path).await?;
    if status != 200 {
        bail!(
            "GET {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&body).with_context(|| format!("GET {path}"))?;
    let mut c = CampaignCounters::default();
    for code in StateCode::ALL {
        *c.get_mut(code) = json["counters"][code.as_str()]
            .as_i64()
            .with_context(|| format!("GET {path}: no counters.{code}"))?;
    }
    if c.pending == 0 && c.deferred == 0 {
        lock(done).insert(id, c);
    }
    Ok(c)
}

/// An outcome event as an attempt; `None` for what is not one (suppression,
/// tracking).
fn attempt(kind: StateCode, at: DateTime<Utc>) -> Option<Attempt> {
    match kind {
        StateCode::Deferred => Some(Attempt { at, deferred: true }),
        StateCode::Delivered | StateCode::Bounced | StateCode::Failed => Some(Attempt {
            at,
            deferred: false,
        }),
        StateCode::Pending | StateCode::Suppressed => None,
    }
}

fn describe(address: &str, r: &ApiRecipient) -> String {
    format!(
        "{address}: {} after {} attempts ({})",
        r.state.code(),
        r.attempts,
        r.last_reply.as_deref().unwrap_or("no reply")
    )
}

/// Up to [`LISTED`] recipients not final, from the store's rows.
async fn store_not_final(
    store: &dyn Store,
    tenant: TenantId,
    examples: &mut Vec<String>,
) -> anyhow::Result<()> {
    for campaign in store.campaigns(tenant).await? {
        let mut after = RecipientId(0);
        loop {
            let rows = store.recipients(tenant, campaign.id, after, PAGE).await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            for r in rows.iter().filter(|r| !r.state.code().is_final()) {
                examples.push(format!(
                    "{}: {} after {} attempts ({})",
                    r.email,
                    r.state.code(),
                    r.attempts,
                    r.last_reply.as_deref().unwrap_or("no reply")
                ));
                if examples.len() >= LISTED {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Every deferred recipient's attempts, from the campaigns' event tables. A
/// recipient's first event is a deferral or final, so only histories that
/// start with a deferral are kept: memory grows with the deferred, not with
/// the run.
async fn store_histories(store: &dyn Store, tenant: TenantId) -> anyhow::Result<Vec<History>> {
    let mut by_recipient: HashMap<(i64, RecipientId), History> = HashMap::new();
    for campaign in store.campaigns(tenant).await? {
        let through = store.committed_event_bound(tenant, campaign.id).await?;
        let mut after = 0;
        while after < through {
            let events = store
                .campaign_events(tenant, campaign.id, after, through, PAGE)
                .await?;
            let Some(last) = events.last() else { break };
            after = last.id;
            for e in &events {
                let EventKind::Outcome(kind) = e.kind else {
                    continue;
                };
                let Some(a) = attempt(kind, e.at) else {
                    continue;
                };
                let key = (campaign.id.0, e.recipient);
                match by_recipient.get_mut(&key) {
                    Some(h) => h.attempts.push(a),
                    None if a.deferred => {
                        let address = e.email.clone().unwrap_or_default();
                        by_recipient.insert(
                            key,
                            History {
                                address,
                                attempts: vec![a],
                            },
                        );
                    }
                    None => {}
                }
            }
        }
    }
    let mut histories: Vec<History> = by_recipient.into_values().collect();
    histories.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(histories)
}
