//! Integration tests against real Postgres (one database per test), real HTTP receivers,
//! a real SMTP server (aiosmtpd) and the reference Standard Webhooks verifier (Python).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod channels;
mod common;
mod outbox;
mod saga;
mod service;
mod staff;
