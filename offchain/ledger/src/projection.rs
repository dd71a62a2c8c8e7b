//! The posting rules: every finalized money event the indexer streams becomes one balanced,
//! linked chain of ledger transfers (ADR 0023; the rules themselves are ADR 0008's).
//!
//! Accounts per asset (mint): `clearing` (asset: funds moving on-chain), `escrow held`
//! (liability), `fee revenue` (revenue), and per facility and asset a `payable` (liability).
//! Postings (gross amount A, fee F):
//! - payment:        clearing → payable A−F, clearing → fee revenue F (linked)
//! - refund:         payable → clearing R
//! - escrow opened:  clearing → escrow held E
//! - escrow release: escrow held → payable A−F, escrow held → fee revenue F (linked)
//! - escrow refund:  escrow held → clearing R
//!
//! The projection follows the indexer's stream ([`advancia_indexer_store::stream::IndexerLog`])
//! behind a cursor in `ledger.cursors`. Transfer ids are derived from (chain, signature,
//! instruction, inner index, leg) and the first leg carries the external reference, so an
//! event handed over twice (a crash between posting and moving the cursor) finds its
//! transfers already there: posted exactly once. An event that cannot be posted yet (its
//! asset's scale is not known, or an escrow opened before indexing began) is parked in
//! `ledger.parked_events`, which does not hold up the events behind it, and is retried.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use advancia_db::follow::{BoxError, Cursor, Follower, Handler};
use advancia_indexer_store::stream::{IndexedEvent, IndexerLog, StreamFilter};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use crate::{
    AccountKind, ExternalRef, Ledger, LedgerDef, LedgerError, NewAccount, NewTransfer, OwnerKind,
    OwnerRef, TransferError, transfer_flags,
};

/// Ledger transfer codes, one per event kind.
pub mod codes {
    pub const PAYMENT: u16 = 1;
    pub const REFUND: u16 = 2;
    pub const ESCROW_OPEN: u16 = 3;
    pub const ESCROW_RELEASE: u16 = 4;
    pub const ESCROW_REFUND: u16 = 5;
}

/// The most legs one event posts (a payment or release: net and fee).
pub const MAX_LEGS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("asset lookup: {0}")]
    Asset(String),
    #[error("malformed indexed event {0}: {1}")]
    Malformed(String, String),
    #[error("ledger rejected account {0:#x}: {1}")]
    Account(u128, crate::AccountError),
    #[error("ledger rejected the transfers of {0}: {1}")]
    Transfer(String, TransferError),
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// Deterministic non-zero u128 id (never 2^128−1 in practice; clamped anyway).
pub fn derived_id(parts: &[&str]) -> u128 {
    let d = digest(parts);
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_be_bytes(b).clamp(1, u128::MAX - 1)
}

/// Ledger (asset) id of a mint on a chain.
pub fn ledger_id(chain: &str, mint: &str) -> u32 {
    let d = digest(&["ledger", chain, mint]);
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]).max(1)
}

/// The ledger's `ext_ix_index` for an event: top-level instruction in the high 16 bits,
/// inner index in the low 16 (one instruction can emit several events).
pub fn external_ix_index(ix_index: u32, inner_index: u32) -> u32 {
    (ix_index << 16) | (inner_index & 0xffff)
}

/// Id of leg `leg` of the event at (`chain`, `signature`, `ix`, `inner`).
pub fn transfer_id(chain: &str, signature: &str, ix: u32, inner: u32, leg: u32) -> u128 {
    derived_id(&[
        "transfer",
        chain,
        signature,
        &ix.to_string(),
        &inner.to_string(),
        &leg.to_string(),
    ])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Clearing,
    EscrowHeld,
    FeeRevenue,
}

pub fn pool_account_id(chain: &str, mint: &str, role: Role) -> u128 {
    derived_id(&["account", chain, mint, &format!("{role:?}")])
}

pub fn payable_account_id(chain: &str, mint: &str, facility: &str) -> u128 {
    derived_id(&["account", chain, mint, "payable", facility])
}

/// An asset's ledger code and decimal scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetInfo {
    pub code: String,
    pub scale: u8,
}

/// Where the projection learns an asset's ledger code and scale, per chain family (the
/// Solana one reads the mint account; see `advancia-chains`).
pub trait AssetScales: Send + Sync {
    /// `Ok(None)`: the asset is not known (yet); its events are parked and retried.
    fn asset(
        &self,
        asset: &str,
    ) -> impl Future<Output = Result<Option<AssetInfo>, ProjectionError>> + Send;
}

/// Assets with operator-configured scales, for chains whose events name an asset but whose
/// decimals are not on-chain metadata we read (CosmWasm `native:<denom>` and
/// `cw20:<address>`). Ledger codes are prefixed with the chain so two chains' `uatom` stay
/// distinct ledgers.
#[derive(Debug, Clone, Default)]
pub struct ConfiguredAssets {
    chain: String,
    scales: std::collections::BTreeMap<String, u8>,
}

impl ConfiguredAssets {
    /// From `asset=scale` pairs joined by commas, e.g. `native:ustake=6,cw20:wasm1…=8`.
    pub fn parse(chain: impl Into<String>, spec: &str) -> Result<Self, LedgerError> {
        let mut scales = std::collections::BTreeMap::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad =
                || LedgerError::InvalidInput(format!("asset scale `{item}` is not asset=0..38"));
            let (asset, scale) = item.rsplit_once('=').ok_or_else(bad)?;
            let scale: u8 = scale.trim().parse().map_err(|_| bad())?;
            let asset = asset.trim();
            if asset.is_empty() || scale > 38 {
                return Err(bad());
            }
            if scales.insert(asset.to_string(), scale).is_some() {
                return Err(LedgerError::InvalidInput(format!(
                    "asset {asset} configured twice"
                )));
            }
        }
        Ok(Self {
            chain: chain.into(),
            scales,
        })
    }

    pub fn len(&self) -> usize {
        self.scales.len()
    }

    /// The chain these assets belong to (`cosmos:<chain id>`).
    pub fn chain(&self) -> &str {
        &self.chain
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }
}

impl AssetScales for ConfiguredAssets {
    async fn asset(&self, asset: &str) -> Result<Option<AssetInfo>, ProjectionError> {
        Ok(self.scales.get(asset).map(|&scale| AssetInfo {
            code: format!("{}:{asset}", self.chain),
            scale,
        }))
    }
}

/// A finalized money event, as the stream carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MoneyEvent {
    pub chain: String,
    pub signature: String,
    pub ix_index: u32,
    pub inner_index: u32,
    /// `payment`, `refund`, `opened`, `released` or `refunded`.
    pub kind: String,
    pub facility: Option<String>,
    pub mint: Option<String>,
    pub amount: u128,
    pub fee: u128,
}

impl MoneyEvent {
    /// The money event in `e`, if it is one and final (confirmed rows wait for their
    /// finalized version, which the stream sends again; rollbacks only ever undo those).
    pub fn from_indexed(e: &IndexedEvent) -> Result<Option<MoneyEvent>, ProjectionError> {
        if e.commitment.as_deref() != Some("finalized") {
            return Ok(None);
        }
        let kind = match (e.source.as_str(), e.kind.as_str()) {
            ("payments", _) => "payment",
            ("refunds", _) => "refund",
            ("escrows", "escrow_opened") => "opened",
            ("escrows", "escrow_released") => "released",
            ("escrows", "escrow_refunded") => "refunded",
            _ => return Ok(None),
        };
        let key = || format!("{}:{:?}:{:?}", e.signature, e.ix_index, e.inner_index);
        let text = |k: &str| e.data.get(k).and_then(Value::as_str).map(str::to_owned);
        let amount = |k: &str| -> Result<u128, ProjectionError> {
            match e.data.get(k) {
                None | Some(Value::Null) => Ok(0),
                Some(Value::String(s)) => s
                    .parse()
                    .map_err(|_| ProjectionError::Malformed(key(), format!("{k} {s}"))),
                Some(v) => Err(ProjectionError::Malformed(key(), format!("{k} {v}"))),
            }
        };
        let index = |v: Option<i32>, what: &str| {
            v.and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| ProjectionError::Malformed(key(), format!("{what} {v:?}")))
        };
        Ok(Some(MoneyEvent {
            chain: e.chain.clone(),
            signature: e.signature.clone(),
            ix_index: index(e.ix_index, "ix_index")?,
            inner_index: index(e.inner_index, "inner_index")?,
            kind: kind.to_owned(),
            facility: text("facility"),
            mint: text("mint"),
            amount: amount("amount")?,
            fee: amount("fee")?,
        }))
    }
}

/// Counters of one projection (for metrics).
#[derive(Debug, Default)]
pub struct ProjectionStats {
    pub events_posted: AtomicU64,
    pub transfers_posted: AtomicU64,
    pub events_parked: AtomicU64,
}

/// Posts one chain's finalized money events to the ledger.
pub struct Projection<A> {
    ledger: Ledger,
    chain: String,
    assets: A,
    known_ledgers: HashSet<u32>,
    known_accounts: HashSet<u128>,
    stats: Arc<ProjectionStats>,
}

/// What became of one event.
enum Outcome {
    Posted(usize),
    /// Not postable yet, with the reason.
    Waits(String),
}

impl<A: AssetScales> Projection<A> {
    pub fn new(ledger: Ledger, chain: impl Into<String>, assets: A) -> Self {
        Self {
            ledger,
            chain: chain.into(),
            assets,
            known_ledgers: HashSet::new(),
            known_accounts: HashSet::new(),
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<ProjectionStats> {
        self.stats.clone()
    }

    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// The follower of this chain's events in the indexer database `indexer`, with its cursor
    /// in the ledger's database.
    pub fn follower(&self, indexer: PgPool) -> Follower<IndexerLog> {
        Follower::new(
            IndexerLog::new(
                indexer,
                StreamFilter {
                    chain: Some(self.chain.clone()),
                    ..StreamFilter::default()
                },
            ),
            Cursor::new(
                self.ledger.pool().clone(),
                "ledger.cursors",
                format!("projection:{}", self.chain),
            ),
        )
    }

    /// Follows the indexer until `stop`, retrying parked events every `retry`.
    pub async fn run(mut self, indexer: PgPool, retry: Duration, stop: impl Future<Output = ()>) {
        let follower = self.follower(indexer);
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.retry_parked().await {
                tracing::warn!(chain = %self.chain, error = %e, "retrying parked ledger events failed");
            }
            let until = tokio::time::sleep(retry);
            tokio::select! {
                _ = &mut stop => return,
                _ = follower.run(&mut self, until) => {}
            }
        }
    }

    /// The asset's ledger id, creating the ledger and its pool accounts on first use;
    /// `None` while the asset's scale is unknown.
    async fn ensure_asset(&mut self, mint: &str) -> Result<Option<u32>, ProjectionError> {
        let id = ledger_id(&self.chain, mint);
        if self.known_ledgers.contains(&id) {
            return Ok(Some(id));
        }
        let Some(AssetInfo { code, scale }) = self.assets.asset(mint).await? else {
            return Ok(None);
        };
        self.ledger
            .create_ledger(&LedgerDef { id, code, scale })
            .await?;
        let chain = self.chain.clone();
        let accounts = [
            (
                pool_account_id(&chain, mint, Role::Clearing),
                AccountKind::Asset,
                OwnerKind::ChainVault,
                format!("{chain}:clearing:{mint}"),
            ),
            (
                pool_account_id(&chain, mint, Role::EscrowHeld),
                AccountKind::Liability,
                OwnerKind::ChainVault,
                format!("{chain}:escrow:{mint}"),
            ),
            (
                pool_account_id(&chain, mint, Role::FeeRevenue),
                AccountKind::Revenue,
                OwnerKind::Treasury,
                format!("{chain}:fees:{mint}"),
            ),
        ];
        self.create_accounts(id, &accounts).await?;
        self.known_ledgers.insert(id);
        Ok(Some(id))
    }

    async fn create_accounts(
        &mut self,
        ledger: u32,
        accounts: &[(u128, AccountKind, OwnerKind, String)],
    ) -> Result<(), ProjectionError> {
        let new: Vec<NewAccount> = accounts
            .iter()
            .filter(|a| !self.known_accounts.contains(&a.0))
            .map(|(id, kind, owner, owner_id)| NewAccount {
                id: *id,
                ledger,
                kind: *kind,
                owner: OwnerRef {
                    kind: *owner,
                    id: owner_id.clone(),
                },
                flags: 0,
                jurisdiction: None,
                user_data: 0,
            })
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        for (result, n) in self
            .ledger
            .create_accounts(&new)
            .await?
            .into_iter()
            .zip(&new)
        {
            result.map_err(|e| ProjectionError::Account(n.id, e))?;
            self.known_accounts.insert(n.id);
        }
        Ok(())
    }

    /// The legs of `e`, or why it waits.
    async fn legs(
        &mut self,
        e: &MoneyEvent,
    ) -> Result<Result<Vec<NewTransfer>, String>, ProjectionError> {
        let (Some(facility), Some(mint)) = (e.facility.as_deref(), e.mint.as_deref()) else {
            // A release/refund of an escrow opened before indexing began.
            return Ok(Err("escrow event without a known opening".into()));
        };
        let Some(ledger) = self.ensure_asset(mint).await? else {
            return Ok(Err(format!("scale of asset {mint} unknown")));
        };
        let chain = self.chain.clone();
        let payable = payable_account_id(&chain, mint, facility);
        self.create_accounts(
            ledger,
            &[(
                payable,
                AccountKind::Liability,
                OwnerKind::Facility,
                facility.to_string(),
            )],
        )
        .await?;
        let clearing = pool_account_id(&chain, mint, Role::Clearing);
        let held = pool_account_id(&chain, mint, Role::EscrowHeld);
        let revenue = pool_account_id(&chain, mint, Role::FeeRevenue);
        let key = || format!("{}:{}:{}", e.signature, e.ix_index, e.inner_index);
        let net = e
            .amount
            .checked_sub(e.fee)
            .ok_or_else(|| ProjectionError::Malformed(key(), "fee above amount".into()))?;
        let (code, legs): (u16, Vec<(u128, u128, u128)>) = match e.kind.as_str() {
            "payment" => (
                codes::PAYMENT,
                vec![(clearing, payable, net), (clearing, revenue, e.fee)],
            ),
            "refund" => (codes::REFUND, vec![(payable, clearing, e.amount)]),
            "opened" => (codes::ESCROW_OPEN, vec![(clearing, held, e.amount)]),
            "released" => (
                codes::ESCROW_RELEASE,
                vec![(held, payable, net), (held, revenue, e.fee)],
            ),
            "refunded" => (codes::ESCROW_REFUND, vec![(held, clearing, e.amount)]),
            other => {
                return Err(ProjectionError::Malformed(
                    key(),
                    format!("money event kind {other}"),
                ));
            }
        };
        let legs: Vec<_> = legs.into_iter().filter(|l| l.2 > 0).collect();
        let count = legs.len();
        Ok(Ok(legs
            .into_iter()
            .enumerate()
            .map(|(i, (debit, credit, amount))| NewTransfer {
                id: transfer_id(
                    &chain,
                    &e.signature,
                    e.ix_index,
                    e.inner_index,
                    u32::try_from(i).unwrap_or(u32::MAX),
                ),
                debit_account_id: debit,
                credit_account_id: credit,
                amount,
                ledger,
                code,
                flags: if i + 1 < count {
                    transfer_flags::LINKED
                } else {
                    0
                },
                external_ref: (i == 0).then(|| ExternalRef {
                    chain: chain.clone(),
                    signature: e.signature.clone(),
                    ix_index: external_ix_index(e.ix_index, e.inner_index),
                }),
                ..NewTransfer::default()
            })
            .collect()))
    }

    /// Posts `events` in one ledger call (one ledger transaction in batched mode; each
    /// event's legs form their own linked chain). Returns each event's outcome.
    async fn post(&mut self, events: &[MoneyEvent]) -> Result<Vec<Outcome>, ProjectionError> {
        let mut transfers: Vec<NewTransfer> = Vec::new();
        let mut plan = Vec::with_capacity(events.len());
        for e in events {
            match self.legs(e).await? {
                Ok(legs) => {
                    let span = transfers.len()..transfers.len() + legs.len();
                    transfers.extend(legs);
                    plan.push(Ok(span));
                }
                Err(reason) => plan.push(Err(reason)),
            }
        }
        let results = if transfers.is_empty() {
            Vec::new()
        } else {
            self.ledger.create_transfers(&transfers).await?
        };
        let mut out = Vec::with_capacity(events.len());
        for (e, p) in events.iter().zip(plan) {
            match p {
                Err(reason) => out.push(Outcome::Waits(reason)),
                Ok(span) => {
                    let outcome: &[Result<crate::Transfer, TransferError>] =
                        results.get(span.clone()).ok_or_else(|| {
                            ProjectionError::Malformed(
                                e.signature.clone(),
                                "ledger returned fewer results than transfers".into(),
                            )
                        })?;
                    if let Some(err) = outcome.iter().find_map(|r| r.as_ref().err()) {
                        return Err(ProjectionError::Transfer(e.signature.clone(), *err));
                    }
                    out.push(Outcome::Posted(span.len()));
                }
            }
        }
        Ok(out)
    }

    fn count(&self, outcomes: &[Outcome]) {
        for o in outcomes {
            match o {
                Outcome::Posted(n) => {
                    self.stats.events_posted.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .transfers_posted
                        .fetch_add(*n as u64, Ordering::Relaxed);
                }
                Outcome::Waits(_) => {
                    self.stats.events_parked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Posts what was parked and can be posted now; returns how many were posted.
    pub async fn retry_parked(&mut self) -> Result<usize, ProjectionError> {
        let pool = self.ledger.pool().clone();
        let parked: Vec<sqlx::types::Json<MoneyEvent>> = sqlx::query_scalar(
            "SELECT event FROM ledger.parked_events WHERE chain = $1 ORDER BY parked_at LIMIT 500",
        )
        .bind(&self.chain)
        .fetch_all(&pool)
        .await?;
        if parked.is_empty() {
            return Ok(0);
        }
        let events: Vec<MoneyEvent> = parked.into_iter().map(|j| j.0).collect();
        let outcomes = self.post(&events).await?;
        let mut posted = 0;
        for (e, o) in events.iter().zip(&outcomes) {
            match o {
                Outcome::Posted(n) => {
                    posted += 1;
                    self.stats.events_posted.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .transfers_posted
                        .fetch_add(*n as u64, Ordering::Relaxed);
                    sqlx::query(
                        "DELETE FROM ledger.parked_events
                          WHERE chain = $1 AND signature = $2 AND ix_index = $3 AND inner_index = $4",
                    )
                    .bind(&e.chain)
                    .bind(&e.signature)
                    .bind(i64::from(e.ix_index))
                    .bind(i64::from(e.inner_index))
                    .execute(&pool)
                    .await?;
                }
                Outcome::Waits(reason) => {
                    sqlx::query(
                        "UPDATE ledger.parked_events SET reason = $5, attempts = attempts + 1
                          WHERE chain = $1 AND signature = $2 AND ix_index = $3 AND inner_index = $4",
                    )
                    .bind(&e.chain)
                    .bind(&e.signature)
                    .bind(i64::from(e.ix_index))
                    .bind(i64::from(e.inner_index))
                    .bind(reason)
                    .execute(&pool)
                    .await?;
                }
            }
        }
        Ok(posted)
    }

    /// Events parked on this chain, with their reasons.
    pub async fn parked(&self) -> Result<Vec<(MoneyEvent, String)>, ProjectionError> {
        let rows: Vec<(sqlx::types::Json<MoneyEvent>, String)> = sqlx::query_as(
            "SELECT event, reason FROM ledger.parked_events WHERE chain = $1 ORDER BY parked_at",
        )
        .bind(&self.chain)
        .fetch_all(self.ledger.pool())
        .await?;
        Ok(rows.into_iter().map(|(e, r)| (e.0, r)).collect())
    }
}

impl<A: AssetScales> Handler<IndexedEvent> for Projection<A> {
    async fn handle(
        &mut self,
        conn: &mut PgConnection,
        entries: &[IndexedEvent],
    ) -> Result<(), BoxError> {
        let mut events = Vec::new();
        for e in entries {
            if let Some(m) = MoneyEvent::from_indexed(e)? {
                events.push(m);
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        let outcomes = self.post(&events).await?;
        self.count(&outcomes);
        // Parked in the cursor's transaction: never both skipped and lost.
        for (e, o) in events.iter().zip(&outcomes) {
            if let Outcome::Waits(reason) = o {
                tracing::warn!(chain = %e.chain, signature = %e.signature, %reason,
                    "money event parked until it can be posted");
                sqlx::query(
                    "INSERT INTO ledger.parked_events
                         (chain, signature, ix_index, inner_index, event, reason)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(&e.chain)
                .bind(&e.signature)
                .bind(i64::from(e.ix_index))
                .bind(i64::from(e.inner_index))
                .bind(sqlx::types::Json(e))
                .bind(reason)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }
}

/// The linked transfers posted for the event at (`chain`, `signature`, `ix`, `inner`), first
/// leg first; empty until the projection has posted it.
pub async fn event_transfers(
    ledger: &Ledger,
    chain: &str,
    signature: &str,
    ix: u32,
    inner: u32,
) -> Result<Vec<crate::Transfer>, LedgerError> {
    let Some(first) = ledger
        .lookup_by_external_ref(chain, signature, external_ix_index(ix, inner))
        .await?
    else {
        return Ok(Vec::new());
    };
    let mut legs = vec![first];
    for leg in 1..MAX_LEGS {
        match ledger
            .transfer(transfer_id(chain, signature, ix, inner, leg))
            .await?
        {
            Some(t) => legs.push(t),
            None => break,
        }
    }
    Ok(legs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = payable_account_id("solana", "mint", "facility-a");
        assert_eq!(a, payable_account_id("solana", "mint", "facility-a"));
        assert_ne!(a, payable_account_id("solana", "mint", "facility-b"));
        assert_ne!(a, payable_account_id("solana", "other", "facility-a"));
        let roles = [Role::Clearing, Role::EscrowHeld, Role::FeeRevenue];
        for r in roles {
            assert_ne!(pool_account_id("solana", "mint", r), a);
        }
        assert_ne!(
            pool_account_id("solana", "mint", Role::Clearing),
            pool_account_id("solana", "mint", Role::FeeRevenue)
        );
        // Length-prefixed parts: ("ab","c") and ("a","bc") must not collide.
        assert_ne!(derived_id(&["ab", "c"]), derived_id(&["a", "bc"]));
        assert_ne!(ledger_id("solana", "m1"), ledger_id("solana", "m2"));
        assert_ne!(
            transfer_id("solana", "sig", 0, 0, 0),
            transfer_id("solana", "sig", 0, 0, 1)
        );
    }

    #[test]
    fn external_index_packs_instruction_and_inner_index() {
        assert_eq!(external_ix_index(0, 2), 2);
        assert_eq!(external_ix_index(3, 1), (3 << 16) | 1);
        assert_ne!(external_ix_index(1, 0), external_ix_index(0, 1));
    }

    #[test]
    fn only_final_money_events_are_posted() {
        let mut e = IndexedEvent {
            seq: 1,
            source: "payments".into(),
            kind: "payment_made".into(),
            chain: "solana".into(),
            signature: "sig".into(),
            ix_index: Some(0),
            inner_index: Some(1),
            slot: 5,
            commitment: Some("confirmed".into()),
            block_time: None,
            data: serde_json::json!({"facility": "f", "mint": "m", "amount": "100", "fee": "3"}),
        };
        assert_eq!(MoneyEvent::from_indexed(&e).unwrap(), None);
        e.commitment = Some("finalized".into());
        let m = MoneyEvent::from_indexed(&e).unwrap().unwrap();
        assert_eq!((m.kind.as_str(), m.amount, m.fee), ("payment", 100, 3));
        e.source = "facilities".into();
        assert_eq!(MoneyEvent::from_indexed(&e).unwrap(), None);
        e.source = "payments".into();
        e.data = serde_json::json!({"facility": "f", "mint": "m", "amount": 1.5});
        assert!(
            MoneyEvent::from_indexed(&e).is_err(),
            "amounts are decimal strings"
        );
    }
}
