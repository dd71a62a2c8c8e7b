//! Compute units per instruction, beside a plain SPL Token `transfer_checked` measured in the
//! same runtime and run (`cargo xtask bench programs` prints this table).
//!
//! Only SBF code is metered: run natively (without `cargo xtask sbf`'s build), our program's
//! own work costs nothing and the figures are what the runtime charges around it (the SPL
//! Token CPIs, which always run as real BPF, and the system program), so the table says which
//! mode produced it and the ≤ 2× goal is judged only on the SBF build.

use advancia_pay::client;
use advancia_pay::state::{AssetTotal, NATIVE_SOL};
use anchor_spl::token_2022::spl_token_2022;
use solana_signer::Signer;

use crate::harness::*;
use crate::settlement::{leaf, tree};

const DAY: i64 = 86_400;

struct Table {
    /// Instruction, total units, units spent in the programs it invokes.
    rows: Vec<(String, u64, u64)>,
}

impl Table {
    fn add(&mut self, name: &str, (units, callees): (u64, u64)) -> u64 {
        self.rows.push((name.to_owned(), units, callees));
        units
    }
}

#[tokio::test]
async fn compute_unit_table() {
    let mut env = Env::bare().await;
    let mut t = Table { rows: Vec::new() };
    let admin = env.admin.insecure_clone();
    let a = admin.pubkey();

    let ix = client::initialize_config(a, env.init_args());
    t.add("initialize_config", env.measure_own(&[ix], &[&admin]).await);
    let ix = client::add_asset(a, NATIVE_SOL, SOL_KYC_THRESHOLD);
    t.add("add_asset", env.measure_own(&[ix], &[&admin]).await);
    let (authority, payout) = (env.facility_authority.pubkey(), env.payout.pubkey());
    let ix = client::register_facility(a, FACILITY_ID, authority, payout);
    t.add("register_facility", env.measure_own(&[ix], &[&admin]).await);
    let fa = env.facility_authority.insecure_clone();
    let ix = client::update_facility_payout(authority, FACILITY_ID, payout);
    t.add(
        "update_facility_payout",
        env.measure_own(&[ix], &[&fa]).await,
    );

    // The reference: a plain transfer_checked between two Token accounts.
    let payer = env.wallet(50 * SOL).await;
    let tok = TokenSetup::new(&mut env, TOKEN, &payer.pubkey()).await;
    let ix = spl_token_2022::instruction::transfer_checked(
        &TOKEN,
        &tok.payer_token,
        &tok.mint,
        &tok.payout_token,
        &payer.pubkey(),
        &[],
        1_000,
        TOKEN_DECIMALS,
    )
    .unwrap();
    let reference = env.measure(&[ix], &[&payer]).await;

    // Payments.
    let (p_key, treasury) = (payer.pubkey(), env.treasury.pubkey());
    let p = pay_params(&p_key, "cu-sol", SOL);
    let ix = client::pay_sol(&p, payout, treasury);
    t.add("pay_sol", env.measure_own(&[ix], &[&payer]).await);
    let p = pay_params(&p_key, "cu-tok", 100_000);
    let ix = client::pay_token(&p, &tok.accounts());
    let pay_token = t.add("pay_token (Token)", env.measure_own(&[ix], &[&payer]).await);
    let tok22 = TokenSetup::new(&mut env, TOKEN_2022, &p_key).await;
    let p = pay_params(&p_key, "cu-tok22", 100_000);
    let ix = client::pay_token(&p, &tok22.accounts());
    t.add(
        "pay_token (Token-2022)",
        env.measure_own(&[ix], &[&payer]).await,
    );

    // Refunds (partial, by the facility authority).
    let ix = client::refund_sol(authority, FACILITY_ID, p_key, id32("cu-sol"), SOL / 10);
    t.add("refund_sol", env.measure_own(&[ix], &[&fa]).await);
    let ix = client::refund_token(
        authority,
        FACILITY_ID,
        p_key,
        id32("cu-tok"),
        tok.mint,
        TOKEN,
        tok.authority_token,
        tok.payer_token,
        10_000,
    );
    t.add("refund_token (Token)", env.measure_own(&[ix], &[&fa]).await);

    // Escrow: open, partial release, refund of the rest, close.
    let arbiter = env.wallet(SOL).await;
    let now = env.now().await;
    let params = client::EscrowParams {
        payer: p_key,
        facility_id: FACILITY_ID,
        escrow_id: id32("cu-escrow"),
        amount: 2 * SOL,
        expires_at: now + DAY,
        arbiter: arbiter.pubkey(),
        with_kyc: false,
    };
    let ix = client::open_escrow_sol(&params);
    t.add("open_escrow_sol", env.measure_own(&[ix], &[&payer]).await);
    let escrow = client::escrow_pda(&p_key, &params.escrow_id);
    let facility = client::facility_pda(&FACILITY_ID);
    let ix = client::release_escrow_sol(p_key, escrow, facility, payout, treasury, SOL);
    t.add(
        "release_escrow_sol",
        env.measure_own(&[ix], &[&payer]).await,
    );
    let ix = client::refund_escrow_sol(arbiter.pubkey(), escrow, facility, p_key);
    t.add(
        "refund_escrow_sol",
        env.measure_own(&[ix], &[&arbiter]).await,
    );
    let ix = client::close_escrow(p_key, escrow, p_key, None);
    t.add("close_escrow", env.measure_own(&[ix], &[&payer]).await);

    // KYC attestations.
    let compliance = env.compliance.insecure_clone();
    let c = compliance.pubkey();
    let wallet = env.wallet(SOL).await.pubkey();
    let ix = client::write_attestation(c, wallet, 2, now + 365 * DAY);
    t.add(
        "write_attestation",
        env.measure_own(&[ix], &[&compliance]).await,
    );
    let ix = client::renew_attestation(c, wallet, 3, now + 730 * DAY);
    t.add(
        "renew_attestation",
        env.measure_own(&[ix], &[&compliance]).await,
    );
    let ix = client::revoke_attestation(c, wallet);
    t.add(
        "revoke_attestation",
        env.measure_own(&[ix], &[&compliance]).await,
    );

    // Settlement: a 1,024-entry batch (depth 10) and one inclusion proof against it.
    let leaves: Vec<[u8; 32]> = (0..1024).map(leaf).collect();
    let (root, proofs) = tree(&leaves);
    let settle = env.settlement.insecure_clone();
    let totals = vec![AssetTotal {
        mint: NATIVE_SOL,
        amount: 1_000_000,
    }];
    let ix = client::commit_batch(settle.pubkey(), 1, root, 1024, totals);
    t.add("commit_batch", env.measure_own(&[ix], &[&settle]).await);
    let ix = client::verify_inclusion(1, leaves[517], 517, proofs[517].clone());
    t.add(
        "verify_inclusion (depth 10)",
        env.measure_own(&[ix], &[]).await,
    );

    let sbf = sbf_mode();
    let mode = if sbf {
        "SBF build (all of the program's work metered)"
    } else {
        "native: the program's own work is NOT metered; only its SPL Token / system CPIs are"
    };
    println!("\ncompute units per instruction — {mode}");
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>10}",
        "instruction", "CU", "× ref", "CPIs", "own"
    );
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>10}",
        "SPL transfer_checked (reference)", reference, "1.00", "", ""
    );
    for (name, units, callees) in &t.rows {
        let ratio = *units as f64 / reference as f64;
        let own = units - callees;
        println!("{name:<32} {units:>10} {ratio:>10.2} {callees:>10} {own:>10}");
    }
    // The budget of issue #23: a payment instruction's own work (total minus the programs it
    // invokes) ≤ 15,000 CU on the SBF build.
    if sbf {
        for (name, units, callees) in t.rows.iter().filter(|r| r.0.starts_with("pay_")) {
            let own = units - callees;
            let verdict = if own <= 15_000 { "met" } else { "NOT met" };
            println!("goal {name} own work ≤ 15,000 CU: {verdict} ({own})");
        }
    }

    // The reference is real BPF in either mode, so it is always metered.
    assert!(reference > 1_000, "transfer_checked metered: {reference}");
    // pay_token's own transfer_checked CPIs (payout and fee) are BPF too, so even natively
    // it costs at least one reference transfer.
    assert!(
        pay_token >= reference,
        "pay_token {pay_token} < {reference}"
    );
    // The goal is reported, not asserted: it is a cost target for the SBF build, and the
    // native figures cannot speak to it.
    if sbf {
        let verdict = if pay_token <= 2 * reference {
            "met"
        } else {
            "NOT met"
        };
        println!("goal pay_token ≤ 2× transfer_checked: {verdict} ({pay_token} vs {reference})");
    } else {
        println!("goal pay_token ≤ 2× transfer_checked: needs the SBF build (cargo xtask sbf)");
    }
}
