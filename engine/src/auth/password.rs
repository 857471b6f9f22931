//! Passwords of web users: argon2id hashes and the password policy (length,
//! common passwords, the user's own names, repeated characters, reuse).

use crate::config::SecurityConfig;
pub use crate::exchange::{hash_password, verify_password};

/// Common passwords, lower case, after the trailing digits and punctuation people
/// add to satisfy rules are cut off (so `Password123!` is `password`). Compact on
/// purpose: the length rule and the pattern rules do most of the work.
const COMMON: &[&str] = &[
    "password",
    "passwort",
    "motdepasse",
    "contrasena",
    "qwerty",
    "qwertz",
    "azerty",
    "qwertyuiop",
    "asdfgh",
    "asdfghjkl",
    "zxcvbnm",
    "letmein",
    "welcome",
    "admin",
    "administrator",
    "login",
    "master",
    "monkey",
    "dragon",
    "football",
    "baseball",
    "iloveyou",
    "sunshine",
    "princess",
    "shadow",
    "superman",
    "batman",
    "trustno",
    "starwars",
    "whatever",
    "freedom",
    "secret",
    "changeme",
    "default",
    "summer",
    "winter",
    "spring",
    "autumn",
    "hello",
    "charlie",
    "michael",
    "jennifer",
    "jordan",
    "hunter",
    "ranger",
    "buster",
    "soccer",
    "hockey",
    "killer",
    "pepper",
    "ginger",
    "cookie",
    "cheese",
    "computer",
    "internet",
    "access",
    "mustang",
    "corvette",
    "matrix",
    "passw",
    "pass",
    "test",
    "tester",
    "testing",
    "guest",
    "user",
    "root",
    "toor",
    "abc",
    "abcd",
    "abcdef",
    "abcdefg",
    "abcdefgh",
    "qazwsx",
    "qweasd",
    "zaq",
    "xsw",
    "mypassword",
    "newpassword",
    "password",
    "passpass",
    "company",
    "marketing",
    "newsletter",
    "broadside",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Why a password was refused; the message is shown to the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the password must have at least {0} characters")]
    TooShort(usize),
    #[error("the password is too common")]
    Common,
    #[error("the password must not contain the user or tenant name")]
    ContainsName,
    #[error("the password is made of too few different characters or a simple sequence")]
    Repetitive,
    #[error("the password was used recently; choose one not among the last {0}")]
    Reused(usize),
}

/// Checks a new password against the policy, except reuse (see `reused`), which
/// needs the stored hashes.
pub fn check_policy(
    password: &str,
    names: &[&str],
    config: &SecurityConfig,
) -> Result<(), PolicyError> {
    if password.chars().count() < config.password_min_length {
        return Err(PolicyError::TooShort(config.password_min_length));
    }
    let lower = password.to_lowercase();
    let stem = lower.trim_end_matches(|c: char| !c.is_alphabetic());
    let stem = stem.trim_start_matches(|c: char| !c.is_alphabetic());
    // Digits alone are dates, phone numbers and PINs: guessed first by every cracker.
    if COMMON.contains(&stem) || lower.chars().all(|c| c.is_ascii_digit()) {
        return Err(PolicyError::Common);
    }
    if names
        .iter()
        .map(|n| n.to_lowercase())
        .any(|n| n.chars().count() >= 3 && lower.contains(&n))
    {
        return Err(PolicyError::ContainsName);
    }
    if is_repetitive(&lower) || is_sequence(&lower) {
        return Err(PolicyError::Repetitive);
    }
    Ok(())
}

/// Fewer than five different characters, or one character four times in a row.
fn is_repetitive(password: &str) -> bool {
    let chars: Vec<char> = password.chars().collect();
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() < 5 || chars.windows(4).any(|w| w.iter().all(|c| *c == w[0]))
}

/// Mostly each character one above (or below) the one before: `abcdefgh1`,
/// `zyxwvuts`, `qrstuvwxyz12`.
fn is_sequence(password: &str) -> bool {
    let codes: Vec<i64> = password.chars().map(|c| i64::from(u32::from(c))).collect();
    let steps: Vec<i64> = codes.windows(2).map(|w| w[1] - w[0]).collect();
    let up = steps.iter().filter(|s| **s == 1).count();
    let down = steps.iter().filter(|s| **s == -1).count();
    !steps.is_empty() && up.max(down) * 5 >= steps.len() * 4
}

/// Whether `password` matches one of `hashes` (the current and earlier ones).
/// CPU-heavy: one argon2 verification per hash.
pub fn reused<'a>(password: &str, mut hashes: impl Iterator<Item = &'a String>) -> bool {
    hashes.any(|hash| verify_password(password, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(password: &str) -> Result<(), PolicyError> {
        check_policy(password, &["alice", "acme"], &SecurityConfig::default())
    }

    #[test]
    fn long_unusual_passwords_pass() {
        assert_eq!(check("correct horse battery"), Ok(()));
    }

    #[test]
    fn each_rule_refuses_what_it_is_for() {
        assert_eq!(check("short1!"), Err(PolicyError::TooShort(12)));
        assert_eq!(check("Password123456!"), Err(PolicyError::Common));
        assert_eq!(check("123456789012"), Err(PolicyError::Common));
        assert_eq!(check("Alice-is-the-best"), Err(PolicyError::ContainsName));
        assert_eq!(check("we love ACME corp"), Err(PolicyError::ContainsName));
        assert_eq!(check("aaaaxyzw1234"), Err(PolicyError::Repetitive));
        assert_eq!(check("abababababab"), Err(PolicyError::Repetitive));
        assert_eq!(check("abcdefghijklm"), Err(PolicyError::Repetitive));
        assert_eq!(check("mnopqrstuvwxyz"), Err(PolicyError::Repetitive));
    }
}
