//! Scratch PostgreSQL databases for benchmarks: created with a unique name, dropped
//! on drop. Uses the `psql` client so that benchmarks depend on nothing but a server.

use std::process::Command;

use anyhow::ensure;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for the lifetime of this value.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl ScratchDatabase {
    pub fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("broadside_bench_{}", uuid::Uuid::new_v4().simple());
        let status = Command::new("psql")
            .args([admin_url, "-qc", &format!("CREATE DATABASE {name}")])
            .status()?;
        ensure!(
            status.success(),
            "cannot create database {name} on {admin_url}"
        );
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin_url,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .status();
    }
}
