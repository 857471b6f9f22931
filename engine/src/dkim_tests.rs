//! DKIM tests: keys made by openssl, signatures checked by mail-auth's verifier
//! against a pre-filled DNS cache, so nothing touches the network.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};

use super::*;
use crate::render::{CampaignDefinition, Mailbox};

/// A TXT cache the test fills in; the verifier asks it before any resolver.
struct TxtCache(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for TxtCache {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().expect("lock").get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().expect("lock").remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
        self.0.lock().expect("lock").insert(key, value);
    }
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Writes a new private key to `dir` and returns its path and the DKIM TXT record.
fn generate(dir: &Path, algorithm: &str, pkcs1: bool) -> (std::path::PathBuf, String) {
    let key = dir.join(format!("{algorithm}.pem"));
    let key_str = key.to_str().expect("utf-8 path");
    let mut args = vec!["genpkey", "-algorithm", algorithm, "-out", key_str];
    if algorithm == "RSA" {
        args.extend(["-pkeyopt", "rsa_keygen_bits:2048"]);
    }
    openssl(&args);
    if pkcs1 {
        openssl(&["rsa", "-in", key_str, "-traditional", "-out", key_str]);
    }
    let der = dir.join(format!("{algorithm}.pub.der"));
    let der_str = der.to_str().expect("utf-8 path");
    openssl(&[
        "pkey", "-in", key_str, "-pubout", "-outform", "DER", "-out", der_str,
    ]);
    let (tag, public) = if algorithm == "ED25519" {
        // RFC 8463: the bare 32-byte key, not the SubjectPublicKeyInfo around it.
        let spki = std::fs::read(&der).expect("der");
        std::fs::write(&der, &spki[spki.len() - 32..]).expect("raw key");
        ("ed25519", der_str)
    } else {
        ("rsa", der_str)
    };
    let b64 = openssl(&["base64", "-A", "-in", public]);
    let record = format!(
        "v=DKIM1; k={tag}; p={}",
        String::from_utf8_lossy(&b64).trim()
    );
    (key, record)
}

fn signed_message(signer: &DkimSigner) -> Vec<u8> {
    let mut def: CampaignDefinition = crate::render::definition_for_tests();
    def.from = Mailbox {
        name: Some("Acme".into()),
        address: crate::model::EmailAddress::parse("news@acme.example").expect("valid"),
    };
    let message = crate::render::render_for_tests(&def, ["Zoë", "<b>Zürich</b>"]);
    signer.sign(&message.bytes).expect("signs")
}

async fn verify(message: &[u8], record: &str) -> DkimResult {
    let cache = TxtCache(Mutex::new(HashMap::new()));
    let key = DomainKey::parse(record.as_bytes()).expect("valid DKIM record");
    cache.insert(
        "sel._domainkey.acme.example.".into(),
        Txt::from(key),
        std::time::Instant::now(),
    );
    let authenticator = MessageAuthenticator::new_cloudflare().expect("resolver");
    let parsed = AuthenticatedMessage::parse(message).expect("parses");
    let outputs = authenticator
        .verify_dkim(Parameters::new(&parsed).with_txt_cache(&cache))
        .await;
    assert_eq!(outputs.len(), 1, "one signature");
    outputs[0].result().clone()
}

async fn sign_and_verify(algorithm: &str, pkcs1: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key_file, record) = generate(dir.path(), algorithm, pkcs1);
    let keys = DkimKeys::load(&[DkimKeyEntry {
        domain: "ACME.example".into(),
        selector: "sel".into(),
        private_key_file: key_file,
    }])
    .expect("loads");
    let signer = keys
        .for_domain("acme.EXAMPLE")
        .expect("signer for the domain");
    let signed = signed_message(signer);
    let header = String::from_utf8_lossy(&signed[..signed.len().min(600)]).into_owned();
    assert!(header.starts_with("DKIM-Signature: v=1; a="), "{header}");
    assert_eq!(verify(&signed, &record).await, DkimResult::Pass, "{header}");

    let text = String::from_utf8(signed).expect("ascii");
    let tampered = text.replacen("Hi Zo", "Hi Xo", 1);
    assert_ne!(tampered, text, "the body holds the greeting");
    // mail-auth classes a body hash mismatch as neutral, a bad header signature as fail.
    let result = verify(tampered.as_bytes(), &record).await;
    assert!(
        format!("{result:?}").contains("FailedBodyHashMatch"),
        "{result:?}"
    );

    let tampered = text.replacen("To: ann@example.net", "To: bob@example.net", 1);
    assert_ne!(tampered, text, "the To header is signed");
    let result = verify(tampered.as_bytes(), &record).await;
    assert!(matches!(result, DkimResult::Fail(_)), "{result:?}");
}

#[tokio::test]
async fn an_rsa_2048_pkcs8_signature_verifies_and_tampering_with_body_or_header_breaks_it() {
    sign_and_verify("RSA", false).await;
}

#[tokio::test]
async fn an_rsa_2048_pkcs1_signature_verifies() {
    sign_and_verify("RSA", true).await;
}

#[tokio::test]
async fn an_ed25519_signature_verifies_and_tampering_with_body_or_header_breaks_it() {
    sign_and_verify("ED25519", false).await;
}

#[test]
fn a_file_that_is_not_a_key_is_refused_and_no_domain_means_no_signer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("junk.pem");
    std::fs::write(&file, "not a key").expect("write");
    let entry = DkimKeyEntry {
        domain: "acme.example".into(),
        selector: "sel".into(),
        private_key_file: file,
    };
    assert!(matches!(
        DkimKeys::load(&[entry]),
        Err(DkimError::Pem { .. })
    ));
    assert!(DkimKeys::default().for_domain("acme.example").is_none());
}
