//! `--spawn`: the real `broadside serve` on a scratch store (PostgreSQL or
//! SQLite) delivering to the loopback sink, with a tenant and API key created
//! through the CLI, exactly as an operator would.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use broadside_load_tests::pgdb::ScratchDatabase;
use broadside_load_tests::sink::SinkHandle;

/// A running server and what it needs to stay up; stopped on drop.
pub struct Spawned {
    pub url: String,
    pub key_id: String,
    pub secret: String,
    serve: Child,
    _db: Option<ScratchDatabase>,
    _dir: tempfile::TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.serve.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.serve.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.serve.kill();
        let _ = self.serve.wait();
    }
}

pub fn start(
    bin: &Path,
    postgres: Option<&str>,
    sink: &SinkHandle,
    extra: &[(String, String)],
) -> anyhow::Result<Spawned> {
    ensure!(
        bin.exists(),
        "{} not found; build it with `cargo build --release -p broadside`",
        bin.display()
    );
    let dir = tempfile::TempDir::new()?;
    let db = postgres.map(ScratchDatabase::create).transpose()?;
    // A free port chosen here, since `serve` does not report the one it bound.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut vars: Vec<(String, String)> = vec![
        (
            "BROADSIDE_DATA_DIR".into(),
            dir.path().join("data").display().to_string(),
        ),
        ("BROADSIDE_SEND__ROUTES".into(), format!("*={}", sink.addr)),
        ("BROADSIDE_SEND__DNS".into(), "disabled".into()),
        ("BROADSIDE_SEND__TLS".into(), "disabled".into()),
        ("BROADSIDE_METRICS__LISTEN".into(), String::new()),
        ("BROADSIDE_API__LISTEN".into(), format!("127.0.0.1:{port}")),
        ("BROADSIDE_LOG__LEVEL".into(), "warn".into()),
        // The inbound SMTP listener's default port may be taken.
        (
            "BROADSIDE_TRACKING__INBOUND_LISTEN".into(),
            "127.0.0.1:0".into(),
        ),
    ];
    match &db {
        Some(db) => {
            vars.push(("BROADSIDE_STORE__BACKEND".into(), "postgres".into()));
            vars.push(("BROADSIDE_STORE__POSTGRES__URL".into(), db.url.clone()));
        }
        None => vars.push(("BROADSIDE_STORE__BACKEND".into(), "sqlite".into())),
    }
    vars.extend(extra.iter().cloned());
    let command = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.args(args)
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .env_remove("BROADSIDE_CONFIG")
            .current_dir(dir.path());
        c
    };
    run(command(&["tenant", "create", "load"]))?;
    let created = run(command(&["key", "create", "--tenant", "load"]))?;
    let field = |name: &str| {
        created
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .with_context(|| format!("`key create` printed no {name}"))
    };
    let (key_id, secret) = (field("key_id = ")?, field("secret = ")?);
    let serve = command(&["serve"]).stdout(Stdio::null()).spawn()?;
    let spawned = Spawned {
        url: format!("http://127.0.0.1:{port}"),
        key_id,
        secret,
        serve,
        _db: db,
        _dir: dir,
    };
    wait_healthy(port)?;
    Ok(spawned)
}

fn run(mut command: Command) -> anyhow::Result<String> {
    let output = command.output()?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Polls the port until `serve` accepts connections (migrations run first).
fn wait_healthy(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("broadside serve did not listen on port {port} within 30 s")
}

/// The `broadside` binary next to this one.
pub fn default_bin() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name("broadside"))
}
