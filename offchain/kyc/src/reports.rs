//! Compliance reports per period `[from, to)`: counts of submissions, decisions,
//! screenings and attestations, and one row per decision (CSV or JSON). Names and document
//! numbers are not in the report: rows carry ids an officer can look up.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{KycError, KycService};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DecisionCounts {
    pub approved: i64,
    pub rejected: i64,
    pub expired: i64,
    pub revoked: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AttestationCounts {
    pub done: i64,
    pub pending: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DecisionRow {
    pub event_id: i64,
    pub verification_id: Uuid,
    pub user_id: Uuid,
    pub decision: String,
    pub level: Option<i16>,
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
    pub attestation_state: Option<String>,
    pub attestation_signature: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplianceReport {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    pub submissions: i64,
    pub decisions: DecisionCounts,
    pub screenings: i64,
    pub screenings_with_matches: i64,
    pub attestations: AttestationCounts,
    pub rows: Vec<DecisionRow>,
}

/// One CSV field: quoted when needed, and a leading `= + - @` neutralised so a spreadsheet
/// never evaluates it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
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

impl ComplianceReport {
    /// The decision rows as CSV with a header line (summary counts are in the JSON form).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "event_id,verification_id,user_id,decision,level,reason,decided_at,attestation_state,attestation_signature\n",
        );
        for r in &self.rows {
            let decided = r
                .decided_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let fields = [
                r.event_id.to_string(),
                r.verification_id.to_string(),
                r.user_id.to_string(),
                r.decision.clone(),
                r.level.map(|l| l.to_string()).unwrap_or_default(),
                r.reason.clone().unwrap_or_default(),
                decided,
                r.attestation_state.clone().unwrap_or_default(),
                r.attestation_signature.clone().unwrap_or_default(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }
}

impl KycService {
    pub async fn report(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<ComplianceReport, KycError> {
        if to <= from {
            return Err(KycError::Invalid("`to` must be after `from`".into()));
        }
        if to - from > time::Duration::days(366) {
            return Err(KycError::Invalid("a report covers at most 366 days".into()));
        }
        let pool = self.pool();
        let submissions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM kyc.verifications WHERE submitted_at >= $1 AND submitted_at < $2",
        )
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await?;
        let rows: Vec<DecisionRow> = sqlx::query_as(
            "SELECT e.id AS event_id, e.verification_id, e.user_id, e.decision, e.level, e.reason,
                    e.at AS decided_at, j.state AS attestation_state, j.signature AS attestation_signature
               FROM kyc.decision_events e
               LEFT JOIN kyc.attestation_jobs j ON j.decision_event_id = e.id
              WHERE e.at >= $1 AND e.at < $2 ORDER BY e.id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?;
        let mut decisions = DecisionCounts::default();
        let mut attestations = AttestationCounts::default();
        for r in &rows {
            match r.decision.as_str() {
                "approved" => decisions.approved += 1,
                "rejected" => decisions.rejected += 1,
                "expired" => decisions.expired += 1,
                "revoked" => decisions.revoked += 1,
                other => return Err(KycError::Corrupt(format!("decision `{other}`"))),
            }
            match r.attestation_state.as_deref() {
                Some("done") => attestations.done += 1,
                Some("pending") => attestations.pending += 1,
                Some("failed") => attestations.failed += 1,
                _ => {}
            }
        }
        let (screenings, with_matches): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE best_score > 0)
               FROM kyc.screenings WHERE at >= $1 AND at < $2",
        )
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await?;
        Ok(ComplianceReport {
            from,
            to,
            generated_at: OffsetDateTime::now_utc(),
            submissions,
            decisions,
            screenings,
            screenings_with_matches: with_matches,
            attestations,
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_escaping_and_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
