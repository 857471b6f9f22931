//! DKIM for load runs: an RSA-2048 key made by openssl, and a verifier
//! (mail-auth) whose TXT cache already holds the public key, so checking what
//! the sink received sends no DNS query anywhere.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context as _, ensure};
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};

/// A TXT cache filled in advance; the verifier asks it before any resolver.
struct TxtCache(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for TxtCache {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(key, value);
        }
    }
}

/// A signing key on disk and the verifier that knows its public half.
pub struct DkimFixture {
    /// The PEM private key, for `send.dkim`.
    pub key_file: PathBuf,
    pub domain: String,
    pub selector: String,
    cache: TxtCache,
    authenticator: MessageAuthenticator,
}

impl DkimFixture {
    /// Generates an RSA-2048 key in `dir` for `selector._domainkey.domain`.
    pub fn rsa2048(dir: &Path, domain: &str, selector: &str) -> anyhow::Result<Self> {
        let key_file = dir.join(format!("dkim-{domain}.pem"));
        let der = dir.join(format!("dkim-{domain}.pub.der"));
        openssl(&[
            "genpkey".as_ref(),
            "-algorithm".as_ref(),
            "RSA".as_ref(),
            "-pkeyopt".as_ref(),
            "rsa_keygen_bits:2048".as_ref(),
            "-out".as_ref(),
            key_file.as_os_str(),
        ])?;
        openssl(&[
            "pkey".as_ref(),
            "-in".as_ref(),
            key_file.as_os_str(),
            "-pubout".as_ref(),
            "-outform".as_ref(),
            "DER".as_ref(),
            "-out".as_ref(),
            der.as_os_str(),
        ])?;
        let b64 = openssl(&[
            "base64".as_ref(),
            "-A".as_ref(),
            "-in".as_ref(),
            der.as_os_str(),
        ])?;
        let record = format!("v=DKIM1; k=rsa; p={}", String::from_utf8_lossy(&b64).trim());
        let key = DomainKey::parse(record.as_bytes())
            .map_err(|e| anyhow::anyhow!("the generated DKIM record does not parse: {e}"))?;
        let cache = TxtCache(Mutex::new(HashMap::new()));
        let name = format!("{selector}._domainkey.{domain}.");
        cache.insert(name.into(), Txt::from(key), std::time::Instant::now());
        // Built with a resolver configuration, but every key is in the cache:
        // nothing is ever looked up.
        let authenticator =
            MessageAuthenticator::new_cloudflare().context("building the DKIM verifier")?;
        Ok(Self {
            key_file,
            domain: domain.to_owned(),
            selector: selector.to_owned(),
            cache,
            authenticator,
        })
    }

    /// The `send.dkim` value for `BROADSIDE_SEND__DKIM`.
    pub fn config_value(&self) -> String {
        format!(
            r#"[{{domain="{}", selector="{}", private_key_file="{}"}}]"#,
            self.domain,
            self.selector,
            self.key_file.display()
        )
    }

    /// Whether `message` carries a signature of this key that verifies.
    pub async fn verifies(&self, message: &[u8]) -> bool {
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            return false;
        };
        let results = self
            .authenticator
            .verify_dkim(Parameters::new(&parsed).with_txt_cache(&self.cache))
            .await;
        !results.is_empty()
            && results
                .iter()
                .all(|output| matches!(output.result(), DkimResult::Pass))
    }
}

fn openssl(args: &[&std::ffi::OsStr]) -> anyhow::Result<Vec<u8>> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .context("running openssl")?;
    ensure!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output.stdout)
}
