//! Helpers of the operations checks in `tests/`: row counts of a whole database (the
//! backup/restore round trip) and the metric names our binaries expose versus those the
//! Grafana dashboards query.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The repository root (this crate lives in `tests/ops`).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or(manifest)
}

/// Row count of every ordinary and partitioned table outside the system schemas, keyed
/// `schema.table` — the same set `deploy/scripts/pg-backup.sh` records.
pub async fn table_counts(pool: &PgPool) -> Result<BTreeMap<String, i64>, OpsError> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
          ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    let mut counts = BTreeMap::new();
    for (schema, table) in tables {
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(&schema),
            quote_ident(&table)
        );
        let n: i64 = sqlx::query_scalar(&sql).fetch_one(pool).await?;
        counts.insert(format!("{schema}.{table}"), n);
    }
    Ok(counts)
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Metric names (`advancia_*`) in a PromQL expression. Label names never start with
/// `advancia_` and label values are skipped, so what remains are metric names.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_quotes = false;
    let mut prev = ' ';
    let mut i = 0;
    while i < expr.len() {
        let rest = &expr[i..];
        let Some(c) = rest.chars().next() else { break };
        if c == '"' && prev != '\\' {
            in_quotes = !in_quotes;
        }
        let starts_name = !in_quotes
            && rest.starts_with("advancia_")
            && !(prev.is_ascii_alphanumeric() || prev == '_' || prev == ':');
        if starts_name {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            names.insert(rest[..end].to_owned());
            prev = '_';
            i += end;
            continue;
        }
        prev = c;
        i += c.len_utf8();
    }
    names
}

/// Every PromQL expression of a Grafana dashboard (`targets[].expr` of every panel, rows
/// included, and the templating queries), with the panel title for messages.
pub fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn panels(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in v.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("(untitled)").to_owned();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_owned()));
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let q = var["query"]
            .as_str()
            .or_else(|| var["query"]["query"].as_str());
        if let (Some(q), Some("query")) = (q, var["type"].as_str()) {
            out.push((format!("variable {}", var["name"]), q.to_owned()));
        }
    }
    out
}

/// Names our binaries expose: every `advancia_*` name documented in the telemetry
/// contract (`offchain/telemetry/METRICS.md`, or `ADVANCIA_METRICS_MD`), every one a
/// hand-written text exposition in the code writes (string literals in the `src/` files of
/// the binaries' crates that contain `# TYPE`), and every one registered with a metrics
/// registry (`.counter("advancia_…", help, &[labels])`, `.gauge(`, `.histogram(`).
pub fn exposed_metrics(root: &Path) -> Result<ExposedMetrics, OpsError> {
    let mut exposed = ExposedMetrics::default();
    let md = std::env::var_os("ADVANCIA_METRICS_MD")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("offchain/telemetry/METRICS.md"));
    if md.is_file() {
        let text = read(&md)?;
        for name in backquoted_names(&text) {
            exposed.documented.insert(name);
        }
        for (name, labels) in documented_labels(&text) {
            exposed.labels.entry(name).or_default().extend(labels);
        }
        exposed.contract = Some(md);
    }
    let mut dirs = vec![
        root.join("api/src"),
        root.join("indexer/src"),
        root.join("relayer/src"),
        root.join("localnet/src"),
    ];
    let offchain = root.join("offchain");
    for entry in std::fs::read_dir(&offchain).map_err(|source| OpsError::Io {
        path: offchain.clone(),
        source,
    })? {
        let entry = entry.map_err(|source| OpsError::Io {
            path: offchain.clone(),
            source,
        })?;
        dirs.push(entry.path().join("src"));
    }
    for dir in dirs {
        scan_sources(&dir, &mut exposed.in_code, &mut exposed.labels)?;
    }
    Ok(exposed)
}

#[derive(Debug, Default)]
pub struct ExposedMetrics {
    /// The metrics contract read, if the tree has one.
    pub contract: Option<PathBuf>,
    pub documented: BTreeSet<String>,
    pub in_code: BTreeSet<String>,
    /// Label names of each metric, from the contract's tables and lists and from the
    /// expositions' series (`name{label="…"}`).
    pub labels: BTreeMap<String, BTreeSet<String>>,
}

impl ExposedMetrics {
    /// `name` as a series of an exposed metric (histograms expose `_bucket`, `_sum`, `_count`).
    pub fn exposes(&self, name: &str) -> bool {
        self.family(name).is_some()
    }

    /// The exposed metric `name` is a series of: itself, or the histogram it belongs to.
    fn family<'a>(&self, name: &'a str) -> Option<&'a str> {
        let known = |n: &str| self.documented.contains(n) || self.in_code.contains(n);
        if known(name) {
            return Some(name);
        }
        ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|base| known(base))
    }

    /// Whether series `name` can carry `label`: its own labels, the target labels
    /// Prometheus adds (`job`, `instance`), and `le` on histogram buckets.
    pub fn has_label(&self, name: &str, label: &str) -> bool {
        if matches!(label, "job" | "instance" | "__name__") {
            return true;
        }
        let Some(family) = self.family(name) else {
            return false;
        };
        (label == "le" && name.ends_with("_bucket"))
            || self.labels.get(family).is_some_and(|l| l.contains(label))
    }
}

/// Label matchers of each selector in a PromQL expression: `(metric, [label, …])` for
/// every `advancia_x{label="v", other=~"w"}` (metrics without braces have none).
pub fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for name in metric_names(expr) {
        let mut rest = expr;
        while let Some(i) = rest.find(name.as_str()) {
            let after = &rest[i + name.len()..];
            let ends_name = !after
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if ends_name && after.starts_with('{') {
                let body = &after[1..after.find('}').unwrap_or(after.len())];
                let labels = split_top_level(body)
                    .into_iter()
                    .filter_map(|m| {
                        let l = m.split(['=', '!', '~']).next()?.trim();
                        (!l.is_empty()).then(|| l.to_owned())
                    })
                    .collect();
                out.push((name.clone(), labels));
            }
            rest = after;
        }
    }
    out
}

/// Label names in `by (…)` / `without (…)` clauses of a PromQL expression.
pub fn grouping_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kw in ["by", "without"] {
        let mut rest = expr;
        while let Some(i) = rest.find(kw) {
            let before = rest[..i].chars().next_back();
            let after = rest[i + kw.len()..].trim_start();
            let word_start = !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if word_start && let Some(list) = after.strip_prefix('(') {
                let list = &list[..list.find(')').unwrap_or(list.len())];
                out.extend(
                    list.split(',')
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned),
                );
            }
            rest = &rest[i + kw.len()..];
        }
    }
    out
}

/// `a="x,y", b=~"z"` split at the commas outside quotes.
fn split_top_level(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut in_quotes, mut prev) = (0, false, ' ');
    for (i, c) in body.char_indices() {
        if c == '"' && prev != '\\' {
            in_quotes = !in_quotes;
        } else if c == ',' && !in_quotes {
            parts.push(&body[start..i]);
            start = i + 1;
        }
        prev = c;
    }
    parts.push(&body[start..]);
    parts
}

fn read(path: &Path) -> Result<String, OpsError> {
    std::fs::read_to_string(path).map_err(|source| OpsError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Labels the contract gives each metric: a table row's labels column
/// (`| `name` | type | `a`, `b` | … |`) or braces in a list (`` `name{a,b}` ``).
fn documented_labels(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() >= 5 && cells[1].starts_with("`advancia_") {
            let name = cells[1].trim_matches('`').to_owned();
            let labels = cells[3]
                .split(',')
                .map(|l| l.trim().trim_matches('`'))
                .filter(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .map(str::to_owned)
                .collect();
            out.push((name, labels));
        }
    }
    for quoted in text.split('`').skip(1).step_by(2) {
        if let (true, Some((name, rest))) =
            (quoted.starts_with("advancia_"), quoted.split_once('{'))
        {
            let labels = rest
                .trim_end_matches('}')
                .split(',')
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            out.push((name.to_owned(), labels));
        }
    }
    out
}

/// `advancia_*` names between backquotes (METRICS.md's tables and lists), labels and
/// braces stripped: `advancia_bridge_backlog{destination,status}` → `advancia_bridge_backlog`.
fn backquoted_names(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("advancia_"))
        .map(|s| {
            s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or(s)
                .to_owned()
        })
        .collect()
}

fn scan_sources(
    dir: &Path,
    out: &mut BTreeSet<String>,
    labels: &mut BTreeMap<String, BTreeSet<String>>,
) -> Result<(), OpsError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(()); // a crate without src/ (or not there yet)
    };
    for entry in entries {
        let path = entry
            .map_err(|source| OpsError::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.is_dir() {
            scan_sources(&path, out, labels)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = read(&path)?;
            registrations(&text, out, labels);
            if !text.contains("# TYPE") {
                continue; // not a text exposition
            }
            series_labels(&text, labels);
            // Names as the exposition writes them: in string literals, at a literal's
            // start (`"advancia_x`) or after `# TYPE ` / `# HELP `.
            for piece in text.split('"').skip(1).step_by(2) {
                for line in piece.split("\\n") {
                    let line = line
                        .trim_start_matches("# TYPE ")
                        .trim_start_matches("# HELP ");
                    if line.starts_with("advancia_") {
                        let end = line
                            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .unwrap_or(line.len());
                        out.insert(line[..end].to_owned());
                    }
                }
            }
        }
    }
    Ok(())
}

/// Metrics registered with a registry: `.counter("advancia_x", "help", &["a", "b"])`,
/// likewise `.gauge(` and `.histogram(` (the name, the help text, then the label names).
fn registrations(
    text: &str,
    out: &mut BTreeSet<String>,
    labels: &mut BTreeMap<String, BTreeSet<String>>,
) {
    for call in [".counter(", ".gauge(", ".histogram("] {
        let mut rest = text;
        while let Some(i) = rest.find(call) {
            rest = &rest[i + call.len()..];
            let args = rest.trim_start();
            let Some(name) = args
                .strip_prefix('"')
                .and_then(|a| a.split('"').next())
                .filter(|n| n.starts_with("advancia_"))
            else {
                continue;
            };
            out.insert(name.to_owned());
            // The label list is the first `&[...]` after the name and the help literal.
            let after_name = &args[name.len() + 2..];
            let after_help = skip_string_literal(after_name.trim_start_matches([',', ' ', '\n']));
            if let Some(list) = after_help
                .find("&[")
                .map(|j| &after_help[j + 2..])
                .and_then(|l| l.split(']').next())
            {
                let set = labels.entry(name.to_owned()).or_default();
                for label in list.split(',') {
                    let label = label.trim().trim_matches('"');
                    if !label.is_empty() {
                        set.insert(label.to_owned());
                    }
                }
            }
        }
    }
}

/// Labels of the series a hand-written exposition formats, read from the source text:
/// `advancia_x{{a=\"{v}\",b=\"…\"}}` (a format string) or `advancia_x{a="…"}`. Values
/// are skipped quote to quote, so braces inside them (`{v}`) do not end the label set.
fn series_labels(text: &str, labels: &mut BTreeMap<String, BTreeSet<String>>) {
    let ident = |s: &str| {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut rest = text;
    while let Some(i) = rest.find("advancia_") {
        let tail = &rest[i..];
        let end = ident(tail);
        let name = &tail[..end];
        let mut cur = &tail[end..];
        rest = cur;
        let Some(body) = cur.strip_prefix("{{").or_else(|| cur.strip_prefix('{')) else {
            continue;
        };
        cur = body;
        let mut found = Vec::new();
        loop {
            let n = ident(cur);
            let (label, after) = cur.split_at(n);
            let Some(value) = after.strip_prefix('=') else {
                break;
            };
            // The value: \"…\" inside a Rust literal, or "…".
            let close = if value.starts_with("\\\"") {
                "\\\""
            } else {
                "\""
            };
            let Some(v) = value.strip_prefix(close) else {
                break;
            };
            let Some(j) = v.find(close) else { break };
            if !label.is_empty() {
                found.push(label.to_owned());
            }
            cur = &v[j + close.len()..];
            match cur.strip_prefix(',') {
                Some(next) => cur = next,
                None => break,
            }
        }
        if !found.is_empty() {
            labels.entry(name.to_owned()).or_default().extend(found);
        }
    }
}

/// `s` after the string literal it starts with (escapes honoured); `s` itself otherwise.
fn skip_string_literal(s: &str) -> &str {
    let Some(body) = s.strip_prefix('"') else {
        return s;
    };
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return &body[i + 1..],
            _ => escaped = false,
        }
    }
    ""
}

/// Reads and parses every `*.json` in `dir`, sorted by file name.
pub fn dashboards(dir: &Path) -> Result<Vec<(PathBuf, serde_json::Value)>, OpsError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| OpsError::Io {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = read(&path)?;
            let json = serde_json::from_str(&text).map_err(|source| OpsError::Json {
                path: path.clone(),
                source,
            })?;
            Ok((path, json))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn finds_metric_names_not_labels_or_values() {
        let e = r#"histogram_quantile(0.95, sum by (le, route) (rate(advancia_http_request_duration_seconds_bucket{route!="advancia_x"}[5m]))) / advancia_up"#;
        let names: Vec<_> = metric_names(e).into_iter().collect();
        assert_eq!(
            names,
            [
                "advancia_http_request_duration_seconds_bucket",
                "advancia_up"
            ]
        );
        assert!(metric_names("my_advancia_thing + 1").is_empty());
    }

    #[test]
    fn backquoted_names_drop_labels() {
        let md = "| `advancia_payments_total` | gauge |\n`advancia_bridge_backlog{destination,status}` and `route`";
        assert_eq!(
            backquoted_names(md),
            ["advancia_payments_total", "advancia_bridge_backlog"]
        );
    }

    #[test]
    fn selector_and_grouping_labels() {
        let e = r#"sum by (le, route) (rate(advancia_x_bucket{job=~"$job", route!="a,b"}[5m])) / advancia_y"#;
        assert_eq!(
            selectors(e),
            [(
                "advancia_x_bucket".to_owned(),
                vec!["job".to_owned(), "route".to_owned()]
            ),]
        );
        assert_eq!(grouping_labels(e), ["le", "route"]);
        assert!(grouping_labels("max(advancia_standby)").is_empty());
    }

    #[test]
    fn labels_from_contract_and_code() {
        let md = "| `advancia_a_total` | counter | `route`, `method` | x |\n`advancia_b{kind}` and `advancia_c`";
        let got = documented_labels(md);
        assert_eq!(
            got[0],
            (
                "advancia_a_total".into(),
                vec!["route".into(), "method".into()]
            )
        );
        assert_eq!(got[1], ("advancia_b".into(), vec!["kind".into()]));
        let mut m = ExposedMetrics::default();
        m.in_code.insert("advancia_h_seconds".into());
        m.labels
            .entry("advancia_h_seconds".into())
            .or_default()
            .insert("destination".into());
        assert!(m.has_label("advancia_h_seconds_bucket", "le"));
        assert!(m.has_label("advancia_h_seconds_sum", "destination"));
        assert!(!m.has_label("advancia_h_seconds_sum", "le"));
        assert!(!m.has_label("advancia_h_seconds", "domain"));
        assert!(m.has_label("advancia_h_seconds", "job"));
    }

    #[test]
    fn series_labels_of_format_strings() {
        let code = r#"writeln!(out, "advancia_bridge_backlog{{destination=\"{d}\",status=\"{status}\"}} {n}");
            "advancia_indexer_events_total{kind=\"payment_made\"} 3\n"
            "advancia_plain 1""#;
        let mut labels = BTreeMap::new();
        series_labels(code, &mut labels);
        let got = |n: &str| labels[n].iter().cloned().collect::<Vec<String>>();
        assert_eq!(got("advancia_bridge_backlog"), ["destination", "status"]);
        assert_eq!(got("advancia_indexer_events_total"), ["kind"]);
        assert!(!labels.contains_key("advancia_plain"));
    }

    #[test]
    fn registry_registrations_give_names_and_labels() {
        let code = r#"
            requests: registry.counter(
                "advancia_http_requests_total",
                "Requests answered, by route (see \"docs\"), [method] and status.",
                &["route", "method", "status"],
            ),
            other: registry.gauge(name, "dynamic", &[]),
            dur: registry.histogram("advancia_x_seconds", "h", &["route"], BUCKETS),
        "#;
        let (mut names, mut labels) = (BTreeSet::new(), BTreeMap::new());
        registrations(code, &mut names, &mut labels);
        assert_eq!(
            names.iter().map(String::as_str).collect::<Vec<_>>(),
            ["advancia_http_requests_total", "advancia_x_seconds"]
        );
        let l: Vec<_> = labels["advancia_http_requests_total"]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(l, ["method", "route", "status"]);
        assert!(labels["advancia_x_seconds"].contains("route"));
    }

    #[test]
    fn histogram_series_count_as_exposed() {
        let mut m = ExposedMetrics::default();
        m.in_code.insert("advancia_x_seconds".into());
        assert!(m.exposes("advancia_x_seconds_bucket"));
        assert!(m.exposes("advancia_x_seconds"));
        assert!(!m.exposes("advancia_y_total"));
    }
}
