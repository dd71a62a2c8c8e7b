//! Ledger feed: every finalized money event becomes one balanced ledger transfer chain.
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
//! Ids are derived from (chain, signature, instruction, inner index, leg) and the first leg
//! carries the external reference, so re-feeding an event returns the stored transfers.

use std::collections::HashSet;

use advancia_ledger::{
    AccountKind, ExternalRef, Ledger, LedgerDef, NewAccount, NewTransfer, OwnerKind, OwnerRef,
    transfer_flags,
};
use anchor_lang::prelude::Pubkey;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::IndexerError;
use crate::source::SolanaRpc;

/// Ledger transfer codes, one per event kind.
pub mod codes {
    pub const PAYMENT: u16 = 1;
    pub const REFUND: u16 = 2;
    pub const ESCROW_OPEN: u16 = 3;
    pub const ESCROW_RELEASE: u16 = 4;
    pub const ESCROW_REFUND: u16 = 5;
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

/// Where the feed learns an asset's ledger code and scale, per chain family.
pub trait AssetScales {
    /// `Ok(None)`: the asset is not known (yet); its events wait and are retried later.
    fn asset(
        &self,
        asset: &str,
    ) -> impl std::future::Future<Output = Result<Option<AssetInfo>, IndexerError>>;
}

/// Solana: the mint account's decimals; native SOL is `SOL` with 9.
impl AssetScales for SolanaRpc {
    async fn asset(&self, mint: &str) -> Result<Option<AssetInfo>, IndexerError> {
        let key: Pubkey = mint
            .parse()
            .map_err(|_| IndexerError::Malformed(format!("mint {mint}")))?;
        let scale = self.mint_decimals(&key).await?;
        let code = if key == advancia_pay::state::NATIVE_SOL {
            "SOL".to_string()
        } else {
            mint.to_string()
        };
        Ok(Some(AssetInfo { code, scale }))
    }
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
    pub fn parse(chain: impl Into<String>, spec: &str) -> Result<Self, IndexerError> {
        let mut scales = std::collections::BTreeMap::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad =
                || IndexerError::InvalidConfig(format!("asset scale `{item}` is not asset=0..38"));
            let (asset, scale) = item.rsplit_once('=').ok_or_else(bad)?;
            let scale: u8 = scale.trim().parse().map_err(|_| bad())?;
            let asset = asset.trim();
            if asset.is_empty() || scale > 38 {
                return Err(bad());
            }
            if scales.insert(asset.to_string(), scale).is_some() {
                return Err(IndexerError::InvalidConfig(format!(
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

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }
}

impl AssetScales for ConfiguredAssets {
    async fn asset(&self, asset: &str) -> Result<Option<AssetInfo>, IndexerError> {
        Ok(self.scales.get(asset).map(|&scale| AssetInfo {
            code: format!("{}:{asset}", self.chain),
            scale,
        }))
    }
}

/// A money event ready to post.
#[derive(Debug, Clone, sqlx::FromRow)]
struct MoneyRow {
    table_name: String,
    kind: String,
    signature: String,
    ix_index: i32,
    inner_index: i32,
    facility: Option<String>,
    mint: Option<String>,
    amount: String,
    fee: String,
}

/// (signatures, ix indexes, inner indexes) of fed rows of one table.
type FedKeys<'a> = (Vec<&'a str>, Vec<i32>, Vec<i32>);

/// Feeds finalized, not yet fed money events to the ledger, oldest first.
pub struct LedgerFeed {
    ledger: Ledger,
    chain: String,
    known_ledgers: HashSet<u32>,
    known_accounts: HashSet<u128>,
}

fn parse_u128(s: &str) -> Result<u128, IndexerError> {
    s.parse()
        .map_err(|_| IndexerError::Malformed(format!("amount {s}")))
}

impl LedgerFeed {
    pub fn new(ledger: Ledger, chain: impl Into<String>) -> Self {
        Self {
            ledger,
            chain: chain.into(),
            known_ledgers: HashSet::new(),
            known_accounts: HashSet::new(),
        }
    }

    /// The asset's ledger id, creating the ledger and its pool accounts on first use;
    /// `None` while the asset's scale is unknown.
    async fn ensure_asset<A: AssetScales>(
        &mut self,
        assets: &A,
        mint: &str,
    ) -> Result<Option<u32>, IndexerError> {
        let id = ledger_id(&self.chain, mint);
        if self.known_ledgers.contains(&id) {
            return Ok(Some(id));
        }
        let Some(AssetInfo { code, scale }) = assets.asset(mint).await? else {
            return Ok(None);
        };
        self.ledger
            .create_ledger(&LedgerDef { id, code, scale })
            .await?;
        let mut accounts = vec![
            (
                pool_account_id(&self.chain, mint, Role::Clearing),
                AccountKind::Asset,
                OwnerKind::ChainVault,
                format!("{}:clearing:{mint}", self.chain),
            ),
            (
                pool_account_id(&self.chain, mint, Role::EscrowHeld),
                AccountKind::Liability,
                OwnerKind::ChainVault,
                format!("{}:escrow:{mint}", self.chain),
            ),
            (
                pool_account_id(&self.chain, mint, Role::FeeRevenue),
                AccountKind::Revenue,
                OwnerKind::Treasury,
                format!("{}:fees:{mint}", self.chain),
            ),
        ];
        accounts.retain(|a| !self.known_accounts.contains(&a.0));
        self.create_accounts(id, &accounts).await?;
        self.known_ledgers.insert(id);
        Ok(Some(id))
    }

    async fn create_accounts(
        &mut self,
        ledger: u32,
        accounts: &[(u128, AccountKind, OwnerKind, String)],
    ) -> Result<(), IndexerError> {
        let new: Vec<NewAccount> = accounts
            .iter()
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
        for (result, n) in self
            .ledger
            .create_accounts(&new)
            .await?
            .into_iter()
            .zip(&new)
        {
            result.map_err(|e| IndexerError::LedgerAccount(n.id, e))?;
            self.known_accounts.insert(n.id);
        }
        Ok(())
    }

    async fn ensure_payable(
        &mut self,
        ledger: u32,
        mint: &str,
        facility: &str,
    ) -> Result<u128, IndexerError> {
        let id = payable_account_id(&self.chain, mint, facility);
        if !self.known_accounts.contains(&id) {
            self.create_accounts(
                ledger,
                &[(
                    id,
                    AccountKind::Liability,
                    OwnerKind::Facility,
                    facility.to_string(),
                )],
            )
            .await?;
        }
        Ok(id)
    }

    /// Posts up to `limit` events; returns how many were fed. Events of an asset `assets`
    /// does not know yet are skipped (logged) and stay unfed.
    pub async fn run_once<A: AssetScales>(
        &mut self,
        assets: &A,
        limit: i64,
    ) -> Result<u64, IndexerError> {
        let pool: PgPool = self.ledger.pool().clone();
        let rows: Vec<MoneyRow> = sqlx::query_as(
            "SELECT * FROM (
               SELECT 'payments' AS table_name, 'payment' AS kind, signature, ix_index, inner_index,
                      slot, facility, mint, amount::text AS amount, fee::text AS fee
                 FROM indexer.payments WHERE chain = $1 AND commitment = 'finalized' AND NOT ledgered
               UNION ALL
               SELECT 'refunds', 'refund', signature, ix_index, inner_index, slot, facility, mint,
                      amount::text, '0'
                 FROM indexer.refunds WHERE chain = $1 AND commitment = 'finalized' AND NOT ledgered
               UNION ALL
               SELECT 'escrows', e.kind, e.signature, e.ix_index, e.inner_index, e.slot,
                      o.facility, o.mint, e.amount::text, e.fee::text
                 FROM indexer.escrows e
                 LEFT JOIN indexer.escrows o ON o.chain = e.chain AND o.escrow = e.escrow
                      AND o.kind = 'opened' AND o.commitment = 'finalized'
                WHERE e.chain = $1 AND e.commitment = 'finalized' AND NOT e.ledgered
                  AND e.kind IN ('opened', 'released', 'refunded')
             ) m ORDER BY slot, signature, ix_index, inner_index LIMIT $2",
        )
        .bind(&self.chain)
        .bind(limit)
        .fetch_all(&pool)
        .await?;
        // All events of this run go to the ledger in one call (one ledger transaction in
        // batched mode); each event's legs form their own linked chain.
        let mut transfers: Vec<NewTransfer> = Vec::new();
        let mut spans: Vec<(MoneyRow, std::ops::Range<usize>)> = Vec::new();
        for row in rows {
            let (Some(facility), Some(mint)) = (row.facility.clone(), row.mint.clone()) else {
                // A release/refund whose escrow was opened before indexing began, or whose
                // opening is not final yet: it waits.
                tracing::warn!(signature = %row.signature, "escrow event without a final opening");
                continue;
            };
            let Some(ledger) = self.ensure_asset(assets, &mint).await? else {
                tracing::warn!(signature = %row.signature, asset = %mint, "asset scale unknown; event waits");
                continue;
            };
            let payable = self.ensure_payable(ledger, &mint, &facility).await?;
            let clearing = pool_account_id(&self.chain, &mint, Role::Clearing);
            let held = pool_account_id(&self.chain, &mint, Role::EscrowHeld);
            let revenue = pool_account_id(&self.chain, &mint, Role::FeeRevenue);
            let amount = parse_u128(&row.amount)?;
            let fee = parse_u128(&row.fee)?;
            let net = amount.checked_sub(fee).ok_or_else(|| {
                IndexerError::Malformed(format!("fee above amount in {}", row.signature))
            })?;
            let (code, legs): (u16, Vec<(u128, u128, u128)>) = match row.kind.as_str() {
                "payment" => (
                    codes::PAYMENT,
                    vec![(clearing, payable, net), (clearing, revenue, fee)],
                ),
                "refund" => (codes::REFUND, vec![(payable, clearing, amount)]),
                "opened" => (codes::ESCROW_OPEN, vec![(clearing, held, amount)]),
                "released" => (
                    codes::ESCROW_RELEASE,
                    vec![(held, payable, net), (held, revenue, fee)],
                ),
                "refunded" => (codes::ESCROW_REFUND, vec![(held, clearing, amount)]),
                other => {
                    return Err(IndexerError::Malformed(format!("money event kind {other}")));
                }
            };
            let ix = u32::try_from(row.ix_index).unwrap_or_default();
            let inner = u32::try_from(row.inner_index).unwrap_or_default();
            let legs: Vec<_> = legs.into_iter().filter(|l| l.2 > 0).collect();
            let count = legs.len();
            let first = transfers.len();
            for (i, (debit, credit, amount)) in legs.into_iter().enumerate() {
                transfers.push(NewTransfer {
                    id: derived_id(&[
                        "transfer",
                        &self.chain,
                        &row.signature,
                        &ix.to_string(),
                        &inner.to_string(),
                        &i.to_string(),
                    ]),
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
                        chain: self.chain.clone(),
                        signature: row.signature.clone(),
                        ix_index: external_ix_index(ix, inner),
                    }),
                    ..NewTransfer::default()
                });
            }
            spans.push((row, first..transfers.len()));
        }
        let results = self.ledger.create_transfers(&transfers).await?;
        let mut first_error = None;
        let mut done: std::collections::HashMap<&str, FedKeys<'_>> =
            std::collections::HashMap::new();
        for (row, span) in &spans {
            let Some(outcome) = results.get(span.clone()) else {
                return Err(IndexerError::Malformed(
                    "ledger returned fewer results than transfers".into(),
                ));
            };
            match outcome.iter().find_map(|r| r.as_ref().err()) {
                Some(e) => {
                    first_error
                        .get_or_insert(IndexerError::LedgerTransfer(row.signature.clone(), *e));
                }
                None => {
                    let entry = done.entry(row.table_name.as_str()).or_default();
                    entry.0.push(&row.signature);
                    entry.1.push(row.ix_index);
                    entry.2.push(row.inner_index);
                }
            }
        }
        let mut fed = 0;
        for (table, (sigs, ixs, inners)) in &done {
            fed += sqlx::query(&format!(
                "UPDATE indexer.{table} t SET ledgered = true
                 FROM unnest($2::text[], $3::int[], $4::int[]) AS u(signature, ix, inner_ix)
                 WHERE t.chain = $1 AND t.signature = u.signature
                   AND t.ix_index = u.ix AND t.inner_index = u.inner_ix"
            ))
            .bind(&self.chain)
            .bind(sigs)
            .bind(ixs)
            .bind(inners)
            .execute(&pool)
            .await?
            .rows_affected();
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(fed)
    }
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
    }

    #[test]
    fn external_index_packs_instruction_and_inner_index() {
        assert_eq!(external_ix_index(0, 2), 2);
        assert_eq!(external_ix_index(3, 1), (3 << 16) | 1);
        assert_ne!(external_ix_index(1, 0), external_ix_index(0, 1));
    }
}
