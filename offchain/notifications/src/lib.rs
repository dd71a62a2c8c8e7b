//! `advancia-notifications`: what users hear about, and how it reaches them.
//!
//! - [`NotificationService::send`] renders a template ([`template`], minijinja) with the
//!   sender's variables, picks channels from the user's [`Preferences`] (deferring
//!   interruptive channels past quiet hours in the user's IANA time zone), and writes the
//!   notification and one outbox row per (channel, destination) in one transaction.
//! - [`outbox::OutboxWorker`]s claim due rows with `FOR UPDATE SKIP LOCKED` and a lease,
//!   hand each to its [`channels::Channel`] (Standard Webhooks, SMTP email, in-app, SMS,
//!   push), and retry failures with exponential backoff and jitter until the last attempt
//!   dead-letters the row; operators replay dead letters. Every row carries a stable
//!   idempotency key (the `webhook-id`, the email `Message-ID`, the provider's
//!   idempotency key), so a worker that dies mid-send causes at most a repeat that the
//!   receiver recognises, never a loss.
//! - [`events`] follows other services' outboxes (payments, facilities, KYC) with the one
//!   gap-safe follower, pushed by their commits, writing notifications in the transaction
//!   that moves the cursor: confirmations, finalizations, refunds and escrow releases to the
//!   intent's creator and the facility's billing staff, expiring certifications to the
//!   compliance staff, `kyc.decided` to the user.
//! - [`stream::inbox`] streams a user's in-app notifications live (LISTEN/NOTIFY).

pub mod channels;
pub mod config;
pub mod events;
pub mod model;
pub mod outbox;
mod service;
pub mod signing;
pub mod stats;
pub mod stream;
pub mod template;

use advancia_db::{Migration, ServiceMigrations};

pub use model::{
    ChannelKind, DeadLetter, Delivery, EventType, Notification, NotificationFilter, Preferences,
    PreferencesUpdate, Priority, SendRequest, Sent, Template, TemplateInput, WebhookEndpoint,
};
pub use service::NotificationService;

pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "notifications",
    migrations: &[
        Migration {
            version: 1,
            name: "notifications",
            sql: include_str!("../migrations/0001_notifications.sql"),
        },
        Migration {
            version: 2,
            name: "traceparent",
            sql: include_str!("../migrations/0002_traceparent.sql"),
        },
        Migration {
            version: 3,
            name: "facility staff templates",
            sql: include_str!("../migrations/0003_facility_templates.sql"),
        },
        Migration {
            version: 4,
            name: "account templates",
            sql: include_str!("../migrations/0004_account_templates.sql"),
        },
        Migration {
            version: 5,
            name: "followed outboxes",
            sql: include_str!("../migrations/0005_followed_outboxes.sql"),
        },
    ],
};

#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// Malformed input: outside what the API documents.
    #[error("{0}")]
    Invalid(String),
    /// Well-formed input refused as it stands: an unknown time zone, values that go
    /// together given alone, an address the mail library refuses, a request that names
    /// neither a template nor subject and body.
    #[error("{0}")]
    Refused(String),
    #[error("template error in {0}")]
    Template(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A webhook URL that points inside our network (or at something else we refuse).
    #[error("webhook URL refused: {0}")]
    UrlRefused(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Another service this one asks (a followed database, the staff directory) failed.
    #[error("{0} is unavailable")]
    Unavailable(String),
}
