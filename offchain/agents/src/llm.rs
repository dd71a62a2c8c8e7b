//! An OpenAI-compatible chat client (`POST <base>/v1/chat/completions`) with a
//! per-request timeout, retries with exponential backoff on 429/5xx/transport errors
//! (honouring `Retry-After` in seconds), and the `usage` of each answer reported so
//! callers can enforce token budgets.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{AgentError, Result};

#[derive(Clone)]
pub struct LlmConfig {
    /// e.g. `http://127.0.0.1:8000` (the `/v1/chat/completions` path is appended).
    pub base_url: String,
    pub model: String,
    /// Sent as a bearer token; never logged.
    pub api_key: Option<String>,
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub backoff_base: Duration,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl LlmConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(30),
            max_retries: 3,
            backoff_base: Duration::from_millis(500),
        }
    }

    /// `ADVANCIA_LLM_URL` (unset: no LLM), `ADVANCIA_LLM_MODEL`, `ADVANCIA_LLM_API_KEY`,
    /// `ADVANCIA_LLM_TIMEOUT_SECS`.
    pub fn from_env() -> std::result::Result<Option<Self>, String> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] over any variable source (configuration file plus environment).
    pub fn from_vars(
        get: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Option<Self>, String> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let Some(url) = var("ADVANCIA_LLM_URL") else {
            return Ok(None);
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            // The URL may carry a key: describe it, do not echo it.
            return Err(
                "ADVANCIA_LLM_URL: not an http(s) URL (expected e.g. http://127.0.0.1:8000)".into(),
            );
        }
        let mut c = Self::new(
            url,
            var("ADVANCIA_LLM_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
        );
        c.api_key = var("ADVANCIA_LLM_API_KEY");
        if let Some(v) = var("ADVANCIA_LLM_TIMEOUT_SECS") {
            let s: u64 = v
                .trim()
                .parse()
                .map_err(|_| format!("ADVANCIA_LLM_TIMEOUT_SECS: `{v}` is not a whole number"))?;
            c.timeout = Duration::from_secs(s.max(1));
        }
        Ok(Some(c))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn system(c: impl Into<String>) -> Self {
        Self {
            role: "system".into(),
            content: c.into(),
        }
    }

    pub fn user(c: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: c.into(),
        }
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    max_tokens: u64,
    temperature: f64,
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChatMessage,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub content: String,
    pub usage: Usage,
    /// Attempts it took (1 = no retry).
    pub attempts: u32,
}

#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    config: LlmConfig,
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| AgentError::invalid(format!("LLM client: {e}")))?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// One chat completion, retried on 429, 5xx, timeouts and connection errors.
    pub async fn chat(&self, messages: &[ChatMessage], max_tokens: u64) -> Result<Completion> {
        let url = format!(
            "{}/v1/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let body = ChatRequest {
            model: &self.config.model,
            messages,
            max_tokens,
            temperature: 0.2,
        };
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self.http.post(&url).json(&body);
            if let Some(k) = &self.config.api_key {
                req = req.bearer_auth(k);
            }
            let (retryable, why, retry_after) = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let parsed: ChatResponse = resp.json().await.map_err(|e| {
                        AgentError::LlmRejected(format!("unreadable completion: {e}"))
                    })?;
                    let content = parsed
                        .choices
                        .into_iter()
                        .next()
                        .map(|c| c.message.content)
                        .ok_or_else(|| AgentError::LlmRejected("no choices".into()))?;
                    let mut usage = parsed.usage.unwrap_or_default();
                    if usage.total_tokens == 0 {
                        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
                    }
                    return Ok(Completion {
                        content,
                        usage,
                        attempts: attempt,
                    });
                }
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let retryable = status.as_u16() == 429 || status.is_server_error();
                    (retryable, format!("HTTP {status}"), retry_after)
                }
                Err(e) if e.is_timeout() => (
                    true,
                    format!("no answer within {:?}", self.config.timeout),
                    None,
                ),
                Err(e) => (true, format!("request failed: {e}"), None),
            };
            if !retryable {
                return Err(AgentError::LlmRejected(why));
            }
            if attempt > self.config.max_retries {
                return Err(AgentError::LlmUnavailable(format!(
                    "{why} (after {attempt} attempts)"
                )));
            }
            let backoff = self.config.backoff_base * 2u32.saturating_pow(attempt - 1);
            let wait = retry_after.unwrap_or(backoff).min(Duration::from_secs(30));
            tracing::warn!(attempt, reason = %why, ?wait, "LLM call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}
