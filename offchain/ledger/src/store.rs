//! Row mapping and bulk writes. Amounts cross the wire as decimal text both ways, so
//! numeric(39,0) values stay exact without a 128-bit decimal type.

use std::fmt::Write as _;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::LedgerError;
use crate::audit::Hash;
use crate::types::{Account, AccountKind, Balance, ExternalRef, OwnerKind, OwnerRef, Transfer};

pub(crate) const ACCOUNT_COLS: &str = "id, seq, ledger, kind, flags, owner_kind, owner_id, jurisdiction, user_data, \
     debits_pending::text AS debits_pending, debits_posted::text AS debits_posted, \
     credits_pending::text AS credits_pending, credits_posted::text AS credits_posted, timestamp";

pub(crate) const TRANSFER_COLS: &str = "id, seq, debit_account_id, credit_account_id, amount::text AS amount, pending_id, \
     ledger, code, flags, timeout, expires_at, user_data, ext_chain, ext_signature, ext_ix_index, timestamp";

fn corrupt(what: &str, v: impl std::fmt::Display) -> LedgerError {
    LedgerError::Corrupt(format!("{what}: {v}"))
}

pub(crate) fn to_u64(v: i64) -> Result<u64, LedgerError> {
    u64::try_from(v).map_err(|_| corrupt("negative value", v))
}

pub(crate) fn to_i64(v: u64) -> Result<i64, LedgerError> {
    i64::try_from(v).map_err(|_| LedgerError::InvalidInput(format!("{v} exceeds i64")))
}

pub(crate) fn parse_u128(s: &str) -> Result<u128, LedgerError> {
    s.parse::<u128>()
        .map_err(|_| corrupt("amount out of u128 range", s))
}

pub(crate) fn parse_i128(s: &str) -> Result<i128, LedgerError> {
    s.parse::<i128>()
        .map_err(|_| corrupt("sum out of i128 range", s))
}

pub(crate) fn uuid(v: u128) -> Uuid {
    Uuid::from_u128(v)
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    pub id: Uuid,
    pub seq: i64,
    pub ledger: i64,
    pub kind: i16,
    pub flags: i32,
    pub owner_kind: i16,
    pub owner_id: String,
    pub jurisdiction: Option<String>,
    pub user_data: Uuid,
    pub debits_pending: String,
    pub debits_posted: String,
    pub credits_pending: String,
    pub credits_posted: String,
    pub timestamp: i64,
    #[sqlx(default)]
    pub prev_hash: Option<Vec<u8>>,
    #[sqlx(default)]
    pub hash: Option<Vec<u8>>,
}

impl AccountRow {
    pub fn into_account(self) -> Result<Account, LedgerError> {
        Ok(Account {
            id: self.id.as_u128(),
            ledger: u32::try_from(self.ledger).map_err(|_| corrupt("ledger", self.ledger))?,
            kind: AccountKind::from_i16(self.kind)
                .ok_or_else(|| corrupt("account kind", self.kind))?,
            owner: OwnerRef {
                kind: OwnerKind::from_i16(self.owner_kind)
                    .ok_or_else(|| corrupt("owner kind", self.owner_kind))?,
                id: self.owner_id,
            },
            flags: u32::try_from(self.flags).map_err(|_| corrupt("flags", self.flags))?,
            jurisdiction: self.jurisdiction,
            user_data: self.user_data.as_u128(),
            balance: Balance {
                debits_pending: parse_u128(&self.debits_pending)?,
                debits_posted: parse_u128(&self.debits_posted)?,
                credits_pending: parse_u128(&self.credits_pending)?,
                credits_posted: parse_u128(&self.credits_posted)?,
            },
            timestamp: to_u64(self.timestamp)?,
            seq: to_u64(self.seq)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TransferRow {
    pub id: Uuid,
    pub seq: i64,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    pub amount: String,
    pub pending_id: Option<Uuid>,
    pub ledger: i64,
    pub code: i32,
    pub flags: i32,
    pub timeout: i64,
    pub expires_at: Option<i64>,
    pub user_data: Uuid,
    pub ext_chain: Option<String>,
    pub ext_signature: Option<String>,
    pub ext_ix_index: Option<i64>,
    pub timestamp: i64,
    #[sqlx(default)]
    pub prev_hash: Option<Vec<u8>>,
    #[sqlx(default)]
    pub hash: Option<Vec<u8>>,
}

impl TransferRow {
    pub fn into_transfer(self) -> Result<Transfer, LedgerError> {
        let external_ref = match (self.ext_chain, self.ext_signature, self.ext_ix_index) {
            (Some(chain), Some(signature), Some(ix)) => Some(ExternalRef {
                chain,
                signature,
                ix_index: u32::try_from(ix).map_err(|_| corrupt("ix_index", ix))?,
            }),
            (None, None, None) => None,
            _ => return Err(corrupt("partial external reference on transfer", self.id)),
        };
        Ok(Transfer {
            id: self.id.as_u128(),
            debit_account_id: self.debit_account_id.as_u128(),
            credit_account_id: self.credit_account_id.as_u128(),
            amount: parse_u128(&self.amount)?,
            pending_id: self.pending_id.map_or(0, |u| u.as_u128()),
            ledger: u32::try_from(self.ledger).map_err(|_| corrupt("ledger", self.ledger))?,
            code: u16::try_from(self.code).map_err(|_| corrupt("code", self.code))?,
            flags: u32::try_from(self.flags).map_err(|_| corrupt("flags", self.flags))?,
            timeout: u32::try_from(self.timeout).map_err(|_| corrupt("timeout", self.timeout))?,
            expires_at: self.expires_at.map(to_u64).transpose()?,
            user_data: self.user_data.as_u128(),
            external_ref,
            timestamp: to_u64(self.timestamp)?,
            seq: to_u64(self.seq)?,
        })
    }
}

/// COPY text-format field escaping (backslash, tab, newline, carriage return).
fn copy_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn copy_opt_text(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => copy_text(out, s),
        None => out.push_str("\\N"),
    }
}

fn copy_bytea(out: &mut String, h: &Hash) {
    out.push_str("\\\\x");
    out.push_str(&hex::encode(h));
}

pub(crate) const TRANSFER_COPY_COLUMNS: &str = "id, seq, debit_account_id, credit_account_id, amount, pending_id, \
     ledger, code, flags, timeout, expires_at, user_data, ext_chain, ext_signature, ext_ix_index, timestamp, prev_hash, hash";

/// Appends one transfer as a COPY text row.
pub(crate) fn copy_transfer_row(out: &mut String, t: &Transfer, prev: &Hash, hash: &Hash) {
    let _ = write!(
        out,
        "{}\t{}\t{}\t{}\t{}\t",
        uuid(t.id),
        t.seq,
        uuid(t.debit_account_id),
        uuid(t.credit_account_id),
        t.amount
    );
    if t.pending_id == 0 {
        out.push_str("\\N");
    } else {
        let _ = write!(out, "{}", uuid(t.pending_id));
    }
    let _ = write!(
        out,
        "\t{}\t{}\t{}\t{}\t",
        t.ledger, t.code, t.flags, t.timeout
    );
    match t.expires_at {
        Some(e) => {
            let _ = write!(out, "{e}");
        }
        None => out.push_str("\\N"),
    }
    let _ = write!(out, "\t{}\t", uuid(t.user_data));
    match &t.external_ref {
        Some(r) => {
            copy_text(out, &r.chain);
            out.push('\t');
            copy_text(out, &r.signature);
            let _ = write!(out, "\t{}", r.ix_index);
        }
        None => out.push_str("\\N\t\\N\t\\N"),
    }
    let _ = write!(out, "\t{}\t", t.timestamp);
    copy_bytea(out, prev);
    out.push('\t');
    copy_bytea(out, hash);
    out.push('\n');
}

fn copy_account_row(out: &mut String, a: &Account, prev: &Hash, hash: &Hash) {
    let _ = write!(
        out,
        "{}\t{}\t{}\t{}\t{}\t{}\t",
        uuid(a.id),
        a.seq,
        a.ledger,
        a.kind as i16,
        a.flags,
        a.owner.kind as i16
    );
    copy_text(out, &a.owner.id);
    out.push('\t');
    copy_opt_text(out, a.jurisdiction.as_deref());
    let _ = write!(out, "\t{}\t{}\t", uuid(a.user_data), a.timestamp);
    copy_bytea(out, prev);
    out.push('\t');
    copy_bytea(out, hash);
    out.push('\n');
}

pub(crate) async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    data: String,
) -> Result<(), LedgerError> {
    let mut copy = conn.copy_in_raw(statement).await?;
    copy.send(data.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

pub(crate) async fn insert_transfers(
    conn: &mut PgConnection,
    rows: &[(Transfer, Hash, Hash)],
) -> Result<(), LedgerError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut buf = String::with_capacity(rows.len() * 330);
    for (t, prev, hash) in rows {
        copy_transfer_row(&mut buf, t, prev, hash);
    }
    copy_in(
        conn,
        &format!("COPY ledger.transfers ({TRANSFER_COPY_COLUMNS}) FROM STDIN"),
        buf,
    )
    .await
}

pub(crate) async fn insert_accounts(
    conn: &mut PgConnection,
    rows: &[(Account, Hash, Hash)],
) -> Result<(), LedgerError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut buf = String::with_capacity(rows.len() * 300);
    for (a, prev, hash) in rows {
        copy_account_row(&mut buf, a, prev, hash);
    }
    copy_in(
        conn,
        "COPY ledger.accounts (id, seq, ledger, kind, flags, owner_kind, owner_id, jurisdiction, user_data, timestamp, prev_hash, hash) FROM STDIN",
        buf,
    )
    .await
}

/// Writes the balance projection (and closed flag) of the given accounts in one statement.
pub(crate) async fn update_balances(
    conn: &mut PgConnection,
    accounts: &[&Account],
) -> Result<(), LedgerError> {
    if accounts.is_empty() {
        return Ok(());
    }
    let n = accounts.len();
    let (mut ids, mut flags) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut dp, mut dpo, mut cp, mut cpo) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for a in accounts {
        ids.push(uuid(a.id));
        flags.push(i32::try_from(a.flags).map_err(|_| corrupt("flags", a.flags))?);
        dp.push(a.balance.debits_pending.to_string());
        dpo.push(a.balance.debits_posted.to_string());
        cp.push(a.balance.credits_pending.to_string());
        cpo.push(a.balance.credits_posted.to_string());
    }
    sqlx::query(
        "UPDATE ledger.accounts a SET flags = u.flags,
            debits_pending = u.dp::numeric, debits_posted = u.dpo::numeric,
            credits_pending = u.cp::numeric, credits_posted = u.cpo::numeric
         FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::text[])
              AS u(id, flags, dp, dpo, cp, cpo)
         WHERE a.id = u.id",
    )
    .bind(ids)
    .bind(flags)
    .bind(dp)
    .bind(dpo)
    .bind(cp)
    .bind(cpo)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
