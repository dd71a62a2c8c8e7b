//! Forecasting daily series: additive Holt-Winters (level, trend, weekly season) with its
//! smoothing parameters fitted by grid search on the training part, scored on held-out
//! days against a seasonal-naive baseline (the value one season earlier) in the same call.
//!
//! Floats are fine here: a forecast is an estimate, reported rounded to whole base units;
//! the figures it is fitted on come from integer rollups.

use serde::Serialize;

use crate::AnalyticsError;

/// Fitted smoothing parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HwParams {
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
}

/// Error of a forecast against what happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accuracy {
    /// Mean absolute error, in the series' units.
    pub mae: f64,
    /// Symmetric MAPE in percent (0–200); days where both values are 0 count as 0.
    pub smape: f64,
}

pub fn accuracy(actual: &[f64], predicted: &[f64]) -> Accuracy {
    let n = actual.len().min(predicted.len());
    if n == 0 {
        return Accuracy {
            mae: 0.0,
            smape: 0.0,
        };
    }
    let mut abs = 0.0;
    let mut sm = 0.0;
    for (a, p) in actual.iter().zip(predicted) {
        let e = (a - p).abs();
        abs += e;
        let d = a.abs() + p.abs();
        if d > 0.0 {
            sm += 2.0 * e / d;
        }
    }
    Accuracy {
        mae: abs / n as f64,
        smape: 100.0 * sm / n as f64,
    }
}

/// Additive Holt-Winters with season length `m`, fitted to `y`.
#[derive(Debug, Clone)]
pub struct HoltWinters {
    pub params: HwParams,
    pub m: usize,
    level: f64,
    trend: f64,
    season: Vec<f64>,
    /// Sum of squared one-step-ahead errors over the fit (what the grid search minimises).
    pub sse: f64,
}

impl HoltWinters {
    /// Runs the recursions over `y` (needs two full seasons for the initial state).
    pub fn fit(y: &[f64], m: usize, params: HwParams) -> Result<HoltWinters, AnalyticsError> {
        if m < 2 || y.len() < 2 * m {
            return Err(AnalyticsError::Invalid(format!(
                "Holt-Winters with a season of {m} needs at least {} points, got {}",
                2 * m,
                y.len()
            )));
        }
        // Initial state from the first two seasons: level = mean of season 1, trend = mean
        // per-step change between the seasons, season = deviations from season 1's mean.
        let mean1 = y[..m].iter().sum::<f64>() / m as f64;
        let mean2 = y[m..2 * m].iter().sum::<f64>() / m as f64;
        let mut level = mean1;
        let mut trend = (mean2 - mean1) / m as f64;
        let mut season: Vec<f64> = y[..m].iter().map(|v| v - mean1).collect();
        let HwParams { alpha, beta, gamma } = params;
        let mut sse = 0.0;
        for (t, &v) in y.iter().enumerate().skip(m) {
            let s = season[t % m];
            let predicted = level + trend + s;
            sse += (v - predicted).powi(2);
            let new_level = alpha * (v - s) + (1.0 - alpha) * (level + trend);
            trend = beta * (new_level - level) + (1.0 - beta) * trend;
            season[t % m] = gamma * (v - new_level) + (1.0 - gamma) * s;
            level = new_level;
        }
        // Season slots are indexed by absolute time: rotate so slot 0 is the next step.
        season.rotate_left(y.len() % m);
        Ok(HoltWinters {
            params,
            m,
            level,
            trend,
            season,
            sse,
        })
    }

    /// Grid search over α, β, γ ∈ {0.05, 0.15, …, 0.95}: the fit with the least
    /// one-step-ahead squared error on `y`.
    pub fn fit_best(y: &[f64], m: usize) -> Result<HoltWinters, AnalyticsError> {
        let grid: Vec<f64> = (0..10).map(|i| 0.05 + 0.1 * f64::from(i)).collect();
        let mut best: Option<HoltWinters> = None;
        for &alpha in &grid {
            for &beta in &grid {
                for &gamma in &grid {
                    let hw = HoltWinters::fit(y, m, HwParams { alpha, beta, gamma })?;
                    if best.as_ref().is_none_or(|b| hw.sse < b.sse) {
                        best = Some(hw);
                    }
                }
            }
        }
        best.ok_or_else(|| AnalyticsError::Invalid("empty parameter grid".into()))
    }

    /// The next `h` values after the fitted series.
    pub fn forecast(&self, h: usize) -> Vec<f64> {
        (1..=h)
            .map(|k| self.level + k as f64 * self.trend + self.season[(k - 1) % self.m])
            .collect()
    }
}

/// Seasonal naive: each future day repeats the day one season before (from the last
/// season of `train`).
pub fn seasonal_naive(train: &[f64], m: usize, h: usize) -> Vec<f64> {
    if train.len() < m || m == 0 {
        return vec![train.last().copied().unwrap_or(0.0); h];
    }
    let last = &train[train.len() - m..];
    (0..h).map(|k| last[k % m]).collect()
}

/// A forecast with its measured accuracy.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastResult {
    pub method: &'static str,
    pub season_length: usize,
    pub params: HwParams,
    /// Days held out from fitting and scored.
    pub holdout_days: usize,
    pub holdout_actual: Vec<f64>,
    pub holdout_predicted: Vec<f64>,
    pub holdout: Accuracy,
    /// Seasonal-naive baseline on the same held-out days.
    pub baseline: Accuracy,
    /// Forecast after the whole series (refitted on all of it), rounded to base units and
    /// floored at 0 (money does not flow backwards through fees).
    pub forecast: Vec<i128>,
}

/// Fits on all but the last `holdout` points, scores on them (HW and seasonal naive),
/// then refits on everything and forecasts `horizon` points.
pub fn evaluate(
    y: &[f64],
    m: usize,
    holdout: usize,
    horizon: usize,
) -> Result<ForecastResult, AnalyticsError> {
    if holdout == 0 {
        return Err(AnalyticsError::Invalid("holdout must be at least 1".into()));
    }
    if y.len() < 2 * m + holdout {
        return Err(AnalyticsError::Refused(format!(
            "need at least {} days of history (two seasons of {m} plus {holdout} held out), have {}",
            2 * m + holdout,
            y.len()
        )));
    }
    let (train, test) = y.split_at(y.len() - holdout);
    let fitted = HoltWinters::fit_best(train, m)?;
    let predicted = fitted.forecast(holdout);
    let naive = seasonal_naive(train, m, holdout);
    let full = HoltWinters::fit(y, m, fitted.params)?;
    Ok(ForecastResult {
        method: "holt-winters additive (grid-searched alpha, beta, gamma)",
        season_length: m,
        params: fitted.params,
        holdout_days: holdout,
        holdout_actual: test.to_vec(),
        holdout: accuracy(test, &predicted),
        baseline: accuracy(test, &naive),
        holdout_predicted: predicted,
        forecast: full
            .forecast(horizon)
            .into_iter()
            .map(|v| v.max(0.0).round() as i128)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Trend + weekly pattern, no noise: Holt-Winters should all but reproduce it.
    fn synthetic(n: usize) -> Vec<f64> {
        let week = [10.0, 12.0, 15.0, 11.0, 9.0, 30.0, 25.0];
        (0..n)
            .map(|t| 100.0 + 2.0 * t as f64 + week[t % 7])
            .collect()
    }

    #[test]
    fn recovers_trend_and_season() {
        let y = synthetic(70);
        let r = evaluate(&y, 7, 14, 7).unwrap();
        assert!(r.holdout.mae < 1.0, "mae {}", r.holdout.mae);
        // The trend makes seasonal naive lag: 7 days × 2 = 14 in the first held-out week,
        // 28 in the second (it repeats the training's last week), 21 on average.
        assert!((r.baseline.mae - 21.0).abs() < 1e-9, "{}", r.baseline.mae);
        assert!(r.holdout.mae < r.baseline.mae);
        let expected: Vec<i128> = (70..77)
            .map(|t| {
                (100.0 + 2.0 * t as f64 + [10.0, 12.0, 15.0, 11.0, 9.0, 30.0, 25.0][t % 7]).round()
                    as i128
            })
            .collect();
        for (f, e) in r.forecast.iter().zip(&expected) {
            assert!((f - e).abs() <= 1, "forecast {f} vs {e}");
        }
    }

    #[test]
    fn pure_season_seasonal_naive_is_exact() {
        let week = [5.0, 1.0, 7.0, 3.0, 3.0, 9.0, 0.0];
        let y: Vec<f64> = (0..42).map(|t| week[t % 7]).collect();
        let r = evaluate(&y, 7, 7, 7).unwrap();
        assert_eq!(r.baseline.mae, 0.0);
        assert!(r.holdout.mae < 0.5, "{}", r.holdout.mae);
    }

    #[test]
    fn noisy_series_beats_naive() {
        // Deterministic pseudo-noise (LCG) around trend + season.
        let mut s: u64 = 42;
        let y: Vec<f64> = synthetic(120)
            .into_iter()
            .map(|v| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v + ((s >> 33) % 7) as f64 - 3.0
            })
            .collect();
        let r = evaluate(&y, 7, 21, 7).unwrap();
        assert!(
            r.holdout.mae < r.baseline.mae,
            "{:?} vs {:?}",
            r.holdout,
            r.baseline
        );
        assert!(r.holdout.smape < 5.0);
    }

    #[test]
    fn accuracy_figures() {
        let a = accuracy(&[10.0, 0.0, 5.0], &[12.0, 0.0, 5.0]);
        assert!((a.mae - 2.0 / 3.0).abs() < 1e-12);
        assert!((a.smape - 100.0 * (4.0 / 22.0) / 3.0).abs() < 1e-9);
    }

    #[test]
    fn too_short_is_an_error() {
        assert!(evaluate(&synthetic(20), 7, 7, 7).is_err());
    }
}
