//! Route groups, one module per service.

pub mod auth;
pub mod ledger;
