//! The SSH side of the exchange: host key, authentication against the store's
//! exchange accounts, and the `sftp` subsystem (the only thing a session may
//! run; no shell, no exec, no forwarding).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use engine::exchange::{OpenWrites, TenantFolders, verify_password};
use engine::store::{ExchangeAccount, Store, Tenant};
use russh::keys::{Algorithm, PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Server as _, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::sftp::SftpSession;

/// Reads the host key, or generates an Ed25519 key there (mode 0600) on first
/// start so that clients' known_hosts entries stay valid across restarts.
pub fn load_or_create_host_key(path: &Path) -> anyhow::Result<PrivateKey> {
    if path.exists() {
        return russh::keys::load_secret_key(path, None)
            .with_context(|| format!("reading the SSH host key {}", path.display()));
    }
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .context("generating the SSH host key")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .context("encoding the SSH host key")?;
    write_private(path, text.as_bytes())
        .with_context(|| format!("writing the SSH host key {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated the SSH host key");
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// Shared by every connection.
#[derive(Clone)]
pub(crate) struct SshServer {
    store: Arc<dyn Store>,
    /// The exchange root; a session sees only `<root>/<its tenant>`.
    root: PathBuf,
    writes: OpenWrites,
}

impl SshServer {
    pub(crate) fn new(store: Arc<dyn Store>, root: PathBuf, writes: OpenWrites) -> Self {
        Self {
            store,
            root,
            writes,
        }
    }

    /// Binds `listen` and serves until the task is aborted.
    pub(crate) async fn listen(
        mut self,
        listen: &str,
        key: PrivateKey,
    ) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the SFTP server to {listen}"))?;
        let addr = listener.local_addr()?;
        let config = russh::server::Config {
            keys: vec![key],
            methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..]),
            auth_rejection_time: Duration::from_millis(500),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: Some(Duration::from_secs(600)),
            ..Default::default()
        };
        let task = tokio::spawn(async move {
            if let Err(e) = self.run_on_socket(Arc::new(config), &listener).await {
                tracing::error!(error = %e, "the SFTP server stopped");
            }
        });
        tracing::info!(%addr, "SFTP server listening");
        Ok((addr, task))
    }
}

impl russh::server::Server for SshServer {
    type Handler = SshSession;

    fn new_client(&mut self, _peer: Option<SocketAddr>) -> SshSession {
        SshSession {
            server: self.clone(),
            tenant: None,
            channels: HashMap::new(),
        }
    }
}

/// One SSH connection.
pub(crate) struct SshSession {
    server: SshServer,
    /// Set by a successful login; decides the folders the session sees.
    tenant: Option<Tenant>,
    /// Session channels waiting for their subsystem request.
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl SshSession {
    async fn account(&self, user: &str) -> anyhow::Result<Option<(ExchangeAccount, Tenant)>> {
        let Some(account) = self.server.store.exchange_account(user).await? else {
            return Ok(None);
        };
        let tenants = self.server.store.tenants().await?;
        let tenant = tenants.into_iter().find(|t| t.id == account.tenant);
        Ok(tenant.map(|tenant| (account, tenant)))
    }

    fn accept(&mut self, user: &str, tenant: Tenant, method: &str) -> Auth {
        tracing::info!(user, tenant = %tenant.name, method, "exchange login");
        self.tenant = Some(tenant);
        Auth::Accept
    }
}

fn key_matches(account: &ExchangeAccount, key: &PublicKey) -> bool {
    account
        .public_keys
        .iter()
        .filter_map(|line| PublicKey::from_openssh(line).ok())
        .any(|known| known.key_data() == key.key_data())
}

impl russh::server::Handler for SshSession {
    type Error = anyhow::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let Some((account, tenant)) = self.account(user).await? else {
            return Ok(Auth::reject());
        };
        let Some(hash) = account.password_hash else {
            return Ok(Auth::reject());
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await?;
        if !ok {
            tracing::warn!(user, "exchange login refused: wrong password");
            return Ok(Auth::reject());
        }
        Ok(self.accept(user, tenant, "password"))
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.account(user).await? {
            Some((account, tenant)) if key_matches(&account, key.public_key) => {
                Ok(self.accept(user, tenant, "publickey"))
            }
            _ => Ok(Auth::reject()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The client is done: end the subsystem like sftp-server exiting. scp
        // reports failure when the channel closes without an exit status.
        session.exit_status_request(channel, 0)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Legacy scp (`scp -O`) and shells run commands: only SFTP is offered.
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(tenant), "sftp") = (self.tenant.as_ref(), name) else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        let Some(channel) = self.channels.remove(&channel_id) else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        let folders = TenantFolders::new(&self.server.root, &tenant.name);
        folders.create()?;
        let sftp = SftpSession::new(folders, self.server.writes.clone());
        session.channel_success(channel_id)?;
        russh_sftp::server::run(channel.into_stream(), sftp).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_key_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys").join("ssh_host_ed25519_key");

        let first = load_or_create_host_key(&path).expect("generate");
        let again = load_or_create_host_key(&path).expect("load");

        assert_eq!(first.public_key(), again.public_key());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("meta").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
