//! What a running agent may use: its parameters, read-only database access, the
//! orchestration's shared key/value context, and the LLM client.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::llm::LlmClient;
use crate::{AgentError, AgentRecord, Result};

pub struct Context {
    pool: PgPool,
    /// The payments service's database (its typed reads run there).
    payments: PgPool,
    pub agent: AgentRecord,
    pub task_id: Uuid,
    pub orchestration_id: Option<Uuid>,
    llm: Option<LlmClient>,
}

impl Context {
    pub fn new(
        pool: PgPool,
        agent: AgentRecord,
        task_id: Uuid,
        orchestration_id: Option<Uuid>,
        llm: Option<LlmClient>,
    ) -> Self {
        Self {
            payments: pool.clone(),
            pool,
            agent,
            task_id,
            orchestration_id,
            llm,
        }
    }

    pub fn params(&self) -> &Value {
        &self.agent.params
    }

    pub fn llm(&self) -> Result<&LlmClient> {
        self.llm.as_ref().ok_or(AgentError::LlmNotConfigured)
    }

    /// A read-only transaction: agents read our tables, they never write them (their
    /// results go to `agents.tasks` through the worker).
    pub async fn read_only(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// The context with the payments service's reads in `payments` (its own database).
    pub fn with_payments_pool(mut self, payments: PgPool) -> Self {
        self.payments = payments;
        self
    }

    /// A read-only transaction in the payments service's database, for its typed reads.
    pub async fn payments_read_only(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.payments.begin().await?;
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// LLM tokens this agent has used so far (its budget is checked against this).
    pub async fn tokens_spent(&self) -> Result<u64> {
        let spent: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(tokens), 0)::bigint FROM agents.tasks WHERE agent_id = $1",
        )
        .bind(&self.agent.id)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(spent).unwrap_or(0))
    }

    /// A value of the shared context (`None` outside an orchestration or when unset).
    pub async fn get(&self, key: &str) -> Result<Option<Value>> {
        let Some(o) = self.orchestration_id else {
            return Ok(None);
        };
        Ok(sqlx::query_scalar(
            "SELECT value FROM agents.context WHERE orchestration_id = $1 AND key = $2",
        )
        .bind(o)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every key of the shared context.
    pub async fn all(&self) -> Result<serde_json::Map<String, Value>> {
        let Some(o) = self.orchestration_id else {
            return Ok(Default::default());
        };
        let rows: Vec<(String, Value)> = sqlx::query_as(
            "SELECT key, value FROM agents.context WHERE orchestration_id = $1 ORDER BY key",
        )
        .bind(o)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    pub async fn put(&self, key: &str, value: &Value) -> Result<()> {
        if let Some(o) = self.orchestration_id {
            put_context(&self.pool, o, key, value).await?;
        }
        Ok(())
    }
}

pub(crate) async fn put_context(pool: &PgPool, o: Uuid, key: &str, value: &Value) -> Result<()> {
    sqlx::query(
        "INSERT INTO agents.context (orchestration_id, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (orchestration_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
    )
    .bind(o)
    .bind(key)
    .bind(value)
    .execute(pool)
    .await?;
    Ok(())
}
