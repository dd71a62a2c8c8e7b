//! The built-in agent kinds. Each is a real algorithm over the request payload or our
//! tables; the LLM-backed ones call the configured chat endpoint.

pub mod compliance;
pub mod llm_agents;
pub mod ops;
pub mod risk;

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{AgentError, Context, ModelQuality, Output, Result, TrainRequest};

/// One agent kind.
pub trait Agent: Send + Sync {
    fn kind(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// Parameters a new registration starts from.
    fn default_params(&self) -> Value {
        Value::Object(Default::default())
    }
    fn run<'a>(&'a self, ctx: &'a Context, input: Value) -> BoxFuture<'a, Result<Output>>;
    /// Agents that need neither the database nor the network also evaluate synchronously
    /// (same result as [`Agent::run`]; used by tests and benchmarks).
    fn eval(&self, _params: &Value, _input: &Value) -> Option<Result<Output>> {
        None
    }
    /// Trainable kinds return new parameters learned from labelled outcomes.
    fn train(&self, _params: &Value, _req: &TrainRequest) -> Option<Result<Trained>> {
        None
    }
}

/// What training produced.
#[derive(Debug, Clone)]
pub struct Trained {
    pub params: Value,
    pub trained_on: usize,
    pub held_out: usize,
    pub before: ModelQuality,
    pub after: ModelQuality,
}

/// An agent that is a pure function of its parameters and input.
pub struct Pure {
    pub kind: &'static str,
    pub description: &'static str,
    pub defaults: fn() -> Value,
    pub f: fn(&Value, &Value) -> Result<Output>,
}

impl Agent for Pure {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn description(&self) -> &'static str {
        self.description
    }

    fn default_params(&self) -> Value {
        (self.defaults)()
    }

    fn run<'a>(&'a self, ctx: &'a Context, input: Value) -> BoxFuture<'a, Result<Output>> {
        futures_util::future::ready((self.f)(ctx.params(), &input)).boxed()
    }

    fn eval(&self, params: &Value, input: &Value) -> Option<Result<Output>> {
        Some((self.f)(params, input))
    }
}

pub(crate) fn no_params() -> Value {
    Value::Object(Default::default())
}

/// Every built-in kind.
pub fn catalog() -> Vec<Arc<dyn Agent>> {
    let mut all: Vec<Arc<dyn Agent>> = Vec::new();
    all.extend(risk::agents());
    all.extend(ops::agents());
    all.extend(compliance::agents());
    all.extend(llm_agents::agents());
    all
}

/// `input` as `T`, or an `Invalid` error naming what is wrong.
pub(crate) fn parse<T: DeserializeOwned>(input: &Value) -> Result<T> {
    serde_json::from_value(input.clone()).map_err(|e| AgentError::invalid(format!("input: {e}")))
}

pub(crate) fn param_f64(params: &Value, key: &str, default: f64) -> f64 {
    params
        .get(key)
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
        .unwrap_or(default)
}

pub(crate) fn param_u64(params: &Value, key: &str, default: u64) -> u64 {
    params.get(key).and_then(Value::as_u64).unwrap_or(default)
}

/// A failed read of the payments service's typed reads (`advancia_payments::reads`).
pub(crate) fn payments_error(e: advancia_payments::PaymentError) -> AgentError {
    match e {
        advancia_payments::PaymentError::Database(e) => AgentError::Database(e),
        other => AgentError::Corrupt(format!("payments: {other}")),
    }
}

/// Statistics helpers (amounts are integers; statistics on them are floats).
pub(crate) mod stats {
    pub fn median(v: &mut [f64]) -> Option<f64> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }

    pub fn mean_std(v: &[f64]) -> Option<(f64, f64)> {
        if v.len() < 2 {
            return None;
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Some((mean, var.sqrt()))
    }

    pub fn sigmoid(z: f64) -> f64 {
        1.0 / (1.0 + (-z).exp())
    }
}
