//! Each algorithm on crafted inputs with known answers.

use advancia_agents::agents::compliance::{jaro_winkler, mrz_check_digit};
use base64::Engine;
use serde_json::json;

use crate::common::{eval, try_eval};

#[test]
fn catalog_has_the_agents() {
    let cat = advancia_agents::Catalog::builtin();
    let kinds: Vec<&str> = cat.kinds().map(|a| a.kind()).collect();
    assert!(kinds.len() >= 25, "{kinds:?}");
    for a in cat.kinds() {
        assert!(!a.description().is_empty());
        assert!(a.default_params().is_object());
    }
}

#[test]
fn fraud_score_ranks_risky_payments_higher() {
    let history = json!([90, 110, 100, 95, 105]);
    let low = eval(
        "fraud_score",
        json!({"amount": 100, "history": history, "payments_last_hour": 0, "new_payee": false, "hour": 14}),
    );
    let high = eval(
        "fraud_score",
        json!({"amount": 10_000, "history": history, "payments_last_hour": 6, "new_payee": true, "hour": 3}),
    );
    assert!(low.score.unwrap() < 0.1, "{low:?}");
    assert!(high.score.unwrap() > 0.95, "{high:?}");
    assert_eq!((low.pass, high.pass), (Some(true), Some(false)));
    assert_eq!(high.value["features"]["amount_z"], 10.0);
    assert_eq!(high.value["features"]["night"], 1.0);
    assert!(try_eval("fraud_score", json!({"amount": 1, "hour": 24})).is_err());
}

#[test]
fn no_show_risk_uses_history_and_reminders() {
    let attentive = eval(
        "no_show_risk",
        json!({"lead_days": 1, "prior_visits": 10, "prior_no_shows": 0, "reminder_sent": true, "hour": 14}),
    );
    let risky = eval(
        "no_show_risk",
        json!({"lead_days": 60, "prior_visits": 4, "prior_no_shows": 3, "reminder_sent": false, "hour": 8}),
    );
    assert!(attentive.score.unwrap() < 0.2 && risky.score.unwrap() > 0.8);
    assert!(
        try_eval(
            "no_show_risk",
            json!({"lead_days": 1, "prior_visits": 1, "prior_no_shows": 2})
        )
        .is_err()
    );
}

#[test]
fn velocity_finds_the_busiest_window() {
    let mut events: Vec<_> = (0..6)
        .map(|k| json!({"payer": "A", "at": 1_000 + k * 600, "amount": 10}))
        .collect();
    // B pays as often, but spread over hours.
    events.extend((0..6).map(|k| json!({"payer": "B", "at": 1_000 + k * 4_000, "amount": 10})));
    let out = eval("velocity_check", json!({"events": events}));
    let payers = out.value["payers"].as_array().unwrap();
    assert_eq!(payers[0]["payer"], "A");
    assert_eq!(payers[0]["max_count_in_window"], 6);
    assert_eq!(payers[0]["exceeded"], true);
    assert_eq!(payers[1]["max_count_in_window"], 1);
    assert_eq!(out.pass, Some(false));
    assert!(
        (out.score.unwrap() - 0.6).abs() < 1e-9,
        "6/5 of the limit → 0.6"
    );
}

#[test]
fn duplicate_payments_exact_near_and_outside_the_window() {
    let pay = json!({"id": "p", "payer": "A", "payee": "F", "amount": 1_000, "at": 10_000});
    let out = eval(
        "duplicate_payment",
        json!({"payment": pay, "recent": [
            {"id": "dup", "payer": "A", "payee": "F", "amount": 1_000, "at": 9_800},
            {"id": "near", "payer": "A", "payee": "F", "amount": 1_005, "at": 9_900},
            {"id": "old", "payer": "A", "payee": "F", "amount": 1_000, "at": 1_000},
            {"id": "other", "payer": "B", "payee": "F", "amount": 1_000, "at": 10_000},
        ]}),
    );
    assert_eq!(
        out.value["duplicates"],
        json!([{"payment": "dup", "same_reference": false}])
    );
    assert_eq!(out.value["near"][0]["payment"], "near");
    assert_eq!(out.pass, Some(false));
    let clean = eval(
        "duplicate_payment",
        json!({"payment": pay, "recent": [{"id": "old", "payer": "A", "payee": "F", "amount": 1_000, "at": 1_000}]}),
    );
    assert_eq!((clean.pass, clean.score), (Some(true), Some(0.0)));
}

#[test]
fn benford_accepts_growth_and_rejects_made_up_amounts() {
    // Geometric growth follows Benford's law.
    let natural: Vec<u64> = (0..500)
        .map(|k| (1000.0 * 1.05f64.powi(k)) as u64)
        .collect();
    let out = eval("benford_check", json!({"amounts": natural}));
    assert!(
        matches!(
            out.value["conformity"].as_str(),
            Some("close" | "acceptable")
        ),
        "{}",
        out.value
    );
    assert_eq!(out.pass, Some(true));
    let invented: Vec<u64> = (500..1000).collect();
    let out = eval("benford_check", json!({"amounts": invented}));
    assert_eq!(out.value["conformity"], "nonconformity");
    assert_eq!(out.value["chi_square_rejects_at_5pct"], true);
    assert!(try_eval("benford_check", json!({"amounts": [1, 2, 3]})).is_err());
}

#[test]
fn churn_risk_tiers() {
    let gone = eval(
        "churn_risk",
        json!({"days_since_last": 120, "payments_90d": 0, "payments_prev_90d": 6}),
    );
    let loyal = eval(
        "churn_risk",
        json!({"days_since_last": 5, "payments_90d": 10, "payments_prev_90d": 9}),
    );
    assert_eq!(
        (gone.value["tier"].as_str(), loyal.value["tier"].as_str()),
        (Some("high"), Some("low"))
    );
}

#[test]
fn reconciliation_triage_explains_each_finding() {
    let r = |sig: &str| json!({"chain": "solana", "signature": sig, "ix_index": 0});
    let report = json!({
        "matched": 10,
        "missing": [{"external_ref": r("s1"), "account": "7", "ledger": 1, "amount": "5000000000"}],
        "extra": [{"external_ref": r("s2"), "transfer_id": "99", "amount": "10"}],
        "mismatched": [{"external_ref": r("s3"), "transfer_id": "100",
                        "fields": [{"field": "amount", "ledger": "1500000", "chain": "1500"}]}],
        "accounts": [
            {"account": "7", "ledger": 1, "ledger_total": "0", "chain_total": "5000000000", "difference": "5000000000"},
            {"account": "8", "ledger": 1, "ledger_total": "10", "chain_total": "0", "difference": "-10"}
        ]
    });
    let out = eval("reconciliation_triage", report);
    let items = out.value["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    let by_kind = |k: &str| items.iter().filter(|i| i["kind"] == k).collect::<Vec<_>>();
    assert!(
        by_kind("field_mismatch")[0]["cause"]
            .as_str()
            .unwrap()
            .contains("10^3")
    );
    assert_eq!(by_kind("missing_in_ledger")[0]["severity"], "high");
    let accts = by_kind("account_difference");
    assert_eq!(
        accts.iter().find(|a| a["account"] == "7").unwrap()["severity"],
        "low",
        "explained by the missing transfer"
    );
    assert_eq!(
        accts.iter().find(|a| a["account"] == "8").unwrap()["severity"],
        "high"
    );
    assert_eq!(
        items.last().unwrap()["severity"],
        "low",
        "sorted by severity"
    );
    assert_eq!(out.pass, Some(false));
    let clean = eval(
        "reconciliation_triage",
        json!({"matched": 3, "missing": [], "extra": [], "mismatched": [], "accounts": []}),
    );
    assert_eq!((clean.pass, clean.score), (Some(true), Some(0.0)));
}

#[test]
fn payment_failures_map_to_causes_and_fixes() {
    // 0x1778 = 6008: the ninth variant of the program's error enum.
    let out = eval(
        "payment_failure_diagnosis",
        json!({"error": "Transaction simulation failed: Error processing Instruction 0: custom program error: 0x1778"}),
    );
    let f = &out.value["findings"][0];
    assert_eq!(
        (
            f["name"].as_str(),
            f["code"].as_u64(),
            f["category"].as_str()
        ),
        (Some("KycRequired"), Some(6008), Some("compliance"))
    );
    assert!(f["cause"].as_str().unwrap().contains("KYC"));
    let out = eval(
        "payment_failure_diagnosis",
        json!({"logs": [
        "Program log: AnchorError occurred. Error Code: EscrowExpired. Error Number: 6016. Error Message: escrow is expired; it can only be refunded."]}),
    );
    assert_eq!(out.value["findings"][0]["name"], "EscrowExpired");
    let out = eval(
        "payment_failure_diagnosis",
        json!({"error": "custom program error: 0xbc4"}),
    );
    assert_eq!(out.value["findings"][0]["name"], "AccountNotInitialized");
    let out = eval(
        "payment_failure_diagnosis",
        json!({"error": "RPC response error -32002: Blockhash not found"}),
    );
    assert_eq!(
        (
            out.value["findings"][0]["category"].as_str(),
            out.value["retryable"].as_bool()
        ),
        (Some("rpc"), Some(true))
    );
    let out = eval(
        "payment_failure_diagnosis",
        json!({"error": "something odd"}),
    );
    assert_eq!(
        (out.value["diagnosed"].as_bool(), out.pass),
        (Some(false), Some(false))
    );
}

#[test]
fn settlement_batch_size_follows_the_square_root_rule() {
    // sqrt(2 · 100/h · 50 000 / 1 000) = 100 items per batch, one batch an hour.
    let out = eval(
        "settlement_batch_sizing",
        json!({"arrival_per_hour": 100.0, "batch_cost_micro_usd": 50_000,
        "holding_cost_micro_usd_per_hour": 1_000, "pending_items": 40, "oldest_pending_secs": 60}),
    );
    assert_eq!(out.value["batch_size"], 100);
    assert_eq!(out.value["interval_secs"], 3600);
    assert_eq!(out.value["flush_now"], false);
    let out = eval(
        "settlement_batch_sizing",
        json!({"arrival_per_hour": 100.0, "batch_cost_micro_usd": 50_000,
        "holding_cost_micro_usd_per_hour": 1_000, "pending_items": 120}),
    );
    assert_eq!(out.value["flush_now"], true);
}

#[test]
fn fee_optimizer_picks_the_cheapest_eligible_route() {
    let out = eval(
        "fee_optimizer",
        json!({"amount": 1_000_000, "max_settlement_secs": 600, "routes": [
            {"name": "flat", "fixed_fee": 5_000, "settlement_secs": 60},
            {"name": "pct", "bps": 30, "settlement_secs": 30},
            {"name": "slow", "fixed_fee": 100, "bps": 10, "settlement_secs": 3_600},
        ]}),
    );
    assert_eq!(out.value["best"], "pct");
    assert_eq!(out.value["fee"], "3000");
    assert_eq!(out.value["saving_vs_worst"], "2000");
    assert_eq!(out.value["routes"][2]["eligible"], false);
}

#[test]
fn schedule_respects_skills_and_overlaps() {
    let out = eval(
        "schedule_optimizer",
        json!({
        "appointments": [{"id": "x1", "start": 540, "end": 600, "skill": "xray"}, {"id": "x2", "start": 540, "end": 600}],
        "staff": [{"id": "s1", "skills": []}, {"id": "s2", "skills": ["xray"]}]}),
    );
    assert_eq!(
        out.value["assignments"],
        json!([{"appointment": "x1", "staff": "s2"}, {"appointment": "x2", "staff": "s1"}])
    );
    let out = eval(
        "schedule_optimizer",
        json!({
        "appointments": [{"id": "a1", "start": 540, "end": 600}, {"id": "a2", "start": 570, "end": 630},
                         {"id": "a3", "start": 585, "end": 660}, {"id": "a4", "start": 600, "end": 660, "skill": "mri"}],
        "staff": [{"id": "s1"}, {"id": "s2"}]}),
    );
    assert_eq!(out.value["peak_concurrency"], 3);
    assert_eq!(out.value["assignments"].as_array().unwrap().len(), 2);
    assert_eq!(
        out.value["unassigned"][1]["reason"],
        "no staff member has the skill"
    );
    assert_eq!(out.pass, Some(false));
}

#[test]
fn free_slots_around_merged_bookings() {
    let out = eval(
        "free_slots",
        json!({"working": {"start": 540, "end": 1020}, "slot": 60,
        "busy": [{"start": 600, "end": 660}, {"start": 650, "end": 700}]}),
    );
    let starts: Vec<i64> = out.value["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_i64().unwrap())
        .collect();
    assert_eq!(starts, [540, 700, 760, 820, 880, 940]);
}

#[test]
fn cash_flow_gap_finds_the_low_point() {
    let out = eval(
        "cash_flow_gap",
        json!({"opening_balance": 100,
        "flows": [{"day": 3, "amount": 100}, {"day": 1, "amount": -150}, {"day": 2, "amount": 30}]}),
    );
    assert_eq!(out.value["lowest_balance"], "-50");
    assert_eq!(out.value["first_negative_day"], 1);
    assert_eq!(out.value["funding_needed"], "50");
    assert_eq!(out.value["closing_balance"], "80");
}

#[test]
fn invoices_match_by_reference_amount_and_combination() {
    let out = eval(
        "invoice_matching",
        json!({
        "invoices": [{"id": "I1", "amount": 100, "reference": "R1"}, {"id": "I2", "amount": 250},
                     {"id": "I3", "amount": 70}, {"id": "I4", "amount": 30}, {"id": "I5", "amount": 999}],
        "payments": [{"id": "P1", "amount": 100, "reference": "R1"}, {"id": "P2", "amount": 250},
                     {"id": "P3", "amount": 100}, {"id": "P4", "amount": 5}]}),
    );
    let m = out.value["matches"].as_array().unwrap();
    assert_eq!(m[0]["rule"], "reference");
    assert_eq!(m[1]["invoices"], json!(["I2"]));
    assert_eq!(
        (m[2]["rule"].as_str(), &m[2]["invoices"]),
        (Some("combination"), &json!(["I3", "I4"]))
    );
    assert_eq!(out.value["unmatched_payments"][0]["payment"], "P4");
    assert_eq!(out.value["open_invoices"], json!(["I5"]));
}

#[test]
fn ledger_lines_must_balance_per_transaction_and_asset() {
    let ok = eval(
        "ledger_balance_check",
        json!({"lines": [
        {"transaction": "t1", "asset": "SOL", "debit": 10}, {"transaction": "t1", "asset": "SOL", "credit": 10}]}),
    );
    assert_eq!(ok.pass, Some(true));
    let bad = eval(
        "ledger_balance_check",
        json!({"lines": [
        {"transaction": "t1", "asset": "SOL", "debit": 10}, {"transaction": "t1", "asset": "USDC", "credit": 10}]}),
    );
    assert_eq!(bad.value["imbalances"].as_array().unwrap().len(), 2);
    assert!(
        try_eval(
            "ledger_balance_check",
            json!({"lines": [{"asset": "SOL", "debit": 1, "credit": 1}]})
        )
        .is_err()
    );
}

#[test]
fn refund_eligibility_rules() {
    let base = json!({"status": "finalized", "paid": 1000, "refunded": 400, "requested": 600, "paid_at": 0, "now": 86_400});
    let out = eval("refund_eligibility", base.clone());
    assert_eq!(
        (out.pass, out.value["max_refundable"].as_str()),
        (Some(true), Some("600"))
    );
    let mut too_much = base.clone();
    too_much["requested"] = json!(601);
    too_much["now"] = json!(91 * 86_400);
    let out = eval("refund_eligibility", too_much);
    assert_eq!(out.value["reasons"].as_array().unwrap().len(), 2);
    let mut escrow = base;
    escrow["escrow_expires_at"] = json!(10 * 86_400);
    assert_eq!(eval("refund_eligibility", escrow).pass, Some(false));
}

fn specimen_mrz() -> Vec<String> {
    // ICAO 9303 part 4 specimen passport.
    vec![
        format!("{:<<44}", "P<UTOERIKSSON<<ANNA<MARIA"),
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10".to_owned(),
    ]
}

#[test]
fn kyc_document_triage_checks_bytes_and_mrz() {
    assert_eq!(mrz_check_digit("L898902C3"), Some(6));
    assert_eq!(mrz_check_digit("740812"), Some(2));
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    png.resize(4096, 0);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let out = eval(
        "kyc_document_triage",
        json!({"document_base64": b64, "content_type": "image/png",
        "mrz": specimen_mrz(), "today": "2026-01-01"}),
    );
    assert_eq!(out.value["mrz"]["valid"], true, "{}", out.value);
    assert_eq!(out.value["mrz"]["surname"], "ERIKSSON");
    assert_eq!(out.value["mrz"]["given_names"], "ANNA MARIA");
    assert_eq!(out.value["decision"], "manual_review", "expired in 2012");
    let out = eval(
        "kyc_document_triage",
        json!({"document_base64": b64, "mrz": specimen_mrz(), "today": "2011-01-01"}),
    );
    assert_eq!(out.value["decision"], "accept");
    // One digit of the birth date changed: its check digit and the composite fail.
    let mut forged = specimen_mrz();
    forged[1] = forged[1].replace("740812", "750812");
    let out = eval("kyc_document_triage", json!({"mrz": forged}));
    assert_eq!(out.value["decision"], "reject");
    assert_eq!(
        out.value["mrz"]["failures"],
        json!(["birth_date check digit", "composite check digit"])
    );
    let text = base64::engine::general_purpose::STANDARD.encode(vec![b'a'; 5000]);
    let out = eval(
        "kyc_document_triage",
        json!({"document_base64": text, "content_type": "application/pdf"}),
    );
    assert_eq!(out.value["decision"], "reject");
}

#[test]
fn sanctions_explanation_per_token() {
    assert!((jaro_winkler("martha", "marhta") - 0.9611).abs() < 1e-4);
    assert!((jaro_winkler("dwayne", "duane") - 0.84).abs() < 1e-4);
    assert!((jaro_winkler("dixon", "dicksonx") - 0.8133).abs() < 1e-4);
    let out = eval(
        "sanctions_explain",
        json!({"name": "Mr Mohammed Al Rashid",
        "watchlist": ["John Smith", "Muhammad al-Rashid"]}),
    );
    assert_eq!(out.value["potential_match"], true, "{}", out.value);
    assert_eq!(out.value["best"]["candidate"], "Muhammad al-Rashid");
    let tokens = out.value["best"]["tokens"].as_array().unwrap();
    assert_eq!(tokens[0]["token"], "mohammed");
    assert_eq!(tokens[0]["best_match"], "muhammad");
    assert_eq!(tokens[0]["note"], "similar");
    assert_eq!(tokens[2]["note"], "identical");
    let out = eval(
        "sanctions_explain",
        json!({"name": "Jane Doe", "candidate": "Muhammad al-Rashid"}),
    );
    assert_eq!(out.pass, Some(true));
    // No name: nothing to screen, not an error (payment reviews without a counterparty).
    assert_eq!(
        eval("sanctions_explain", json!({"amount": 5})).value["screened"],
        false
    );
}

#[test]
fn payout_addresses_solana_and_eip55() {
    let out = eval(
        "address_validation",
        json!({"addresses": [
            {"chain": "evm", "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"},
            {"chain": "evm", "address": "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"},
            {"chain": "evm", "address": "0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed"},
            {"chain": "evm", "address": "0xd1220a0cf47c7b9be7a2e6ba89f429762e7b9adb"},
            {"chain": "solana", "address": "11111111111111111111111111111111"},
            {"chain": "solana", "address": "0OIl"},
        ]}),
    );
    let valid: Vec<bool> = out.value["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["valid"].as_bool().unwrap())
        .collect();
    assert_eq!(valid, [true, true, false, true, true, false]);
    assert_eq!(
        out.value["results"][3]["normalized"],
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"
    );
}

#[test]
fn certification_expiry_buckets() {
    let out = eval(
        "certification_expiry",
        json!({"today": "2026-06-01", "certifications": [
        {"id": "a", "expires_on": "2026-05-31"}, {"id": "b", "expires_on": "2026-06-10"},
        {"id": "c", "expires_on": "2026-07-15"}, {"id": "d", "expires_on": "2027-01-01"}]}),
    );
    let s: Vec<&str> = out.value["certifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(s, ["expired", "critical", "warning", "ok"]);
    assert_eq!(out.pass, Some(false));
}

#[test]
fn risk_tier_points() {
    let high = eval(
        "risk_tier",
        json!({"kyc_level": 1, "monthly_volume": 60_000_000_000u64, "country_risk": "high", "pep": true}),
    );
    assert_eq!(
        (
            high.value["tier"].as_str(),
            high.value["enhanced_due_diligence"].as_bool()
        ),
        (Some("high"), Some(true))
    );
    let low = eval(
        "risk_tier",
        json!({"kyc_level": 2, "monthly_volume": 1_000}),
    );
    assert_eq!(low.value["tier"], "low");
}
