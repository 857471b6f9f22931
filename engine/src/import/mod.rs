//! The streaming CSV recipient importer: parses and validates a customer's file on a
//! blocking thread (`RecipientReader`), streams valid rows to the store in reused
//! batches, writes rejected rows to an errors report, and commits only a file that
//! is good enough (see `ImportOptions::max_invalid_share`).

mod dedup;
mod options;
mod reader;
mod report;
mod scan;

#[cfg(test)]
mod reader_tests;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

pub use options::ImportOptions;
pub use reader::RecipientReader;

use crate::model::{CampaignId, TenantId};
use crate::store::{ImportSummary, ImportWriter, RecipientBatch, Store, StoreError};
use report::ReportWriter;

/// Filled batches in flight between the parse thread and the store: enough to keep
/// both busy, few enough that memory stays flat when the store is slow.
const IN_FLIGHT: usize = 2;
/// Batches ever allocated: those in flight, one being filled, one being written.
const POOL: usize = IN_FLIGHT + 2;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be imported at all: encoding, header or structure.
    #[error("{}", located(file, *line, column.as_deref(), reason))]
    Format {
        file: String,
        line: u64,
        /// The column number (1-based), when the problem has one.
        column: Option<String>,
        reason: String,
    },
    #[error("{}", located(file, *line, None, &format!("cannot read the file: {source}")))]
    Read {
        file: String,
        line: u64,
        source: io::Error,
    },
    #[error("cannot write the errors report {}: {source}", path.display())]
    Report { path: PathBuf, source: io::Error },
    #[error("invalid import options: {0}")]
    Options(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The parse thread died or the pipeline was torn down: a bug or a shutdown, not
    /// something wrong with the file.
    #[error("the import was interrupted: {0}")]
    Interrupted(String),
}

fn located(file: &str, line: u64, column: Option<&str>, reason: &str) -> String {
    let mut text = String::new();
    if !file.is_empty() {
        text.push_str(file);
        text.push_str(": ");
    }
    text.push_str(&format!("line {line}"));
    if let Some(column) = column {
        text.push_str(&format!(", column {column}"));
    }
    text.push_str(": ");
    text.push_str(reason);
    text
}

impl ImportError {
    pub(crate) fn format(line: u64, column: Option<String>, reason: impl Into<String>) -> Self {
        ImportError::Format {
            file: String::new(),
            line,
            column,
            reason: reason.into(),
        }
    }

    pub(crate) fn read(line: u64, source: io::Error) -> Self {
        ImportError::Read {
            file: String::new(),
            line,
            source,
        }
    }

    /// Names the file in errors about it (`RecipientReader` does not know the name).
    pub fn in_file(mut self, name: &str) -> Self {
        if let ImportError::Format { file, .. } | ImportError::Read { file, .. } = &mut self {
            *file = name.to_owned();
        }
        self
    }
}

/// A data row that was not loaded, and why; one line of the errors report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The physical line the row starts on (the header is line 1).
    pub line: u64,
    /// The header name of the offending column; `None` for the row as a whole.
    pub column: Option<String>,
    /// The row's address as written (trimmed), so customers can find the row.
    pub email: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    pub bytes_read: u64,
    pub rows_read: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportOutcome {
    /// Rows committed to the store (0 when the file was rejected).
    pub loaded: u64,
    /// Data rows refused (each is in the report).
    pub rejected: u64,
    /// Data rows in the file, valid or not.
    pub total_rows: u64,
    /// The personalization columns, in file order.
    pub columns: Vec<String>,
    /// The errors report, if any row was refused.
    pub report: Option<PathBuf>,
    /// False when the file was rejected as a whole for too many invalid rows.
    pub accepted: bool,
    pub elapsed: Duration,
}

/// What the parse thread hands to the async side.
struct Filled {
    batch: RecipientBatch,
    progress: ImportProgress,
}

/// The parse thread's verdict on a file it read to the end.
#[derive(Debug)]
struct Parsed {
    valid: u64,
    rejected: u64,
    total: u64,
    accepted: bool,
    report: Option<PathBuf>,
}

/// Imports `source` into `campaign`: valid rows are loaded and committed unless the
/// file is rejected as a whole (then `accepted` is false and nothing is loaded).
/// Errors about the file itself (encoding, header, an unclosed quote) are returned
/// as `ImportError::Format` after writing them to the report; on every error path
/// the store's writer is aborted.
#[allow(clippy::too_many_arguments)] // the brief's signature; each is distinct
pub async fn import_csv<R: Read + Send + 'static>(
    store: &dyn Store,
    tenant: TenantId,
    campaign: CampaignId,
    source: R,
    source_name: &str,
    report_path: &Path,
    options: &ImportOptions,
    progress: &(dyn Fn(ImportProgress) + Send + Sync),
) -> Result<ImportOutcome, ImportError> {
    let started = Instant::now();
    options.validate().map_err(ImportError::Options)?;
    let (parser, (header_rx, mut filled_rx, free_tx)) = spawn_parser(source, options, report_path);
    let parsed = async { join(parser).await.map_err(|e| e.in_file(source_name)) };

    let Ok(columns) = header_rx.await else {
        // The thread ended before a header: it has the error.
        return Err(match parsed.await {
            Ok(_) => ImportError::Interrupted("the parser ended without a header".into()),
            Err(e) => e,
        });
    };
    let mut writer = match store.begin_import(tenant, campaign, &columns).await {
        Ok(writer) => writer,
        Err(e) => {
            drop((filled_rx, free_tx));
            let _ = parsed.await;
            discard_report(report_path).await;
            return Err(ImportError::Store(e));
        }
    };
    let pumped = pump(writer.as_mut(), &mut filled_rx, &free_tx, progress).await;
    // Closing both channels releases the parse thread if it is still waiting on us.
    drop((filled_rx, free_tx));
    let parsed = parsed.await;
    let outcome = |parsed: Parsed, loaded| ImportOutcome {
        loaded,
        rejected: parsed.rejected,
        total_rows: parsed.total,
        columns,
        report: parsed.report,
        accepted: parsed.accepted,
        elapsed: started.elapsed(),
    };
    match (pumped, parsed) {
        (Ok(()), Ok(parsed)) if parsed.accepted => {
            writer.commit(&summary(source_name, &parsed)).await?;
            let loaded = parsed.valid;
            Ok(outcome(parsed, loaded))
        }
        (Ok(()), Ok(parsed)) => {
            abort(writer).await;
            Ok(outcome(parsed, 0))
        }
        (Err(e), _) => {
            abort(writer).await;
            discard_report(report_path).await;
            Err(ImportError::Store(e))
        }
        (Ok(()), Err(e)) => {
            abort(writer).await;
            Err(e)
        }
    }
}

fn summary(source_name: &str, parsed: &Parsed) -> ImportSummary {
    ImportSummary {
        source: source_name.to_owned(),
        rows_loaded: i64::try_from(parsed.valid).unwrap_or(i64::MAX),
        rows_rejected: i64::try_from(parsed.rejected).unwrap_or(i64::MAX),
    }
}

/// The channels between the parse thread and the async side.
type Channels = (
    oneshot::Receiver<Vec<String>>,
    mpsc::Receiver<Filled>,
    mpsc::Sender<RecipientBatch>,
);

/// Starts the parse thread: it sends the columns once the header is read, then
/// filled batches, and takes emptied ones back for reuse.
fn spawn_parser<R: Read + Send + 'static>(
    source: R,
    options: &ImportOptions,
    report_path: &Path,
) -> (
    tokio::task::JoinHandle<Result<Parsed, ImportError>>,
    Channels,
) {
    let (header_tx, header_rx) = oneshot::channel();
    let (filled_tx, filled_rx) = mpsc::channel(IN_FLIGHT);
    let (free_tx, free_rx) = mpsc::channel(POOL);
    let (options, report_path) = (options.clone(), report_path.to_owned());
    let parser = tokio::task::spawn_blocking(move || {
        parse_file(
            source,
            &options,
            &report_path,
            header_tx,
            filled_tx,
            free_rx,
        )
    });
    (parser, (header_rx, filled_rx, free_tx))
}

/// Writes every filled batch to the store and hands it back for reuse, until the
/// parse thread is done (or fails: its error comes through `join`).
async fn pump(
    writer: &mut dyn ImportWriter,
    filled: &mut mpsc::Receiver<Filled>,
    free: &mpsc::Sender<RecipientBatch>,
    progress: &(dyn Fn(ImportProgress) + Send + Sync),
) -> Result<(), StoreError> {
    while let Some(Filled {
        mut batch,
        progress: at,
    }) = filled.recv().await
    {
        writer.write(&batch).await?;
        progress(at);
        batch.clear();
        // The pool holds at most `POOL` batches, so this never finds the channel
        // full; if the thread is gone the batch is simply dropped.
        let _ = free.try_send(batch);
    }
    Ok(())
}

async fn join(
    parser: tokio::task::JoinHandle<Result<Parsed, ImportError>>,
) -> Result<Parsed, ImportError> {
    match parser.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(ImportError::Interrupted(
            "the CSV parser panicked; this is a bug".into(),
        )),
        Err(e) => Err(ImportError::Interrupted(e.to_string())),
    }
}

async fn abort(writer: Box<dyn ImportWriter>) {
    if let Err(e) = writer.abort().await {
        // The import has failed already; the store discards an unfinished import on
        // its own, so this is worth a warning, not a second error.
        tracing::warn!(error = %e, "aborting an import failed");
    }
}

/// A report cut short by a store failure would mislead; the retry writes a new one.
async fn discard_report(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, path = %path.display(), "cannot remove a partial report");
    }
}

/// The parse thread: reads the header, sends the columns, then fills batches until
/// the end of the file, writing rejections and any fatal error to the report.
fn parse_file<R: Read>(
    source: R,
    options: &ImportOptions,
    report_path: &Path,
    header: oneshot::Sender<Vec<String>>,
    filled: mpsc::Sender<Filled>,
    free: mpsc::Receiver<RecipientBatch>,
) -> Result<Parsed, ImportError> {
    let mut report = ReportWriter::new(report_path);
    let result = RecipientReader::new(source, options).and_then(|mut reader| {
        if header.send(reader.columns().to_vec()).is_err() {
            return Err(ImportError::Interrupted("the import was dropped".into()));
        }
        read_batches(&mut reader, options, &mut report, filled, free)?;
        Ok((
            reader.valid_rows(),
            reader.rejected_rows(),
            reader.rows_read(),
        ))
    });
    let report_error = |source| ImportError::Report {
        path: report_path.to_owned(),
        source,
    };
    match result {
        Ok((valid, rejected, total)) => {
            let accepted = within_share(rejected, total, options.max_invalid_share);
            if !accepted {
                let note = format!(
                    "the file is rejected: {rejected} of {total} data rows are invalid; \
                     at most {}% may be",
                    options.max_invalid_share * 100.0
                );
                report.note(&note).map_err(report_error)?;
            }
            let report = report.finish().map_err(report_error)?;
            Ok(Parsed {
                valid,
                rejected,
                total,
                accepted,
                report,
            })
        }
        Err(e) => {
            if let ImportError::Format {
                line,
                column,
                reason,
                ..
            } = &e
            {
                report
                    .fatal(*line, column.as_deref(), reason)
                    .and_then(|()| report.finish())
                    .map_err(report_error)?;
            }
            Err(e)
        }
    }
}

fn read_batches<R: Read>(
    reader: &mut RecipientReader<R>,
    options: &ImportOptions,
    report: &mut ReportWriter,
    filled: mpsc::Sender<Filled>,
    mut free: mpsc::Receiver<RecipientBatch>,
) -> Result<(), ImportError> {
    let closed = || ImportError::Interrupted("the import was dropped".into());
    let columns = reader.columns().len();
    let mut allocated = 0;
    let mut reject = |r: Rejection| {
        report.rejection(&r).map_err(|source| ImportError::Report {
            path: report.path().to_owned(),
            source,
        })
    };
    loop {
        let mut batch = match free.try_recv() {
            Ok(batch) => batch,
            Err(_) if allocated < POOL => {
                allocated += 1;
                RecipientBatch::with_capacity(columns, options.batch_rows, options.batch_rows * 64)
            }
            Err(_) => free.blocking_recv().ok_or_else(closed)?,
        };
        let more = reader.fill(&mut batch, options.batch_rows, &mut reject)?;
        if !batch.is_empty() {
            let progress = ImportProgress {
                bytes_read: reader.bytes_read(),
                rows_read: reader.rows_read(),
            };
            filled
                .blocking_send(Filled { batch, progress })
                .map_err(|_| closed())?;
        }
        if !more {
            return Ok(());
        }
    }
}

/// Whether `rejected` of `total` rows is within the allowed share. Integer-exact at
/// the boundary: 10 of 100 at 0.10 is within.
fn within_share(rejected: u64, total: u64, max_share: f64) -> bool {
    total == 0 || (rejected as f64) <= max_share * total as f64 + 1e-9
}
