//! `/api/v1/agents/*` (issue #12, seed section 9): the agent registry and lifecycle,
//! task execution over the event bus, task and agent status, training, metrics and
//! orchestration.
//!
//! RBAC: admins manage the registry and train; staff roles (admin, compliance officer,
//! facility admin, provider) read, execute and orchestrate; API keys with the
//! `agents:execute` scope execute and orchestrate.

use std::collections::BTreeMap;
use std::time::Duration;

use advancia_agents::{AgentError, OrchestrateRequest, Registration, TrainRequest};
use advancia_auth::Role;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::body::JsonObject;
use crate::principal::Principal;
use crate::problem::{Problem, Result};

const ADMINS: &[Role] = &[Role::Admin];
const STAFF: &[Role] = &[
    Role::Admin,
    Role::ComplianceOfficer,
    Role::FacilityAdmin,
    Role::Provider,
];
pub const EXECUTE_SCOPE: &str = "agents:execute";
/// Longest a request may wait for a task's result.
const MAX_WAIT_MS: u64 = 30_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agents", get(list).post(register))
        .route("/api/v1/agents/execute", post(execute))
        .route("/api/v1/agents/metrics", get(metrics))
        .route("/api/v1/agents/orchestrate", post(orchestrate))
        .route("/api/v1/agents/{id}/enable", post(enable))
        .route("/api/v1/agents/{id}/disable", post(disable))
        .route("/api/v1/agents/{id}/params", put(update_params))
        .route("/api/v1/agents/{id}/versions", get(versions))
        .route("/api/v1/agents/{id}/status", get(status))
        .route("/api/v1/agents/{id}/train", post(train))
}

/// W3C trace context travels with the task over the bus.
fn trace_headers(h: &HeaderMap) -> BTreeMap<String, String> {
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|k| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= 512)
                .map(|v| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// List the registered agents.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", operation_id = "list_agents",
    responses((status = 200, description = "Every agent with kind, version, enabled flag and parameters"),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(st): State<AppState>, p: Principal) -> Result<impl IntoResponse> {
    p.require_role(STAFF)?;
    Ok(Json(st.agents.list().await?))
}

#[derive(Deserialize, ToSchema)]
pub struct AgentRegistrationBody {
    /// New agent id: lowercase letters, digits and `_`, starting with a letter.
    #[schema(pattern = "^[a-z][a-z0-9_]{1,62}$")]
    id: String,
    /// A built-in kind, e.g. `fraud_score` (one this deployment does not have: 422).
    kind: String,
    description: Option<String>,
    /// Merged over the kind's default parameters.
    #[schema(value_type = Option<Object>)]
    params: Option<Value>,
}

/// Register an agent of a built-in kind with its own parameters (version 1).
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", operation_id = "register_agent", request_body = AgentRegistrationBody,
    responses((status = 201, description = "Registered"), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, description = "No such kind in this deployment, or parameters it refuses", body = Problem)),
    security(("bearer" = [])))]
pub async fn register(
    State(st): State<AppState>,
    p: Principal,
    JsonObject(b): JsonObject<AgentRegistrationBody>,
) -> Result<impl IntoResponse> {
    let admin = p.require_role(ADMINS)?.sub;
    let rec = st
        .agents
        .register(
            Registration {
                id: b.id,
                kind: b.kind,
                description: b.description,
                params: b.params,
            },
            Some(admin),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(rec)))
}

/// Enable an agent.
#[utoipa::path(post, path = "/api/v1/agents/{id}/enable", tag = "agents",
    params(("id" = String, Path)),
    responses((status = 200, description = "Enabled"), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn enable(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    p.require_role(ADMINS)?;
    Ok(Json(st.agents.set_enabled(&id, true).await?))
}

/// Disable an agent: new tasks are refused, queued ones fail.
#[utoipa::path(post, path = "/api/v1/agents/{id}/disable", tag = "agents",
    params(("id" = String, Path)),
    responses((status = 200, description = "Disabled"), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn disable(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    p.require_role(ADMINS)?;
    Ok(Json(st.agents.set_enabled(&id, false).await?))
}

/// New parameters (merged over the current ones) as a new version.
#[utoipa::path(put, path = "/api/v1/agents/{id}/params", tag = "agents",
    params(("id" = String, Path)), request_body(content = Object, description = "Parameters to change"),
    responses((status = 200, description = "New version"), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn update_params(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonObject(params): JsonObject<Value>,
) -> Result<impl IntoResponse> {
    let admin = p.require_role(ADMINS)?.sub;
    Ok(Json(
        st.agents.update_params(&id, params, Some(admin)).await?,
    ))
}

/// The versions an agent's parameters went through, newest first.
#[utoipa::path(get, path = "/api/v1/agents/{id}/versions", tag = "agents",
    params(("id" = String, Path)),
    responses((status = 200, description = "Versions with reason, training metrics and parameters"),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn versions(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    p.require_role(STAFF)?;
    st.agents.get(&id).await?;
    Ok(Json(st.agents.versions(&id).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct ExecuteBody {
    /// Agent id.
    agent: String,
    #[schema(value_type = Object)]
    input: Value,
    /// Wait up to this long for the result; 0 returns at once.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 30000)]
    wait_ms: u64,
}

/// Queue a task for an agent (published on `agents.tasks.<kind>`, run by a worker).
/// Returns 200 with the finished task when it completes within `wait_ms`, else 202.
#[utoipa::path(post, path = "/api/v1/agents/execute", tag = "agents", request_body = ExecuteBody,
    responses((status = 200, description = "Finished task with its result"),
        (status = 202, description = "Queued or running; poll /api/v1/agents/{task id}/status"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Agent disabled")),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn execute(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    JsonObject(b): JsonObject<ExecuteBody>,
) -> Result<impl IntoResponse> {
    p.require_scope_or_role(EXECUTE_SCOPE, STAFF)?;
    if b.wait_ms > MAX_WAIT_MS {
        return Err(AgentError::invalid(format!("wait_ms is at most {MAX_WAIT_MS}")).into());
    }
    let task = st
        .agents
        .execute(
            &b.agent,
            b.input,
            None,
            Some(p.user_id()),
            &trace_headers(&headers),
        )
        .await?;
    let task = if b.wait_ms > 0 {
        st.agents
            .wait(task.id, Duration::from_millis(b.wait_ms))
            .await?
    } else {
        task
    };
    let code = if task.status.is_final() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((code, Json(task)))
}

/// A task's status and result (`id` is a task id), or an agent's state and metrics
/// (`id` is an agent id).
#[utoipa::path(get, path = "/api/v1/agents/{id}/status", tag = "agents", operation_id = "agent_status",
    params(("id" = String, Path, description = "Task id (uuid) or agent id")),
    responses((status = 200, description = "Task or agent status"),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn status(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Response> {
    p.require_scope_or_role(EXECUTE_SCOPE, STAFF)?;
    if let Ok(task_id) = Uuid::try_parse(&id) {
        let task = st.agents.task(task_id).await?;
        // Staff share operational tasks; a partner's API key sees only its owner's.
        if matches!(p, Principal::ApiKey(_)) && task.created_by != Some(p.user_id()) {
            return Err(AgentError::NotFound(format!("task {task_id}")).into());
        }
        return Ok(Json(task).into_response());
    }
    let agent = st.agents.get(&id).await?;
    let metrics = st
        .agents
        .metrics()
        .await?
        .into_iter()
        .find(|m| m.agent_id == agent.id);
    Ok(Json(json!({"agent": agent, "metrics": metrics})).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct LabelledBody {
    #[schema(value_type = Object)]
    input: Value,
    label: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct TrainBody {
    examples: Vec<LabelledBody>,
    /// Held-out examples; default: every fifth example.
    holdout: Option<Vec<LabelledBody>>,
    epochs: Option<u32>,
    learning_rate: Option<f64>,
}

/// Train a model-backed agent (fraud_score, no_show_risk) on labelled outcomes; stores
/// the new parameters as a new version with held-out metrics before and after.
#[utoipa::path(post, path = "/api/v1/agents/{id}/train", tag = "agents", request_body = TrainBody,
    params(("id" = String, Path)),
    responses((status = 200, description = "New version with held-out log loss and accuracy before and after"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "Kind cannot be trained")),
    security(("bearer" = [])))]
pub async fn train(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonObject(b): JsonObject<TrainBody>,
) -> Result<impl IntoResponse> {
    let admin = p.require_role(ADMINS)?.sub;
    if b.examples.len() > 100_000 {
        return Err(AgentError::invalid("at most 100 000 examples").into());
    }
    let conv = |v: Vec<LabelledBody>| {
        v.into_iter()
            .map(|l| advancia_agents::Labelled {
                input: l.input,
                label: l.label,
            })
            .collect()
    };
    let req = TrainRequest {
        examples: conv(b.examples),
        holdout: b.holdout.map(conv),
        epochs: b.epochs,
        learning_rate: b.learning_rate,
    };
    Ok(Json(st.agents.train(&id, &req, Some(admin)).await?))
}

/// Per-agent latency (p50/p95/avg), success rate, tokens and cost (micro-USD).
#[utoipa::path(get, path = "/api/v1/agents/metrics", tag = "agents",
    responses((status = 200, description = "One entry per agent"), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn metrics(State(st): State<AppState>, p: Principal) -> Result<impl IntoResponse> {
    p.require_role(STAFF)?;
    Ok(Json(st.agents.metrics().await?))
}

#[derive(Deserialize, ToSchema)]
pub struct StepBody {
    agent: String,
    #[serde(default = "one")]
    #[schema(minimum = 0)]
    weight: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Deserialize, ToSchema)]
pub struct OrchestrateBody {
    /// A built-in plan, or give `steps` (one of the two, else 422).
    #[schema(inline, value_type = Option<PlanName>)]
    plan: Option<String>,
    #[schema(min_items = 1, max_items = 32)]
    steps: Option<Vec<StepBody>>,
    /// Default: `weighted` for custom steps, the plan's own otherwise.
    #[schema(inline, value_type = Option<AggregationName>)]
    aggregation: Option<String>,
    threshold: Option<f64>,
    /// Agent run last over the shared context (e.g. `review_summary`).
    summary: Option<String>,
    #[schema(value_type = Object)]
    input: Value,
    #[schema(minimum = 1, maximum = 30000)]
    timeout_ms: Option<u64>,
}

/// The built-in plans (documentation of `advancia_agents`' plan table).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum PlanName {
    PaymentReview,
    KycReview,
}

/// How step results combine (documentation of the check in `orchestrate`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum AggregationName {
    Weighted,
    AllOf,
}

/// Fan a request out to several agents over the bus and aggregate their results.
#[utoipa::path(post, path = "/api/v1/agents/orchestrate", tag = "agents", request_body = OrchestrateBody,
    responses((status = 200, description = "Step results, aggregate score, decision and summary"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 404, description = "A step names no agent", body = Problem),
        (status = 422, description = "Both or neither of `plan` and `steps`", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn orchestrate(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    JsonObject(b): JsonObject<OrchestrateBody>,
) -> Result<impl IntoResponse> {
    p.require_scope_or_role(EXECUTE_SCOPE, STAFF)?;
    if b.timeout_ms.is_some_and(|t| t == 0 || t > MAX_WAIT_MS) {
        return Err(AgentError::invalid(format!("timeout_ms is 1 to {MAX_WAIT_MS}")).into());
    }
    // Each is in the schema; that exactly one of them is given is not.
    if b.plan.is_some() == b.steps.is_some() {
        return Err(Problem::refused("give a `plan` or 1 to 32 `steps`"));
    }
    let aggregation = match b.aggregation.as_deref() {
        None => None,
        Some("weighted") => Some(advancia_agents::Aggregation::Weighted),
        Some("all_of") => Some(advancia_agents::Aggregation::AllOf),
        Some(other) => {
            return Err(
                AgentError::invalid(format!("aggregation `{other}`: weighted or all_of")).into(),
            );
        }
    };
    let req = OrchestrateRequest {
        plan: b.plan,
        steps: b.steps.map(|s| {
            s.into_iter()
                .map(|s| advancia_agents::PlanStep {
                    agent: s.agent,
                    weight: s.weight,
                })
                .collect()
        }),
        aggregation,
        threshold: b.threshold,
        summary: b.summary,
        input: b.input,
        timeout_ms: b.timeout_ms,
    };
    Ok(Json(
        st.agents
            .orchestrate(req, Some(p.user_id()), &trace_headers(&headers))
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_plans_are_the_built_in_ones() {
        let doc =
            serde_json::to_value(<PlanName as utoipa::PartialSchema>::schema()).unwrap_or_default();
        for name in doc["enum"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            assert!(advancia_agents::plan(name).is_some(), "{name}");
        }
    }
}
