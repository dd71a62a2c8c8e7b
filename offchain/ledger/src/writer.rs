//! Executes operations against Postgres: one transaction per batch of operations.
//!
//! Every writer (batched or per-request, any process, and `rebuild`) first locks the
//! chain head row (`FOR UPDATE`): the audit chain and the ledger clock need a single
//! successor anyway, so this one lock is the serialisation point, and with a single lock
//! no two writers can deadlock.
//!
//! Everything read after it is consistent with every committed write, so validation runs
//! in memory; the transfer rows are streamed into one COPY while the batch is validated,
//! and balances are written with one bulk UPDATE.

use std::collections::HashSet;

use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::engine::{Head, State};
use crate::store::{self, ACCOUNT_COLS, AccountRow, TRANSFER_COLS, TransferRow, uuid};
use crate::types::{Account, AccountError, NewAccount, NewTransfer, Transfer, TransferError};
use crate::{LedgerError, now_ns};

pub(crate) enum Op {
    Accounts(Vec<NewAccount>),
    Transfers(Vec<NewTransfer>),
    Expire { limit: i64 },
    Close(u128),
}

pub(crate) enum Reply {
    Accounts(Vec<Result<Account, AccountError>>),
    Transfers(Vec<Result<Transfer, TransferError>>),
    Expired(Vec<Transfer>),
    Closed(Result<Account, LedgerError>),
}

pub(crate) struct Job {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Reply, LedgerError>>,
}

impl Op {
    fn size(&self) -> usize {
        match self {
            Op::Accounts(v) => v.len(),
            Op::Transfers(v) => v.len(),
            Op::Expire { .. } | Op::Close(_) => 1,
        }
    }
}

/// How long the writer waits for the callers it just answered to come back before it
/// commits a smaller batch without them.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// The single-writer loop: drains whatever requests are queued (up to `max_batch`
/// items) into one transaction. Ends when every `Ledger` handle is dropped.
pub(crate) async fn run(pool: PgPool, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    // Requests answered by the previous batch: their callers usually resubmit at once.
    let mut answered = 0usize;
    while let Some(first) = rx.recv().await {
        // Let the callers answered by the previous batch enqueue before draining, rather
        // than committing a partial batch and then a lone remainder that pays a whole
        // transaction (commit, balance update) for a few requests. Waiting ends as soon
        // as as many requests are queued as were answered, and after LINGER at most, so a
        // lone sequential caller (answered = 1) never waits.
        tokio::task::yield_now().await;
        let mut size = first.op.size();
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + LINGER;
        'fill: while size < max_batch {
            match rx.try_recv() {
                Ok(j) => {
                    size += j.op.size();
                    jobs.push(j);
                }
                Err(_) if jobs.len() < answered => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(j)) => {
                            size += j.op.size();
                            jobs.push(j);
                        }
                        Ok(None) | Err(_) => break 'fill,
                    }
                }
                Err(_) => break 'fill,
            }
        }
        answered = jobs.len();
        let (ops, replies): (Vec<Op>, Vec<_>) = jobs.into_iter().map(|j| (j.op, j.reply)).unzip();
        match execute(&pool, &ops).await {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            Err(e) if ops.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
            }
            Err(e) => {
                // Infrastructure failure of a combined batch: retry each request alone so
                // one cannot take the others down with it.
                tracing::warn!(error = %e, jobs = ops.len(), "batch failed, retrying requests one by one");
                for (op, reply) in ops.into_iter().zip(replies) {
                    let r = execute(&pool, std::slice::from_ref(&op)).await;
                    let _ = reply.send(r.and_then(|mut v| v.pop().ok_or(LedgerError::WriterGone)));
                }
            }
        }
    }
}

/// Runs `ops` in one transaction and returns one reply per op.
///
/// Optimistic first: new transfer ids are assumed not to exist, saving the id lookup
/// (most transfers are new). A retried id then either hits the primary key during COPY or
/// fails validation with its id already stored; either way the transaction is rolled back
/// and re-run with the lookup, which answers idempotently.
pub(crate) async fn execute(pool: &PgPool, ops: &[Op]) -> Result<Vec<Reply>, LedgerError> {
    let mut tx = pool.begin().await?;
    match apply(&mut tx, ops, true).await {
        Ok(Some(replies)) => {
            let t = std::time::Instant::now();
            tx.commit().await?;
            tracing::debug!(
                commit_us = t.elapsed().as_micros() as u64,
                "batch committed"
            );
            return Ok(replies);
        }
        // A failed item may be a retry of a stored transfer; rows of the batch may
        // already be streamed into the COPY, so the rerun starts over.
        Ok(None) => {}
        Err(LedgerError::Database(e)) if is_duplicate_id(&e) => {}
        Err(e) => return Err(e),
    }
    tx.rollback().await?;
    let mut tx = pool.begin().await?;
    let replies = apply(&mut tx, ops, false)
        .await?
        .ok_or_else(|| LedgerError::Corrupt("pessimistic apply asked for a rerun".into()))?;
    tx.commit().await?;
    Ok(replies)
}

fn is_duplicate_id(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.constraint())
        .is_some_and(|c| c == "transfers_pkey")
}

/// Encoded transfer rows sent to the server per `CopyData` message while validating.
const COPY_CHUNK: usize = 64 * 1024;

async fn apply(
    conn: &mut PgConnection,
    ops: &[Op],
    optimistic: bool,
) -> Result<Option<Vec<Reply>>, LedgerError> {
    let t0 = std::time::Instant::now();
    let (seq, hash, ts): (i64, Vec<u8>, i64) = sqlx::query_as(
        "SELECT last_seq, last_hash, last_timestamp FROM ledger.chain_head FOR UPDATE",
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut head_hash = crate::audit::GENESIS;
    if hash.len() != 32 {
        return Err(LedgerError::Corrupt(
            "chain head hash is not 32 bytes".into(),
        ));
    }
    head_hash.copy_from_slice(&hash);
    let mut state = State {
        head: Some(Head {
            seq: store::to_u64(seq)?,
            hash: head_hash,
            timestamp: store::to_u64(ts)?,
        }),
        now: now_ns(),
        ..State::default()
    };

    // Everything the batch mentions: ids (idempotency and pending lookups), ext refs,
    // accounts, and due pending transfers for expiry.
    let mut transfer_ids: HashSet<u128> = HashSet::new();
    let mut ext: Vec<(String, String, i64)> = Vec::new();
    let mut account_ids: HashSet<u128> = HashSet::new();
    let mut want_ledgers = false;
    let mut expire_limit = 0i64;
    for op in ops {
        match op {
            Op::Accounts(v) => {
                want_ledgers = true;
                account_ids.extend(v.iter().map(|a| a.id));
            }
            Op::Transfers(v) => {
                for t in v {
                    if !optimistic {
                        transfer_ids.insert(t.id);
                    }
                    if t.pending_id != 0 {
                        transfer_ids.insert(t.pending_id);
                    }
                    account_ids.insert(t.debit_account_id);
                    account_ids.insert(t.credit_account_id);
                    if let Some(r) = &t.external_ref {
                        ext.push((r.chain.clone(), r.signature.clone(), i64::from(r.ix_index)));
                    }
                }
            }
            Op::Expire { limit } => expire_limit = expire_limit.max(*limit),
            Op::Close(id) => {
                account_ids.insert(*id);
            }
        }
    }

    let ids: Vec<Uuid> = transfer_ids.iter().map(|&i| uuid(i)).collect();
    // Single-phase batches in the optimistic pass mention no stored transfer.
    let rows: Vec<TransferRow> = if ids.is_empty() {
        Vec::new()
    } else {
        // One primary-key probe per id (the OFFSET 0 keeps the planner from flattening
        // it into a hash join or a bitmap scan, which on a log of this size cost
        // tens of ms per 3,200-post batch).
        sqlx::query_as(&format!(
            "SELECT t.* FROM unnest($1::uuid[]) AS q(id),
                LATERAL (SELECT {TRANSFER_COLS} FROM ledger.transfers
                          WHERE id = q.id OFFSET 0) t"
        ))
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?
    };
    let mut pending_ids: Vec<Uuid> = Vec::new();
    for r in rows {
        let t = r.into_transfer()?;
        if t.is_pending() {
            pending_ids.push(uuid(t.id));
            account_ids.insert(t.debit_account_id);
            account_ids.insert(t.credit_account_id);
        }
        state.transfers.insert(t.id, t);
    }
    let mut due: Vec<Transfer> = Vec::new();
    if expire_limit > 0 {
        let rows: Vec<TransferRow> = sqlx::query_as(&format!(
            "SELECT {TRANSFER_COLS} FROM ledger.transfers t
             WHERE expires_at <= $1
               AND NOT EXISTS (SELECT 1 FROM ledger.transfers r WHERE r.pending_id = t.id)
             ORDER BY expires_at, seq LIMIT $2"
        ))
        .bind(store::to_i64(state.now)?)
        .bind(expire_limit)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            let t = r.into_transfer()?;
            account_ids.insert(t.debit_account_id);
            account_ids.insert(t.credit_account_id);
            state.transfers.insert(t.id, t.clone());
            due.push(t);
        }
    }
    if !pending_ids.is_empty() {
        let rows: Vec<(Uuid, i32)> = sqlx::query_as(
            "SELECT q.id, r.flags FROM unnest($1::uuid[]) AS q(id),
                LATERAL (SELECT flags FROM ledger.transfers
                          WHERE pending_id = q.id AND pending_id IS NOT NULL OFFSET 0) r",
        )
        .bind(&pending_ids)
        .fetch_all(&mut *conn)
        .await?;
        for (p, f) in rows {
            state
                .resolved
                .insert(p.as_u128(), u32::try_from(f).unwrap_or(0));
        }
    }
    if !ext.is_empty() {
        let (c, s, i): (Vec<String>, Vec<String>, Vec<i64>) = multiunzip(ext);
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT ext_chain, ext_signature, ext_ix_index FROM ledger.transfers
             WHERE (ext_chain, ext_signature, ext_ix_index) IN
                   (SELECT * FROM unnest($1::text[], $2::text[], $3::int8[]))",
        )
        .bind(c)
        .bind(s)
        .bind(i)
        .fetch_all(&mut *conn)
        .await?;
        for (chain, signature, ix) in rows {
            state.ext_refs.insert(crate::types::ExternalRef {
                chain,
                signature,
                ix_index: u32::try_from(ix).unwrap_or(u32::MAX),
            });
        }
    }
    account_ids.remove(&0);
    let mut ids: Vec<u128> = account_ids.into_iter().collect();
    ids.sort_unstable();
    let ids: Vec<Uuid> = ids.into_iter().map(uuid).collect();
    // No row locks: every writer of balances (this function, in either mode and any
    // process, and `rebuild`) holds the chain head first, so the head lock already
    // serialises them, and this read, taken after it, sees every committed balance.
    let rows: Vec<AccountRow> = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLS} FROM ledger.accounts WHERE id = ANY($1)"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let a = r.into_account()?;
        state.accounts.insert(a.id, a);
    }
    if want_ledgers {
        let rows: Vec<i64> = sqlx::query_scalar("SELECT id FROM ledger.ledgers")
            .fetch_all(&mut *conn)
            .await?;
        state
            .ledgers
            .extend(rows.into_iter().filter_map(|l| u32::try_from(l).ok()));
    }

    let t_read = t0.elapsed();
    let start_head = state.head;
    let mut replies = Vec::with_capacity(ops.len());
    let mut failed: Vec<Uuid> = Vec::new();
    // The transfer rows are streamed into one COPY as each request is validated, so the
    // server inserts (and maintains the indexes for) the first requests while the rest
    // are validated and hashed here, instead of waiting for the whole batch.
    let produces_transfers = ops
        .iter()
        .any(|op| matches!(op, Op::Transfers(_) | Op::Expire { .. }));
    // Scoped so the COPY's borrow of the connection ends before the statements below.
    {
        let mut copy = if produces_transfers {
            Some(
                conn.copy_in_raw(&format!(
                    "COPY ledger.transfers ({}) FROM STDIN (FORMAT binary)",
                    store::TRANSFER_COPY_COLUMNS
                ))
                .await?,
            )
        } else {
            None
        };
        let mut enc = store::BinaryCopy::with_capacity(COPY_CHUNK);
        let mut encoded = 0usize;
        for op in ops {
            let reply = match op {
                Op::Accounts(v) => {
                    Reply::Accounts(v.iter().map(|a| state.create_account(a)).collect())
                }
                Op::Transfers(v) => Reply::Transfers(state.create_transfers(v)),
                Op::Expire { limit } => {
                    let mut out = Vec::new();
                    for p in due.iter().take(usize::try_from(*limit).unwrap_or(0)) {
                        if let Some(t) = state.expire(p) {
                            out.push(t);
                        }
                    }
                    Reply::Expired(out)
                }
                Op::Close(id) => Reply::Closed(state.close_account(*id)),
            };
            if optimistic && let (Op::Transfers(v), Reply::Transfers(r)) = (op, &reply) {
                failed.extend(
                    v.iter()
                        .zip(r)
                        .filter(|(_, r)| r.is_err())
                        .map(|(t, _)| uuid(t.id)),
                );
            }
            replies.push(reply);
            // Rows of a finished request are final (a linked chain rolls back within it).
            for (t, prev, hash) in &state.new_transfers[encoded..] {
                store::copy_transfer_row(&mut enc, t, prev, hash);
            }
            encoded = state.new_transfers.len();
            if let Some(c) = copy.as_mut()
                && enc.buffered() >= COPY_CHUNK
            {
                c.send(enc.take()).await?;
            }
        }
        if let Some(mut c) = copy {
            let mut rest = enc.take();
            rest.extend_from_slice(&store::BinaryCopy::trailer());
            c.send(rest).await?;
            c.finish().await?;
        }
    }
    let t_copy = t0.elapsed();

    // An item that failed in the optimistic pass may be a retry of a stored transfer,
    // which must get the stored answer: look, and rerun with the lookup if so.
    if !failed.is_empty() {
        let stored: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM ledger.transfers WHERE id = ANY($1))")
                .bind(&failed)
                .fetch_one(&mut *conn)
                .await?;
        if stored {
            return Ok(None);
        }
    }
    store::insert_accounts(conn, &state.new_accounts).await?;
    // Accounts created in this batch were copied in with zero balances; this sets theirs too.
    let dirty: Vec<&Account> = state
        .dirty
        .iter()
        .filter_map(|id| state.accounts.get(id))
        .collect();
    let dirty_count = dirty.len();
    store::update_balances(conn, &dirty).await?;
    if let Some(h) = state.head
        && start_head.map(|s| s.seq) != Some(h.seq)
    {
        sqlx::query(
            "UPDATE ledger.chain_head SET last_seq = $1, last_hash = $2, last_timestamp = $3",
        )
        .bind(store::to_i64(h.seq)?)
        .bind(h.hash.to_vec())
        .bind(store::to_i64(h.timestamp)?)
        .execute(&mut *conn)
        .await?;
    }
    tracing::debug!(
        ops = ops.len(),
        transfers = state.new_transfers.len(),
        accounts = dirty_count,
        read_us = t_read.as_micros() as u64,
        validate_and_copy_us = (t_copy - t_read).as_micros() as u64,
        balances_us = (t0.elapsed() - t_copy).as_micros() as u64,
        "batch applied"
    );
    Ok(Some(replies))
}

fn multiunzip(v: Vec<(String, String, i64)>) -> (Vec<String>, Vec<String>, Vec<i64>) {
    let mut a = Vec::with_capacity(v.len());
    let mut b = Vec::with_capacity(v.len());
    let mut c = Vec::with_capacity(v.len());
    for (x, y, z) in v {
        a.push(x);
        b.push(y);
        c.push(z);
    }
    (a, b, c)
}
