//! `--spawn`: the real `broadside serve` on a scratch store (PostgreSQL or
//! SQLite) delivering to the loopback sink, with a tenant and API key created
//! through the CLI, exactly as an operator would.

use std::path::Path;
use std::process::Child;

use broadside_load_tests::engine_proc::{self, Backend, Engine};
use broadside_load_tests::pgdb::DEFAULT_ADMIN_URL;
use broadside_load_tests::sink::SinkHandle;

/// A running server and what it needs to stay up; stopped on drop.
pub struct Spawned {
    pub url: String,
    pub key_id: String,
    pub secret: String,
    serve: Child,
    /// Dropped after `serve` stopped: its scratch database and directory.
    _engine: Engine,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        engine_proc::stop(&mut self.serve);
    }
}

pub fn start(
    bin: &Path,
    postgres: Option<&str>,
    sink: &SinkHandle,
    extra: &[(String, String)],
) -> anyhow::Result<Spawned> {
    let backend = match postgres {
        Some(_) => Backend::Postgres,
        None => Backend::Sqlite,
    };
    let mut engine = Engine::new(
        bin,
        backend,
        postgres.unwrap_or(DEFAULT_ADMIN_URL),
        sink,
        false,
    )?;
    engine.set("BROADSIDE_METRICS__LISTEN", "");
    for (key, value) in extra {
        engine.set(key, value.clone());
    }
    engine.run(&["tenant", "create", "load"])?;
    let (key_id, secret) = engine.create_key("load")?;
    let serve = engine.serve()?;
    Ok(Spawned {
        url: format!("http://127.0.0.1:{}", engine.api_port),
        key_id,
        secret,
        serve,
        _engine: engine,
    })
}
