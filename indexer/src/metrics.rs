//! Prometheus metrics of the indexer, rendered by hand in the text exposition format
//! (version 0.0.4) and served on `GET /metrics` by the responder in `advancia-telemetry`.
//!
//! Hand-written rather than `prometheus-client` + an HTTP server crate: a dozen counters
//! and gauges with one label need no registry, and the indexer otherwise has no server
//! dependency to compile (decision in `docs/decisions/0008-indexer-exactly-once.md`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use advancia_pay::client::AdvanciaEvent;

use crate::IndexerError;

/// Event kinds, label values of `advancia_indexer_events_total`.
pub const EVENT_KINDS: [&str; 20] = [
    "config_updated",
    "admin_proposed",
    "admin_accepted",
    "asset_set",
    "facility_registered",
    "facility_payout_updated",
    "facility_deactivated",
    "payment_made",
    "payment_refunded",
    "escrow_opened",
    "escrow_released",
    "escrow_refunded",
    "escrow_closed",
    "attestation_written",
    "attestation_revoked",
    "batch_committed",
    "bridge_configured",
    "bridge_route_registered",
    "bridge_dispatched",
    "bridge_processed",
];

/// Index of an event's kind in [`EVENT_KINDS`].
pub fn event_kind_index(e: &AdvanciaEvent) -> usize {
    use AdvanciaEvent as E;
    match e {
        E::ConfigUpdated(_) => 0,
        E::AdminProposed(_) => 1,
        E::AdminAccepted(_) => 2,
        E::AssetSet(_) => 3,
        E::FacilityRegistered(_) => 4,
        E::FacilityPayoutUpdated(_) => 5,
        E::FacilityDeactivated(_) => 6,
        E::PaymentMade(_) => 7,
        E::PaymentRefunded(_) => 8,
        E::EscrowOpened(_) => 9,
        E::EscrowReleased(_) => 10,
        E::EscrowRefunded(_) => 11,
        E::EscrowClosed(_) => 12,
        E::AttestationWritten(_) => 13,
        E::AttestationRevoked(_) => 14,
        E::BatchCommitted(_) => 15,
    }
}

/// Index of a bridge event's kind in [`EVENT_KINDS`].
pub fn bridge_kind_index(e: &advancia_pay::client::BridgeEvent) -> usize {
    use advancia_pay::client::BridgeEvent as B;
    match e {
        B::BridgeConfigured(_) => 16,
        B::BridgeRouteRegistered(_) => 17,
        B::BridgeDispatched(_) => 18,
        B::BridgeProcessed(_) => 19,
    }
}

/// snake_case name of an event's kind.
pub fn event_kind(e: &AdvanciaEvent) -> &'static str {
    EVENT_KINDS[event_kind_index(e)]
}

/// Error kinds, label values of `advancia_indexer_errors_total`.
pub const ERROR_KINDS: [&str; 4] = ["database", "rpc", "malformed", "other"];

impl IndexerError {
    /// Label of this error in `advancia_indexer_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            IndexerError::Database(_) => "database",
            IndexerError::Http(_) | IndexerError::Rpc { .. } => "rpc",
            IndexerError::Malformed(_) | IndexerError::Json(_) => "malformed",
            IndexerError::BadCursor(_) | IndexerError::InvalidConfig(_) => "other",
        }
    }
}

/// The indexer's counters and gauges (shared with the HTTP responder).
#[derive(Debug, Default)]
pub struct Metrics {
    pub chain_head_slot: AtomicU64,
    pub cursor_slot: AtomicU64,
    /// Chain head minus the slot the indexer has read up to (see `Indexer::ingest`).
    pub head_lag_slots: AtomicI64,
    pub transactions: AtomicU64,
    pub events: [AtomicU64; EVENT_KINDS.len()],
    pub batches: AtomicU64,
    pub errors: [AtomicU64; ERROR_KINDS.len()],
    pub finality_updates: AtomicU64,
    pub rollbacks: AtomicU64,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn count_error(&self, e: &IndexerError) {
        let i = ERROR_KINDS.iter().position(|k| *k == e.kind()).unwrap_or(4);
        self.errors[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut one = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        one(
            "advancia_indexer_chain_head_slot",
            "gauge",
            "Newest slot of the chain at the ingest commitment.",
            get(&self.chain_head_slot).to_string(),
        );
        one(
            "advancia_indexer_cursor_slot",
            "gauge",
            "Slot of the newest transaction written (the stored cursor).",
            get(&self.cursor_slot).to_string(),
        );
        one(
            "advancia_indexer_head_lag_slots",
            "gauge",
            "Chain head minus the slot the indexer has read up to.",
            self.head_lag_slots.load(Ordering::Relaxed).to_string(),
        );
        one(
            "advancia_indexer_transactions_total",
            "counter",
            "Program transactions written.",
            get(&self.transactions).to_string(),
        );
        one(
            "advancia_indexer_batches_total",
            "counter",
            "Batches committed (rows and cursor in one database transaction).",
            get(&self.batches).to_string(),
        );
        one(
            "advancia_indexer_finality_updates_total",
            "counter",
            "Transactions seen reaching finalized.",
            get(&self.finality_updates).to_string(),
        );
        one(
            "advancia_indexer_rollbacks_total",
            "counter",
            "Transactions undone because the chain dropped them.",
            get(&self.rollbacks).to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP advancia_indexer_events_total Events written, by kind.\n\
             # TYPE advancia_indexer_events_total counter"
        );
        for (kind, n) in EVENT_KINDS.iter().zip(&self.events) {
            let _ = writeln!(
                out,
                "advancia_indexer_events_total{{kind=\"{kind}\"}} {}",
                get(n)
            );
        }
        let _ = writeln!(
            out,
            "# HELP advancia_indexer_errors_total Failed steps, by error kind.\n\
             # TYPE advancia_indexer_errors_total counter"
        );
        for (kind, n) in ERROR_KINDS.iter().zip(&self.errors) {
            let _ = writeln!(
                out,
                "advancia_indexer_errors_total{{kind=\"{kind}\"}} {}",
                get(n)
            );
        }
        out
    }
}

/// Binds `addr` and answers `GET /metrics` until the task is aborted; returns the bound
/// address (useful with port 0) and the serving task. The responder is the one every
/// binary shares (`advancia-telemetry`).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), std::io::Error> {
    advancia_telemetry::metrics::serve(
        addr,
        advancia_telemetry::metrics::render_fn(move || metrics.render()),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_series() {
        let m = Metrics::default();
        m.events[7].fetch_add(3, Ordering::Relaxed);
        m.count_error(&IndexerError::Malformed("x".into()));
        m.head_lag_slots.store(-1, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("advancia_indexer_events_total{kind=\"payment_made\"} 3\n"));
        assert!(text.contains("advancia_indexer_errors_total{kind=\"malformed\"} 1\n"));
        assert!(text.contains("advancia_indexer_head_lag_slots -1\n"));
        assert!(text.contains("# TYPE advancia_indexer_batches_total counter\n"));
    }
}
