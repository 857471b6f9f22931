//! The file exchange through the real OpenSSH clients: the SFTP server and the
//! watcher in-process on 127.0.0.1:0 over a fresh SQLite store, `sftp -b` and
//! `scp` as customers run them. Without /usr/bin/sftp the tests skip loudly
//! (`.ci/run` installs openssh-client).

mod api;
mod escape;
mod exports;
mod transfer;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broadside::exchange::{self, ExchangeHandle};
use engine::config::Config;
use engine::exchange::{Folder, TenantFolders};
use engine::model::{CampaignName, RecipientId, TenantName};
use engine::store::{Store, Tenant};
use tempfile::TempDir;

pub struct Env {
    pub dir: TempDir,
    pub config: Config,
    pub store: Arc<dyn Store>,
    /// Started by `begin`, so a test can prepare folders and the store first.
    pub exchange: Option<ExchangeHandle>,
    /// The client's private key (ed25519, no passphrase).
    pub key: PathBuf,
    pub acme: Tenant,
}

/// True when the OpenSSH client is installed; otherwise says so loudly.
pub fn have_openssh() -> bool {
    let found = Path::new("/usr/bin/sftp").exists() && Path::new("/usr/bin/ssh-keygen").exists();
    if !found {
        eprintln!(
            "\n*** SKIPPED: /usr/bin/sftp or ssh-keygen missing; install openssh-client ***\n"
        );
    }
    found
}

impl Env {
    /// Tenants `acme` and `beta`, each with an SFTP user of the same name that
    /// logs in with the generated client key; `acme`'s is added through the CLI.
    pub async fn start() -> Env {
        let mut env = Self::prepare().await;
        env.begin().await;
        env
    }

    /// Starts the watcher and the SFTP server.
    pub async fn begin(&mut self) {
        let started = exchange::start(&self.config, self.store.clone(), Default::default()).await;
        self.exchange = Some(started.expect("exchange"));
    }

    /// Everything but the exchange itself.
    pub async fn prepare() -> Env {
        let dir = TempDir::new().expect("tempdir");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        config.exchange.sftp_listen = "127.0.0.1:0".into();
        config.exchange.scan_interval = engine::config::Duration::from_millis(100);
        config.import.max_invalid_share = 0.5;
        let store = broadside::app::open_store(&config).await.expect("store");
        let acme = create_tenant(store.as_ref(), "acme").await;
        let beta = create_tenant(store.as_ref(), "beta").await;
        let key = client_key(dir.path());
        let public = key.with_extension("pub");
        add_user_cli(&config, dir.path(), "acme", &public);
        add_user_store(store.as_ref(), &beta, &public).await;
        let folders = TenantFolders::new(&config.exchange_root(), &acme.name);
        folders.create().expect("folders");
        Env {
            dir,
            config,
            store,
            exchange: None,
            key,
            acme,
        }
    }

    pub fn folders(&self, tenant: &Tenant) -> TenantFolders {
        TenantFolders::new(&self.config.exchange_root(), &tenant.name)
    }

    pub fn path(&self, tenant: &Tenant, folder: Folder, name: &str) -> PathBuf {
        self.folders(tenant).folder(folder).join(name)
    }

    /// A local file in the test's directory.
    pub fn local(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write local");
        path
    }

    fn ssh_options(&self) -> Vec<String> {
        let exchange = self.exchange.as_ref().expect("begin() first");
        let port = exchange.sftp_addr.expect("sftp listening").port();
        let mut args: Vec<String> = [
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
        ]
        .map(String::from)
        .into();
        args.extend([
            "-P".into(),
            port.to_string(),
            "-i".into(),
            self.key.display().to_string(),
        ]);
        args
    }

    /// Runs `commands` with `sftp -b` as `user`; the batch stops at the first
    /// failing command and the exit status says whether all succeeded.
    pub fn sftp(&self, user: &str, commands: &str) -> Output {
        let batch = self.dir.path().join("batch");
        std::fs::write(&batch, commands).expect("batch");
        let mut cmd = Command::new("sftp");
        cmd.args(self.ssh_options()).arg("-b").arg(&batch);
        cmd.arg(format!("{user}@127.0.0.1"));
        run(cmd)
    }

    /// `sftp -b` logging in with a password, typed by an askpass script (the
    /// OpenSSH client reads passwords from a terminal or askpass only).
    pub fn sftp_password(&self, user: &str, password: &str, commands: &str) -> Output {
        let batch = self.dir.path().join("batch");
        std::fs::write(&batch, commands).expect("batch");
        let askpass = self.dir.path().join("askpass.sh");
        std::fs::write(&askpass, format!("#!/bin/sh\necho '{password}'\n")).expect("askpass");
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        let port = self
            .exchange
            .as_ref()
            .expect("begin() first")
            .sftp_addr
            .expect("sftp")
            .port();
        let mut cmd = Command::new("sftp");
        cmd.args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "LogLevel=ERROR",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "BatchMode=no",
        ])
        .args([
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "NumberOfPasswordPrompts=1",
        ])
        .args(["-P", &port.to_string(), "-b"])
        .arg(&batch)
        .arg(format!("{user}@127.0.0.1"))
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force");
        run(cmd)
    }

    /// Adds a password account through the CLI (`--password-stdin`).
    pub fn add_password_user(&self, tenant: &str, user: &str, password: &str) {
        use std::io::Write as _;
        let toml = self.dir.path().join("broadside.toml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_broadside"))
            .arg("--config")
            .arg(&toml)
            .args([
                "exchange",
                "user",
                "add",
                "--tenant",
                tenant,
                user,
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("broadside");
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{password}").expect("password");
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", text(&out));
    }

    /// `scp` (SFTP mode, OpenSSH's default) with `user@127.0.0.1:` prefixed to
    /// the remote argument.
    pub fn scp(&self, from: &str, to: &str) -> Output {
        let mut cmd = Command::new("scp");
        cmd.args(self.ssh_options()).arg(from).arg(to);
        run(cmd)
    }

    pub fn remote(&self, user: &str, path: &str) -> String {
        format!("{user}@127.0.0.1:{path}")
    }

    pub async fn recipients(&self, tenant: &Tenant, campaign: &str) -> usize {
        let name = CampaignName::parse(campaign).expect("name");
        let found = self
            .store
            .campaign_by_name(tenant.id, &name)
            .await
            .expect("lookup");
        let Some(campaign) = found.filter(|c| c.imported) else {
            return 0;
        };
        let rows = self
            .store
            .recipients(tenant.id, campaign.id, RecipientId(0), 10_000);
        rows.await.expect("recipients").len()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(exchange) = &self.exchange {
            exchange.stop();
        }
    }
}

fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null());
    cmd.output().expect("run the OpenSSH client")
}

pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Polls until `check` holds, for at most 10 s.
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_tenant(store: &dyn Store, name: &str) -> Tenant {
    let name = TenantName::parse(name).expect("tenant name");
    store.create_tenant(&name).await.expect("tenant")
}

fn client_key(dir: &Path) -> PathBuf {
    let key = dir.join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{}", text(&out));
    key
}

fn add_user_cli(config: &Config, dir: &Path, tenant: &str, public: &Path) {
    let toml = dir.join("broadside.toml");
    std::fs::write(
        &toml,
        format!("data_dir = {:?}\n", config.data_dir.display().to_string()),
    )
    .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_broadside"))
        .arg("--config")
        .arg(&toml)
        .args([
            "exchange",
            "user",
            "add",
            "--tenant",
            tenant,
            tenant,
            "--public-key",
        ])
        .arg(public)
        .output()
        .expect("broadside");
    assert!(out.status.success(), "{}", text(&out));
}

async fn add_user_store(store: &dyn Store, tenant: &Tenant, public: &Path) {
    let line = std::fs::read_to_string(public).expect("public key");
    let account = engine::store::ExchangeAccount {
        username: tenant.name.to_string(),
        tenant: tenant.id,
        password_hash: None,
        public_keys: engine::exchange::key_lines(&line),
    };
    store
        .create_exchange_account(&account)
        .await
        .expect("account");
}
