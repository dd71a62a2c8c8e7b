//! Identity documents: streamed in chunk by chunk to a staging file while hashing
//! (SHA-256 is the content address), with a size limit enforced while streaming, the type
//! sniffed from magic bytes (PDF, PNG, JPEG only; it must match the declared type) and a
//! signature scan (executables, the EICAR test file, active PDF content). Then moved into
//! an [`ObjectStore`]. Contents and file names are never logged.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("document is larger than {max} bytes")]
    TooLarge { max: u64 },
    #[error("document is empty")]
    Empty,
    #[error("content type `{0}` is not accepted (PDF, PNG or JPEG)")]
    UnsupportedType(String),
    #[error("content is {sniffed}, not the declared {declared}")]
    TypeMismatch {
        declared: &'static str,
        sniffed: String,
    },
    #[error("content rejected: {0}")]
    Malicious(&'static str),
    #[error("document store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The object store answered with a client error (403 covers bad credentials or a
    /// signature mismatch; `code` is S3's error code, e.g. `SignatureDoesNotMatch`).
    #[error("object store refused the {op} request: HTTP {status} {code}")]
    StoreRefused {
        op: &'static str,
        status: u16,
        code: String,
    },
    /// Unreachable, timed out, or a server error, after one retry.
    #[error("object store unavailable for {op}: {reason}")]
    StoreUnavailable { op: &'static str, reason: String },
    /// The bytes read back do not hash to the address they were stored under.
    #[error("object store returned content that does not match its address {0}")]
    StoreCorrupt(String),
}

/// Accepted document types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentType {
    Pdf,
    Png,
    Jpeg,
}

impl DocumentType {
    pub fn mime(self) -> &'static str {
        match self {
            DocumentType::Pdf => "application/pdf",
            DocumentType::Png => "image/png",
            DocumentType::Jpeg => "image/jpeg",
        }
    }

    /// A declared `Content-Type` (parameters ignored, case-insensitive).
    pub fn from_mime(mime: &str) -> Option<DocumentType> {
        let essence = mime.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/pdf" => Some(DocumentType::Pdf),
            "image/png" => Some(DocumentType::Png),
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(DocumentType::Jpeg),
            _ => None,
        }
    }
}

/// Bytes needed to tell the types apart.
const SNIFF_LEN: usize = 8;

/// What the first bytes say the content is.
fn sniff(head: &[u8]) -> Result<DocumentType, DocumentError> {
    if head.starts_with(b"MZ") {
        return Err(DocumentError::Malicious("Windows executable (MZ header)"));
    }
    if head.starts_with(b"\x7fELF") {
        return Err(DocumentError::Malicious("ELF executable"));
    }
    if head.starts_with(b"#!") {
        return Err(DocumentError::Malicious("script (#! line)"));
    }
    if head.starts_with(&[0xCF, 0xFA, 0xED, 0xFE]) || head.starts_with(&[0xCA, 0xFE, 0xBA, 0xBE]) {
        return Err(DocumentError::Malicious("Mach-O executable"));
    }
    if head.starts_with(b"%PDF-") {
        Ok(DocumentType::Pdf)
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(DocumentType::Png)
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Ok(DocumentType::Jpeg)
    } else if head.starts_with(b"PK\x03\x04") {
        Err(DocumentError::TypeMismatch {
            declared: "",
            sniffed: "a ZIP archive".into(),
        })
    } else {
        Err(DocumentError::TypeMismatch {
            declared: "",
            sniffed: "unrecognised content".into(),
        })
    }
}

/// Signatures rejected anywhere in the content, and PDF features that run code on open.
const EICAR: &[u8] = b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE";
const PDF_ACTIVE: [(&[u8], &str); 3] = [
    (b"/JavaScript", "PDF with JavaScript"),
    (b"/Launch", "PDF with a launch action"),
    (b"/EmbeddedFile", "PDF with an embedded file"),
];
/// Longest signature, minus one: bytes carried between chunks so a signature split across
/// two chunks is still seen.
const CARRY: usize = 33;

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Limits of one upload.
#[derive(Debug, Clone, Copy)]
pub struct DocumentLimits {
    pub max_bytes: u64,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
        }
    }
}

/// A verified upload sitting in the staging area, ready for [`ObjectStore::put`].
#[derive(Debug)]
pub struct Staged {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub doc_type: DocumentType,
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Already moved into the store, or abandoned: either way the staging file goes.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One upload in progress: feed it chunks with [`Ingest::write`], then [`Ingest::finish`].
/// Dropping it unfinished removes the staging file.
pub struct Ingest {
    file: Option<tokio::fs::File>,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    carry: Vec<u8>,
    declared: DocumentType,
    limits: DocumentLimits,
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Ingest {
    /// Starts an upload declared as `content_type` into a new file in `staging`.
    pub async fn begin(
        staging: &Path,
        content_type: &str,
        limits: DocumentLimits,
    ) -> Result<Ingest, DocumentError> {
        let declared = DocumentType::from_mime(content_type).ok_or_else(|| {
            DocumentError::UnsupportedType(content_type.chars().take(100).collect())
        })?;
        tokio::fs::create_dir_all(staging).await?;
        let path = staging.join(format!("{}.part", uuid::Uuid::new_v4()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(Ingest {
            file: Some(file),
            path,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::with_capacity(SNIFF_LEN),
            carry: Vec::new(),
            declared,
            limits,
        })
    }

    fn check_type(&self) -> Result<(), DocumentError> {
        let sniffed = sniff(&self.head).map_err(|e| match e {
            DocumentError::TypeMismatch { sniffed, .. } => DocumentError::TypeMismatch {
                declared: self.declared.mime(),
                sniffed,
            },
            other => other,
        })?;
        if sniffed != self.declared {
            return Err(DocumentError::TypeMismatch {
                declared: self.declared.mime(),
                sniffed: sniffed.mime().to_owned(),
            });
        }
        Ok(())
    }

    fn scan(&mut self, chunk: &[u8]) -> Result<(), DocumentError> {
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(chunk);
        if find(&window, EICAR) {
            return Err(DocumentError::Malicious("EICAR test signature"));
        }
        if self.declared == DocumentType::Pdf {
            for (sig, what) in PDF_ACTIVE {
                if find(&window, sig) {
                    return Err(DocumentError::Malicious(what));
                }
            }
        }
        let keep = window.len().min(CARRY);
        self.carry = window.split_off(window.len() - keep);
        Ok(())
    }

    /// Appends a chunk: fails as soon as the limit is passed or the first bytes show the
    /// wrong (or a dangerous) type, before the rest is read.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), DocumentError> {
        self.size += chunk.len() as u64;
        if self.size > self.limits.max_bytes {
            return Err(DocumentError::TooLarge {
                max: self.limits.max_bytes,
            });
        }
        if self.head.len() < SNIFF_LEN {
            let take = (SNIFF_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            if self.head.len() == SNIFF_LEN {
                self.check_type()?;
            }
        }
        self.scan(chunk)?;
        self.hasher.update(chunk);
        let file = self.file.as_mut().ok_or(DocumentError::Empty)?;
        file.write_all(chunk).await?;
        Ok(())
    }

    /// Completes the upload: type checked (also for content shorter than the sniff
    /// length), data flushed to disk, content address computed.
    pub async fn finish(mut self) -> Result<Staged, DocumentError> {
        if self.size == 0 {
            return Err(DocumentError::Empty);
        }
        if self.head.len() < SNIFF_LEN {
            self.check_type()?;
        }
        let mut file = self.file.take().ok_or(DocumentError::Empty)?;
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let hasher = std::mem::take(&mut self.hasher);
        Ok(Staged {
            path: std::mem::take(&mut self.path),
            sha256: hex::encode(hasher.finalize()),
            size: self.size,
            doc_type: self.declared,
        })
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where document bytes live, addressed by their SHA-256 (hex). `put` is idempotent: the
/// same content twice is stored once.
pub trait ObjectStore: Send + Sync {
    /// Directory for staging files (on the same file system as the store, for a local
    /// store, so `put` is a rename).
    fn staging_dir(&self) -> PathBuf;
    /// Moves a staged upload into the store.
    fn put(&self, staged: Staged) -> BoxFuture<'_, Result<(), DocumentError>>;
    fn get<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, DocumentError>>;
    fn exists<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<bool, DocumentError>>;
}

/// The default store (the S3-compatible one is [`crate::s3::S3Store`]).
/// Files under `<root>/<first two hex digits>/<sha256>`, written by rename from
/// `<root>/.staging`, so a reader never sees a partial file.
#[derive(Debug, Clone)]
pub struct LocalDirStore {
    root: PathBuf,
}

pub(crate) fn valid_address(sha256: &str) -> bool {
    sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl LocalDirStore {
    pub fn new(root: impl Into<PathBuf>) -> LocalDirStore {
        LocalDirStore { root: root.into() }
    }

    /// Path of a content address (validated: 64 lower-case hex digits, so never a path
    /// traversal).
    pub fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        valid_address(sha256).then(|| self.root.join(&sha256[..2]).join(sha256))
    }
}

impl ObjectStore for LocalDirStore {
    fn staging_dir(&self) -> PathBuf {
        self.root.join(".staging")
    }

    fn put(&self, staged: Staged) -> BoxFuture<'_, Result<(), DocumentError>> {
        Box::pin(async move {
            let dest = self.path_of(&staged.sha256).ok_or(DocumentError::Empty)?;
            if tokio::fs::try_exists(&dest).await? {
                // Same content already stored; `staged` removes its file when dropped.
                return Ok(());
            }
            let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
            tokio::fs::create_dir_all(&dir).await?;
            // Atomic on one file system; two concurrent puts of the same content both
            // rename identical bytes over the same name.
            tokio::fs::rename(&staged.path, &dest).await?;
            // The directory entry is durable only once the directory is synced.
            tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
            Ok(())
        })
    }

    fn get<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, DocumentError>> {
        Box::pin(async move {
            let Some(path) = self.path_of(sha256) else {
                return Ok(None);
            };
            match tokio::fs::read(path).await {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn exists<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<bool, DocumentError>> {
        Box::pin(async move {
            match self.path_of(sha256) {
                Some(p) => Ok(tokio::fs::try_exists(p).await?),
                None => Ok(false),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"%PDF-1.7\n").unwrap(), DocumentType::Pdf);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n").unwrap(), DocumentType::Png);
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0]).unwrap(),
            DocumentType::Jpeg
        );
        assert!(matches!(
            sniff(b"MZ\x90\x00"),
            Err(DocumentError::Malicious(_))
        ));
        assert!(matches!(
            sniff(b"\x7fELF\x02"),
            Err(DocumentError::Malicious(_))
        ));
        assert!(matches!(
            sniff(b"#!/bin/sh"),
            Err(DocumentError::Malicious(_))
        ));
        assert_eq!(
            DocumentType::from_mime("Image/JPEG; q=1"),
            Some(DocumentType::Jpeg)
        );
        assert_eq!(DocumentType::from_mime("text/html"), None);
    }
}
