//! A transparent risk score: every factor is returned with the value it saw and the points
//! it added, so an officer (or an auditor) can recompute the total by hand.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{KycError, KycService, State};

/// FATF "high-risk jurisdictions subject to a call for action". Configuration, not law:
/// operators replace it when FATF publishes a new list.
pub const HIGH_RISK_COUNTRIES: &[&str] = &["KP", "IR", "MM"];
/// FATF "jurisdictions under increased monitoring" (a snapshot; configuration as above).
pub const MONITORED_COUNTRIES: &[&str] = &[
    "AO", "BG", "BF", "CM", "CI", "HR", "CD", "DZ", "HT", "KE", "LA", "LB", "MC", "MZ", "NA", "NG",
    "NP", "ZA", "SS", "SY", "TZ", "VE", "VN", "YE",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskFactor {
    pub factor: &'static str,
    pub value: String,
    pub points: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskAssessment {
    pub user_id: Uuid,
    /// Sum of the factors' points, capped at 100.
    pub score: u32,
    /// `low` (< 25), `medium` (< 50) or `high`.
    pub rating: &'static str,
    pub factors: Vec<RiskFactor>,
    #[serde(with = "time::serde::rfc3339")]
    pub assessed_at: OffsetDateTime,
}

/// Inputs of the score, gathered from the service's tables and the indexer's.
#[derive(Debug, Clone, Default)]
pub struct RiskInputs {
    pub state: Option<State>,
    pub level: Option<u8>,
    pub country: Option<String>,
    pub best_sanctions_score: f64,
    pub wallet_listed: bool,
    pub payments_24h: i64,
    pub payments_7d: i64,
}

pub fn kyc_points(state: Option<State>, level: Option<u8>) -> RiskFactor {
    let (value, points) = match (state, level) {
        (Some(State::Approved), Some(l)) if l >= 2 => (format!("approved, level {l}"), 0),
        (Some(State::Approved), l) => (format!("approved, level {}", l.unwrap_or(1)), 15),
        (Some(s), _) => (format!("not approved ({})", s.as_str()), 40),
        (None, _) => ("never verified".to_owned(), 40),
    };
    RiskFactor {
        factor: "kyc_level",
        value,
        points,
    }
}

pub fn country_points(country: Option<&str>) -> RiskFactor {
    let (value, points) = match country {
        Some(c) if HIGH_RISK_COUNTRIES.contains(&c) => (format!("{c} (FATF high risk)"), 40),
        Some(c) if MONITORED_COUNTRIES.contains(&c) => {
            (format!("{c} (FATF increased monitoring)"), 20)
        }
        Some(c) => (c.to_owned(), 0),
        None => ("unknown".to_owned(), 10),
    };
    RiskFactor {
        factor: "country",
        value,
        points,
    }
}

pub fn sanctions_points(best: f64, threshold: f64, wallet_listed: bool) -> RiskFactor {
    let (value, points) = if wallet_listed {
        ("wallet address is on the sanctions list".to_owned(), 100)
    } else if best >= 0.95 {
        (format!("name match {best:.3}"), 50)
    } else if best >= threshold {
        (format!("name match {best:.3}"), 30)
    } else {
        ("no match".to_owned(), 0)
    };
    RiskFactor {
        factor: "sanctions_proximity",
        value,
        points,
    }
}

pub fn velocity_points(day: i64, week: i64) -> RiskFactor {
    let points = if day >= 20 || week >= 100 {
        25
    } else if day >= 5 || week >= 25 {
        10
    } else {
        0
    };
    RiskFactor {
        factor: "transaction_velocity",
        value: format!("{day} payments in 24 h, {week} in 7 days"),
        points,
    }
}

pub fn score(user_id: Uuid, inputs: &RiskInputs, threshold: f64) -> RiskAssessment {
    let factors = vec![
        kyc_points(inputs.state, inputs.level),
        country_points(inputs.country.as_deref()),
        sanctions_points(inputs.best_sanctions_score, threshold, inputs.wallet_listed),
        velocity_points(inputs.payments_24h, inputs.payments_7d),
    ];
    let score = factors.iter().map(|f| f.points).sum::<u32>().min(100);
    RiskAssessment {
        user_id,
        score,
        rating: match score {
            0..25 => "low",
            25..50 => "medium",
            _ => "high",
        },
        factors,
        assessed_at: OffsetDateTime::now_utc(),
    }
}

impl KycService {
    /// The user's risk from their latest verification, sanctions proximity of name and
    /// wallet, and the payments the indexer saw from that wallet (through the directory).
    pub async fn assess_risk(&self, user: Uuid) -> Result<RiskAssessment, KycError> {
        let latest: Option<(String, Option<i16>, String, String, serde_json::Value)> =
            sqlx::query_as(
                "SELECT state, level, country, wallet, sanctions FROM kyc.verifications
                  WHERE user_id = $1 ORDER BY submitted_at DESC, id DESC LIMIT 1",
            )
            .bind(user)
            .fetch_optional(self.pool())
            .await?;
        let mut inputs = RiskInputs::default();
        if let Some((state, level, country, wallet, sanctions)) = latest {
            inputs.state = State::parse(&state);
            inputs.level = level.and_then(|l| u8::try_from(l).ok());
            inputs.country = Some(country);
            inputs.best_sanctions_score = sanctions
                .as_array()
                .and_then(|a| a.first())
                .and_then(|m| m.get("score"))
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0);
            inputs.wallet_listed = !self.sanctions().screen_address(&wallet).is_empty();
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let [day, week] = self
                .directory()
                .payments_since(&wallet, [now - 86_400, now - 7 * 86_400])
                .await
                .map_err(|e| KycError::Unavailable(format!("payment activity: {e}")))?;
            inputs.payments_24h = day;
            inputs.payments_7d = week;
        }
        Ok(score(user, &inputs, self.config().sanctions_threshold))
    }
}
