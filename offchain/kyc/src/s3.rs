//! An S3-compatible [`ObjectStore`] (AWS S3, MinIO, Ceph, moto): path-style requests
//! (`<endpoint>/<bucket>/<prefix><sha[..2]>/<sha>`) signed with AWS Signature Version 4,
//! written here over `reqwest` with `hmac`/`sha2` rather than pulling in an SDK.
//!
//! The PUT's `x-amz-content-sha256` is the document's SHA-256, which is also its content
//! address: the server recomputes it over the body and rejects a mismatch, so a corrupted
//! upload cannot land under a valid address. GETs are re-hashed on our side too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::documents::{BoxFuture, DocumentError, ObjectStore, Staged, valid_address};

/// SHA-256 of the empty body (GET/HEAD payload hash).
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// Why an [`S3Config`] is unusable; names the field, never echoes the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum S3ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("endpoint must be an http:// or https:// URL without query or credentials")]
    Endpoint,
    #[error("bucket `{0}` is not a valid S3 bucket name (3-63 of a-z 0-9 . -)")]
    Bucket(String),
    #[error("prefix may only contain A-Z a-z 0-9 and - _ . /")]
    Prefix,
}

/// Connection settings of an [`S3Store`]. `Debug` redacts the secret key.
#[derive(Clone)]
pub struct S3Config {
    /// `http(s)://host[:port][/path]`, without the bucket (path-style addressing).
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Prepended to every key, e.g. `kyc/`.
    pub prefix: String,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl S3Config {
    /// Checks every field; returns the parsed endpoint.
    pub fn validate(&self) -> Result<Url, S3ConfigError> {
        for (name, v) in [
            ("endpoint", &self.endpoint),
            ("bucket", &self.bucket),
            ("region", &self.region),
            ("access key id", &self.access_key_id),
            ("secret access key", &self.secret_access_key),
        ] {
            if v.trim().is_empty() {
                return Err(S3ConfigError::Missing(name));
            }
        }
        let url = Url::parse(self.endpoint.trim()).map_err(|_| S3ConfigError::Endpoint)?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none()
            || url.query().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(S3ConfigError::Endpoint);
        }
        let b = &self.bucket;
        let bucket_ok = (3..=63).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
            && !b.starts_with(['.', '-'])
            && !b.ends_with(['.', '-']);
        if !bucket_ok {
            return Err(S3ConfigError::Bucket(b.chars().take(80).collect()));
        }
        if !self
            .prefix
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/'))
            || self.prefix.starts_with('/')
            || self.prefix.split('/').any(|s| s == "..")
        {
            return Err(S3ConfigError::Prefix);
        }
        Ok(url)
    }
}

/// AWS SigV4 credentials and scope for one region and service.
#[derive(Clone)]
pub struct SigV4 {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub service: String,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it: everything but `A-Za-z0-9-_.~` (and `/` in paths).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl SigV4 {
    /// The `Authorization` header value. `path` is the already-encoded canonical URI,
    /// `query` the canonical query string, `headers` lower-case names to values (must
    /// include `host` and `x-amz-date`, which must equal `at`), `payload_sha256` the hex
    /// hash sent as `x-amz-content-sha256`.
    pub fn authorization(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &BTreeMap<String, String>,
        payload_sha256: &str,
        at: OffsetDateTime,
    ) -> String {
        let amz_date = amz_date(at);
        let day = &amz_date[..8];
        let canonical_headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let signed_headers = headers.keys().cloned().collect::<Vec<_>>().join(";");
        let canonical_request = format!(
            "{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}"
        );
        let scope = format!("{day}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let k_date = hmac(
            format!("AWS4{}", self.secret_access_key).as_bytes(),
            day.as_bytes(),
        );
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, self.service.as_bytes());
        let k_signing = hmac(&k_service, b"aws4_request");
        let signature = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={signed_headers},Signature={signature}",
            self.access_key_id
        )
    }
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn amz_date(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!(
        "[year][month][day]T[hour][minute][second]Z"
    ))
    .unwrap_or_default()
}

/// Documents in an S3 bucket. Uploads are staged in a local directory (hashed and
/// scanned there like for [`crate::documents::LocalDirStore`]) and then PUT.
#[derive(Clone)]
pub struct S3Store {
    endpoint: Url,
    bucket: String,
    prefix: String,
    signer: SigV4,
    staging: PathBuf,
    http: reqwest::Client,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("endpoint", &self.endpoint.as_str())
            .field("bucket", &self.bucket)
            .field("region", &self.signer.region)
            .field("access_key_id", &self.signer.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("staging", &self.staging)
            .finish()
    }
}

/// One response, body read.
struct Reply {
    status: StatusCode,
    body: Vec<u8>,
}

/// S3's `<Code>` from an XML error body, for the error message (bounded, plain).
fn error_code(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| {
            code.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(64)
                .collect()
        })
        .unwrap_or_default()
}

impl S3Store {
    /// `staging` is a local directory for uploads in progress.
    pub fn new(config: S3Config, staging: impl Into<PathBuf>) -> Result<S3Store, S3ConfigError> {
        let endpoint = config.validate()?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|_| S3ConfigError::Endpoint)?;
        Ok(S3Store {
            endpoint,
            bucket: config.bucket,
            prefix: config.prefix,
            signer: SigV4 {
                access_key_id: config.access_key_id,
                secret_access_key: config.secret_access_key,
                region: config.region,
                service: "s3".into(),
            },
            staging: staging.into(),
            http,
        })
    }

    /// Object key of a content address.
    pub fn key_of(&self, sha256: &str) -> String {
        format!("{}{}/{sha256}", self.prefix, &sha256[..2])
    }

    /// Canonical (encoded) path of an object key, or of the bucket with `None`.
    fn path(&self, key: Option<&str>) -> String {
        let base = self.endpoint.path().trim_end_matches('/');
        match key {
            Some(k) => format!("{base}/{}/{}", self.bucket, uri_encode(k, true)),
            None => format!("{base}/{}", self.bucket),
        }
    }

    /// Sends one signed request; one retry on a connection error, timeout or 5xx.
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        payload_sha256: &str,
    ) -> Result<Reply, DocumentError> {
        let mut url = self.endpoint.clone();
        url.set_path(path);
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => {
                return Err(DocumentError::StoreUnavailable {
                    op,
                    reason: "endpoint has no host".into(),
                });
            }
        };
        let mut last = String::new();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(RETRY_DELAY).await;
            }
            let now = OffsetDateTime::now_utc();
            let mut headers = BTreeMap::new();
            headers.insert("host".to_owned(), host.clone());
            headers.insert("x-amz-content-sha256".to_owned(), payload_sha256.to_owned());
            headers.insert("x-amz-date".to_owned(), amz_date(now));
            let auth =
                self.signer
                    .authorization(method.as_str(), path, "", &headers, payload_sha256, now);
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .header("authorization", auth)
                .header("x-amz-content-sha256", payload_sha256)
                .header("x-amz-date", &headers["x-amz-date"]);
            if let Some(b) = body {
                req = req.body(b.to_vec());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    // reqwest's error text names the URL, never headers: no secret in it.
                    last = if e.is_timeout() {
                        "timed out".into()
                    } else {
                        "connection failed".into()
                    };
                    tracing::warn!(op, attempt, error = %last, "object store request failed");
                    continue;
                }
            };
            let status = resp.status();
            let body = match resp.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    last = if e.is_timeout() {
                        "timed out reading the response".into()
                    } else {
                        "response body interrupted".into()
                    };
                    tracing::warn!(op, attempt, error = %last, "object store request failed");
                    continue;
                }
            };
            if status.is_server_error() {
                last = format!("HTTP {} {}", status.as_u16(), error_code(&body));
                tracing::warn!(
                    op,
                    attempt,
                    status = status.as_u16(),
                    "object store server error"
                );
                continue;
            }
            return Ok(Reply { status, body });
        }
        Err(DocumentError::StoreUnavailable {
            op,
            reason: last.trim().to_owned(),
        })
    }

    fn refused(op: &'static str, reply: &Reply) -> DocumentError {
        DocumentError::StoreRefused {
            op,
            status: reply.status.as_u16(),
            code: error_code(&reply.body),
        }
    }

    /// Creates the bucket (test and first-run helper; an existing bucket we own is fine).
    pub async fn create_bucket(&self) -> Result<(), DocumentError> {
        let path = self.path(None);
        let region = &self.signer.region;
        // Outside us-east-1, S3 wants the region restated in the body.
        let body = if region == "us-east-1"
            || !region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
            )
        };
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        let reply = self
            .send(
                "create bucket",
                Method::PUT,
                &path,
                Some(body.as_bytes()),
                &hash,
            )
            .await?;
        if reply.status.is_success() || error_code(&reply.body) == "BucketAlreadyOwnedByYou" {
            return Ok(());
        }
        Err(Self::refused("create bucket", &reply))
    }

    async fn head(&self, sha256: &str) -> Result<bool, DocumentError> {
        if !valid_address(sha256) {
            return Ok(false);
        }
        let path = self.path(Some(&self.key_of(sha256)));
        let reply = self
            .send("head", Method::HEAD, &path, None, EMPTY_SHA256)
            .await?;
        match reply.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(Self::refused("head", &reply)),
        }
    }
}

impl ObjectStore for S3Store {
    fn staging_dir(&self) -> PathBuf {
        self.staging.clone()
    }

    fn put(&self, staged: Staged) -> BoxFuture<'_, Result<(), DocumentError>> {
        Box::pin(async move {
            if !valid_address(&staged.sha256) {
                return Err(DocumentError::Empty);
            }
            // Idempotent: the same address is the same bytes, so an existing object is done.
            if self.head(&staged.sha256).await? {
                return Ok(());
            }
            // Documents are bounded by `DocumentLimits` (10 MiB default): one body in memory.
            let bytes = tokio::fs::read(&staged.path).await?;
            let path = self.path(Some(&self.key_of(&staged.sha256)));
            let reply = self
                .send("put", Method::PUT, &path, Some(&bytes), &staged.sha256)
                .await?;
            if !reply.status.is_success() {
                return Err(Self::refused("put", &reply));
            }
            // `staged` removes its local file when dropped here.
            Ok(())
        })
    }

    fn get<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, DocumentError>> {
        Box::pin(async move {
            if !valid_address(sha256) {
                return Ok(None);
            }
            let path = self.path(Some(&self.key_of(sha256)));
            let reply = self
                .send("get", Method::GET, &path, None, EMPTY_SHA256)
                .await?;
            match reply.status {
                s if s.is_success() => {
                    if hex::encode(Sha256::digest(&reply.body)) != sha256 {
                        return Err(DocumentError::StoreCorrupt(sha256.to_owned()));
                    }
                    Ok(Some(reply.body))
                }
                StatusCode::NOT_FOUND => Ok(None),
                _ => Err(Self::refused("get", &reply)),
            }
        })
    }

    fn exists<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<bool, DocumentError>> {
        Box::pin(self.head(sha256))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// AWS's "Example: GET Object" (S3 API reference, Signature Version 4, header auth):
    /// `GET /test.txt` from `examplebucket` with `Range: bytes=0-9`, 24 May 2013.
    #[test]
    fn sigv4_matches_the_aws_get_object_example() {
        let signer = SigV4 {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
            service: "s3".into(),
        };
        let at = time::macros::datetime!(2013-05-24 00:00:00 UTC);
        let mut headers = BTreeMap::new();
        headers.insert("host".into(), "examplebucket.s3.amazonaws.com".into());
        headers.insert("range".into(), "bytes=0-9".into());
        headers.insert("x-amz-content-sha256".into(), EMPTY_SHA256.into());
        headers.insert("x-amz-date".into(), amz_date(at));
        assert_eq!(amz_date(at), "20130524T000000Z");
        let auth = signer.authorization("GET", "/test.txt", "", &headers, EMPTY_SHA256, at);
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    fn config() -> S3Config {
        S3Config {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "kyc-docs".into(),
            region: "us-east-1".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "very-secret-value".into(),
            prefix: "kyc/".into(),
        }
    }

    #[test]
    fn config_validation_and_redaction() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.secret_access_key = " ".into();
        assert_eq!(
            c.validate(),
            Err(S3ConfigError::Missing("secret access key"))
        );
        let mut c = config();
        c.endpoint = "ftp://example.com".into();
        assert_eq!(c.validate(), Err(S3ConfigError::Endpoint));
        let mut c = config();
        c.bucket = "Bad_Bucket".into();
        assert!(matches!(c.validate(), Err(S3ConfigError::Bucket(_))));
        let mut c = config();
        c.prefix = "../x".into();
        assert_eq!(c.validate(), Err(S3ConfigError::Prefix));

        let store = S3Store::new(config(), "/tmp/staging").unwrap();
        let shown = format!("{store:?} {:?}", config());
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let sha = "ab".repeat(32);
        assert_eq!(store.key_of(&sha), format!("kyc/ab/{sha}"));
        assert_eq!(
            store.path(Some(&store.key_of(&sha))),
            format!("/kyc-docs/kyc/ab/{sha}")
        );
    }

    #[test]
    fn uri_encoding() {
        assert_eq!(uri_encode("a b/c~d", true), "a%20b/c~d");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
    }
}
