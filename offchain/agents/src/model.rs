//! Records and request/response types.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// A registered agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentRecord {
    pub id: String,
    pub kind: String,
    pub description: String,
    pub version: i32,
    pub enabled: bool,
    pub params: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What one run produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Output {
    /// The agent's findings.
    pub value: Value,
    /// A risk or quality score in [0, 1] when the agent has one (aggregated by plans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Whether the subject passes the agent's check, when it is a check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<bool>,
    /// LLM tokens used.
    #[serde(default)]
    pub tokens: u64,
    /// Cost in micro-USD.
    #[serde(default)]
    pub cost_micro_usd: u64,
}

impl Output {
    pub fn new(value: Value) -> Self {
        Self {
            value,
            ..Self::default()
        }
    }

    pub fn score(mut self, s: f64) -> Self {
        self.score = Some(if s.is_finite() {
            s.clamp(0.0, 1.0)
        } else {
            1.0
        });
        self
    }

    pub fn pass(mut self, p: bool) -> Self {
        self.pass = Some(p);
        self
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl TaskStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub id: Uuid,
    pub agent_id: String,
    pub agent_version: i32,
    pub orchestration_id: Option<Uuid>,
    pub status: TaskStatus,
    pub input: Value,
    pub result: Option<Output>,
    pub error: Option<String>,
    pub attempts: i32,
    pub latency_us: Option<i64>,
    pub tokens: i64,
    pub cost_micro_usd: i64,
    /// The user (or API key owner) who submitted it.
    pub created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// Per-agent figures over finished tasks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentMetrics {
    pub agent_id: String,
    pub tasks: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub success_rate: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_avg_ms: Option<f64>,
    pub tokens: i64,
    pub cost_micro_usd: i64,
}

/// A new agent: an id of our choosing running a built-in kind with its own parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Merged over the kind's defaults.
    #[serde(default)]
    pub params: Option<Value>,
}

/// One labelled outcome for training.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Labelled {
    /// The same input the agent scores.
    pub input: Value,
    /// The confirmed outcome (fraud: true; no-show: true).
    pub label: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TrainRequest {
    pub examples: Vec<Labelled>,
    /// Held-out examples to measure on; default: every fifth example is held out.
    #[serde(default)]
    pub holdout: Option<Vec<Labelled>>,
    #[serde(default)]
    pub epochs: Option<u32>,
    #[serde(default)]
    pub learning_rate: Option<f64>,
}

/// Held-out quality of a model.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ModelQuality {
    pub log_loss: f64,
    pub accuracy: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainOutcome {
    pub agent_id: String,
    pub version: i32,
    pub trained_on: usize,
    pub held_out: usize,
    pub before: ModelQuality,
    pub after: ModelQuality,
    pub params: Value,
}

/// How step results become one answer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Weighted mean of the steps' scores, compared with a threshold.
    #[default]
    Weighted,
    /// Passes only when every step ran and passed.
    AllOf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanStep {
    pub agent: String,
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct OrchestrateRequest {
    /// A named plan (`payment_review`, `kyc_review`), or `steps`.
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub steps: Option<Vec<PlanStep>>,
    #[serde(default)]
    pub aggregation: Option<Aggregation>,
    /// Weighted: a score at or above it flags the subject (default 0.5).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// An agent run after the steps with their results in the shared context
    /// (e.g. an LLM summary); its failure does not fail the orchestration.
    #[serde(default)]
    pub summary: Option<String>,
    pub input: Value,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepResult {
    pub agent: String,
    pub task_id: Uuid,
    pub weight: f64,
    pub status: TaskStatus,
    pub output: Option<Output>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrchestrationResult {
    pub id: Uuid,
    pub plan: String,
    pub aggregation: Aggregation,
    pub steps: Vec<StepResult>,
    /// Weighted score over the steps that produced one.
    pub score: Option<f64>,
    /// Weighted: score below the threshold; all-of: every step passed.
    pub pass: bool,
    pub decision: String,
    pub summary: Option<StepResult>,
}
