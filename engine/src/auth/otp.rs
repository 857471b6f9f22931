//! One-time secrets: SMS codes, TOTP (RFC 6238) with replay prevention, and
//! recovery codes. Codes are stored as hashes only.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Totp};

/// Bytes of a TOTP secret: 160 bits, as RFC 4226 recommends.
const TOTP_SECRET_BYTES: usize = 20;
/// Recovery codes handed out at TOTP enrolment.
pub const RECOVERY_CODES: usize = 10;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The system generator failing means the OS cannot provide randomness at
    // all; no login can be secure then, so this is a start-up-class failure.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random generator works");
    bytes
}

/// A random six-digit code, uniformly distributed (rejection sampling).
pub fn sms_code() -> String {
    loop {
        let n = u32::from_be_bytes(random_bytes::<4>());
        // 4_294_000_000 is the largest multiple of 1_000_000 below 2^32.
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// A recovery code: 10 characters from an alphabet without look-alikes, in two
/// groups (`abcde-fghjk`), 50 bits.
pub fn recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let bytes = random_bytes::<10>();
    let chars: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

/// The stored form of a code: SHA-256 over the user name and the code, hex. The
/// codes are short-lived or high-entropy, so a fast hash is enough.
pub fn code_hash(user: &str, code: &str) -> String {
    let digest = Sha256::digest(format!("{user}\n{}", code.trim()).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two hashes in constant time.
pub fn hash_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A new TOTP secret, base32 as authenticator apps expect it.
pub fn new_totp_secret() -> String {
    totp_rs::Secret::from(random_bytes::<TOTP_SECRET_BYTES>().to_vec()).to_base32()
}

fn totp(secret_base32: &str) -> Option<Totp> {
    let secret = totp_rs::Secret::try_from_base32(secret_base32).ok()?;
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .build()
        .ok()
}

/// The `otpauth://` URL an authenticator app scans.
pub fn otpauth_url(secret_base32: &str, issuer: &str, account: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_base32}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// The time step `code` is valid for at unix time `now` (±1 step of skew), if
/// that step is later than `last_used`: each step's code works once.
pub fn check_totp(
    secret_base32: &str,
    code: &str,
    now: u64,
    last_used: Option<u64>,
) -> Option<u64> {
    let step = totp(secret_base32)?.check(code.trim(), now)?;
    (last_used.is_none_or(|last| step > last)).then_some(step)
}

/// The code of `secret_base32` at unix time `now` (tests, and the enrolment page
/// never needs it).
pub fn totp_code(secret_base32: &str, now: u64) -> Option<String> {
    Some(totp(secret_base32)?.generate(now).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_totp_code_works_once_per_time_step() {
        let secret = new_totp_secret();
        let now = 1_800_000_015;
        let code = totp_code(&secret, now).expect("code");
        let step = check_totp(&secret, &code, now, None).expect("valid");
        assert_eq!(step, now / 30);
        assert_eq!(check_totp(&secret, &code, now, Some(step)), None, "replay");
        assert_eq!(check_totp(&secret, &code, now + 300, None), None, "expired");
        assert_eq!(check_totp(&secret, "000000x", now, None), None);
    }

    #[test]
    fn rfc_6238_test_vector_matches() {
        // RFC 6238 appendix B, SHA-1, T = 59: 94287082 (8 digits); its last six.
        let secret = totp_rs::Secret::from(b"12345678901234567890".to_vec()).to_base32();
        assert_eq!(totp_code(&secret, 59).as_deref(), Some("287082"));
    }

    #[test]
    fn codes_have_their_shape() {
        let code = sms_code();
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(recovery_code().len(), 11);
        assert!(hash_eq(&code_hash("a", "123"), &code_hash("a", " 123 ")));
        assert!(!hash_eq(&code_hash("a", "123"), &code_hash("b", "123")));
    }
}
