//! Observability shared by every Advancia binary: logs (text/JSON), OTLP trace export with
//! W3C trace-context propagation, and Prometheus metrics. See `METRICS.md` for the names.

pub mod logging;
pub mod metrics;
pub mod trace;

pub use logging::{LogFormat, Telemetry, TelemetryConfig, init, init_from_env};
pub use metrics::Registry;
pub use trace::{TraceContext, current, current_traceparent};
