//! `PUT /v1/campaigns/{id}/recipients`: a CSV upload of any size, streamed into
//! the same importer as file imports. The body is never held whole: chunks go
//! through a bounded channel to a `Read` on the import's blocking thread while
//! they are hashed for the signature. The signature can only be checked at the
//! end of the body, so the reader reports end-of-file only once it holds; a bad
//! signature fails the read and the import is aborted, nothing committed.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Buf as _, Bytes};
use chrono::Utc;
use engine::auth::escher::{self, EscherError};
use engine::import::{ImportError, ImportOutcome, import_csv};
use engine::model::CampaignId;
use engine::store::CampaignStatus;
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::sync::mpsc;

use super::V1Error;
use super::campaigns::owned;
use crate::http::ApiState;
use crate::http::auth::{AuthError, SignedParts, claimed_key};
use crate::http::error::error_response;
use crate::http::keys::ActiveKey;

/// Chunks buffered between the connection and the parser: enough to keep both
/// busy, few enough that memory stays flat (actix chunks are at most ~64 KiB).
const CHANNEL_CHUNKS: usize = 8;

/// How the body ended, as far as the connection side knows.
enum Feed {
    /// Read to the end; the signature check's verdict.
    Done(Result<String, EscherError>),
    TooLarge,
    Broken(String),
}

pub async fn upload(
    state: web::Data<ApiState>,
    req: HttpRequest,
    mut payload: web::Payload,
    id: web::Path<i64>,
) -> Result<HttpResponse, actix_web::Error> {
    let parts = SignedParts::of(&req);
    let (claimed, key) = claimed_key(&state, &parts).await?;
    precheck(&state, &parts, &key)?;
    if declared_length(&req).is_some_and(|n| n > state.max_upload) {
        return Err(V1Error::TooLarge {
            limit: state.max_upload,
        }
        .into());
    }
    let id = CampaignId(*id);
    // Whatever the answer, the caller is verified first: nothing, not even a 404,
    // goes to a request whose body does not match its signature.
    let campaign = match owned(state.store.as_ref(), key.tenant, id).await {
        Ok(campaign) if campaign.status == CampaignStatus::Draft => campaign,
        other => {
            let (tx, _) = mpsc::channel(1);
            let feed = feed(&state, &parts, &claimed, &key, &mut payload, tx).await;
            verdict(feed, state.max_upload)?;
            return Err(match other {
                Ok(campaign) => V1Error::Conflict(format!(
                    "campaign {} is {} and cannot take recipients",
                    campaign.id,
                    campaign.status.as_str()
                )),
                Err(e) => e,
            }
            .into());
        }
    };
    let report = state.reports_dir.join(format!(
        "api-c{}-{}.errors.csv",
        id,
        uuid::Uuid::new_v4().simple()
    ));
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let reader = ChannelReader {
        rx,
        current: Bytes::new(),
    };
    let source = format!("upload to campaign {id}");
    let import = import_csv(
        state.store.as_ref(),
        key.tenant,
        campaign.id,
        reader,
        &source,
        &report,
        &state.import,
        &|_| {},
    );
    let feeding = feed(&state, &parts, &claimed, &key, &mut payload, tx);
    let (feed, imported) = futures_util::future::join(feeding, import).await;
    if let Err(e) = verdict(feed, state.max_upload) {
        remove(&report).await;
        return Err(e);
    }
    if let Ok(outcome) = &imported {
        crate::telemetry::count_import(outcome);
    }
    state.runtime.reconcile();
    let response = respond(imported, &report, state.report_rows).await;
    remove(&report).await;
    Ok(response)
}

/// Everything but the body hash, checked before reading a byte: a request that
/// is stale, badly scoped or signed by nobody is refused at once. A mismatch is
/// expected here (the body is not hashed yet), anything else is final.
fn precheck(state: &ApiState, parts: &SignedParts, key: &ActiveKey) -> Result<(), AuthError> {
    let lookup = |_: &str| Some(key.secret.clone());
    match escher::authenticate(&state.escher, &parts.request(b""), lookup, &[], Utc::now()) {
        Ok(_) | Err(EscherError::SignatureMismatch) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads the body to its end (bounded), hashing it and passing chunks on while
/// the importer wants them; then checks the signature and tells the reader.
async fn feed(
    state: &ApiState,
    parts: &SignedParts,
    claimed: &escher::ClaimedKey,
    key: &ActiveKey,
    payload: &mut web::Payload,
    tx: mpsc::Sender<io::Result<Bytes>>,
) -> Feed {
    let mut hasher = claimed.hash.hasher();
    let mut total = 0u64;
    let mut open = true;
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                return Feed::Broken(e.to_string());
            }
        };
        total += chunk.len() as u64;
        if total > state.max_upload {
            let _ = tx
                .send(Err(io::Error::other("the upload is too large")))
                .await;
            return Feed::TooLarge;
        }
        hasher.update(&chunk);
        // Once the importer has stopped (a bad header, say) the rest is only
        // hashed, so the caller can still be verified before being answered.
        if open && tx.send(Ok(chunk)).await.is_err() {
            open = false;
        }
    }
    let digest = hasher.finish();
    let lookup = |id: &str| (id == claimed.key_id).then(|| key.secret.clone());
    let request = parts.request(b"");
    let verdict =
        escher::authenticate_prehashed(&state.escher, &request, &digest, lookup, &[], Utc::now());
    if verdict.is_err() {
        let denied = io::Error::new(io::ErrorKind::PermissionDenied, "signature mismatch");
        let _ = tx.send(Err(denied)).await;
    }
    // Dropping `tx` after a good signature is the reader's end of file.
    Feed::Done(verdict)
}

fn verdict(feed: Feed, limit: u64) -> Result<(), actix_web::Error> {
    match feed {
        Feed::Done(Ok(_)) => Ok(()),
        Feed::Done(Err(e)) => Err(AuthError::Escher(e).into()),
        Feed::TooLarge => Err(V1Error::TooLarge { limit }.into()),
        Feed::Broken(e) => Err(AuthError::Read(e).into()),
    }
}

/// A `Read` over the chunks the connection side sends; runs on the import's
/// blocking thread, where waiting on the channel is fine.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[derive(Debug, Serialize)]
struct Rejection {
    line: Option<u64>,
    column: Option<String>,
    reason: String,
    email: Option<String>,
}

#[derive(Debug, Serialize)]
struct UploadReport {
    accepted: bool,
    loaded: u64,
    rejected: u64,
    total_rows: u64,
    columns: Vec<String>,
    /// The first rejected rows (at most `api.report_rows`).
    rejections: Vec<Rejection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
}

async fn respond(
    imported: Result<ImportOutcome, ImportError>,
    report: &Path,
    rows: usize,
) -> HttpResponse {
    let outcome = match imported {
        Ok(outcome) => outcome,
        Err(ImportError::Format { .. }) | Err(ImportError::Read { .. }) => {
            let message = imported_error_text(imported);
            return error_response(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_file",
                &message,
            );
        }
        Err(ImportError::Store(e)) => {
            return actix_web::ResponseError::error_response(&V1Error::from(e));
        }
        Err(e) => {
            return actix_web::ResponseError::error_response(&V1Error::Internal(e.to_string()));
        }
    };
    let path = report.to_owned();
    let rejections = tokio::task::spawn_blocking(move || read_report(&path, rows))
        .await
        .unwrap_or_default();
    let mut body = UploadReport {
        accepted: outcome.accepted,
        loaded: outcome.loaded,
        rejected: outcome.rejected,
        total_rows: outcome.total_rows,
        columns: outcome.columns,
        rejections,
        error: None,
    };
    if outcome.accepted {
        return HttpResponse::Ok().json(body);
    }
    body.error = Some(serde_json::json!({
        "code": "file_rejected",
        "message": format!(
            "the file is rejected: {} of {} rows are invalid; nothing was loaded",
            body.rejected, body.total_rows
        ),
    }));
    HttpResponse::UnprocessableEntity().json(body)
}

fn imported_error_text(imported: Result<ImportOutcome, ImportError>) -> String {
    match imported {
        Err(e) => e.to_string(),
        Ok(_) => String::new(),
    }
}

/// The first `limit` rows of the errors report (`line,column,reason,email`).
fn read_report(path: &PathBuf, limit: usize) -> Vec<Rejection> {
    let Ok(mut reader) = csv::Reader::from_path(path) else {
        return Vec::new();
    };
    reader
        .records()
        .filter_map(Result::ok)
        // Rows without a line are verdicts on the whole file, said in `error`.
        .filter(|record| record.get(0).is_some_and(|line| !line.is_empty()))
        .take(limit)
        .map(|record| {
            let field = |i: usize| record.get(i).filter(|v| !v.is_empty()).map(str::to_owned);
            Rejection {
                line: field(0).and_then(|l| l.parse().ok()),
                column: field(1),
                reason: field(2).unwrap_or_default(),
                email: field(3),
            }
        })
        .collect()
}

/// Upload reports go back in the response; the file is not kept.
async fn remove(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, path = %path.display(), "cannot remove an upload report");
    }
}
