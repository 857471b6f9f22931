//! `broadside-load --engine-url`: the harness drives a `broadside serve` it did
//! not start — here one this test starts the way an operator would, routing
//! every domain to the address the harness's sink will listen on — and checks
//! through the sink and the engine's API that every recipient got exactly one
//! message, on the retry schedule.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use broadside_load_tests::engine_proc::{self, Backend, Engine};
use broadside_load_tests::pgdb::DEFAULT_ADMIN_URL;

const HARNESS: &str = env!("CARGO_BIN_EXE_broadside-load");

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// The engine binary cargo built beside the harness (`cargo test --workspace`,
/// or `cargo build -p broadside` first).
fn broadside_bin() -> PathBuf {
    let bin = Path::new(HARNESS).with_file_name("broadside");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p broadside` (or run the workspace's tests)",
        bin.display()
    );
    bin
}

/// Stops `serve` when the test ends, passed or not.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        engine_proc::stop(&mut self.0);
    }
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_harness_drives_a_running_engine_and_sees_every_recipient_exactly_once() {
    // Arrange: an engine routing every domain to where the sink will listen,
    // with the retry delay the scenario expects, and an API key.
    let sink: SocketAddr = format!(
        "127.0.0.1:{}",
        engine_proc::free_port().expect("a free port")
    )
    .parse()
    .expect("an address");
    let mut engine = Engine::routed_to(
        &broadside_bin(),
        Backend::Sqlite,
        DEFAULT_ADMIN_URL,
        sink,
        false,
    )
    .expect("engine environment");
    engine.set("BROADSIDE_SEND__RETRY__FIRST_DELAY", "5s");
    engine.run(&["tenant", "create", "ops"]).expect("tenant");
    let (key_id, secret) = engine.create_key("ops").expect("API key");
    let _serving = Serving(engine.serve().expect("broadside serve"));
    let url = format!("http://127.0.0.1:{}", engine.api_port);
    let out = tempfile::TempDir::new().expect("report dir");

    // Act
    let output = Command::new(HARNESS)
        .arg(scenario("running.toml"))
        .args([
            "--engine-url",
            &url,
            "--key-id",
            &key_id,
            "--secret",
            &secret,
        ])
        .args(["--sink-listen", &sink.to_string(), "--recipients", "500"])
        .arg("--quiet")
        .arg("--out")
        .arg(out.path())
        .env_remove("BROADSIDE_LOAD_ENGINE_URL")
        .output()
        .expect("running broadside-load");

    // Assert
    assert!(output.status.success(), "{}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.path().join("running.json")).expect("the JSON report"),
    )
    .expect("JSON");
    let verify = &report["verify"];
    assert_eq!(report["engine_url"], url.as_str());
    assert_eq!(verify["expected_at_sink"], 500, "{verify:#}");
    assert_eq!(verify["missing"], 0, "{verify:#}");
    assert_eq!(verify["duplicate_messages"], 0, "{verify:#}");
    assert_eq!(report["sink"]["messages"], 500, "{report:#}");
    assert_eq!(report["outcomes"]["delivered"], 500, "{report:#}");
    assert_eq!(verify["finality"]["pending"], 0, "{verify:#}");
    assert_eq!(verify["finality"]["deferred"], 0, "{verify:#}");
    // 2 % of 500 were deferred at the sink; their events came over the API.
    let retries = &verify["retries"];
    assert_eq!(retries["source"], "API events", "{retries:#}");
    assert!(
        retries["retries_checked"].as_u64() >= Some(3),
        "{retries:#}"
    );
    assert_eq!(retries["early"], 0, "{retries:#}");
    assert_eq!(retries["late"], 0, "{retries:#}");
    assert!(report["engine_cpu_seconds"].is_null(), "{report:#}");
}

#[test]
fn an_import_scenario_is_refused_against_a_running_engine() {
    let output = Command::new(HARNESS)
        .arg(scenario("smoke.toml"))
        .args([
            "--engine-url",
            "http://127.0.0.1:9",
            "--key-id",
            "k",
            "--secret",
            "s",
        ])
        .args(["--sink-listen", "127.0.0.1:0", "--quiet"])
        .output()
        .expect("running broadside-load");
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ingress = \"import\" runs `broadside import`")
            && stderr.contains("running.toml"),
        "{}",
        describe(&output)
    );
}
