//! Each service owns its data (ADR 0023): no crate's SQL names a schema it does not own.
//! Other services get typed read functions, ports or events; a reader of another's log
//! goes through `advancia_db::follow`. This test reads every crate's non-test sources and
//! fails on an SQL string literal that names a foreign schema's table.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Crate directory → the schema it owns (its `ServiceMigrations`), or `None` for a crate
/// that owns no schema and so may name none.
const OWNERS: &[(&str, Option<&str>)] = &[
    ("api", Some("api")),
    ("indexer", Some("indexer")),
    ("indexer/store", Some("indexer")),
    ("relayer", Some("bridge")),
    ("offchain/agents", Some("agents")),
    ("offchain/analytics", Some("analytics")),
    ("offchain/auth", Some("auth")),
    ("offchain/chains", Some("chains")),
    ("offchain/db", Some("advancia_log")),
    ("offchain/facilities", Some("facilities")),
    ("offchain/kyc", Some("kyc")),
    ("offchain/ledger", Some("ledger")),
    ("offchain/notifications", Some("notifications")),
    ("offchain/outbox", Some("outbox")),
    ("offchain/payments", Some("payments")),
    ("offchain/bus", None),
    ("offchain/egress", None),
    ("offchain/telemetry", None),
];

/// Reads still to be replaced, each with the issue that removes it. Keep this empty.
const KNOWN: &[(&str, &str, &str)] = &[];

const SQL_WORDS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "FROM",
    "JOIN",
    "INTO",
    "LOCK",
    "TABLE",
    "TRUNCATE",
    "to_regclass",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The schemas services declare (`schema: "…"` in their migrations).
fn declared_schemas() -> Vec<String> {
    let mut out: Vec<String> = OWNERS
        .iter()
        .filter_map(|(_, s)| s.map(str::to_owned))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// String literals of `code` (plain and raw), with the line each starts on; stops at a
/// top-level `#[cfg(test)]` (unit tests may set up any schema).
fn literals(code: &str) -> Vec<(usize, String)> {
    let code = match code.find("\n#[cfg(test)]") {
        Some(i) => &code[..i],
        None => code,
    };
    let b = code.as_bytes();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < b.len() {
        match b[i] {
            b'\n' => line += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\'' => {
                // A char literal ('"', '\'') or a lifetime: skip what cannot open a string.
                if b.get(i + 2) == Some(&b'\'') {
                    i += 3;
                    continue;
                }
                if b.get(i + 1) == Some(&b'\\') && b.get(i + 3) == Some(&b'\'') {
                    i += 4;
                    continue;
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) == Some(&b'"') {
                    let close = format!("\"{}", "#".repeat(hashes));
                    if let Some(end) = code[j + 1..].find(&close) {
                        let s = &code[j + 1..j + 1 + end];
                        out.push((line, s.to_owned()));
                        line += s.matches('\n').count();
                        i = j + 1 + end + close.len();
                        continue;
                    }
                }
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                let s = &code[start..j.min(b.len())];
                out.push((line, s.to_owned()));
                line += s.matches('\n').count();
                i = j + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// `schema.table` references of the SQL string `sql` to schemas in `foreign`.
fn foreign_refs<'a>(sql: &str, foreign: &'a [String]) -> Vec<(&'a str, String)> {
    if !SQL_WORDS.iter().any(|w| sql.contains(w)) {
        return Vec::new();
    }
    schema_names(sql, foreign)
}

/// `schema.name` occurrences in `text` for schemas in `foreign`.
fn schema_names<'a>(text: &str, foreign: &'a [String]) -> Vec<(&'a str, String)> {
    let sql = text;
    let mut out = Vec::new();
    for schema in foreign {
        let pat = format!("{schema}.");
        let mut from = 0;
        while let Some(k) = sql[from..].find(&pat) {
            let at = from + k;
            let before_ok = at == 0 || {
                let c = sql.as_bytes()[at - 1];
                !(c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
            };
            let rest: String = sql[at + pat.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if before_ok && !rest.is_empty() && rest.starts_with(|c: char| c.is_ascii_lowercase()) {
                out.push((schema.as_str(), format!("{schema}.{rest}")));
            }
            from = at + pat.len();
        }
    }
    out
}

#[test]
fn no_crate_names_a_schema_it_does_not_own() {
    let schemas = declared_schemas();
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut known_seen = vec![false; KNOWN.len()];
    for (dir, owns) in OWNERS {
        let foreign: Vec<String> = schemas
            .iter()
            .filter(|s| Some(s.as_str()) != *owns)
            // The indexer process and its store are one service.
            .filter(|s| !(dir.starts_with("indexer") && s.as_str() == "indexer"))
            .cloned()
            .collect();
        let mut files = Vec::new();
        sources(&root().join(dir).join("src"), &mut files);
        assert!(!files.is_empty(), "{dir}/src has no sources");
        for f in files {
            let rel = f
                .strip_prefix(root())
                .unwrap_or(&f)
                .to_string_lossy()
                .replace("/../..", "");
            let rel = rel.trim_start_matches('/').to_owned();
            let code = std::fs::read_to_string(&f).unwrap();
            for (line, lit) in literals(&code) {
                for (schema, table) in foreign_refs(&lit, &foreign) {
                    if let Some(k) = KNOWN
                        .iter()
                        .position(|(file, s, _)| rel.ends_with(file) && *s == schema)
                    {
                        known_seen[k] = true;
                        continue;
                    }
                    found
                        .entry(format!("{dir} (owns {})", owns.unwrap_or("nothing")))
                        .or_default()
                        .push(format!("{rel}:{line}: {table}"));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL naming another service's schema (use its typed reads, a port or its events):\n{found:#?}"
    );
    for (k, seen) in known_seen.iter().enumerate() {
        assert!(
            seen,
            "{:?} no longer reads a foreign schema: remove it from KNOWN",
            KNOWN[k]
        );
    }
}

/// SQL of `text` without comments and quoted literals (names only).
fn sql_names(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.split("--").next().unwrap_or("");
        let mut quoted = false;
        for c in line.chars() {
            if c == '\'' {
                quoted = !quoted;
            } else if !quoted {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn no_migration_names_a_schema_it_does_not_own() {
    // The log support every service's triggers call (`advancia_log.append`) is shared.
    let schemas: Vec<String> = declared_schemas()
        .into_iter()
        .filter(|s| s != "advancia_log")
        .collect();
    let mut found = Vec::new();
    for (dir, owns) in OWNERS {
        let foreign: Vec<String> = schemas
            .iter()
            .filter(|s| Some(s.as_str()) != *owns)
            .cloned()
            .collect();
        let Ok(entries) = std::fs::read_dir(root().join(dir).join("migrations")) else {
            continue;
        };
        for e in entries.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap();
            for (_, table) in schema_names(&sql_names(&text), &foreign) {
                found.push(format!(
                    "{dir}/migrations/{}: {table}",
                    e.file_name().to_string_lossy()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "migrations naming another service's schema:\n{found:#?}"
    );
}

#[test]
fn the_scanner_sees_sql_in_every_literal_form_and_nothing_else() {
    let foreign = vec!["payments".to_owned(), "auth".to_owned()];
    let code = r####"
        // "SELECT * FROM payments.comment" in a comment
        let a = "SELECT id FROM payments.payments WHERE x = '\"'";
        let b = r#"UPDATE auth.users SET x = 1"#;
        let c = 'x'; let d = '"';
        const CURSOR: &str = "payments.events";
        let e = "SELECT 1 FROM mypayments.x JOIN notpayments.y";
        fn f<'a>(x: &'a str) {}
        let g = "DELETE FROM
                 auth.sessions";
#[cfg(test)]
        mod tests { const X: &str = "SELECT * FROM auth.users"; }
    "####;
    let refs: Vec<(usize, String)> = literals(code)
        .into_iter()
        .flat_map(|(line, s)| {
            foreign_refs(&s, &foreign)
                .into_iter()
                .map(move |(_, t)| (line, t))
        })
        .collect();
    assert_eq!(
        refs,
        vec![
            (3, "payments.payments".to_owned()),
            (4, "auth.users".to_owned()),
            (9, "auth.sessions".to_owned()),
        ]
    );
}
