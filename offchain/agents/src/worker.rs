//! Workers: competing consumers of `agents.tasks.>`. The task row, not the message, is
//! the source of truth: a redelivered message for a finished task is acked and dropped,
//! so at-least-once delivery runs each task to one recorded result.

use std::time::{Duration, Instant};
use tracing::Instrument;

use advancia_bus::{Delivery, SubscribeOptions};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::context::{Context, put_context};
use crate::{AgentError, AgentService, Output, Result};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Durable consumer shared by every worker of the deployment.
    pub consumer: String,
    /// Workers (subscriptions) in this process.
    pub concurrency: usize,
    /// Attempts before a task with transient errors is marked failed.
    pub max_attempts: i32,
    /// First retry delay; doubles per attempt.
    pub backoff_base: Duration,
    /// Must exceed the longest agent run (LLM calls with retries).
    pub ack_wait: Duration,
    /// Default run timeout; an agent's `timeout_ms` parameter overrides it.
    pub run_timeout: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            consumer: "agent-workers".into(),
            concurrency: 2,
            max_attempts: 3,
            backoff_base: Duration::from_millis(500),
            ack_wait: Duration::from_secs(180),
            run_timeout: Duration::from_secs(120),
        }
    }
}

#[derive(Deserialize)]
struct TaskMessage {
    task_id: Uuid,
}

/// Starts `config.concurrency` workers; they run until the handles are aborted or the
/// bus closes.
pub async fn spawn_workers(
    svc: &AgentService,
    config: WorkerConfig,
) -> Result<Vec<JoinHandle<()>>> {
    let mut handles = Vec::new();
    for n in 0..config.concurrency.max(1) {
        let mut sub = svc
            .bus
            .subscribe(
                SubscribeOptions::new(
                    format!("{}.tasks.>", svc.subject_prefix),
                    config.consumer.clone(),
                )
                .ack_wait(config.ack_wait)
                .batch(1),
            )
            .await?;
        let svc = svc.clone();
        let config = config.clone();
        handles.push(tokio::spawn(async move {
            while let Some(d) = sub.next().await {
                match d {
                    Ok(d) => handle(&svc, &config, d).await,
                    Err(e) => {
                        tracing::warn!(worker = n, error = %e, "agent bus error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }));
    }
    Ok(handles)
}

async fn handle(svc: &AgentService, config: &WorkerConfig, d: Delivery) {
    let Ok(msg) = d.envelope.decode::<TaskMessage>() else {
        tracing::warn!(subject = %d.envelope.subject, "undecodable agent task message dropped");
        let _ = d.ack().await;
        return;
    };
    // The task's span joins the trace of whoever queued it (the envelope's `traceparent`).
    let span = tracing::info_span!(
        "agent_task",
        task_id = %msg.task_id,
        subject = %d.envelope.subject,
        traceparent = tracing::field::Empty
    );
    if let Some(tp) = advancia_telemetry::trace::extract_map(&d.envelope.headers) {
        span.record("traceparent", tp.to_string().as_str());
    }
    match process(svc, config, msg.task_id).instrument(span).await {
        Ok(Settle::Ack) => {
            let _ = d.ack().await;
        }
        Ok(Settle::Retry(after)) => {
            let _ = d.nak(after).await;
        }
        Err(e) => {
            // Database trouble while recording: leave it to redelivery.
            tracing::warn!(task = %msg.task_id, error = %e, "agent task not recorded; will be redelivered");
            let _ = d.nak(config.backoff_base).await;
        }
    }
}

enum Settle {
    Ack,
    Retry(Duration),
}

async fn process(svc: &AgentService, config: &WorkerConfig, task_id: Uuid) -> Result<Settle> {
    let claimed: Option<(String, Value, Option<Uuid>, i32)> = sqlx::query_as(
        "UPDATE agents.tasks SET status = 'running', attempts = attempts + 1, started_at = now()
         WHERE id = $1 AND status IN ('queued', 'running')
         RETURNING agent_id, input, orchestration_id, attempts",
    )
    .bind(task_id)
    .fetch_optional(&svc.pool)
    .await?;
    let Some((agent_id, input, orchestration, attempts)) = claimed else {
        return Ok(Settle::Ack); // finished already (a redelivery) or unknown
    };
    let agent = svc.get(&agent_id).await?;
    let started = Instant::now();
    let outcome = if !agent.enabled {
        Err(AgentError::Disabled(agent.id.clone()))
    } else if let Some(kind) = svc.catalog.get(&agent.kind).cloned() {
        let timeout = agent
            .params
            .get("timeout_ms")
            .and_then(Value::as_u64)
            .map_or(config.run_timeout, Duration::from_millis);
        let ctx = Context::new(
            svc.pool.clone(),
            agent.clone(),
            task_id,
            orchestration,
            svc.llm.clone(),
        )
        .with_payments_pool(svc.payments.clone());
        match tokio::time::timeout(timeout, kind.run(&ctx, input)).await {
            Ok(r) => r,
            Err(_) => Err(AgentError::Timeout(
                u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            )),
        }
    } else {
        Err(AgentError::Corrupt(format!("unknown kind {}", agent.kind)))
    };
    let latency_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
    match outcome {
        Ok(out) => {
            // Context first: whoever sees the task finished also sees its context entry.
            if let Some(o) = orchestration {
                put_context(&svc.pool, o, &agent.id, &json!(out)).await?;
            }
            finish(svc, task_id, Some(&out), None, latency_us).await?;
            Ok(Settle::Ack)
        }
        Err(e) if e.is_transient() && attempts < config.max_attempts => {
            sqlx::query("UPDATE agents.tasks SET status = 'queued', error = $2, latency_us = $3 WHERE id = $1")
                .bind(task_id)
                .bind(e.to_string())
                .bind(latency_us)
                .execute(&svc.pool)
                .await?;
            let exp = u32::try_from(attempts.max(1) - 1).unwrap_or(0).min(8);
            Ok(Settle::Retry(config.backoff_base * 2u32.pow(exp)))
        }
        Err(e) => {
            finish(svc, task_id, None, Some(e.to_string()), latency_us).await?;
            Ok(Settle::Ack)
        }
    }
}

async fn finish(
    svc: &AgentService,
    task_id: Uuid,
    out: Option<&Output>,
    error: Option<String>,
    latency_us: i64,
) -> Result<()> {
    let (tokens, cost) = out.map_or((0, 0), |o| (o.tokens, o.cost_micro_usd));
    sqlx::query(
        "UPDATE agents.tasks SET status = $2, result = $3, error = $4, latency_us = $5,
                tokens = $6, cost_micro_usd = $7, finished_at = now()
         WHERE id = $1",
    )
    .bind(task_id)
    .bind(if out.is_some() { "succeeded" } else { "failed" })
    .bind(out.map(|o| json!(o)))
    .bind(error)
    .bind(latency_us)
    .bind(i64::try_from(tokens).unwrap_or(i64::MAX))
    .bind(i64::try_from(cost).unwrap_or(i64::MAX))
    .execute(&svc.pool)
    .await?;
    Ok(())
}

/// Re-publishes tasks that were queued but never claimed for longer than `older_than`:
/// the process died between inserting the task and publishing it, or the in-process bus
/// was lost in a restart. The task id is the envelope id, so a message that did make it
/// is dropped as a duplicate within the dedup window, and a claimed task is never swept.
pub async fn requeue_stale(svc: &AgentService, older_than: Duration) -> Result<u64> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT t.id, a.kind FROM agents.tasks t JOIN agents.agents a ON a.id = t.agent_id
         WHERE t.status = 'queued' AND t.started_at IS NULL
           AND t.created_at < now() - make_interval(secs => $1)
         ORDER BY t.created_at LIMIT 1000",
    )
    .bind(older_than.as_secs_f64())
    .fetch_all(&svc.pool)
    .await?;
    let mut n = 0;
    for (id, kind) in rows {
        let env = advancia_bus::Envelope::json(
            crate::task_subject(&svc.subject_prefix, &kind),
            &json!({"task_id": id}),
        )?
        .with_id(id.to_string());
        svc.bus.publish(env).await?;
        n += 1;
    }
    if n > 0 {
        tracing::info!(tasks = n, "re-published stale queued agent tasks");
    }
    Ok(n)
}

/// Runs [`requeue_stale`] every `every` (tasks unclaimed for 4 × `every`).
pub fn spawn_requeue(svc: &AgentService, every: Duration) -> JoinHandle<()> {
    let svc = svc.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = requeue_stale(&svc, every * 4).await {
                tracing::warn!(error = %e, "requeue of stale agent tasks failed");
            }
        }
    })
}
