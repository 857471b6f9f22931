//! Message batches (`POST /v1/messages`) created whole: the campaign row with its
//! definition, its recipients and events tables, its rows, its launch and the
//! idempotency key that names it go in together, so a failure at any point leaves
//! nothing behind — not even an empty draft — and a batch costs one commit.

use super::{ImportSummary, RecipientBatch};
use crate::model::{CampaignId, CampaignName};

/// Everything a message batch is made of.
#[derive(Debug)]
pub struct NewBatch<'a> {
    /// `msg-<uuid>`: the prefix marks a batch among the tenant's campaigns.
    pub name: &'a CampaignName,
    /// The campaign definition (opaque JSON text, as `set_campaign_definition`).
    pub definition: &'a str,
    /// The template's variables: the batch's personalization columns.
    pub columns: &'a [String],
    /// The accepted recipients, ids increasing.
    pub rows: &'a RecipientBatch,
    pub summary: &'a ImportSummary,
}

/// An `Idempotency-Key` taken together with the batch it names.
pub struct IdempotencyClaim<'a> {
    pub key: &'a str,
    /// SHA-256 of the request body, hex.
    pub request_hash: &'a str,
    /// The response to keep under the key, given the new batch's id (known only
    /// inside the store's transaction).
    pub response: &'a (dyn Fn(CampaignId) -> String + Send + Sync),
}

impl std::fmt::Debug for IdempotencyClaim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyClaim")
            .field("key", &self.key)
            .field("request_hash", &self.request_hash)
            .finish_non_exhaustive()
    }
}

/// What `create_batch` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchCreated {
    /// The batch exists and is `Running`; `response` is the one kept under the
    /// claimed key, if a key was claimed.
    Created {
        id: CampaignId,
        response: Option<String>,
    },
    /// The key was already taken (by an earlier request, or one racing this one):
    /// nothing was created, and this is the record the key holds.
    Replayed(super::IdempotencyRecord),
}
