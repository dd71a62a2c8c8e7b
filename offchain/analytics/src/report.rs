//! Report exports: CSV (RFC 4180) and a self-contained HTML page, one row per bucket and
//! (chain, facility, mint). Amounts stay integers in base units of their mint.

use std::fmt::Write as _;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::query::{Figures, TrendPoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Html,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Html => "html",
        }
    }
}

pub const COLUMNS: [&str; 13] = [
    "bucket",
    "chain",
    "facility",
    "mint",
    "payments",
    "releases",
    "refunds",
    "volume",
    "fees",
    "refunded",
    "attempts",
    "succeeded",
    "success_rate",
];

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn cells(p: &TrendPoint) -> [String; 13] {
    let f: &Figures = &p.figures;
    [
        ts(p.bucket),
        f.chain.clone(),
        f.facility.clone(),
        f.mint.clone(),
        f.payments.to_string(),
        f.releases.to_string(),
        f.refunds.to_string(),
        f.volume.clone(),
        f.fees.clone(),
        f.refunded.clone(),
        f.attempts.to_string(),
        f.succeeded.to_string(),
        f.success_rate()
            .map(|r| format!("{r:.4}"))
            .unwrap_or_default(),
    ]
}

fn csv_field(s: &str) -> String {
    // Quote when needed; a leading = + - @ is prefixed so spreadsheets do not run it as a
    // formula (facility/mint strings come from chain data).
    let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn csv(rows: &[TrendPoint]) -> String {
    let mut out = COLUMNS.join(",");
    out.push_str("\r\n");
    for r in rows {
        let line: Vec<String> = cells(r).iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn html(title: &str, from: OffsetDateTime, to: OffsetDateTime, rows: &[TrendPoint]) -> String {
    let mut h = String::from("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    let _ = write!(
        h,
        "<title>{t}</title><style>body{{font-family:system-ui,sans-serif;margin:2rem}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .5rem}}\
         td.n{{text-align:right;font-variant-numeric:tabular-nums}}</style></head><body>\
         <h1>{t}</h1><p>From {} to {} (UTC, end exclusive). Amounts in base units of each \
         mint.</p><table><thead><tr>",
        esc(&ts(from)),
        esc(&ts(to)),
        t = esc(title)
    );
    for c in COLUMNS {
        let _ = write!(h, "<th>{c}</th>");
    }
    h.push_str("</tr></thead><tbody>");
    for r in rows {
        h.push_str("<tr>");
        for (i, c) in cells(r).iter().enumerate() {
            let class = if i >= 4 { " class=\"n\"" } else { "" };
            let _ = write!(h, "<td{class}>{}</td>", esc(c));
        }
        h.push_str("</tr>");
    }
    let _ = write!(
        h,
        "</tbody></table><p>{} rows.</p></body></html>",
        rows.len()
    );
    h
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn point() -> TrendPoint {
        TrendPoint {
            bucket: OffsetDateTime::from_unix_timestamp(1_760_000_400 - 1_760_000_400 % 86_400)
                .unwrap(),
            figures: Figures {
                chain: "solana".into(),
                facility: "=HYPERLINK(\"x\")".into(),
                mint: "So1, \"quoted\"".into(),
                payments: 3,
                releases: 1,
                refunds: 0,
                volume: "18446744073709551615".into(),
                fees: "25".into(),
                refunded: "0".into(),
                attempts: 4,
                succeeded: 3,
            },
        }
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let out = csv(&[point()]);
        let mut lines = out.split("\r\n");
        assert_eq!(lines.next().unwrap(), COLUMNS.join(","));
        assert_eq!(
            lines.next().unwrap(),
            "2025-10-09T00:00:00Z,solana,\"'=HYPERLINK(\"\"x\"\")\",\"So1, \"\"quoted\"\"\",3,1,0,18446744073709551615,25,0,4,3,0.7500"
        );
    }

    #[test]
    fn html_escapes() {
        let out = html("<Report>", point().bucket, point().bucket, &[point()]);
        assert!(out.contains("&lt;Report&gt;"));
        assert!(out.contains("<td class=\"n\">18446744073709551615</td>"));
        assert!(!out.contains("<Report>"));
    }
}
