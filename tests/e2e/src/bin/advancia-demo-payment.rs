//! The demo's scripted payment against running services (`cargo xtask demo` starts them):
//! sets up the program on the local chain as its operator would (once), then acts as a
//! patient with a wallet: sign up, 2FA, initiate, sign the transaction request client-side,
//! relay, hear the pushed webhooks (confirmed, finalized; nobody polls), confirm, and show
//! the ledger entry and the books.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use advancia_e2e::SOL;
use advancia_pay::client as pay;
use advancia_pay::state::NATIVE_SOL;
use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use solana_commitment_config::CommitmentConfig;
use solana_keypair::Keypair;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer;
use solana_transaction::Transaction;

const FACILITY_ID: [u8; 32] = *b"demo-facility-st-mary-clinic-001";

struct Args {
    api: String,
    rpc: String,
    keys: PathBuf,
    database_url: Option<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        api: "http://127.0.0.1:8080".into(),
        rpc: "http://127.0.0.1:8899".into(),
        keys: PathBuf::from("target/demo"),
        database_url: std::env::var("DATABASE_URL").ok(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--api" => a.api = value,
            "--rpc" => a.rpc = value,
            "--keys" => a.keys = value.into(),
            "--database-url" => a.database_url = Some(value),
            _ => bail!("unknown flag {flag} (--api, --rpc, --keys, --database-url)"),
        }
    }
    Ok(a)
}

/// A development keypair kept under the demo's key directory (created once).
fn dev_keypair(dir: &std::path::Path, name: &str) -> Result<Keypair> {
    let path = dir.join(format!("{name}.key"));
    if let Ok(hex_seed) = std::fs::read_to_string(&path) {
        let seed = hex::decode(hex_seed.trim()).context("reading a demo key")?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} is not a 32-byte seed", path.display()))?;
        return Ok(Keypair::new_from_array(seed));
    }
    let kp = Keypair::new();
    std::fs::create_dir_all(dir)?;
    std::fs::write(&path, hex::encode(kp.secret_bytes()))?;
    Ok(kp)
}

type Delivery = (axum::http::HeaderMap, axum::body::Bytes);

/// A loopback webhook receiver: what it gets, in arrival order, and its URL.
async fn webhook_receiver() -> Result<(tokio::sync::mpsc::UnboundedReceiver<Delivery>, String)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                let _ = tx.send((headers, body));
                axum::http::StatusCode::NO_CONTENT
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((rx, format!("http://{addr}/hook")))
}

async fn airdrop(rpc: &RpcClient, to: &anchor_lang::prelude::Pubkey, lamports: u64) -> Result<()> {
    let sig = rpc.request_airdrop(to, lamports).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rpc.confirm_transaction(&sig).await? {
        if Instant::now() > deadline {
            bail!("airdrop to {to} not confirmed in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn send(
    rpc: &RpcClient,
    signer: &Keypair,
    ix: anchor_lang::solana_program::instruction::Instruction,
) -> Result<()> {
    let blockhash = rpc.get_latest_blockhash().await?;
    let tx =
        Transaction::new_signed_with_payer(&[ix], Some(&signer.pubkey()), &[signer], blockhash);
    rpc.send_and_confirm_transaction(&tx).await?;
    Ok(())
}

/// The operator's one-time set-up: program config, SOL accepted, one facility.
async fn ensure_program(rpc: &RpcClient, keys: &std::path::Path) -> Result<()> {
    let admin = dev_keypair(keys, "admin")?;
    let facility_authority = dev_keypair(keys, "facility-authority")?;
    let treasury = dev_keypair(keys, "treasury")?.pubkey();
    let payout = dev_keypair(keys, "facility-payout")?.pubkey();
    if rpc.get_balance(&admin.pubkey()).await? < SOL {
        airdrop(rpc, &admin.pubkey(), 10 * SOL).await?;
    }
    if rpc
        .get_account_with_commitment(&pay::config_pda(), CommitmentConfig::confirmed())
        .await?
        .value
        .is_none()
    {
        send(
            rpc,
            &admin,
            pay::initialize_config(
                admin.pubkey(),
                advancia_pay::InitializeConfigArgs {
                    treasury,
                    settlement_authority: admin.pubkey(),
                    compliance_authority: admin.pubkey(),
                    fee_bps: 250,
                },
            ),
        )
        .await?;
        send(
            rpc,
            &admin,
            pay::add_asset(admin.pubkey(), NATIVE_SOL, 50 * SOL),
        )
        .await?;
        send(
            rpc,
            &admin,
            pay::register_facility(
                admin.pubkey(),
                FACILITY_ID,
                facility_authority.pubkey(),
                payout,
            ),
        )
        .await?;
        println!(
            "  program configured: fee 2.5 %, SOL accepted (KYC above 50 SOL), facility registered"
        );
    } else {
        println!("  program already configured (snapshot of an earlier run)");
    }
    Ok(())
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Result<Value> {
        let (s, v) = self
            .call(reqwest::Method::POST, path, token, Some(body))
            .await?;
        if !(200..300).contains(&s) {
            bail!("POST {path} → {s}: {v}");
        }
        Ok(v)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Result<Value> {
        let (s, v) = self.call(reqwest::Method::GET, path, token, None).await?;
        if !(200..300).contains(&s) {
            bail!("GET {path} → {s}: {v}");
        }
        Ok(v)
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v[key]
        .as_str()
        .with_context(|| format!("`{key}` missing in {v}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let a = args()?;
    let rpc = RpcClient::new_with_commitment(a.rpc.clone(), CommitmentConfig::confirmed());
    ensure_program(&rpc, &a.keys).await?;
    let api = Api {
        base: a.api.trim_end_matches('/').to_owned(),
        http: reqwest::Client::new(),
    };

    // A patient signs up, enrolls TOTP and signs in with it.
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let email = format!("demo.patient+{stamp}@example.org");
    let password = "demo password, not for production";
    api.post(
        "/api/v1/auth/register",
        None,
        json!({"email": email, "password": password, "display_name": "Demo Patient"}),
    )
    .await?;
    let login = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await?;
    let first = str_of(&login, "access_token")?.to_owned();
    let enrollment = api
        .post("/api/v1/auth/2fa/enroll", Some(&first), json!({}))
        .await?;
    let secret = data_encoding::BASE32_NOPAD
        .decode(
            str_of(&enrollment, "secret_base32")?
                .trim_end_matches('=')
                .as_bytes(),
        )
        .context("TOTP secret")?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    api.post(
        "/api/v1/auth/2fa/confirm",
        Some(&first),
        json!({"code": advancia_auth::totp::code_at(&secret, now)}),
    )
    .await?;
    let challenge = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await?;
    let tokens = api
        .post(
            "/api/v1/auth/verify-2fa",
            None,
            json!({"challenge_token": challenge["challenge_token"],
            "code": advancia_auth::totp::code_at(&secret, now + 30)}),
        )
        .await?;
    let token = str_of(&tokens, "access_token")?.to_owned();
    println!("  patient {email} signed in with TOTP 2FA");

    // Their systems listen for webhooks (a local receiver; the API admits loopback in the
    // demo through ADVANCIA_EGRESS_ALLOW).
    let (mut hooks, hook_url) = webhook_receiver().await?;
    let hook = api
        .post(
            "/api/v1/notifications/webhooks",
            Some(&token),
            json!({"url": hook_url, "event_types": ["payment.confirmed", "payment.finalized"]}),
        )
        .await?;
    let secret = str_of(&hook, "secret")?.to_owned();
    println!(
        "  webhook endpoint {hook_url} registered for payment.confirmed and payment.finalized"
    );

    // Their wallet (a local keypair standing in for Phantom/Solflare), funded by the faucet.
    let wallet = Keypair::new();
    airdrop(&rpc, &wallet.pubkey(), 5 * SOL).await?;
    let payment = api
        .post(
            "/api/v1/payments/initiate",
            Some(&token),
            json!({"facility_id": hex::encode(FACILITY_ID),
            "amount": (3 * SOL / 2).to_string(), "asset": "SOL", "memo": "demo consultation"}),
        )
        .await?;
    let id = str_of(&payment, "id")?.to_owned();
    println!(
        "  payment {id} initiated: {}",
        str_of(&payment, "solana_pay_url")?
    );
    // The patient's page: QR code, amount, live status (open it to watch it go to "paid").
    println!("  checkout page: {}", str_of(&payment, "checkout_url")?);
    let link = str_of(&payment, "transaction_request_url")?.to_owned();
    let meta = api.get(&link, None).await?;
    let txr = api
        .post(&link, None, json!({"account": wallet.pubkey().to_string()}))
        .await?;
    println!(
        "  wallet shows \"{}\" / \"{}\"",
        str_of(&meta, "label")?,
        str_of(&txr, "message")?
    );
    let mut tx: Transaction = bincode::deserialize(&B64.decode(str_of(&txr, "transaction")?)?)?;
    let blockhash = tx.message.recent_blockhash;
    tx.try_partial_sign(&[&wallet], blockhash)?;
    let sent = api
        .post(
            "/api/v1/blockchain/transactions/send",
            Some(&token),
            json!({"transaction": B64.encode(bincode::serialize(&tx)?)}),
        )
        .await?;
    println!(
        "  signed by the wallet and relayed: {}",
        str_of(&sent, "signature")?
    );

    // Nobody polls: the services push. The patient's webhook receiver hears each step.
    let started = Instant::now();
    let mut expected = vec!["payment.confirmed", "payment.finalized"];
    while !expected.is_empty() {
        let (headers, body) = tokio::time::timeout(Duration::from_secs(120), hooks.recv())
            .await
            .with_context(|| format!("no {expected:?} webhook within 120 s"))?
            .context("webhook receiver stopped")?;
        let event: Value = serde_json::from_slice(&body)?;
        let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
        let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or_default();
        let key = advancia_notifications::signing::secret_key(&secret)?;
        let signed = header("webhook-signature").split(' ').any(|s| {
            s == advancia_notifications::signing::sign(&key, header("webhook-id"), timestamp, &body)
        });
        if !signed {
            bail!("webhook {} has no valid signature", header("webhook-id"));
        }
        let kind = str_of(&event, "type")?;
        if !expected.contains(&kind) || event["data"]["data"]["payment_id"] != id.as_str() {
            bail!("expected {expected:?} of {id}, the webhook said {event}");
        }
        expected.retain(|k| *k != kind);
        println!(
            "  webhook {kind} pushed ({} ms after relay; Standard Webhooks signature verified)",
            started.elapsed().as_millis()
        );
    }
    let confirmation = loop {
        let c = api
            .post(
                &format!("/api/v1/payments/{id}/confirm"),
                Some(&token),
                json!({}),
            )
            .await?;
        if !c["ledger"].is_null() {
            break c;
        }
        if started.elapsed() > Duration::from_secs(150) {
            bail!("the ledger never posted payment {id}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "  confirmed ({}); ledger transfer {} of {} lamports",
        confirmation["verified"]
            .as_array()
            .map(|v| v.len())
            .unwrap_or(0)
            .to_string()
            + " checks",
        str_of(&confirmation["ledger"]["legs"][0], "transfer_id")?,
        str_of(&confirmation["ledger"], "amount")?
    );

    if let Some(url) = a.database_url {
        let pool = advancia_db::sqlx::PgPool::connect(&url).await?;
        let ledger = advancia_ledger::Ledger::new(pool, Default::default());
        let tb = ledger
            .trial_balance(
                advancia_ledger::projection::ledger_id(
                    advancia_indexer::SOLANA,
                    &NATIVE_SOL.to_string(),
                ),
                None,
            )
            .await?;
        if tb.total_debits != tb.total_credits {
            bail!(
                "the books do not balance: {} debits vs {} credits",
                tb.total_debits,
                tb.total_credits
            );
        }
        let audit = ledger.verify_audit_chain().await?;
        if !audit.is_intact() {
            bail!("the audit chain is broken: {audit:?}");
        }
        println!(
            "  books balance: SOL ledger {} debits = {} credits over {} accounts; audit chain intact",
            tb.total_debits,
            tb.total_credits,
            tb.lines.len()
        );
    }
    Ok(())
}
