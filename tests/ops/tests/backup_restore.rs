//! deploy/scripts/pg-backup.sh and pg-restore.sh against real Postgres: a database with
//! real ledger activity (and users with sessions) is dumped, restored into a fresh
//! database, and the restored one must hold every row of every table, pass the ledger's
//! own audit-chain verification and serve logins and the sessions made before the backup.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use advancia_auth::{
    AuthConfig, AuthService, ClientInfo, LoginOutcome, PasswordHashing, RegisterRequest,
    SigningKeys, TokenPair,
};
use advancia_ledger::{
    AccountKind, ExternalRef, Ledger, LedgerConfig, LedgerDef, MIGRATIONS, NewAccount, NewTransfer,
    OwnerKind, OwnerRef, account_flags as af, transfer_flags as tf,
};
use advancia_ops_tests::{repo_root, table_counts};
use advancia_test_support::TestDb;

const USD: u32 = 1;
const SOL: u32 = 2;
const CASH: u128 = 1;
const PAYABLE: u128 = 2;
const ESCROW: u128 = 3;
const FEES: u128 = 4;
const SOL_VAULT: u128 = 5;
const SOL_PAYABLE: u128 = 6;
const RETIRED: u128 = 7;

fn account(id: u128, ledger: u32, kind: AccountKind, flags: u32) -> NewAccount {
    NewAccount {
        id,
        ledger,
        kind,
        owner: OwnerRef {
            kind: OwnerKind::Facility,
            id: format!("facility-{id}"),
        },
        flags,
        jurisdiction: Some("US-CA".into()),
        user_data: id * 7,
    }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128, ledger: u32) -> NewTransfer {
    NewTransfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        ledger,
        code: 1,
        ..NewTransfer::default()
    }
}

/// Postings, two-phase transfers (posted in full, in part, voided, still pending),
/// chain-linked transfers, a closed account and settlement batches: every table of the
/// ledger schema gets rows through the ledger's own API.
async fn seed(ledger: &Ledger) -> Vec<u128> {
    for (id, code, scale) in [(USD, "USD", 2), (SOL, "SOL", 9)] {
        ledger
            .create_ledger(&LedgerDef {
                id,
                code: code.into(),
                scale,
            })
            .await
            .unwrap();
    }
    let accounts = [
        account(CASH, USD, AccountKind::Asset, 0),
        account(PAYABLE, USD, AccountKind::Liability, 0),
        account(ESCROW, USD, AccountKind::Liability, 0),
        account(
            FEES,
            USD,
            AccountKind::Revenue,
            af::DEBITS_MUST_NOT_EXCEED_CREDITS,
        ),
        account(SOL_VAULT, SOL, AccountKind::Asset, 0),
        account(SOL_PAYABLE, SOL, AccountKind::Liability, 0),
        account(RETIRED, USD, AccountKind::Liability, 0),
    ];
    for r in ledger.create_accounts(&accounts).await.unwrap() {
        r.unwrap();
    }
    let mut id = 100u128;
    let mut next = || {
        id += 1;
        id
    };
    // Batched postings: payments in cents with a fee leg.
    let batch: Vec<NewTransfer> = (0..120u128)
        .flat_map(|i| {
            [
                transfer(0, CASH, PAYABLE, 10_000 + i * 37, USD),
                transfer(0, PAYABLE, FEES, 150 + i, USD),
            ]
        })
        .collect();
    let batch: Vec<NewTransfer> = batch
        .into_iter()
        .map(|t| NewTransfer { id: next(), ..t })
        .collect();
    for r in ledger.create_transfers(&batch).await.unwrap() {
        r.unwrap();
    }
    // Chain-sourced transfers carry their on-chain reference (lamports, integers).
    for i in 0..20u32 {
        ledger
            .create_transfer(&NewTransfer {
                external_ref: Some(ExternalRef {
                    chain: "solana".into(),
                    signature: format!("5sig{i:060}"),
                    ix_index: i % 3,
                }),
                ..transfer(
                    next(),
                    SOL_VAULT,
                    SOL_PAYABLE,
                    1_000_000_000 + u128::from(i),
                    SOL,
                )
            })
            .await
            .unwrap();
    }
    // Two-phase escrow: hold, then post in full, post in part, void, or leave pending.
    let mut pending = Vec::new();
    for amount in [50_000u128, 40_000, 30_000, 20_000] {
        let t = ledger
            .create_transfer(&NewTransfer {
                flags: tf::PENDING,
                ..transfer(next(), CASH, ESCROW, amount, USD)
            })
            .await
            .unwrap();
        pending.push(t.id);
    }
    ledger.post_pending(next(), pending[0], None).await.unwrap();
    ledger
        .post_pending(next(), pending[1], Some(12_345))
        .await
        .unwrap();
    ledger.void_pending(next(), pending[2]).await.unwrap();
    // pending[3] stays pending: its reservation must survive the round trip.
    let closing = ledger
        .create_transfer(&transfer(next(), CASH, RETIRED, 1, USD))
        .await
        .unwrap();
    ledger
        .create_transfer(&transfer(next(), RETIRED, CASH, closing.amount, USD))
        .await
        .unwrap();
    ledger.close_account(RETIRED).await.unwrap();
    // Settlement roots over everything so far, in batches of 64.
    while ledger.close_settlement_batch(64).await.unwrap().is_some() {}
    vec![CASH, PAYABLE, ESCROW, FEES, SOL_VAULT, SOL_PAYABLE, RETIRED]
}

const PASSWORD: &str = "correct horse battery staple";
const USERS: [&str; 3] = [
    "billing@clinic.example",
    "nurse@clinic.example",
    "patient@example.org",
];

fn client() -> ClientInfo {
    ClientInfo {
        ip: Some(std::net::IpAddr::from([203, 0, 113, 7])),
        user_agent: Some("ops-tests/1.0".into()),
    }
}

async fn login(auth: &AuthService, email: &str) -> TokenPair {
    match auth.login(email, PASSWORD, client()).await.unwrap() {
        LoginOutcome::Tokens(t) => t,
        other => panic!("expected tokens, got {other:?}"),
    }
}

/// Users (argon2id hashes) with login sessions in the `auth` schema, through the auth
/// service; returns a refresh token issued before the backup.
async fn seed_auth(auth: &AuthService) -> TokenPair {
    for email in USERS {
        auth.register(RegisterRequest {
            email: email.into(),
            password: PASSWORD.into(),
            display_name: "Ops Test".into(),
        })
        .await
        .unwrap();
    }
    login(auth, USERS[1]).await;
    login(auth, USERS[0]).await
}

fn scripts() -> PathBuf {
    repo_root().join("deploy/scripts")
}

/// A directory for one test's backup files, removed when dropped (also on panic).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_dir(tag: &str) -> Scratch {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "advancia-backup-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn run(script: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(scripts().join(script))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "$ {script} {}\n{}{}",
        args.join(" "),
        run.stdout,
        run.stderr
    );
    run
}

async fn backup(db: &TestDb, dir: &Path) -> PathBuf {
    let out = run(
        "pg-backup.sh",
        &["-d", &db.url, "-o", dir.to_str().unwrap(), "-n", "ledger"],
    )
    .await;
    assert!(out.ok, "backup failed: {}", out.stderr);
    let dump = PathBuf::from(out.stdout.trim());
    assert_eq!(dump, dir.join("ledger.dump"));
    dump
}

#[tokio::test]
async fn round_trip_keeps_every_row_and_the_audit_chain() {
    let src = TestDb::new(&[&MIGRATIONS, &advancia_auth::MIGRATIONS]).await;
    let ledger = Ledger::new(src.pool.clone(), LedgerConfig::default());
    let accounts = seed(&ledger).await;
    let auth_config = AuthConfig {
        password_hashing: PasswordHashing::INSECURE_FAST,
        ..AuthConfig::default()
    };
    let keys = SigningKeys::generate();
    let auth = AuthService::new(src.pool.clone(), auth_config.clone(), keys.clone()).unwrap();
    let session = seed_auth(&auth).await;
    let before = table_counts(&src.pool).await.unwrap();
    assert_eq!(before["auth.users"], 3);
    let audit = ledger.verify_audit_chain().await.unwrap();
    assert!(audit.is_intact(), "{audit:?}");
    assert_eq!(before["ledger.accounts"], 7);
    assert_eq!(before["ledger.transfers"], 240 + 20 + 4 + 3 + 2);
    assert!(before["ledger.settlement_batches"] >= 4, "{before:?}");
    let mut balances = BTreeMap::new();
    for id in &accounts {
        balances.insert(*id, ledger.balance(*id).await.unwrap().unwrap());
    }

    let dir = scratch_dir("roundtrip");
    let dump = backup(&src, &dir).await;
    // The counts file is the snapshot the dump was taken in, table by table.
    let recorded: BTreeMap<String, i64> = std::fs::read_to_string(dir.join("ledger.counts"))
        .unwrap()
        .lines()
        .map(|l| {
            let (t, n) = l.split_once('\t').unwrap();
            (t.to_owned(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(recorded, before);

    // Activity after the backup is not in it.
    ledger
        .create_transfer(&transfer(9_999, CASH, PAYABLE, 1, USD))
        .await
        .unwrap();

    let dst = TestDb::empty().await;
    let out = run(
        "pg-restore.sh",
        &["-d", &dst.url, "-f", dump.to_str().unwrap()],
    )
    .await;
    assert!(out.ok, "restore failed: {}", out.stderr);
    assert!(
        out.stderr
            .contains("every table's row count matches the backup"),
        "{}",
        out.stderr
    );

    // Every table of every schema, row for row in number.
    let after = table_counts(&dst.pool).await.unwrap();
    assert_eq!(after, before);
    assert!(
        after.keys().any(|k| k.starts_with("ledger.")) && after.len() == before.len(),
        "{after:?}"
    );

    // The ledger's own verification on the restored database: the hash chain is intact
    // and ends where the source's did, balances and settlement proofs agree.
    let restored = Ledger::new(dst.pool.clone(), LedgerConfig::default());
    let report = restored.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.head_seq, report.entries_checked),
        (audit.head_seq, audit.entries_checked)
    );
    // Balances recomputed from the restored transfer log agree with the stored ones, and
    // debits equal credits per ledger.
    let rebuilt = restored.rebuild_balances(false).await.unwrap();
    assert!(rebuilt.is_consistent(), "{rebuilt:?}");
    assert_eq!(rebuilt.accounts_checked, 7);
    for (id, balance) in &balances {
        assert_eq!(
            &restored.balance(*id).await.unwrap().unwrap(),
            balance,
            "account {id}"
        );
    }
    let batch = restored.settlement_batch(1).await.unwrap().unwrap();
    assert_eq!(batch, ledger.settlement_batch(1).await.unwrap().unwrap());
    let proof = restored.settlement_proof(101).await.unwrap().unwrap();
    assert!(proof.verify().unwrap());

    // The restored ledger is live: triggers, sequences and the chain head came back, so
    // it appends after the restored head, keeps the log append-only and still verifies.
    let next = restored
        .create_transfer(&transfer(9_999, CASH, PAYABLE, 1, USD))
        .await
        .unwrap();
    assert_eq!(next.seq, audit.head_seq + 1);
    let e = sqlx::query("UPDATE ledger.transfers SET amount = 1 WHERE seq = 9")
        .execute(&dst.pool)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ledger."), "{e}");
    assert!(restored.verify_audit_chain().await.unwrap().is_intact());

    // The auth schema came back usable: password hashes verify, and the login session
    // made before the backup refreshes (its refresh-token family was restored).
    let restored_auth = AuthService::new(dst.pool.clone(), auth_config, keys).unwrap();
    login(&restored_auth, USERS[2]).await;
    let refreshed = restored_auth
        .refresh(session.refresh_token.expose())
        .await
        .unwrap();
    let claims = restored_auth
        .verify_access_token(refreshed.access_token.expose())
        .await
        .unwrap();
    assert_eq!(claims.sid, Some(session.session_id));
    assert_eq!(refreshed.session_id, session.session_id);

    // Restoring over a database that has tables is refused (no silent merge).
    let again = run(
        "pg-restore.sh",
        &["-d", &dst.url, "-f", dump.to_str().unwrap()],
    )
    .await;
    assert!(!again.ok);
    assert!(
        again.stderr.contains("restore into an empty database"),
        "{}",
        again.stderr
    );
}

#[tokio::test]
async fn damaged_archive_is_refused_before_anything_is_written() {
    let src = TestDb::new(&[&MIGRATIONS]).await;
    seed(&Ledger::new(src.pool.clone(), LedgerConfig::default())).await;
    let dir = scratch_dir("damaged");
    let dump = backup(&src, &dir).await;

    // One flipped byte in the middle of the archive.
    let mut bytes = std::fs::read(&dump).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&dump, &bytes).unwrap();

    let dst = TestDb::empty().await;
    let out = run(
        "pg-restore.sh",
        &["-d", &dst.url, "-f", dump.to_str().unwrap()],
    )
    .await;
    assert!(!out.ok);
    assert!(out.stderr.contains("checksum mismatch"), "{}", out.stderr);
    assert!(table_counts(&dst.pool).await.unwrap().is_empty());

    // A counts file that disagrees with the archive (even with a matching checksum) is
    // caught by the completeness check, which rolls the whole restore back.
    bytes[mid] ^= 0x01;
    std::fs::write(&dump, &bytes).unwrap();
    let counts = dir.join("ledger.counts");
    let text = std::fs::read_to_string(&counts).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("ledger.transfers\t"))
        .unwrap();
    let n: i64 = line.split_once('\t').unwrap().1.parse().unwrap();
    std::fs::write(
        &counts,
        text.replace(line, &format!("ledger.transfers\t{}", n + 1)),
    )
    .unwrap();
    let sums = std::process::Command::new("sha256sum")
        .current_dir(&*dir)
        .args(["ledger.dump", "ledger.counts"])
        .output()
        .unwrap();
    std::fs::write(dir.join("ledger.dump.sha256"), sums.stdout).unwrap();
    let out = run(
        "pg-restore.sh",
        &["-d", &dst.url, "-f", dump.to_str().unwrap()],
    )
    .await;
    assert!(!out.ok);
    assert!(out.stderr.contains("row counts differ"), "{}", out.stderr);
    // Checked inside the restore's transaction: nothing of it was committed.
    assert!(table_counts(&dst.pool).await.unwrap().is_empty());
}

#[tokio::test]
async fn scripts_never_print_the_password() {
    let src = TestDb::new(&[&MIGRATIONS]).await;
    seed(&Ledger::new(src.pool.clone(), LedgerConfig::default())).await;
    let dst = TestDb::empty().await;
    // URLs with a password: the one they have, or one added to the user (the test server
    // trusts local connections, so an added password is accepted and ignored).
    let (secret, src_url) = password_url(&src.url);
    let (_, dst_url) = password_url(&dst.url);
    let dir = scratch_dir("password");
    let dir_arg = dir.to_str().unwrap();
    let out = run(
        "pg-backup.sh",
        &["-d", &src_url, "-o", dir_arg, "-n", "ledger"],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    let dump = dir.join("ledger.dump");
    let restore = run(
        "pg-restore.sh",
        &["-d", &dst_url, "-f", dump.to_str().unwrap()],
    )
    .await;
    assert!(restore.ok, "{}", restore.stderr);
    for text in [&out.stdout, &out.stderr, &restore.stdout, &restore.stderr] {
        assert!(!text.contains(&secret), "password printed: {text}");
    }
    assert!(out.stderr.contains(":***@"), "{}", out.stderr);
}

/// `(password, url)`: `url` with a password in its user info.
fn password_url(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest
        .split_once('@')
        .unwrap_or_else(|| panic!("DATABASE_URL without a user: {scheme}://…"));
    match userinfo.split_once(':') {
        Some((_, password)) => (password.to_owned(), url.to_owned()),
        None => {
            let password = "s3cr3t-Passw0rd".to_owned();
            let url = format!("{scheme}://{userinfo}:{password}@{host}");
            (password, url)
        }
    }
}
