//! Throughput benchmark (`advancia-ledger bench`): creates its own database on the server
//! `DATABASE_URL` points at, measures postings/s for single-phase and two-phase transfers
//! in batched and per-request mode, and the raw `COPY` rate of the same number of rows
//! into a table shaped like `ledger.transfers` (same indexes, no triggers): the single-phase
//! rows, the two-phase rows, and the single-phase rows into a bare table.

use std::time::Instant;

use advancia_db::DbConfig;
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::types::{
    AccountKind, LedgerDef, NewAccount, NewTransfer, OwnerKind, OwnerRef, Transfer, account_flags,
    transfer_flags,
};
use crate::{Ledger, LedgerConfig, LedgerError, MIGRATIONS, WriteMode};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Postings per measured run.
    pub transfers: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Transfers per client request.
    pub request_size: usize,
    pub accounts: usize,
    /// Postings for the per-request (fixed-order locking) runs.
    pub per_request_transfers: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            transfers: 100_000,
            clients: 32,
            request_size: 100,
            accounts: 1_000,
            per_request_transfers: 20_000,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub single_phase_batched: f64,
    pub two_phase_batched: f64,
    pub single_phase_per_request: f64,
    pub two_phase_per_request: f64,
    /// COPY of the single-phase run's rows into a table with the transfer table's indexes
    /// (the like-for-like baseline).
    pub copy_rows_per_sec: f64,
    /// COPY of the two-phase run's rows (pending + posts, the posts with `pending_id`, so
    /// its partial unique index is maintained too) into an indexed clone.
    pub copy_two_phase_rows_per_sec: f64,
    /// COPY into a bare table (no indexes): the upper bound of raw ingestion.
    pub copy_unindexed_rows_per_sec: f64,
    pub rows: usize,
}

impl BenchReport {
    pub fn summary(&self) -> String {
        let pct = |v: f64, base: f64| 100.0 * v / base;
        format!(
            "ledger bench: batched single-phase {:.0} postings/s, two-phase {:.0} postings/s; \
             per-request {:.0} / {:.0} postings/s; COPY {:.0} rows/s into an indexed clone \
             ({:.0} rows/s for the two-phase rows), {:.0} rows/s unindexed ({} rows); \
             batched/COPY indexed {:.1}% / {:.1}% (two-phase/COPY of its own rows {:.1}%), \
             unindexed {:.1}% / {:.1}%",
            self.single_phase_batched,
            self.two_phase_batched,
            self.single_phase_per_request,
            self.two_phase_per_request,
            self.copy_rows_per_sec,
            self.copy_two_phase_rows_per_sec,
            self.copy_unindexed_rows_per_sec,
            self.rows,
            pct(self.single_phase_batched, self.copy_rows_per_sec),
            pct(self.two_phase_batched, self.copy_rows_per_sec),
            pct(self.two_phase_batched, self.copy_two_phase_rows_per_sec),
            pct(self.single_phase_batched, self.copy_unindexed_rows_per_sec),
            pct(self.two_phase_batched, self.copy_unindexed_rows_per_sec),
        )
    }
}

/// Deterministic xorshift so runs are comparable without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const LEDGER: u32 = 1;
const TREASURY: u128 = 1;

fn user(i: usize) -> u128 {
    1_000 + i as u128
}

async fn setup(pool: &PgPool, accounts: usize) -> Result<Ledger, LedgerError> {
    let ledger = Ledger::new(pool.clone(), LedgerConfig::default());
    ledger
        .create_ledger(&LedgerDef {
            id: LEDGER,
            code: "USDC".into(),
            scale: 6,
        })
        .await?;
    let mut new = vec![NewAccount {
        id: TREASURY,
        ledger: LEDGER,
        kind: AccountKind::Liability,
        owner: OwnerRef {
            kind: OwnerKind::Treasury,
            id: "treasury".into(),
        },
        flags: 0,
        jurisdiction: None,
        user_data: 0,
    }];
    for i in 0..accounts {
        new.push(NewAccount {
            id: user(i),
            ledger: LEDGER,
            kind: AccountKind::Asset,
            owner: OwnerRef {
                kind: OwnerKind::User,
                id: format!("user-{i}"),
            },
            // Limit flag on every user account so the benchmark pays for limit checks.
            flags: account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            jurisdiction: None,
            user_data: 0,
        });
    }
    for r in ledger.create_accounts(&new).await? {
        r.map_err(|e| LedgerError::InvalidInput(format!("bench account: {e}")))?;
    }
    // Fund every user so random transfers between users stay within limits.
    let funding: Vec<NewTransfer> = (0..accounts)
        .map(|i| NewTransfer {
            id: 1 + i as u128,
            debit_account_id: TREASURY,
            credit_account_id: user(i),
            amount: 1_000_000_000_000,
            ledger: LEDGER,
            code: 1,
            ..NewTransfer::default()
        })
        .collect();
    for r in ledger.create_transfers(&funding).await? {
        r.map_err(|e| LedgerError::InvalidInput(format!("bench funding: {e}")))?;
    }
    Ok(ledger)
}

fn workload(first_id: u128, n: usize, accounts: usize, flags: u32, seed: u64) -> Vec<NewTransfer> {
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|i| {
            let a = rng.next() as usize % accounts;
            let b = (a + 1 + rng.next() as usize % (accounts - 1)) % accounts;
            NewTransfer {
                id: first_id + i as u128,
                debit_account_id: user(a),
                credit_account_id: user(b),
                amount: 1 + u128::from(rng.next() % 1_000),
                ledger: LEDGER,
                code: 7,
                flags,
                ..NewTransfer::default()
            }
        })
        .collect()
}

/// Runs `transfers` through `clients` concurrent callers; returns postings/s.
async fn drive(
    ledger: &Ledger,
    transfers: Vec<NewTransfer>,
    clients: usize,
    request_size: usize,
) -> Result<(f64, Vec<Transfer>), LedgerError> {
    let chunks: Vec<Vec<NewTransfer>> = transfers
        .chunks(request_size.max(1))
        .map(<[NewTransfer]>::to_vec)
        .collect();
    let total = transfers.len();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(chunks.into_iter()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let ledger = ledger.clone();
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().await.next();
                let Some(chunk) = next else { break };
                for r in ledger.create_transfers(&chunk).await? {
                    done.push(
                        r.map_err(|e| LedgerError::InvalidInput(format!("bench transfer: {e}")))?,
                    );
                }
            }
            Ok::<_, LedgerError>(done)
        }));
    }
    let mut created = Vec::with_capacity(total);
    for t in tasks {
        created.extend(
            t.await
                .map_err(|e| LedgerError::InvalidInput(format!("bench task: {e}")))??,
        );
    }
    Ok((total as f64 / start.elapsed().as_secs_f64(), created))
}

async fn two_phase(
    ledger: &Ledger,
    first_id: u128,
    n: usize,
    o: &BenchOptions,
    seed: u64,
) -> Result<(f64, Vec<Transfer>), LedgerError> {
    let pending = workload(first_id, n / 2, o.accounts, transfer_flags::PENDING, seed);
    let posts: Vec<NewTransfer> = pending
        .iter()
        .map(|p| NewTransfer {
            id: p.id + n as u128,
            pending_id: p.id,
            flags: transfer_flags::POST_PENDING,
            ..NewTransfer::default()
        })
        .collect();
    let start = Instant::now();
    let (_, mut rows) = drive(ledger, pending, o.clients, o.request_size).await?;
    let (_, posted) = drive(ledger, posts, o.clients, o.request_size).await?;
    let rate = (n / 2 * 2) as f64 / start.elapsed().as_secs_f64();
    rows.extend(posted);
    Ok((rate, rows))
}

/// COPY of `rows` into a fresh table `table`: `LIKE ledger.transfers INCLUDING ALL` (same
/// indexes and constraints) when `indexed`, else the bare columns (no indexes, no
/// constraints).
async fn copy_rate(
    pool: &PgPool,
    table: &str,
    rows: &[Transfer],
    indexed: bool,
) -> Result<f64, LedgerError> {
    let mut conn = pool.acquire().await?;
    let like = if indexed { " INCLUDING ALL" } else { "" };
    conn.execute(format!("CREATE TABLE {table} (LIKE ledger.transfers{like})").as_str())
        .await?;
    let h = [7u8; 32];
    let rows: Vec<(Transfer, crate::audit::Hash, crate::audit::Hash)> = rows
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut t = t.clone();
            t.seq = i as u64 + 1;
            (t, h, h)
        })
        .collect();
    // Same encoding as the writer (binary), so the ratio compares like with like.
    let data = crate::store::encode_transfers(&rows);
    let start = Instant::now();
    crate::store::copy_in(
        &mut conn,
        &format!(
            "COPY {table} ({}) FROM STDIN (FORMAT binary)",
            crate::store::TRANSFER_COPY_COLUMNS
        ),
        data,
    )
    .await?;
    Ok(rows.len() as f64 / start.elapsed().as_secs_f64())
}

/// Creates `advancia_ledger_bench_<pid>`, runs everything, drops it.
pub async fn run(o: &BenchOptions) -> Result<BenchReport, LedgerError> {
    let admin_url = DbConfig::from_env().url;
    let name = format!("advancia_ledger_bench_{}", std::process::id());
    let mut admin = PgConnection::connect(&admin_url).await?;
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await?;
    let url = advancia_db::with_database(&admin_url, &name);
    let result = async {
        let pool = PgPoolOptions::new()
            .max_connections(u32::try_from(o.clients.max(2) + 2).unwrap_or(34))
            .connect(&url)
            .await?;
        advancia_db::migrate(&pool, &[&MIGRATIONS]).await?;
        let report = run_in(&pool, o).await;
        pool.close().await;
        report
    }
    .await;
    let _ = admin
        .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await;
    let _ = admin.close().await;
    result
}

async fn run_in(pool: &PgPool, o: &BenchOptions) -> Result<BenchReport, LedgerError> {
    let batched = setup(pool, o.accounts.max(2)).await?;
    let n = o.transfers;
    let (single, created) = drive(
        &batched,
        workload(1 << 64, n, o.accounts, 0, 42),
        o.clients,
        o.request_size,
    )
    .await?;
    println!("single-phase batched: {single:.0} postings/s ({n} transfers)");
    let (two, two_rows) = two_phase(&batched, 2 << 64, n, o, 43).await?;
    println!("two-phase batched:    {two:.0} postings/s ({n} transfers: pending + post)");

    let per = Ledger::new(
        pool.clone(),
        LedgerConfig {
            mode: WriteMode::PerRequest,
            ..LedgerConfig::default()
        },
    );
    let m = o.per_request_transfers;
    let (single_pr, _) = drive(
        &per,
        workload(3 << 64, m, o.accounts, 0, 44),
        o.clients,
        o.request_size,
    )
    .await?;
    println!("single-phase per-request: {single_pr:.0} postings/s ({m} transfers)");
    let (two_pr, _) = two_phase(&per, 4 << 64, m, o, 45).await?;
    println!("two-phase per-request:    {two_pr:.0} postings/s ({m} transfers)");

    let copy_raw = copy_rate(pool, "ledger.bench_copy_raw", &created, false).await?;
    println!(
        "COPY into an unindexed table: {copy_raw:.0} rows/s ({} rows)",
        created.len()
    );
    let copy = copy_rate(pool, "ledger.bench_copy", &created, true).await?;
    println!(
        "COPY into ledger.transfers clone: {copy:.0} rows/s ({} rows)",
        created.len()
    );
    let copy_two = copy_rate(pool, "ledger.bench_copy_two_phase", &two_rows, true).await?;
    println!(
        "COPY of the two-phase rows into a clone: {copy_two:.0} rows/s ({} rows)",
        two_rows.len()
    );

    let check = batched.rebuild_balances(false).await?;
    if !check.is_consistent() {
        return Err(LedgerError::Corrupt(
            "balances differ from the log after the benchmark".into(),
        ));
    }
    Ok(BenchReport {
        single_phase_batched: single,
        two_phase_batched: two,
        single_phase_per_request: single_pr,
        two_phase_per_request: two_pr,
        copy_rows_per_sec: copy,
        copy_two_phase_rows_per_sec: copy_two,
        copy_unindexed_rows_per_sec: copy_raw,
        rows: created.len(),
    })
}
