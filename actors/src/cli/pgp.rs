//! `broadside pgp …`: a tenant's OpenPGP keys — its own key pair (customers
//! encrypt imports to its public key) and the customer's public key (exports
//! are encrypted to it) — and `encrypt`, which encrypts a file the way exports are.

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use chrono::Utc;
use clap::Subcommand;
use engine::auth::keys::MasterKey;
use engine::config::Config;
use engine::exchange::pgp::{CustomerKey, TenantKeys, encrypting_writer};
use engine::model::{TenantId, TenantName};
use engine::store::{AuditRecord, Store};

use crate::app;

#[derive(Debug, Subcommand)]
pub enum PgpCommand {
    /// Create the tenant's key pair now (it is otherwise created on first need);
    /// prints its fingerprint.
    Init {
        #[arg(long)]
        tenant: TenantName,
    },
    /// Print the tenant's public key (ASCII armor) for the customer to import.
    PublicKey {
        #[arg(long)]
        tenant: TenantName,
    },
    /// Set, show or remove the customer's public key, which exports are
    /// encrypted to.
    CustomerKey {
        #[arg(long)]
        tenant: TenantName,
        /// An armored or binary OpenPGP public key with an encryption subkey.
        #[arg(long, value_name = "FILE", conflicts_with = "remove")]
        file: Option<PathBuf>,
        /// Remove the key: exports are written unencrypted again.
        #[arg(long)]
        remove: bool,
    },
    /// Encrypt a file to the customer's key, as exports are.
    Encrypt {
        #[arg(long)]
        tenant: TenantName,
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
        #[arg(long = "out", value_name = "FILE")]
        output: PathBuf,
        /// ASCII armor instead of binary.
        #[arg(long)]
        armor: bool,
    },
}

pub async fn run(config: &Config, command: PgpCommand) -> anyhow::Result<ExitCode> {
    let master = MasterKey::configured_or_file(config.api.master_key.expose(), &config.data_dir)
        .context("api.master_key")?;
    let keys = TenantKeys::new(master);
    let store = app::open_store(config).await?;
    match command {
        PgpCommand::Init { tenant } => {
            let id = app::tenant_id(store.as_ref(), &tenant).await?;
            let public = keys.public_key(store.as_ref(), id, &tenant).await?;
            if public.created {
                audit(store.as_ref(), id, "pgp.key_created", &public.fingerprint).await?;
                println!("created the PGP key of {tenant}: {}", public.fingerprint);
            } else {
                println!("{tenant} already has a PGP key: {}", public.fingerprint);
            }
        }
        PgpCommand::PublicKey { tenant } => {
            let id = app::tenant_id(store.as_ref(), &tenant).await?;
            let public = keys.public_key(store.as_ref(), id, &tenant).await?;
            if public.created {
                audit(store.as_ref(), id, "pgp.key_created", &public.fingerprint).await?;
            }
            print!("{}", public.armored);
        }
        PgpCommand::CustomerKey {
            tenant,
            file,
            remove,
        } => {
            let id = app::tenant_id(store.as_ref(), &tenant).await?;
            customer_key(store.as_ref(), &keys, id, file, remove).await?;
        }
        PgpCommand::Encrypt {
            tenant,
            input,
            output,
            armor,
        } => {
            let id = app::tenant_id(store.as_ref(), &tenant).await?;
            let Some(recipient) = keys.customer_key(store.as_ref(), id).await? else {
                bail!("{tenant} has no customer key; set one with `broadside pgp customer-key`");
            };
            tokio::task::spawn_blocking(move || encrypt_file(&recipient, &input, &output, armor))
                .await
                .context("the encrypting task")??;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn customer_key(
    store: &dyn Store,
    keys: &TenantKeys,
    tenant: TenantId,
    file: Option<PathBuf>,
    remove: bool,
) -> anyhow::Result<()> {
    if remove {
        store.set_customer_pgp_key(tenant, None).await?;
        audit(store, tenant, "pgp.customer_key_removed", "").await?;
        println!("removed the customer key; exports are no longer encrypted");
        return Ok(());
    }
    let Some(path) = file else {
        match keys.customer_key(store, tenant).await? {
            Some(key) => println!("customer key {}", key.fingerprint()),
            None => println!("no customer key"),
        }
        return Ok(());
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let key = CustomerKey::parse(&bytes).with_context(|| format!("{}", path.display()))?;
    store
        .set_customer_pgp_key(tenant, Some(&key.to_armored()?))
        .await?;
    audit(store, tenant, "pgp.customer_key_set", &key.fingerprint()).await?;
    println!(
        "customer key {} set; exports are encrypted to it",
        key.fingerprint()
    );
    Ok(())
}

async fn audit(
    store: &dyn Store,
    tenant: TenantId,
    action: &str,
    target: &str,
) -> anyhow::Result<()> {
    let mut record = AuditRecord::new(Some(tenant), "cli", action, Utc::now());
    if !target.is_empty() {
        record = record.target(target);
    }
    store.append_audit(&record).await?;
    Ok(())
}

/// Writes `output` through a temporary name, so a failed run leaves no
/// half-encrypted file under the final name.
fn encrypt_file(
    recipient: &CustomerKey,
    input: &std::path::Path,
    output: &std::path::Path,
    armor: bool,
) -> anyhow::Result<()> {
    let mut source = BufReader::new(
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?,
    );
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let result = (|| {
        let mut writer = encrypting_writer(BufWriter::new(file), recipient, armor)?;
        std::io::copy(&mut source, &mut writer).context("encrypting")?;
        let file = writer.finish()?.into_inner().context("writing")?;
        file.sync_all().context("writing")?;
        std::fs::rename(&partial, output).with_context(|| format!("writing {}", output.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
