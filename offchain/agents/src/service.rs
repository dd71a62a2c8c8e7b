//! The agent service: registry and lifecycle, task submission over the bus, results,
//! metrics, training, orchestration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use advancia_bus::{Bus, Envelope};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgRow;
use sqlx::{Row, postgres::Postgres};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::agents::{Agent, catalog};
use crate::llm::LlmClient;
use crate::{
    AgentError, AgentMetrics, AgentRecord, Aggregation, OrchestrateRequest, OrchestrationResult,
    Output, PlanStep, Registration, Result, StepResult, Task, TaskStatus, TrainOutcome,
    TrainRequest, task_subject,
};

/// The built-in kinds by name.
pub struct Catalog {
    kinds: BTreeMap<&'static str, Arc<dyn Agent>>,
}

impl Catalog {
    pub fn builtin() -> Self {
        Self {
            kinds: catalog().into_iter().map(|a| (a.kind(), a)).collect(),
        }
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Agent>> {
        self.kinds.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &Arc<dyn Agent>> {
        self.kinds.values()
    }
}

#[derive(Clone)]
pub struct AgentService {
    pub(crate) pool: PgPool,
    /// The payments service's database (agents read payments through its typed reads).
    pub(crate) payments: PgPool,
    pub(crate) bus: Bus,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) llm: Option<LlmClient>,
    pub(crate) subject_prefix: String,
    seeded: Arc<OnceCell<()>>,
}

const AGENT_COLS: &str = "id, kind, description, version, enabled, params, updated_at";
const TASK_COLS: &str = "id, agent_id, agent_version, orchestration_id, status, input, result, error, attempts, latency_us, tokens, cost_micro_usd, created_by, created_at, finished_at";

pub(crate) fn agent_row(r: &PgRow) -> Result<AgentRecord> {
    Ok(AgentRecord {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        description: r.try_get("description")?,
        version: r.try_get("version")?,
        enabled: r.try_get("enabled")?,
        params: r.try_get("params")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn task_row(r: &PgRow) -> Result<Task> {
    let status: String = r.try_get("status")?;
    let result: Option<Value> = r.try_get("result")?;
    Ok(Task {
        id: r.try_get("id")?,
        agent_id: r.try_get("agent_id")?,
        agent_version: r.try_get("agent_version")?,
        orchestration_id: r.try_get("orchestration_id")?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| AgentError::Corrupt(format!("task status `{status}`")))?,
        input: r.try_get("input")?,
        result: result
            .map(serde_json::from_value::<Output>)
            .transpose()
            .map_err(|e| AgentError::Corrupt(format!("task result: {e}")))?,
        error: r.try_get("error")?,
        attempts: r.try_get("attempts")?,
        latency_us: r.try_get("latency_us")?,
        tokens: r.try_get("tokens")?,
        cost_micro_usd: r.try_get("cost_micro_usd")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

/// Named plans: which agents, with which weights, aggregated how, summarised by whom.
pub fn plan(name: &str) -> Option<(Vec<PlanStep>, Aggregation, Option<&'static str>)> {
    let step = |agent: &str, weight: f64| PlanStep {
        agent: agent.into(),
        weight,
    };
    Some(match name {
        "payment_review" => (
            vec![
                step("fraud_score", 0.4),
                step("amount_anomaly", 0.2),
                step("velocity_check", 0.15),
                step("duplicate_payment", 0.15),
                step("sanctions_explain", 0.1),
            ],
            Aggregation::Weighted,
            Some("review_summary"),
        ),
        "kyc_review" => (
            vec![
                step("kyc_document_triage", 1.0),
                step("sanctions_explain", 1.0),
                step("risk_tier", 1.0),
            ],
            Aggregation::AllOf,
            None,
        ),
        _ => return None,
    })
}

fn merge(defaults: Value, over: Option<Value>) -> Result<Value> {
    let mut base = match defaults {
        Value::Object(m) => m,
        _ => Default::default(),
    };
    match over {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => base.extend(m),
        Some(_) => return Err(AgentError::invalid("params must be a JSON object")),
    }
    Ok(Value::Object(base))
}

impl AgentService {
    pub fn new(pool: PgPool, bus: Bus, llm: Option<LlmClient>) -> Self {
        Self {
            payments: pool.clone(),
            pool,
            bus,
            catalog: Arc::new(Catalog::builtin()),
            llm,
            subject_prefix: crate::DEFAULT_SUBJECT_PREFIX.into(),
            seeded: Arc::new(OnceCell::new()),
        }
    }

    /// Reads payments in `payments` (the payments service's own database).
    pub fn with_payments_pool(mut self, payments: PgPool) -> Self {
        self.payments = payments;
        self
    }

    /// Tasks go to `<prefix>.tasks.<kind>` (default `agents`); deployments sharing one
    /// NATS account separate themselves with it.
    pub fn with_subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subject_prefix = prefix.into();
        self
    }

    pub fn subject_prefix(&self) -> &str {
        &self.subject_prefix
    }

    pub fn llm_client(&self) -> Option<&LlmClient> {
        self.llm.as_ref()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Registers each built-in kind under its own name once (first use after start).
    async fn ready(&self) -> Result<()> {
        self.seeded
            .get_or_try_init(|| async {
                let mut tx = self.pool.begin().await?;
                for a in self.catalog.kinds() {
                    let inserted = sqlx::query(
                        "INSERT INTO agents.agents (id, kind, description, params)
                         VALUES ($1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(a.kind())
                    .bind(a.description())
                    .bind(a.default_params())
                    .execute(&mut *tx)
                    .await?;
                    if inserted.rows_affected() == 1 {
                        record_version(
                            &mut tx,
                            a.kind(),
                            1,
                            &a.default_params(),
                            "registered",
                            None,
                            None,
                        )
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok::<(), AgentError>(())
            })
            .await
            .map(|_| ())
    }

    pub async fn list(&self) -> Result<Vec<AgentRecord>> {
        self.ready().await?;
        let rows = sqlx::query(&format!(
            "SELECT {AGENT_COLS} FROM agents.agents ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(agent_row).collect()
    }

    pub async fn get(&self, id: &str) -> Result<AgentRecord> {
        self.ready().await?;
        let row = sqlx::query(&format!(
            "SELECT {AGENT_COLS} FROM agents.agents WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| AgentError::NotFound(format!("agent {id}")))?;
        agent_row(&row)
    }

    /// A new agent running a built-in kind with its own parameters (version 1).
    pub async fn register(&self, reg: Registration, by: Option<Uuid>) -> Result<AgentRecord> {
        self.ready().await?;
        let kind = self
            .catalog
            .get(&reg.kind)
            .ok_or_else(|| AgentError::Refused(format!("unknown agent kind `{}`", reg.kind)))?;
        let valid = reg.id.len() >= 2
            && reg.id.len() <= 63
            && reg.id.starts_with(|c: char| c.is_ascii_lowercase())
            && reg
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(AgentError::invalid(
                "id: 2-63 characters, lowercase letters, digits and _, starting with a letter",
            ));
        }
        let params = merge(kind.default_params(), reg.params)?;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO agents.agents (id, kind, description, params) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO NOTHING RETURNING {AGENT_COLS}"
        ))
        .bind(&reg.id)
        .bind(&reg.kind)
        .bind(
            reg.description
                .unwrap_or_else(|| kind.description().to_owned()),
        )
        .bind(&params)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| AgentError::Conflict(format!("agent {} already exists", reg.id)))?;
        record_version(&mut tx, &reg.id, 1, &params, "registered", None, by).await?;
        tx.commit().await?;
        agent_row(&row)
    }

    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<AgentRecord> {
        self.ready().await?;
        let row = sqlx::query(&format!(
            "UPDATE agents.agents SET enabled = $2, updated_at = now() WHERE id = $1 RETURNING {AGENT_COLS}"
        ))
        .bind(id)
        .bind(enabled)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| AgentError::NotFound(format!("agent {id}")))?;
        agent_row(&row)
    }

    /// New parameters (merged over the current ones) as a new version.
    pub async fn update_params(
        &self,
        id: &str,
        params: Value,
        by: Option<Uuid>,
    ) -> Result<AgentRecord> {
        let current = self.get(id).await?;
        let params = merge(current.params, Some(params))?;
        self.new_version(id, &params, "updated", None, by).await
    }

    async fn new_version(
        &self,
        id: &str,
        params: &Value,
        reason: &str,
        metrics: Option<&Value>,
        by: Option<Uuid>,
    ) -> Result<AgentRecord> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE agents.agents SET version = version + 1, params = $2, updated_at = now()
             WHERE id = $1 RETURNING {AGENT_COLS}"
        ))
        .bind(id)
        .bind(params)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| AgentError::NotFound(format!("agent {id}")))?;
        let rec = agent_row(&row)?;
        record_version(&mut tx, id, rec.version, params, reason, metrics, by).await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// `(version, reason, metrics, params)` newest first.
    pub async fn versions(&self, id: &str) -> Result<Vec<Value>> {
        let rows: Vec<(i32, String, Option<Value>, Value)> = sqlx::query_as(
            "SELECT version, reason, metrics, params FROM agents.agent_versions
             WHERE agent_id = $1 ORDER BY version DESC",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(v, r, m, p)| json!({"version": v, "reason": r, "metrics": m, "params": p}))
            .collect())
    }

    /// Queues a task and publishes it on `agents.tasks.<kind>`; a worker runs it.
    pub async fn execute(
        &self,
        agent_id: &str,
        input: Value,
        orchestration: Option<Uuid>,
        by: Option<Uuid>,
        headers: &BTreeMap<String, String>,
    ) -> Result<Task> {
        let agent = self.get(agent_id).await?;
        if !agent.enabled {
            return Err(AgentError::Disabled(agent.id));
        }
        let id = Uuid::now_v7();
        let row = sqlx::query(&format!(
            "INSERT INTO agents.tasks (id, agent_id, agent_version, orchestration_id, input, status, created_by)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6) RETURNING {TASK_COLS}"
        ))
        .bind(id)
        .bind(&agent.id)
        .bind(agent.version)
        .bind(orchestration)
        .bind(&input)
        .bind(by)
        .fetch_one(&self.pool)
        .await?;
        let task = task_row(&row)?;
        let mut env = Envelope::json(
            task_subject(&self.subject_prefix, &agent.kind),
            &json!({"task_id": id}),
        )?
        .with_id(id.to_string());
        for (k, v) in headers {
            env = env.with_header(k, v);
        }
        // The task continues the current span's trace (e.g. the API request's), which is more
        // precise than a caller's header passed in `headers`.
        if let Some(tp) = advancia_telemetry::current_traceparent() {
            env = env.with_header(advancia_telemetry::trace::TRACEPARENT_HEADER, tp);
        }
        self.bus.publish(env).await?;
        Ok(task)
    }

    pub async fn task(&self, id: Uuid) -> Result<Task> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLS} FROM agents.tasks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| AgentError::NotFound(format!("task {id}")))?;
        task_row(&row)
    }

    /// The task once finished, or as it is when `timeout` passes.
    pub async fn wait(&self, id: Uuid, timeout: Duration) -> Result<Task> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            let t = self.task(id).await?;
            if t.status.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(t);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Per-agent figures over finished tasks (every registered agent, zero when idle).
    pub async fn metrics(&self) -> Result<Vec<AgentMetrics>> {
        self.ready().await?;
        let rows = sqlx::query(
            "SELECT a.id,
                    count(t.id) AS tasks,
                    count(t.id) FILTER (WHERE t.status = 'succeeded') AS succeeded,
                    count(t.id) FILTER (WHERE t.status = 'failed') AS failed,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY t.latency_us) / 1000.0 AS p50,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY t.latency_us) / 1000.0 AS p95,
                    (avg(t.latency_us) / 1000.0)::float8 AS avg,
                    COALESCE(sum(t.tokens), 0)::bigint AS tokens,
                    COALESCE(sum(t.cost_micro_usd), 0)::bigint AS cost
             FROM agents.agents a
             LEFT JOIN agents.tasks t ON t.agent_id = a.id AND t.status IN ('succeeded', 'failed')
             GROUP BY a.id ORDER BY a.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let tasks: i64 = r.try_get("tasks")?;
                let succeeded: i64 = r.try_get("succeeded")?;
                Ok(AgentMetrics {
                    agent_id: r.try_get("id")?,
                    tasks,
                    succeeded,
                    failed: r.try_get("failed")?,
                    success_rate: if tasks == 0 {
                        0.0
                    } else {
                        succeeded as f64 / tasks as f64
                    },
                    latency_p50_ms: r.try_get("p50")?,
                    latency_p95_ms: r.try_get("p95")?,
                    latency_avg_ms: r.try_get("avg")?,
                    tokens: r.try_get("tokens")?,
                    cost_micro_usd: r.try_get("cost")?,
                })
            })
            .collect()
    }

    /// Learns new parameters from labelled outcomes and stores them as a new version.
    pub async fn train(
        &self,
        id: &str,
        req: &TrainRequest,
        by: Option<Uuid>,
    ) -> Result<TrainOutcome> {
        let agent = self.get(id).await?;
        let kind = self.catalog.get(&agent.kind).ok_or_else(|| {
            AgentError::Corrupt(format!("agent {id} has unknown kind {}", agent.kind))
        })?;
        let trained = kind
            .train(&agent.params, req)
            .ok_or_else(|| AgentError::NotTrainable(agent.kind.clone()))??;
        let metrics = json!({
            "trained_on": trained.trained_on, "held_out": trained.held_out,
            "before": trained.before, "after": trained.after, "from_version": agent.version,
        });
        let rec = self
            .new_version(id, &trained.params, "trained", Some(&metrics), by)
            .await?;
        Ok(TrainOutcome {
            agent_id: rec.id,
            version: rec.version,
            trained_on: trained.trained_on,
            held_out: trained.held_out,
            before: trained.before,
            after: trained.after,
            params: rec.params,
        })
    }

    /// Fans the input out to the plan's agents over the bus, waits for them, aggregates,
    /// then runs the summary agent (if any) over the shared context.
    pub async fn orchestrate(
        &self,
        req: OrchestrateRequest,
        by: Option<Uuid>,
        headers: &BTreeMap<String, String>,
    ) -> Result<OrchestrationResult> {
        let (steps, default_agg, default_summary, name) = match (&req.plan, &req.steps) {
            (Some(p), None) => {
                let (s, a, sum) =
                    plan(p).ok_or_else(|| AgentError::invalid(format!("unknown plan `{p}`")))?;
                (s, a, sum.map(str::to_owned), p.clone())
            }
            (None, Some(s)) if !s.is_empty() && s.len() <= 32 => {
                (s.clone(), Aggregation::Weighted, None, "custom".to_owned())
            }
            _ => return Err(AgentError::invalid("give a `plan` or 1 to 32 `steps`")),
        };
        if steps
            .iter()
            .any(|s| !(s.weight.is_finite() && s.weight >= 0.0))
        {
            return Err(AgentError::invalid("weights must be non-negative numbers"));
        }
        let aggregation = req.aggregation.unwrap_or(default_agg);
        let threshold = req.threshold.unwrap_or(0.5);
        let summary_agent = req.summary.clone().or(default_summary);
        let timeout = Duration::from_millis(req.timeout_ms.unwrap_or(30_000).clamp(100, 120_000));
        // Every agent must exist and be enabled before anything is queued.
        for s in &steps {
            let a = self.get(&s.agent).await?;
            if !a.enabled {
                return Err(AgentError::Disabled(a.id));
            }
        }
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO agents.orchestrations (id, plan, input, status, created_by) VALUES ($1, $2, $3, 'running', $4)",
        )
        .bind(id)
        .bind(&name)
        .bind(&req.input)
        .bind(by)
        .execute(&self.pool)
        .await?;
        crate::context::put_context(&self.pool, id, "input", &req.input).await?;
        let mut queued = Vec::new();
        for s in &steps {
            let t = self
                .execute(&s.agent, req.input.clone(), Some(id), by, headers)
                .await?;
            queued.push((s.clone(), t.id));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut results = Vec::new();
        for (s, task_id) in queued {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let t = self.wait(task_id, left).await?;
            results.push(StepResult {
                agent: s.agent,
                task_id,
                weight: s.weight,
                status: t.status,
                output: t.result,
                error: t.error,
            });
        }
        let scored: Vec<(f64, f64)> = results
            .iter()
            .filter_map(|r| {
                r.output
                    .as_ref()
                    .and_then(|o| o.score)
                    .map(|s| (r.weight, s))
            })
            .collect();
        let wsum: f64 = scored.iter().map(|(w, _)| w).sum();
        let score = (wsum > 0.0).then(|| scored.iter().map(|(w, s)| w * s).sum::<f64>() / wsum);
        let all_ran = results.iter().all(|r| r.status == TaskStatus::Succeeded);
        let pass = match aggregation {
            Aggregation::Weighted => all_ran && score.is_none_or(|s| s < threshold),
            Aggregation::AllOf => {
                all_ran
                    && results
                        .iter()
                        .all(|r| r.output.as_ref().and_then(|o| o.pass) != Some(false))
            }
        };
        let decision = if !all_ran {
            "incomplete"
        } else if pass {
            "approve"
        } else if aggregation == Aggregation::Weighted
            && score.is_some_and(|s| s >= (threshold + 1.0) / 2.0)
        {
            "block"
        } else {
            "review"
        };
        crate::context::put_context(
            &self.pool,
            id,
            "aggregate",
            &json!({"score": score, "pass": pass, "decision": decision, "aggregation": aggregation}),
        )
        .await?;
        let summary = match summary_agent {
            Some(agent) => {
                let left = deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .max(Duration::from_secs(1));
                match self
                    .execute(&agent, req.input.clone(), Some(id), by, headers)
                    .await
                {
                    Ok(t) => {
                        let t = self.wait(t.id, left).await?;
                        Some(StepResult {
                            agent,
                            task_id: t.id,
                            weight: 0.0,
                            status: t.status,
                            output: t.result,
                            error: t.error,
                        })
                    }
                    // A disabled summariser does not block the decision.
                    Err(AgentError::Disabled(_)) => None,
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        let result = OrchestrationResult {
            id,
            plan: name,
            aggregation,
            steps: results,
            score,
            pass,
            decision: decision.into(),
            summary,
        };
        sqlx::query(
            "UPDATE agents.orchestrations SET status = $2, result = $3, finished_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(if all_ran { "completed" } else { "failed" })
        .bind(serde_json::to_value(&result).map_err(|e| AgentError::Corrupt(e.to_string()))?)
        .execute(&self.pool)
        .await?;
        Ok(result)
    }

    /// The shared context of an orchestration.
    pub async fn context(&self, orchestration: Uuid) -> Result<serde_json::Map<String, Value>> {
        let rows: Vec<(String, Value)> = sqlx::query_as(
            "SELECT key, value FROM agents.context WHERE orchestration_id = $1 ORDER BY key",
        )
        .bind(orchestration)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }
}

async fn record_version(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    id: &str,
    version: i32,
    params: &Value,
    reason: &str,
    metrics: Option<&Value>,
    by: Option<Uuid>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO agents.agent_versions (agent_id, version, params, reason, metrics, created_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(version)
    .bind(params)
    .bind(reason)
    .bind(metrics)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
