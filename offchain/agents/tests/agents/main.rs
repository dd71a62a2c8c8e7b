//! Agent tests: every algorithm on crafted inputs (`pure`), and the service end to end
//! on real Postgres with tasks routed over the bus to workers (`service`), LLM agents
//! against a local OpenAI-compatible stub server (`llm`).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;
mod llm;
mod pure;
mod service;
