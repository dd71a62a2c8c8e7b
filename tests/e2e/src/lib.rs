//! Harness for end-to-end tests: one [`Stack`] = local Solana node with the program
//! configured, the indexer running against it (feeding the ledger), and the API server.
#![allow(clippy::unwrap_used)] // a test harness: a failed set-up step is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use advancia_api::{AppState, ServicesConfig};
use advancia_auth::{AuthConfig, AuthService, PasswordHashing, Role, SigningKeys};
use advancia_indexer::{Indexer, IndexerConfig};
use advancia_ledger::{Ledger, LedgerConfig};
use advancia_localnet::{Localnet, LocalnetConfig};
use advancia_pay::client as pay;
use advancia_pay::state::NATIVE_SOL;
use advancia_test_support::TestDb;
use anchor_lang::prelude::Pubkey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use solana_commitment_config::CommitmentConfig;
use solana_keypair::Keypair;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer;
use solana_transaction::Transaction;

pub const SOL: u64 = 1_000_000_000;
pub const FEE_BPS: u16 = 250;
/// Payments above this need a KYC attestation.
pub const KYC_THRESHOLD: u64 = 50 * SOL;
pub const FACILITY_ID: [u8; 32] = [0x42; 32];
const PASSWORD: &str = "correct horse battery";

pub struct Stack {
    /// First, so they stop before the node and the database go away.
    _indexer: IndexerThread,
    _followers: Followers,
    /// The databases of services that live apart ([`Stack::start_apart`]).
    pub apart: Vec<(&'static str, TestDb)>,
    pub node: Localnet,
    pub rpc: RpcClient,
    /// Program admin, compliance and settlement authority.
    pub admin: Keypair,
    /// Signs the facility's refunds.
    pub facility_authority: Keypair,
    pub payout: Pubkey,
    pub treasury: Pubkey,
    pub db: TestDb,
    pub state: AppState,
    pub base: String,
    pub http: reqwest::Client,
}

/// The indexer polling the node on a thread of its own (its step future is not `Send`, as
/// in the binary, which drives it from `main`); stopped when dropped.
struct IndexerThread {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for IndexerThread {
    fn drop(&mut self) {
        // Not joined: the node it polls may run on the runtime that is dropping us, so a
        // request in flight could never finish. The thread ends at its next check.
        self.stop.store(true, Ordering::Relaxed);
        drop(self.handle.take());
    }
}

/// The API's background followers (payments lifecycle, ledger posting, outbox dispatch), as
/// `advancia serve` runs them; stopped when dropped.
struct Followers(advancia_api::ops::Shutdown);

impl Drop for Followers {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

fn spawn_indexer(db_url: String, rpc_url: String) -> IndexerThread {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let pool = advancia_db::sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .connect(&db_url)
                .await
                .unwrap();
            let mut indexer = Indexer::new(pool, IndexerConfig::new(rpc_url));
            while !flag.load(Ordering::Relaxed) {
                if let Err(e) = indexer.step().await {
                    tracing::warn!(error = %e, "indexer step failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    });
    IndexerThread {
        stop,
        handle: Some(handle),
    }
}

pub use advancia_test_support::solana::{funded, send};

/// Standard Webhooks deliveries a loopback receiver got: (headers, body).
pub type Hits = std::sync::Arc<std::sync::Mutex<Vec<(Value, Vec<u8>)>>>;

/// A loopback webhook endpoint answering 204 to every delivery; returns what it got and
/// its URL.
pub async fn webhook_receiver() -> (Hits, String) {
    let hits: Hits = Default::default();
    let sink = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                let headers: serde_json::Map<String, Value> = headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.to_string(), json!(v.to_str().ok()?))))
                    .collect();
                sink.lock()
                    .unwrap()
                    .push((Value::Object(headers), body.to_vec()));
                axum::http::StatusCode::NO_CONTENT
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hits, format!("http://{addr}/hook"))
}

/// The stable slug of a problem+json body's `type`.
pub fn kind(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("https://advancia.dev/problems/")
}

impl Stack {
    /// Node (50 ms slots, finality 3 slots behind), program configured (fee 2.5 %, SOL with a
    /// KYC threshold, one facility), database, indexer loop and API server.
    pub async fn start() -> Stack {
        Stack::start_with(LocalnetConfig::for_tests(), "").await
    }

    /// [`Stack::start`] with a node configuration and rate-limit overrides
    /// (`ADVANCIA_RATE_LIMITS` syntax).
    pub async fn start_with(node_config: LocalnetConfig, rate_limits: &str) -> Stack {
        Stack::start_full(node_config, rate_limits, false, None, |url| url.to_owned()).await
    }

    /// [`Stack::start`] with the API and the indexer reaching the node through the URL
    /// `via` makes of its own (a proxy a fault test controls).
    pub async fn start_rpc_via(via: impl FnOnce(&str) -> String) -> Stack {
        Stack::start_full(LocalnetConfig::for_tests(), "", false, None, via).await
    }

    /// [`Stack::start`] with its database on the Postgres server at `db_server` (a private
    /// cluster a fault test crashes and restarts) instead of `DATABASE_URL`'s.
    pub async fn start_on(db_server: &str) -> Stack {
        Stack::start_full(
            LocalnetConfig::for_tests(),
            "",
            false,
            Some(db_server),
            |url| url.to_owned(),
        )
        .await
    }

    /// [`Stack::start`] with payments, the ledger, notifications, analytics and KYC each in a
    /// database of its own (database per service, ADR 0023), as
    /// `ADVANCIA_<SERVICE>_DATABASE_URL` sets them up.
    pub async fn start_apart() -> Stack {
        Stack::start_full(LocalnetConfig::for_tests(), "", true, None, |url| {
            url.to_owned()
        })
        .await
    }

    async fn start_full(
        node_config: LocalnetConfig,
        rate_limits: &str,
        apart: bool,
        db_server: Option<&str>,
        via: impl FnOnce(&str) -> String,
    ) -> Stack {
        advancia_test_support::init_tracing();
        let node = Localnet::start(node_config).await.unwrap();
        let rpc = RpcClient::new_with_commitment(node.rpc_url(), CommitmentConfig::confirmed());
        let admin = funded(&rpc, 10 * SOL).await;
        let facility_authority = funded(&rpc, 10 * SOL).await;
        let treasury = funded(&rpc, SOL).await.pubkey();
        let payout = funded(&rpc, SOL).await.pubkey();
        send(
            &rpc,
            &admin,
            &[pay::initialize_config(
                admin.pubkey(),
                advancia_pay::InitializeConfigArgs {
                    treasury,
                    settlement_authority: admin.pubkey(),
                    compliance_authority: admin.pubkey(),
                    fee_bps: FEE_BPS,
                },
            )],
        )
        .await;
        send(
            &rpc,
            &admin,
            &[pay::add_asset(admin.pubkey(), NATIVE_SOL, KYC_THRESHOLD)],
        )
        .await;
        send(
            &rpc,
            &admin,
            &[pay::register_facility(
                admin.pubkey(),
                FACILITY_ID,
                facility_authority.pubkey(),
                payout,
            )],
        )
        .await;

        let mut apart_dbs: Vec<(&'static str, TestDb)> = Vec::new();
        if apart {
            for (schema, migrations) in advancia_api::ServiceDatabases::SEPARABLE {
                apart_dbs.push((schema, TestDb::new(&[migrations]).await));
            }
        }
        let separate: Vec<(&'static str, advancia_db::sqlx::PgPool)> = apart_dbs
            .iter()
            .map(|(s, db)| (*s, db.pool.clone()))
            .collect();
        let core: Vec<_> = advancia_api::all_migrations()
            .into_iter()
            .filter(|m| !separate.iter().any(|(s, _)| *s == m.schema))
            .collect();
        let db = match db_server {
            Some(server) => TestDb::new_on(server, &core).await,
            None => TestDb::new(&core).await,
        };
        let ledger_pool = separate
            .iter()
            .find(|(s, _)| *s == "ledger")
            .map_or_else(|| db.pool.clone(), |(_, p)| p.clone());
        let ledger = Ledger::new(ledger_pool, LedgerConfig::default());
        let rpc_url = via(&node.rpc_url());
        let indexer = spawn_indexer(db.url.clone(), rpc_url.clone());
        let auth = AuthService::new(
            db.pool.clone(),
            AuthConfig {
                password_hashing: PasswordHashing::INSECURE_FAST,
                // Long enough for the contract runs, which reuse one token throughout.
                access_ttl: Duration::from_secs(2 * 3600),
                ..AuthConfig::default()
            },
            SigningKeys::generate(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(
            db.pool.clone(),
            auth,
            ledger,
            ServicesConfig {
                solana_rpc_url: rpc_url,
                // Links point here (plain http, as `advancia --dev serve` allows).
                public_url: Some(base.clone()),
                egress: advancia_egress::EgressPolicy::production()
                    .allowing_http()
                    .allowing("127.0.0.1")
                    .unwrap(),
                databases: advancia_api::ServiceDatabases::from_pools(&separate),
                ..ServicesConfig::default()
            },
        );
        let mut config = advancia_api::ApiConfig::default();
        config
            .gateway
            .apply_rate_limit_overrides(rate_limits)
            .unwrap();
        let shutdown = advancia_api::ops::Shutdown::new();
        for (_, task) in advancia_api::followers(&state, &shutdown) {
            tokio::spawn(task);
        }
        let app = advancia_api::app(state.clone(), config).await.unwrap();
        tokio::spawn(advancia_api::serve(listener, app, std::future::pending()));
        Stack {
            node,
            rpc,
            admin,
            facility_authority,
            payout,
            treasury,
            db,
            state,
            base,
            http: reqwest::Client::new(),
            _indexer: indexer,
            _followers: Followers(shutdown),
            apart: apart_dbs,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
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
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Registers `email`, gives it `role` (operator path, as bootstrapping does), logs in.
    /// Returns (user id, access token).
    pub async fn user(&self, email: &str, role: Role) -> (String, String) {
        let (s, u) = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "display_name": "E2E"}),
            )
            .await;
        assert_eq!(s, 202, "{u}");
        // The answer names no account (registration reveals nothing); the operator finds it.
        let id = self
            .state
            .auth
            .find_user_by_email(email)
            .await
            .unwrap()
            .unwrap()
            .id;
        self.state
            .auth
            .set_roles_as_operator(id, vec![role])
            .await
            .unwrap();
        (id.to_string(), self.login(email).await)
    }

    async fn login(&self, email: &str) -> String {
        let (s, t) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, 200, "{t}");
        t["access_token"].as_str().unwrap().to_owned()
    }

    /// Enrolls TOTP for the user behind `access`, then logs in again through the 2FA
    /// challenge; returns the new (two-factor) access token.
    pub async fn with_two_factor(&self, email: &str, access: &str) -> String {
        let (s, enrollment) = self
            .post("/api/v1/auth/2fa/enroll", Some(access), json!({}))
            .await;
        assert_eq!(s, 200, "{enrollment}");
        let secret = data_encoding::BASE32_NOPAD
            .decode(
                enrollment["secret_base32"]
                    .as_str()
                    .unwrap()
                    .trim_end_matches('=')
                    .as_bytes(),
            )
            .unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let code = advancia_auth::totp::code_at(&secret, now);
        let (s, p) = self
            .post(
                "/api/v1/auth/2fa/confirm",
                Some(access),
                json!({"code": code}),
            )
            .await;
        assert_eq!(s, 204, "{p}");
        let (s, challenge) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(challenge["two_factor_required"], true, "{challenge}");
        // The confirmation code is spent; the next time step's code is accepted.
        let next = advancia_auth::totp::code_at(&secret, now + 30);
        let (s, tokens) = self
            .post(
                "/api/v1/auth/verify-2fa",
                None,
                json!({"challenge_token": challenge["challenge_token"], "code": next}),
            )
            .await;
        assert_eq!(s, 200, "{tokens}");
        tokens["access_token"].as_str().unwrap().to_owned()
    }

    /// Signs an unsigned transaction the API handed out, as a wallet does: checks who pays
    /// the fee, then adds the signature.
    pub fn wallet_sign(&self, unsigned_b64: &str, wallet: &Keypair) -> String {
        let bytes = B64.decode(unsigned_b64).unwrap();
        let mut tx: Transaction = bincode::deserialize(&bytes).unwrap();
        assert_eq!(
            tx.message.account_keys[0],
            wallet.pubkey(),
            "the wallet is the fee payer"
        );
        let blockhash = tx.message.recent_blockhash;
        tx.try_partial_sign(&[wallet], blockhash).unwrap();
        B64.encode(bincode::serialize(&tx).unwrap())
    }

    /// Relays a signed transaction through the API; returns its signature.
    pub async fn relay(&self, token: &str, signed_b64: &str) -> String {
        let (s, r) = self
            .post(
                "/api/v1/blockchain/transactions/send",
                Some(token),
                json!({"transaction": signed_b64}),
            )
            .await;
        assert_eq!(s, 202, "{r}");
        r["signature"].as_str().unwrap().to_owned()
    }

    /// Polls the payment's status until `done` holds for it (30 s at most).
    pub async fn wait_status(&self, id: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        let path = format!("/api/v1/payments/{id}/status");
        let mut last = Value::Null;
        for _ in 0..600 {
            let (s, v) = self.get(&path, Some(token)).await;
            assert_eq!(s, 200, "{v}");
            if done(&v) {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("status never reached the expected state; last: {last}");
    }

    /// Lamports held by `address` at `confirmed`.
    pub async fn lamports(&self, address: &Pubkey) -> u64 {
        self.rpc.get_balance(address).await.unwrap()
    }
}
