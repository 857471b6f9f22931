//! `RecipientBatch`: many recipient rows in one allocation, the unit in which rows
//! travel from the importer into a store and from a store to the dispatcher.

use chrono::{DateTime, Utc};

use crate::model::RecipientId;

/// Rows of `1 + columns` text fields each: the address first, then one value per
/// personalization column. All text lives in one `String`; `ends` holds the end
/// offset of every field, so a batch of thousands of rows costs three allocations and
/// is reused by `clear`.
#[derive(Debug, Clone, Default)]
pub struct RecipientBatch {
    columns: usize,
    ids: Vec<RecipientId>,
    text: String,
    ends: Vec<u32>,
    /// Delivery attempts so far, per row (0 for imported rows).
    attempts: Vec<u32>,
    /// When the first attempt was made, per row; drives the retry age limit.
    first_attempts: Vec<Option<DateTime<Utc>>>,
}

/// One row of a batch, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    batch: &'a RecipientBatch,
    row: usize,
}

impl RecipientBatch {
    /// A batch for rows with `columns` personalization values each.
    pub fn new(columns: usize) -> Self {
        Self {
            columns,
            ..Self::default()
        }
    }

    pub fn with_capacity(columns: usize, rows: usize, text_bytes: usize) -> Self {
        Self {
            columns,
            ids: Vec::with_capacity(rows),
            text: String::with_capacity(text_bytes),
            ends: Vec::with_capacity(rows * (columns + 1)),
            attempts: Vec::with_capacity(rows),
            first_attempts: Vec::with_capacity(rows),
        }
    }

    /// Number of personalization columns (the address not counted).
    pub fn columns(&self) -> usize {
        self.columns
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Bytes of text held, to bound batches by size as well as by rows.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    pub fn clear(&mut self) {
        self.ids.clear();
        self.text.clear();
        self.ends.clear();
        self.attempts.clear();
        self.first_attempts.clear();
    }

    /// Appends a row. `values` must yield exactly `columns()` values; a row of the
    /// wrong width is a bug in the caller, so it panics rather than corrupting the batch.
    pub fn push<'v>(
        &mut self,
        id: RecipientId,
        email: &str,
        values: impl IntoIterator<Item = &'v str>,
    ) {
        self.push_due(id, email, values, 0, None);
    }

    /// Appends a row read for delivery, with its attempt history.
    pub fn push_due<'v>(
        &mut self,
        id: RecipientId,
        email: &str,
        values: impl IntoIterator<Item = &'v str>,
        attempts: u32,
        first_attempt: Option<DateTime<Utc>>,
    ) {
        let start = self.ends.len();
        self.push_field(email);
        for value in values {
            self.push_field(value);
        }
        assert_eq!(
            self.ends.len() - start,
            self.columns + 1,
            "row {id} has the wrong number of values"
        );
        self.ids.push(id);
        self.attempts.push(attempts);
        self.first_attempts.push(first_attempt);
    }

    fn push_field(&mut self, value: &str) {
        self.text.push_str(value);
        let end = u32::try_from(self.text.len()).expect("a batch holds less than 4 GiB of text");
        self.ends.push(end);
    }

    pub fn row(&self, row: usize) -> RowRef<'_> {
        assert!(row < self.len(), "row {row} out of {}", self.len());
        RowRef { batch: self, row }
    }

    pub fn rows(&self) -> impl ExactSizeIterator<Item = RowRef<'_>> + '_ {
        (0..self.len()).map(move |row| RowRef { batch: self, row })
    }

    fn field(&self, row: usize, field: usize) -> &str {
        let index = row * (self.columns + 1) + field;
        let end = self.ends[index] as usize;
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        &self.text[start..end]
    }
}

impl<'a> RowRef<'a> {
    pub fn id(&self) -> RecipientId {
        self.batch.ids[self.row]
    }

    /// Delivery attempts made before this read.
    pub fn attempts(&self) -> u32 {
        self.batch.attempts[self.row]
    }

    /// When the first delivery attempt was made, if any.
    pub fn first_attempt(&self) -> Option<DateTime<Utc>> {
        self.batch.first_attempts[self.row]
    }

    /// The recipient's domain (after the last '@').
    pub fn domain(&self) -> &'a str {
        let email = self.email();
        email.rfind('@').map_or("", |at| &email[at + 1..])
    }

    /// The normalized address (see `EmailAddress`).
    pub fn email(&self) -> &'a str {
        self.batch.field(self.row, 0)
    }

    /// Personalization value `column` (0-based, in import column order).
    pub fn value(&self, column: usize) -> &'a str {
        assert!(column < self.batch.columns);
        self.batch.field(self.row, column + 1)
    }

    pub fn values(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let (batch, row) = (self.batch, self.row);
        (0..batch.columns).map(move |c| batch.field(row, c + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_back_exactly_as_pushed_including_empty_values() {
        let mut batch = RecipientBatch::new(2);
        batch.push(RecipientId(1), "a@x.io", ["Ann", ""]);
        batch.push(RecipientId(2), "b@x.io", ["", "Zürich"]);
        assert_eq!(batch.len(), 2);
        let rows: Vec<_> = batch
            .rows()
            .map(|r| (r.id(), r.email(), r.values().collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            rows,
            vec![
                (RecipientId(1), "a@x.io", vec!["Ann", ""]),
                (RecipientId(2), "b@x.io", vec!["", "Zürich"]),
            ]
        );
        batch.clear();
        assert!(batch.is_empty());
    }

    #[test]
    #[should_panic(expected = "wrong number of values")]
    fn a_row_of_the_wrong_width_is_refused() {
        RecipientBatch::new(2).push(RecipientId(1), "a@x.io", ["only one"]);
    }
}
