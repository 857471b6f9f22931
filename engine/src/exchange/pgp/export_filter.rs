//! Exports encrypted to the customer's key: the export writer's filter stage.

use std::io;

use super::{CustomerKey, EncryptingWriter, PgpError, TenantKeys, encrypting_writer};
use crate::exchange::export::{ExportFilter, FinishWrite};
use crate::model::TenantId;
use crate::store::Store;

/// Wraps each export file in an OpenPGP message to the customer's key; the
/// file is named `….csv.gpg` so the customer knows to decrypt it.
#[derive(Debug)]
pub struct PgpExportFilter {
    key: CustomerKey,
}

impl PgpExportFilter {
    pub fn new(key: CustomerKey) -> Self {
        Self { key }
    }

    /// The filter for `tenant`: `None` when it set no customer key (exports stay
    /// plain). An error (a stored key that no longer parses, a store outage)
    /// must stop the export rather than fall back to plaintext.
    pub async fn for_tenant(
        keys: &TenantKeys,
        store: &dyn Store,
        tenant: TenantId,
    ) -> Result<Option<Self>, PgpError> {
        Ok(keys.customer_key(store, tenant).await?.map(Self::new))
    }
}

impl ExportFilter for PgpExportFilter {
    fn suffix(&self) -> &str {
        ".gpg"
    }

    fn wrap(&self, out: Box<dyn FinishWrite>) -> io::Result<Box<dyn FinishWrite>> {
        let writer = encrypting_writer(out, &self.key, false).map_err(io::Error::other)?;
        Ok(Box::new(writer))
    }
}

/// Ends the OpenPGP message, then the file under it (flush; the export writer
/// fsyncs and renames after this).
impl FinishWrite for EncryptingWriter<Box<dyn FinishWrite>> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let inner = (*self).finish().map_err(io::Error::other)?;
        inner.finish()
    }
}
