//! Human units for configuration values: durations ("5s", "1h30m") and byte sizes
//! ("8KiB", "10MB"). Both parse once and print back in one canonical form, so
//! `broadside config check` shows what an operator would write ("5m", not 300).

use std::fmt;
use std::str::FromStr;
use std::time;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

const DURATION_EXPECTED: &str = r#"expected a duration like "30s", "5m", "2h" or "7d""#;
const DURATION_BARE: &str = r#"a bare number has no unit; add a unit, e.g. "5s""#;
const DURATION_TOO_LARGE: &str = "duration is too large";
const SIZE_EXPECTED: &str = r#"expected a size like "512", "8KiB", "10MB" or "1GiB""#;
const SIZE_TOO_LARGE: &str = "size is too large";

/// Why a unit value was refused. `Display` names the input, for use on its own;
/// [`UnitError::reason`] leaves it out, for messages that already show the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}; got {input:?}")]
pub struct UnitError {
    input: String,
    reason: &'static str,
}

impl UnitError {
    fn new(input: &str, reason: &'static str) -> Self {
        Self {
            input: input.to_owned(),
            reason,
        }
    }

    /// What was wrong, without the offending input.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The text that was refused.
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// Splits `"1h 30m"` into `[(1, "h"), (30, "m")]`; a trailing number without a unit
/// yields an empty unit, which each caller judges on its own terms.
fn components(input: &str) -> Option<Vec<(&str, &str)>> {
    let mut rest = input.trim();
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return None;
        }
        let number = &rest[..digits_end];
        rest = rest[digits_end..].trim_start();
        let unit_end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        parts.push((number, &rest[..unit_end]));
        rest = rest[unit_end..].trim_start();
    }
    Some(parts)
}

/// A span of time with millisecond precision, written with units. Bare numbers are
/// refused because "timeout = 30" is ambiguous (seconds? milliseconds?).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    millis: u64,
}

/// Largest first: the canonical form is the greedy decomposition over this table.
const DURATION_UNITS: [(&str, u64); 6] = [
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl Duration {
    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }

    pub const fn from_secs(secs: u64) -> Self {
        Self {
            millis: secs.saturating_mul(1_000),
        }
    }

    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    pub const fn as_std(self) -> time::Duration {
        time::Duration::from_millis(self.millis)
    }

    pub const fn is_zero(self) -> bool {
        self.millis == 0
    }
}

impl From<Duration> for time::Duration {
    fn from(value: Duration) -> Self {
        value.as_std()
    }
}

impl FromStr for Duration {
    type Err = UnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| UnitError::new(input, reason);
        let parts = components(input).ok_or_else(|| err(DURATION_EXPECTED))?;
        if parts.is_empty() {
            return Err(err(DURATION_EXPECTED));
        }
        if parts.len() == 1 && parts[0].1.is_empty() {
            return Err(err(DURATION_BARE));
        }
        let mut millis: u64 = 0;
        for (number, unit) in parts {
            let (_, scale) = DURATION_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .ok_or_else(|| err(DURATION_EXPECTED))?;
            let number: u64 = number.parse().map_err(|_| err(DURATION_TOO_LARGE))?;
            millis = number
                .checked_mul(*scale)
                .and_then(|part| millis.checked_add(part))
                .ok_or_else(|| err(DURATION_TOO_LARGE))?;
        }
        Ok(Self { millis })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.millis;
        for (unit, scale) in DURATION_UNITS {
            if rest >= scale {
                write!(f, "{}{unit}", rest / scale)?;
                rest %= scale;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(|e: UnitError| E::custom(e.reason()))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Duration, E> {
                Err(E::custom(DURATION_BARE))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Duration, E> {
                Err(E::custom(DURATION_BARE))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Duration, E> {
                Err(E::custom(DURATION_EXPECTED))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A number of bytes. "KB"/"MB"/"GB" are powers of 1000 and "KiB"/"MiB"/"GiB" powers
/// of 1024, as their standards say; a bare number is bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

/// Within one magnitude the binary unit comes first, so it wins ties in `Display`.
const SIZE_UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("TB", 1_000_000_000_000),
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("KiB", 1 << 10),
    ("KB", 1_000),
    ("B", 1),
];

impl ByteSize {
    pub const fn bytes(self) -> u64 {
        self.0
    }

    pub const fn kib(n: u64) -> Self {
        Self(n.saturating_mul(1024))
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| UnitError::new(input, reason);
        let parts = components(input).ok_or_else(|| err(SIZE_EXPECTED))?;
        let [(number, unit)] = parts.as_slice() else {
            return Err(err(SIZE_EXPECTED));
        };
        let scale = if unit.is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                .map(|(_, scale)| *scale)
                .ok_or_else(|| err(SIZE_EXPECTED))?
        };
        let number: u64 = number.parse().map_err(|_| err(SIZE_TOO_LARGE))?;
        number
            .checked_mul(scale)
            .map(Self)
            .ok_or_else(|| err(SIZE_TOO_LARGE))
    }
}

impl fmt::Display for ByteSize {
    /// The exact unit that gives the smallest number: 8192 is "8KiB", 10^7 "10MB".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, scale) = SIZE_UNITS
            .iter()
            .filter(|(_, scale)| self.0 > 0 && self.0.is_multiple_of(*scale))
            .min_by_key(|(_, scale)| self.0 / scale)
            .copied()
            .unwrap_or(("B", 1));
        write!(f, "{}{unit}", self.0 / scale)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SIZE_EXPECTED)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(|e: UnitError| E::custom(e.reason()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(SIZE_EXPECTED))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ByteSize, E> {
                Err(E::custom(SIZE_EXPECTED))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_with_units_parse_to_their_length() {
        let cases = [
            ("250ms", 250),
            ("5s", 5_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("7d", 604_800_000),
            ("2w", 1_209_600_000),
            ("1h30m", 5_400_000),
            ("1h 30m", 5_400_000),
            (" 5 s ", 5_000),
            ("0s", 0),
        ];
        for (input, millis) in cases {
            let parsed: Result<Duration, _> = input.parse();
            assert_eq!(parsed, Ok(Duration::from_millis(millis)), "input {input:?}");
        }
    }

    #[test]
    fn malformed_durations_are_refused_with_a_reason() {
        let cases = [
            ("5 parsecs", DURATION_EXPECTED),
            ("", DURATION_EXPECTED),
            ("1.5h", DURATION_EXPECTED),
            ("-5s", DURATION_EXPECTED),
            ("5S", DURATION_EXPECTED),
            ("s", DURATION_EXPECTED),
            ("1h30", DURATION_EXPECTED),
            ("300", DURATION_BARE),
            ("99999999999999999999s", DURATION_TOO_LARGE),
            ("9999999999999999w", DURATION_TOO_LARGE),
        ];
        for (input, reason) in cases {
            let err = input.parse::<Duration>().expect_err(input);
            assert_eq!(err.reason(), reason, "input {input:?}");
        }
    }

    #[test]
    fn a_duration_error_names_the_expected_form_and_the_input() {
        let err = "5 parsecs".parse::<Duration>().expect_err("must fail");

        assert_eq!(
            err.to_string(),
            r#"expected a duration like "30s", "5m", "2h" or "7d"; got "5 parsecs""#
        );
    }

    #[test]
    fn durations_print_in_canonical_form() {
        let cases = [
            (0, "0s"),
            (250, "250ms"),
            (300_000, "5m"),
            (5_400_000, "1h30m"),
            (8 * 86_400_000, "1w1d"),
            (1_500, "1s500ms"),
        ];
        for (millis, text) in cases {
            assert_eq!(Duration::from_millis(millis).to_string(), text);
        }
    }

    #[test]
    fn sizes_with_and_without_units_parse_to_bytes() {
        let cases = [
            ("512", 512),
            ("512B", 512),
            ("8KiB", 8_192),
            ("8kib", 8_192),
            ("4KB", 4_000),
            ("10MB", 10_000_000),
            ("2MiB", 2 << 20),
            ("1GB", 1_000_000_000),
            ("1GiB", 1 << 30),
            ("1 TiB", 1 << 40),
            ("0", 0),
        ];
        for (input, bytes) in cases {
            assert_eq!(input.parse(), Ok(ByteSize(bytes)), "input {input:?}");
        }
    }

    #[test]
    fn malformed_sizes_are_refused_with_a_reason() {
        let cases = [
            ("", SIZE_EXPECTED),
            ("lots", SIZE_EXPECTED),
            ("1.5MB", SIZE_EXPECTED),
            ("-1", SIZE_EXPECTED),
            ("8 KiB 2B", SIZE_EXPECTED),
            ("3XB", SIZE_EXPECTED),
            ("99999999999999999999", SIZE_TOO_LARGE),
            ("99999999TiB", SIZE_TOO_LARGE),
        ];
        for (input, reason) in cases {
            let err = input.parse::<ByteSize>().expect_err(input);
            assert_eq!(err.reason(), reason, "input {input:?}");
        }
    }

    #[test]
    fn sizes_print_with_the_unit_that_gives_the_smallest_exact_number() {
        let cases = [
            (0, "0B"),
            (512, "512B"),
            (1_000, "1KB"),
            (8_192, "8KiB"),
            (10_000_000, "10MB"),
            (1_024_000, "1000KiB"),
            (1 << 30, "1GiB"),
            (1_001, "1001B"),
        ];
        for (bytes, text) in cases {
            assert_eq!(ByteSize(bytes).to_string(), text);
        }
    }

    #[test]
    fn toml_integers_are_bytes_but_not_durations() {
        #[derive(Deserialize)]
        struct Sample {
            size: ByteSize,
            wait: Option<Duration>,
        }

        let size: Sample = toml::from_str("size = 4096").expect("bare size parses");
        let wait = toml::from_str::<Sample>("size = 1\nwait = 30").err();

        assert_eq!(size.size, ByteSize(4096));
        assert_eq!(size.wait, None);
        let message = wait.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("add a unit"), "{message}");
    }

    proptest! {
        #[test]
        fn every_duration_survives_printing_and_parsing(millis in 0u64..u64::MAX / 2) {
            let duration = Duration::from_millis(millis);
            prop_assert_eq!(duration.to_string().parse::<Duration>(), Ok(duration));
        }

        #[test]
        fn every_size_survives_printing_and_parsing(bytes in any::<u64>()) {
            let size = ByteSize(bytes);
            prop_assert_eq!(size.to_string().parse::<ByteSize>(), Ok(size));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(input in "\\PC{0,20}") {
            let _ = input.parse::<Duration>();
            let _ = input.parse::<ByteSize>();
        }
    }
}
