//! LLM-backed agents: the prompt is built from the input (and, for summaries, from the
//! orchestration's shared context); each agent has a token budget checked before every
//! call against the tokens its tasks already used (from the endpoint's `usage`).

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{Agent, param_u64};
use crate::llm::ChatMessage;
use crate::{AgentError, Context, Output, Result};

pub fn agents() -> Vec<Arc<dyn Agent>> {
    vec![
        Arc::new(LlmAgent {
            kind: "report_draft",
            description: "Drafts a short management report from the figures given (LLM).",
            system: "You write concise financial operations reports for a healthcare payments company. Use only the figures given; amounts are in base units of the named asset.",
            uses_context: false,
        }),
        Arc::new(LlmAgent {
            kind: "dispute_summary",
            description: "Summarises a payment dispute for the reviewer: claims of each side, evidence, open questions (LLM).",
            system: "Summarise the payment dispute for a reviewer: each side's claim, the evidence, and open questions. Be neutral and brief.",
            uses_context: false,
        }),
        Arc::new(LlmAgent {
            kind: "support_reply",
            description: "Drafts a reply to a patient or facility support ticket, using a diagnosis when given (LLM).",
            system: "Draft a polite, specific support reply. Never ask for private keys or seed phrases. If a diagnosis is given, explain the fix in plain words.",
            uses_context: false,
        }),
        Arc::new(LlmAgent {
            kind: "review_summary",
            description: "Summarises an orchestration's step results from the shared context into a recommendation for a human reviewer (LLM).",
            system: "You assist a payments risk reviewer. Given the automated checks' results, write a three-sentence summary and a recommendation (approve, review, block) with the main reason.",
            uses_context: true,
        }),
    ]
}

struct LlmAgent {
    kind: &'static str,
    description: &'static str,
    system: &'static str,
    uses_context: bool,
}

impl Agent for LlmAgent {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn description(&self) -> &'static str {
        self.description
    }

    fn default_params(&self) -> Value {
        json!({"budget_tokens": 200_000, "max_tokens": 512, "micro_usd_per_1k_tokens": 600})
    }

    fn run<'a>(&'a self, ctx: &'a Context, input: Value) -> BoxFuture<'a, Result<Output>> {
        async move {
            if !input.is_object() {
                return Err(AgentError::invalid("input must be a JSON object"));
            }
            let p = ctx.params();
            let budget = param_u64(p, "budget_tokens", 200_000);
            let spent = ctx.tokens_spent().await?;
            if spent >= budget {
                return Err(AgentError::BudgetExhausted {
                    agent: ctx.agent.id.clone(),
                    spent,
                    budget,
                });
            }
            // Never ask for more completion tokens than the budget has left.
            let max_tokens = param_u64(p, "max_tokens", 512).min(budget - spent).max(1);
            let mut user = format!(
                "Input:\n{}",
                serde_json::to_string_pretty(&input).unwrap_or_default()
            );
            if self.uses_context {
                let shared = ctx.all().await?;
                user.push_str(&format!(
                    "\n\nAutomated check results:\n{}",
                    serde_json::to_string_pretty(&shared).unwrap_or_default()
                ));
            }
            let llm = ctx.llm()?;
            let c = llm
                .chat(
                    &[ChatMessage::system(self.system), ChatMessage::user(user)],
                    max_tokens,
                )
                .await?;
            let price = param_u64(p, "micro_usd_per_1k_tokens", 600);
            let cost = (u128::from(c.usage.total_tokens) * u128::from(price)).div_ceil(1000);
            Ok(Output {
                value: json!({
                    "text": c.content, "model": llm.config().model,
                    "usage": c.usage, "attempts": c.attempts,
                    "budget_left": budget.saturating_sub(spent + c.usage.total_tokens),
                }),
                tokens: c.usage.total_tokens,
                cost_micro_usd: u64::try_from(cost).unwrap_or(u64::MAX),
                ..Output::default()
            })
        }
        .boxed()
    }
}
