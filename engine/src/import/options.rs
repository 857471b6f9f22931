//! `ImportOptions`: the knobs of one CSV import, with the defaults customers get
//! when their control file says nothing.

/// How a recipient file is read and judged.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    /// Header of the address column, matched case-insensitively after trimming, so
    /// `Email`, ` EMAIL ` and `email` all find it.
    pub email_column: String,
    /// `None` detects the delimiter from the header line; customers' spreadsheet
    /// software picks `;` or tab by locale, so guessing is the friendly default.
    pub delimiter: Option<u8>,
    /// Above this share of invalid data rows the file is rejected as a whole: a file
    /// that bad is more likely the wrong file (or wrong columns) than a few typos.
    pub max_invalid_share: f64,
    /// Longest field, in bytes. Values end up in messages; anything longer is a
    /// mistake (a pasted document), and the bound keeps batches small.
    pub max_field_size: usize,
    /// Most columns a header may have; bounds the memory of one record.
    pub max_columns: usize,
    /// Valid rows per batch handed to the store.
    pub batch_rows: usize,
}

/// The delimiters customers' tools write; also the candidates for detection, in the
/// order that breaks ties.
pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            email_column: "email".to_owned(),
            delimiter: None,
            max_invalid_share: 0.10,
            max_field_size: 8192,
            max_columns: 256,
            batch_rows: 4096,
        }
    }
}

impl ImportOptions {
    /// Checks the options themselves, so a bad configuration is reported as such and
    /// not as something wrong with a customer's file.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(d) = self.delimiter
            && !DELIMITERS.contains(&d)
        {
            return Err(format!(
                "delimiter {:?} is not one of ',', ';', tab or '|'",
                char::from(d)
            ));
        }
        if !(0.0..=1.0).contains(&self.max_invalid_share) {
            return Err(format!(
                "max_invalid_share must be between 0 and 1, not {}",
                self.max_invalid_share
            ));
        }
        if self.max_field_size == 0 || self.max_columns == 0 || self.batch_rows == 0 {
            return Err("max_field_size, max_columns and batch_rows must be positive".into());
        }
        if self.email_column.trim().is_empty() {
            return Err("email_column must not be empty".into());
        }
        Ok(())
    }
}

impl From<&crate::config::ImportConfig> for ImportOptions {
    fn from(config: &crate::config::ImportConfig) -> Self {
        Self {
            email_column: config.email_column.clone(),
            delimiter: config.delimiter.byte(),
            max_invalid_share: config.max_invalid_share,
            max_field_size: usize::try_from(config.max_field_size.bytes()).unwrap_or(usize::MAX),
            max_columns: config.max_columns,
            batch_rows: config.batch_rows,
        }
    }
}
