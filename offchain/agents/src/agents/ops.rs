//! Operations: reconciliation triage, payment-failure diagnosis, settlement batch
//! sizing, fee routing, staff scheduling, free slots, cash-flow gaps, invoice matching,
//! ledger balance checks, refund eligibility, revenue forecasting.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use advancia_ledger::ReconciliationReport;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Agent, Pure, no_params, param_u64, parse};
use crate::{AgentError, Context, Output, Result};

pub fn agents() -> Vec<Arc<dyn Agent>> {
    vec![
        Arc::new(Pure {
            kind: "reconciliation_triage",
            description: "Classifies a ledger-vs-chain reconciliation report (missing, extra, mismatched transfers, account differences) into causes, severities and next actions.",
            defaults: || json!({"large_amount": 1_000_000_000u64}),
            f: reconciliation_triage,
        }),
        Arc::new(Pure {
            kind: "payment_failure_diagnosis",
            description: "Maps advancia_pay program error codes (from the program's source), Anchor framework codes and Solana RPC errors in an error message or logs to a cause and a fix.",
            defaults: no_params,
            f: diagnose,
        }),
        Arc::new(Pure {
            kind: "settlement_batch_sizing",
            description: "Economic settlement batch size (square-root rule: fixed on-chain cost per batch against the cost of waiting) and whether to flush the pending batch now.",
            defaults: || json!({"max_batch": 4096, "min_batch": 1}),
            f: batch_sizing,
        }),
        Arc::new(Pure {
            kind: "fee_optimizer",
            description: "Cheapest settlement route for an amount among fee schedules (fixed + basis points, min/max), within a settlement-time limit; integer base units.",
            defaults: no_params,
            f: fee_optimizer,
        }),
        Arc::new(Pure {
            kind: "schedule_optimizer",
            description: "Assigns appointments to qualified staff without overlaps (greedy interval partitioning by start time, best-fit staff), reporting unassignable ones and the peak concurrency.",
            defaults: no_params,
            f: schedule,
        }),
        Arc::new(Pure {
            kind: "free_slots",
            description: "Bookable slots of a given length inside working hours, around existing bookings (merged intervals).",
            defaults: no_params,
            f: free_slots,
        }),
        Arc::new(Pure {
            kind: "cash_flow_gap",
            description: "Running balance over dated inflows and outflows: lowest point, first day below zero and funding needed.",
            defaults: no_params,
            f: cash_flow,
        }),
        Arc::new(Pure {
            kind: "invoice_matching",
            description: "Matches payments to open invoices: by reference, then unique exact amount, then a payment covering up to three invoices exactly.",
            defaults: no_params,
            f: invoice_matching,
        }),
        Arc::new(Pure {
            kind: "ledger_balance_check",
            description: "Double-entry check of journal lines: debits equal credits per transaction and per asset.",
            defaults: no_params,
            f: balance_check,
        }),
        Arc::new(Pure {
            kind: "refund_eligibility",
            description: "Whether a refund request is allowed (status, remaining refundable amount, refund window, escrow expiry) and the most that can be refunded.",
            defaults: || json!({"window_days": 90}),
            f: refund_eligibility,
        }),
        Arc::new(RevenueForecast),
    ]
}

// ---------- reconciliation triage ----------

fn reconciliation_triage(p: &Value, input: &Value) -> Result<Output> {
    let r: ReconciliationReport = parse(input)?;
    let large = u128::from(param_u64(p, "large_amount", 1_000_000_000));
    let mut items = Vec::new();
    for m in &r.missing {
        items.push(json!({
            "kind": "missing_in_ledger", "reference": m.external_ref,
            "amount": m.amount.to_string(),
            "severity": if m.amount >= large { "high" } else { "medium" },
            "cause": "on-chain movement without a ledger transfer: the ledger feed is behind or its posting failed",
            "action": "re-run the ledger feed from the indexer cursor for this signature; post an adjustment only if the event is finalized and the feed cannot post it",
        }));
    }
    for e in &r.extra {
        items.push(json!({
            "kind": "missing_on_chain", "reference": e.external_ref,
            "amount": e.amount.to_string(), "severity": "high",
            "cause": "ledger transfer whose chain event is not indexed: a rolled-back (forked) slot, an unfinalized event, or a posting made without a chain event",
            "action": "check the signature's finality in the indexer; if rolled back, reverse the transfer with a linked correcting entry",
        }));
    }
    for m in &r.mismatched {
        for f in &m.fields {
            let (cause, action) = field_cause(&f.field, &f.ledger, &f.chain);
            items.push(json!({
                "kind": "field_mismatch", "reference": m.external_ref,
                "transfer_id": m.transfer_id.to_string(), "field": f.field,
                "ledger": f.ledger, "chain": f.chain, "severity": "high",
                "cause": cause, "action": action,
            }));
        }
    }
    // Account differences explained by the transfer-level findings above are not new work.
    let mut explained: HashMap<u128, i128> = HashMap::new();
    for m in &r.missing {
        *explained.entry(m.account).or_default() += i128::try_from(m.amount).unwrap_or(i128::MAX);
    }
    for a in &r.accounts {
        let by_items = explained.get(&a.account).copied().unwrap_or(0);
        let unexplained = a.difference != by_items;
        items.push(json!({
            "kind": "account_difference", "account": a.account.to_string(), "asset": a.ledger,
            "difference": a.difference.to_string(),
            "severity": if unexplained { "high" } else { "low" },
            "cause": if unexplained { "balance difference not explained by the transfers listed: off-chain entries (fees, adjustments) posted to an on-chain account, or facts outside the scope" } else { "explained by the missing transfers above" },
            "action": if unexplained { "list the account's in-scope postings without an external reference and compare with the chain account's history" } else { "resolve the missing transfers" },
        }));
    }
    let rank = |s: &Value| match s["severity"].as_str() {
        Some("high") => 0,
        Some("medium") => 1,
        _ => 2,
    };
    items.sort_by_key(rank);
    let high = items.iter().filter(|i| rank(i) == 0).count();
    Ok(Output::new(json!({
        "clean": r.is_clean(), "matched": r.matched, "items": items, "high": high,
    }))
    .score(if r.is_clean() {
        0.0
    } else {
        0.5 + (high as f64 / 10.0).min(0.5)
    })
    .pass(r.is_clean()))
}

fn field_cause(field: &str, ledger: &str, chain: &str) -> (String, String) {
    if field == "amount"
        && let (Ok(l), Ok(c)) = (ledger.parse::<u128>(), chain.parse::<u128>())
        && l > 0
        && c > 0
    {
        let (big, small) = (l.max(c), l.min(c));
        if big % small == 0 {
            let ratio = big / small;
            let mut k = 0;
            let mut r = ratio;
            while r % 10 == 0 {
                r /= 10;
                k += 1;
            }
            if r == 1 && k > 0 {
                return (
                    format!("amounts differ by 10^{k}: a decimals/scaling error in the asset mapping"),
                    "fix the asset's decimals in the ledger asset definition and re-post with a correcting entry".into(),
                );
            }
        }
        return (
            "amount differs: fee or partial-transfer handling differs between chain and ledger".into(),
            "compare the instruction's fee split with the ledger legs; post the difference as an adjustment if the chain is right".into(),
        );
    }
    match field {
        "ledger" | "asset" => (
            "different asset: the mint-to-ledger mapping is wrong".into(),
            "correct the asset mapping and reverse/re-post the transfer".into(),
        ),
        _ => (
            format!("{field} differs between ledger and chain"),
            format!("re-derive `{field}` from the indexed event and correct the ledger transfer"),
        ),
    }
}

// ---------- payment failure diagnosis ----------

/// `(code, name, message)` of the program's errors, read from its source so new codes
/// are picked up without editing this table (Anchor numbers them from 6000 in order).
fn program_errors() -> &'static [(u32, String, String)] {
    static ERRORS: OnceLock<Vec<(u32, String, String)>> = OnceLock::new();
    ERRORS.get_or_init(|| {
        let src = include_str!("../../../../programs/advancia-pay/src/error.rs");
        let mut out = Vec::new();
        let mut msg: Option<String> = None;
        for line in src.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("#[msg(\"") {
                msg = rest.strip_suffix("\")]").map(str::to_owned);
            } else if let Some(name) = line.strip_suffix(',')
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric())
            {
                let code = 6000 + u32::try_from(out.len()).unwrap_or(0);
                out.push((code, name.to_owned(), msg.take().unwrap_or_default()));
            }
        }
        out
    })
}

const ANCHOR_CODES: &[(u32, &str, &str, &str)] = &[
    (
        2000,
        "ConstraintMut",
        "an account that must be writable was passed read-only",
        "mark the account writable in the transaction",
    ),
    (
        2001,
        "ConstraintHasOne",
        "an account does not belong to the expected parent",
        "pass the account linked from the payment/facility account",
    ),
    (
        2002,
        "ConstraintSigner",
        "a required signer did not sign",
        "have the wallet sign the transaction",
    ),
    (
        2003,
        "ConstraintRaw",
        "an account constraint failed",
        "check the account inputs against the program's constraints",
    ),
    (
        2006,
        "ConstraintSeeds",
        "a PDA does not match its seeds",
        "derive the PDA with the program id and the documented seeds",
    ),
    (
        3001,
        "AccountDiscriminatorNotFound",
        "an account has no data",
        "the account does not exist yet: create it first",
    ),
    (
        3002,
        "AccountDiscriminatorMismatch",
        "an account of another type was passed",
        "pass the account of the expected type",
    ),
    (
        3007,
        "AccountOwnedByWrongProgram",
        "an account is owned by another program",
        "pass the account owned by advancia_pay (or the token program)",
    ),
    (
        3012,
        "AccountNotInitialized",
        "a required account is not initialized",
        "initialize the account (e.g. the facility or config) before this instruction",
    ),
];

fn program_fix(name: &str) -> (&'static str, &'static str) {
    match name {
        "Unauthorized" | "NotPendingAdmin" | "EarlyRefund" => (
            "authorization",
            "sign with the account the instruction requires (admin, facility authority or arbiter)",
        ),
        "Paused" | "BridgePaused" => (
            "operations",
            "the operator paused the program; retry after it is unpaused",
        ),
        "AssetDisabled" => (
            "configuration",
            "pay with an enabled asset, or have the operator enable this mint",
        ),
        "FacilityInactive" => (
            "configuration",
            "the facility is deactivated; it must be reactivated before accepting payments",
        ),
        "KycRequired" | "AttestationRevoked" | "AttestationExpired" => (
            "compliance",
            "the payer needs a current KYC attestation for this amount (or pays below the threshold)",
        ),
        "InvalidAmount" | "MathOverflow" | "AmountTooLarge" | "InexactConversion" => (
            "input",
            "send a positive amount in base units that fits the asset",
        ),
        "RefundExceedsPayment" | "ReleaseExceedsEscrow" => (
            "input",
            "refund or release at most the remaining amount (paid minus refunded/released)",
        ),
        "EscrowSettled" | "EscrowNotSettled" | "EscrowExpired" => (
            "state",
            "re-read the escrow: it is settled or expired; an expired escrow can only be refunded",
        ),
        "BatchOutOfSequence" => (
            "state",
            "read the next batch number from the config account and resubmit",
        ),
        "WrongMint" | "MissingTokenAccounts" | "NotAssociatedTokenAccount" => (
            "input",
            "pass the token accounts (ATAs) of the payment's mint and the token program",
        ),
        "MessageAlreadyProcessed" => (
            "state",
            "already delivered: nothing to do (the relayer may mark it done)",
        ),
        "BelowThreshold"
        | "InvalidSignature"
        | "SignatureHighS"
        | "SignersNotAscending"
        | "NotAValidator"
        | "WrongSetVersion" => (
            "bridge",
            "collect enough valid validator signatures of the current set, sorted by signer",
        ),
        _ => (
            "input",
            "check the instruction's inputs against the message",
        ),
    }
}

const RPC_PATTERNS: &[(&str, &str, &str, &str)] = &[
    (
        "blockhash not found",
        "rpc",
        "the transaction's blockhash expired before it landed",
        "fetch a fresh transaction request (new blockhash) and sign again",
    ),
    (
        "block height exceeded",
        "rpc",
        "the transaction's blockhash expired before it landed",
        "fetch a fresh transaction request (new blockhash) and sign again",
    ),
    (
        "insufficient funds for fee",
        "funds",
        "the fee payer has too little SOL for the fee",
        "fund the paying wallet with SOL",
    ),
    (
        "no record of a prior credit",
        "funds",
        "the paying wallet has never been funded",
        "fund the paying wallet with SOL",
    ),
    (
        "insufficient lamports",
        "funds",
        "the payer has less SOL than the payment plus fees",
        "top up the wallet or pay a smaller amount",
    ),
    (
        "custom program error: 0x1",
        "funds",
        "the token program reports insufficient funds",
        "top up the token account",
    ),
    (
        "exceeded cus meter",
        "compute",
        "the transaction ran out of compute units",
        "add a ComputeBudget instruction raising the unit limit",
    ),
    (
        "computational budget exceeded",
        "compute",
        "the transaction ran out of compute units",
        "add a ComputeBudget instruction raising the unit limit",
    ),
    (
        "signature verification failed",
        "signing",
        "a signature is missing or does not match",
        "sign the exact message returned by the API with every required signer",
    ),
    (
        "transaction too large",
        "size",
        "the serialized transaction exceeds 1232 bytes",
        "use fewer accounts or an address lookup table",
    ),
    (
        "already in use",
        "state",
        "an account to create already exists",
        "the operation was already done; re-read its state",
    ),
    (
        "node is behind",
        "rpc",
        "the RPC node lags the cluster",
        "retry later or against another node",
    ),
    (
        "429",
        "rpc",
        "the RPC node rate-limited the request",
        "retry with backoff",
    ),
];

#[derive(Deserialize)]
struct DiagInput {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    logs: Vec<String>,
}

fn parse_code(text: &str) -> Option<u32> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = lower.find("custom program error: 0x") {
        let hex: String = lower[i + 24..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        return u32::from_str_radix(&hex, 16).ok();
    }
    if let Some(i) = lower.find("error number: ") {
        let dec: String = lower[i + 14..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        return dec.parse().ok();
    }
    if let Some(i) = lower.find("\"custom\":") {
        let dec: String = lower[i + 9..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        return dec.parse().ok();
    }
    None
}

fn diagnose(_: &Value, input: &Value) -> Result<Output> {
    let i: DiagInput = parse(input)?;
    let mut text = i.error.unwrap_or_default();
    for l in &i.logs {
        text.push('\n');
        text.push_str(l);
    }
    if text.trim().is_empty() {
        return Err(AgentError::invalid("give `error` or `logs`"));
    }
    let lower = text.to_ascii_lowercase();
    let mut found = Vec::new();
    if let Some(code) = parse_code(&text) {
        if let Some((c, name, msg)) = program_errors().iter().find(|(c, _, _)| *c == code) {
            let (category, fix) = program_fix(name);
            found.push(json!({"source": "advancia_pay", "code": c, "name": name,
                "cause": msg, "category": category, "fix": fix}));
        } else if let Some((c, name, cause, fix)) = ANCHOR_CODES.iter().find(|a| a.0 == code) {
            found.push(json!({"source": "anchor", "code": c, "name": name,
                "cause": cause, "category": "accounts", "fix": fix}));
        }
    }
    // Anchor also logs the variant name: `Error Code: KycRequired.`
    if found.is_empty()
        && let Some(i) = text.find("Error Code: ")
    {
        let name: String = text[i + 12..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        if let Some((c, n, msg)) = program_errors().iter().find(|(_, n, _)| *n == name) {
            let (category, fix) = program_fix(n);
            found.push(json!({"source": "advancia_pay", "code": c, "name": n,
                "cause": msg, "category": category, "fix": fix}));
        }
    }
    if found.is_empty() {
        for (pat, category, cause, fix) in RPC_PATTERNS {
            if lower.contains(pat) {
                found.push(
                    json!({"source": "rpc", "pattern": pat, "category": category,
                    "cause": cause, "fix": fix}),
                );
                break;
            }
        }
    }
    let known = !found.is_empty();
    Ok(Output::new(json!({
        "diagnosed": known,
        "findings": found,
        "retryable": known && found.iter().any(|f| matches!(f["category"].as_str(), Some("rpc" | "operations"))),
    }))
    .pass(known))
}

// ---------- settlement batch sizing ----------

#[derive(Deserialize)]
struct BatchInput {
    /// Items (ledger transfers) arriving per hour.
    arrival_per_hour: f64,
    /// Fixed cost of committing one batch on chain, micro-USD.
    batch_cost_micro_usd: u64,
    /// Cost of an item waiting one hour for settlement, micro-USD.
    holding_cost_micro_usd_per_hour: u64,
    #[serde(default)]
    pending_items: u64,
    #[serde(default)]
    oldest_pending_secs: u64,
    #[serde(default)]
    max_wait_secs: Option<u64>,
}

fn batch_sizing(p: &Value, input: &Value) -> Result<Output> {
    let i: BatchInput = parse(input)?;
    if !(i.arrival_per_hour.is_finite() && i.arrival_per_hour > 0.0) {
        return Err(AgentError::invalid("arrival_per_hour must be positive"));
    }
    let h = i.holding_cost_micro_usd_per_hour.max(1) as f64;
    let k = i.batch_cost_micro_usd as f64;
    let lambda = i.arrival_per_hour;
    let max_b = param_u64(p, "max_batch", 4096).max(1);
    let min_b = param_u64(p, "min_batch", 1).clamp(1, max_b);
    // Minimises K·λ/q + h·q/2 (batch cost per hour + waiting cost per hour).
    let q_star = (2.0 * lambda * k / h).sqrt();
    let q = (q_star.round() as u64).clamp(min_b, max_b);
    let qf = q as f64;
    let cost_per_hour = k * lambda / qf + h * qf / 2.0;
    let interval_secs = (qf / lambda * 3600.0).round() as u64;
    let max_wait = i.max_wait_secs.unwrap_or(interval_secs.max(1) * 2);
    let flush = i.pending_items >= q || (i.pending_items > 0 && i.oldest_pending_secs >= max_wait);
    Ok(Output::new(json!({
        "batch_size": q, "unclamped": q_star, "interval_secs": interval_secs,
        "cost_micro_usd_per_hour": cost_per_hour.round() as u64,
        "flush_now": flush,
        "reason": if i.pending_items >= q { "pending items reached the batch size" }
                  else if flush { "oldest pending item waited past the limit" }
                  else { "keep collecting" },
    })))
}

// ---------- fee optimizer ----------

#[derive(Deserialize)]
struct Route {
    name: String,
    #[serde(default)]
    fixed_fee: u64,
    #[serde(default)]
    bps: u32,
    #[serde(default)]
    min_fee: Option<u64>,
    #[serde(default)]
    max_fee: Option<u64>,
    #[serde(default)]
    settlement_secs: Option<u64>,
}

#[derive(Deserialize)]
struct FeeInput {
    amount: u64,
    routes: Vec<Route>,
    #[serde(default)]
    max_settlement_secs: Option<u64>,
}

/// Fee in base units: fixed + ⌈amount·bps/10 000⌉, clamped to [min, max].
fn route_fee(amount: u64, r: &Route) -> u128 {
    let pct = (u128::from(amount) * u128::from(r.bps)).div_ceil(10_000);
    let mut fee = u128::from(r.fixed_fee) + pct;
    if let Some(min) = r.min_fee {
        fee = fee.max(u128::from(min));
    }
    if let Some(max) = r.max_fee {
        fee = fee.min(u128::from(max));
    }
    fee
}

fn fee_optimizer(_: &Value, input: &Value) -> Result<Output> {
    let i: FeeInput = parse(input)?;
    if i.routes.is_empty() {
        return Err(AgentError::invalid("no routes"));
    }
    let mut ranked: Vec<(u128, u64, &Route, bool)> = i
        .routes
        .iter()
        .map(|r| {
            let secs = r.settlement_secs.unwrap_or(0);
            let ok = i.max_settlement_secs.is_none_or(|m| secs <= m);
            (route_fee(i.amount, r), secs, r, ok)
        })
        .collect();
    ranked.sort_by_key(|(fee, secs, r, ok)| (!ok, *fee, *secs, r.name.clone()));
    let best = ranked.iter().find(|r| r.3);
    let list: Vec<Value> = ranked
        .iter()
        .map(|(fee, secs, r, ok)| {
            json!({"route": r.name, "fee": fee.to_string(), "settlement_secs": secs, "eligible": ok})
        })
        .collect();
    let saving = match (best, ranked.iter().filter(|r| r.3).map(|r| r.0).max()) {
        (Some(b), Some(worst)) => worst - b.0,
        _ => 0,
    };
    Ok(Output::new(json!({
        "best": best.map(|b| b.2.name.clone()),
        "fee": best.map(|b| b.0.to_string()),
        "saving_vs_worst": saving.to_string(),
        "routes": list,
    }))
    .pass(best.is_some()))
}

// ---------- scheduling ----------

#[derive(Deserialize)]
struct Appt {
    id: String,
    start: i64,
    end: i64,
    #[serde(default)]
    skill: Option<String>,
}

#[derive(Deserialize)]
struct Staff {
    id: String,
    #[serde(default)]
    skills: Vec<String>,
}

#[derive(Deserialize)]
struct ScheduleInput {
    appointments: Vec<Appt>,
    staff: Vec<Staff>,
}

fn schedule(_: &Value, input: &Value) -> Result<Output> {
    let i: ScheduleInput = parse(input)?;
    if let Some(a) = i.appointments.iter().find(|a| a.end <= a.start) {
        return Err(AgentError::invalid(format!(
            "appointment {} ends before it starts",
            a.id
        )));
    }
    let mut order: Vec<&Appt> = i.appointments.iter().collect();
    order.sort_by_key(|a| (a.start, a.end));
    // When each staff member is free again.
    let mut free_at: BTreeMap<&str, i64> =
        i.staff.iter().map(|s| (s.id.as_str(), i64::MIN)).collect();
    let mut assignments = Vec::new();
    let mut unassigned = Vec::new();
    for a in &order {
        // Best fit: the qualified free member who became free latest, keeping
        // long-free members for later appointments with tighter constraints.
        let pick = i
            .staff
            .iter()
            .filter(|s| a.skill.as_ref().is_none_or(|k| s.skills.contains(k)))
            .filter(|s| free_at.get(s.id.as_str()).is_some_and(|f| *f <= a.start))
            .max_by_key(|s| {
                (
                    free_at.get(s.id.as_str()).copied(),
                    std::cmp::Reverse(s.id.clone()),
                )
            });
        match pick {
            Some(s) => {
                free_at.insert(s.id.as_str(), a.end);
                assignments.push(json!({"appointment": a.id, "staff": s.id}));
            }
            None => unassigned.push(json!({"appointment": a.id,
                "reason": if i.staff.iter().any(|s| a.skill.as_ref().is_none_or(|k| s.skills.contains(k))) {
                    "every qualified staff member is busy" } else { "no staff member has the skill" }})),
        }
    }
    // Peak number of simultaneous appointments (sweep line).
    let mut ev: Vec<(i64, i32)> = i
        .appointments
        .iter()
        .flat_map(|a| [(a.start, 1), (a.end, -1)])
        .collect();
    ev.sort();
    let (mut cur, mut peak) = (0, 0);
    for (_, d) in ev {
        cur += d;
        peak = peak.max(cur);
    }
    let ok = unassigned.is_empty();
    Ok(Output::new(json!({
        "assignments": assignments, "unassigned": unassigned, "peak_concurrency": peak,
    }))
    .pass(ok))
}

#[derive(Deserialize)]
struct Interval {
    start: i64,
    end: i64,
}

#[derive(Deserialize)]
struct SlotsInput {
    working: Interval,
    #[serde(default)]
    busy: Vec<Interval>,
    /// Slot length, in the same unit as the times (seconds for unix times).
    slot: i64,
}

fn free_slots(_: &Value, input: &Value) -> Result<Output> {
    let i: SlotsInput = parse(input)?;
    if i.slot <= 0 || i.working.end <= i.working.start {
        return Err(AgentError::invalid(
            "slot must be positive and working hours non-empty",
        ));
    }
    let mut busy: Vec<(i64, i64)> = i
        .busy
        .iter()
        .filter(|b| b.end > b.start)
        .map(|b| (b.start, b.end))
        .collect();
    busy.sort();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (s, e) in busy {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let mut slots = Vec::new();
    let mut cursor = i.working.start;
    let gaps = merged
        .iter()
        .map(|b| (b.0, b.1))
        .chain(std::iter::once((i.working.end, i.working.end)));
    for (bs, be) in gaps {
        let gap_end = bs.min(i.working.end);
        while cursor + i.slot <= gap_end {
            slots.push(json!({"start": cursor, "end": cursor + i.slot}));
            cursor += i.slot;
        }
        cursor = cursor.max(be);
    }
    Ok(Output::new(json!({"slots": slots, "count": slots.len()})))
}

// ---------- cash flow ----------

#[derive(Deserialize)]
struct Flow {
    day: i64,
    amount: i64,
}

#[derive(Deserialize)]
struct CashInput {
    opening_balance: i64,
    flows: Vec<Flow>,
}

fn cash_flow(_: &Value, input: &Value) -> Result<Output> {
    let mut i: CashInput = parse(input)?;
    i.flows.sort_by_key(|f| f.day);
    let mut bal = i128::from(i.opening_balance);
    let (mut min, mut min_day) = (bal, None);
    let mut first_negative = None;
    let mut daily: BTreeMap<i64, i128> = BTreeMap::new();
    for f in &i.flows {
        *daily.entry(f.day).or_default() += i128::from(f.amount);
    }
    let mut path = Vec::new();
    for (day, delta) in daily {
        bal += delta;
        path.push(json!({"day": day, "balance": bal.to_string()}));
        if bal < min {
            min = bal;
            min_day = Some(day);
        }
        if bal < 0 && first_negative.is_none() {
            first_negative = Some(day);
        }
    }
    let funding = if min < 0 { -min } else { 0 };
    Ok(Output::new(json!({
        "closing_balance": bal.to_string(), "lowest_balance": min.to_string(),
        "lowest_day": min_day, "first_negative_day": first_negative,
        "funding_needed": funding.to_string(), "path": path,
    }))
    .pass(funding == 0))
}

// ---------- invoice matching ----------

#[derive(Deserialize, Clone)]
struct Doc {
    id: String,
    amount: u64,
    #[serde(default)]
    reference: Option<String>,
}

#[derive(Deserialize)]
struct MatchInput {
    invoices: Vec<Doc>,
    payments: Vec<Doc>,
}

fn invoice_matching(_: &Value, input: &Value) -> Result<Output> {
    let i: MatchInput = parse(input)?;
    let mut open: Vec<Doc> = i.invoices.clone();
    let mut matches = Vec::new();
    let mut unmatched = Vec::new();
    for p in &i.payments {
        // 1. Reference.
        if let Some(pos) = open
            .iter()
            .position(|inv| p.reference.is_some() && inv.reference == p.reference)
        {
            let inv = open.remove(pos);
            let status = match p.amount.cmp(&inv.amount) {
                std::cmp::Ordering::Equal => "paid",
                std::cmp::Ordering::Less => "underpaid",
                std::cmp::Ordering::Greater => "overpaid",
            };
            matches.push(
                json!({"payment": p.id, "invoices": [inv.id], "rule": "reference", "status": status,
                "difference": (i128::from(p.amount) - i128::from(inv.amount)).to_string()}),
            );
            continue;
        }
        // 2. A unique invoice with exactly this amount.
        let same: Vec<usize> = open
            .iter()
            .enumerate()
            .filter(|(_, inv)| inv.amount == p.amount)
            .map(|(k, _)| k)
            .collect();
        if same.len() == 1 {
            let inv = open.remove(same[0]);
            matches.push(json!({"payment": p.id, "invoices": [inv.id], "rule": "exact_amount", "status": "paid"}));
            continue;
        }
        // 3. Two or three open invoices summing exactly to the payment.
        let n = open.len();
        let mut combo: Option<Vec<usize>> = None;
        'outer: for a in 0..n {
            for b in a + 1..n {
                let ab = u128::from(open[a].amount) + u128::from(open[b].amount);
                if ab == u128::from(p.amount) {
                    combo = Some(vec![a, b]);
                    break 'outer;
                }
                if let Some(c) =
                    (b + 1..n).find(|c| ab + u128::from(open[*c].amount) == u128::from(p.amount))
                {
                    combo = Some(vec![a, b, c]);
                    break 'outer;
                }
            }
        }
        match combo {
            Some(mut idx) => {
                idx.sort_unstable_by(|x, y| y.cmp(x));
                // Highest index first so earlier indices stay valid; then back in order.
                let mut ids: Vec<String> = idx.iter().map(|k| open.remove(*k).id).collect();
                ids.reverse();
                matches.push(json!({"payment": p.id, "invoices": ids, "rule": "combination", "status": "paid"}));
            }
            None => unmatched.push(json!({"payment": p.id,
                "reason": if same.len() > 1 { "several invoices have this amount" } else { "no invoice or combination matches" }})),
        }
    }
    let open_ids: Vec<&String> = open.iter().map(|d| &d.id).collect();
    Ok(Output::new(json!({
        "matches": matches, "unmatched_payments": unmatched, "open_invoices": open_ids,
    }))
    .pass(unmatched.is_empty()))
}

// ---------- ledger balance ----------

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    transaction: Option<String>,
    asset: String,
    #[serde(default)]
    debit: u64,
    #[serde(default)]
    credit: u64,
}

#[derive(Deserialize)]
struct BalanceInput {
    lines: Vec<Line>,
}

fn balance_check(_: &Value, input: &Value) -> Result<Output> {
    let i: BalanceInput = parse(input)?;
    let mut by: BTreeMap<(String, String), (u128, u128)> = BTreeMap::new();
    for l in &i.lines {
        if l.debit > 0 && l.credit > 0 {
            return Err(AgentError::invalid(
                "a line is either a debit or a credit, not both",
            ));
        }
        let e = by
            .entry((l.transaction.clone().unwrap_or_default(), l.asset.clone()))
            .or_default();
        e.0 += u128::from(l.debit);
        e.1 += u128::from(l.credit);
    }
    let imbalances: Vec<Value> = by
        .iter()
        .filter(|(_, (d, c))| d != c)
        .map(|((tx, asset), (d, c))| {
            json!({"transaction": tx, "asset": asset, "debits": d.to_string(), "credits": c.to_string(),
                   "difference": (i128::try_from(*d).unwrap_or(i128::MAX) - i128::try_from(*c).unwrap_or(i128::MAX)).to_string()})
        })
        .collect();
    let ok = imbalances.is_empty();
    Ok(
        Output::new(json!({"balanced": ok, "imbalances": imbalances, "groups": by.len()}))
            .score(if ok { 0.0 } else { 1.0 })
            .pass(ok),
    )
}

// ---------- refunds ----------

#[derive(Deserialize)]
struct RefundInput {
    status: String,
    paid: u64,
    #[serde(default)]
    refunded: u64,
    requested: u64,
    /// Unix seconds.
    paid_at: i64,
    now: i64,
    #[serde(default)]
    escrow_expires_at: Option<i64>,
    #[serde(default)]
    requester_is_facility_or_arbiter: bool,
}

fn refund_eligibility(p: &Value, input: &Value) -> Result<Output> {
    let i: RefundInput = parse(input)?;
    let window = i64::try_from(param_u64(p, "window_days", 90)).unwrap_or(90) * 86_400;
    let remaining = i.paid.saturating_sub(i.refunded);
    let mut reasons = Vec::new();
    if !matches!(i.status.as_str(), "confirmed" | "finalized") {
        reasons.push(format!("payment is {}, not confirmed", i.status));
    }
    if i.requested == 0 {
        reasons.push("requested amount is zero".into());
    }
    if i.requested > remaining {
        reasons.push(format!(
            "requested {} exceeds the refundable remainder {remaining}",
            i.requested
        ));
    }
    if i.now - i.paid_at > window {
        reasons.push(format!("outside the {}-day refund window", window / 86_400));
    }
    if let Some(exp) = i.escrow_expires_at
        && i.now < exp
        && !i.requester_is_facility_or_arbiter
    {
        reasons.push("before escrow expiry only the facility or the arbiter may refund".into());
    }
    let ok = reasons.is_empty();
    Ok(Output::new(json!({
        "eligible": ok, "reasons": reasons, "max_refundable": remaining.to_string(),
    }))
    .pass(ok))
}

// ---------- revenue forecast ----------

/// Holt's linear trend method (level + trend), smoothing constants chosen by grid
/// search on one-step-ahead squared error. Deliberately small: the analytics service's
/// Holt-Winters (seasonal) forecaster is the full version (see ADR 0020).
pub struct RevenueForecast;

/// One-step-ahead SSE and the final (level, trend).
pub fn holt(series: &[f64], alpha: f64, beta: f64) -> (f64, f64, f64) {
    let mut level = series[0];
    let mut trend = series[1] - series[0];
    let mut sse = 0.0;
    for &y in &series[1..] {
        let f = level + trend;
        sse += (y - f).powi(2);
        let prev = level;
        level = alpha * y + (1.0 - alpha) * (level + trend);
        trend = beta * (level - prev) + (1.0 - beta) * trend;
    }
    (sse, level, trend)
}

#[derive(Deserialize)]
struct ForecastInput {
    #[serde(default)]
    series: Option<Vec<u64>>,
    /// Facility account: daily confirmed payment totals are read from the payments table.
    #[serde(default)]
    facility: Option<String>,
    #[serde(default = "seven")]
    horizon: u32,
}

fn seven() -> u32 {
    7
}

impl Agent for RevenueForecast {
    fn kind(&self) -> &'static str {
        "revenue_forecast"
    }

    fn description(&self) -> &'static str {
        "Forecasts daily revenue (base units) with Holt's linear trend method, smoothing constants fitted by grid search, from a series or a facility's confirmed payments."
    }

    fn run<'a>(&'a self, ctx: &'a Context, input: Value) -> BoxFuture<'a, Result<Output>> {
        async move {
            let i: ForecastInput = parse(&input)?;
            let series: Vec<f64> = match (i.series, &i.facility) {
                (Some(s), _) => s.iter().map(|v| *v as f64).collect(),
                (None, Some(f)) => {
                    let mut tx = ctx.payments_read_only().await?;
                    // Every day in range, zero when nothing was paid (the payments
                    // service's read: agents name no other schema).
                    advancia_payments::reads::daily_paid(&mut *tx, f)
                        .await
                        .map_err(super::payments_error)?
                        .into_iter()
                        .map(|v| v as f64)
                        .collect()
                }
                (None, None) => return Err(AgentError::invalid("give `series` or `facility`")),
            };
            if series.len() < 4 {
                return Err(AgentError::invalid("at least 4 days of history are needed"));
            }
            let horizon = i.horizon.clamp(1, 366);
            let mut best = (f64::INFINITY, 0.5, 0.1, 0.0, 0.0);
            for a in 1..=9 {
                for b in 1..=9 {
                    let (alpha, beta) = (f64::from(a) / 10.0, f64::from(b) / 10.0);
                    let (sse, l, t) = holt(&series, alpha, beta);
                    if sse < best.0 {
                        best = (sse, alpha, beta, l, t);
                    }
                }
            }
            let (sse, alpha, beta, level, trend) = best;
            let forecast: Vec<u64> = (1..=horizon)
                .map(|h| (level + f64::from(h) * trend).max(0.0).round() as u64)
                .collect();
            let rmse = (sse / (series.len() - 1) as f64).sqrt();
            Ok(Output::new(json!({
                "forecast": forecast, "alpha": alpha, "beta": beta,
                "level": level, "trend_per_day": trend, "rmse": rmse,
                "history_days": series.len(),
            })))
        }
        .boxed()
    }
}
