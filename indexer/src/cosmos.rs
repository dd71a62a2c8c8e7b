//! Cosmos source: the advancia-pay CosmWasm contract's `wasm` events, read from a CometBFT
//! node's JSON-RPC (`status`, `block_results`), written to the same tables as the Solana
//! path (see `docs/decisions/0010-*.md`).
//!
//! Row keys: chain `cosmos:<chain-id>`, signature `<height>:<tx index>` (`block_results`
//! carries no tx hash), slot = height, `ix_index` = tx index, `inner_index` = the event's
//! index among the tx's events. CometBFT has instant finality, so rows are `finalized`; an
//! optional confirmation depth only delays them.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::IndexerError;
use crate::metrics::{EVENT_KINDS, Metrics};
use crate::rows::{
    ADMIN, ATTESTATIONS, ESCROWS, EventRows, FACILITIES, PAYMENTS, REFUNDS, SETTLEMENTS, TABLES,
};
use crate::sink::{self, i64_of};

/// Largest value of the `numeric(20,0)` amount columns.
const MAX_NUMERIC_20: u128 = 99_999_999_999_999_999_999;

/// A CometBFT JSON-RPC client (URI form: `GET <url>/<method>?<params>`).
#[derive(Debug, Clone)]
pub struct CometRpc {
    http: reqwest::Client,
    url: String,
}

/// What `status` says about the node's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStatus {
    pub chain_id: String,
    pub latest_height: u64,
}

impl CometRpc {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.into().trim_end_matches('/').to_owned(),
        }
    }

    /// The `result` of one call; a JSON-RPC `error` becomes [`IndexerError::Rpc`].
    async fn call(&self, method: &str, params: &[(&str, String)]) -> Result<Value, IndexerError> {
        // CometBFT answers errors with HTTP 500 and a JSON-RPC body: read the body whatever
        // the status, so the node's message is kept.
        let body = self
            .http
            .get(format!("{}/{method}", self.url))
            .query(params)
            .send()
            .await?
            .bytes()
            .await?;
        let mut v: Value = serde_json::from_slice(&body)?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            let message = match (err.get("message"), err.get("data")) {
                (Some(m), Some(d)) => format!("{} ({})", text(m), text(d)),
                (Some(m), None) => text(m),
                _ => err.to_string(),
            };
            return Err(IndexerError::Rpc {
                method: method.to_owned(),
                message,
            });
        }
        v.get_mut("result")
            .map(Value::take)
            .ok_or_else(|| IndexerError::Malformed(format!("{method}: response without result")))
    }

    pub async fn status(&self) -> Result<ChainStatus, IndexerError> {
        let r = self.call("status", &[]).await?;
        let chain_id = r
            .pointer("/node_info/network")
            .and_then(Value::as_str)
            .ok_or_else(|| IndexerError::Malformed("status: no node_info.network".into()))?
            .to_owned();
        let latest_height = r
            .pointer("/sync_info/latest_block_height")
            .and_then(Value::as_str)
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| {
                IndexerError::Malformed("status: no numeric sync_info.latest_block_height".into())
            })?;
        Ok(ChainStatus {
            chain_id,
            latest_height,
        })
    }

    /// The `result` of `block_results` at `height`.
    pub async fn block_results(&self, height: u64) -> Result<Value, IndexerError> {
        self.call("block_results", &[("height", height.to_string())])
            .await
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// One decoded contract event: its table (`rows::TABLES` index) and values in
/// `Table::cols` order, as the Solana path produces them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosmosEvent {
    pub ix_index: u32,
    pub inner_index: u32,
    pub action: String,
    pub table: usize,
    pub values: Vec<Option<String>>,
}

impl CosmosEvent {
    /// Name of the event's table.
    pub fn table_name(&self) -> &'static str {
        TABLES[self.table].name
    }

    /// Value of column `col` (`None` if absent or NULL).
    pub fn value(&self, col: &str) -> Option<&str> {
        let i = TABLES[self.table].cols.iter().position(|c| c.0 == col)?;
        self.values.get(i)?.as_deref()
    }
}

/// A transaction of a block with at least one event of our contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosmosTx {
    /// `<height>:<tx index>`.
    pub signature: String,
    pub height: u64,
    pub events: Vec<CosmosEvent>,
}

/// Our contract's transactions in one block, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosmosBlock {
    pub height: u64,
    pub txs: Vec<CosmosTx>,
}

/// Decodes a `block_results` result: the `wasm` events whose `_contract_address` is
/// `contract`, in successful transactions (a failed tx's state changes are reverted).
/// Unknown actions are skipped; a known action with a missing or malformed attribute is
/// [`IndexerError::Malformed`].
pub fn decode_block_results(result: &Value, contract: &str) -> Result<CosmosBlock, IndexerError> {
    let height = result
        .get("height")
        .and_then(Value::as_str)
        .and_then(|h| h.parse::<u64>().ok())
        .ok_or_else(|| IndexerError::Malformed("block_results: no numeric height".into()))?;
    let mut block = CosmosBlock {
        height,
        txs: Vec::new(),
    };
    // `txs_results` is null in blocks without transactions.
    let txs = match result.get("txs_results") {
        None | Some(Value::Null) => return Ok(block),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(IndexerError::Malformed(format!(
                "block {height}: txs_results is not an array"
            )));
        }
    };
    for (ti, tx) in txs.iter().enumerate() {
        if tx.get("code").and_then(Value::as_u64).unwrap_or(0) != 0 {
            continue;
        }
        let ix_index = u32::try_from(ti)
            .map_err(|_| IndexerError::Malformed(format!("block {height}: tx index {ti}")))?;
        let signature = format!("{height}:{ti}");
        let mut events = Vec::new();
        let list = tx.get("events").and_then(Value::as_array);
        for (ei, ev) in list.into_iter().flatten().enumerate() {
            if ev.get("type").and_then(Value::as_str) != Some("wasm") {
                continue;
            }
            let attrs = Attrs::of(ev, &signature, ei)?;
            if attrs.find("_contract_address") != Some(contract) {
                continue;
            }
            let action = attrs.get("action")?.to_owned();
            let Some((table, values)) = event_values(&action, &attrs)? else {
                tracing::debug!(%signature, event = ei, %action, "unknown contract action skipped");
                continue;
            };
            events.push(CosmosEvent {
                ix_index,
                inner_index: u32::try_from(ei).map_err(|_| {
                    IndexerError::Malformed(format!("{signature}: event index {ei}"))
                })?,
                action,
                table,
                values,
            });
        }
        if !events.is_empty() {
            block.txs.push(CosmosTx {
                signature,
                height,
                events,
            });
        }
    }
    Ok(block)
}

/// The attributes of one event, with the location for error messages.
struct Attrs<'a> {
    list: Vec<(&'a str, &'a str)>,
    at: String,
}

impl<'a> Attrs<'a> {
    fn of(ev: &'a Value, signature: &str, ei: usize) -> Result<Self, IndexerError> {
        let at = format!("{signature} event {ei}");
        let mut list = Vec::new();
        for a in ev
            .get("attributes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // CometBFT >= 0.37 sends attributes as plain strings (0.34 base64-encoded them).
            match (
                a.get("key").and_then(Value::as_str),
                a.get("value").and_then(Value::as_str),
            ) {
                (Some(k), Some(v)) => list.push((k, v)),
                _ => {
                    return Err(IndexerError::Malformed(format!(
                        "{at}: attribute without string key/value: {a}"
                    )));
                }
            }
        }
        Ok(Self { list, at })
    }

    fn find(&self, key: &str) -> Option<&'a str> {
        self.list.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn get(&self, key: &str) -> Result<&'a str, IndexerError> {
        self.find(key)
            .ok_or_else(|| IndexerError::Malformed(format!("{}: missing attribute {key}", self.at)))
    }

    fn bad(&self, key: &str, value: &str, want: &str) -> IndexerError {
        IndexerError::Malformed(format!(
            "{}: attribute {key}={value:?} is not {want}",
            self.at
        ))
    }

    /// A base-unit amount that fits the `numeric(20,0)` columns.
    fn amount(&self, key: &str) -> Result<Option<String>, IndexerError> {
        let v = self.get(key)?;
        match digits(v).and_then(|_| v.parse::<u128>().ok()) {
            Some(n) if n <= MAX_NUMERIC_20 => Ok(Some(n.to_string())),
            _ => Err(self.bad(key, v, "a base-unit amount below 10^20")),
        }
    }

    /// A u64 that also fits `bigint` (times, counts).
    fn int(&self, key: &str) -> Result<Option<String>, IndexerError> {
        let v = self.get(key)?;
        match digits(v).and_then(|_| v.parse::<u64>().ok()) {
            Some(n) if i64_of(n).is_ok() => Ok(Some(n.to_string())),
            _ => Err(self.bad(key, v, "an integer below 2^63")),
        }
    }

    fn str(&self, key: &str) -> Result<Option<String>, IndexerError> {
        let v = self.get(key)?;
        if v.is_empty() {
            return Err(self.bad(key, v, "a non-empty string"));
        }
        Ok(Some(v.to_owned()))
    }

    /// `<payer>/<id>`: the contract keys payments and escrows by (payer, id).
    fn key(&self, id: &str) -> Result<Option<String>, IndexerError> {
        Ok(Some(format!("{}/{}", self.get("payer")?, self.get(id)?)))
    }
}

fn digits(v: &str) -> Option<()> {
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then_some(())
}

/// A table (`rows::TABLES` index) and its values in `Table::cols` order.
type Mapped = (usize, Vec<Option<String>>);

/// Table and values of a known action (`None`: unknown action).
fn event_values(action: &str, a: &Attrs<'_>) -> Result<Option<Mapped>, IndexerError> {
    let s = |v: &str| Some(v.to_owned());
    let zero = || s("0");
    Ok(Some(match action {
        // payment, payer, facility, invoice_id, reference, mint, amount, fee, paid_at.
        // The contract has no Solana Pay reference: empty.
        "pay" => (
            PAYMENTS,
            vec![
                a.key("invoice_id")?,
                a.str("payer")?,
                a.str("facility_id")?,
                a.str("invoice_id")?,
                s(""),
                a.str("asset")?,
                a.amount("amount")?,
                a.amount("fee")?,
                a.int("paid_at")?,
            ],
        ),
        // payment, facility, payer, mint, amount, refunded_total.
        "refund" => (
            REFUNDS,
            vec![
                a.key("invoice_id")?,
                a.str("facility_id")?,
                a.str("payer")?,
                a.str("asset")?,
                a.amount("amount")?,
                a.amount("refunded_total")?,
            ],
        ),
        // kind, escrow, actor, payer, facility, arbiter, mint, amount, fee, released_total,
        // expires_at.
        "open_escrow" => (
            ESCROWS,
            vec![
                s("opened"),
                a.key("escrow_id")?,
                a.str("payer")?,
                a.str("payer")?,
                a.str("facility_id")?,
                a.str("arbiter")?,
                a.str("asset")?,
                a.amount("amount")?,
                zero(),
                None,
                a.int("expires_at")?,
            ],
        ),
        "release_escrow" => (
            ESCROWS,
            vec![
                s("released"),
                a.key("escrow_id")?,
                a.str("by")?,
                a.str("payer")?,
                None,
                None,
                a.str("asset")?,
                a.amount("amount")?,
                a.amount("fee")?,
                a.amount("released_total")?,
                None,
            ],
        ),
        "refund_escrow" => (
            ESCROWS,
            vec![
                s("refunded"),
                a.key("escrow_id")?,
                a.str("by")?,
                a.str("payer")?,
                None,
                None,
                a.str("asset")?,
                a.amount("amount")?,
                zero(),
                None,
                None,
            ],
        ),
        // kind, facility, facility_id, authority, payout_wallet. The contract keys
        // facilities by id (no address of their own), so facility = facility_id.
        "register_facility" => (
            FACILITIES,
            vec![
                s("registered"),
                a.str("facility_id")?,
                a.str("facility_id")?,
                a.str("authority")?,
                a.str("payout")?,
            ],
        ),
        "update_facility_payout" => (
            FACILITIES,
            vec![
                s("payout_updated"),
                a.str("facility_id")?,
                None,
                None,
                a.str("payout")?,
            ],
        ),
        "deactivate_facility" => (
            FACILITIES,
            vec![s("deactivated"), a.str("facility_id")?, None, None, None],
        ),
        // kind, wallet, level, expires_at (renew also reinstates: `written`, as on Solana).
        "write_attestation" | "renew_attestation" => {
            let level = a.get("level")?;
            if level.parse::<u8>().is_err() {
                return Err(a.bad("level", level, "a level 0..=255"));
            }
            (
                ATTESTATIONS,
                vec![
                    s("written"),
                    a.str("wallet")?,
                    s(level),
                    a.int("expires_at")?,
                ],
            )
        }
        "revoke_attestation" => (
            ATTESTATIONS,
            vec![s("revoked"), a.str("wallet")?, None, None],
        ),
        // batch_number, root, entry_count, totals (same JSON shape as Solana's).
        "commit_batch" => {
            let root = a.get("root")?;
            if root.len() != 64 || hex::decode(root).is_err() {
                return Err(a.bad("root", root, "32 bytes of hex"));
            }
            let raw = a.get("totals")?;
            let mut totals = Vec::new();
            for t in raw.split(';').filter(|t| !t.is_empty()) {
                let (asset, amount) = t
                    .rsplit_once('=')
                    .filter(|(asset, amount)| {
                        !asset.is_empty()
                            && digits(amount).is_some()
                            && amount.parse::<u128>().is_ok()
                    })
                    .ok_or_else(|| a.bad("totals", raw, "<asset>=<amount> joined by ;"))?;
                totals.push(json!({"mint": asset, "amount": amount}));
            }
            (
                SETTLEMENTS,
                vec![
                    a.int("batch_number")?,
                    s(&root.to_ascii_lowercase()),
                    a.int("entry_count")?,
                    Some(Value::Array(totals).to_string()),
                ],
            )
        }
        // Config, admin, asset, validator set and bridge inbox: kept whole as admin events
        // (kind = action, body = the attributes).
        "instantiate"
        | "update_config"
        | "propose_admin"
        | "accept_admin"
        | "set_asset"
        | "update_validator_set"
        | "bridge_message" => {
            let body: serde_json::Map<String, Value> = a
                .list
                .iter()
                .filter(|(k, _)| *k != "_contract_address" && *k != "action")
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                .collect();
            (
                ADMIN,
                vec![s(action), Some(Value::Object(body).to_string())],
            )
        }
        _ => return Ok(None),
    }))
}

/// Writes decoded blocks and moves the cursor to `up_to` (the last height read, with or
/// without events) in one database transaction. Transactions already stored are skipped, so
/// re-writing a range changes nothing. Returns the event rows inserted.
pub async fn write_blocks(
    pool: &PgPool,
    chain: &str,
    source: &str,
    blocks: &[CosmosBlock],
    up_to: u64,
) -> Result<u64, IndexerError> {
    Ok(write_blocks_by_kind(pool, chain, source, blocks, up_to)
        .await?
        .0)
}

/// The `advancia_indexer_events_total` kind of a contract action (the Solana program's
/// event of the same meaning); `None` for actions without one (bridge messages, validator
/// set changes).
pub fn action_kind_index(action: &str) -> Option<usize> {
    let kind = match action {
        "instantiate" | "update_config" => "config_updated",
        "propose_admin" => "admin_proposed",
        "accept_admin" => "admin_accepted",
        "set_asset" => "asset_set",
        "register_facility" => "facility_registered",
        "update_facility_payout" => "facility_payout_updated",
        "deactivate_facility" => "facility_deactivated",
        "pay" => "payment_made",
        "refund" => "payment_refunded",
        "open_escrow" => "escrow_opened",
        "release_escrow" => "escrow_released",
        "refund_escrow" => "escrow_refunded",
        "write_attestation" | "renew_attestation" => "attestation_written",
        "revoke_attestation" => "attestation_revoked",
        "commit_batch" => "batch_committed",
        _ => return None,
    };
    EVENT_KINDS.iter().position(|k| *k == kind)
}

/// [`write_blocks`], also returning the written events counted by
/// [`action_kind_index`] (actions without a kind are in the total only).
pub async fn write_blocks_by_kind(
    pool: &PgPool,
    chain: &str,
    source: &str,
    blocks: &[CosmosBlock],
    up_to: u64,
) -> Result<(u64, [u64; EVENT_KINDS.len()]), IndexerError> {
    let mut by_kind = [0u64; EVENT_KINDS.len()];
    let txs: Vec<&CosmosTx> = blocks.iter().flat_map(|b| &b.txs).collect();
    let mut db = pool.begin().await?;
    sink::lock_event_seq(&mut db).await?;
    let mut sigs = Vec::new();
    let mut slots = Vec::new();
    let mut counts = Vec::new();
    let mut actions = Vec::new();
    for t in &txs {
        sigs.push(t.signature.clone());
        slots.push(i64_of(t.height)?);
        counts.push(i32::try_from(t.events.len()).unwrap_or(i32::MAX));
        let names: Vec<&str> = t.events.iter().map(|e| e.action.as_str()).collect();
        actions.push(names.join(","));
    }
    let fresh: Vec<String> = sqlx::query_scalar(
        "INSERT INTO indexer.transactions
             (chain, signature, slot, commitment, failed, block_time, event_count, instructions)
         SELECT $1, s, sl, 'finalized', false, NULL, n, string_to_array(ins, ',')
           FROM unnest($2::text[], $3::int8[], $4::int4[], $5::text[]) AS u(s, sl, n, ins)
         ON CONFLICT DO NOTHING RETURNING signature",
    )
    .bind(chain)
    .bind(&sigs)
    .bind(&slots)
    .bind(&counts)
    .bind(&actions)
    .fetch_all(&mut *db)
    .await?;
    let fresh: HashSet<String> = fresh.into_iter().collect();
    let mut rows = EventRows::new();
    let mut ordinal = 0i64;
    for t in txs.iter().filter(|t| fresh.contains(&t.signature)) {
        for e in &t.events {
            if let Some(k) = action_kind_index(&e.action) {
                by_kind[k] += 1;
            }
            let r = &mut rows.tables[e.table];
            r.signature.push(t.signature.clone());
            r.ix_index
                .push(i32::try_from(e.ix_index).unwrap_or(i32::MAX));
            r.inner_index
                .push(i32::try_from(e.inner_index).unwrap_or(i32::MAX));
            r.slot.push(i64_of(t.height)?);
            r.commitment.push(crate::Commitment::Finalized.as_str());
            r.block_time.push(None);
            r.ordinal.push(ordinal);
            ordinal += 1;
            for (col, v) in r.cols.iter_mut().zip(&e.values) {
                col.push(v.clone());
            }
        }
    }
    // Same numbering as the Solana sink: a block of the stream sequence, under the lock.
    let first_seq = sink::reserve_seq(&mut db, ordinal).await?;
    let inserted = sink::insert_event_rows(&mut db, "indexer", chain, &rows, first_seq).await?;
    sink::save_cursor(&mut db, source, Some(&up_to.to_string()), Some(up_to)).await?;
    if inserted > 0 {
        sink::notify(&mut db, chain).await?;
    }
    db.commit().await?;
    Ok((inserted, by_kind))
}

#[derive(Debug, Clone)]
pub struct CosmosConfig {
    pub rpc_url: String,
    /// Bech32 address of the advancia-pay contract.
    pub contract: String,
    /// First height read when there is no cursor yet (the contract's instantiation block).
    pub start_height: u64,
    /// Rows are written only for heights `<= latest - depth` (0: CometBFT is final at once).
    pub depth: u64,
    /// Heights read per step (one database transaction).
    pub max_heights: u64,
    /// `block_results` requests in flight at once.
    pub fetch_concurrency: usize,
}

impl CosmosConfig {
    pub fn new(rpc_url: impl Into<String>, contract: impl Into<String>) -> Self {
        Self {
            rpc_url: rpc_url.into(),
            contract: contract.into(),
            start_height: 1,
            depth: 0,
            max_heights: 100,
            fetch_concurrency: 4,
        }
    }
}

/// What one [`CosmosIndexer::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CosmosStepReport {
    pub latest_height: u64,
    pub heights: u64,
    pub transactions: u64,
    pub events: u64,
    /// Cursor after the step (`None`: nothing read yet).
    pub cursor: Option<u64>,
}

pub struct CosmosIndexer {
    pool: PgPool,
    rpc: CometRpc,
    config: CosmosConfig,
    chain: String,
    source: String,
    metrics: Arc<Metrics>,
}

impl CosmosIndexer {
    /// Asks the node for its chain id (part of the row chain name and cursor name).
    pub async fn connect(pool: PgPool, config: CosmosConfig) -> Result<Self, IndexerError> {
        let rpc = CometRpc::new(config.rpc_url.clone());
        let status = rpc.status().await?;
        let chain = format!("cosmos:{}", status.chain_id);
        let source = format!("{chain}:{}", config.contract);
        Ok(Self {
            pool,
            rpc,
            config,
            chain,
            source,
            metrics: Metrics::new(),
        })
    }

    /// Counters and gauges of this source (serve them with [`crate::metrics::serve`]):
    /// heights play the role of slots.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Row chain name, `cosmos:<chain-id>`.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// Cursor name, `cosmos:<chain-id>:<contract>`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The last height fully written.
    pub async fn cursor(&self) -> Result<Option<u64>, IndexerError> {
        Ok(sink::load_cursor(&self.pool, &self.source).await?.slot)
    }

    /// Reads the heights after the cursor up to `latest - depth` (at most `max_heights`)
    /// and writes their rows and the new cursor in one database transaction (rows are
    /// final when written).
    pub async fn step(&mut self) -> Result<CosmosStepReport, IndexerError> {
        self.ingest().await
    }

    async fn ingest(&self) -> Result<CosmosStepReport, IndexerError> {
        let cursor = self.cursor().await?;
        let latest = self.rpc.status().await?.latest_height;
        let m = &self.metrics;
        m.chain_head_slot.store(latest, Ordering::Relaxed);
        let lag = |read: Option<u64>| {
            i64::try_from(latest.saturating_sub(read.unwrap_or(0))).unwrap_or(i64::MAX)
        };
        m.head_lag_slots.store(lag(cursor), Ordering::Relaxed);
        let mut report = CosmosStepReport {
            latest_height: latest,
            cursor,
            ..Default::default()
        };
        let from = cursor.map_or(self.config.start_height, |c| c + 1);
        let Some(target) = latest.checked_sub(self.config.depth) else {
            return Ok(report);
        };
        if from > target {
            return Ok(report);
        }
        let to = target.min(from.saturating_add(self.config.max_heights.max(1) - 1));
        let blocks: Vec<CosmosBlock> = futures_util::stream::iter(from..=to)
            .map(|h| async move {
                let result = self.rpc.block_results(h).await?;
                let block = decode_block_results(&result, &self.config.contract)?;
                if block.height != h {
                    return Err(IndexerError::Malformed(format!(
                        "asked block_results at {h}, got {}",
                        block.height
                    )));
                }
                Ok(block)
            })
            .buffered(self.config.fetch_concurrency.max(1))
            .try_collect()
            .await?;
        let (events, by_kind) =
            write_blocks_by_kind(&self.pool, &self.chain, &self.source, &blocks, to).await?;
        report.events = events;
        report.heights = to - from + 1;
        report.transactions = blocks.iter().map(|b| b.txs.len() as u64).sum();
        report.cursor = Some(to);
        for (counter, n) in m.events.iter().zip(by_kind) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
        m.transactions
            .fetch_add(report.transactions, Ordering::Relaxed);
        m.batches.fetch_add(1, Ordering::Relaxed);
        m.cursor_slot.store(to, Ordering::Relaxed);
        m.head_lag_slots.store(lag(Some(to)), Ordering::Relaxed);
        Ok(report)
    }
}
