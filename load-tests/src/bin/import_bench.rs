//! Import benchmark: `broadside import` into PostgreSQL versus `psql \copy` of the
//! same file into an equivalent plain table, in one run.
//!
//! ```text
//! cargo build --release -p broadside -p broadside-load-tests
//! target/release/broadside-import-bench --rows 1000000
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use broadside_load_tests::{csv_gen, pgdb, rss};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Compare `broadside import` with `psql \\copy` on a generated CSV")]
struct Args {
    /// Rows to generate (plus a header row).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Server to create the scratch database on.
    #[arg(long, env = "BROADSIDE_TEST_DATABASE_URL", default_value = pgdb::DEFAULT_ADMIN_URL)]
    database_url: String,
    /// The broadside binary (default: next to this one).
    #[arg(long)]
    broadside: Option<PathBuf>,
    /// Directory for the generated file (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let broadside = match args.broadside {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("broadside"),
    };
    ensure!(
        broadside.exists(),
        "{} not found; build it with `cargo build --release -p broadside`",
        broadside.display()
    );
    let scratch = tempfile_dir(args.dir.as_deref())?;
    let file = scratch.join("recipients.csv");

    let started = Instant::now();
    let bytes = csv_gen::write_recipients(&file, args.rows)?;
    println!(
        "generated {} rows, {:.1} MB ({:.0} bytes/row) in {:.1}s",
        args.rows,
        bytes as f64 / 1e6,
        bytes as f64 / args.rows as f64,
        started.elapsed().as_secs_f64()
    );

    let db = pgdb::ScratchDatabase::create(&args.database_url)?;
    let (import_time, peak_rss) = run_broadside_import(&broadside, &db.url, &file)?;
    let copy_time = run_psql_copy(&db.url, &file)?;

    let import_rate = args.rows as f64 / import_time.as_secs_f64();
    let copy_rate = args.rows as f64 / copy_time.as_secs_f64();
    println!();
    println!("| loader | seconds | rows/s |");
    println!("|---|---:|---:|");
    println!(
        "| broadside import | {:.2} | {:.0} |",
        import_time.as_secs_f64(),
        import_rate
    );
    println!(
        "| psql \\copy | {:.2} | {:.0} |",
        copy_time.as_secs_f64(),
        copy_rate
    );
    println!();
    println!(
        "ratio: {:.0}% of psql \\copy",
        100.0 * import_rate / copy_rate
    );
    println!("importer peak RSS: {:.1} MB", peak_rss as f64 / 1e6);
    drop(db);
    std::fs::remove_dir_all(&scratch).ok();
    Ok(())
}

fn tempfile_dir(base: Option<&Path>) -> anyhow::Result<PathBuf> {
    let base = base
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("broadside-import-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs `broadside tenant create` then the timed `broadside import`, sampling the
/// importer's peak RSS (VmHWM) while it runs.
fn run_broadside_import(bin: &Path, url: &str, file: &Path) -> anyhow::Result<(Duration, u64)> {
    let data_dir = file.with_file_name("data");
    let command = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.args(args)
            .env("BROADSIDE_STORE__BACKEND", "postgres")
            .env("BROADSIDE_STORE__POSTGRES__URL", url)
            .env("BROADSIDE_DATA_DIR", &data_dir)
            .env("BROADSIDE_LOG__LEVEL", "warn");
        c
    };
    let status = command(&["tenant", "create", "bench"]).status()?;
    ensure!(status.success(), "broadside tenant create failed");

    let started = Instant::now();
    let file_arg = file.to_str().context("file path is not UTF-8")?;
    let mut child = command(&[
        "import",
        "--tenant",
        "bench",
        "--campaign",
        "bench",
        file_arg,
    ])
    .stdout(Stdio::piped())
    .spawn()?;
    let peak = rss::watch_peak(&mut child)?;
    let elapsed = started.elapsed();
    let output = child.wait_with_output()?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        bail!("broadside import failed: {}", output.status);
    }
    Ok((elapsed, peak))
}

fn run_psql_copy(url: &str, file: &Path) -> anyhow::Result<Duration> {
    let columns: Vec<String> = csv_gen::COLUMNS
        .iter()
        .map(|c| format!("{c} text"))
        .collect();
    let create = format!("CREATE TABLE plain_copy ({})", columns.join(", "));
    let status = Command::new("psql").args([url, "-qc", &create]).status()?;
    ensure!(status.success(), "psql CREATE TABLE failed");
    let copy = format!(
        "\\copy plain_copy FROM '{}' WITH (FORMAT csv, HEADER true)",
        file.display()
    );
    let started = Instant::now();
    let status = Command::new("psql").args([url, "-qc", &copy]).status()?;
    let elapsed = started.elapsed();
    ensure!(status.success(), "psql \\copy failed");
    Ok(elapsed)
}
