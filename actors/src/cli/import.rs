//! `broadside import`: loads a recipient CSV into a campaign through the same
//! pipeline the file exchange and the API use, with a progress bar and a summary.
//! A file named `*.pgp`, `*.gpg` or `*.asc` is decrypted with the tenant's PGP
//! key while it is read, as in the file exchange.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use engine::auth::keys::MasterKey;
use engine::config::Config;
use engine::exchange::pgp::{self, TenantKeys};
use engine::import::{ImportOptions, ImportProgress, import_csv};
use engine::model::{CampaignName, TenantName};
use indicatif::{ProgressBar, ProgressStyle};

use crate::app;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tenant that owns the campaign.
    #[arg(long)]
    tenant: TenantName,
    /// The campaign to load into; created as a draft if it does not exist.
    #[arg(long)]
    campaign: CampaignName,
    /// Where to write the report of rejected rows (default:
    /// <import.reports_dir>/<file name>.errors.csv).
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// The CSV file: a header row, one column holding the address. Encrypted
    /// to the tenant's PGP key when it ends in .pgp, .gpg or .asc.
    file: PathBuf,
}

pub async fn run(config: &Config, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let store = app::open_store(config).await?;
    let Some(tenant) = store.tenant(&args.tenant).await? else {
        bail!(
            "tenant {:?} does not exist; create it with `broadside tenant create {}`",
            args.tenant.as_str(),
            args.tenant
        );
    };
    let campaign = match store.campaign_by_name(tenant.id, &args.campaign).await? {
        Some(campaign) => campaign,
        None => store.create_campaign(tenant.id, &args.campaign).await?,
    };
    let file =
        File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let file_name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let (source, size): (Box<dyn Read + Send>, _) =
        match pgp::is_encrypted_name(file_name.as_deref().unwrap_or_default()) {
            false => (Box::new(file), Some(size)),
            // The plaintext's size is unknown until the end.
            true => (
                Box::new(decrypt(config, store.as_ref(), tenant.id, file).await?),
                None,
            ),
        };
    let report = match args.report {
        Some(path) => path,
        None => {
            let name = args
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            config.reports_dir().join(format!("{name}.errors.csv"))
        }
    };
    let source_name = args.file.display().to_string();
    let options = ImportOptions::from(&config.import);

    let bar = progress_bar(size);
    let progress = {
        let bar = bar.clone();
        move |p: ImportProgress| {
            bar.set_position(p.bytes_read);
            bar.set_message(format!("{} rows", p.rows_read));
        }
    };
    let outcome = import_csv(
        store.as_ref(),
        tenant.id,
        campaign.id,
        source,
        &source_name,
        &report,
        &options,
        &progress,
    )
    .await;
    bar.finish_and_clear();
    let outcome = outcome?;
    crate::telemetry::count_import(&outcome);

    let seconds = outcome.elapsed.as_secs_f64().max(1e-9);
    let rate = outcome.total_rows as f64 / seconds;
    println!(
        "{}: {} rows loaded into campaign {} (id {}), {} rejected, {:.1}s, {:.0} rows/s",
        if outcome.accepted {
            "imported"
        } else {
            "REJECTED"
        },
        outcome.loaded,
        campaign.name,
        campaign.id,
        outcome.rejected,
        seconds,
        rate,
    );
    if let Some(report) = &outcome.report {
        println!("report of rejected rows: {}", report.display());
    }
    if outcome.accepted {
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "the file was rejected: more than {:.0}% of its rows are invalid; nothing was loaded",
            options.max_invalid_share * 100.0
        );
        Ok(ExitCode::from(2))
    }
}

async fn decrypt(
    config: &Config,
    store: &dyn engine::store::Store,
    tenant: engine::model::TenantId,
    file: File,
) -> anyhow::Result<pgp::PlainReader> {
    let master = MasterKey::configured_or_file(config.api.master_key.expose(), &config.data_dir)
        .context("api.master_key")?;
    let key = TenantKeys::new(master).secret_key(store, tenant).await?;
    Ok(pgp::decrypting_reader(file, &key)?)
}

fn progress_bar(size: Option<u64>) -> ProgressBar {
    let bar = match size {
        Some(size) => ProgressBar::new(size),
        None => ProgressBar::no_length(),
    };
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
