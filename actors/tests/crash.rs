//! `broadside serve` killed with SIGKILL in the middle of a campaign, then
//! restarted: no recipient is skipped, and only messages that were in flight at
//! the kill (dispatched, outcome not yet stored) may arrive twice — at most
//! `send.max_in_flight` per kill. Runs the real binary against PostgreSQL and the
//! SMTP sink in this process.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use broadside_load_tests::csv_gen;
use broadside_load_tests::pgdb::{DEFAULT_ADMIN_URL, ScratchDatabase};
use broadside_load_tests::sink::{self, SinkConfig, SinkHandle};
use serde_json::Value;
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::time::Instant;

const RECIPIENTS: u64 = 5_000;
const DOMAINS: u64 = 5;
/// Small on purpose: the duplicate bound is what the test checks.
const MAX_IN_FLIGHT: u64 = 200;
const TENANT: &str = "crash";
const CAMPAIGN: &str = "spring";

/// One test's world: a scratch database, a data directory and the sink.
struct Harness {
    dir: TempDir,
    db: ScratchDatabase,
    sink: SinkHandle,
}

impl Harness {
    /// `None` (after a loud notice) without a PostgreSQL server, unless
    /// `BROADSIDE_REQUIRE_PG=1`.
    async fn start() -> Option<Self> {
        let admin = std::env::var("BROADSIDE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let db = match ScratchDatabase::create(&admin) {
            Ok(db) => db,
            Err(error) => {
                let required = std::env::var("BROADSIDE_REQUIRE_PG").is_ok_and(|v| v == "1");
                assert!(!required, "PostgreSQL at {admin} is required: {error}");
                // Straight to stderr: libtest captures the output of passing tests.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED crash test: no PostgreSQL at {admin} ({error}); \
                     set BROADSIDE_REQUIRE_PG=1 to fail instead.\n"
                );
                return None;
            }
        };
        // Four reply batches per message at 5 ms each, over 20 sessions: about
        // 1,000 messages/s, so the campaign lasts a few seconds and a kill lands
        // mid-flight.
        let sink = sink::start(SinkConfig {
            starttls: false,
            reply_delay_ms: 5,
            ..SinkConfig::default()
        })
        .await
        .expect("the sink starts");
        let dir = TempDir::new().expect("tempdir");
        Some(Self { dir, db, sink })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_broadside"));
        command
            .args(args)
            .env_remove("BROADSIDE_CONFIG")
            .env("BROADSIDE_DATA_DIR", self.dir.path().join("data"))
            .env("BROADSIDE_STORE__BACKEND", "postgres")
            .env("BROADSIDE_STORE__POSTGRES__URL", &self.db.url)
            .env("BROADSIDE_SEND__ROUTES", format!("*={}", self.sink.addr))
            .env("BROADSIDE_SEND__DNS", "disabled")
            .env("BROADSIDE_SEND__TLS", "disabled")
            .env("BROADSIDE_SEND__MAX_IN_FLIGHT", MAX_IN_FLIGHT.to_string())
            .env("BROADSIDE_SEND__MAX_CONNECTIONS_PER_DOMAIN", "4")
            .env("BROADSIDE_SEND__POLL_INTERVAL", "100ms")
            .env("BROADSIDE_METRICS__LISTEN", "")
            .env("BROADSIDE_API__LISTEN", "127.0.0.1:0")
            .env("BROADSIDE_EXCHANGE__SFTP_LISTEN", "127.0.0.1:0")
            .env("BROADSIDE_TRACKING__INBOUND_LISTEN", "127.0.0.1:0")
            .env("BROADSIDE_LOG__LEVEL", "warn")
            // Keep a developer's config/broadside.toml out of the test.
            .current_dir(self.dir.path())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().await.expect("broadside runs");
        assert!(
            output.status.success(),
            "broadside {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Tenant, recipients, definition, launch — all through the command line.
    async fn launch_campaign(&self) {
        let csv = self.dir.path().join("recipients.csv");
        csv_gen::write_recipients_over(&csv, RECIPIENTS, DOMAINS).expect("csv written");
        let definition = write_definition(self.dir.path());
        self.run(&["tenant", "create", TENANT]).await;
        self.run(&[
            "import",
            "--tenant",
            TENANT,
            "--campaign",
            CAMPAIGN,
            path(&csv),
        ])
        .await;
        self.run(&[
            "campaign",
            "create",
            "--tenant",
            TENANT,
            CAMPAIGN,
            "--definition",
            path(&definition),
        ])
        .await;
        self.run(&["campaign", "launch", "--tenant", TENANT, CAMPAIGN])
            .await;
    }

    /// `broadside serve` with its stderr in a numbered log file.
    fn serve(&self, run: u32) -> Child {
        let log = std::fs::File::create(self.serve_log(run)).expect("log file");
        self.command(&["serve"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("serve starts")
    }

    fn serve_log(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("serve-{run}.log"))
    }

    fn serve_logs(&self, runs: u32) -> String {
        (1..=runs)
            .map(|run| std::fs::read_to_string(self.serve_log(run)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    async fn status(&self) -> Value {
        let output = self
            .run(&["campaign", "status", "--tenant", TENANT, CAMPAIGN, "--json"])
            .await;
        serde_json::from_slice(&output.stdout).expect("status is JSON")
    }

    /// Polls the stored status until the campaign is completed or `deadline`.
    async fn wait_completed(&self, deadline: Instant) -> Value {
        loop {
            let status = self.status().await;
            if status["status"] == "completed" || Instant::now() >= deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn write_definition(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("body.txt"),
        "Hello {{first_name}} {{last_name}} in {{city}},\n\nyour segment is {{segment}}.\n",
    )
    .expect("body written");
    let definition = dir.join("campaign.toml");
    std::fs::write(
        &definition,
        r#"envelope_domain = "bounces.crash.example"
subject = "Spring in {{city}}"
text_file = "body.txt"

[from]
name = "Crash Test"
address = "news@crash.example"
"#,
    )
    .expect("definition written");
    definition
}

/// Starts `serve` (run number `run`), waits until the sink holds `at_least`
/// messages, then SIGKILLs it.
async fn kill_when(harness: &Harness, run: u32, at_least: u64) {
    let mut serve = harness.serve(run);
    let deadline = Instant::now() + Duration::from_secs(60);
    let reached = harness
        .sink
        .recorder
        .wait_for_messages(at_least, deadline)
        .await;
    assert!(
        reached,
        "only {} messages reached the sink:\n{}",
        harness.sink.recorder.total_messages(),
        harness.serve_logs(run)
    );
    assert!(
        serve.try_wait().expect("serve status").is_none(),
        "serve exited on its own:\n{}",
        harness.serve_logs(run)
    );
    serve.start_kill().expect("SIGKILL sent"); // Child::start_kill is SIGKILL on Unix
    serve.wait().await.expect("serve reaped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_serve_resumes_without_skipping_anyone_and_resends_at_most_the_in_flight_window() {
    let Some(harness) = Harness::start().await else {
        return;
    };
    harness.launch_campaign().await;

    // Two kills at different points of the campaign, then a run to the end.
    kill_when(&harness, 1, 1_200).await;
    let after_first = harness.sink.recorder.total_messages();
    assert!(
        after_first < RECIPIENTS,
        "the campaign finished before the first kill; slow the sink down"
    );
    kill_when(&harness, 2, after_first + 1_500).await;
    assert!(
        harness.sink.recorder.total_messages() < RECIPIENTS,
        "the campaign finished before the second kill; slow the sink down"
    );
    let kills = 2;
    let mut last = harness.serve(3);
    let status = harness
        .wait_completed(Instant::now() + Duration::from_secs(120))
        .await;
    last.start_kill().ok();
    last.wait().await.ok();

    assert_eq!(
        status["status"],
        "completed",
        "{status}\n{}",
        harness.serve_logs(3)
    );
    let counters = &status["counters"];
    assert_eq!(counters["delivered"], RECIPIENTS, "{status}");
    assert_eq!(counters["pending"], 0, "{status}");
    let recorder = &harness.sink.recorder;
    let skipped: Vec<String> = (1..=RECIPIENTS)
        .map(|i| broadside_load_tests::csv_gen::address(i, DOMAINS))
        .filter(|address| recorder.count_for(address) == 0)
        .collect();
    assert!(
        skipped.is_empty(),
        "{} recipients got nothing, e.g. {:?}",
        skipped.len(),
        &skipped[..skipped.len().min(5)]
    );
    let resent: u64 = recorder
        .duplicates()
        .iter()
        .map(|(_, n)| u64::from(n - 1))
        .sum();
    assert_eq!(recorder.total_messages(), RECIPIENTS + resent);
    assert!(
        resent <= kills * MAX_IN_FLIGHT,
        "{resent} duplicate deliveries after {kills} kills; the bound is {MAX_IN_FLIGHT} per kill"
    );
    eprintln!("crash test: {resent} duplicate deliveries after {kills} kills");
}
