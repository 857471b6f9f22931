use std::io::{Read, Write};

use pgp::composed::{SignedPublicKey, SignedSecretKey};
use pgp::types::KeyDetails;

use super::*;
use crate::model::TenantName;

fn tenant_key(name: &str) -> SignedSecretKey {
    generate_secret_key(&TenantName::parse(name).expect("name")).expect("generated")
}

/// The tenant's public key as a customer would hold it.
fn as_customer_key(secret: &SignedSecretKey) -> CustomerKey {
    let public = SignedPublicKey::from(secret.clone())
        .to_armored_string(Default::default())
        .expect("armor");
    CustomerKey::parse(public.as_bytes()).expect("valid key")
}

fn encrypt(plain: &[u8], to: &CustomerKey, armored: bool) -> Vec<u8> {
    let mut writer = encrypting_writer(Vec::new(), to, armored).expect("writer");
    // Odd-sized writes cross the writer's chunk boundaries.
    for piece in plain.chunks(7919) {
        writer.write_all(piece).expect("write");
    }
    writer.finish().expect("finished")
}

fn decrypt(message: Vec<u8>, key: &SignedSecretKey) -> Result<Vec<u8>, String> {
    let mut reader =
        decrypting_reader(std::io::Cursor::new(message), key).map_err(|e| e.to_string())?;
    let mut plain = Vec::new();
    reader.read_to_end(&mut plain).map_err(|e| e.to_string())?;
    Ok(plain)
}

fn sample(len: usize) -> Vec<u8> {
    let mut text = b"email,first_name\n".to_vec();
    let mut i = 0;
    while text.len() < len {
        text.extend_from_slice(format!("r{i}@example.com,Name{i}\n").as_bytes());
        i += 1;
    }
    text
}

#[test]
fn what_the_writer_encrypts_the_reader_decrypts_binary_and_armored() {
    let key = tenant_key("acme");
    let customer = as_customer_key(&key);
    let plain = sample(300_000);

    for armored in [false, true] {
        let message = encrypt(&plain, &customer, armored);

        assert!(!message.windows(12).any(|w| w == b"@example.com"));
        assert_eq!(message.starts_with(b"-----BEGIN PGP MESSAGE-----"), armored);
        assert_eq!(decrypt(message, &key).expect("decrypts"), plain);
    }
}

#[test]
fn a_message_for_another_key_is_refused_by_name() {
    let message = encrypt(
        b"email\na@example.com\n",
        &as_customer_key(&tenant_key("a")),
        false,
    );

    let error = decrypt(message, &tenant_key("b")).expect_err("wrong key");

    assert!(
        error.contains("not encrypted to this tenant's key"),
        "{error}"
    );
}

#[test]
fn plaintext_and_damaged_messages_fail_with_a_reason() {
    let key = tenant_key("acme");
    let not_pgp = decrypt(b"email\na@example.com\n".to_vec(), &key).expect_err("plain");
    assert!(not_pgp.contains("cannot decrypt"), "{not_pgp}");

    let message = encrypt(&sample(100_000), &as_customer_key(&key), false);
    let mut cut = message.clone();
    cut.truncate(message.len() / 2);
    let truncated = decrypt(cut, &key).expect_err("truncated");
    assert!(truncated.contains("cannot decrypt"), "{truncated}");

    // Streaming releases plaintext before the integrity check; the check at the
    // end must still fail the read.
    let mut tampered = message;
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    let altered = decrypt(tampered, &key).expect_err("tampered");
    assert!(altered.contains("cannot decrypt"), "{altered}");
}

#[test]
fn a_writer_dropped_before_finish_does_not_end_the_message() {
    let key = tenant_key("acme");
    let customer = as_customer_key(&key);
    let shared = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let mut writer = encrypting_writer(Sink(shared.clone()), &customer, false).expect("w");
        writer.write_all(&sample(200_000)).expect("write");
    }
    let written = shared.lock().expect("lock").clone();

    assert!(decrypt(written, &key).is_err());
}

/// A writer whose bytes the test can read after the encrypting writer is gone.
struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn customer_keys_must_parse_and_be_able_to_encrypt() {
    let garbage = CustomerKey::parse(b"hello").expect_err("garbage");
    assert!(
        garbage.to_string().contains("not an OpenPGP public key"),
        "{garbage}"
    );

    let key = tenant_key("acme");
    let mut sign_only = SignedPublicKey::from(key.clone());
    sign_only.public_subkeys.clear();
    let armored = sign_only
        .to_armored_string(Default::default())
        .expect("armor");
    let error = CustomerKey::parse(armored.as_bytes()).expect_err("sign-only");
    assert!(
        error.to_string().contains("no valid encryption subkey"),
        "{error}"
    );

    let good = as_customer_key(&key);
    assert_eq!(
        good.fingerprint(),
        format!("{:X}", SignedPublicKey::from(key).fingerprint())
    );
}

#[test]
fn encrypted_names_are_recognised_and_stripped() {
    assert!(is_encrypted_name("list.csv.gpg"));
    assert!(is_encrypted_name("list.csv.asc"));
    assert!(is_encrypted_name("list.pgp"));
    assert!(!is_encrypted_name("list.csv"));
    assert_eq!(plain_name("list.csv.pgp"), "list.csv");
    assert_eq!(plain_name("list.csv"), "list.csv");
}
