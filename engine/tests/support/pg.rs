//! A fresh PostgreSQL database per test, named `broadside_test_<uuid>`, created on
//! the server at `BROADSIDE_TEST_DATABASE_URL` and dropped when the guard goes out of
//! scope, also when the test panics. Without a server the tests are skipped with a
//! loud notice, unless `BROADSIDE_REQUIRE_PG=1` makes that a failure (CI).

use std::io::Write;
use std::time::Duration;

use tokio_postgres::NoTls;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A test database; dropped (`WITH (FORCE)`) on drop.
pub struct TestDatabase {
    /// URL of the test database, for `PgStore::connect`.
    pub url: String,
    /// The maintenance database the test database was created from.
    admin_url: String,
    name: String,
}

fn admin_url() -> String {
    std::env::var("BROADSIDE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `url` with its database name replaced; good enough for the URLs tests use.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

async fn admin_client(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(3));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Creates a fresh database, or returns `None` (after saying why) when no server
/// answers and `BROADSIDE_REQUIRE_PG` is not `1`.
pub async fn test_database() -> Option<TestDatabase> {
    let admin_url = admin_url();
    let client = match admin_client(&admin_url).await {
        Ok(client) => client,
        Err(error) => {
            let required = std::env::var("BROADSIDE_REQUIRE_PG").is_ok_and(|v| v == "1");
            assert!(!required, "PostgreSQL at {admin_url} is required: {error}");
            // Straight to stderr: libtest captures `eprintln!` of passing tests,
            // and a skip must not go unnoticed.
            let notice = format!(
                "\n*** SKIPPED: no PostgreSQL at {admin_url} ({error}).\n\
                 *** Start one with `pg_ctlcluster --skip-systemctl-redirect 15 main start`\n\
                 *** or point BROADSIDE_TEST_DATABASE_URL at a server; \
                 set BROADSIDE_REQUIRE_PG=1 to fail instead of skipping.\n"
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

#[test]
fn the_database_name_is_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
}
