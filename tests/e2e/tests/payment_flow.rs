//! Wallet → API → chain → indexer → ledger, through the HTTP API with client-side signing.
#![allow(clippy::unwrap_used)]

use advancia_auth::Role;
use advancia_e2e::{
    FACILITY_ID, FEE_BPS, KYC_THRESHOLD, SOL, Stack, funded, kind, webhook_receiver,
};
use advancia_pay::state::NATIVE_SOL;
use base64::Engine;
use serde_json::{Value, json};
use solana_signer::Signer;

fn sol_ledger() -> u32 {
    advancia_ledger::projection::ledger_id(advancia_indexer::SOLANA, &NATIVE_SOL.to_string())
}

/// Trial balance of the SOL ledger through the API: debits equal credits, and the total.
async fn assert_books_balance(stack: &Stack, admin: &str) -> u128 {
    let (s, tb) = stack
        .get(
            &format!(
                "/api/v1/ledger/reports/financial?report=trial_balance&ledger={}",
                sol_ledger()
            ),
            Some(admin),
        )
        .await;
    assert_eq!(s, 200, "{tb}");
    let debits: u128 = tb["total_debits"].as_str().unwrap().parse().unwrap();
    let credits: u128 = tb["total_credits"].as_str().unwrap().parse().unwrap();
    assert_eq!(debits, credits, "{tb}");
    let (s, audit) = stack.get("/api/v1/ledger/audit-trail", Some(admin)).await;
    assert_eq!(s, 200);
    assert_eq!(audit["intact"], true, "{audit}");
    debits
}

#[tokio::test]
async fn register_login_2fa_pay_index_finalize_confirm_refund() {
    let stack = Stack::start().await;
    let (_, admin) = stack.user("ops@example.org", Role::Admin).await;
    let (_, staff) = stack.user("billing@example.org", Role::FacilityAdmin).await;
    let (_, plain) = stack.user("patient@example.org", Role::Patient).await;
    let patient = stack.with_two_factor("patient@example.org", &plain).await;
    let wallet = funded(&stack.rpc, 20 * SOL).await;

    // Initiate: the intent and its Solana Pay link.
    let amount = 2 * SOL;
    let (s, created) = stack
        .post(
            "/api/v1/payments/initiate",
            Some(&patient),
            json!({"facility_id": hex::encode(FACILITY_ID), "amount": amount.to_string(), "asset": "SOL",
                   "memo": "consultation 2026-11-25"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["asset"], "SOL");
    let id = created["id"].as_str().unwrap().to_owned();
    let link = created["transaction_request_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        created["solana_pay_url"]
            .as_str()
            .unwrap()
            .starts_with("solana:http://127.0.0.1"),
        "{created}"
    );

    // The wallet's side of the Solana Pay transaction request, without our credentials.
    let (s, meta) = stack.get(&link, None).await;
    assert_eq!(s, 200, "{meta}");
    assert_eq!(meta["label"], "Advancia Pay");
    assert!(
        meta["icon"]
            .as_str()
            .unwrap()
            .ends_with("/api/v1/payments/icon.svg")
    );
    let (s, icon) = stack.get("/api/v1/payments/icon.svg", None).await;
    assert_eq!(s, 200, "{icon}");
    let (s, txr) = stack
        .post(&link, None, json!({"account": wallet.pubkey().to_string()}))
        .await;
    assert_eq!(s, 200, "{txr}");
    assert!(txr["message"].as_str().unwrap().contains("SOL"), "{txr}");
    let unsigned = txr["transaction"].as_str().unwrap();
    // The reference key is in the transaction, so the payment can be found on chain.
    let raw = base64::engine::general_purpose::STANDARD
        .decode(unsigned)
        .unwrap();
    let tx: solana_transaction::Transaction = bincode::deserialize(&raw).unwrap();
    let reference: anchor_lang::prelude::Pubkey =
        created["reference"].as_str().unwrap().parse().unwrap();
    assert!(tx.message.account_keys.contains(&reference));
    assert!(tx.message.account_keys.contains(&advancia_pay::ID));
    assert!(
        tx.signatures.iter().all(|s| *s == Default::default()),
        "handed out unsigned"
    );

    let before_payout = stack.lamports(&stack.payout).await;
    let before_treasury = stack.lamports(&stack.treasury).await;
    let signed = stack.wallet_sign(unsigned, &wallet);
    let signature = stack.relay(&patient, &signed).await;

    // Indexed, then finalized.
    let status = stack
        .wait_status(&id, &patient, |v| v["status"] == "finalized")
        .await;
    assert_eq!(status["signature"], signature.as_str());
    assert_eq!(status["payer"], wallet.pubkey().to_string());
    let fee = amount * u64::from(FEE_BPS) / 10_000;
    assert_eq!(status["fee"], fee.to_string());
    let history: Vec<&str> = status["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history.first(), Some(&"pending"));
    assert_eq!(history.last(), Some(&"finalized"));
    assert_eq!(
        stack.lamports(&stack.payout).await - before_payout,
        amount - fee
    );
    assert_eq!(stack.lamports(&stack.treasury).await - before_treasury, fee);

    // Confirm: checked against the finalized event and account; the ledger entry appears
    // once the indexer's feed has posted it.
    let mut confirmation = Value::Null;
    for _ in 0..200 {
        let (s, c) = stack
            .post(
                &format!("/api/v1/payments/{id}/confirm"),
                Some(&patient),
                json!({}),
            )
            .await;
        assert_eq!(s, 200, "{c}");
        if !c["ledger"].is_null() {
            confirmation = c;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        !confirmation.is_null(),
        "the ledger never posted the payment"
    );
    assert_eq!(confirmation["ledger"]["amount"], amount.to_string());
    assert!(confirmation["payment"]["verified_at"].is_string());
    let verified: Vec<&str> = confirmation["verified"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for check in [
        "amount",
        "asset",
        "facility",
        "reference",
        "payment account",
    ] {
        assert!(verified.contains(&check), "{verified:?}");
    }
    let booked = assert_books_balance(&stack, &admin).await;
    assert!(booked >= u128::from(amount), "{booked}");

    // Paying the same invoice again is refused before a wallet spends a fee.
    let (s, p) = stack
        .post(&link, None, json!({"account": wallet.pubkey().to_string()}))
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (409, "already-paid"), "{p}");

    // Refund: only operators ask, only the facility authority can sign.
    let refund_path = format!("/api/v1/payments/{id}/refund");
    let half = amount / 2;
    let (s, p) = stack
        .post(
            &refund_path,
            Some(&patient),
            json!({"account": wallet.pubkey().to_string()}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (403, "forbidden"), "{p}");
    let (s, p) = stack
        .post(
            &refund_path,
            Some(&staff),
            json!({"account": wallet.pubkey().to_string()}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (403, "wrong-signer"), "{p}");
    let (s, p) = stack
        .post(
            &refund_path,
            Some(&staff),
            json!({"account": stack.facility_authority.pubkey().to_string(), "amount": (amount + 1).to_string()}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (400, "invalid-input"), "{p}");
    let (s, r) = stack
        .post(
            &refund_path,
            Some(&staff),
            json!({"account": stack.facility_authority.pubkey().to_string(), "amount": half.to_string()}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let before_wallet = stack.lamports(&wallet.pubkey()).await;
    let signed = stack.wallet_sign(
        r["transaction"].as_str().unwrap(),
        &stack.facility_authority,
    );
    stack.relay(&staff, &signed).await;
    let status = stack
        .wait_status(&id, &patient, |v| {
            v["refunded"].as_str() == Some(half.to_string().as_str())
        })
        .await;
    assert_eq!(status["status"], "finalized");
    assert_eq!(stack.lamports(&wallet.pubkey()).await - before_wallet, half);

    // History: the patient's own; everyone's only for operators.
    let (s, h) = stack.get("/api/v1/payments/history", Some(&patient)).await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["items"].as_array().unwrap().len(), 1);
    assert_eq!(h["items"][0]["id"], id.as_str());
    let (s, h) = stack
        .get("/api/v1/payments/history?all=true", Some(&patient))
        .await;
    assert_eq!((s.as_u16(), kind(&h)), (403, "forbidden"));
    let (s, h) = stack
        .get(
            "/api/v1/payments/history?all=true&status=finalized",
            Some(&admin),
        )
        .await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["items"].as_array().unwrap().len(), 1);
    let (s, h) = stack.get("/api/v1/payments/history", Some(&staff)).await;
    assert_eq!(s, 200);
    assert!(h["items"].as_array().unwrap().is_empty(), "{h}");
    // Someone else's payment is not found, not forbidden (ids are not confirmed to exist).
    let (_, other) = stack.user("other@example.org", Role::Patient).await;
    let (s, p) = stack
        .get(&format!("/api/v1/payments/{id}/status"), Some(&other))
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (404, "not-found"));

    // The books still balance after the refund, and the chain status route agrees.
    assert_books_balance(&stack, &admin).await;
    let (s, st) = stack
        .get(
            &format!("/api/v1/blockchain/transactions/{signature}/status"),
            Some(&patient),
        )
        .await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["indexed"]["commitment"], "finalized");
    assert_eq!(st["chain"]["confirmation_status"], "finalized");
}

#[tokio::test]
async fn escrow_hold_release_and_arbiter_refund() {
    let stack = Stack::start().await;
    let (_, staff) = stack.user("staff@example.org", Role::FacilityAdmin).await;
    let (_, patient) = stack.user("escrow@example.org", Role::Patient).await;
    let wallet = funded(&stack.rpc, 20 * SOL).await;
    let arbiter = funded(&stack.rpc, SOL).await;
    let amount = 4 * SOL;
    let expires_at = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let (s, created) = stack
        .post(
            "/api/v1/payments/initiate",
            Some(&patient),
            json!({"facility_id": hex::encode(FACILITY_ID), "amount": amount, "asset": "sol",
                   "escrow": {"arbiter": arbiter.pubkey().to_string(), "expires_at": expires_at}}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["kind"], "escrow");
    let id = created["id"].as_str().unwrap().to_owned();
    let link = created["transaction_request_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, txr) = stack
        .post(&link, None, json!({"account": wallet.pubkey().to_string()}))
        .await;
    assert_eq!(s, 200, "{txr}");
    assert!(
        txr["message"].as_str().unwrap().starts_with("Hold"),
        "{txr}"
    );
    // Another wallet asks too (the intent now names it), but the first one pays: the escrow
    // is still found, through the reference key in the paying transaction.
    let (s, _) = stack
        .post(
            &link,
            None,
            json!({"account": arbiter.pubkey().to_string()}),
        )
        .await;
    assert_eq!(s, 200);
    let signed = stack.wallet_sign(txr["transaction"].as_str().unwrap(), &wallet);
    stack.relay(&patient, &signed).await;
    let st = stack
        .wait_status(&id, &patient, |v| v["status"] == "finalized")
        .await;
    assert_eq!(
        st["payer"],
        wallet.pubkey().to_string(),
        "the chain's payer wins"
    );
    let (s, c) = stack
        .post(
            &format!("/api/v1/payments/{id}/confirm"),
            Some(&patient),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert!(
        c["verified"]
            .as_array()
            .unwrap()
            .contains(&json!("arbiter"))
    );

    // The payer releases a quarter to the facility (minus the fee).
    let quarter = amount / 4;
    let before_payout = stack.lamports(&stack.payout).await;
    let (s, r) = stack
        .post(
            &format!("/api/v1/payments/{id}/release"),
            Some(&patient),
            json!({"account": wallet.pubkey().to_string(), "amount": quarter.to_string()}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let signed = stack.wallet_sign(r["transaction"].as_str().unwrap(), &wallet);
    stack.relay(&patient, &signed).await;
    stack
        .wait_status(&id, &patient, |v| {
            v["released"].as_str() == Some(quarter.to_string().as_str())
        })
        .await;
    let fee = quarter * u64::from(FEE_BPS) / 10_000;
    assert_eq!(
        stack.lamports(&stack.payout).await - before_payout,
        quarter - fee
    );

    // A stranger cannot release; the arbiter refunds the rest to the payer.
    let stranger = solana_keypair::Keypair::new();
    let (s, p) = stack
        .post(
            &format!("/api/v1/payments/{id}/release"),
            Some(&patient),
            json!({"account": stranger.pubkey().to_string()}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (403, "wrong-signer"), "{p}");
    let (s, p) = stack
        .post(
            &format!("/api/v1/payments/{id}/refund"),
            Some(&staff),
            json!({"account": arbiter.pubkey().to_string(), "amount": "1"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), kind(&p)),
        (400, "invalid-input"),
        "partial escrow refund: {p}"
    );
    let (s, r) = stack
        .post(
            &format!("/api/v1/payments/{id}/refund"),
            Some(&staff),
            json!({"account": arbiter.pubkey().to_string()}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let before_wallet = stack.lamports(&wallet.pubkey()).await;
    let signed = stack.wallet_sign(r["transaction"].as_str().unwrap(), &arbiter);
    stack.relay(&staff, &signed).await;
    let rest = amount - quarter;
    stack
        .wait_status(&id, &patient, |v| {
            v["refunded"].as_str() == Some(rest.to_string().as_str())
        })
        .await;
    assert_eq!(stack.lamports(&wallet.pubkey()).await - before_wallet, rest);
}

#[tokio::test]
async fn rejections_are_specific_and_lose_nothing() {
    let stack = Stack::start().await;
    let (_, patient) = stack.user("careful@example.org", Role::Patient).await;
    let (_, partner) = stack.user("partner@example.org", Role::Partner).await;
    let wallet = funded(&stack.rpc, 100 * SOL).await;
    let initiate = |body: Value| stack.post("/api/v1/payments/initiate", Some(&patient), body);

    let (s, p) = stack
        .post(
            "/api/v1/payments/initiate",
            Some(&partner),
            json!({"facility_id": hex::encode(FACILITY_ID), "amount": 1, "asset": "SOL"}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (403, "forbidden"));
    let (s, p) =
        initiate(json!({"facility_id": hex::encode([9u8; 32]), "amount": 1, "asset": "SOL"})).await;
    assert_eq!((s.as_u16(), kind(&p)), (422, "facility-not-found"), "{p}");
    let unknown_mint = solana_keypair::Keypair::new().pubkey().to_string();
    let (s, p) = initiate(
        json!({"facility_id": hex::encode(FACILITY_ID), "amount": 1, "asset": unknown_mint}),
    )
    .await;
    assert_eq!((s.as_u16(), kind(&p)), (422, "asset-not-accepted"), "{p}");
    let (s, p) =
        initiate(json!({"facility_id": hex::encode(FACILITY_ID), "amount": 0, "asset": "SOL"}))
            .await;
    assert_eq!((s.as_u16(), kind(&p)), (400, "invalid-input"), "{p}");
    let (s, p) =
        initiate(json!({"facility_id": hex::encode(FACILITY_ID), "amount": "1.5", "asset": "SOL"}))
            .await;
    assert_eq!(s.as_u16(), 422, "non-integer amount: {p}");
    let (s, p) = initiate(
        json!({"facility_id": hex::encode(FACILITY_ID), "amount": 1, "asset": "SOL",
        "escrow": {"arbiter": wallet.pubkey().to_string(), "expires_at": 1}}),
    )
    .await;
    assert_eq!((s.as_u16(), kind(&p)), (400, "invalid-input"), "{p}");

    // Above the KYC threshold without an attestation: refused with the reason.
    let (s, big) = initiate(json!({"facility_id": hex::encode(FACILITY_ID),
        "amount": (KYC_THRESHOLD + 1).to_string(), "asset": "SOL"}))
    .await;
    assert_eq!(s, 201, "{big}");
    let link = big["transaction_request_url"].as_str().unwrap().to_owned();
    let (s, p) = stack
        .post(&link, None, json!({"account": wallet.pubkey().to_string()}))
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (422, "kyc-required"), "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("none on chain"),
        "{p}"
    );
    // With an attestation written by the compliance authority, the same request builds.
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 86_400;
    advancia_e2e::send(
        &stack.rpc,
        &stack.admin,
        &[advancia_pay::client::write_attestation(
            stack.admin.pubkey(),
            wallet.pubkey(),
            2,
            expires,
        )],
    )
    .await;
    let (s, txr) = stack
        .post(&link, None, json!({"account": wallet.pubkey().to_string()}))
        .await;
    assert_eq!(s, 200, "{txr}");

    // Relay: unsigned, tampered, foreign-program and garbage transactions.
    let (s, p) = stack
        .post(
            "/api/v1/blockchain/transactions/send",
            Some(&patient),
            json!({"transaction": txr["transaction"]}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (422, "transaction-rejected"), "{p}");
    let signed = stack.wallet_sign(txr["transaction"].as_str().unwrap(), &wallet);
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(&signed)
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1; // flips a byte of the instruction data: the signature no longer covers it
    let tampered = base64::engine::general_purpose::STANDARD.encode(bytes);
    let (s, p) = stack
        .post(
            "/api/v1/blockchain/transactions/send",
            Some(&patient),
            json!({"transaction": tampered}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (422, "transaction-rejected"), "{p}");
    let transfer =
        solana_system_interface::instruction::transfer(&wallet.pubkey(), &stack.payout, 1);
    let blockhash = stack.rpc.get_latest_blockhash().await.unwrap();
    let foreign = solana_transaction::Transaction::new_signed_with_payer(
        &[transfer],
        Some(&wallet.pubkey()),
        &[&wallet],
        blockhash,
    );
    let foreign =
        base64::engine::general_purpose::STANDARD.encode(bincode::serialize(&foreign).unwrap());
    let (s, p) = stack
        .post(
            "/api/v1/blockchain/transactions/send",
            Some(&patient),
            json!({"transaction": foreign}),
        )
        .await;
    // Well-formed but refused as it stands: 422 (ADR 0024's rule).
    assert_eq!((s.as_u16(), kind(&p)), (422, "transaction-rejected"), "{p}");
    let (s, p) = stack
        .post(
            "/api/v1/blockchain/transactions/send",
            Some(&patient),
            json!({"transaction": "%%%"}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (422, "transaction-rejected"), "{p}");
    // Nothing was lost: the intent is still pending and payable.
    let (s, st) = stack
        .get(
            &format!("/api/v1/payments/{}/status", big["id"].as_str().unwrap()),
            Some(&patient),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(st["status"], "pending");
    stack.relay(&patient, &signed).await;
    stack
        .wait_status(big["id"].as_str().unwrap(), &patient, |v| {
            v["status"] == "finalized"
        })
        .await;

    // A retried initiate with the same Idempotency-Key returns the first intent, not a second.
    let body = json!({"facility_id": hex::encode(FACILITY_ID), "amount": 7, "asset": "SOL"});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = stack
            .http
            .post(format!("{}/api/v1/payments/initiate", stack.base))
            .bearer_auth(&patient)
            .header("Idempotency-Key", "e2e-retry-0001")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1], "the retry replayed the first response");
    let (_, h) = stack
        .get("/api/v1/payments/history?limit=200", Some(&patient))
        .await;
    let created = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["amount"] == "7")
        .count();
    assert_eq!(created, 1, "one intent for two identical retries");

    // An intent nobody paid expires, and its transaction request says so.
    let (s, late) =
        initiate(json!({"facility_id": hex::encode(FACILITY_ID), "amount": 5, "asset": "SOL"}))
            .await;
    assert_eq!(s, 201);
    let late_id = late["id"].as_str().unwrap().to_owned();
    sqlx_expire(&stack, &late_id).await;
    // The worker's timer expires it; reading the status does not.
    let st = stack
        .wait_status(&late_id, &patient, |v| v["status"] == "expired")
        .await;
    let expired = st["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(expired["detail"]["from"], "pending", "{st}");
    let (s, p) = stack
        .post(
            late["transaction_request_url"].as_str().unwrap(),
            None,
            json!({"account": wallet.pubkey().to_string()}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (410, "payment-expired"), "{p}");
    let (s, p) = stack
        .post(
            &format!("/api/v1/payments/{}/confirm", late_id),
            Some(&patient),
            json!({}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (409, "not-finalized"), "{p}");
}

/// Moves an intent's deadline into the past, as time passing would.
async fn sqlx_expire(stack: &Stack, id: &str) {
    let pool = &stack.db.pool;
    advancia_db::sqlx::query(
        "UPDATE payments.payments SET expires_at = now() - interval '1 second' WHERE id = $1::uuid",
    )
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
}

/// The attack of issue #18: a stranger holding the Solana Pay link asks the transaction
/// request for their own wallet, changes the amount to 1 lamport (same invoice, same
/// reference), signs and sends it. The payments worker records it as a mismatch against the
/// intent and leaves the intent pending; the honest payer still gets a transaction and pays;
/// the intent is finalized with the honest payment, the mismatch listed beside it and
/// refundable by the facility. Meanwhile 32 status readers hammer the intent: reading changes
/// nothing, so each transition is in the history exactly once.
#[tokio::test]
async fn an_underpayment_through_the_link_neither_settles_nor_blocks_the_intent() {
    let stack = Stack::start().await;
    let (_, staff) = stack.user("billing@example.org", Role::FacilityAdmin).await;
    let (_, patient) = stack.user("patient@example.org", Role::Patient).await;
    let wallet = funded(&stack.rpc, 10 * SOL).await;
    let stranger = funded(&stack.rpc, SOL).await;
    let amount = 2 * SOL;
    let (s, created) = stack
        .post(
            "/api/v1/payments/initiate",
            Some(&patient),
            json!({"facility_id": hex::encode(FACILITY_ID), "amount": amount.to_string(), "asset": "SOL"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let link = created["transaction_request_url"]
        .as_str()
        .unwrap()
        .to_owned();

    // The stranger's transaction, from our endpoint, with the amount changed to 1 lamport.
    let (s, txr) = stack
        .post(
            &link,
            None,
            json!({"account": stranger.pubkey().to_string()}),
        )
        .await;
    assert_eq!(s, 200, "{txr}");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(txr["transaction"].as_str().unwrap())
        .unwrap();
    let mut tx: solana_transaction::Transaction = bincode::deserialize(&raw).unwrap();
    let program = tx
        .message
        .account_keys
        .iter()
        .position(|k| *k == advancia_pay::ID)
        .unwrap();
    let ix = tx
        .message
        .instructions
        .iter_mut()
        .find(|i| usize::from(i.program_id_index) == program)
        .unwrap();
    // pay_sol's data: discriminator (8), invoice id (32), amount (u64 LE).
    assert_eq!(ix.data[40..48], amount.to_le_bytes());
    ix.data[40..48].copy_from_slice(&1u64.to_le_bytes());
    let blockhash = tx.message.recent_blockhash;
    tx.try_sign(&[&stranger], blockhash).unwrap();
    let underpaid = stack.rpc.send_and_confirm_transaction(&tx).await.unwrap();

    // Recorded against the intent, which stays pending and payable.
    let status = stack
        .wait_status(&id, &patient, |v| {
            v["mismatches"]
                .as_array()
                .is_some_and(|m| m.len() == 1 && m[0]["commitment"] == "finalized")
        })
        .await;
    assert_eq!(status["status"], "pending", "{status}");
    let m = &status["mismatches"][0];
    assert_eq!(m["signature"], underpaid.to_string());
    assert_eq!(m["amount"], "1");
    assert_eq!(m["payer"], stranger.pubkey().to_string());
    assert_eq!(m["reasons"], json!(["amount"]));
    let mismatch_id = m["id"].as_str().unwrap().to_owned();

    // The honest payer still gets a transaction (not 409 "already paid") and pays, while 32
    // readers poll the status as fast as they can.
    let (s, txr) = stack
        .post(&link, None, json!({"account": wallet.pubkey().to_string()}))
        .await;
    assert_eq!(s, 200, "{txr}");
    let signed = stack.wallet_sign(txr["transaction"].as_str().unwrap(), &wallet);
    let stack = std::sync::Arc::new(stack);
    let readers: Vec<_> = (0..32)
        .map(|_| {
            let (stack, id, patient) = (stack.clone(), id.clone(), patient.clone());
            tokio::spawn(async move {
                let path = format!("/api/v1/payments/{id}/status");
                loop {
                    let (s, v) = stack.get(&path, Some(&patient)).await;
                    assert_eq!(s, 200, "{v}");
                    if v["status"] == "finalized" {
                        return;
                    }
                }
            })
        })
        .collect();
    let paid = stack.relay(&patient, &signed).await;
    for r in readers {
        r.await.unwrap();
    }
    let status = stack
        .wait_status(&id, &patient, |v| v["status"] == "finalized")
        .await;
    assert_eq!(status["signature"], paid.as_str());
    assert_eq!(status["payer"], wallet.pubkey().to_string());
    assert_eq!(status["mismatches"].as_array().unwrap().len(), 1);
    let history = status["history"].as_array().unwrap();
    let transitions: Vec<(&str, &str)> = history
        .iter()
        .filter_map(|h| Some((h["detail"]["from"].as_str()?, h["status"].as_str()?)))
        .collect();
    assert!(
        transitions == [("pending", "confirmed"), ("confirmed", "finalized")]
            || transitions == [("pending", "finalized")],
        "one history row per transition: {transitions:?}"
    );
    let detected = history
        .iter()
        .filter(|h| h["detail"]["event"] == "mismatch_detected")
        .count();
    assert_eq!(detected, 1, "{history:?}");

    // The facility refunds the stranger's lamport; the patient cannot ask for it.
    let refund_path = format!("/api/v1/payments/{id}/refund");
    let authority = stack.facility_authority.pubkey().to_string();
    let (s, p) = stack
        .post(
            &refund_path,
            Some(&patient),
            json!({"account": authority, "mismatch_id": mismatch_id}),
        )
        .await;
    assert_eq!((s.as_u16(), kind(&p)), (403, "forbidden"), "{p}");
    let (s, r) = stack
        .post(
            &refund_path,
            Some(&staff),
            json!({"account": authority, "mismatch_id": mismatch_id}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let signed = stack.wallet_sign(
        r["transaction"].as_str().unwrap(),
        &stack.facility_authority,
    );
    stack.relay(&staff, &signed).await;
    let status = stack
        .wait_status(&id, &patient, |v| v["mismatches"][0]["refunded"] == "1")
        .await;
    assert_eq!(status["status"], "finalized");
    assert_eq!(
        status["refunded"], "0",
        "the intent's own payment is untouched"
    );
}

/// `(webhook-id, type)` of each delivery, verified by the reference Standard Webhooks
/// implementation (PyPI `standardwebhooks`), independently of our signer.
async fn verified(secret: &str, hits: &[(Value, Vec<u8>)]) -> Vec<(String, String)> {
    let input = json!({
        "secret": secret,
        "deliveries": hits.iter().map(|(h, b)| json!({
            "headers": h,
            "body_b64": base64::engine::general_purpose::STANDARD.encode(b),
        })).collect::<Vec<_>>(),
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../offchain/notifications/tests/verify_webhooks.py"
    );
    let mut child = tokio::process::Command::new(advancia_test_support::smtp::python())
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(
                parts[0], "ok",
                "reference verifier rejected a delivery: {l}"
            );
            (parts[1].to_owned(), parts[2].to_owned())
        })
        .collect()
}

/// Nobody polls: after the wallet's transaction request, the wallet sends straight to the
/// node and no client asks the API anything; the intent still reaches `finalized`, and the
/// creator's signed `payment.finalized` webhook and in-app notification arrive by
/// themselves (pushed: chain → indexer → payments → outbox → notifications → delivery).
#[tokio::test]
async fn a_payment_nobody_polls_finalizes_and_its_webhook_and_inbox_notice_arrive() {
    nobody_polls(Stack::start().await).await;
}

/// The same with payments, ledger, notifications, analytics and KYC each in a database of
/// its own: nothing joins across them.
#[tokio::test]
async fn with_a_database_per_service_nobody_polls_either() {
    let stack = Stack::start_apart().await;
    assert_eq!(stack.apart.len(), 5);
    let stack = nobody_polls(stack).await;
    // Each service's rows are in its own database, none in the core one.
    let core = &stack.db.pool;
    for (schema, db) in &stack.apart {
        let here: bool = advancia_db::sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
        )
        .bind(schema)
        .fetch_one(core)
        .await
        .unwrap();
        assert!(!here, "{schema} must not be in the core database");
        let own: bool = advancia_db::sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
        )
        .bind(schema)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert!(own, "{schema} must be in its own database");
    }
    let (payments, notified, posted): (i64, i64, i64) = (
        advancia_db::sqlx::query_scalar(
            "SELECT count(*) FROM payments.payments WHERE status = 'finalized'",
        )
        .fetch_one(&stack.apart[0].1.pool)
        .await
        .unwrap(),
        advancia_db::sqlx::query_scalar("SELECT count(*) FROM notifications.notifications")
            .fetch_one(&stack.apart[2].1.pool)
            .await
            .unwrap(),
        advancia_db::sqlx::query_scalar("SELECT count(*) FROM ledger.transfers")
            .fetch_one(&stack.apart[1].1.pool)
            .await
            .unwrap(),
    );
    assert_eq!(payments, 1);
    assert!(notified >= 2, "{notified}");
    assert!(
        posted >= 1,
        "the ledger posted the payment in its own database: {posted}"
    );
}

/// A wallet pays with nobody polling; the webhook and in-app notice arrive by themselves.
async fn nobody_polls(stack: Stack) -> Stack {
    let (patient_id, patient) = stack.user("patient@example.org", Role::Patient).await;
    let (hits, url) = webhook_receiver().await;
    let (s, hook) = stack
        .post(
            "/api/v1/notifications/webhooks",
            Some(&patient),
            json!({"url": url, "event_types": ["payment.finalized"]}),
        )
        .await;
    assert_eq!(s, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let wallet = funded(&stack.rpc, 10 * SOL).await;
    let (s, created) = stack
        .post(
            "/api/v1/payments/initiate",
            Some(&patient),
            json!({"facility_id": hex::encode(FACILITY_ID), "amount": SOL.to_string(), "asset": "SOL"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let link = created["transaction_request_url"].as_str().unwrap();
    let (s, txr) = stack
        .post(link, None, json!({"account": wallet.pubkey().to_string()}))
        .await;
    assert_eq!(s, 200, "{txr}");
    let signed = stack.wallet_sign(txr["transaction"].as_str().unwrap(), &wallet);
    let tx: solana_transaction::Transaction = bincode::deserialize(
        &base64::engine::general_purpose::STANDARD
            .decode(signed)
            .unwrap(),
    )
    .unwrap();
    let signature = stack.rpc.send_and_confirm_transaction(&tx).await.unwrap();

    // Only the receiver is watched: no request reaches the API until the webhook is in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let delivered = loop {
        let got = hits.lock().unwrap().clone();
        if !got.is_empty() {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no payment.finalized webhook within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let verdicts = verified(&secret, &delivered).await;
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(verdicts[0].1, "payment.finalized");
    let body: Value = serde_json::from_slice(&delivered[0].1).unwrap();
    assert_eq!(body["data"]["data"]["payment_id"], id.as_str(), "{body}");
    assert_eq!(
        body["data"]["data"]["signature"],
        signature.to_string(),
        "{body}"
    );

    // Afterwards, reading: finalized, and the inbox has the confirmation and the finality.
    let (s, status) = stack
        .get(&format!("/api/v1/payments/{id}/status"), Some(&patient))
        .await;
    assert_eq!(s, 200, "{status}");
    assert_eq!(status["status"], "finalized", "{status}");
    let (s, inbox) = stack
        .get(
            &format!("/api/v1/notifications/{patient_id}"),
            Some(&patient),
        )
        .await;
    assert_eq!(s, 200, "{inbox}");
    let mut types: Vec<&str> = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["event_type"].as_str())
        .collect();
    types.sort();
    assert_eq!(types, ["payment.confirmed", "payment.finalized"], "{inbox}");
    // Exactly one delivery per webhook-id, however the workers raced.
    let ids: std::collections::BTreeSet<_> = delivered
        .iter()
        .map(|(h, _)| h["webhook-id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), delivered.len());
    stack
}
