//! `RecipientReader`: streams recipient rows out of a CSV file, validating each row
//! and handing over valid ones in `RecipientBatch`es. Pure and synchronous: no store,
//! no threads, so it is tested (and fuzzed) on its own.
//!
//! Speed matters here (a million rows must parse in well under two seconds), so a
//! row costs no allocation beyond the parsed `EmailAddress`: records are read into
//! one reused `ByteRecord`, UTF-8 is validated once per record, and duplicates are
//! found by digest (see `SeenAddresses`).
//!
//! Behaviour at the edges, decided here:
//! - A file that ends inside a quoted field is rejected as a whole: everything after
//!   the opening quote has become one value, and the rows in it would otherwise be
//!   lost without a word.
//! - A record longer than `max_columns * (2 * max_field_size + 3)` bytes is rejected
//!   as a whole for the same reason (it can only be an unclosed quote or not a CSV
//!   file), before it fills memory.
//! - Invalid UTF-8 anywhere rejects the whole file: it means the file was saved in
//!   another encoding, so every row is suspect, not just the one that shows it.

use std::io::{Chain, Cursor, Read};
use std::str;

use csv::ByteRecord;

use super::dedup::SeenAddresses;
use super::options::ImportOptions;
use super::scan::{self, QuoteGuard};
use super::{ImportError, Rejection};
use crate::model::{EmailAddress, RecipientId};
use crate::store::RecipientBatch;

/// Bytes of text per batch at most, whatever `batch_rows` says: keeps a batch of
/// wide rows well below `RecipientBatch`'s 4 GiB limit and memory flat.
const MAX_BATCH_TEXT: usize = 16 * 1024 * 1024;

type Source<R> = QuoteGuard<Chain<Cursor<Vec<u8>>, R>>;

pub struct RecipientReader<R: Read> {
    csv: csv::Reader<Source<R>>,
    /// Reused for every record, so reading allocates only while it grows.
    record: ByteRecord,
    /// All header names as written (trimmed), for rejections.
    header: Vec<String>,
    /// The personalization columns: the header without the address column.
    columns: Vec<String>,
    email_index: usize,
    max_field_size: usize,
    max_columns: usize,
    seen: SeenAddresses,
    /// The skipped byte order mark, counted in `bytes_read`.
    bom_len: u64,
    rows_read: u64,
    valid_rows: u64,
    rejected_rows: u64,
    /// Line and field count of the last record, for an unclosed quote at the end.
    last_record: (u64, usize),
}

/// Why a data row was refused; becomes a `Rejection` with the row's line.
struct RowProblem {
    column: Option<usize>,
    reason: String,
}

impl<R: Read> RecipientReader<R> {
    /// Reads the header (detecting the delimiter unless `options` names one). Errors
    /// carry no file name; `ImportError::in_file` adds it.
    pub fn new(mut source: R, options: &ImportOptions) -> Result<Self, ImportError> {
        options.validate().map_err(ImportError::Options)?;
        let prefix = scan::read_prefix(&mut source).map_err(|e| ImportError::read(1, e))?;
        let bom = scan::byte_order_mark(&prefix).map_err(|r| ImportError::format(1, None, r))?;
        let delimiter = options
            .delimiter
            .unwrap_or_else(|| scan::detect_delimiter(&prefix[bom..]));
        let mut head = Cursor::new(prefix);
        head.set_position(bom as u64);
        let max_record = options
            .max_columns
            .saturating_mul(options.max_field_size.saturating_mul(2).saturating_add(3));
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .buffer_capacity(64 * 1024)
            .from_reader(QuoteGuard::new(head.chain(source), delimiter, max_record));
        let mut reader = Self {
            csv,
            record: ByteRecord::new(),
            header: Vec::new(),
            columns: Vec::new(),
            email_index: 0,
            max_field_size: options.max_field_size,
            max_columns: options.max_columns,
            seen: SeenAddresses::new(),
            bom_len: bom as u64,
            rows_read: 0,
            valid_rows: 0,
            rejected_rows: 0,
            last_record: (1, 0),
        };
        reader.read_header(&options.email_column)?;
        Ok(reader)
    }

    /// The personalization columns, in file order (the address column left out).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Bytes of the file consumed so far, for progress.
    pub fn bytes_read(&self) -> u64 {
        self.bom_len + self.csv.position().byte()
    }

    /// Data rows read so far, valid or not.
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    pub fn valid_rows(&self) -> u64 {
        self.valid_rows
    }

    pub fn rejected_rows(&self) -> u64 {
        self.rejected_rows
    }

    /// Appends up to `max_rows` valid rows to `batch` (which must have
    /// `columns().len()` columns), passing each invalid row to `reject`. Returns
    /// `Ok(false)` once the file is exhausted; the batch may still hold rows then.
    pub fn fill(
        &mut self,
        batch: &mut RecipientBatch,
        max_rows: usize,
        reject: &mut dyn FnMut(Rejection) -> Result<(), ImportError>,
    ) -> Result<bool, ImportError> {
        while batch.len() < max_rows && batch.text_len() < MAX_BATCH_TEXT {
            if !self.next_record()? {
                return Ok(false);
            }
            self.rows_read += 1;
            if let Some(rejection) = self.take_row(batch)? {
                self.rejected_rows += 1;
                reject(rejection)?;
            }
        }
        Ok(true)
    }

    /// Validates the current record and appends it to `batch`, or says why not.
    fn take_row(&mut self, batch: &mut RecipientBatch) -> Result<Option<Rejection>, ImportError> {
        let line = self.last_record.0;
        let record = &self.record;
        let text = match str::from_utf8(record.as_slice()) {
            Ok(text) if (0..record.len()).all(|i| field(record, text, i).is_some()) => text,
            _ => return Err(utf8_error(record, line)),
        };
        let address = match self.judge(text) {
            Ok(address) => address,
            Err(problem) => return Ok(Some(self.rejection(text, line, problem))),
        };
        if let Some(first) = self.seen.first_or_insert(&address, line) {
            let problem = RowProblem {
                column: Some(self.email_index),
                reason: format!("duplicate of line {first}"),
            };
            return Ok(Some(self.rejection(text, line, problem)));
        }
        self.valid_rows += 1;
        let id = RecipientId(i64::try_from(self.valid_rows).unwrap_or(i64::MAX));
        let email_index = self.email_index;
        let values = (0..record.len())
            .filter(|&i| i != email_index)
            .map(|i| field(record, text, i).unwrap_or_default());
        batch.push(id, address.as_str(), values);
        Ok(None)
    }

    /// Every check of a row but the duplicate one, cheapest first.
    fn judge(&self, text: &str) -> Result<EmailAddress, RowProblem> {
        let record = &self.record;
        if record.len() != self.header.len() {
            return Err(RowProblem {
                column: None,
                reason: format!(
                    "expected {} fields, found {}",
                    self.header.len(),
                    record.len()
                ),
            });
        }
        if let Some(i) = (0..record.len()).find(|&i| record[i].len() > self.max_field_size) {
            return Err(RowProblem {
                column: Some(i),
                reason: format!(
                    "the value is {} bytes long; at most {} bytes are allowed",
                    record[i].len(),
                    self.max_field_size
                ),
            });
        }
        let email = field(record, text, self.email_index)
            .unwrap_or_default()
            .trim_ascii();
        let address = EmailAddress::parse(email).map_err(|e| RowProblem {
            column: Some(self.email_index),
            reason: e.to_string(),
        })?;
        for i in (0..record.len()).filter(|&i| i != self.email_index) {
            if let Some(c) = control_character(field(record, text, i).unwrap_or_default()) {
                return Err(RowProblem {
                    column: Some(i),
                    reason: control_reason(c),
                });
            }
        }
        Ok(address)
    }

    fn rejection(&self, text: &str, line: u64, problem: RowProblem) -> Rejection {
        let email = field(&self.record, text, self.email_index)
            .map(str::trim_ascii)
            .filter(|e| !e.is_empty() && e.len() <= self.max_field_size)
            .map(str::to_owned);
        Rejection {
            line,
            column: problem.column.and_then(|i| self.header.get(i)).cloned(),
            email,
            reason: problem.reason,
        }
    }

    /// Reads the next record into `self.record`; at the end of the file, checks that
    /// no quoted field was left open.
    fn next_record(&mut self) -> Result<bool, ImportError> {
        match self.csv.read_byte_record(&mut self.record) {
            Ok(true) => {
                let line = self.csv.get_mut().next_record_line().unwrap_or_default();
                self.last_record = (line, self.record.len());
                Ok(true)
            }
            Ok(false) if self.csv.get_ref().in_quotes() => {
                let (line, fields) = self.last_record;
                Err(ImportError::format(
                    line,
                    Some(fields.to_string()),
                    "a quoted field is not closed before the end of the file \
                     (a '\"' is missing)",
                ))
            }
            Ok(false) => Ok(false),
            Err(e) => Err(self.read_error(e)),
        }
    }

    fn read_error(&self, error: csv::Error) -> ImportError {
        if let Some(line) = self.csv.get_ref().overflow_line() {
            return ImportError::format(
                line,
                None,
                format!(
                    "a record is longer than {} columns of {} bytes can be; \
                     a quoted field is probably not closed (a '\"' is missing)",
                    self.max_columns, self.max_field_size
                ),
            );
        }
        let line = error.position().map_or(self.last_record.0, |p| p.line());
        match error.into_kind() {
            csv::ErrorKind::Io(e) => ImportError::read(line, e),
            other => ImportError::format(line, None, format!("{other:?}")),
        }
    }

    fn read_header(&mut self, email_column: &str) -> Result<(), ImportError> {
        if !self.next_record()? {
            return Err(ImportError::format(
                1,
                None,
                "the file is empty; a header row naming the columns is required",
            ));
        }
        let line = self.last_record.0;
        let mut names = Vec::with_capacity(self.record.len());
        for (i, raw) in self.record.iter().enumerate() {
            let name = str::from_utf8(raw).map_err(|_| utf8_error(&self.record, line))?;
            if name.contains('\0') {
                return Err(ImportError::format(
                    line,
                    Some((i + 1).to_string()),
                    "the header contains NUL bytes; the file looks like UTF-16 \
                     — save it as UTF-8",
                ));
            }
            names.push(name.trim().to_owned());
        }
        let email_index = check_header(&names, email_column, self.max_columns)
            .map_err(|(column, reason)| ImportError::format(line, column, reason))?;
        self.columns = names
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != email_index)
            .map(|(_, n)| n.clone())
            .collect();
        self.header = names;
        self.email_index = email_index;
        Ok(())
    }
}

/// Field `i` of `record` as a slice of the record's validated text; `None` when the
/// field is missing or a multi-byte character straddles its boundary.
fn field<'t>(record: &ByteRecord, text: &'t str, i: usize) -> Option<&'t str> {
    text.get(record.range(i)?)
}

/// Checks the header names; returns the index of the address column, or the column
/// (1-based, as text) and reason of the first problem.
fn check_header(
    names: &[String],
    email_column: &str,
    max_columns: usize,
) -> Result<usize, (Option<String>, String)> {
    if names.len() > max_columns {
        return Err((
            None,
            format!(
                "the header has {} columns; at most {max_columns} are allowed",
                names.len()
            ),
        ));
    }
    let lower: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
    for (i, name) in lower.iter().enumerate() {
        let column = Some((i + 1).to_string());
        if name.is_empty() {
            return Err((
                column,
                "the column has no name; every column needs a name in the header row".into(),
            ));
        }
        if let Some(first) = lower[..i].iter().position(|n| n == name) {
            return Err((
                column,
                format!(
                    "the column name {:?} repeats column {} ({:?}); column names must \
                     be unique, ignoring case",
                    names[i],
                    first + 1,
                    names[first]
                ),
            ));
        }
    }
    let wanted = email_column.trim().to_lowercase();
    lower.iter().position(|n| *n == wanted).ok_or_else(|| {
        let found: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        (
            None,
            format!(
                "no column is named {:?}; the columns found are: {}",
                email_column.trim(),
                found.join(", ")
            ),
        )
    })
}

/// The first control character in `value` other than tab, if any. Values end up in
/// message headers and bodies, where CR, LF or NUL could forge or break them.
fn control_character(value: &str) -> Option<char> {
    // Fast path: no byte that could start a control character (C0, DEL, or the
    // 0xC2 lead byte of C1 controls U+0080..U+009F).
    if !value
        .bytes()
        .any(|b| (b < 0x20 && b != b'\t') || b == 0x7F || b == 0xC2)
    {
        return None;
    }
    value.chars().find(|&c| c.is_control() && c != '\t')
}

fn control_reason(c: char) -> String {
    let what = match c {
        '\n' => "a line break (LF)".to_owned(),
        '\r' => "a line break (CR)".to_owned(),
        '\0' => "a NUL character".to_owned(),
        c => format!("the control character U+{:04X}", u32::from(c)),
    };
    format!(
        "the value contains {what}; line breaks and control characters other than tab \
         are not allowed in values"
    )
}

/// The fatal error for a record that is not valid UTF-8, naming the first bad field
/// and byte.
fn utf8_error(record: &ByteRecord, line: u64) -> ImportError {
    for (i, raw) in record.iter().enumerate() {
        if let Err(e) = str::from_utf8(raw) {
            let byte = raw.get(e.valid_up_to()).copied().unwrap_or_default();
            return ImportError::format(
                line,
                Some((i + 1).to_string()),
                format!(
                    "not valid UTF-8 (byte 0x{byte:02X}); the file looks like Latin-1 or \
                     Windows-1252 — save it as UTF-8"
                ),
            );
        }
    }
    // Unreachable in practice: a record whose fields are each valid UTF-8 is too.
    ImportError::format(line, None, "not valid UTF-8; save the file as UTF-8")
}
