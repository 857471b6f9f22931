//! A fresh PostgreSQL database per test, named `broadside_test_<uuid>` and dropped
//! afterwards (also when the test panics), as in the engine's store tests. Without
//! a server the test is skipped with a loud notice, unless `BROADSIDE_REQUIRE_PG=1`
//! makes that a failure.

use std::io::Write;
use std::time::Duration;

use tokio_postgres::NoTls;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A test database; dropped (`WITH (FORCE)`) on drop.
pub struct TestDatabase {
    /// URL of the test database, for `PgStore::connect`.
    pub url: String,
    admin_url: String,
    name: String,
}

fn admin_url() -> String {
    std::env::var("BROADSIDE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `url` with its database name replaced (the URLs tests use have no query).
fn with_database(url: &str, name: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let base = match url[authority..].find('/') {
        Some(slash) => &url[..authority + slash],
        None => url,
    };
    format!("{base}/{name}")
}

async fn admin_client(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(3));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Creates a fresh database, or returns `None` (after saying why) when no server
/// answers and PostgreSQL is not required.
pub async fn test_database() -> Option<TestDatabase> {
    let admin_url = admin_url();
    let client = match admin_client(&admin_url).await {
        Ok(client) => client,
        Err(error) => {
            let required = std::env::var("BROADSIDE_REQUIRE_PG").is_ok_and(|v| v == "1");
            assert!(!required, "PostgreSQL at {admin_url} is required: {error}");
            // Straight to stderr: libtest captures the output of passing tests, and
            // a skip must not go unnoticed.
            let notice = format!(
                "\n*** SKIPPED: no PostgreSQL at {admin_url} ({error}).\n\
                 *** Point BROADSIDE_TEST_DATABASE_URL at a server, or set \
                 BROADSIDE_REQUIRE_PG=1 to fail instead of skipping.\n"
            );
            let _ = std::io::stderr().write_all(notice.as_bytes());
            return None;
        }
    };
    let name = format!("broadside_test_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    Some(TestDatabase {
        url: with_database(&admin_url, &name),
        admin_url,
        name,
    })
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime, which cannot be blocked on, so the
        // clean-up gets a thread and a runtime of its own.
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            runtime.block_on(async move {
                let client = admin_client(&url).await?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop test database {}: {error}", self.name),
            Err(_) => eprintln!("dropping test database {} panicked", self.name),
        }
    }
}
