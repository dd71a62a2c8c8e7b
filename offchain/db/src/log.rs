//! Append-only logs that other components follow by position, safe against out-of-order
//! commits (ADR 0023).
//!
//! The problem: positions drawn from a sequence are handed out in one order and committed
//! in another. A reader at position 1 that sees 3 committed while 2 is still open moves
//! past 2 for good. The indexer solved it for its tables with an advisory lock held from
//! drawing a number until commit (ADR 0010); this module gives every log the same
//! discipline in the database itself, so no writer can forget it:
//!
//! ```sql
//! CREATE SEQUENCE events_seq;
//! CREATE TABLE events (seq bigint PRIMARY KEY, ...);
//! CREATE TRIGGER events_append BEFORE INSERT ON events
//!     FOR EACH ROW EXECUTE FUNCTION advancia_log.append('payments.events_seq', 'payments.events');
//! ```
//!
//! The trigger takes `pg_advisory_xact_lock(hashtext(<sequence>))` (the indexer's key
//! convention), sets `seq := nextval(<sequence>)` and queues `pg_notify(<channel>, '')`,
//! which Postgres delivers only on commit and folds to one per transaction. Postgres makes
//! a transaction visible before it releases its locks, so when the next writer draws a
//! number every smaller number is already visible: a reader that has seen N never later
//! finds a smaller committed number. The cost is that writers of one log commit one at a
//! time from their first append; services append last, just before commit.
//!
//! [`crate::follow::Follower`] reads such a log by position.

use crate::{Migration, ServiceMigrations};

/// The support schema: the trigger function every log uses. [`crate::migrate`] applies it
/// before any service, in every database it migrates.
pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "advancia_log",
    migrations: &[Migration {
        version: 1,
        name: "append_trigger",
        sql: include_str!("../migrations/0001_append_trigger.sql"),
    }],
};
