//! `advancia serve` configuration: a TOML file overlaid by environment variables (which
//! keep their existing names) overlaid by command-line flags, validated as a whole at
//! start-up. Every bad setting is reported at once, naming the setting, where it came
//! from, what is wrong and the expected form — never the value of a secret.
//!
//! File keys are the environment names written as a tree: a table's name and a key join
//! with `_` and the result is upper-cased, so
//!
//! ```toml
//! database_url = "postgres://app@db/advancia"   # DATABASE_URL
//! [advancia]
//! listen = "0.0.0.0:8080"                       # ADVANCIA_LISTEN
//! services = ["payments", "ledger"]             # ADVANCIA_SERVICES (arrays join with ',')
//! [advancia.smtp]
//! host = "smtp.example.com"                     # ADVANCIA_SMTP_HOST
//! [auth]
//! signing_key_file = "/run/secrets/jwt"         # AUTH_SIGNING_KEY_FILE
//! ```
//!
//! Unknown keys in the file are errors (a typo must not silently fall back to a default).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use advancia_auth::{AuthConfig, SigningKeys};
use advancia_db::DbConfig;
use advancia_notifications::config::ChannelsConfig;
use advancia_telemetry::TelemetryConfig;

use crate::ops::{ReadinessConfig, ServiceSet};
use crate::{ApiConfig, ServicesConfig};

/// Every setting `advancia serve` reads. Services that add settings add their names here
/// (file keys are checked against this list; environment variables are looked up by it).
pub const KNOWN: &[&str] = &[
    "DATABASE_URL",
    "ADVANCIA_PAYMENTS_DATABASE_URL",
    "ADVANCIA_LEDGER_DATABASE_URL",
    "ADVANCIA_NOTIFICATIONS_DATABASE_URL",
    "ADVANCIA_ANALYTICS_DATABASE_URL",
    "ADVANCIA_KYC_DATABASE_URL",
    "ADVANCIA_DATABASE_MAX_CONNECTIONS",
    "ADVANCIA_LISTEN",
    "ADVANCIA_METRICS_LISTEN",
    "ADVANCIA_SERVICES",
    "ADVANCIA_SHUTDOWN_DRAIN_SECS",
    "ADVANCIA_READY_REQUIRE_CHAIN",
    "ADVANCIA_LOG_FORMAT",
    "RUST_LOG",
    "ADVANCIA_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "ADVANCIA_RATE_LIMITS",
    "ADVANCIA_REDIS_URL",
    "ADVANCIA_REDIS_PREFIX",
    "ADVANCIA_CORS_ORIGINS",
    "ADVANCIA_TRUSTED_PROXY_HOPS",
    "ADVANCIA_REQUEST_TIMEOUT_SECS",
    "ADVANCIA_BODY_LIMIT_BYTES",
    "ADVANCIA_SOLANA_RPC_URL",
    "ADVANCIA_PUBLIC_URL",
    "ADVANCIA_EGRESS_ALLOW",
    "ADVANCIA_PAYMENT_ICON_URL",
    "ADVANCIA_PAYMENT_LABEL",
    "ADVANCIA_PAYMENT_TTL_SECS",
    "ADVANCIA_COSMOS_CHAIN_ID",
    "ADVANCIA_COSMOS_ASSET_SCALES",
    "AUTH_SIGNING_KEY",
    "AUTH_SIGNING_KEY_FILE",
    "AUTH_SIGNING_KID",
    "AUTH_RETIRED_PUBLIC_KEYS",
    "AUTH_TOTP_ENCRYPTION_KEY",
    "AUTH_ISSUER",
    "AUTH_AUDIENCE",
    "AUTH_TOTP_ISSUER",
    "AUTH_SIWS_DOMAIN",
    "AUTH_SIWS_URI",
    "AUTH_SIWS_CHAIN_ID",
    "ADVANCIA_SMTP_HOST",
    "ADVANCIA_SMTP_PORT",
    "ADVANCIA_SMTP_SECURITY",
    "ADVANCIA_SMTP_USERNAME",
    "ADVANCIA_SMTP_PASSWORD",
    "ADVANCIA_SMTP_FROM",
    "ADVANCIA_TWILIO_ACCOUNT_SID",
    "ADVANCIA_TWILIO_AUTH_TOKEN",
    "ADVANCIA_TWILIO_FROM",
    "ADVANCIA_TWILIO_BASE_URL",
    "ADVANCIA_FCM_PROJECT_ID",
    "ADVANCIA_FCM_ACCESS_TOKEN",
    "ADVANCIA_FCM_BASE_URL",
    "ADVANCIA_CERT_EXPIRY_DAYS",
    "ADVANCIA_NATS_URL",
    "ADVANCIA_NATS_STREAM",
    "ADVANCIA_LLM_URL",
    "ADVANCIA_LLM_MODEL",
    "ADVANCIA_LLM_API_KEY",
    "ADVANCIA_LLM_TIMEOUT_SECS",
    "ADVANCIA_UPLOAD_LIMIT_BYTES",
    "ADVANCIA_KYC_DOCUMENT_DIR",
    "ADVANCIA_SANCTIONS_DIR",
    "ADVANCIA_KYC_MAX_DOCUMENT_BYTES",
    "ADVANCIA_KYC_S3_ENDPOINT",
    "ADVANCIA_KYC_S3_BUCKET",
    "ADVANCIA_KYC_S3_REGION",
    "ADVANCIA_KYC_S3_ACCESS_KEY_ID",
    "ADVANCIA_KYC_S3_SECRET_ACCESS_KEY",
    "ADVANCIA_KYC_S3_PREFIX",
    "ADVANCIA_COMPLIANCE_KEYPAIR",
];

/// Settings whose values never appear in messages (URLs may embed passwords).
pub const SECRET: &[&str] = &[
    "DATABASE_URL",
    "ADVANCIA_PAYMENTS_DATABASE_URL",
    "ADVANCIA_LEDGER_DATABASE_URL",
    "ADVANCIA_NOTIFICATIONS_DATABASE_URL",
    "ADVANCIA_ANALYTICS_DATABASE_URL",
    "ADVANCIA_KYC_DATABASE_URL",
    "ADVANCIA_REDIS_URL",
    "AUTH_SIGNING_KEY",
    "AUTH_TOTP_ENCRYPTION_KEY",
    "ADVANCIA_SMTP_PASSWORD",
    "ADVANCIA_TWILIO_AUTH_TOKEN",
    "ADVANCIA_FCM_ACCESS_TOKEN",
    "ADVANCIA_NATS_URL",
    "ADVANCIA_LLM_URL",
    "ADVANCIA_LLM_API_KEY",
    "ADVANCIA_KYC_S3_SECRET_ACCESS_KEY",
];

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Env,
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env => f.write_str("environment"),
            Source::Flag => f.write_str("command line"),
        }
    }
}

/// One bad setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}{}: {problem}", .origin.as_ref().map(|s| format!(" (from {s})")).unwrap_or_default())]
pub struct SettingError {
    pub setting: String,
    pub origin: Option<Source>,
    /// What is wrong and the expected form.
    pub problem: String,
}

/// Every bad setting found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<SettingError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} invalid setting(s):", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// Resolved setting values with their sources (flags over environment over file).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, (String, Source)>,
}

impl Settings {
    /// Reads `file` (if any), then the known variables of `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigErrors> {
        let mut s = Settings::default();
        let mut errors = Vec::new();
        if let Some(path) = file {
            match std::fs::read_to_string(path) {
                Ok(text) => s.read_toml(path, &text, &mut errors),
                Err(e) => errors.push(SettingError {
                    setting: "--config".into(),
                    origin: Some(Source::Flag),
                    problem: format!("cannot read {}: {e}", path.display()),
                }),
            }
        }
        for name in KNOWN {
            if let Some(v) = env(name).filter(|v| !v.trim().is_empty()) {
                s.values.insert((*name).to_owned(), (v, Source::Env));
            }
        }
        if errors.is_empty() {
            Ok(s)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    fn read_toml(&mut self, path: &Path, text: &str, errors: &mut Vec<SettingError>) {
        let source = Source::File(path.to_owned());
        let table: toml::Table = match toml::from_str(text) {
            Ok(t) => t,
            Err(e) => {
                errors.push(SettingError {
                    setting: "--config".into(),
                    origin: Some(source),
                    problem: format!("not valid TOML: {}", e.message()),
                });
                return;
            }
        };
        let mut flat = Vec::new();
        flatten("", &table, &mut flat);
        for (key, value) in flat {
            let name = key.to_ascii_uppercase();
            if !KNOWN.contains(&name.as_str()) {
                errors.push(SettingError {
                    setting: key,
                    origin: Some(source.clone()),
                    problem: "unknown setting (keys are environment names as a tree, e.g. `[advancia] listen` for ADVANCIA_LISTEN)".into(),
                });
                continue;
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => {
                    let mut parts = Vec::new();
                    for i in items {
                        match i {
                            toml::Value::String(s) => parts.push(s),
                            toml::Value::Integer(n) => parts.push(n.to_string()),
                            _ => {
                                errors.push(SettingError {
                                    setting: name.clone(),
                                    origin: Some(source.clone()),
                                    problem: "arrays may hold only strings and integers".into(),
                                });
                                break;
                            }
                        }
                    }
                    parts.join(",")
                }
                _ => {
                    errors.push(SettingError {
                        setting: name.clone(),
                        origin: Some(source.clone()),
                        problem: "expected a string, number, boolean or array".into(),
                    });
                    continue;
                }
            };
            self.values.insert(name, (text, source.clone()));
        }
    }

    /// Sets a value given on the command line (highest precedence).
    pub fn set_flag(&mut self, name: &str, value: impl Into<String>) {
        self.values
            .insert(name.to_owned(), (value.into(), Source::Flag));
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).map(|(v, _)| v.clone())
    }

    pub fn source(&self, name: &str) -> Option<Source> {
        self.values.get(name).map(|(_, s)| s.clone())
    }

    /// An error about `setting` from a component's message, with its source, and every
    /// secret value scrubbed from the text.
    fn error(&self, setting: &str, problem: impl Into<String>) -> SettingError {
        SettingError {
            setting: setting.to_owned(),
            origin: self.source(setting),
            problem: self.scrub(problem.into()),
        }
    }

    /// Replaces secret values (and URL passwords) in `text` with `<redacted>`.
    fn scrub(&self, mut text: String) -> String {
        for name in SECRET {
            if let Some((v, _)) = self.values.get(*name) {
                let v = v.trim();
                if v.len() >= 4 {
                    text = text.replace(v, "<redacted>");
                }
                if let Some(pw) = url_password(v)
                    && pw.len() >= 2
                {
                    text = text.replace(pw, "<redacted>");
                }
            }
        }
        text
    }

    /// A `NAME: problem` message from a component, attributed to NAME when it is a known
    /// setting, else to `fallback`.
    fn attributed(&self, message: &str, fallback: &str) -> SettingError {
        match message.split_once(':') {
            Some((name, rest)) if KNOWN.contains(&name.trim()) => {
                self.error(name.trim(), rest.trim())
            }
            _ => {
                // Messages like "ADVANCIA_SMTP_FROM is required" name the setting first.
                let first = message.split_whitespace().next().unwrap_or("");
                if KNOWN.contains(&first) {
                    self.error(first, message[first.len()..].trim())
                } else {
                    self.error(fallback, message)
                }
            }
        }
    }
}

fn url_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    userinfo.split_once(':').map(|(_, pw)| pw)
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}_{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            other => out.push((key, other.clone())),
        }
    }
}

/// Everything `advancia serve` needs, validated.
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// `None` when set to `off`.
    pub metrics_listen: Option<SocketAddr>,
    pub services: ServiceSet,
    /// How long in-flight requests and workers may take after SIGTERM.
    pub drain: Duration,
    pub readiness: ReadinessConfig,
    pub db: DbConfig,
    /// `ADVANCIA_<SERVICE>_DATABASE_URL`: a service's own database (database per service,
    /// ADR 0023), by the schema it owns; the others share `db`.
    pub service_dbs: Vec<(&'static str, DbConfig)>,
    pub telemetry: TelemetryConfig,
    pub api: ApiConfig,
    pub chain: ServicesConfig,
    pub auth: AuthConfig,
    pub keys: SigningKeys,
    pub channels: ChannelsConfig,
    /// Days ahead the certification reminders look (facilities).
    pub cert_expiry_days: u32,
    /// The agents' task bus on NATS JetStream; `None`: the in-process bus.
    pub nats: Option<NatsSettings>,
    /// The compliance authority's keypair file (KYC attestations); `None`: approvals queue
    /// their attestations until a process with the key runs.
    pub compliance_keypair: Option<PathBuf>,
}

/// `ADVANCIA_NATS_URL` and `ADVANCIA_NATS_STREAM` (default `ADVANCIA`).
#[derive(Debug, Clone)]
pub struct NatsSettings {
    pub url: String,
    pub stream: String,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Set (to `true`) by `advancia --dev`; never read from a file or the environment.
pub const DEV_FLAG: &str = "ADVANCIA_DEV";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9465";

impl ServeConfig {
    /// Validates every setting; all problems are returned together.
    pub fn from_settings(s: &Settings) -> Result<ServeConfig, ConfigErrors> {
        let mut errors: Vec<SettingError> = Vec::new();
        let get = |k: &str| s.get(k);

        let addr = |name: &str, default: &str, errors: &mut Vec<SettingError>| {
            let v = get(name).unwrap_or_else(|| default.to_owned());
            match v.trim().parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    errors.push(s.error(
                        name,
                        format!("`{v}` is not a socket address (expected host-ip:port, e.g. 0.0.0.0:8080)"),
                    ));
                    None
                }
            }
        };
        let listen = addr("ADVANCIA_LISTEN", DEFAULT_LISTEN, &mut errors);
        let metrics_listen = match get("ADVANCIA_METRICS_LISTEN").as_deref().map(str::trim) {
            Some("off") => Some(None),
            _ => addr(
                "ADVANCIA_METRICS_LISTEN",
                DEFAULT_METRICS_LISTEN,
                &mut errors,
            )
            .map(Some),
        };
        if let (Some(a), Some(Some(m))) = (listen, metrics_listen)
            && a == m
            && a.port() != 0
        {
            errors.push(s.error(
                "ADVANCIA_METRICS_LISTEN",
                format!("{m} is also ADVANCIA_LISTEN (expected a separate port, or `off`)"),
            ));
        }
        let services = match get("ADVANCIA_SERVICES") {
            None => Some(ServiceSet::all()),
            Some(v) => match ServiceSet::parse(&v) {
                Ok(set) => Some(set),
                Err(e) => {
                    errors.push(s.error(
                        "ADVANCIA_SERVICES",
                        format!(
                            "{e} (expected a comma-separated list of {} or `all`)",
                            crate::ops::SERVICES.join(", ")
                        ),
                    ));
                    None
                }
            },
        };
        let drain = match get("ADVANCIA_SHUTDOWN_DRAIN_SECS") {
            None => Some(Duration::from_secs(25)),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if (1..=3600).contains(&n) => Some(Duration::from_secs(n)),
                _ => {
                    errors.push(s.error(
                        "ADVANCIA_SHUTDOWN_DRAIN_SECS",
                        format!("`{v}` is not a whole number of seconds from 1 to 3600"),
                    ));
                    None
                }
            },
        };
        let require_chain = match get("ADVANCIA_READY_REQUIRE_CHAIN")
            .as_deref()
            .map(str::trim)
        {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                errors.push(s.error(
                    "ADVANCIA_READY_REQUIRE_CHAIN",
                    format!("`{other}` is not a boolean (expected true or false)"),
                ));
                false
            }
        };

        let mut db = DbConfig::new(
            get("DATABASE_URL").unwrap_or_else(|| advancia_db::DEFAULT_DATABASE_URL.into()),
        );
        if !(db.url.starts_with("postgres://") || db.url.starts_with("postgresql://")) {
            errors.push(s.error(
                "DATABASE_URL",
                "not a Postgres URL (expected postgres://user[:password]@host[:port]/database)",
            ));
        } else if let Err(e) = db.connect_options() {
            // The error text is already redacted by advancia-db; scrub again regardless.
            errors.push(s.error(
                "DATABASE_URL",
                format!("{e} (expected postgres://user[:password]@host[:port]/database)"),
            ));
        }
        if let Some(v) = get("ADVANCIA_DATABASE_MAX_CONNECTIONS") {
            match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 => db.max_connections = n,
                _ => errors.push(s.error(
                    "ADVANCIA_DATABASE_MAX_CONNECTIONS",
                    format!("`{v}` is not a positive whole number"),
                )),
            }
        }

        let mut service_dbs = Vec::new();
        for (schema, _) in crate::ServiceDatabases::SEPARABLE {
            let key = crate::ServiceDatabases::setting(schema);
            let Some(url) = get(key).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let mut own = DbConfig::new(url);
            own.max_connections = db.max_connections;
            match own.connect_options() {
                Ok(_) if own.url.starts_with("postgres") => service_dbs.push((schema, own)),
                _ => errors.push(s.error(
                    key,
                    "not a Postgres URL (expected postgres://user[:password]@host[:port]/database)",
                )),
            }
        }

        let telemetry = match TelemetryConfig::from_vars(get, "advancia") {
            Ok(t) => Some(t),
            Err(es) => {
                for e in es {
                    errors.push(s.error(
                        e.setting,
                        format!("{} (expected {})", e.problem, e.expected),
                    ));
                }
                None
            }
        };
        let api = match ApiConfig::from_vars(get) {
            Ok(c) => Some(c),
            Err(es) => {
                errors.extend(es.iter().map(|m| s.attributed(m, "ADVANCIA_RATE_LIMITS")));
                None
            }
        };
        let hops = api.as_ref().map_or(0, |a| a.gateway.trusted_proxy_hops);
        // `--dev` only (not a file or environment setting): plain-http links and webhooks.
        let dev = get(DEV_FLAG).is_some_and(|v| v == "true");
        let chain = match ServicesConfig::from_vars(get, hops) {
            Ok(mut c) => {
                match (&c.public_url, dev) {
                    (Some(u), _) if u.starts_with("https://") => {}
                    (Some(_), true) => {}
                    (None, true) => {
                        c.public_url = listen.map(|l| format!("http://{l}"));
                    }
                    (Some(_), false) => errors.push(s.error(
                        "ADVANCIA_PUBLIC_URL",
                        "must be an https URL outside --dev (expected e.g. https://pay.example.com)",
                    )),
                    (None, false) => errors.push(s.error(
                        "ADVANCIA_PUBLIC_URL",
                        "required outside --dev: payment links are built from it, never from the request (expected e.g. https://pay.example.com)",
                    )),
                }
                if dev {
                    c.egress = c.egress.allowing_http();
                } else if !c.payments.icon_url.starts_with("https://") {
                    // Wallets and Blink clients load the icon from anywhere (ADR 0026).
                    errors.push(s.error(
                        "ADVANCIA_PAYMENT_ICON_URL",
                        "must be an absolute https URL outside --dev (expected e.g. https://pay.example.com/icon.svg)",
                    ));
                }
                Some(c)
            }
            Err(es) => {
                errors.extend(
                    es.iter()
                        .map(|m| s.attributed(m, "ADVANCIA_SOLANA_RPC_URL")),
                );
                None
            }
        };
        let auth = AuthConfig::from_vars(get)
            .map_err(|e| errors.push(s.attributed(&e.to_string(), "AUTH_TOTP_ENCRYPTION_KEY")))
            .ok();
        let keys = SigningKeys::from_vars(get)
            .map_err(|e| {
                let msg = e.to_string();
                let name = if msg.contains("AUTH_RETIRED_PUBLIC_KEYS") {
                    "AUTH_RETIRED_PUBLIC_KEYS"
                } else if get("AUTH_SIGNING_KEY_FILE").is_some() {
                    "AUTH_SIGNING_KEY_FILE"
                } else {
                    "AUTH_SIGNING_KEY"
                };
                errors.push(s.attributed(&msg, name));
            })
            .ok();
        let channels = ChannelsConfig::from_vars(get)
            .map_err(|m| errors.push(s.attributed(&m, "ADVANCIA_SMTP_HOST")))
            .ok();
        let cert_expiry_days = match get("ADVANCIA_CERT_EXPIRY_DAYS") {
            None => 30,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (1..=365).contains(&n) => n,
                _ => {
                    errors.push(s.error(
                        "ADVANCIA_CERT_EXPIRY_DAYS",
                        format!("`{v}` is not a whole number of days from 1 to 365"),
                    ));
                    30
                }
            },
        };
        let compliance_keypair = get("ADVANCIA_COMPLIANCE_KEYPAIR")
            .filter(|v| !v.trim().is_empty())
            .map(PathBuf::from);
        if let Some(p) = &compliance_keypair
            && !p.is_file()
        {
            errors.push(s.error(
                "ADVANCIA_COMPLIANCE_KEYPAIR",
                "no such file (expected the path of a Solana keypair JSON file)",
            ));
        }
        let nats = get("ADVANCIA_NATS_URL")
            .filter(|v| !v.trim().is_empty())
            .map(|url| NatsSettings {
                url,
                stream: get("ADVANCIA_NATS_STREAM")
                    .filter(|v| !v.trim().is_empty())
                    .unwrap_or_else(|| "ADVANCIA".into()),
            });

        match (
            listen,
            metrics_listen,
            services,
            drain,
            telemetry,
            api,
            chain,
            auth,
            keys,
            channels,
        ) {
            (
                Some(listen),
                Some(metrics_listen),
                Some(services),
                Some(drain),
                Some(telemetry),
                Some(api),
                Some(chain),
                Some(auth),
                Some(keys),
                Some(channels),
            ) if errors.is_empty() => Ok(ServeConfig {
                listen,
                metrics_listen,
                services,
                drain,
                readiness: ReadinessConfig { require_chain },
                db,
                service_dbs,
                telemetry,
                api,
                chain,
                auth,
                keys,
                channels,
                cert_expiry_days,
                nats,
                compliance_keypair,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn toml_keys_flatten_to_environment_names() {
        let mut s = Settings::default();
        let mut errors = Vec::new();
        s.read_toml(
            Path::new("a.toml"),
            "database_url = \"postgres://x@h/db\"\n[advancia]\nlisten = \"0.0.0.0:1\"\nservices = [\"payments\", \"ledger\"]\nshutdown_drain_secs = 5\n[advancia.smtp]\nhost = \"mail\"\n[advancia.lisen]\nx = 1\n",
            &mut errors,
        );
        assert_eq!(s.get("DATABASE_URL").unwrap(), "postgres://x@h/db");
        assert_eq!(s.get("ADVANCIA_LISTEN").unwrap(), "0.0.0.0:1");
        assert_eq!(s.get("ADVANCIA_SERVICES").unwrap(), "payments,ledger");
        assert_eq!(s.get("ADVANCIA_SHUTDOWN_DRAIN_SECS").unwrap(), "5");
        assert_eq!(s.get("ADVANCIA_SMTP_HOST").unwrap(), "mail");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].setting, "advancia_lisen_x");
    }

    #[test]
    fn url_passwords_are_found() {
        assert_eq!(url_password("postgres://u:pw@h/db"), Some("pw"));
        assert_eq!(url_password("redis://:s3cret@h:6379"), Some("s3cret"));
        assert_eq!(url_password("postgres://u@h/db"), None);
    }
}
