//! `advancia-facilities`: facility profiles (optimistic concurrency), full-text and
//! distance search, staff, resources, appointment slots that cannot double-book,
//! certification expiry tracking with an outbox of events, and the unsigned admin
//! transactions mirroring a facility to the on-chain registry.

pub mod chain;
pub mod model;
mod service;

use advancia_db::{Migration, ServiceMigrations};

pub use model::*;
pub use service::FacilityService;

/// Independent of other schemas: staff's user ids are checked through the [`UserDirectory`].
pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "facilities",
    migrations: &[
        Migration {
            version: 1,
            name: "init",
            sql: include_str!("../migrations/0001_init.sql"),
        },
        Migration {
            version: 2,
            name: "followed_outbox",
            sql: include_str!("../migrations/0002_followed_outbox.sql"),
        },
        Migration {
            version: 3,
            name: "no_foreign_schema",
            sql: include_str!("../migrations/0003_no_foreign_schema.sql"),
        },
    ],
};

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Whether a user id is a known user: the auth service answers (`advancia serve` implements
/// this over its typed read), so facilities never names the auth schema.
pub trait UserDirectory: Send + Sync {
    fn user_exists(
        &self,
        id: uuid::Uuid,
    ) -> BoxFuture<'_, Result<bool, Box<dyn std::error::Error + Send + Sync>>>;
}

/// The facility service's outbox (`facility.*` events), as other services follow it.
pub const OUTBOX: advancia_outbox::Source = advancia_outbox::Source {
    name: "facilities.events",
    table: "facilities.events",
    subject_prefix: "events.facilities",
};

#[derive(Debug, thiserror::Error)]
pub enum FacilityError {
    /// The user directory could not answer.
    #[error("{0} is unavailable")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The `If-Match` version is not the stored one.
    #[error("facility was modified: version {current} is current, not {expected}")]
    VersionMismatch { expected: i64, current: i64 },
    /// Double booking rejected by the exclusion constraint.
    #[error("the {0} is already booked for an overlapping time")]
    SlotTaken(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("facility {0} is deactivated")]
    Deactivated(uuid::Uuid),
    #[error(transparent)]
    Chain(#[from] advancia_chains::ChainError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored facility data is corrupt: {0}")]
    Corrupt(String),
}
