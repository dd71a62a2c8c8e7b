//! Route groups, one module per service.

pub mod agents;
pub mod analytics;
pub mod auth;
pub mod blockchain;
pub mod checkout;
pub mod facilities;
pub mod indexer;
pub mod kyc;
pub mod ledger;
pub mod notifications;
pub mod payments;
