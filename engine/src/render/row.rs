//! The handlebars context for one recipient: a borrowed view of a batch row that
//! serializes as `{ "email": ..., "<column>": ..., ... }` without first building a
//! map of owned strings of its own.

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::template::EMAIL_VARIABLE;
use crate::store::RowRef;

/// A row seen through the campaign's column names. A column literally named
/// `email` is left out: the built-in `email` (the normalized address the message
/// goes to) wins, so a template can never address one person and greet another.
pub(crate) struct RowView<'a> {
    pub(crate) columns: &'a [String],
    pub(crate) row: RowRef<'a>,
    /// Per-recipient tracking URLs (`__bs_*`), written last so they win over a
    /// column of the same name.
    pub(crate) extra: &'a [(String, String)],
}

impl Serialize for RowView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.columns.len() + 1 + self.extra.len()))?;
        map.serialize_entry(EMAIL_VARIABLE, self.row.email())?;
        for (name, value) in self.columns.iter().zip(self.row.values()) {
            if name != EMAIL_VARIABLE {
                map.serialize_entry(name, value)?;
            }
        }
        for (name, value) in self.extra {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecipientId;
    use crate::store::RecipientBatch;

    #[test]
    fn a_row_serializes_as_a_flat_map_and_the_builtin_email_wins() {
        let columns = ["first name", "email"].map(String::from).to_vec();
        let mut batch = RecipientBatch::new(2);
        batch.push(RecipientId(1), "ann@x.io", ["Ann", "other@x.io"]);
        let view = RowView {
            columns: &columns,
            row: batch.row(0),
            extra: &[],
        };
        let json = serde_json::to_value(&view).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({ "email": "ann@x.io", "first name": "Ann" })
        );
    }
}
