//! Process-wide `tracing` set-up: text or JSON logs on stderr, the OTLP exporter when
//! configured, and the settings that choose them.

use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::trace::{ExportHandle, OtlpConfig, otlp_layer};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, `spans`).
    Json,
}

/// Logging and tracing settings of one binary.
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter; the binary's default when `None`.
    pub log_filter: Option<String>,
    pub otlp: Option<OtlpConfig>,
}

/// A bad logging/tracing setting, naming it and the expected form (never the value of a
/// secret: none of these are).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem} (expected {expected})")]
pub struct SettingError {
    pub setting: &'static str,
    pub problem: String,
    pub expected: &'static str,
}

impl TelemetryConfig {
    /// From `ADVANCIA_LOG_FORMAT` (`text`|`json`), `RUST_LOG`, `ADVANCIA_OTLP_ENDPOINT` (else
    /// the standard `OTEL_EXPORTER_OTLP_ENDPOINT`), `OTEL_SERVICE_NAME` (else
    /// `default_service`). Every bad setting is reported.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        default_service: &str,
    ) -> Result<TelemetryConfig, Vec<SettingError>> {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let mut errors = Vec::new();
        let mut c = TelemetryConfig::default();
        match var("ADVANCIA_LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("text") => {}
            Some("json") => c.log_format = LogFormat::Json,
            Some(other) => errors.push(SettingError {
                setting: "ADVANCIA_LOG_FORMAT",
                problem: format!("`{other}` is not a log format"),
                expected: "`text` or `json`",
            }),
        }
        if let Some(f) = var("RUST_LOG") {
            match EnvFilter::try_new(&f) {
                Ok(_) => c.log_filter = Some(f),
                Err(e) => errors.push(SettingError {
                    setting: "RUST_LOG",
                    problem: format!("not a valid filter ({e})"),
                    expected: "directives like `info,sqlx=warn`",
                }),
            }
        }
        let (name, endpoint) = match var("ADVANCIA_OTLP_ENDPOINT") {
            Some(v) => ("ADVANCIA_OTLP_ENDPOINT", Some(v)),
            None => (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                var("OTEL_EXPORTER_OTLP_ENDPOINT"),
            ),
        };
        if let Some(e) = endpoint {
            let e = e.trim();
            let ok = (e.starts_with("http://") || e.starts_with("https://"))
                && reqwest::Url::parse(e).is_ok_and(|u| u.host().is_some());
            if ok {
                let service = var("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.into());
                c.otlp = Some(OtlpConfig::new(e, service));
            } else {
                // A collector URL carries no secret; still, only its shape is reported.
                errors.push(SettingError {
                    setting: if name == "ADVANCIA_OTLP_ENDPOINT" {
                        "ADVANCIA_OTLP_ENDPOINT"
                    } else {
                        "OTEL_EXPORTER_OTLP_ENDPOINT"
                    },
                    problem: "not an http(s) URL with a host".into(),
                    expected: "the collector's OTLP/HTTP base URL, e.g. `http://otel-collector:4318`",
                });
            }
        }
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }
}

/// Keeps the exporter alive; [`Telemetry::shutdown`] flushes queued spans.
#[derive(Clone, Default)]
pub struct Telemetry {
    export: Option<ExportHandle>,
}

impl Telemetry {
    /// Sends spans still queued (call before exit; bounded by `timeout`).
    pub async fn shutdown(&self, timeout: Duration) {
        if let Some(e) = &self.export {
            e.flush(timeout).await;
        }
    }

    pub fn exporting(&self) -> bool {
        self.export.is_some()
    }
}

/// Installs the global subscriber. Call once, inside the tokio runtime when OTLP export is
/// configured. `default_filter` applies when `RUST_LOG` is unset. Returns an error when a
/// subscriber is already installed or the exporter's HTTP client cannot be built.
pub fn init(config: &TelemetryConfig, default_filter: &str) -> Result<Telemetry, InitError> {
    let filter = || {
        EnvFilter::try_new(config.log_filter.as_deref().unwrap_or(default_filter))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let fmt_layer = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour codes only for a person at a terminal, not in log files.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed(),
    };
    let (otlp, export) = match &config.otlp {
        Some(o) => {
            let (layer, handle) = otlp_layer(o.clone()).map_err(InitError::Exporter)?;
            // Spans of our code and the HTTP layer; dependency internals stay out of traces.
            (Some(layer.with_filter(filter())), Some(handle))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otlp)
        .try_init()
        .map_err(|e| InitError::AlreadySet(e.to_string()))?;
    Ok(Telemetry { export })
}

/// [`TelemetryConfig::from_vars`] over the process environment, then [`init`]: the one-line
/// set-up of binaries without a configuration file. Every bad setting is in the error.
pub fn init_from_env(service: &str, default_filter: &str) -> Result<Telemetry, InitError> {
    let config = TelemetryConfig::from_vars(|k| std::env::var(k).ok(), service).map_err(|es| {
        InitError::Config(
            es.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    init(&config, default_filter)
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0}")]
    Config(String),
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadySet(String),
    #[error("OTLP exporter HTTP client: {0}")]
    Exporter(reqwest::Error),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn every_bad_setting_is_reported() {
        let vars: HashMap<&str, &str> = [
            ("ADVANCIA_LOG_FORMAT", "xml"),
            ("RUST_LOG", "info,[=="),
            ("ADVANCIA_OTLP_ENDPOINT", "collector:4318"),
        ]
        .into();
        let errs =
            TelemetryConfig::from_vars(|k| vars.get(k).map(|v| v.to_string()), "x").unwrap_err();
        let names: Vec<_> = errs.iter().map(|e| e.setting).collect();
        assert_eq!(
            names,
            ["ADVANCIA_LOG_FORMAT", "RUST_LOG", "ADVANCIA_OTLP_ENDPOINT"]
        );
        assert!(errs[0].to_string().contains("`text` or `json`"));
    }

    #[test]
    fn good_settings_parse() {
        let vars: HashMap<&str, &str> = [
            ("ADVANCIA_LOG_FORMAT", "json"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SERVICE_NAME", "advancia-payments"),
        ]
        .into();
        let c = TelemetryConfig::from_vars(|k| vars.get(k).map(|v| v.to_string()), "x").unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        let o = c.otlp.unwrap();
        assert_eq!(o.endpoint, "http://127.0.0.1:4318");
        assert_eq!(o.service_name, "advancia-payments");
    }
}
