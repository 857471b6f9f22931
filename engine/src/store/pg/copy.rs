//! The PostgreSQL binary COPY format, written by hand for the import hot path: rows
//! go straight from a `RecipientBatch` into one reused buffer, with no allocation
//! per row and no `ToSql` dispatch per field.
//!
//! Format: an 11-byte signature, flags and header-extension length (i32 each), then
//! per row an i16 field count and per field an i32 length and the bytes (int8 as 8
//! big-endian bytes, text as UTF-8), and an i16 -1 trailer.

use bytes::{BufMut, Bytes, BytesMut};

use crate::store::{RecipientBatch, RowRef, StoreError, StoreResult};

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Bytes sent to the server per CopyData message: large enough that framing and
/// channel hand-offs are negligible, small enough to stay in cache.
pub(crate) const CHUNK: usize = 64 * 1024;

pub(crate) struct CopyEncoder {
    buf: BytesMut,
    /// Fields per row: id, email, then the personalization values; or for a
    /// message batch (`batch`) the batch id, id, email and the values as one
    /// array (`engine::store::pg::tables`).
    fields: i16,
    columns: usize,
    batch: Option<i64>,
    /// The last id written, to refuse ids out of order (the dispatcher pages by id).
    last_id: Option<i64>,
}

impl CopyEncoder {
    pub(crate) fn new(columns: usize) -> StoreResult<Self> {
        let fields = i16::try_from(columns + 2)
            .map_err(|_| StoreError::Corrupt(format!("{columns} columns are too many")))?;
        let mut buf = BytesMut::with_capacity(2 * CHUNK);
        buf.put_slice(SIGNATURE);
        buf.put_i32(0);
        buf.put_i32(0);
        Ok(Self {
            buf,
            fields,
            columns,
            batch: None,
            last_id: None,
        })
    }

    /// Rows of the message batch `batch` for the tenant's `batch_recipients`
    /// table: `(batch_id, id, email, vals)`.
    pub(crate) fn for_batch(batch: i64, columns: usize) -> StoreResult<Self> {
        let mut encoder = Self::new(0)?;
        encoder.fields = 4;
        encoder.columns = columns;
        encoder.batch = Some(batch);
        Ok(encoder)
    }

    /// Encodes rows from `start` until the buffer holds a chunk or the batch ends;
    /// returns the next row to encode.
    pub(crate) fn encode(&mut self, batch: &RecipientBatch, start: usize) -> StoreResult<usize> {
        if batch.columns() != self.columns {
            return Err(StoreError::Corrupt(format!(
                "an import of {} columns was given a batch of {}",
                self.columns,
                batch.columns()
            )));
        }
        let mut next = start;
        while next < batch.len() && self.buf.len() < CHUNK {
            self.encode_row(batch.row(next))?;
            next += 1;
        }
        Ok(next)
    }

    fn encode_row(&mut self, row: RowRef<'_>) -> StoreResult<()> {
        let id = row.id().0;
        if self.last_id.is_some_and(|last| id <= last) {
            return Err(StoreError::Corrupt(format!(
                "recipient id {id} is not greater than the previous one"
            )));
        }
        self.last_id = Some(id);
        let buf = &mut self.buf;
        buf.put_i16(self.fields);
        if let Some(batch) = self.batch {
            buf.put_i32(8);
            buf.put_i64(batch);
        }
        buf.put_i32(8);
        buf.put_i64(id);
        put_text(buf, row.email())?;
        match self.batch {
            None => {
                for value in row.values() {
                    put_text(buf, value)?;
                }
            }
            Some(_) => put_text_array(buf, row.values(), self.columns)?,
        }
        Ok(())
    }

    /// A full chunk, if the buffer holds one.
    pub(crate) fn full_chunk(&mut self) -> Option<Bytes> {
        (self.buf.len() >= CHUNK).then(|| self.buf.split().freeze())
    }

    /// Everything left, with the trailer.
    pub(crate) fn finish(&mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.split().freeze()
    }
}

fn put_text(buf: &mut BytesMut, text: &str) -> StoreResult<()> {
    let len = i32::try_from(text.len())
        .map_err(|_| StoreError::Corrupt("a value longer than 2 GiB".into()))?;
    buf.put_i32(len);
    buf.put_slice(text.as_bytes());
    Ok(())
}

/// A one-dimensional `text[]` without NULLs in the binary array format: length,
/// dimensions (1), a has-nulls flag (0), the element type (text, OID 25), the
/// dimension's length and lower bound (1), then each element as a field.
fn put_text_array<'v>(
    buf: &mut BytesMut,
    values: impl Iterator<Item = &'v str>,
    count: usize,
) -> StoreResult<()> {
    const TEXT_OID: i32 = 25;
    let length_at = buf.len();
    buf.put_i32(0);
    buf.put_i32(1);
    buf.put_i32(0);
    buf.put_i32(TEXT_OID);
    let count = i32::try_from(count)
        .map_err(|_| StoreError::Corrupt(format!("{count} values are too many")))?;
    buf.put_i32(count);
    buf.put_i32(1);
    for value in values {
        put_text(buf, value)?;
    }
    let length = i32::try_from(buf.len() - length_at - 4)
        .map_err(|_| StoreError::Corrupt("a row longer than 2 GiB".into()))?;
    buf[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecipientId;

    #[test]
    fn rows_are_encoded_in_the_binary_copy_format() {
        let mut batch = RecipientBatch::new(1);
        batch.push(RecipientId(1), "a@x.io", ["Zé"]);
        let mut encoder = CopyEncoder::new(1).expect("encoder");
        assert_eq!(encoder.encode(&batch, 0).expect("encode"), 1);
        let bytes = encoder.finish();
        let mut expected = Vec::new();
        expected.extend_from_slice(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
        expected.extend_from_slice(&[0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 0, 0, 6]);
        expected.extend_from_slice(b"a@x.io");
        expected.extend_from_slice(&[0, 0, 0, 3]);
        expected.extend_from_slice("Zé".as_bytes());
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(&bytes[..], &expected[..]);
    }

    #[test]
    fn encoding_stops_at_a_full_chunk_and_resumes() {
        let mut batch = RecipientBatch::new(1);
        let value = "v".repeat(1000);
        for id in 1..=200 {
            batch.push(RecipientId(id), "a@x.io", [value.as_str()]);
        }
        let mut encoder = CopyEncoder::new(1).expect("encoder");
        let next = encoder.encode(&batch, 0).expect("encode");
        assert!(next > 0 && next < 200);
        assert!(encoder.full_chunk().is_some());
        assert!(encoder.full_chunk().is_none());
        let (mut next, mut chunks) = (next, 1);
        while next < 200 {
            next = encoder.encode(&batch, next).expect("encode");
            chunks += usize::from(encoder.full_chunk().is_some());
        }
        // About 200 KiB of rows: three full chunks, the rest left for `finish`.
        assert_eq!(chunks, 3);
        assert!(encoder.finish().len() < CHUNK);
    }

    #[test]
    fn ids_out_of_order_and_wrong_widths_are_refused() {
        let mut batch = RecipientBatch::new(0);
        batch.push(RecipientId(2), "a@x.io", []);
        batch.push(RecipientId(2), "b@x.io", []);
        let mut encoder = CopyEncoder::new(0).expect("encoder");
        assert!(encoder.encode(&batch, 0).is_err());
        let mut encoder = CopyEncoder::new(1).expect("encoder");
        assert!(encoder.encode(&batch, 0).is_err());
    }
}
