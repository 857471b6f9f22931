//! The real `broadside` binary as a child process: its environment (scratch
//! store, loopback routes to the sink, no DNS), CLI calls, `serve` start and
//! stop, and what /proc says about its CPU time and memory. The benchmarks and
//! the load driver all start the engine through [`Engine`].

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use crate::pgdb::ScratchDatabase;
use crate::sink::SinkHandle;

/// Where the engine keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Embedded SQLite files in the data directory.
    Sqlite,
    /// A scratch PostgreSQL database, dropped when the engine value is.
    Postgres,
}

/// A `broadside` installation for one run: binary, environment, working
/// directory and (with PostgreSQL) its scratch database.
pub struct Engine {
    bin: PathBuf,
    vars: Vec<(String, String)>,
    /// The API port `serve` listens on (chosen here: `serve` does not report it).
    pub api_port: u16,
    /// The metrics port, for scraping queue gauges.
    pub metrics_port: u16,
    /// Working and data directory; removed on drop.
    pub dir: tempfile::TempDir,
    /// The scratch database; `None` with SQLite.
    pub db: Option<ScratchDatabase>,
}

impl Engine {
    /// Prepares the environment: store, sink route for every domain, no DNS,
    /// plain SMTP unless `starttls`, free API/metrics/SFTP ports.
    pub fn new(
        bin: &Path,
        backend: Backend,
        admin_url: &str,
        sink: &SinkHandle,
        starttls: bool,
    ) -> anyhow::Result<Self> {
        Self::routed_to(bin, backend, admin_url, sink.addr, starttls)
    }

    /// As [`Engine::new`], routing every domain to `route` (a sink that is
    /// not started yet, or one in another process).
    pub fn routed_to(
        bin: &Path,
        backend: Backend,
        admin_url: &str,
        route: SocketAddr,
        starttls: bool,
    ) -> anyhow::Result<Self> {
        ensure!(
            bin.exists(),
            "{} not found; build it with `cargo build --release -p broadside`",
            bin.display()
        );
        let dir = tempfile::TempDir::new()?;
        let api_port = free_port()?;
        let metrics_port = free_port()?;
        let mut vars: Vec<(String, String)> = [
            (
                "BROADSIDE_DATA_DIR",
                dir.path().join("data").display().to_string(),
            ),
            ("BROADSIDE_SEND__ROUTES", format!("*={route}")),
            ("BROADSIDE_SEND__DNS", "disabled".to_owned()),
            (
                "BROADSIDE_METRICS__LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            ),
            ("BROADSIDE_API__LISTEN", format!("127.0.0.1:{api_port}")),
            ("BROADSIDE_EXCHANGE__SFTP_LISTEN", "127.0.0.1:0".to_owned()),
            // The inbound SMTP listener's default port may be taken.
            (
                "BROADSIDE_TRACKING__INBOUND_LISTEN",
                "127.0.0.1:0".to_owned(),
            ),
            ("BROADSIDE_LOG__LEVEL", "warn".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if !starttls {
            vars.push(("BROADSIDE_SEND__TLS".into(), "disabled".into()));
        }
        let db = match backend {
            Backend::Sqlite => {
                vars.push(("BROADSIDE_STORE__BACKEND".into(), "sqlite".into()));
                None
            }
            Backend::Postgres => {
                let db = ScratchDatabase::create(admin_url)?;
                vars.push(("BROADSIDE_STORE__BACKEND".into(), "postgres".into()));
                vars.push(("BROADSIDE_STORE__POSTGRES__URL".into(), db.url.clone()));
                Some(db)
            }
        };
        Ok(Self {
            bin: bin.to_owned(),
            vars,
            api_port,
            metrics_port,
            dir,
            db,
        })
    }

    /// Adds or replaces an environment variable of every later command.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_owned(), value.into()));
    }

    /// The configuration `serve` runs with: defaults and this environment
    /// (no file), parsed by the engine's own loader.
    pub fn config(&self) -> anyhow::Result<engine::config::Config> {
        engine::config::Config::load_from(None, self.vars.iter().cloned())
            .context("the engine's configuration")
    }

    /// The data directory (SQLite files live here).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command for the binary with this run's environment and no config file.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env_remove("BROADSIDE_CONFIG")
            .current_dir(self.dir.path());
        command
    }

    /// Runs a CLI command to completion; its stdout, or its stderr as the error.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self
            .command(args)
            .output()
            .with_context(|| format!("running broadside {args:?}"))?;
        if !output.status.success() {
            bail!(
                "broadside {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Starts `serve` and waits until its API port accepts connections.
    pub fn serve(&self) -> anyhow::Result<Child> {
        let mut child = self
            .command(&["serve"])
            .stdout(Stdio::null())
            .spawn()
            .context("starting broadside serve")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.api_port)).is_ok() {
                return Ok(child);
            }
            if let Some(status) = child.try_wait()? {
                bail!("broadside serve exited during start-up: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        stop(&mut child);
        bail!(
            "broadside serve did not listen on port {} within 60 s",
            self.api_port
        )
    }

    /// Creates an API key for `tenant`; returns (key id, secret).
    pub fn create_key(&self, tenant: &str) -> anyhow::Result<(String, String)> {
        let created = self.run(&["key", "create", "--tenant", tenant])?;
        let field = |name: &str| {
            created
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .with_context(|| format!("`key create` printed no {name}"))
        };
        Ok((field("key_id = ")?, field("secret = ")?))
    }
}

/// A port free right now on loopback.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `broadside` binary next to the running one (both built by one cargo call).
pub fn default_bin() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name("broadside"))
}

/// SIGTERM (a clean drain), then SIGKILL if it lingers past 5 s.
pub fn stop(child: &mut Child) {
    signal(child, "TERM");
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL and reap: the crash a power cut or the OOM killer causes.
pub fn crash(child: &mut Child) -> anyhow::Result<()> {
    child.kill().context("SIGKILL")?;
    child.wait().context("reaping the killed engine")?;
    Ok(())
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status();
}

/// CPU time and memory of a process, from /proc.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// utime + stime so far, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size now, in bytes.
    pub rss: u64,
    /// The kernel's high-water mark of the resident set (`VmHWM`), in bytes.
    pub peak_rss: u64,
}

/// Reads /proc/<pid>/{stat,status}; clock ticks are 100 per second on Linux
/// (`getconf CLK_TCK` answers 100 on every architecture the kernel supports
/// through the stable ABI).
pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let (ticks, _) = stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context(key.to_owned())?
            .parse::<u64>()?
            * 1024)
    };
    Ok(ProcSample {
        cpu_seconds: ticks as f64 / 100.0,
        rss: kb("VmRSS:")?,
        peak_rss: kb("VmHWM:")?,
    })
}

/// A process's own CPU ticks (utime + stime) and those of its children it
/// has reaped (cutime + cstime), from the text of /proc/<pid>/stat.
fn stat_ticks(stat: &str) -> anyhow::Result<(u64, u64)> {
    // Fields after the command name (which may contain spaces) start at state.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    ensure!(fields.len() > 15, "short /proc/<pid>/stat");
    let field = |i: usize| fields[i].parse::<u64>();
    Ok((field(11)? + field(12)?, field(13)? + field(14)?))
}

/// CPU seconds used so far by every process named `postgres` on this
/// machine: the server, its backends, and the backends that have already
/// exited (counted in the server's reaped-children time). The difference of
/// two readings is the database's share of a run, if nothing else uses the
/// server meanwhile; 0 where no PostgreSQL runs.
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // Processes come and go while the directory is read: skip the gone.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if !stat.contains("(postgres)") {
            continue;
        }
        if let Ok((own, children)) = stat_ticks(&stat) {
            ticks += own + children;
        }
    }
    ticks as f64 / 100.0
}

/// The 1-, 5- and 15-minute load averages, as /proc/loadavg prints them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory_in_proc() {
        // Burn a little CPU so utime is not zero on a fast machine.
        let mut x = 0u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let s = sample(std::process::id()).expect("/proc is readable");
        assert!(s.rss > 0 && s.peak_rss >= s.rss, "{s:?}");
        assert!(s.cpu_seconds >= 0.0, "{s:?}");
        assert_eq!(load_average().split(' ').count(), 3);
    }

    #[test]
    fn stat_lines_give_own_and_reaped_children_ticks() {
        // A command name with spaces and a parenthesis, as the kernel allows.
        let stat = "4242 (post gres) x) S 1 4242 4242 0 -1 4194560 1 0 0 0 \
                    150 25 7 3 20 0 1 0 100 1000 10";
        assert_eq!(stat_ticks(stat).expect("a full stat line"), (175, 10));
        assert!(stat_ticks("4242 (short) S 1 2").is_err());
    }
}
