//! `advancia-agents` (ADR 0020): a registry of agents with versions, tasks routed over
//! the event bus (`agents.tasks.<kind>`) to competing workers, orchestration plans that
//! fan a request out to several agents and aggregate their results through a shared
//! per-orchestration context, per-agent metrics computed from the task table, and
//! training of the model-backed agents from labelled outcomes.
//!
//! Agents are real algorithms over the request payload or our tables (read-only), or
//! LLM-backed through an OpenAI-compatible chat endpoint ([`llm`]).

pub mod agents;
pub mod context;
pub mod llm;
pub mod model;
mod service;
pub mod worker;

use advancia_db::{Migration, ServiceMigrations};

pub use context::Context;
pub use model::*;
pub use service::{AgentService, Catalog, plan};

pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "agents",
    migrations: &[Migration {
        version: 1,
        name: "agents",
        sql: include_str!("../migrations/0001_agents.sql"),
    }],
};

/// Bus subject prefix of agent tasks (`<prefix>.tasks.<kind>`).
pub const DEFAULT_SUBJECT_PREFIX: &str = "agents";

/// Bus subject of tasks for agents of `kind`.
pub fn task_subject(prefix: &str, kind: &str) -> String {
    format!("{prefix}.tasks.{kind}")
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The input or parameters do not fit the agent: retrying cannot help.
    #[error("{0}")]
    Invalid(String),
    /// Well-formed, and refused as it stands: a kind this deployment does not have.
    #[error("{0}")]
    Refused(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("agent {0} is disabled")]
    Disabled(String),
    #[error("{0}")]
    Conflict(String),
    #[error("agent kind {0} cannot be trained")]
    NotTrainable(String),
    #[error("token budget of agent {agent} is exhausted ({spent} of {budget} tokens used)")]
    BudgetExhausted {
        agent: String,
        spent: u64,
        budget: u64,
    },
    #[error("no LLM endpoint is configured (ADVANCIA_LLM_URL)")]
    LlmNotConfigured,
    /// The endpoint answered with a non-retryable error.
    #[error("LLM request rejected: {0}")]
    LlmRejected(String),
    /// Timeouts, connection errors, 429/5xx after the retries: a later attempt may work.
    #[error("LLM unavailable: {0}")]
    LlmUnavailable(String),
    #[error("agent run exceeded {0} ms")]
    Timeout(u64),
    #[error("waiting for the result timed out")]
    WaitTimeout,
    #[error("event bus: {0}")]
    Bus(#[from] advancia_bus::BusError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored agent data is corrupt: {0}")]
    Corrupt(String),
}

impl AgentError {
    /// Worth another attempt (the worker redelivers these with backoff).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AgentError::LlmUnavailable(_)
                | AgentError::Timeout(_)
                | AgentError::Database(_)
                | AgentError::Bus(_)
        )
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        AgentError::Invalid(msg.into())
    }
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;
