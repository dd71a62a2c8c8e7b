//! Payment risk: fraud scoring and no-show prediction (logistic regression, trainable),
//! amount anomaly (robust z-score over the facility's history), velocity, duplicates,
//! Benford's law on amount sets, churn risk.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::stats::{mean_std, median, sigmoid};
use super::{Agent, Pure, Trained, no_params, param_f64, param_u64, parse};
use crate::{AgentError, Context, Labelled, ModelQuality, Output, Result, TrainRequest};

pub fn agents() -> Vec<Arc<dyn Agent>> {
    vec![
        Arc::new(Logistic {
            kind: "fraud_score",
            description: "Fraud probability of a payment: logistic regression over the amount's z-score against the payer's history, payments in the last hour, a new payee and night-time; trainable from confirmed fraud labels.",
            names: &["bias", "amount_z", "velocity", "new_payee", "night"],
            weights: &[-3.0, 0.6, 0.8, 1.0, 0.7],
            features: fraud_features,
        }),
        Arc::new(Logistic {
            kind: "no_show_risk",
            description: "Probability that a patient misses an appointment: logistic regression over lead time, prior no-show rate, reminder sent and early hour; trainable from attendance outcomes.",
            names: &[
                "bias",
                "lead_days",
                "prior_no_show_rate",
                "no_reminder",
                "early",
            ],
            weights: &[-2.5, 0.5, 2.0, 0.8, 0.4],
            features: no_show_features,
        }),
        Arc::new(AmountAnomaly),
        Arc::new(Pure {
            kind: "velocity_check",
            description: "Per payer, the largest count and sum of payments inside any sliding window, against limits.",
            defaults: || json!({"window_secs": 3600, "max_count": 5, "max_amount": 10_000_000_000u64}),
            f: velocity,
        }),
        Arc::new(Pure {
            kind: "duplicate_payment",
            description: "Finds earlier payments with the same payer, payee and amount (or reference) inside a window, and near-duplicates within 1%.",
            defaults: || json!({"window_secs": 600}),
            f: duplicates,
        }),
        Arc::new(Pure {
            kind: "benford_check",
            description: "First-digit distribution of a set of amounts against Benford's law (chi-square and Nigrini's mean absolute deviation).",
            defaults: no_params,
            f: benford,
        }),
        Arc::new(Pure {
            kind: "churn_risk",
            description: "Churn risk of a payer or facility from recency, frequency and the decline of frequency against the previous period.",
            defaults: no_params,
            f: churn,
        }),
    ]
}

// ---------- logistic regression ----------

struct Logistic {
    kind: &'static str,
    description: &'static str,
    names: &'static [&'static str],
    weights: &'static [f64],
    features: fn(&Value) -> Result<Vec<f64>>,
}

impl Logistic {
    fn weights_of(&self, params: &Value) -> Result<Vec<f64>> {
        let Some(w) = params.get("weights") else {
            return Ok(self.weights.to_vec());
        };
        let w: Vec<f64> = serde_json::from_value(w.clone())
            .map_err(|e| AgentError::invalid(format!("params.weights: {e}")))?;
        if w.len() != self.names.len() || w.iter().any(|x| !x.is_finite()) {
            return Err(AgentError::invalid(format!(
                "params.weights: {} finite numbers expected",
                self.names.len()
            )));
        }
        Ok(w)
    }

    fn score(&self, params: &Value, input: &Value) -> Result<Output> {
        let w = self.weights_of(params)?;
        let x = (self.features)(input)?;
        let p = predict(&w, &x);
        let threshold = param_f64(params, "threshold", 0.5);
        let features: serde_json::Map<String, Value> = self
            .names
            .iter()
            .zip(&x)
            .map(|(n, v)| ((*n).to_owned(), json!(v)))
            .collect();
        let contributions: serde_json::Map<String, Value> = self
            .names
            .iter()
            .zip(x.iter().zip(&w))
            .map(|(n, (xi, wi))| ((*n).to_owned(), json!(xi * wi)))
            .collect();
        Ok(Output::new(json!({
            "probability": p,
            "flagged": p >= threshold,
            "features": features,
            "contributions": contributions,
        }))
        .score(p)
        .pass(p < threshold))
    }

    fn dataset(&self, examples: &[Labelled]) -> Result<Vec<(Vec<f64>, f64)>> {
        examples
            .iter()
            .map(|e| Ok(((self.features)(&e.input)?, if e.label { 1.0 } else { 0.0 })))
            .collect()
    }
}

fn predict(w: &[f64], x: &[f64]) -> f64 {
    sigmoid(w.iter().zip(x).map(|(a, b)| a * b).sum())
}

/// Held-out log loss and accuracy (threshold 0.5).
pub fn quality(w: &[f64], data: &[(Vec<f64>, f64)]) -> ModelQuality {
    if data.is_empty() {
        return ModelQuality {
            log_loss: 0.0,
            accuracy: 0.0,
        };
    }
    let eps = 1e-12;
    let (mut loss, mut right) = (0.0, 0usize);
    for (x, y) in data {
        let p = predict(w, x).clamp(eps, 1.0 - eps);
        loss -= y * p.ln() + (1.0 - y) * (1.0 - p).ln();
        if (p >= 0.5) == (*y >= 0.5) {
            right += 1;
        }
    }
    ModelQuality {
        log_loss: loss / data.len() as f64,
        accuracy: right as f64 / data.len() as f64,
    }
}

/// Full-batch gradient descent on log loss with a small L2 penalty (bias excluded).
pub fn gradient_descent(
    mut w: Vec<f64>,
    data: &[(Vec<f64>, f64)],
    epochs: u32,
    lr: f64,
) -> Vec<f64> {
    let n = data.len().max(1) as f64;
    let l2 = 1e-3;
    for _ in 0..epochs {
        let mut grad = vec![0.0; w.len()];
        for (x, y) in data {
            let err = predict(&w, x) - y;
            for (g, xi) in grad.iter_mut().zip(x) {
                *g += err * xi;
            }
        }
        for (i, (wi, g)) in w.iter_mut().zip(&grad).enumerate() {
            let reg = if i == 0 { 0.0 } else { l2 * *wi };
            *wi -= lr * (g / n + reg);
        }
    }
    w
}

impl Agent for Logistic {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn description(&self) -> &'static str {
        self.description
    }

    fn default_params(&self) -> Value {
        json!({"weights": self.weights, "threshold": 0.5})
    }

    fn run<'a>(&'a self, ctx: &'a Context, input: Value) -> BoxFuture<'a, Result<Output>> {
        let out = self.score(ctx.params(), &input).map(|mut o| {
            o.value["model_version"] = json!(ctx.agent.version);
            o
        });
        futures_util::future::ready(out).boxed()
    }

    fn eval(&self, params: &Value, input: &Value) -> Option<Result<Output>> {
        Some(self.score(params, input))
    }

    fn train(&self, params: &Value, req: &TrainRequest) -> Option<Result<Trained>> {
        Some((|| {
            let start = self.weights_of(params)?;
            let (train, hold) = match &req.holdout {
                Some(h) => (self.dataset(&req.examples)?, self.dataset(h)?),
                None => {
                    let all = self.dataset(&req.examples)?;
                    let (mut t, mut h) = (Vec::new(), Vec::new());
                    for (i, e) in all.into_iter().enumerate() {
                        if i % 5 == 4 { h.push(e) } else { t.push(e) }
                    }
                    (t, h)
                }
            };
            if train.len() < 10 || hold.is_empty() {
                return Err(AgentError::invalid(
                    "training needs at least 10 training and 1 held-out example",
                ));
            }
            let before = quality(&start, &hold);
            let w = gradient_descent(
                start,
                &train,
                req.epochs.unwrap_or(500).clamp(1, 20_000),
                req.learning_rate.unwrap_or(0.2).clamp(1e-4, 5.0),
            );
            let after = quality(&w, &hold);
            let mut params = params.clone();
            if let Some(o) = params.as_object_mut() {
                o.insert("weights".into(), json!(w));
            }
            Ok(Trained {
                params,
                trained_on: train.len(),
                held_out: hold.len(),
                before,
                after,
            })
        })())
    }
}

#[derive(Deserialize, Default)]
struct FraudInput {
    amount: u64,
    /// The payer's earlier amounts (base units).
    #[serde(default)]
    history: Vec<u64>,
    #[serde(default)]
    payments_last_hour: u32,
    #[serde(default)]
    new_payee: bool,
    /// Local hour of the payment, 0..=23.
    #[serde(default = "noon")]
    hour: u8,
}

fn noon() -> u8 {
    12
}

fn fraud_features(input: &Value) -> Result<Vec<f64>> {
    let i: FraudInput = parse(input)?;
    if i.hour > 23 {
        return Err(AgentError::invalid("hour must be 0..=23"));
    }
    let hist: Vec<f64> = i.history.iter().map(|a| *a as f64).collect();
    let z = match mean_std(&hist) {
        Some((m, s)) if s > 0.0 => ((i.amount as f64 - m) / s).clamp(-5.0, 10.0),
        Some((m, _)) if (i.amount as f64 - m).abs() > 0.0 => 10.0,
        _ => 0.0,
    };
    Ok(vec![
        1.0,
        z,
        f64::from(i.payments_last_hour).ln_1p(),
        f64::from(u8::from(i.new_payee)),
        f64::from(u8::from(i.hour < 6)),
    ])
}

#[derive(Deserialize)]
struct NoShowInput {
    lead_days: u32,
    #[serde(default)]
    prior_visits: u32,
    #[serde(default)]
    prior_no_shows: u32,
    #[serde(default)]
    reminder_sent: bool,
    #[serde(default = "noon")]
    hour: u8,
}

fn no_show_features(input: &Value) -> Result<Vec<f64>> {
    let i: NoShowInput = parse(input)?;
    if i.prior_no_shows > i.prior_visits {
        return Err(AgentError::invalid(
            "prior_no_shows cannot exceed prior_visits",
        ));
    }
    // Laplace-smoothed rate: a first visit is not a certain no-show or show.
    let rate = (f64::from(i.prior_no_shows) + 0.5) / (f64::from(i.prior_visits) + 1.0);
    Ok(vec![
        1.0,
        f64::from(i.lead_days).ln_1p(),
        rate,
        f64::from(u8::from(!i.reminder_sent)),
        f64::from(u8::from(i.hour < 9)),
    ])
}

// ---------- amount anomaly ----------

struct AmountAnomaly;

#[derive(Deserialize)]
struct AnomalyInput {
    amount: u64,
    /// Explicit history; otherwise the facility's confirmed payments are read.
    #[serde(default)]
    history: Option<Vec<u64>>,
    /// Facility account (base58) whose payments form the history.
    #[serde(default)]
    facility: Option<String>,
}

/// Robust z-score (Iglewicz–Hoaglin): 0.6745 (x − median) / MAD.
pub fn robust_z(amount: f64, history: &[f64]) -> Option<f64> {
    let mut h = history.to_vec();
    let med = median(&mut h)?;
    let mut dev: Vec<f64> = history.iter().map(|x| (x - med).abs()).collect();
    let mad = median(&mut dev)?;
    if mad > 0.0 {
        return Some(0.6745 * (amount - med) / mad);
    }
    // More than half the history is one value: fall back to the mean absolute deviation.
    let meanad = dev.iter().sum::<f64>() / dev.len() as f64;
    if meanad > 0.0 {
        Some((amount - med) / (1.253_314 * meanad))
    } else if amount == med {
        Some(0.0)
    } else {
        Some(f64::INFINITY.copysign(amount - med))
    }
}

impl Agent for AmountAnomaly {
    fn kind(&self) -> &'static str {
        "amount_anomaly"
    }

    fn description(&self) -> &'static str {
        "Whether a payment amount is anomalous for its facility: robust z-score (median and MAD) over the facility's confirmed payments or a given history."
    }

    fn default_params(&self) -> Value {
        json!({"threshold": 3.5, "min_history": 8, "history_limit": 500})
    }

    fn run<'a>(&'a self, ctx: &'a Context, input: Value) -> BoxFuture<'a, Result<Output>> {
        async move {
            let i: AnomalyInput = parse(&input)?;
            let p = ctx.params();
            let (history, source) = match (i.history, &i.facility) {
                (Some(h), _) => (h.iter().map(|a| *a as f64).collect::<Vec<_>>(), "input"),
                (None, Some(f)) => {
                    let mut tx = ctx.payments_read_only().await?;
                    let limit = u32::try_from(param_u64(p, "history_limit", 500)).unwrap_or(500);
                    let h: Vec<f64> =
                        advancia_payments::reads::recent_paid_amounts(&mut *tx, f, limit)
                            .await
                            .map_err(super::payments_error)?
                            .into_iter()
                            .map(|a| a as f64)
                            .collect();
                    (h, "payments")
                }
                (None, None) => {
                    return Err(AgentError::invalid("give `history` or `facility`"));
                }
            };
            let threshold = param_f64(p, "threshold", 3.5);
            let min = usize::try_from(param_u64(p, "min_history", 8)).unwrap_or(8);
            if history.len() < min {
                return Ok(Output::new(json!({
                    "anomalous": false, "reason": "not enough history",
                    "history": history.len(), "source": source,
                }))
                .score(0.0)
                .pass(true));
            }
            let z = robust_z(i.amount as f64, &history).unwrap_or(0.0);
            let anomalous = z.abs() > threshold;
            let mut h = history.clone();
            Ok(Output::new(json!({
                "anomalous": anomalous,
                "robust_z": if z.is_finite() { json!(z) } else { json!(z.signum() * 1e9) },
                "median": median(&mut h),
                "history": history.len(),
                "source": source,
            }))
            // z at the threshold maps to 0.5.
            .score(z.abs() / (2.0 * threshold))
            .pass(!anomalous))
        }
        .boxed()
    }
}

// ---------- velocity ----------

#[derive(Deserialize, Clone)]
struct Event {
    payer: String,
    /// Unix seconds.
    at: i64,
    amount: u64,
}

#[derive(Deserialize)]
struct VelocityInput {
    #[serde(default)]
    events: Vec<Event>,
}

fn velocity(p: &Value, input: &Value) -> Result<Output> {
    let i: VelocityInput = parse(input)?;
    let window = i64::try_from(param_u64(p, "window_secs", 3600)).unwrap_or(3600);
    let max_count = param_u64(p, "max_count", 5).max(1);
    let max_amount = param_u64(p, "max_amount", 10_000_000_000).max(1);
    let mut by_payer: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in &i.events {
        by_payer.entry(&e.payer).or_default().push(e);
    }
    let mut report = Vec::new();
    let mut worst = 0.0f64;
    for (payer, mut evs) in by_payer {
        evs.sort_by_key(|e| e.at);
        // Two pointers: the busiest window ending at each event.
        let (mut lo, mut sum, mut best_n, mut best_sum) = (0usize, 0u128, 0usize, 0u128);
        for hi in 0..evs.len() {
            sum += u128::from(evs[hi].amount);
            while evs[hi].at - evs[lo].at >= window {
                sum -= u128::from(evs[lo].amount);
                lo += 1;
            }
            best_n = best_n.max(hi - lo + 1);
            best_sum = best_sum.max(sum);
        }
        let ratio = (best_n as f64 / max_count as f64).max(best_sum as f64 / max_amount as f64);
        worst = worst.max(ratio);
        report.push(json!({
            "payer": payer, "max_count_in_window": best_n,
            "max_amount_in_window": best_sum.to_string(),
            "exceeded": best_n as u64 > max_count || best_sum > u128::from(max_amount),
        }));
    }
    report.sort_by(|a, b| a["payer"].as_str().cmp(&b["payer"].as_str()));
    let exceeded = report.iter().any(|r| r["exceeded"] == true);
    Ok(
        Output::new(json!({"payers": report, "window_secs": window}))
            .score(worst / 2.0)
            .pass(!exceeded),
    )
}

// ---------- duplicates ----------

#[derive(Deserialize, Clone)]
struct Pay {
    #[serde(default)]
    id: Option<String>,
    payer: String,
    payee: String,
    amount: u64,
    at: i64,
    #[serde(default)]
    reference: Option<String>,
}

#[derive(Deserialize)]
struct DupInput {
    #[serde(default)]
    payment: Option<Pay>,
    #[serde(default)]
    recent: Vec<Pay>,
}

fn duplicates(p: &Value, input: &Value) -> Result<Output> {
    let i: DupInput = parse(input)?;
    let Some(pay) = i.payment else {
        return Ok(Output::new(json!({"duplicates": [], "near": []}))
            .score(0.0)
            .pass(true));
    };
    let window = i64::try_from(param_u64(p, "window_secs", 600)).unwrap_or(600);
    let (mut exact, mut near) = (Vec::new(), Vec::new());
    for r in &i.recent {
        if r.id.is_some() && r.id == pay.id {
            continue;
        }
        let same_ref = r.reference.is_some() && r.reference == pay.reference;
        let close = (r.at - pay.at).abs() <= window && r.payer == pay.payer && r.payee == pay.payee;
        let label = r.id.clone().unwrap_or_else(|| format!("at {}", r.at));
        if same_ref || (close && r.amount == pay.amount) {
            exact.push(json!({"payment": label, "same_reference": same_ref}));
        } else if close && r.amount.abs_diff(pay.amount).saturating_mul(100) <= pay.amount {
            near.push(json!({"payment": label, "amount": r.amount.to_string()}));
        }
    }
    let score = if !exact.is_empty() {
        0.95
    } else if !near.is_empty() {
        0.5
    } else {
        0.0
    };
    Ok(Output::new(json!({"duplicates": exact, "near": near}))
        .score(score)
        .pass(exact.is_empty()))
}

// ---------- Benford ----------

#[derive(Deserialize)]
struct BenfordInput {
    amounts: Vec<u64>,
}

fn first_digit(mut n: u64) -> Option<usize> {
    if n == 0 {
        return None;
    }
    while n >= 10 {
        n /= 10;
    }
    usize::try_from(n).ok()
}

fn benford(_: &Value, input: &Value) -> Result<Output> {
    let i: BenfordInput = parse(input)?;
    let mut counts = [0u64; 10];
    for a in &i.amounts {
        if let Some(d) = first_digit(*a) {
            counts[d] += 1;
        }
    }
    let n: u64 = counts.iter().sum();
    if n < 30 {
        return Err(AgentError::invalid(
            "Benford analysis needs at least 30 non-zero amounts",
        ));
    }
    let (mut chi2, mut mad) = (0.0, 0.0);
    let mut digits = Vec::new();
    for (d, c) in counts.iter().enumerate().skip(1) {
        let expected = (1.0 + 1.0 / d as f64).log10();
        let observed = *c as f64 / n as f64;
        chi2 += (*c as f64 - expected * n as f64).powi(2) / (expected * n as f64);
        mad += (observed - expected).abs();
        digits.push(json!({"digit": d, "observed": observed, "expected": expected}));
    }
    mad /= 9.0;
    // Nigrini's first-digit conformity ranges.
    let conformity = match mad {
        m if m < 0.006 => "close",
        m if m < 0.012 => "acceptable",
        m if m < 0.015 => "marginal",
        _ => "nonconformity",
    };
    // 8 degrees of freedom: 15.51 is the 5% critical value.
    Ok(Output::new(json!({
        "n": n, "chi_square": chi2, "chi_square_rejects_at_5pct": chi2 > 15.507,
        "mad": mad, "conformity": conformity, "digits": digits,
    }))
    .score(mad / 0.03)
    .pass(conformity != "nonconformity"))
}

// ---------- churn ----------

#[derive(Deserialize)]
struct ChurnInput {
    days_since_last: u32,
    payments_90d: u32,
    #[serde(default)]
    payments_prev_90d: u32,
}

fn churn(_: &Value, input: &Value) -> Result<Output> {
    let i: ChurnInput = parse(input)?;
    let recency = 1.0 - (-f64::from(i.days_since_last) / 45.0).exp();
    let frequency = (-f64::from(i.payments_90d) / 3.0).exp();
    let decline = if i.payments_prev_90d > 0 {
        (f64::from(i.payments_prev_90d) - f64::from(i.payments_90d)).max(0.0)
            / f64::from(i.payments_prev_90d)
    } else {
        0.0
    };
    let risk = 0.5 * recency + 0.3 * frequency + 0.2 * decline;
    let tier = match risk {
        r if r >= 0.6 => "high",
        r if r >= 0.3 => "medium",
        _ => "low",
    };
    Ok(Output::new(json!({
        "risk": risk, "tier": tier,
        "components": {"recency": recency, "frequency": frequency, "decline": decline},
    }))
    .score(risk)
    .pass(tier != "high"))
}
