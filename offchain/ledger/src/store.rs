//! Row mapping and bulk writes. Amounts are read as decimal text and written in the
//! binary `numeric` format (COPY and the balance update), so numeric(39,0) values stay
//! exact without a 128-bit decimal type.

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

/// Binary `COPY` encoder. Binary saves the server from parsing text uuids, hex
/// bytea and decimal numerics (and us from formatting them): the field layout is each
/// type's `*_send` format, documented in the Postgres `COPY` reference.
pub(crate) struct BinaryCopy {
    buf: Vec<u8>,
}

impl BinaryCopy {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + 21);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self { buf }
    }

    fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        // Every field we write is far below 2 GiB (uuids, integers, 32-byte hashes,
        // short texts bounded by the API).
        self.buf
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn uuid(&mut self, v: u128) {
        self.field(&v.to_be_bytes());
    }

    fn opt_uuid(&mut self, v: u128) {
        if v == 0 { self.null() } else { self.uuid(v) }
    }

    fn i16(&mut self, v: i16) {
        self.field(&v.to_be_bytes());
    }

    fn i32(&mut self, v: i32) {
        self.field(&v.to_be_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.field(&v.to_be_bytes());
    }

    fn text(&mut self, s: &str) {
        self.field(s.as_bytes());
    }

    fn opt_text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    /// `numeric` wire format: ndigits, weight, sign, dscale (all 16-bit), then base-10000
    /// digits most significant first; trailing zero digits are implied by the weight.
    fn numeric(&mut self, v: u128) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0i32.to_be_bytes());
        numeric_body(&mut self.buf, v);
        let len = (self.buf.len() - at - 4) as i32;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }

    /// Bytes encoded so far (the header first, then rows), leaving the buffer empty: lets
    /// the writer stream a `COPY` while it is still validating the rest of the batch.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The end-of-data trailer, to send after the last [`Self::take`].
    pub fn trailer() -> [u8; 2] {
        (-1i16).to_be_bytes()
    }
}

/// Writes `v` in the `numeric` binary format (see [`BinaryCopy::numeric`]) into `out`,
/// without the length prefix.
fn numeric_body(out: &mut Vec<u8>, v: u128) {
    let mut digits = [0i16; 10];
    let mut n = 0usize;
    let mut rest = v;
    while rest > 0 {
        digits[n] = (rest % 10_000) as i16;
        rest /= 10_000;
        n += 1;
    }
    let weight = if n == 0 { 0 } else { n as i16 - 1 };
    let trailing = digits[..n].iter().take_while(|d| **d == 0).count();
    let significant = &digits[trailing..n];
    out.extend_from_slice(&(significant.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes()); // positive
    out.extend_from_slice(&0u16.to_be_bytes()); // scale 0
    for d in significant.iter().rev() {
        out.extend_from_slice(&d.to_be_bytes());
    }
}

/// A u128 bound as a binary `numeric` parameter: the balance update sends numbers, not
/// decimal text the server would parse four times per account.
pub(crate) struct Numeric(pub u128);

impl sqlx::Type<sqlx::Postgres> for Numeric {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        sqlx::postgres::PgTypeInfo::with_oid(sqlx::postgres::types::Oid(1700))
    }
}

impl sqlx::postgres::PgHasArrayType for Numeric {
    fn array_type_info() -> sqlx::postgres::PgTypeInfo {
        sqlx::postgres::PgTypeInfo::with_oid(sqlx::postgres::types::Oid(1231))
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for Numeric {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        numeric_body(buf, self.0);
        Ok(sqlx::encode::IsNull::No)
    }
}

pub(crate) const TRANSFER_COPY_COLUMNS: &str = "id, seq, debit_account_id, credit_account_id, amount, pending_id, \
     ledger, code, flags, timeout, expires_at, user_data, ext_chain, ext_signature, ext_ix_index, timestamp, prev_hash, hash";

/// Appends one transfer as a binary COPY row (columns [`TRANSFER_COPY_COLUMNS`]).
/// Values out of the column ranges were rejected at validation; `seq`/`timestamp` are
/// ledger-assigned and below 2^63.
pub(crate) fn copy_transfer_row(out: &mut BinaryCopy, t: &Transfer, prev: &Hash, hash: &Hash) {
    out.row(18);
    out.uuid(t.id);
    out.i64(t.seq as i64);
    out.uuid(t.debit_account_id);
    out.uuid(t.credit_account_id);
    out.numeric(t.amount);
    out.opt_uuid(t.pending_id);
    out.i64(i64::from(t.ledger));
    out.i32(i32::from(t.code));
    out.i32(t.flags as i32);
    out.i64(i64::from(t.timeout));
    match t.expires_at {
        Some(e) => out.i64(e as i64),
        None => out.null(),
    }
    out.uuid(t.user_data);
    match &t.external_ref {
        Some(r) => {
            out.text(&r.chain);
            out.text(&r.signature);
            out.i64(i64::from(r.ix_index));
        }
        None => {
            out.null();
            out.null();
            out.null();
        }
    }
    out.i64(t.timestamp as i64);
    out.field(prev);
    out.field(hash);
}

fn copy_account_row(out: &mut BinaryCopy, a: &Account, prev: &Hash, hash: &Hash) {
    out.row(12);
    out.uuid(a.id);
    out.i64(a.seq as i64);
    out.i64(i64::from(a.ledger));
    out.i16(a.kind as i16);
    out.i32(a.flags as i32);
    out.i16(a.owner.kind as i16);
    out.text(&a.owner.id);
    out.opt_text(a.jurisdiction.as_deref());
    out.uuid(a.user_data);
    out.i64(a.timestamp as i64);
    out.field(prev);
    out.field(hash);
}

/// Encodes `rows` for `COPY ledger.transfers (TRANSFER_COPY_COLUMNS) FROM STDIN (FORMAT binary)`.
pub(crate) fn encode_transfers(rows: &[(Transfer, Hash, Hash)]) -> Vec<u8> {
    let mut out = BinaryCopy::with_capacity(rows.len() * 260);
    for (t, prev, hash) in rows {
        copy_transfer_row(&mut out, t, prev, hash);
    }
    out.finish()
}

pub(crate) async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    data: Vec<u8>,
) -> Result<(), LedgerError> {
    let mut copy = conn.copy_in_raw(statement).await?;
    copy.send(data).await?;
    copy.finish().await?;
    Ok(())
}

pub(crate) async fn insert_accounts(
    conn: &mut PgConnection,
    rows: &[(Account, Hash, Hash)],
) -> Result<(), LedgerError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut out = BinaryCopy::with_capacity(rows.len() * 220);
    for (a, prev, hash) in rows {
        copy_account_row(&mut out, a, prev, hash);
    }
    copy_in(
        conn,
        "COPY ledger.accounts (id, seq, ledger, kind, flags, owner_kind, owner_id, jurisdiction, user_data, timestamp, prev_hash, hash) FROM STDIN (FORMAT binary)",
        out.finish(),
    )
    .await
}

/// Writes the balance projection (and closed flag) of the given accounts in one statement.
/// Amounts go as binary `numeric` arrays (no decimal text to format or parse).
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
        dp.push(Numeric(a.balance.debits_pending));
        dpo.push(Numeric(a.balance.debits_posted));
        cp.push(Numeric(a.balance.credits_pending));
        cpo.push(Numeric(a.balance.credits_posted));
    }
    sqlx::query(
        "UPDATE ledger.accounts a SET flags = u.flags,
            debits_pending = u.dp, debits_posted = u.dpo,
            credits_pending = u.cp, credits_posted = u.cpo
         FROM unnest($1::uuid[], $2::int4[], $3::numeric[], $4::numeric[], $5::numeric[], $6::numeric[])
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
