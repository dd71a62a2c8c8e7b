//! What KYC needs to know of other services, asked through their typed reads (ADR 0023):
//! KYC never reads another schema, so it can live in a database of its own.

use std::sync::Arc;

use uuid::Uuid;

use crate::documents::BoxFuture;

/// A boxed error from the service behind a port.
pub type PortError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The answers KYC asks other services for.
pub trait KycDirectory: Send + Sync {
    /// Whether `address` is a Solana wallet `user` has linked (with the wallet service or
    /// by signing in with it).
    fn wallet_linked<'a>(
        &'a self,
        user: Uuid,
        address: &'a str,
    ) -> BoxFuture<'a, Result<bool, PortError>>;

    /// Payments the indexer saw from `payer` since each of `since` (unix seconds), in the
    /// same order.
    fn payments_since<'a>(
        &'a self,
        payer: &'a str,
        since: [i64; 2],
    ) -> BoxFuture<'a, Result<[i64; 2], PortError>>;
}

pub type Directory = Arc<dyn KycDirectory>;
