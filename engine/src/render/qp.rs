//! Quoted-printable for text parts (RFC 2045 §6.7), written for the hot path.
//!
//! Lettre encodes byte by byte through a general-purpose encoder after a
//! separate line-end pass; on messages with a few non-ASCII characters that
//! was the largest item of the engine's own profile after RSA. This encoder
//! copies runs of literal bytes in bulk and writes the line ends as it goes,
//! in one pass into one buffer.

/// Longest encoded line, counting a soft break's `=` (RFC 2045 rule 5).
const MAX_LINE: usize = 76;

/// Bytes that may stand for themselves anywhere on a line: printable ASCII
/// except `=`, plus space and tab, which are literal except at a line's end.
const LITERAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 33;
    while b <= 126 {
        table[b] = b != b'=' as usize;
        b += 1;
    }
    table[b' ' as usize] = true;
    table[b'\t' as usize] = true;
    table
};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Encodes a text part. Line breaks in any form (CRLF, bare LF, bare CR)
/// become CRLF hard breaks; every other byte outside printable ASCII, `=`,
/// and white space at a line's end are escaped; no encoded line exceeds 76
/// characters. Returns `None` when more than a third of the bytes need
/// escaping (mostly non-ASCII text, lettre's rule too), where base64 is the
/// better choice.
pub(super) fn encode_text(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 16 + 16);
    let mut escaped = 0;
    let mut rest = input;
    loop {
        let end = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
        escaped += encode_line(&rest[..end], &mut out);
        if escaped > input.len() / 3 {
            return None;
        }
        let Some(&brk) = rest.get(end) else {
            return Some(out);
        };
        out.extend_from_slice(b"\r\n");
        let crlf = brk == b'\r' && rest.get(end + 1) == Some(&b'\n');
        rest = &rest[end + if crlf { 2 } else { 1 }..];
    }
}

/// One hard line, without its line break; returns how many bytes it escaped.
fn encode_line(line: &[u8], out: &mut Vec<u8>) -> usize {
    let n = line.len();
    let mut col = 0;
    let mut escaped = 0;
    let mut i = 0;
    while i < n {
        let mut run_end = i + line[i..]
            .iter()
            .position(|&b| !LITERAL[b as usize])
            .unwrap_or(n - i);
        // White space that ends the line is escaped, or decoders would drop it.
        if run_end == n && matches!(line[n - 1], b' ' | b'\t') {
            run_end -= 1;
        }
        while i < run_end {
            let left = run_end - i;
            // The line's last run may fill column 76; otherwise one column
            // stays free for a soft break's `=`.
            let take = if run_end == n && col + left <= MAX_LINE {
                left
            } else {
                left.min((MAX_LINE - 1).saturating_sub(col))
            };
            if take == 0 {
                soft_break(out, &mut col);
                continue;
            }
            out.extend_from_slice(&line[i..i + take]);
            col += take;
            i += take;
        }
        if i < n {
            let limit = if i + 1 == n { MAX_LINE } else { MAX_LINE - 1 };
            if col + 3 > limit {
                soft_break(out, &mut col);
            }
            let b = line[i];
            out.extend_from_slice(&[b'=', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            col += 3;
            i += 1;
            escaped += 1;
        }
    }
    escaped
}

fn soft_break(out: &mut Vec<u8>, col: &mut usize) {
    out.extend_from_slice(b"=\r\n");
    *col = 0;
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn encode(input: &str) -> String {
        String::from_utf8(encode_text(input.as_bytes()).expect("quoted-printable")).expect("ASCII")
    }

    /// What a reader of the part gets: mail-parser's decoder, independent of ours.
    fn decode(encoded: &[u8]) -> Vec<u8> {
        mail_parser::decoders::quoted_printable::quoted_printable_decode(encoded).expect("decodes")
    }

    fn crlf_lines(input: &str) -> String {
        input
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .replace('\n', "\r\n")
    }

    #[test]
    fn escapes_non_ascii_equals_and_white_space_at_line_ends() {
        assert_eq!(encode("Guimarães"), "Guimar=C3=A3es");
        assert_eq!(encode("a=b"), "a=3Db");
        assert_eq!(encode("end \r\nnext\t"), "end=20\r\nnext=09");
        assert_eq!(encode("in the middle"), "in the middle");
        assert_eq!(encode("ctl\u{7}"), "ctl=07");
    }

    #[test]
    fn every_line_break_becomes_crlf() {
        assert_eq!(encode("a\nb\rc\r\nd\n\n"), "a\r\nb\r\nc\r\nd\r\n\r\n");
        assert_eq!(encode("\r\n"), "\r\n");
        assert_eq!(encode(""), "");
    }

    #[test]
    fn long_lines_get_soft_breaks_at_76_characters_without_splitting_an_escape() {
        let exactly = "x".repeat(76);
        assert_eq!(encode(&exactly), exactly, "a last run may fill column 76");
        assert_eq!(
            encode(&"x".repeat(77)),
            format!("{}=\r\nxx", "x".repeat(75))
        );
        // 74 literals leave room for one more column, not for an escape.
        let encoded = encode(&format!("{}é", "x".repeat(74)));
        assert_eq!(encoded, format!("{}=\r\n=C3=A9", "x".repeat(74)));
        // An escape that ends the line may end at column 76.
        assert_eq!(
            encode(&format!("{} ", "x".repeat(73))),
            format!("{}=20", "x".repeat(73))
        );
    }

    #[test]
    fn mostly_non_ascii_text_is_left_to_base64() {
        assert!(encode_text("日本語のテキスト".repeat(20).as_bytes()).is_none());
        assert!(encode_text("Grüße aus München".as_bytes()).is_some());
        assert!(encode_text("ü".as_bytes()).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn decodes_to_the_input_with_crlf_line_ends_in_lines_of_at_most_76(
            input in "([a-z =.\t\r\n]|é|€|\u{1}){0,400}"
        ) {
            let Some(encoded) = encode_text(input.as_bytes()) else {
                return Ok(());
            };
            prop_assert!(encoded.is_ascii());
            for line in encoded.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                prop_assert!(line.len() <= MAX_LINE, "{:?}", String::from_utf8_lossy(line));
                prop_assert!(!line.ends_with(b" ") && !line.ends_with(b"\t"));
                prop_assert!(!line.contains(&b'\r'), "a bare CR in the output");
            }
            let decoded = decode(&encoded);
            prop_assert_eq!(String::from_utf8_lossy(&decoded), crlf_lines(&input));
        }
    }
}
