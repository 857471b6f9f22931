//! The bb8 connection manager: bb8-postgres's, plus a `broken` flag so that a
//! connection left in an unknown protocol or transaction state (an import writer
//! dropped mid-COPY) is closed by the pool instead of being handed to the next user.

use std::ops::{Deref, DerefMut};

use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::{Client, Error, NoTls};

/// A pooled client. Derefs to `tokio_postgres::Client`.
pub(crate) struct PgConn {
    client: Client,
    /// Set by code that abandons the connection mid-transaction; bb8 asks
    /// `has_broken` when the connection comes back and drops it if set, which makes
    /// the server roll the transaction back.
    broken: bool,
}

impl PgConn {
    pub(crate) fn mark_broken(&mut self) {
        self.broken = true;
    }
}

impl Deref for PgConn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

pub(crate) struct PgManager {
    inner: PostgresConnectionManager<NoTls>,
}

impl PgManager {
    pub(crate) fn new(config: tokio_postgres::Config) -> Self {
        Self {
            inner: PostgresConnectionManager::new(config, NoTls),
        }
    }
}

impl bb8::ManageConnection for PgManager {
    type Connection = PgConn;
    type Error = Error;

    async fn connect(&self) -> Result<PgConn, Error> {
        let client = self.inner.connect().await?;
        Ok(PgConn {
            client,
            broken: false,
        })
    }

    async fn is_valid(&self, conn: &mut PgConn) -> Result<(), Error> {
        self.inner.is_valid(&mut conn.client).await
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.broken || conn.client.is_closed()
    }
}

pub(crate) type Pool = bb8::Pool<PgManager>;
pub(crate) type Pooled = bb8::PooledConnection<'static, PgManager>;
