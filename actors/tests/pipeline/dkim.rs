//! DKIM end to end: keys made by openssl, configured in `send.dkim`, and the bytes
//! the sink received checked by mail-auth's verifier against a pre-filled TXT
//! cache, so no DNS query leaves the machine.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use engine::config::DkimEntry;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};

use super::harness::{Harness, Setup, people, run, sink_config, text_of};

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

/// Writes a new private key (`RSA` 2048 or `ED25519`) to `dir`; returns its path
/// and the DKIM TXT record that publishes its public key.
fn generate(dir: &Path, algorithm: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{algorithm}.pem"));
    let key_str = key.to_str().expect("utf-8 path");
    let mut args = vec!["genpkey", "-algorithm", algorithm, "-out", key_str];
    if algorithm == "RSA" {
        args.extend(["-pkeyopt", "rsa_keygen_bits:2048"]);
    }
    openssl(&args);
    let der = dir.join(format!("{algorithm}.pub.der"));
    let der_str = der.to_str().expect("utf-8 path");
    openssl(&[
        "pkey", "-in", key_str, "-pubout", "-outform", "DER", "-out", der_str,
    ]);
    let tag = if algorithm == "ED25519" {
        // RFC 8463: the bare 32-byte key, not the SubjectPublicKeyInfo around it.
        let spki = std::fs::read(&der).expect("der");
        std::fs::write(&der, &spki[spki.len() - 32..]).expect("raw key");
        "ed25519"
    } else {
        "rsa"
    };
    let b64 = openssl(&["base64", "-A", "-in", der_str]);
    let record = format!(
        "v=DKIM1; k={tag}; p={}",
        String::from_utf8_lossy(&b64).trim()
    );
    (key, record)
}

/// The DKIM results of every signature on `message`.
async fn verify(message: &[u8], cache: &TxtCache) -> Vec<DkimResult> {
    // Built with a resolver, but every key is in the cache: nothing is looked up.
    let authenticator = MessageAuthenticator::new_cloudflare().expect("resolver");
    let parsed = AuthenticatedMessage::parse(message).expect("parses");
    authenticator
        .verify_dkim(Parameters::new(&parsed).with_txt_cache(cache))
        .await
        .iter()
        .map(|output| output.result().clone())
        .collect()
}

#[test]
fn messages_are_signed_with_the_from_domains_rsa_or_ed25519_key_and_verify() {
    run(async {
        // Arrange
        let keys = tempfile::TempDir::new().expect("tempdir");
        let (rsa_key, rsa_record) = generate(keys.path(), "RSA");
        let (ed_key, ed_record) = generate(keys.path(), "ED25519");
        let cache = TxtCache(Mutex::new(HashMap::new()));
        for (name, record) in [
            ("rsa._domainkey.rsa.acme.example.", &rsa_record),
            ("ed._domainkey.ed.acme.example.", &ed_record),
        ] {
            let key = DomainKey::parse(record.as_bytes()).expect("valid DKIM record");
            cache.insert(name.into(), Txt::from(key), std::time::Instant::now());
        }
        let setup = Setup {
            sink: sink_config("keep_bytes = true"),
            ..Setup::default()
        };
        let h = Harness::start(setup, |c| {
            c.send.dkim = vec![
                DkimEntry {
                    domain: "rsa.acme.example".into(),
                    selector: "rsa".into(),
                    private_key_file: rsa_key,
                },
                DkimEntry {
                    domain: "ed.acme.example".into(),
                    selector: "ed".into(),
                    private_key_file: ed_key,
                },
            ];
        })
        .await
        .expect("SQLite needs no server");
        let rsa = h
            .campaign(
                "rsa",
                "news@rsa.acme.example",
                &people("r", 3, &["d0.example"]),
            )
            .await;
        let ed = h
            .campaign(
                "ed",
                "news@ed.acme.example",
                &people("e", 3, &["d1.example"]),
            )
            .await;

        // Act
        h.launch(&rsa).await;
        h.launch(&ed).await;
        for campaign in [&rsa, &ed] {
            let counters = h.settle(campaign.id, Duration::from_secs(20)).await;
            assert_eq!(counters.delivered, 3, "{counters:?}");
        }

        // Assert
        let messages = h.sink.recorder.messages();
        assert_eq!(messages.len(), 6);
        for message in &messages {
            let text = text_of(message);
            let domain = if message.rcpt_to[0].ends_with("@d0.example") {
                "rsa"
            } else {
                "ed"
            };
            let expected = format!("d={domain}.acme.example");
            assert!(text.starts_with("DKIM-Signature:"), "{text}");
            assert!(text.contains(&expected), "{expected} missing: {text}");
            let results = verify(message.bytes.as_deref().expect("kept"), &cache).await;
            assert_eq!(results, [DkimResult::Pass], "{}", message.rcpt_to[0]);
        }
        h.shutdown().await;
    });
}

#[test]
fn a_tracked_message_still_verifies_with_its_list_unsubscribe_headers_signed() {
    run(async {
        // Arrange
        let keys = tempfile::TempDir::new().expect("tempdir");
        let (rsa_key, rsa_record) = generate(keys.path(), "RSA");
        let cache = TxtCache(Mutex::new(HashMap::new()));
        let key = DomainKey::parse(rsa_record.as_bytes()).expect("valid DKIM record");
        cache.insert(
            "rsa._domainkey.acme.example.".into(),
            Txt::from(key),
            std::time::Instant::now(),
        );
        let setup = Setup {
            sink: sink_config("keep_bytes = true"),
            ..Setup::default()
        };
        let h = Harness::start(setup, |c| {
            c.tracking.domain = "t.acme.example".into();
            c.send.dkim = vec![DkimEntry {
                domain: "acme.example".into(),
                selector: "rsa".into(),
                private_key_file: rsa_key,
            }];
        })
        .await
        .expect("SQLite needs no server");
        let campaign = h
            .campaign(
                "tracked",
                "news@acme.example",
                &people("t", 3, &["d0.example"]),
            )
            .await;
        let mut definition = super::harness::definition("news@acme.example");
        definition.html = Some(
            "<p>Hi {{first_name}}</p>\n<a href=\"https://shop.example/sale?a=1&amp;b=2\">Sale</a>\n"
                .into(),
        );
        definition.text = Some("Hi {{first_name}}, see https://shop.example/text\n".into());
        let json = serde_json::to_string(&definition).expect("json");
        h.store
            .set_campaign_definition(h.tenant, campaign.id, &json)
            .await
            .expect("tracked definition");

        // Act
        h.launch(&campaign).await;
        let counters = h.settle(campaign.id, Duration::from_secs(20)).await;
        assert_eq!(counters.delivered, 3, "{counters:?}");

        // Assert
        let messages = h.sink.recorder.messages();
        assert_eq!(messages.len(), 3);
        for message in &messages {
            assert!(
                message.mail_from.starts_with("b-"),
                "VERP: {}",
                message.mail_from
            );
            let text = text_of(message).replace("=\r\n", "");
            assert!(
                text.contains("https://t.acme.example/t/c/"),
                "links rewritten"
            );
            assert!(text.contains("https://t.acme.example/t/o/"), "open pixel");
            assert!(
                !text.contains("https://shop.example/"),
                "no original link left"
            );
            assert!(text.contains("List-Unsubscribe: <https://t.acme.example/t/u/"));
            let signature = text
                .split("\r\n")
                .skip_while(|l| !l.starts_with("DKIM-Signature:"))
                .take_while(|l| l.starts_with("DKIM-Signature:") || l.starts_with([' ', '\t']))
                .collect::<String>()
                .to_ascii_lowercase();
            let signed = signature
                .split(';')
                .find_map(|tag| tag.trim().strip_prefix("h="))
                .expect("h= tag")
                .replace([' ', '\t'], "");
            let signed: Vec<&str> = signed.split(':').collect();
            for header in ["list-unsubscribe", "list-unsubscribe-post"] {
                assert!(signed.contains(&header), "{header} not signed: {signed:?}");
            }
            let results = verify(message.bytes.as_deref().expect("kept"), &cache).await;
            assert_eq!(results, [DkimResult::Pass], "{}", message.rcpt_to[0]);
        }
        h.shutdown().await;
    });
}
