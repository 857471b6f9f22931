//! The command line, run as a process against the embedded SQLite store in a
//! temporary data directory.

use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

fn broadside(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_broadside"))
        .args(args)
        .env("BROADSIDE_DATA_DIR", data_dir.join("data"))
        .env("BROADSIDE_STORE__BACKEND", "sqlite")
        .env_remove("BROADSIDE_CONFIG")
        // Tests must not pick up a developer's config/broadside.toml by accident.
        .current_dir(data_dir)
        .output()
        .expect("broadside runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn sample_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/sample/recipients.csv")
}

#[test]
fn every_command_has_help() {
    let dir = TempDir::new().expect("tempdir");
    for args in [
        &["--help"][..],
        &["config", "check", "--help"],
        &["migrate", "--help"],
        &["tenant", "create", "--help"],
        &["tenant", "list", "--help"],
        &["import", "--help"],
    ] {
        let out = broadside(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn tenants_are_created_and_listed() {
    let dir = TempDir::new().expect("tempdir");
    let created = broadside(dir.path(), &["tenant", "create", "acme"]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).contains("created tenant acme"));

    let again = broadside(dir.path(), &["tenant", "create", "acme"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    let listed = broadside(dir.path(), &["tenant", "list"]);
    assert!(stdout(&listed).contains("acme"), "{}", stdout(&listed));
}

#[test]
fn importing_the_sample_loads_valid_rows_and_reports_the_rest() {
    let dir = TempDir::new().expect("tempdir");
    broadside(dir.path(), &["tenant", "create", "acme"]);
    let file = dir.path().join("recipients.csv");
    std::fs::copy(sample_file(), &file).expect("copy sample");
    let report = dir.path().join("report.csv");

    let out = broadside(
        dir.path(),
        &[
            "import",
            "--tenant",
            "acme",
            "--campaign",
            "spring",
            "--report",
            report.to_str().expect("utf-8 path"),
            file.to_str().expect("utf-8 path"),
        ],
    );

    // 7 rows: chloé@ has a non-ASCII local part, not-an-address has no @, and
    // ann@EXAMPLE.com repeats ann@example.com. 3 of 7 invalid is over 10%, so the
    // default threshold rejects the whole file.
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("REJECTED"), "{}", stdout(&out));
    let text = std::fs::read_to_string(&report).expect("report written");
    assert!(text.starts_with("line,column,reason"), "{text}");
    assert!(text.contains("duplicate of line 2"), "{text}");

    // With a threshold of 50% the same file loads its valid rows.
    let out = Command::new(env!("CARGO_BIN_EXE_broadside"))
        .args([
            "import",
            "--tenant",
            "acme",
            "--campaign",
            "spring",
            file.to_str().expect("utf-8"),
        ])
        .env("BROADSIDE_DATA_DIR", dir.path().join("data"))
        .env("BROADSIDE_STORE__BACKEND", "sqlite")
        .env("BROADSIDE_IMPORT__MAX_INVALID_SHARE", "0.5")
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("4 rows loaded"), "{}", stdout(&out));
    assert!(stdout(&out).contains("3 rejected"), "{}", stdout(&out));
    assert!(
        dir.path()
            .join("data/reports/recipients.csv.errors.csv")
            .exists()
    );
}

#[test]
fn importing_for_an_unknown_tenant_says_how_to_create_it() {
    let dir = TempDir::new().expect("tempdir");
    let out = broadside(
        dir.path(),
        &[
            "import",
            "--tenant",
            "ghost",
            "--campaign",
            "c",
            sample_file().to_str().expect("utf-8"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("broadside tenant create ghost"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn config_check_prints_the_effective_configuration_without_secrets() {
    let dir = TempDir::new().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_broadside"))
        .args(["config", "check"])
        .env(
            "BROADSIDE_STORE__POSTGRES__URL",
            "postgres://app:hunter2@db.internal:5432/mail",
        )
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("db.internal"), "{text}");
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
}

#[test]
fn a_bad_configuration_value_names_the_key_the_value_and_the_reason() {
    let dir = TempDir::new().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_broadside"))
        .args(["config", "check"])
        .env("BROADSIDE_IMPORT__MAX_INVALID_SHARE", "1.5")
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("import.max_invalid_share"), "{err}");
    assert!(err.contains("1.5"), "{err}");
}

#[test]
fn key_and_tenant_changes_are_in_the_audit_log_and_unknown_settings_are_refused() {
    let dir = TempDir::new().expect("tempdir");
    let created = broadside(dir.path(), &["tenant", "create", "acme"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let key = broadside(dir.path(), &["key", "create", "--tenant", "acme"]);
    assert!(key.status.success(), "{}", stderr(&key));
    let key_id = stdout(&key)
        .lines()
        .find_map(|l| l.strip_prefix("key_id = ").map(str::to_owned))
        .expect("key id printed");

    let typo = broadside(
        dir.path(),
        &["tenant", "settings", "acme", "--set", "no_such.key=1"],
    );
    assert!(!typo.status.success());
    assert!(
        stderr(&typo).contains("unknown setting `no_such.key`"),
        "{}",
        stderr(&typo)
    );

    let log = broadside(dir.path(), &["audit", "list", "--tenant", "acme", "--json"]);
    assert!(log.status.success(), "{}", stderr(&log));
    let entries: Vec<serde_json::Value> = stdout(&log)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(actions, ["key.create", "tenant.create"], "newest first");
    assert_eq!(entries[0]["target"], key_id.as_str());
    assert_eq!(entries[0]["actor"], "cli");
    // The secret never reaches the audit log.
    let secret = stdout(&key)
        .lines()
        .find_map(|l| l.strip_prefix("secret = ").map(str::to_owned))
        .expect("secret printed");
    assert!(!stdout(&log).contains(&secret));
}

fn broadside_with_stdin(data_dir: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_broadside"))
        .args(args)
        .env("BROADSIDE_DATA_DIR", data_dir.join("data"))
        .env("BROADSIDE_STORE__BACKEND", "sqlite")
        .env_remove("BROADSIDE_CONFIG")
        .current_dir(data_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("broadside runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("broadside ends")
}

#[test]
fn users_are_added_listed_locked_unlocked_and_reset_with_every_change_audited() {
    let dir = TempDir::new().expect("tempdir");
    broadside(dir.path(), &["tenant", "create", "acme"]);
    let weak = broadside_with_stdin(
        dir.path(),
        &[
            "user",
            "add",
            "alice",
            "--tenant",
            "acme",
            "--password-stdin",
        ],
        "password123\n",
    );
    assert!(!weak.status.success(), "a weak password is refused");
    assert!(stderr(&weak).contains("at least 12"), "{}", stderr(&weak));

    let added = broadside_with_stdin(
        dir.path(),
        &[
            "user",
            "add",
            "alice",
            "--tenant",
            "acme",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let generated = broadside(dir.path(), &["user", "add", "root", "--operator"]);
    assert!(generated.status.success(), "{}", stderr(&generated));
    assert!(
        stdout(&generated).contains("password = "),
        "{}",
        stdout(&generated)
    );

    for args in [
        &["user", "lock", "alice"][..],
        &["user", "unlock", "alice"],
        &["user", "reset-2fa", "alice"],
    ] {
        let out = broadside(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let listed = stdout(&broadside(
        dir.path(),
        &["user", "list", "--tenant", "acme"],
    ));
    assert!(
        listed.contains("alice") && listed.contains("admin"),
        "{listed}"
    );
    assert!(
        !listed.contains("root"),
        "operators are listed apart: {listed}"
    );
    let operators = stdout(&broadside(dir.path(), &["user", "list", "--operators"]));
    assert!(operators.contains("root"), "{operators}");

    let audit = stdout(&broadside(dir.path(), &["audit", "list"]));
    for action in ["user.create", "user.lock", "user.unlock", "user.reset_2fa"] {
        assert!(audit.contains(action), "{action} missing from:\n{audit}");
    }
}
