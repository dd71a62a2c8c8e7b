//! `S3Store` against a real S3-compatible server: moto's server (PyPI `moto[server]`, in
//! the venv `cargo xtask test` makes; its python comes as `ADVANCIA_PYTHON`), run with
//! request authentication on, so signatures are really checked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use advancia_kyc::documents::{DocumentError, DocumentLimits, Ingest, ObjectStore};
use advancia_kyc::provider::LocalProvider;
use advancia_kyc::s3::{S3Config, S3Store};
use advancia_kyc::{DocumentKind, KycConfig, KycService, MIGRATIONS};
use advancia_test_support::TestDb;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

fn python() -> String {
    std::env::var("ADVANCIA_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ADVANCIA_PYTHON is not set: run `cargo xtask test` (it makes a venv with the PyPI \
             package moto[server] and sets it), or point it at a python with moto[server]"
        )
    })
}

/// A moto server on a free port; killed on drop.
struct Moto {
    port: u16,
    child: std::process::Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// IAM calls moto lets through unauthenticated before it starts checking signatures: the
/// three in `IAM_SETUP` that create the user whose key the store then signs with.
const NO_AUTH_ACTIONS: &str = "3";
const IAM_SETUP: &str = r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="kyc")
iam.put_user_policy(UserName="kyc", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="kyc")["AccessKey"]
print(k["AccessKeyId"]); print(k["SecretAccessKey"])
"#;

impl Moto {
    async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", NO_AUTH_ACTIONS)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto server (is the PyPI package moto[server] installed?)");
        let moto = Moto { port, child };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto server did not listen on port {port} within 20 s");
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An IAM user allowed `s3:*`: (access key id, secret access key).
    fn credentials(&self) -> (String, String) {
        let out = std::process::Command::new(python())
            .args(["-c", IAM_SETUP, &self.endpoint()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "IAM setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let id = lines.next().unwrap().to_owned();
        let secret = lines.next().unwrap().to_owned();
        (id, secret)
    }
}

fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n".to_vec();
    v.extend((0..70_000u32).map(|i| b'a' + (i % 26) as u8));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

#[tokio::test]
async fn s3_store_round_trip_against_moto() {
    let moto = Moto::start().await;
    let (key_id, secret) = moto.credentials();
    let staging = std::env::temp_dir().join(format!("kyc-s3-staging-{}", Uuid::new_v4()));
    let config = S3Config {
        endpoint: moto.endpoint(),
        bucket: "kyc-documents".into(),
        region: "us-east-1".into(),
        access_key_id: key_id,
        secret_access_key: secret.clone(),
        prefix: "docs/".into(),
    };
    let store = S3Store::new(config.clone(), &staging).unwrap();
    assert!(!format!("{store:?}").contains(&secret));
    store.create_bucket().await.unwrap();

    let bytes = pdf();
    let sha = hex::encode(Sha256::digest(&bytes));
    assert_eq!(store.get(&sha).await.unwrap(), None);
    assert!(!store.exists(&sha).await.unwrap());

    // Staged exactly as an upload is (hashed, sniffed, scanned), then put; twice, since
    // `put` is idempotent.
    for _ in 0..2 {
        let mut ingest = Ingest::begin(
            &store.staging_dir(),
            "application/pdf",
            DocumentLimits::default(),
        )
        .await
        .unwrap();
        for chunk in bytes.chunks(8192) {
            ingest.write(chunk).await.unwrap();
        }
        let staged = ingest.finish().await.unwrap();
        assert_eq!(staged.sha256, sha);
        let staged_path = staged.path.clone();
        store.put(staged).await.unwrap();
        assert!(!staged_path.exists(), "staging file left behind");
    }

    assert!(store.exists(&sha).await.unwrap());
    assert_eq!(store.get(&sha).await.unwrap().unwrap(), bytes);

    // A key that was never stored, and a malformed address.
    let missing = hex::encode(Sha256::digest(b"never stored"));
    assert_eq!(store.get(&missing).await.unwrap(), None);
    assert!(!store.exists(&missing).await.unwrap());
    assert_eq!(store.get("../etc/passwd").await.unwrap(), None);

    // The right key id with the wrong secret: the server refuses the signature.
    let wrong = S3Store::new(
        S3Config {
            secret_access_key: "not-the-secret".into(),
            ..config
        },
        &staging,
    )
    .unwrap();
    let err = wrong.get(&sha).await.unwrap_err();
    match &err {
        DocumentError::StoreRefused { status, code, .. } => {
            assert_eq!(*status, 403, "{err}");
            assert_eq!(code, "SignatureDoesNotMatch", "{err}");
        }
        other => panic!("expected StoreRefused, got {other:?}"),
    }
    assert!(!err.to_string().contains("not-the-secret"));
    assert!(matches!(
        wrong.exists(&sha).await,
        Err(DocumentError::StoreRefused { status: 403, .. })
    ));

    // Nothing listening: a typed "unavailable" after the retry, not a hang.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = S3Store::new(
        S3Config {
            endpoint: format!("http://127.0.0.1:{port}"),
            ..wrong_config(&moto)
        },
        &staging,
    )
    .unwrap();
    assert!(matches!(
        down.exists(&sha).await,
        Err(DocumentError::StoreUnavailable { .. })
    ));
    let _ = std::fs::remove_dir_all(&staging);
}

/// The KYC service itself on the S3 store: an upload through `KycService` (staged, put,
/// recorded in Postgres) lands in the bucket, and the same content again is one object.
#[tokio::test]
async fn kyc_service_uploads_into_s3() {
    let moto = Moto::start().await;
    let (key_id, secret) = moto.credentials();
    let staging = std::env::temp_dir().join(format!("kyc-s3-staging-{}", Uuid::new_v4()));
    let store = Arc::new(
        S3Store::new(
            S3Config {
                endpoint: moto.endpoint(),
                bucket: "kyc-service".into(),
                region: "eu-central-1".into(),
                access_key_id: key_id,
                secret_access_key: secret,
                prefix: String::new(),
            },
            &staging,
        )
        .unwrap(),
    );
    store.create_bucket().await.unwrap();
    let db = TestDb::new(&[
        &advancia_auth::MIGRATIONS,
        &advancia_chains::MIGRATIONS,
        &advancia_indexer::MIGRATIONS,
        &advancia_notifications::MIGRATIONS,
        &MIGRATIONS,
    ])
    .await;
    let svc = KycService::new(
        db.pool.clone(),
        store.clone(),
        Arc::new(LocalProvider::default()),
        Arc::new(crate::sample_list()),
        crate::directory(&db.pool),
        KycConfig::default(),
    );
    let user = Uuid::now_v7();
    let scan = crate::png(300_000, 7);
    let doc = crate::upload(
        &svc,
        user,
        "image/png",
        DocumentKind::Passport,
        &scan,
        16 * 1024,
    )
    .await
    .unwrap();
    assert!(doc.created);
    assert_eq!(doc.sha256, hex::encode(Sha256::digest(&scan)));
    assert_eq!(svc.store().get(&doc.sha256).await.unwrap().unwrap(), scan);
    let again = crate::upload(
        &svc,
        user,
        "image/png",
        DocumentKind::Passport,
        &scan,
        50_000,
    )
    .await
    .unwrap();
    assert!(!again.created);
    assert_eq!(again.id, doc.id);
    let _ = std::fs::remove_dir_all(&staging);
}

/// A server that answers every request with 503: the store retries once, then reports
/// `StoreUnavailable` (two requests seen, not one, not more).
#[tokio::test]
async fn server_errors_are_retried_once_then_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    let store = S3Store::new(
        S3Config {
            endpoint: format!("http://127.0.0.1:{port}"),
            ..wrong_config_at("http://unused")
        },
        std::env::temp_dir(),
    )
    .unwrap();
    let err = store.exists(&"ab".repeat(32)).await.unwrap_err();
    assert!(
        matches!(&err, DocumentError::StoreUnavailable { reason, .. } if reason.contains("503")),
        "{err:?}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

fn wrong_config(moto: &Moto) -> S3Config {
    wrong_config_at(&moto.endpoint())
}

fn wrong_config_at(endpoint: &str) -> S3Config {
    S3Config {
        endpoint: endpoint.into(),
        bucket: "kyc-documents".into(),
        region: "us-east-1".into(),
        access_key_id: "AKIAUNUSED".into(),
        secret_access_key: "unused".into(),
        prefix: String::new(),
    }
}
