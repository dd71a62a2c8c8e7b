//! Against real Postgres (one database per test) and the real file system.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::path::PathBuf;
use std::sync::Arc;

use advancia_chains::address::Chain;
use advancia_chains::wallets::WalletStore;
use advancia_kyc::documents::{DocumentError, LocalDirStore, ObjectStore};
use advancia_kyc::mrz::{self, MrzError, check_digit};
use advancia_kyc::provider::LocalProvider;
use advancia_kyc::sanctions::SanctionsList;
use advancia_kyc::*;
use advancia_test_support::TestDb;
use sha2::{Digest, Sha256};
use time::{Date, Duration, Month, OffsetDateTime};
use uuid::Uuid;

mod attestation_e2e;
mod s3_store;

pub const WALLET: &str = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin";

pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/sdn")
}

pub fn sample_list() -> SanctionsList {
    SanctionsList::load_dir(&testdata()).unwrap()
}

/// The directory `advancia serve` gives KYC, over the same typed reads of the wallet and
/// indexer services (sign-in wallets come from the auth service there; these tests link
/// wallets with the wallet service).
pub struct Directory {
    pub wallets: WalletStore,
    pub indexer: sqlx::PgPool,
}

impl KycDirectory for Directory {
    fn wallet_linked<'a>(
        &'a self,
        user: Uuid,
        address: &'a str,
    ) -> advancia_kyc::documents::BoxFuture<'a, Result<bool, advancia_kyc::directory::PortError>>
    {
        Box::pin(async move { Ok(self.wallets.owns_on(user, "solana", address).await?) })
    }

    fn payments_since<'a>(
        &'a self,
        payer: &'a str,
        since: [i64; 2],
    ) -> advancia_kyc::documents::BoxFuture<'a, Result<[i64; 2], advancia_kyc::directory::PortError>>
    {
        Box::pin(async move {
            Ok(advancia_indexer::query::payer_counts(&self.indexer, payer, since).await?)
        })
    }
}

pub fn directory(pool: &sqlx::PgPool) -> advancia_kyc::Directory {
    Arc::new(Directory {
        wallets: WalletStore::new(pool.clone()),
        indexer: pool.clone(),
    })
}

pub struct Setup {
    pub db: TestDb,
    pub svc: KycService,
    pub dir: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn setup() -> Setup {
    let db = TestDb::new(&[
        &advancia_auth::MIGRATIONS,
        &advancia_chains::MIGRATIONS,
        &advancia_indexer::MIGRATIONS,
        &advancia_notifications::MIGRATIONS,
        &MIGRATIONS,
    ])
    .await;
    let dir = std::env::temp_dir().join(format!("kyc-test-{}", Uuid::new_v4()));
    let svc = KycService::new(
        db.pool.clone(),
        Arc::new(LocalDirStore::new(&dir)),
        Arc::new(LocalProvider::default()),
        Arc::new(sample_list()),
        directory(&db.pool),
        KycConfig::default(),
    );
    Setup { db, svc, dir }
}

/// A minimal valid PNG header followed by filler bytes.
pub fn png(len: usize, seed: u8) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0..len.saturating_sub(8)).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    v
}

pub async fn upload(
    svc: &KycService,
    user: Uuid,
    mime: &str,
    kind: DocumentKind,
    bytes: &[u8],
    chunk: usize,
) -> Result<Document, KycError> {
    let mut ingest = svc.begin_upload(mime).await?;
    for c in bytes.chunks(chunk) {
        ingest.write(c).await?;
    }
    let staged = ingest.finish().await?;
    svc.complete_upload(user, kind, staged).await
}

/// A TD3 zone with correct check digits (the fields are fictitious).
pub fn td3(surname: &str, given: &str, number: &str, birth: &str, expiry: &str) -> String {
    let mut l1 = format!(
        "P<UTO{}<<{}",
        surname.replace(' ', "<"),
        given.replace(' ', "<")
    );
    while l1.len() < 44 {
        l1.push('<');
    }
    let num = format!("{number:<<9}");
    let personal = "<<<<<<<<<<<<<<";
    let d = |s: &str| check_digit(s).unwrap().to_string();
    let mut l2 = format!(
        "{num}{}UTO{birth}{}F{expiry}{}{personal}{}",
        d(&num),
        d(birth),
        d(expiry),
        d(personal)
    );
    let composite = format!("{}{}{}", &l2[0..10], &l2[13..20], &l2[21..43]);
    l2.push_str(&d(&composite));
    format!("{l1}\n{l2}")
}

/// A linked wallet, an uploaded passport scan and a consistent passport submission.
pub async fn applicant(s: &Setup, name: &str, wallet: &str) -> (Uuid, SubmitRequest) {
    let user = Uuid::now_v7();
    WalletStore::new(s.db.pool.clone())
        .register(user, Chain::Solana, wallet, None)
        .await
        .unwrap();
    let doc = upload(
        &s.svc,
        user,
        "image/png",
        DocumentKind::Passport,
        &png(4096, user.as_bytes()[15]),
        1000,
    )
    .await
    .unwrap();
    let (given, surname) = name.rsplit_once(' ').unwrap();
    // A document number of its own per applicant (MRZ characters only).
    let number = format!("X{}", &hex::encode_upper(&user.as_bytes()[10..]))[..9].to_owned();
    let expiry = (OffsetDateTime::now_utc() + Duration::days(3 * 365)).date();
    let yymmdd = |d: Date| format!("{:02}{:02}{:02}", d.year() % 100, d.month() as u8, d.day());
    let birth = Date::from_calendar_date(1985, Month::March, 14).unwrap();
    let req = SubmitRequest {
        full_name: name.into(),
        birth_date: birth,
        country: "US".into(),
        document_type: IdDocumentType::Passport,
        document_number: number.clone(),
        document_expiry: None,
        mrz: Some(td3(
            &surname.to_uppercase(),
            &given.to_uppercase(),
            &number,
            &yymmdd(birth),
            &yymmdd(expiry),
        )),
        documents: vec![doc.sha256],
        wallet: wallet.into(),
    };
    (user, req)
}

// ---- MRZ --------------------------------------------------------------------------------

#[test]
fn mrz_icao_9303_specimen() {
    // ICAO Doc 9303 part 4, appendix: the TD3 specimen passport of "Anna Maria Eriksson".
    let zone = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10";
    let p = mrz::parse_td3(zone).unwrap();
    assert_eq!(p.surname, "ERIKSSON");
    assert_eq!(p.given_names, "ANNA MARIA");
    assert_eq!(p.document_number, "L898902C3");
    assert_eq!(p.nationality, "UTO");
    assert_eq!(p.personal_number, "ZE184226B");
    let today = Date::from_calendar_date(2026, Month::January, 1).unwrap();
    assert_eq!(
        p.birth_date(today).unwrap(),
        Date::from_calendar_date(1974, Month::August, 12).unwrap()
    );
    assert_eq!(
        p.expiry_date(today).unwrap(),
        Date::from_calendar_date(2012, Month::April, 15).unwrap()
    );

    // Every check digit is verified: change one character of each field.
    let l1 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<";
    for (pos, what) in [
        (9, "document number"),
        (19, "birth date"),
        (27, "expiry date"),
        (42, "personal number"),
        (43, "composite"),
    ] {
        let mut l2 = b"L898902C36UTO7408122F1204159ZE184226B<<<<<10".to_vec();
        l2[pos] = if l2[pos] == b'5' { b'6' } else { b'5' };
        let zone = format!("{l1}\n{}", String::from_utf8(l2).unwrap());
        assert_eq!(mrz::parse_td3(&zone), Err(MrzError::CheckDigit(what)));
    }
    assert_eq!(mrz::parse_td3("P<UTO\nshort"), Err(MrzError::Shape));
    assert!(matches!(
        mrz::parse_td3(&zone.replace("P<UTO", "I<UTO")),
        Err(MrzError::NotPassport)
    ));
}

// ---- sanctions --------------------------------------------------------------------------

#[test]
fn sanctions_names_aliases_transliteration_addresses() {
    let list = sample_list();
    assert_eq!(list.len(), 5);
    assert_eq!(list.address_count(), 3);

    // Primary name, in the other order and case.
    let m = list.screen_name("Dmitri Volkov", 0.88);
    assert_eq!(m[0].ent_num, 9001);
    assert!(!m[0].alias);
    assert!(m[0].score >= 0.88, "{m:?}");
    // An alias, and the alias is named.
    let m = list.screen_name("Dimitri Volkoff", 0.88);
    assert_eq!(m[0].ent_num, 9001);
    assert!(m[0].alias);
    assert_eq!(m[0].matched_name, "VOLKOFF, Dimitri");
    // Diacritics on the list, none in the query.
    let m = list.screen_name("Jozef Muller-Stefanic", 0.88);
    assert_eq!(m[0].ent_num, 9002);
    assert!(m[0].score > 0.97, "{m:?}");
    // Cyrillic query against a Latin listing (transliteration).
    let m = list.screen_name("Мария Иванова", 0.88);
    assert_eq!(m[0].ent_num, 9004, "{m:?}");
    // A typo still scores; an unrelated name does not.
    assert_eq!(
        list.screen_name("Golden Horizon Tradng FZE", 0.88)[0].ent_num,
        9003
    );
    assert!(list.screen_name("Anna Maria Eriksson", 0.88).is_empty());
    assert!(
        list.screen_name("Maria", 0.88).is_empty(),
        "one common token is not a match"
    );

    // Addresses from the remarks; EVM hex case-insensitively, base58 exactly.
    let a = list.screen_address("1FictXbtSampLeAddr3ssForKycTests9");
    assert_eq!((a[0].ent_num, a[0].currency.as_str()), (9001, "XBT"));
    let a = list.screen_address("0x00000000000000000000000000000000000fac01");
    assert_eq!(a[0].currency, "ETH");
    assert_eq!(
        list.screen_address("5ancTioNedTestWa11etXXXXXXXXXXXXXXXXXXXXXXX")[0].currency,
        "SOL"
    );
    assert!(
        list.screen_address("1fictxbtsampleaddr3ssforkyctests9")
            .is_empty()
    );
}

#[test]
fn sanctions_list_format_errors() {
    assert!(SanctionsList::parse("x,\"A\"\n", None, None).is_err());
    assert!(SanctionsList::parse("1,\"A\"\n", Some("2,1,\"aka\",\"B\"\n"), None).is_err());
    assert!(SanctionsList::parse("1,\"unterminated\n", None, None).is_err());
}

// ---- documents --------------------------------------------------------------------------

#[tokio::test]
async fn upload_content_addressed_idempotent_and_limited() {
    let s = setup().await;
    let user = Uuid::now_v7();
    let bytes = png(300_000, 7);
    let doc = upload(
        &s.svc,
        user,
        "image/png",
        DocumentKind::Passport,
        &bytes,
        8192,
    )
    .await
    .unwrap();
    assert_eq!(doc.sha256, hex::encode(Sha256::digest(&bytes)));
    assert!(doc.created);
    let store = LocalDirStore::new(&s.dir);
    let path = store.path_of(&doc.sha256).unwrap();
    assert!(path.starts_with(s.dir.join(&doc.sha256[..2])));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // Same content again (other chunking): one object, one row.
    let again = upload(
        &s.svc,
        user,
        "image/png",
        DocumentKind::Passport,
        &bytes,
        777,
    )
    .await
    .unwrap();
    assert_eq!((again.id, again.created), (doc.id, false));
    assert_eq!(store.get(&doc.sha256).await.unwrap().unwrap(), bytes);
    assert!(store.get("../../etc/passwd").await.unwrap().is_none());

    let err = |r: Result<Document, KycError>| match r {
        Err(KycError::Document(e)) => e,
        other => panic!("expected a document error, got {other:?}"),
    };
    // Size limit while streaming (10 MiB default): fails on the chunk that passes it.
    let big = png(10 * 1024 * 1024 + 1, 1);
    assert!(matches!(
        err(upload(&s.svc, user, "image/png", DocumentKind::Other, &big, 65536).await),
        DocumentError::TooLarge { .. }
    ));
    // Executables, whatever they claim to be.
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00".to_vec();
    exe.extend([0u8; 100]);
    assert!(matches!(
        err(upload(
            &s.svc,
            user,
            "application/pdf",
            DocumentKind::Other,
            &exe,
            3
        )
        .await),
        DocumentError::Malicious(_)
    ));
    let elf = b"\x7fELF\x02\x01\x01\x00rest".to_vec();
    assert!(matches!(
        err(upload(&s.svc, user, "image/png", DocumentKind::Other, &elf, 64).await),
        DocumentError::Malicious(_)
    ));
    // Declared type must match the content.
    let pdf = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n".to_vec();
    assert!(matches!(
        err(upload(&s.svc, user, "image/png", DocumentKind::Other, &pdf, 64).await),
        DocumentError::TypeMismatch { .. }
    ));
    assert!(matches!(
        err(upload(&s.svc, user, "text/html", DocumentKind::Other, &pdf, 64).await),
        DocumentError::UnsupportedType(_)
    ));
    // Signatures split across chunk boundaries are still seen.
    let mut eicar = png(100, 3);
    eicar.extend_from_slice(
        b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
    );
    assert!(matches!(
        err(upload(&s.svc, user, "image/png", DocumentKind::Other, &eicar, 50).await),
        DocumentError::Malicious(_)
    ));
    let mut js = b"%PDF-1.4\n".to_vec();
    js.extend_from_slice(b"<< /S /JavaScript /JS (app.alert(1)) >>");
    assert!(matches!(
        err(upload(
            &s.svc,
            user,
            "application/pdf",
            DocumentKind::Other,
            &js,
            10
        )
        .await),
        DocumentError::Malicious(_)
    ));
    assert!(matches!(
        err(upload(&s.svc, user, "image/png", DocumentKind::Other, b"", 1).await),
        DocumentError::Empty
    ));
    // A valid PDF is accepted; no staging files are left behind by any of the above.
    upload(
        &s.svc,
        user,
        "application/pdf",
        DocumentKind::ProofOfAddress,
        &pdf,
        5,
    )
    .await
    .unwrap();
    let staging: Vec<_> = std::fs::read_dir(s.dir.join(".staging")).unwrap().collect();
    assert!(staging.is_empty(), "{staging:?}");
}

// ---- workflow ---------------------------------------------------------------------------

#[tokio::test]
async fn workflow_transitions_history_and_illegal_moves() {
    let s = setup().await;
    let (user, req) = applicant(&s, "Jane Q Applicant", WALLET).await;
    let v = s.svc.submit(user, req.clone()).await.unwrap();
    assert_eq!(v.state, State::InReview, "{:?}", v.checks);
    assert!(v.checks.iter().all(|c| c.passed));
    assert_eq!(v.level, Some(2), "passport with a verified MRZ");
    assert!(v.sanctions.is_empty());
    assert_eq!(v.wallet, WALLET);

    // One open verification per user.
    assert!(matches!(
        s.svc.submit(user, req.clone()).await,
        Err(KycError::AlreadyOpen)
    ));

    let officer = Uuid::now_v7();
    let approved = s
        .svc
        .approve(
            v.id,
            officer,
            &ApproveRequest {
                level: None,
                acknowledge_sanctions: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(approved.state, State::Approved);
    assert_eq!(approved.reviewer, Some(officer));
    let expires = approved.expires_at.unwrap();
    let in_a_year = OffsetDateTime::now_utc() + Duration::days(365);
    assert!(
        (expires - in_a_year).abs() < Duration::minutes(5),
        "{expires}"
    );

    // Illegal moves are refused by the service…
    for r in [
        s.svc
            .approve(
                v.id,
                officer,
                &ApproveRequest {
                    level: Some(1),
                    acknowledge_sanctions: false,
                },
            )
            .await,
        s.svc.reject(v.id, officer, "changed my mind").await,
    ] {
        assert!(
            matches!(r, Err(KycError::IllegalTransition { ref from, .. }) if from == "approved"),
            "{r:?}"
        );
    }
    // …and by the database, whatever code tries.
    let raw = sqlx::query("UPDATE kyc.verifications SET state = 'submitted' WHERE id = $1")
        .bind(v.id)
        .execute(&s.db.pool)
        .await
        .unwrap_err();
    assert!(
        raw.to_string()
            .contains("illegal KYC transition approved -> submitted"),
        "{raw}"
    );
    // History and the decision log are append-only.
    let del = sqlx::query("DELETE FROM kyc.decision_events")
        .execute(&s.db.pool)
        .await
        .unwrap_err();
    assert!(del.to_string().contains("append-only"), "{del}");

    let status = s.svc.status(user).await.unwrap();
    assert_eq!(status.state, "approved");
    assert_eq!(status.level, Some(2));
    let moves: Vec<(Option<String>, String)> = status
        .history
        .iter()
        .map(|h| (h.from.clone(), h.to.clone()))
        .collect();
    assert_eq!(
        moves,
        vec![
            (None, "submitted".into()),
            (Some("submitted".into()), "in_review".into()),
            (Some("in_review".into()), "approved".into()),
        ]
    );
    let att = status.attestation.unwrap();
    assert_eq!(
        (att.action.as_str(), att.state.as_str()),
        ("write", "pending")
    );
    let job: (String, i16, i64) = sqlx::query_as(
        "SELECT wallet, level, expires_at FROM kyc.attestation_jobs WHERE verification_id = $1",
    )
    .bind(v.id)
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(job, (WALLET.to_owned(), 2, expires.unix_timestamp()));

    // A dead job can be requeued (only a failed one).
    assert_eq!(s.svc.retry_attestation(v.id).await.unwrap(), 0);
    sqlx::query("UPDATE kyc.attestation_jobs SET state = 'failed', attempts = 10 WHERE verification_id = $1")
        .bind(v.id)
        .execute(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(s.svc.retry_attestation(v.id).await.unwrap(), 1);
    let (state, attempts): (String, i32) = sqlx::query_as(
        "SELECT state, attempts FROM kyc.attestation_jobs WHERE verification_id = $1",
    )
    .bind(v.id)
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), attempts), ("pending", 0));

    // Expiry: nothing due now; a year later the approval expires and a revoke is queued.
    assert_eq!(
        s.svc.expire_due(OffsetDateTime::now_utc()).await.unwrap(),
        0
    );
    let later = OffsetDateTime::now_utc() + Duration::days(400);
    assert_eq!(s.svc.expire_due(later).await.unwrap(), 1);
    assert_eq!(s.svc.get(v.id).await.unwrap().state, State::Expired);
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM kyc.attestation_jobs WHERE verification_id = $1 ORDER BY id",
    )
    .bind(v.id)
    .fetch_all(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(actions, ["write", "revoke"]);
    let decisions: Vec<String> = sqlx::query_scalar(
        "SELECT decision FROM kyc.decision_events WHERE verification_id = $1 ORDER BY id",
    )
    .bind(v.id)
    .fetch_all(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(decisions, ["approved", "expired"]);

    // A new submission is possible again; reject it, then it cannot be approved.
    let v2 = s.svc.submit(user, req).await.unwrap();
    let r = s
        .svc
        .reject(v2.id, officer, "document unreadable")
        .await
        .unwrap();
    assert_eq!(
        (r.state, r.reason.as_deref()),
        (State::Rejected, Some("document unreadable"))
    );
    assert!(matches!(
        s.svc
            .approve(
                v2.id,
                officer,
                &ApproveRequest {
                    level: None,
                    acknowledge_sanctions: false
                }
            )
            .await,
        Err(KycError::IllegalTransition { .. })
    ));
    assert!(matches!(
        s.svc.get(Uuid::now_v7()).await,
        Err(KycError::NotFound(_))
    ));
}

#[tokio::test]
async fn provider_rejects_inconsistent_submissions_and_inputs_are_checked() {
    let s = setup().await;
    // Under age: rejected automatically, with the failed check as the reason.
    let (user, mut req) = applicant(&s, "Young Applicant", WALLET).await;
    let today = OffsetDateTime::now_utc().date();
    let birth = today.replace_year(today.year() - 16).unwrap_or(today);
    req.birth_date = birth;
    let v = s.svc.submit(user, req).await.unwrap();
    assert_eq!(v.state, State::Rejected);
    assert!(
        v.reason.as_deref().unwrap().contains("age"),
        "{:?}",
        v.reason
    );
    // The MRZ birth date no longer matches either.
    assert!(
        v.checks
            .iter()
            .any(|c| c.check == "mrz_birth_date" && !c.passed)
    );

    // Name that does not match the MRZ; document number that does not match.
    let (user, mut req) = applicant(&s, "Carl Consistent", WALLET).await;
    req.full_name = "Someone Else Entirely".into();
    req.document_number = "Z9999999".into();
    let v = s.svc.submit(user, req).await.unwrap();
    assert_eq!(v.state, State::Rejected);
    let failed: Vec<&str> = v
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.check.as_str())
        .collect();
    assert_eq!(failed, ["mrz_document_number", "mrz_name"]);

    // A broken check digit.
    let (user, mut req) = applicant(&s, "Dora Digit", WALLET).await;
    let mrz = req.mrz.take().unwrap();
    let mut b = mrz.into_bytes();
    let last = b.len() - 1;
    b[last] = if b[last] == b'0' { b'1' } else { b'0' };
    req.mrz = Some(String::from_utf8(b).unwrap());
    let v = s.svc.submit(user, req).await.unwrap();
    assert_eq!(v.state, State::Rejected);
    assert!(
        v.checks
            .iter()
            .any(|c| c.check == "mrz" && !c.passed && c.detail.contains("composite"))
    );

    // Wallet not linked to the user; document of another user; bad country.
    let (user, mut req) = applicant(&s, "Eve Example", WALLET).await;
    req.wallet = "So11111111111111111111111111111111111111112".into();
    assert!(
        matches!(s.svc.submit(user, req.clone()).await, Err(KycError::Invalid(m)) if m.contains("linked"))
    );
    let (other, _) = applicant(&s, "Frank Other", WALLET).await;
    let mut stolen = req.clone();
    stolen.wallet = WALLET.into();
    assert!(
        matches!(s.svc.submit(other, stolen).await, Err(KycError::Invalid(m)) if m.contains("not uploaded by you"))
    );
    req.wallet = WALLET.into();
    req.country = "usa".into();
    assert!(matches!(
        s.svc.submit(user, req).await,
        Err(KycError::Invalid(_))
    ));

    // The same passport by a second account, while the first is in review.
    let (first, req) = applicant(&s, "Gina Genuine", WALLET).await;
    assert_eq!(
        s.svc.submit(first, req.clone()).await.unwrap().state,
        State::InReview
    );
    let (copycat, mut copy) = applicant(&s, "Gina Genuine", WALLET).await;
    copy.document_number = req.document_number.to_lowercase();
    copy.mrz = req.mrz.clone();
    let v = s.svc.submit(copycat, copy).await.unwrap();
    assert_eq!(v.state, State::Rejected);
    let failed: Vec<&str> = v
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.check.as_str())
        .collect();
    assert_eq!(failed, ["document_unique"]);

    // Rejections are decisions.
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM kyc.decision_events WHERE decision = 'rejected'")
            .fetch_one(&s.db.pool)
            .await
            .unwrap();
    assert_eq!(n, 4);
}

#[tokio::test]
async fn sanctions_hit_needs_acknowledgement_and_revocation_queues_revoke() {
    let s = setup().await;
    let (user, req) = applicant(&s, "Dmitri Volkov", WALLET).await;
    let v = s.svc.submit(user, req).await.unwrap();
    assert_eq!(v.state, State::InReview);
    assert_eq!(v.sanctions[0].ent_num, 9001);
    let officer = Uuid::now_v7();
    assert!(matches!(
        s.svc.approve(v.id, officer, &ApproveRequest { level: None, acknowledge_sanctions: false }).await,
        Err(KycError::SanctionsHit(score)) if score >= 0.9
    ));
    let a = s
        .svc
        .approve(
            v.id,
            officer,
            &ApproveRequest {
                level: Some(1),
                acknowledge_sanctions: true,
            },
        )
        .await
        .unwrap();
    assert_eq!((a.state, a.level), (State::Approved, Some(1)));
    let r = s
        .svc
        .revoke(v.id, officer, "false-positive review reversed")
        .await
        .unwrap();
    assert_eq!(r.state, State::Revoked);
    let jobs: Vec<(String, Option<i16>)> = sqlx::query_as(
        "SELECT action, level FROM kyc.attestation_jobs WHERE verification_id = $1 ORDER BY id",
    )
    .bind(v.id)
    .fetch_all(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(jobs, [("write".into(), Some(1)), ("revoke".into(), None)]);

    // Screenings through the service are recorded by hash only.
    let sc = s
        .svc
        .screen(
            Some(officer),
            Some("Dimitri Volkoff"),
            Some("0x00000000000000000000000000000000000FAC01"),
        )
        .await
        .unwrap();
    assert_eq!(sc.best_score, 1.0);
    assert_eq!(sc.address_matches[0].ent_num, 9001);
    assert!(sc.name_matches[0].alias);
    let stored: String =
        sqlx::query_scalar("SELECT query_sha256 FROM kyc.screenings WHERE id = $1")
            .bind(sc.id)
            .fetch_one(&s.db.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 64);
    assert!(s.svc.screen(None, None, Some(" ")).await.is_err());
}

// ---- risk and reports ------------------------------------------------------------------

#[tokio::test]
async fn risk_factors_are_itemised() {
    let s = setup().await;
    let nobody = s.svc.assess_risk(Uuid::now_v7()).await.unwrap();
    let points: Vec<(&str, u32)> = nobody
        .factors
        .iter()
        .map(|f| (f.factor, f.points))
        .collect();
    assert_eq!(
        points,
        [
            ("kyc_level", 40),
            ("country", 10),
            ("sanctions_proximity", 0),
            ("transaction_velocity", 0)
        ]
    );
    assert_eq!((nobody.score, nobody.rating), (50, "high"));

    let (user, mut req) = applicant(&s, "Nina Traveller", WALLET).await;
    req.country = "NG".into();
    let v = s.svc.submit(user, req).await.unwrap();
    s.svc
        .approve(
            v.id,
            Uuid::now_v7(),
            &ApproveRequest {
                level: Some(1),
                acknowledge_sanctions: false,
            },
        )
        .await
        .unwrap();
    // Six payments from the wallet in the last day, as the indexer records them.
    let now = OffsetDateTime::now_utc().unix_timestamp();
    for i in 0..6 {
        let sig = format!("sig{i}");
        sqlx::query("INSERT INTO indexer.transactions (chain, signature, slot, commitment, failed, event_count) VALUES ('solana', $1, $2, 'finalized', false, 1)")
            .bind(&sig).bind(i64::from(i)).execute(&s.db.pool).await.unwrap();
        sqlx::query("INSERT INTO indexer.payments (chain, signature, ix_index, inner_index, slot, commitment, payment, payer, facility, invoice_id, reference, mint, amount, fee, paid_at) VALUES ('solana', $1, 0, 0, $2, 'finalized', 'p', $3, 'f', 'i', 'r', 'm', 1000, 10, $4)")
            .bind(&sig).bind(i64::from(i)).bind(WALLET).bind(now - 60).execute(&s.db.pool).await.unwrap();
    }
    let r = s.svc.assess_risk(user).await.unwrap();
    let points: Vec<(&str, u32)> = r.factors.iter().map(|f| (f.factor, f.points)).collect();
    assert_eq!(
        points,
        [
            ("kyc_level", 15),
            ("country", 20),
            ("sanctions_proximity", 0),
            ("transaction_velocity", 10)
        ]
    );
    assert_eq!(r.score, 45);
    assert_eq!(r.rating, "medium");
    assert!(r.factors[3].value.starts_with("6 payments in 24 h"));
}

#[tokio::test]
async fn report_counts_and_rows_in_json_and_csv() {
    let s = setup().await;
    let from = OffsetDateTime::now_utc() - Duration::minutes(1);
    let officer = Uuid::now_v7();
    let (u1, r1) = applicant(&s, "Alice Approved", WALLET).await;
    let v1 = s.svc.submit(u1, r1).await.unwrap();
    s.svc
        .approve(
            v1.id,
            officer,
            &ApproveRequest {
                level: None,
                acknowledge_sanctions: false,
            },
        )
        .await
        .unwrap();
    let (u2, r2) = applicant(&s, "Bob Rejected", WALLET).await;
    let v2 = s.svc.submit(u2, r2).await.unwrap();
    s.svc
        .reject(v2.id, officer, "=cmd|' /C calc'!A0, quoted \"reason\"")
        .await
        .unwrap();
    s.svc
        .screen(Some(officer), Some("Maria Ivanova"), None)
        .await
        .unwrap();
    s.svc
        .screen(Some(officer), Some("Nobody Listed"), None)
        .await
        .unwrap();
    let to = OffsetDateTime::now_utc() + Duration::minutes(1);

    let rep = s.svc.report(from, to).await.unwrap();
    assert_eq!(rep.submissions, 2);
    assert_eq!((rep.decisions.approved, rep.decisions.rejected), (1, 1));
    assert_eq!((rep.screenings, rep.screenings_with_matches), (2, 1));
    assert_eq!(rep.attestations.pending, 1);
    assert_eq!(rep.rows.len(), 2);
    assert_eq!(rep.rows[0].verification_id, v1.id);
    assert_eq!(rep.rows[0].attestation_state.as_deref(), Some("pending"));

    let csv = rep.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("event_id,verification_id,user_id,decision"));
    assert!(lines[1].contains(&v1.id.to_string()) && lines[1].contains(",approved,2,"));
    // Formula neutralised and quoted.
    assert!(
        lines[2].contains("\"'=cmd|' /C calc'!A0, quoted \"\"reason\"\"\""),
        "{}",
        lines[2]
    );
    // The report names nobody.
    assert!(!csv.contains("Alice") && !csv.contains("Bob"));

    // An empty earlier period; bad periods refused.
    let old = s
        .svc
        .report(from - Duration::days(2), from - Duration::days(1))
        .await
        .unwrap();
    assert_eq!((old.submissions, old.rows.len()), (0, 0));
    assert!(s.svc.report(to, from).await.is_err());
    assert!(s.svc.report(from - Duration::days(400), to).await.is_err());
}

// ---- kyc.decided notifications -----------------------------------------------------------

#[tokio::test]
async fn decisions_become_kyc_decided_notifications_exactly_once() {
    let s = setup().await;
    let notifications = advancia_notifications::NotificationService::new(s.db.pool.clone());
    let log = advancia_outbox::OutboxLog::new(s.db.pool.clone(), advancia_kyc::OUTBOX);
    let follower = advancia_notifications::events::follower(&notifications, log).with_config(
        advancia_db::follow::FollowConfig {
            batch: 1,
            ..Default::default()
        },
    );
    let notify = advancia_notifications::events::Notify::new(notifications, Arc::new(NoStaff));
    let step = || {
        let mut n = notify.clone();
        let f = &follower;
        async move {
            advancia_notifications::events::catch_up(f, &mut n)
                .await
                .unwrap()
        }
    };
    let officer = Uuid::now_v7();
    let (u1, r1) = applicant(&s, "Alice Approved", WALLET).await;
    let v1 = s.svc.submit(u1, r1).await.unwrap();
    s.svc
        .approve(
            v1.id,
            officer,
            &ApproveRequest {
                level: None,
                acknowledge_sanctions: false,
            },
        )
        .await
        .unwrap();
    let (u2, r2) = applicant(&s, "Bob Rejected", WALLET).await;
    let v2 = s.svc.submit(u2, r2).await.unwrap();
    s.svc.reject(v2.id, officer, "blurry scan").await.unwrap();

    // Two readers racing, then again: each decision notified once.
    let (a, b) = tokio::join!(step(), step());
    assert_eq!(a + b, 2);
    assert_eq!(step().await, 0);
    let rows: Vec<(Uuid, String, serde_json::Value)> = sqlx::query_as(
        "SELECT user_id, event_type, data FROM notifications.notifications ORDER BY created_at, id",
    )
    .fetch_all(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == "kyc.decided"));
    let approved = rows.iter().find(|r| r.0 == u1).unwrap();
    assert_eq!(approved.2["decision"], "approved");
    assert_eq!(approved.2["level"], 2);
    let rejected = rows.iter().find(|r| r.0 == u2).unwrap();
    assert_eq!(rejected.2["reason"], "blurry scan");

    // A later decision is picked up after the cursor.
    s.svc.revoke(v1.id, officer, "revoked").await.unwrap();
    assert_eq!(step().await, 1);
}

/// `kyc.decided` goes to the verified user: no facility staff are asked.
struct NoStaff;

impl advancia_notifications::events::StaffDirectory for NoStaff {
    fn staff_with_roles<'a>(
        &'a self,
        _facility: Uuid,
        _roles: &'a [&'static str],
    ) -> advancia_notifications::events::BoxFuture<
        'a,
        Result<Vec<Uuid>, advancia_db::follow::BoxError>,
    > {
        Box::pin(async { Err("kyc.decided must not ask for staff".into()) })
    }
}
