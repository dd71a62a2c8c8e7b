//! Cosmos source against real Postgres. The chain data is `vm_block_results.json`: events the
//! optimized advancia-pay wasm emitted when run in the real cosmwasm-vm, recorded in
//! CometBFT's `block_results` JSON-RPC shape by the VM test crate.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use advancia_indexer::IndexerError;
use advancia_indexer::cosmos::{
    CometRpc, CosmosBlock, CosmosConfig, CosmosEvent, CosmosIndexer, decode_block_results,
    write_blocks,
};
use advancia_ledger::projection::{self as posting, ConfiguredAssets, Projection, Role};
use advancia_test_support::TestDb;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

const CONTRACT: &str = "cosmwasm1jpev2csrppg792t22rn8z8uew8h3sjcpglcd0qv9g8gj8ky922tscp8avs";
const PAYER: &str = "cosmwasm134jlea753qxd2gjtxmpnusmp0nz3nlr9znmewk0kt76hzeyal74scn97x8";
const ARBITER: &str = "cosmwasm1983whmvvct6jf3xhnu695sd4zx2rdjxlyx2a9wu5lqjsx95z0hdqlew6hu";
const AUTHORITY: &str = "cosmwasm1nlgqxcraxdmcn5yhapdskkfsfz5a7xxmx6f9t4x6uq8hawmgpk5q00sjmu";
const PAYOUT: &str = "cosmwasm1qnwy70dsu82ua4cffqku0wr2mehpdgzs83w2kj7qm8j6k5u60lqsntl75a";
const CHAIN_ID: &str = "advancia-vm-1";

/// The recorded `block_results` results by height.
fn fixture() -> BTreeMap<u64, Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../contracts/cosmwasm/advancia-pay/testdata/vm_block_results.json"
    );
    let all: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all.into_iter()
        .map(|r| {
            let result = r["result"].clone();
            (result["height"].as_str().unwrap().parse().unwrap(), result)
        })
        .collect()
}

fn decode_all(contract: &str) -> Vec<CosmosBlock> {
    fixture()
        .values()
        .map(|r| decode_block_results(r, contract).unwrap())
        .collect()
}

fn only_event(blocks: &[CosmosBlock], height: u64) -> CosmosEvent {
    let b = blocks.iter().find(|b| b.height == height).unwrap();
    assert_eq!(b.txs.len(), 1, "{b:?}");
    let t = &b.txs[0];
    assert_eq!(t.signature, format!("{height}:0"));
    assert_eq!(t.events.len(), 1, "{t:?}");
    t.events[0].clone()
}

fn assert_values(e: &CosmosEvent, table: &str, want: &[(&str, Option<&str>)]) {
    assert_eq!(e.table_name(), table, "{e:?}");
    // ix_index = tx index, inner_index = index among the tx's events (message, execute, wasm).
    assert_eq!((e.ix_index, e.inner_index), (0, 2), "{e:?}");
    for (col, v) in want {
        assert_eq!(e.value(col), *v, "{table}.{col} of {e:?}");
    }
}

#[tokio::test]
async fn decodes_the_vm_fixture_into_exact_rows() {
    let blocks = decode_all(CONTRACT);
    assert_eq!(blocks.len(), 8);
    let payment = format!("{PAYER}/inv-1");
    let escrow = format!("{PAYER}/esc-1");

    let e = only_event(&blocks, 12345);
    assert_eq!(e.action, "instantiate");
    assert_values(&e, "admin_events", &[("kind", Some("instantiate"))]);
    let body: Value = serde_json::from_str(e.value("body").unwrap()).unwrap();
    assert_eq!(body["fee_bps"], "250");

    assert_values(
        &only_event(&blocks, 12346),
        "facilities",
        &[
            ("kind", Some("registered")),
            ("facility", Some("clinic-1")),
            ("facility_id", Some("clinic-1")),
            ("authority", Some(AUTHORITY)),
            ("payout_wallet", Some(PAYOUT)),
        ],
    );
    assert_values(
        &only_event(&blocks, 12347),
        "payments",
        &[
            ("payment", Some(&payment)),
            ("payer", Some(PAYER)),
            ("facility", Some("clinic-1")),
            ("invoice_id", Some("inv-1")),
            ("reference", Some("")),
            ("mint", Some("native:uatom")),
            ("amount", Some("400000")),
            ("fee", Some("10000")),
            ("paid_at", Some("1571797431")),
        ],
    );
    assert_values(
        &only_event(&blocks, 12348),
        "refunds",
        &[
            ("payment", Some(&payment)),
            ("facility", Some("clinic-1")),
            ("payer", Some(PAYER)),
            ("mint", Some("native:uatom")),
            ("amount", Some("150000")),
            ("refunded_total", Some("150000")),
        ],
    );
    assert_values(
        &only_event(&blocks, 12349),
        "escrows",
        &[
            ("kind", Some("opened")),
            ("escrow", Some(&escrow)),
            ("actor", Some(PAYER)),
            ("payer", Some(PAYER)),
            ("facility", Some("clinic-1")),
            ("arbiter", Some(ARBITER)),
            ("mint", Some("native:uatom")),
            ("amount", Some("100000")),
            ("fee", Some("0")),
            ("released_total", None),
            ("expires_at", Some("1571801037")),
        ],
    );
    assert_values(
        &only_event(&blocks, 12350),
        "escrows",
        &[
            ("kind", Some("released")),
            ("escrow", Some(&escrow)),
            ("actor", Some(ARBITER)),
            ("payer", Some(PAYER)),
            ("facility", None),
            ("mint", Some("native:uatom")),
            ("amount", Some("60000")),
            ("fee", Some("1500")),
            ("released_total", Some("60000")),
        ],
    );
    let root = "07".repeat(32);
    let settlement = only_event(&blocks, 12351);
    assert_values(
        &settlement,
        "settlement_commitments",
        &[
            ("batch_number", Some("1")),
            ("root", Some(&root)),
            ("entry_count", Some("3")),
        ],
    );
    let totals: Value = serde_json::from_str(settlement.value("totals").unwrap()).unwrap();
    assert_eq!(
        totals,
        json!([{"mint": "native:uatom", "amount": "500000"}])
    );
    let bridge = only_event(&blocks, 12352);
    assert_values(&bridge, "admin_events", &[("kind", Some("bridge_message"))]);
    let body: Value = serde_json::from_str(bridge.value("body").unwrap()).unwrap();
    assert_eq!(body["message_id"], "sol-msg-1");

    // Another contract's events are not ours.
    let other = decode_all("cosmwasm1someoneelse");
    assert!(other.iter().all(|b| b.txs.is_empty()), "{other:?}");

    // The same rows land in Postgres with the numeric columns as numbers.
    let db = TestDb::new(&[&advancia_indexer::MIGRATIONS]).await;
    let chain = format!("cosmos:{CHAIN_ID}");
    let inserted = write_blocks(&db.pool, &chain, "test", &blocks, 12352)
        .await
        .unwrap();
    assert_eq!(inserted, 8);
    let pay: (String, i64, i32, i32, String, String, i64, String) = sqlx::query_as(
        "SELECT signature, slot, ix_index, inner_index, amount::text, fee::text, paid_at,
                commitment FROM indexer.payments WHERE chain = $1",
    )
    .bind(&chain)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        pay,
        (
            "12347:0".into(),
            12347,
            0,
            2,
            "400000".into(),
            "10000".into(),
            1571797431,
            "finalized".into()
        )
    );
    let rel: (String, String, String) = sqlx::query_as(
        "SELECT amount::text, fee::text, released_total::text FROM indexer.escrows
          WHERE kind = 'released'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(rel, ("60000".into(), "1500".into(), "60000".into()));
    let (batch, totals): (String, Value) =
        sqlx::query_as("SELECT batch_number::text, totals FROM indexer.settlement_commitments")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(batch, "1");
    assert_eq!(totals[0]["amount"], "500000");
}

/// A CometBFT node serving the recorded blocks over its JSON-RPC (URI form). The data is
/// replayed, not invented: every block is what the real VM run produced.
#[derive(Clone)]
struct Node {
    blocks: Arc<BTreeMap<u64, Value>>,
    latest: u64,
}

async fn status(State(n): State<Node>) -> Json<Value> {
    Json(json!({"jsonrpc": "2.0", "id": -1, "result": {
        "node_info": {"network": CHAIN_ID},
        "sync_info": {"latest_block_height": n.latest.to_string(), "catching_up": false},
    }}))
}

async fn block_results(
    State(n): State<Node>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let h = q.get("height").and_then(|h| h.parse::<u64>().ok());
    match h.and_then(|h| n.blocks.get(&h)) {
        Some(r) => (
            StatusCode::OK,
            Json(json!({"jsonrpc": "2.0", "id": -1, "result": r})),
        ),
        // CometBFT's answer for a pruned or future height.
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"jsonrpc": "2.0", "id": -1, "error": {
                "code": -32603, "message": "Internal error",
                "data": format!("height {h:?} is not available"),
            }})),
        ),
    }
}

async fn serve_node() -> String {
    let blocks = fixture();
    let latest = *blocks.keys().last().unwrap();
    let app = Router::new()
        .route("/status", get(status))
        .route("/block_results", get(block_results))
        .with_state(Node {
            blocks: Arc::new(blocks),
            latest,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn count(db: &TestDb, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM indexer.{table}"))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn step_indexes_each_block_once_behind_the_depth() {
    let url = serve_node().await;
    let db = TestDb::new(&[&advancia_indexer::MIGRATIONS]).await;
    let config = CosmosConfig {
        start_height: 12345,
        depth: 2,
        ..CosmosConfig::new(&url, CONTRACT)
    };

    // Depth 2: heights up to 12350 only; the settlement (12351) is not yet written.
    let mut held_back = CosmosIndexer::connect(db.pool.clone(), config.clone())
        .await
        .unwrap();
    assert_eq!(held_back.chain(), "cosmos:advancia-vm-1");
    assert_eq!(
        held_back.source(),
        format!("cosmos:advancia-vm-1:{CONTRACT}")
    );
    let r = held_back.step().await.unwrap();
    assert_eq!(
        (
            r.latest_height,
            r.heights,
            r.transactions,
            r.events,
            r.cursor
        ),
        (12352, 6, 6, 6, Some(12350))
    );
    assert_eq!(count(&db, "settlement_commitments").await, 0);
    assert_eq!(count(&db, "payments").await, 1);

    // Depth 0 (CometBFT's instant finality): the rest, then nothing new.
    let mut indexer = CosmosIndexer::connect(db.pool.clone(), CosmosConfig { depth: 0, ..config })
        .await
        .unwrap();
    let r = indexer.step().await.unwrap();
    assert_eq!((r.heights, r.events, r.cursor), (2, 2, Some(12352)));
    let again = indexer.step().await.unwrap();
    assert_eq!(
        (again.heights, again.events, again.cursor),
        (0, 0, Some(12352))
    );
    assert_eq!(indexer.cursor().await.unwrap(), Some(12352));

    let counts = [
        ("transactions", 8),
        ("payments", 1),
        ("refunds", 1),
        ("escrows", 2),
        ("facilities", 1),
        ("attestations", 0),
        ("settlement_commitments", 1),
        ("admin_events", 2),
    ];
    for (table, n) in counts {
        assert_eq!(count(&db, table).await, n, "{table}");
    }
    // Re-writing the same blocks (a crash between write and cursor cannot happen, but a
    // rewound cursor can) inserts nothing.
    let blocks = decode_all(CONTRACT);
    let inserted = write_blocks(&db.pool, indexer.chain(), indexer.source(), &blocks, 12352)
        .await
        .unwrap();
    assert_eq!(inserted, 0);
    for (table, n) in counts {
        assert_eq!(count(&db, table).await, n, "{table}");
    }
    let finalized: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM indexer.transactions WHERE chain = $1 AND commitment = 'finalized'",
    )
    .bind(indexer.chain())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(finalized, 8);

    // The node's JSON-RPC error keeps its message.
    match CometRpc::new(&url).block_results(1).await {
        Err(IndexerError::Rpc { method, message }) => {
            assert_eq!(method, "block_results");
            assert!(message.contains("is not available"), "{message}");
        }
        other => panic!("expected an rpc error, got {other:?}"),
    }
}

/// The pay block of the fixture with attribute `key` set to `value` (`None`: removed).
fn pay_block_with(key: &str, value: Option<&str>) -> Value {
    let mut block = fixture().remove(&12347).unwrap();
    let attrs = block["txs_results"][0]["events"][2]["attributes"]
        .as_array_mut()
        .unwrap();
    attrs.retain(|a| a["key"] != key || value.is_some());
    for a in attrs.iter_mut() {
        if a["key"] == key {
            a["value"] = json!(value.unwrap());
        }
    }
    block
}

#[test]
fn malformed_attributes_are_typed_errors() {
    for (key, value, want) in [
        (
            "amount",
            Some("4e5"),
            "attribute amount=\"4e5\" is not a base-unit amount",
        ),
        (
            "fee",
            Some("100000000000000000000"),
            "attribute fee=\"100000000000000000000\" is not a base-unit amount below 10^20",
        ),
        (
            "paid_at",
            Some("-1"),
            "attribute paid_at=\"-1\" is not an integer",
        ),
        ("fee", None, "12347:0 event 2: missing attribute fee"),
    ] {
        match decode_block_results(&pay_block_with(key, value), CONTRACT) {
            Err(IndexerError::Malformed(m)) => assert!(m.contains(want), "{m}"),
            other => panic!("{key}={value:?}: expected Malformed, got {other:?}"),
        }
    }
    // An action the indexer does not know is skipped, not an error.
    let block = decode_block_results(&pay_block_with("action", Some("frobnicate")), CONTRACT);
    assert_eq!(block.unwrap().txs, vec![]);
}

/// The binary's `cosmos` subcommand runs the same step against the replayed node.
#[tokio::test]
async fn binary_cosmos_subcommand_indexes_the_node_once() {
    let url = serve_node().await;
    let db = TestDb::new(&[&advancia_indexer::MIGRATIONS]).await;
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_advancia-indexer"))
        .args([
            "--once",
            "--metrics-addr",
            "127.0.0.1:0",
            "cosmos",
            "--comet-url",
            &url,
        ])
        .args(["--contract", CONTRACT, "--start-height", "12345"])
        .env("DATABASE_URL", &db.url)
        .status()
        .await
        .unwrap();
    assert!(status.success());
    assert_eq!(count(&db, "transactions").await, 8);
    assert_eq!(count(&db, "payments").await, 1);
    let cursor: i64 = sqlx::query_scalar("SELECT slot FROM indexer.cursors WHERE source = $1")
        .bind(format!("cosmos:{CHAIN_ID}:{CONTRACT}"))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(cursor, 12352);
}

#[test]
fn asset_scales_are_validated() {
    let ok = ConfiguredAssets::parse("cosmos:x", " native:uatom=6, cw20:wasm1abc=8 ").unwrap();
    assert_eq!(ok.len(), 2);
    assert!(ConfiguredAssets::parse("cosmos:x", "").unwrap().is_empty());
    for bad in [
        "native:uatom",
        "native:uatom=x",
        "=6",
        "native:uatom=39",
        "a=1,a=2",
    ] {
        match ConfiguredAssets::parse("cosmos:x", bad) {
            Err(advancia_ledger::LedgerError::InvalidInput(_)) => {}
            other => panic!("{bad}: expected InvalidInput, got {other:?}"),
        }
    }
}

/// The contract's finalized money events become balanced ledger transfers once through the
/// ledger's posting rules; events of an asset without a configured scale are parked instead
/// of being guessed, and posted once the scale is configured.
#[tokio::test]
async fn money_events_reach_the_ledger_once_when_the_asset_is_configured() {
    let url = serve_node().await;
    let db = TestDb::new(&[&advancia_ledger::MIGRATIONS, &advancia_indexer::MIGRATIONS]).await;
    let config = CosmosConfig {
        start_height: 12345,
        ..CosmosConfig::new(&url, CONTRACT)
    };
    let ledger =
        advancia_ledger::Ledger::new(db.pool.clone(), advancia_ledger::LedgerConfig::default());
    let chain = format!("cosmos:{CHAIN_ID}");

    let mut indexer = CosmosIndexer::connect(db.pool.clone(), config)
        .await
        .unwrap();
    let r = indexer.step().await.unwrap();
    assert_eq!(r.events, 8);

    // No scale for uatom: the four money events are parked, nothing is posted.
    let unconfigured = ConfiguredAssets::parse(&chain, "native:uother=6").unwrap();
    let mut waiting = Projection::new(ledger.clone(), chain.clone(), unconfigured);
    waiting
        .follower(db.pool.clone())
        .catch_up(&mut waiting)
        .await
        .unwrap();
    let parked = waiting.parked().await.unwrap();
    assert_eq!(parked.len(), 4);
    assert!(parked[0].1.contains("native:uatom"), "{}", parked[0].1);
    let transfers = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ledger.transfers")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    assert_eq!(transfers().await, 0);

    // Configured: the parked events are posted, then nothing more.
    let assets = ConfiguredAssets::parse(&chain, "native:uatom=6").unwrap();
    let mut projection = Projection::new(ledger.clone(), chain.clone(), assets);
    assert_eq!(projection.retry_parked().await.unwrap(), 4);
    assert_eq!(transfers().await, 6);
    assert!(projection.parked().await.unwrap().is_empty());
    let r = indexer.step().await.unwrap();
    assert_eq!((r.heights, r.events), (0, 0));
    let follower = projection.follower(db.pool.clone());
    assert_eq!(follower.catch_up(&mut projection).await.unwrap(), 0);
    assert_eq!(projection.retry_parked().await.unwrap(), 0);
    assert_eq!(transfers().await, 6);

    let mint = "native:uatom";
    let ledger_id = posting::ledger_id(&chain, mint);
    let defs = ledger.ledgers().await.unwrap();
    let def = defs.iter().find(|d| d.id == ledger_id).unwrap();
    assert_eq!(
        (def.code.as_str(), def.scale),
        ("cosmos:advancia-vm-1:native:uatom", 6)
    );
    let bal = |id| {
        let ledger = ledger.clone();
        async move { ledger.balance(id).await.unwrap().unwrap() }
    };
    // pay 400000 (fee 10000), refund 150000, escrow 100000 opened, 60000 released (fee 1500).
    let clearing = bal(posting::pool_account_id(&chain, mint, Role::Clearing)).await;
    assert_eq!(
        (clearing.debits_posted, clearing.credits_posted),
        (500_000, 150_000)
    );
    let revenue = bal(posting::pool_account_id(&chain, mint, Role::FeeRevenue)).await;
    assert_eq!(revenue.credits_posted, 11_500);
    let held = bal(posting::pool_account_id(&chain, mint, Role::EscrowHeld)).await;
    assert_eq!((held.debits_posted, held.credits_posted), (60_000, 100_000));
    let payable = bal(posting::payable_account_id(&chain, mint, "clinic-1")).await;
    assert_eq!(
        (payable.debits_posted, payable.credits_posted),
        (150_000, 448_500)
    );
    let tb = ledger.trial_balance(ledger_id, None).await.unwrap();
    assert!(tb.is_balanced());
    assert_eq!(tb.total_debits, 710_000);
    assert!(ledger.verify_audit_chain().await.unwrap().is_intact());

    // Each leg chain carries the event's external reference.
    let (ix, inner): (i32, i32) = sqlx::query_as(
        "SELECT ix_index, inner_index FROM indexer.payments WHERE signature = '12347:0'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let packed = posting::external_ix_index(ix as u32, inner as u32);
    let t = ledger
        .lookup_by_external_ref(&chain, "12347:0", packed)
        .await
        .unwrap();
    assert!(t.is_some(), "payment leg by its chain reference");

    let text = indexer.metrics().render();
    assert!(
        text.contains("advancia_indexer_chain_head_slot 12352\n"),
        "{text}"
    );
    assert!(
        text.contains("advancia_indexer_head_lag_slots 0\n"),
        "{text}"
    );
    assert!(
        text.contains("advancia_indexer_events_total{kind=\"payment_made\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("advancia_indexer_transactions_total 8\n"));
}
