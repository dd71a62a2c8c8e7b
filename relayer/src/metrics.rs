//! Prometheus text exposition of the relayer's delivery state (read from Postgres, so the
//! figures survive restarts and agree between relayer replicas).

use std::fmt::Write as _;

use crate::store::{Store, StoreError};

/// Renders backlog, failures by reason and the delivery latency histogram for `domain`.
pub async fn render(store: &Store, domain: u32) -> Result<String, StoreError> {
    let stats = store.stats(domain).await?;
    let mut out = String::new();
    let d = domain;
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "# HELP advancia_bridge_backlog Undelivered messages by delivery status."
    );
    let _ = writeln!(out, "# TYPE advancia_bridge_backlog gauge");
    let _ = writeln!(
        out,
        "advancia_bridge_backlog{{destination=\"{d}\",status=\"not_queued\"}} {}",
        stats.awaiting_enqueue
    );
    for status in ["pending", "submitted", "failed"] {
        let n = stats
            .backlog_by_status
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(
            out,
            "advancia_bridge_backlog{{destination=\"{d}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP advancia_bridge_delivery_failures_total Failed delivery attempts by reason."
    );
    let _ = writeln!(
        out,
        "# TYPE advancia_bridge_delivery_failures_total counter"
    );
    for (reason, n) in &stats.failures_by_reason {
        let _ = writeln!(
            out,
            "advancia_bridge_delivery_failures_total{{destination=\"{d}\",reason=\"{reason}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP advancia_bridge_delivery_latency_seconds From first observation by a validator to delivery."
    );
    let _ = writeln!(
        out,
        "# TYPE advancia_bridge_delivery_latency_seconds histogram"
    );
    for (bound, n) in &stats.latency_buckets {
        let _ = writeln!(
            out,
            "advancia_bridge_delivery_latency_seconds_bucket{{destination=\"{d}\",le=\"{bound}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "advancia_bridge_delivery_latency_seconds_bucket{{destination=\"{d}\",le=\"+Inf\"}} {}",
        stats.latency_count
    );
    let _ = writeln!(
        out,
        "advancia_bridge_delivery_latency_seconds_sum{{destination=\"{d}\"}} {}",
        stats.latency_sum_secs
    );
    let _ = writeln!(
        out,
        "advancia_bridge_delivery_latency_seconds_count{{destination=\"{d}\"}} {}",
        stats.latency_count
    );
    Ok(out)
}
