//! The DATA body decoder: finds `CRLF.CRLF` and undoes dot-stuffing over a
//! stream of arbitrary chunks, without copying or allocating per line.

/// Where the decoder is within the current line. It is carried across chunks,
/// so a terminator split over several TCP reads (even one byte per read) is
/// still found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (the body start counts as one).
    LineStart,
    /// Inside a line.
    Mid,
    /// A `.` opened the line; it is either stuffing or the terminator.
    Dot,
    /// `.` then CR opened the line; LF now ends the body.
    DotCr,
}

/// Decodes one message body. Lines are recognised after any LF, so a client
/// that sends bare LFs still gets its dots unstuffed, but only `.` CR LF ends
/// the body, as RFC 5321 requires.
#[derive(Debug)]
pub(crate) struct DataDecoder {
    state: State,
}

impl DataDecoder {
    pub(crate) fn new() -> Self {
        DataDecoder {
            state: State::LineStart,
        }
    }

    /// Feeds `chunk`, passing each decoded run of body bytes to `out`.
    /// Returns `Some(n)` when the terminator ends within `chunk` after `n`
    /// bytes (the rest belongs to the next command), `None` when all of it
    /// was body.
    pub(crate) fn feed(&mut self, chunk: &[u8], mut out: impl FnMut(&[u8])) -> Option<usize> {
        let mut pos = 0;
        while pos < chunk.len() {
            match self.state {
                State::Mid => match memchr::memchr(b'\n', &chunk[pos..]) {
                    Some(i) => {
                        out(&chunk[pos..=pos + i]);
                        pos += i + 1;
                        self.state = State::LineStart;
                    }
                    None => {
                        out(&chunk[pos..]);
                        pos = chunk.len();
                    }
                },
                State::LineStart => {
                    if chunk[pos] == b'.' {
                        pos += 1;
                        self.state = State::Dot;
                    } else {
                        self.state = State::Mid;
                    }
                }
                State::Dot => {
                    if chunk[pos] == b'\r' {
                        pos += 1;
                        self.state = State::DotCr;
                    } else {
                        // A stuffed dot: drop it, the rest of the line is body.
                        self.state = State::Mid;
                    }
                }
                State::DotCr => {
                    if chunk[pos] == b'\n' {
                        self.state = State::LineStart;
                        return Some(pos + 1);
                    }
                    // `.` CR then something else: the dot was stuffing and
                    // the CR is body.
                    out(b"\r");
                    self.state = State::Mid;
                }
            }
        }
        None
    }
}

/// Dot-stuffs `body` the way a client must (test helper and load drivers).
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 8);
    let mut line_start = true;
    for &b in body {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `wire` split at the given points; returns the body and the
    /// offset just past the terminator.
    fn decode(wire: &[u8], splits: &[usize]) -> (Vec<u8>, Option<usize>) {
        let mut decoder = DataDecoder::new();
        let mut body = Vec::new();
        let mut bounds: Vec<usize> = splits.iter().map(|s| s % (wire.len() + 1)).collect();
        bounds.push(0);
        bounds.push(wire.len());
        bounds.sort_unstable();
        for pair in bounds.windows(2) {
            let (start, end) = (pair[0], pair[1]);
            if let Some(n) = decoder.feed(&wire[start..end], |s| body.extend_from_slice(s)) {
                return (body, Some(start + n));
            }
        }
        (body, None)
    }

    #[test]
    fn stuffed_dots_are_removed_and_the_terminator_is_not_body() {
        let wire = b"Subject: x\r\n\r\n..leading dot\r\n.\r\nMAIL";
        let (body, end) = decode(wire, &[]);
        assert_eq!(body, b"Subject: x\r\n\r\n.leading dot\r\n");
        assert_eq!(end, Some(wire.len() - 4));
    }

    #[test]
    fn a_terminator_split_into_single_bytes_is_found() {
        let wire = b"a\r\n.\r\n";
        let splits: Vec<usize> = (0..wire.len()).collect();
        assert_eq!(decode(wire, &splits), (b"a\r\n".to_vec(), Some(wire.len())));
    }

    #[test]
    fn a_dot_followed_by_cr_but_not_lf_is_body() {
        let (body, end) = decode(b".\rx\r\n.\r\n", &[1, 2]);
        assert_eq!(body, b"\rx\r\n");
        assert_eq!(end, Some(8));
    }

    #[test]
    fn an_empty_body_ends_at_once() {
        assert_eq!(decode(b".\r\n", &[]), (Vec::new(), Some(3)));
    }

    proptest! {
        #[test]
        fn stuffing_then_decoding_gives_the_body_back_wherever_the_reads_split(
            lines in proptest::collection::vec("[.a-z ]{0,12}", 0..12),
            splits in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let body: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
            let mut wire = dot_stuff(&body);
            wire.extend_from_slice(b".\r\nQUIT\r\n");
            let (decoded, end) = decode(&wire, &splits);
            prop_assert_eq!(decoded, body);
            prop_assert_eq!(end, Some(wire.len() - 6));
        }
    }
}
