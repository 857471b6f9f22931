//! Byte-level work done before and beside the csv parser: reading the header line to
//! find the byte order mark and the delimiter, and `QuoteGuard`, which follows the
//! quoting of the bytes the parser reads so that an unclosed quote is noticed.

use std::collections::VecDeque;
use std::io::{self, Read};

use super::options::DELIMITERS;

pub(crate) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Enough bytes to hold any sensible header line; the delimiter guess only needs the
/// first line, and a header longer than this is guessed from its start.
const PREFIX_LIMIT: usize = 64 * 1024;

/// Reads the start of the file, at least up to the end of the header line (outside
/// quotes), the end of the file or `PREFIX_LIMIT`. The bytes are parsed again
/// afterwards, chained in front of the rest of the source.
pub(crate) fn read_prefix(source: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut prefix = Vec::with_capacity(8 * 1024);
    let mut chunk = [0u8; 8 * 1024];
    loop {
        let n = match source.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(prefix);
        }
        prefix.extend_from_slice(&chunk[..n]);
        if prefix.len() >= PREFIX_LIMIT || header_line(&prefix).1 {
            return Ok(prefix);
        }
    }
}

/// The length of the byte order mark to skip, or why the file cannot be read.
pub(crate) fn byte_order_mark(prefix: &[u8]) -> Result<usize, String> {
    let utf16 = |order: &str| {
        Err(format!(
            "the file is UTF-16 ({order}) encoded; save it as UTF-8 (\"CSV UTF-8\" in Excel)"
        ))
    };
    if prefix.starts_with(UTF8_BOM) {
        Ok(UTF8_BOM.len())
    } else if prefix.starts_with(b"\xFF\xFE") {
        utf16("little-endian")
    } else if prefix.starts_with(b"\xFE\xFF") {
        utf16("big-endian")
    } else {
        Ok(0)
    }
}

/// The header line of `bytes` (up to its first line break outside double quotes)
/// and whether that line break was found.
fn header_line(bytes: &[u8]) -> (&[u8], bool) {
    let mut quoted = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => return (&bytes[..i], true),
            _ => {}
        }
    }
    (bytes, false)
}

/// The most frequent candidate delimiter outside double quotes on the header line;
/// ties go to the earlier candidate in `DELIMITERS`, and no candidate means `,` (a
/// one-column file).
pub(crate) fn detect_delimiter(bytes: &[u8]) -> u8 {
    let (line, _) = header_line(bytes);
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = DELIMITERS.iter().position(|&d| d == b) {
            counts[i] += 1;
        }
    }
    let mut best = 0;
    for i in 1..counts.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    DELIMITERS[best]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    Outside,
    Inside,
    /// A quote inside a quoted field: it closes the field, unless the next byte is a
    /// quote too (an escaped `""`).
    AfterQuote,
}

/// A `Read` adapter that mirrors the quoting rules of the csv parser (RFC 4180: a
/// quote opens a quoted field only at the start of a field, `""` escapes one quote;
/// CR, LF and CRLF end records; empty lines are skipped) over the bytes it hands out.
/// It knows three things the parser does not tell: whether the file ended inside a
/// quoted field, the physical line each record starts on (csv's record positions
/// point before a CRLF's LF and before skipped blank lines, so they are off by one
/// or more), and, as a limit, how long the record being read is.
pub(crate) struct QuoteGuard<R> {
    inner: R,
    delimiter: u8,
    state: Quoting,
    /// The byte before the current one, to tell the start of a field.
    prev: u8,
    /// Bytes of the record being read, to stop a runaway quoted field before it
    /// holds the rest of the file in memory.
    record_bytes: usize,
    max_record: usize,
    line: u64,
    /// The line the current record starts on.
    record_line: u64,
    /// Start lines of the records handed out but not yet claimed by the parser's
    /// caller; bounded by the records in one read buffer.
    starts: VecDeque<u64>,
    overflowed: bool,
}

impl<R: Read> QuoteGuard<R> {
    pub(crate) fn new(inner: R, delimiter: u8, max_record: usize) -> Self {
        Self {
            inner,
            delimiter,
            state: Quoting::Outside,
            prev: b'\n',
            record_bytes: 0,
            max_record,
            line: 1,
            record_line: 1,
            starts: VecDeque::new(),
            overflowed: false,
        }
    }

    /// Whether everything read so far ends inside a quoted field.
    pub(crate) fn in_quotes(&self) -> bool {
        self.state == Quoting::Inside
    }

    /// The line the next record read by the parser starts on; call once per record.
    pub(crate) fn next_record_line(&mut self) -> Option<u64> {
        self.starts.pop_front()
    }

    /// The line of the record that exceeded `max_record`, once one did.
    pub(crate) fn overflow_line(&self) -> Option<u64> {
        self.overflowed.then_some(self.record_line)
    }

    /// Follows `bytes`; false once the current record is longer than `max_record`.
    /// Runs of bytes that change nothing (all but quotes and line breaks) are
    /// skipped a word at a time: this guard sees every byte of the file, so a
    /// byte-at-a-time loop would cost as much as the parser itself.
    fn scan(&mut self, bytes: &[u8]) -> bool {
        let mut i = 0;
        while i < bytes.len() {
            if self.state != Quoting::AfterQuote {
                let run = ordinary_run(&bytes[i..], self.state == Quoting::Inside);
                if run > 0 {
                    self.start_record_if_new();
                    self.record_bytes += run;
                    self.prev = bytes[i + run - 1];
                    i += run;
                    if self.record_bytes > self.max_record {
                        return false;
                    }
                    continue;
                }
            }
            if !self.step(bytes[i]) {
                return false;
            }
            i += 1;
        }
        true
    }

    /// One byte through the state machine.
    fn step(&mut self, b: u8) -> bool {
        let ends_record = match self.state {
            Quoting::Outside => {
                if b == b'"' && self.at_field_start() {
                    self.state = Quoting::Inside;
                }
                b == b'\n' || b == b'\r'
            }
            Quoting::Inside => {
                if b == b'"' {
                    self.state = Quoting::AfterQuote;
                }
                false
            }
            Quoting::AfterQuote => {
                self.state = if b == b'"' {
                    Quoting::Inside
                } else {
                    Quoting::Outside
                };
                b == b'\n' || b == b'\r'
            }
        };
        self.prev = b;
        if b == b'\n' {
            self.line += 1;
        }
        if ends_record {
            self.record_bytes = 0;
            return true;
        }
        self.start_record_if_new();
        self.record_bytes += 1;
        self.record_bytes <= self.max_record
    }

    fn start_record_if_new(&mut self) {
        if self.record_bytes == 0 {
            self.record_line = self.line;
            self.starts.push_back(self.line);
        }
    }

    fn at_field_start(&self) -> bool {
        self.prev == self.delimiter || self.prev == b'\n' || self.prev == b'\r'
    }
}

impl<R: Read> Read for QuoteGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.overflowed {
            return Err(io::Error::other("record too long"));
        }
        let n = self.inner.read(buf)?;
        if !self.scan(&buf[..n]) {
            self.overflowed = true;
            return Err(io::Error::other("record too long"));
        }
        Ok(n)
    }
}

/// How many leading bytes of `bytes` are neither a quote nor a line break (CR
/// counts only outside quotes, where it ends a record). Eight bytes per step: a word
/// has a byte equal to `t` iff `x = word ^ t*ONES` has a zero byte, and the lowest
/// flagged byte of `(x - ONES) & !x & HIGH` is the first zero byte.
fn ordinary_run(bytes: &[u8], quoted: bool) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has = |word: u64, t: u8| {
        let x = word ^ (ONES * u64::from(t));
        x.wrapping_sub(ONES) & !x & HIGH
    };
    let mut n = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let mut found = has(word, b'"') | has(word, b'\n');
        if !quoted {
            found |= has(word, b'\r');
        }
        if found != 0 {
            return n + (found.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    let special = |b: u8| b == b'"' || b == b'\n' || (b == b'\r' && !quoted);
    n + bytes[n..]
        .iter()
        .position(|&b| special(b))
        .unwrap_or(bytes.len() - n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_frequent_delimiter_outside_quotes_wins() {
        assert_eq!(detect_delimiter(b"email;name;city\na,b,c,d,e"), b';');
        assert_eq!(detect_delimiter(b"email\tname\n"), b'\t');
        assert_eq!(detect_delimiter(b"\"a;b;c\",email|x|y\n"), b'|');
        assert_eq!(detect_delimiter(b"email\n"), b',');
        assert_eq!(detect_delimiter(b"email,name;city"), b',');
    }

    #[test]
    fn utf16_byte_order_marks_are_refused_and_utf8_ones_skipped() {
        assert_eq!(byte_order_mark(b"\xEF\xBB\xBFemail"), Ok(3));
        assert_eq!(byte_order_mark(b"email"), Ok(0));
        assert!(byte_order_mark(b"\xFF\xFEe\0").is_err());
        assert!(byte_order_mark(b"\xFE\xFF\0e").is_err());
    }

    fn guard_after(bytes: &[u8]) -> QuoteGuard<&[u8]> {
        let mut guard = QuoteGuard::new(bytes, b',', 64);
        let mut sink = Vec::new();
        let _ = guard.read_to_end(&mut sink);
        guard
    }

    #[test]
    fn ordinary_runs_end_at_the_first_quote_or_line_break() {
        assert_eq!(ordinary_run(b"", false), 0);
        assert_eq!(ordinary_run(b"abc", false), 3);
        assert_eq!(ordinary_run(b"abcdefghij\rk", false), 10);
        assert_eq!(ordinary_run(b"abcdefghij\rk\"", true), 12);
        assert_eq!(ordinary_run(b"abcdefgh\"", false), 8);
        assert_eq!(ordinary_run(b"\x01\x00\xFF\x80aaaaaaaaaaaa\n", true), 16);
        for i in 0..20 {
            let mut text = vec![b'x'; 20];
            text[i] = b'\n';
            assert_eq!(ordinary_run(&text, false), i);
        }
    }

    #[test]
    fn the_guard_follows_quotes_like_the_parser() {
        assert!(!guard_after(b"a,\"b\"\"c\",d\n").in_quotes());
        assert!(guard_after(b"a,\"b\nc").in_quotes());
        assert!(guard_after(b"a,\"b\"\"").in_quotes());
        // A quote inside an unquoted field is a literal, as for the parser.
        assert!(!guard_after(b"a,b\"c\n").in_quotes());
    }

    #[test]
    fn the_guard_knows_where_each_record_starts() {
        let mut guard = guard_after(b"h\r\n\r\na,\"x\ny\"\r\n\nb\rc");
        let starts: Vec<u64> = std::iter::from_fn(|| guard.next_record_line()).collect();
        assert_eq!(starts, [1, 3, 6, 6]);
    }

    #[test]
    fn the_guard_stops_a_record_longer_than_the_limit() {
        let mut text = b"a,b\nc,\"".to_vec();
        text.extend(std::iter::repeat_n(b'x', 100));
        assert_eq!(guard_after(&text).overflow_line(), Some(2));
        assert_eq!(guard_after(b"a,b\nc,d\n").overflow_line(), None);
    }
}
