//! The Prometheus endpoint of `broadside serve`, scraped over plain HTTP before
//! and after a small campaign: the counters move by what was sent, every metric
//! is described, domain labels stay bounded, and `promtool check metrics` (the
//! Prometheus project's linter) accepts the live scrape.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use broadside_load_tests::sink::{self, SinkConfig};
use tempfile::TempDir;
use tokio::process::Command;
use tokio::time::Instant;

/// A label value of its own (configured as a top domain).
const TOP: &str = "top.example";
const PER_DOMAIN: usize = 20;

/// A port that was free a moment ago; the exporter binds it right after.
fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// `GET /metrics` over HTTP/1.0, so the body is neither chunked nor kept open.
fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    tcp.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return Err(std::io::Error::other(format!("status: {head}")));
    }
    Ok(body.to_owned())
}

async fn scrape_when_up(addr: SocketAddr, deadline: Instant) -> String {
    loop {
        match scrape(addr) {
            Ok(body) => return body,
            Err(err) if Instant::now() >= deadline => panic!("no metrics at {addr}: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Sum of the samples named exactly `name` whose labels contain every `filter`.
fn sample_sum(text: &str, name: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let metric = series.split('{').next().unwrap_or_default();
            metric == name && filters.iter().all(|f| series.contains(f))
        })
        .map(|(_, value)| value.parse::<f64>().expect("numeric sample"))
        .sum()
}

/// Families with a `# TYPE` line but no `# HELP` line.
fn families_without_help(text: &str) -> Vec<String> {
    let names = |prefix: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    };
    let helped = names("# HELP ");
    names("# TYPE ").difference(&helped).cloned().collect()
}

/// `promtool check metrics` on a scrape, or `None` (after saying so) when promtool
/// is not installed and not required (`BROADSIDE_REQUIRE_PROMTOOL=1`, as in CI).
fn promtool_check_metrics(scrape: &str) -> Option<std::process::Output> {
    let spawned = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            let required = std::env::var("BROADSIDE_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
            assert!(!required, "promtool is required: {error}");
            // Straight to stderr: libtest captures the output of passing tests.
            let notice = format!(
                "\n*** SKIPPED promtool check metrics: {error}. Install Debian's \
                 `prometheus` package, or set BROADSIDE_REQUIRE_PROMTOOL=1 to fail.\n"
            );
            let _ = std::io::stderr().write_all(notice.as_bytes());
            return None;
        }
    };
    // promtool reads all of stdin before it writes, so this cannot deadlock.
    let mut stdin = child.stdin.take().expect("promtool stdin");
    stdin
        .write_all(scrape.as_bytes())
        .expect("scrape to promtool");
    drop(stdin);
    Some(child.wait_with_output().expect("promtool runs"))
}

fn broadside(dir: &Path, env: &HashMap<&str, String>, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_broadside"));
    command
        .args(args)
        .env_remove("BROADSIDE_CONFIG")
        .envs(env)
        .current_dir(dir)
        .kill_on_drop(true);
    command
}

async fn run(dir: &Path, env: &HashMap<&str, String>, args: &[&str]) -> String {
    let out = broadside(dir, env, args).output().await.expect("runs");
    assert!(
        out.status.success(),
        "broadside {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Recipients at the top domain and at a domain nobody configured.
fn write_campaign(dir: &Path, random_domain: &str) {
    let mut csv = String::from("email,first_name\n");
    for i in 0..PER_DOMAIN {
        csv.push_str(&format!("t{i}@{TOP},Tia\nr{i}@{random_domain},Rui\n"));
    }
    std::fs::write(dir.join("recipients.csv"), csv).expect("csv");
    std::fs::write(dir.join("body.txt"), "Hello {{first_name}}\n").expect("body");
    std::fs::write(
        dir.join("campaign.toml"),
        "envelope_domain = \"bounces.metrics.example\"\nsubject = \"Hi {{first_name}}\"\n\
         text_file = \"body.txt\"\n[from]\naddress = \"news@metrics.example\"\n",
    )
    .expect("definition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_counts_what_a_campaign_sent_with_bounded_labels() {
    let sink = sink::start(SinkConfig {
        starttls: false,
        ..SinkConfig::default()
    })
    .await
    .expect("sink");
    let dir = TempDir::new().expect("tempdir");
    let listen = free_port();
    let random_domain = format!("r{}.example", std::process::id());
    let env: HashMap<&str, String> = [
        (
            "BROADSIDE_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("BROADSIDE_STORE__BACKEND", "sqlite".to_owned()),
        ("BROADSIDE_SEND__ROUTES", format!("*={}", sink.addr)),
        ("BROADSIDE_SEND__DNS", "disabled".to_owned()),
        ("BROADSIDE_SEND__TLS", "disabled".to_owned()),
        ("BROADSIDE_SEND__POLL_INTERVAL", "100ms".to_owned()),
        ("BROADSIDE_METRICS__LISTEN", listen.to_string()),
        ("BROADSIDE_API__LISTEN", "127.0.0.1:0".to_owned()),
        ("BROADSIDE_EXCHANGE__SFTP_LISTEN", "127.0.0.1:0".to_owned()),
        (
            "BROADSIDE_TRACKING__INBOUND_LISTEN",
            "127.0.0.1:0".to_owned(),
        ),
        ("BROADSIDE_METRICS__TOP_DOMAINS", format!("[\"{TOP}\"]")),
        ("BROADSIDE_LOG__LEVEL", "warn".to_owned()),
    ]
    .into_iter()
    .collect();
    write_campaign(dir.path(), &random_domain);
    let d = dir.path();
    let mut serve = broadside(d, &env, &["serve"])
        .stdout(Stdio::null())
        .spawn()
        .expect("serve starts");
    let before = scrape_when_up(listen, Instant::now() + Duration::from_secs(20)).await;

    run(d, &env, &["tenant", "create", "m"]).await;
    run(
        d,
        &env,
        &[
            "import",
            "--tenant",
            "m",
            "--campaign",
            "c",
            "recipients.csv",
        ],
    )
    .await;
    let definition = ["campaign", "create", "--tenant", "m", "c", "--definition"];
    run(d, &env, &[&definition[..], &["campaign.toml"]].concat()).await;
    run(d, &env, &["campaign", "launch", "--tenant", "m", "c"]).await;
    let sent = (2 * PER_DOMAIN) as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = String::new();
    while !status.contains("\"completed\"") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = run(
            d,
            &env,
            &["campaign", "status", "--tenant", "m", "c", "--json"],
        )
        .await;
    }
    let after = scrape(listen).expect("second scrape");
    serve.start_kill().ok();
    serve.wait().await.ok();

    assert!(status.contains("\"completed\""), "{status}");
    let delivered = "outcome=\"delivered\"";
    assert_eq!(
        sample_sum(&before, "broadside_outcomes_total", &[delivered]),
        0.0
    );
    assert_eq!(
        sample_sum(&after, "broadside_outcomes_total", &[delivered]),
        sent as f64,
        "{after}"
    );
    assert_eq!(
        sample_sum(&after, "broadside_messages_total", &[]),
        sent as f64
    );
    assert!(sample_sum(&after, "broadside_smtp_seconds_count", &[]) > 0.0);
    assert!(sample_sum(&after, "broadside_render_seconds_count", &[]) > 0.0);
    assert_eq!(sink.recorder.total_messages(), sent, "each recipient once");
    assert!(sink.recorder.duplicates().is_empty());

    assert_eq!(families_without_help(&after), Vec::<String>::new());
    for gauge in ["broadside_in_flight", "broadside_cpu_queue_depth"] {
        assert!(
            after.contains(&format!("# TYPE {gauge} gauge")),
            "{gauge} missing"
        );
    }
    let top = format!("domain=\"{TOP}\"");
    assert_eq!(
        sample_sum(&after, "broadside_messages_total", &[&top]),
        PER_DOMAIN as f64
    );
    assert_eq!(
        sample_sum(&after, "broadside_messages_total", &["domain=\"other\""]),
        PER_DOMAIN as f64
    );
    assert!(!after.contains(&random_domain), "unbounded label: {after}");
    if let Some(lint) = promtool_check_metrics(&after) {
        assert!(
            lint.status.success(),
            "promtool check metrics:\n{}{}\n{after}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        );
    }
}

#[tokio::test]
async fn serve_runs_the_inbound_smtp_listener_and_counts_what_it_refuses() {
    let dir = TempDir::new().expect("tempdir");
    let (metrics, inbound) = (free_port(), free_port());
    let env: HashMap<&str, String> = [
        (
            "BROADSIDE_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("BROADSIDE_STORE__BACKEND", "sqlite".to_owned()),
        ("BROADSIDE_SEND__DNS", "disabled".to_owned()),
        ("BROADSIDE_METRICS__LISTEN", metrics.to_string()),
        ("BROADSIDE_API__LISTEN", "127.0.0.1:0".to_owned()),
        ("BROADSIDE_EXCHANGE__SFTP_LISTEN", "127.0.0.1:0".to_owned()),
        ("BROADSIDE_TRACKING__INBOUND_LISTEN", inbound.to_string()),
        ("BROADSIDE_LOG__LEVEL", "warn".to_owned()),
    ]
    .into_iter()
    .collect();
    let mut serve = broadside(dir.path(), &env, &["serve"])
        .stdout(Stdio::null())
        .spawn()
        .expect("serve starts");
    scrape_when_up(metrics, Instant::now() + Duration::from_secs(20)).await;

    // A forged VERP address, delivered with the real swaks.
    let port = inbound.port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port", &port, "--from", "<>"])
            .args(["--to", "b-00ff00ff00ff00ff00ff00ff00ff00@bounces.example"])
            .args(["--helo", "mx.remote.example", "--timeout", "20"])
            .output()
    })
    .await
    .expect("join")
    .expect("swaks is installed (apt-get install swaks)");
    let after = scrape(metrics).expect("scrape");
    serve.start_kill().ok();
    serve.wait().await.ok();

    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(transcript.contains("<-  220 "), "{transcript}");
    assert!(transcript.contains("<** 550 5.1.1"), "{transcript}");
    assert_eq!(
        sample_sum(
            &after,
            "broadside_inbound_refused_total",
            &["reason=\"unknown_recipient\""]
        ),
        1.0,
        "{after}"
    );
}
