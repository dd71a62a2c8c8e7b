//! LLM-backed agents against a local server speaking the OpenAI chat-completions protocol.

use std::time::Duration;

use advancia_agents::llm::ChatMessage;
use advancia_agents::{AgentError, Registration, TaskStatus};
use serde_json::json;

use crate::common::{Harness, LlmStub, completion};

#[tokio::test]
async fn rate_limited_then_answered_and_costed() {
    let stub = LlmStub::start(|n, _| {
        if n == 0 {
            (429, 0, json!({"error": {"message": "slow down"}}))
        } else {
            (200, 0, completion("Revenue rose 12% week over week.", 100))
        }
    })
    .await;
    let h = Harness::start(Some(stub.client(Duration::from_secs(5), 2))).await;
    let t = h
        .run(
            "report_draft",
            json!({"title": "Weekly", "facts": {"revenue": 1_120_000, "asset": "USDC"}}),
        )
        .await;
    assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
    let out = t.result.unwrap();
    assert_eq!(out.value["text"], "Revenue rose 12% week over week.");
    assert_eq!(out.value["attempts"], 2);
    assert_eq!(
        (t.tokens, t.cost_micro_usd),
        (100, 60),
        "600 micro-USD per 1k tokens"
    );
    assert_eq!(stub.calls(), 2);
    let req = stub.last_request.lock().unwrap().clone();
    assert_eq!(req["model"], "stub-model");
    assert_eq!(req["messages"][0]["role"], "system");
    assert!(
        req["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("1120000")
    );
    let m = h.svc.metrics().await.unwrap();
    let r = m.iter().find(|m| m.agent_id == "report_draft").unwrap();
    assert_eq!((r.tokens, r.cost_micro_usd), (100, 60));
}

#[tokio::test]
async fn timeouts_are_retried_then_the_task_fails() {
    let stub = LlmStub::start(|_, _| (200, 2_000, completion("late", 10))).await;
    let h = Harness::start(Some(stub.client(Duration::from_millis(200), 1))).await;
    let t = h
        .run(
            "dispute_summary",
            json!({"dispute": "patient says charged twice"}),
        )
        .await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(
        t.error.as_deref().unwrap().contains("no answer within"),
        "{t:?}"
    );
    // 3 worker attempts × (1 call + 1 client retry).
    assert_eq!(t.attempts, 3);
    assert_eq!(stub.calls(), 6);
    assert_eq!(t.tokens, 0);
}

#[tokio::test]
async fn token_budget_is_enforced_from_usage() {
    let stub = LlmStub::start(|_, _| (200, 0, completion("Thanks for reaching out.", 100))).await;
    let h = Harness::start(Some(stub.client(Duration::from_secs(5), 0))).await;
    h.svc
        .register(
            Registration {
                id: "support_reply_capped".into(),
                kind: "support_reply".into(),
                description: None,
                params: Some(json!({"budget_tokens": 150})),
            },
            None,
        )
        .await
        .unwrap();
    let ticket = json!({"ticket": "my payment is stuck", "diagnosis": "blockhash expired"});
    let first = h.run("support_reply_capped", ticket.clone()).await;
    assert_eq!(first.status, TaskStatus::Succeeded);
    let second = h.run("support_reply_capped", ticket.clone()).await;
    assert_eq!(second.status, TaskStatus::Succeeded);
    // Only 50 tokens were left: the request asked for no more.
    assert_eq!(stub.last_request.lock().unwrap()["max_tokens"], 50);
    assert_eq!(second.result.unwrap().value["budget_left"], 0);
    let third = h.run("support_reply_capped", ticket).await;
    assert_eq!(third.status, TaskStatus::Failed);
    assert!(
        third.error.as_deref().unwrap().contains("budget"),
        "{third:?}"
    );
    assert_eq!(third.attempts, 1, "budget exhaustion is not retried");
    assert_eq!(stub.calls(), 2, "no call once the budget is spent");
    // The builtin support_reply has its own budget.
    assert_eq!(
        h.run("support_reply", json!({"ticket": "hi"})).await.status,
        TaskStatus::Succeeded
    );
}

#[tokio::test]
async fn client_errors_are_not_retried_server_errors_are() {
    let stub = LlmStub::start(|_, _| (400, 0, json!({"error": "bad model"}))).await;
    let c = stub.client(Duration::from_secs(2), 3);
    let e = c.chat(&[ChatMessage::user("x")], 10).await.unwrap_err();
    assert!(matches!(e, AgentError::LlmRejected(_)), "{e}");
    assert_eq!(stub.calls(), 1);
    let stub = LlmStub::start(|_, _| (503, 0, json!({}))).await;
    let e = stub
        .client(Duration::from_secs(2), 2)
        .chat(&[ChatMessage::user("x")], 10)
        .await
        .unwrap_err();
    assert!(
        matches!(e, AgentError::LlmUnavailable(_)) && e.is_transient(),
        "{e}"
    );
    assert_eq!(stub.calls(), 3);
}

#[tokio::test]
async fn llm_agents_fail_plainly_without_an_endpoint() {
    let h = Harness::start(None).await;
    let t = h.run("report_draft", json!({"title": "x"})).await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(t.error.unwrap().contains("ADVANCIA_LLM_URL"));
}
