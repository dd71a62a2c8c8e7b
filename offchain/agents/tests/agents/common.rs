use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use advancia_agents::llm::{LlmClient, LlmConfig};
use advancia_agents::worker::{WorkerConfig, spawn_workers};
use advancia_agents::{AgentService, Catalog, Output, Task, TaskStatus};
use advancia_bus::Bus;
use advancia_bus::memory::InProcessBus;
use advancia_test_support::TestDb;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// A pure agent's output for `input` under its default parameters.
pub fn eval(kind: &str, input: Value) -> Output {
    try_eval(kind, input).unwrap()
}

pub fn try_eval(kind: &str, input: Value) -> advancia_agents::Result<Output> {
    let cat = Catalog::builtin();
    let a = cat.get(kind).unwrap_or_else(|| panic!("no kind {kind}"));
    a.eval(&a.default_params(), &input)
        .expect("synchronous agent")
}

/// A database with the payments and agents schemas, a bus, the service and workers.
pub struct Harness {
    pub db: TestDb,
    pub svc: AgentService,
    pub workers: Vec<JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for w in &self.workers {
            w.abort();
        }
    }
}

pub fn fast_workers() -> WorkerConfig {
    WorkerConfig {
        concurrency: 2,
        backoff_base: Duration::from_millis(20),
        ack_wait: Duration::from_secs(10),
        ..WorkerConfig::default()
    }
}

impl Harness {
    pub async fn start(llm: Option<LlmClient>) -> Harness {
        Self::with_bus(Arc::new(InProcessBus::default()), llm, "agents").await
    }

    pub async fn with_bus(bus: Bus, llm: Option<LlmClient>, prefix: &str) -> Harness {
        let db = TestDb::new(&[&advancia_payments::MIGRATIONS, &advancia_agents::MIGRATIONS]).await;
        let svc = AgentService::new(db.pool.clone(), bus, llm).with_subject_prefix(prefix);
        let workers = spawn_workers(&svc, fast_workers()).await.unwrap();
        Harness { db, svc, workers }
    }

    /// Executes over the bus and waits for the worker's result.
    pub async fn run(&self, agent: &str, input: Value) -> Task {
        let t = self
            .svc
            .execute(agent, input, None, None, &Default::default())
            .await
            .unwrap();
        let t = self.svc.wait(t.id, Duration::from_secs(20)).await.unwrap();
        assert!(t.status.is_final(), "task did not finish: {t:?}");
        t
    }

    pub async fn output(&self, agent: &str, input: Value) -> Output {
        let t = self.run(agent, input).await;
        assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
        t.result.unwrap()
    }
}

/// An OpenAI-compatible chat endpoint: `respond(call number from 0, request)`.
pub struct LlmStub {
    pub url: String,
    pub calls: Arc<AtomicUsize>,
    pub last_request: Arc<std::sync::Mutex<Value>>,
}

type Respond = fn(usize, &Value) -> (u16, u64, Value);

#[derive(Clone)]
struct StubState {
    calls: Arc<AtomicUsize>,
    last: Arc<std::sync::Mutex<Value>>,
    respond: Respond,
}

async fn completions(State(st): State<StubState>, Json(req): Json<Value>) -> Response {
    let n = st.calls.fetch_add(1, Ordering::SeqCst);
    *st.last.lock().unwrap() = req.clone();
    let (status, delay_ms, body) = (st.respond)(n, &req);
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let status = StatusCode::from_u16(status).unwrap();
    let mut resp = (status, Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert("retry-after", "0".parse().unwrap());
    }
    resp
}

/// A successful completion using `tokens` tokens.
pub fn completion(text: &str, tokens: u64) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "model": "stub",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": tokens - tokens / 4, "completion_tokens": tokens / 4, "total_tokens": tokens}
    })
}

impl LlmStub {
    pub async fn start(respond: Respond) -> LlmStub {
        let calls = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(std::sync::Mutex::new(Value::Null));
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(completions))
            .with_state(StubState {
                calls: calls.clone(),
                last: last.clone(),
                respond,
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        LlmStub {
            url,
            calls,
            last_request: last,
        }
    }

    pub fn client(&self, timeout: Duration, retries: u32) -> LlmClient {
        let mut c = LlmConfig::new(&self.url, "stub-model");
        c.timeout = timeout;
        c.max_retries = retries;
        c.backoff_base = Duration::from_millis(10);
        c.api_key = Some("sk-test".into());
        LlmClient::new(c).unwrap()
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}
