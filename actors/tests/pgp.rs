//! PGP against the real GnuPG, both ways: a customer encrypts with `gpg` to the
//! tenant's key and the control-file watcher imports it; Broadside encrypts to a
//! key `gpg` generated and `gpg --decrypt` gives back the exact bytes. Without
//! /usr/bin/gpg the tests skip loudly (`.ci/run` installs gnupg).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use engine::exchange::Folder;
use tempfile::TempDir;

use crate::api::TestApp;
use crate::exchange::{Env, text, wait_until};

/// True when GnuPG is installed; otherwise says so loudly.
fn have_gpg() -> bool {
    let found = Path::new("/usr/bin/gpg").exists();
    if !found {
        eprintln!("\n*** SKIPPED: /usr/bin/gpg missing; install gnupg ***\n");
    }
    found
}

/// A customer's GnuPG home of its own; its agent is stopped on drop.
struct Gpg {
    home: TempDir,
}

impl Gpg {
    fn new() -> Gpg {
        let home = TempDir::new().expect("gnupg home");
        std::fs::set_permissions(
            home.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        Gpg { home }
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.try_run(args);
        assert!(out.status.success(), "gpg {args:?}: {}", text(&out));
        out
    }

    fn try_run(&self, args: &[&str]) -> Output {
        Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args(["--batch", "--yes", "--no-tty", "--trust-model", "always"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run gpg")
    }

    /// Generates a key for `uid` without a passphrase; returns its fingerprint.
    fn generate(&self, uid: &str, algo: &str, usage: &str) -> String {
        self.run(&[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            algo,
            usage,
            "never",
        ]);
        let listed = self.run(&["--with-colons", "--list-keys", uid]);
        let listing = String::from_utf8_lossy(&listed.stdout).into_owned();
        listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_owned())
            .expect("a fingerprint")
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// `broadside <args>` against the test's data directory.
fn broadside(env: &Env, args: &[&str]) -> Output {
    let toml = env.dir.path().join("broadside.toml");
    Command::new(env!("CARGO_BIN_EXE_broadside"))
        .arg("--config")
        .arg(&toml)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("broadside")
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Rows the importer accepts, `count` of them.
fn recipients_csv(count: usize) -> String {
    let mut csv = String::from("email,first_name\n");
    for i in 0..count {
        csv.push_str(&format!("r{i}@gpg.example,Name{i}\n"));
    }
    csv
}

/// Drops `name` and its control file into acme's incoming folder.
fn upload(env: &Env, name: &str, from: &Path) {
    std::fs::copy(from, env.path(&env.acme, Folder::Incoming, name)).expect("copy");
    let control = format!("{name}.ctl");
    std::fs::write(env.path(&env.acme, Folder::Incoming, &control), "").expect("control");
}

/// The tenant's public key, imported into `gpg`; returns its fingerprint.
fn import_tenant_key(env: &Env, gpg: &Gpg) -> String {
    let public = ok(broadside(env, &["pgp", "public-key", "--tenant", "acme"]));
    assert!(
        public.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"),
        "{public}"
    );
    let file = env.dir.path().join("tenant.asc");
    std::fs::write(&file, &public).expect("write key");
    gpg.run(&["--import", path(&file)]);
    let listed = gpg.run(&["--with-colons", "--list-keys", "Broadside tenant acme"]);
    let listing = String::from_utf8_lossy(&listed.stdout).into_owned();
    listing
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .map(|l| l.trim_matches(':').to_owned())
        .expect("imported")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn files_gpg_encrypts_to_the_tenant_key_are_imported_binary_and_armored() {
    if !have_gpg() {
        return;
    }
    let mut env = Env::prepare().await;
    env.begin().await;
    let gpg = Gpg::new();
    let tenant_key = import_tenant_key(&env, &gpg);
    let plain = env.local("list.csv", &recipients_csv(300));
    let binary = env.dir.path().join("list.csv.gpg");
    let armored = env.dir.path().join("list.csv.asc");
    gpg.run(&[
        "-r",
        &tenant_key,
        "-o",
        path(&binary),
        "--encrypt",
        path(&plain),
    ]);
    gpg.run(&[
        "-r",
        &tenant_key,
        "--armor",
        "-o",
        path(&armored),
        "--encrypt",
        path(&plain),
    ]);

    upload(&env, "spring.csv.gpg", &binary);
    upload(&env, "autumn.csv.asc", &armored);

    for name in ["spring.csv.gpg", "autumn.csv.asc"] {
        let finished = env.path(&env.acme, Folder::Finished, name);
        wait_until(name, || finished.exists()).await;
    }
    assert_eq!(env.recipients(&env.acme, "spring").await, 300);
    assert_eq!(env.recipients(&env.acme, "autumn").await, 300);
    let kept = std::fs::read(env.path(&env.acme, Folder::Finished, "spring.csv.gpg"));
    assert_eq!(
        kept.expect("finished"),
        std::fs::read(&binary).expect("sent")
    );
}

#[tokio::test]
async fn wrong_key_corrupt_and_plain_files_go_to_invalids_with_the_reason() {
    if !have_gpg() {
        return;
    }
    let mut env = Env::prepare().await;
    env.begin().await;
    let gpg = Gpg::new();
    let tenant_key = import_tenant_key(&env, &gpg);
    let stranger = gpg.generate("Stranger <s@gpg.example>", "future-default", "default");
    let plain = env.local("list.csv", &recipients_csv(2000));
    let wrong = env.dir.path().join("wrong.gpg");
    gpg.run(&[
        "-r",
        &stranger,
        "-o",
        path(&wrong),
        "--encrypt",
        path(&plain),
    ]);
    let good = env.dir.path().join("good.gpg");
    gpg.run(&[
        "-r",
        &tenant_key,
        "-o",
        path(&good),
        "--encrypt",
        path(&plain),
    ]);
    let mut bytes = std::fs::read(&good).expect("encrypted");
    bytes.truncate(bytes.len() / 2);
    let corrupt = env.dir.path().join("corrupt.gpg");
    std::fs::write(&corrupt, bytes).expect("corrupt");

    let cases = [
        (
            "wrong.csv.gpg",
            &wrong,
            "not encrypted to this tenant's key",
        ),
        ("corrupt.csv.gpg", &corrupt, "cannot decrypt"),
        ("plain.csv.pgp", &plain, "not an OpenPGP message"),
    ];
    for (name, file, _) in cases {
        upload(&env, name, file);
    }

    for (name, _, reason) in cases {
        let invalid = env.path(&env.acme, Folder::Invalids, name);
        wait_until(name, || invalid.exists()).await;
        let stem = name.split('.').next().expect("stem");
        let report_path = env.path(&env.acme, Folder::Invalids, &format!("{stem}.errors.csv"));
        let report = std::fs::read_to_string(report_path).expect("errors report");
        assert!(report.contains(reason), "{name}: {report}");
    }
    assert_eq!(env.recipients(&env.acme, "corrupt").await, 0);
}

#[tokio::test]
async fn what_broadside_encrypts_to_a_gpg_key_gpg_decrypts_to_the_same_bytes() {
    if !have_gpg() {
        return;
    }
    let env = Env::prepare().await;
    let gpg = Gpg::new();
    let customer = gpg.generate("Customer <c@gpg.example>", "default", "default");
    let exported = gpg.run(&["--armor", "--export", &customer]).stdout;
    let key_file = env.dir.path().join("customer.asc");
    std::fs::write(&key_file, exported).expect("key");
    let set = ok(broadside(
        &env,
        &[
            "pgp",
            "customer-key",
            "--tenant",
            "acme",
            "--file",
            path(&key_file),
        ],
    ));
    assert!(set.contains(&customer), "{set}");
    // Every byte value, CRLF and LF, and more than one chunk of the writer.
    let data: Vec<u8> = (0..700_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let input = env.dir.path().join("data.bin");
    std::fs::write(&input, &data).expect("data");

    for armor in [false, true] {
        let output = env.dir.path().join(format!("data-{armor}.gpg"));
        let mut args = vec![
            "pgp",
            "encrypt",
            "--tenant",
            "acme",
            "--in",
            path(&input),
            "--out",
        ];
        args.push(path(&output));
        if armor {
            args.push("--armor");
        }
        ok(broadside(&env, &args));
        let decrypted = env.dir.path().join(format!("data-{armor}.out"));
        gpg.run(&["-o", path(&decrypted), "--decrypt", path(&output)]);

        assert_eq!(
            std::fs::read(&decrypted).expect("decrypted"),
            data,
            "armor {armor}"
        );
    }
}

#[tokio::test]
async fn customer_keys_that_cannot_encrypt_are_refused_with_the_reason() {
    if !have_gpg() {
        return;
    }
    let env = Env::prepare().await;
    let gpg = Gpg::new();
    let signer = gpg.generate("Signer <s@gpg.example>", "ed25519", "sign");
    let exported = gpg.run(&["--export", &signer]).stdout;
    let sign_only = env.dir.path().join("sign-only.gpg");
    std::fs::write(&sign_only, exported).expect("key");
    let garbage = env.local(
        "garbage.asc",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\nnope\n",
    );

    let refused = broadside(
        &env,
        &[
            "pgp",
            "customer-key",
            "--tenant",
            "acme",
            "--file",
            path(&sign_only),
        ],
    );
    let unreadable = broadside(
        &env,
        &[
            "pgp",
            "customer-key",
            "--tenant",
            "acme",
            "--file",
            path(&garbage),
        ],
    );
    let shown = ok(broadside(
        &env,
        &["pgp", "customer-key", "--tenant", "acme"],
    ));

    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("no valid encryption subkey"),
        "{}",
        text(&refused)
    );
    assert!(!unreadable.status.success());
    assert!(
        text(&unreadable).contains("not an OpenPGP public key"),
        "{}",
        text(&unreadable)
    );
    assert_eq!(shown.trim(), "no customer key");
}

#[tokio::test]
async fn a_customer_key_can_be_removed_and_encrypting_then_fails() {
    if !have_gpg() {
        return;
    }
    let env = Env::prepare().await;
    let gpg = Gpg::new();
    let customer = gpg.generate("Customer <c@gpg.example>", "future-default", "default");
    let key_file = env.dir.path().join("customer.gpg");
    std::fs::write(&key_file, gpg.run(&["--export", &customer]).stdout).expect("key");
    ok(broadside(
        &env,
        &[
            "pgp",
            "customer-key",
            "--tenant",
            "acme",
            "--file",
            path(&key_file),
        ],
    ));
    let input = env.local("in.txt", "x");
    let output = env.dir.path().join("out.gpg");

    ok(broadside(
        &env,
        &["pgp", "customer-key", "--tenant", "acme", "--remove"],
    ));
    let encrypt = broadside(
        &env,
        &[
            "pgp",
            "encrypt",
            "--tenant",
            "acme",
            "--in",
            path(&input),
            "--out",
            path(&output),
        ],
    );

    assert!(!encrypt.status.success());
    assert!(
        text(&encrypt).contains("no customer key"),
        "{}",
        text(&encrypt)
    );
    assert!(!output.exists());
    let audit = ok(broadside(&env, &["audit", "list", "--tenant", "acme"]));
    assert!(
        audit.contains("pgp.customer_key_set") && audit.contains("pgp.customer_key_removed"),
        "{audit}"
    );
}

#[actix_web::test]
async fn the_api_serves_the_tenant_public_key_that_gpg_imports() {
    if !have_gpg() {
        return;
    }
    let app = TestApp::spawn().await;
    let acme = app.tenant_with_key("acme").await;

    let (status, first) = app.json(&acme, "GET", "/v1/pgp-key", b"").await;
    let (_, second) = app.json(&acme, "GET", "/v1/pgp-key", b"").await;
    let unsigned = app
        .client
        .get(app.url("/v1/pgp-key"))
        .send()
        .await
        .expect("request");

    assert_eq!(status, 200, "{first}");
    assert_eq!(first, second, "generated once, then the same key");
    assert_eq!(unsigned.status(), 401);
    let gpg = Gpg::new();
    let key: PathBuf = gpg.home.path().join("served.asc");
    std::fs::write(&key, first["public_key"].as_str().expect("armored")).expect("key");
    let shown = gpg.run(&[
        "--with-colons",
        "--import-options",
        "show-only",
        "--import",
        path(&key),
    ]);
    let fingerprint = first["fingerprint"].as_str().expect("fingerprint");
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(fingerprint),
        "{first}"
    );
    app.stop().await;
}
