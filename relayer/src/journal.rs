//! The validator's embedded store: an append-only journal of JSON lines, synced to disk
//! before a write returns, replayed into memory at start. Needs no server, so a validator is
//! one process with one directory. An exclusive lock on the file keeps a second process
//! (a second copy of the same validator) out: two signers behind one key could equivocate.
//!
//! A crash can leave at most a torn last line (written, not yet synced); replay drops it and
//! truncates the file there. That write never returned, so nothing was signed on its basis.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, Bytes};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::attestation::WireMessage;
use crate::message::Message;
use crate::source::ObservedMessage;
use crate::store::{Signed, StoreError, ValidatorStore};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Observed {
        validator: Address,
        id: B256,
        message: WireMessage,
        origin_block: u64,
        origin_tx: Bytes,
    },
    Cursor {
        validator: Address,
        origin_domain: u32,
        source: String,
        next: u64,
    },
    Signed {
        validator: Address,
        id: B256,
        set_version: u64,
        signature: Bytes,
        publication: u64,
    },
    Refused {
        validator: Address,
        id: B256,
    },
}

#[derive(Debug, Clone)]
struct Observation {
    message: Message,
    origin_block: u64,
    origin_tx: Vec<u8>,
}

#[derive(Default)]
struct State {
    cursors: HashMap<(Address, u32, String), u64>,
    /// (validator, destination, origin, sequence, id) → observation: signing order.
    observed: BTreeMap<(Address, u32, u32, u64, B256), Observation>,
    by_id: HashMap<(Address, B256), Observation>,
    /// The equivocation guard: (validator, origin, sequence) → the one id it may sign.
    claims: HashMap<(Address, u32, u64), B256>,
    signed: HashSet<(Address, B256, u64)>,
    refused: HashSet<(Address, B256)>,
    /// (validator, publication) → (id, set version, signature).
    publications: BTreeMap<(Address, u64), (B256, u64, Vec<u8>)>,
}

impl State {
    fn apply(&mut self, record: Record) -> Result<(), StoreError> {
        match record {
            Record::Observed {
                validator,
                id,
                message,
                origin_block,
                origin_tx,
            } => {
                let message = Message::from(&message);
                if crate::message::message_id(&message) != id {
                    return Err(StoreError::Corrupt(format!(
                        "journal: observed {id} does not hash to its id"
                    )));
                }
                let observation = Observation {
                    message: message.clone(),
                    origin_block,
                    origin_tx: origin_tx.to_vec(),
                };
                self.by_id
                    .entry((validator, id))
                    .or_insert_with(|| observation.clone());
                self.observed
                    .entry((
                        validator,
                        message.destinationDomain,
                        message.originDomain,
                        message.sequence,
                        id,
                    ))
                    .or_insert(observation);
            }
            Record::Cursor {
                validator,
                origin_domain,
                source,
                next,
            } => {
                self.cursors
                    .insert((validator, origin_domain, source), next);
            }
            Record::Signed {
                validator,
                id,
                set_version,
                signature,
                publication,
            } => {
                let observation = self.by_id.get(&(validator, id)).ok_or_else(|| {
                    StoreError::Corrupt(format!("journal: signature of unobserved {id}"))
                })?;
                let key = (
                    validator,
                    observation.message.originDomain,
                    observation.message.sequence,
                );
                if let Some(claimed) = self.claims.get(&key)
                    && *claimed != id
                {
                    return Err(StoreError::Corrupt(format!(
                        "journal: two messages signed for one sequence ({claimed}, {id})"
                    )));
                }
                self.claims.insert(key, id);
                self.signed.insert((validator, id, set_version));
                self.publications.insert(
                    (validator, publication),
                    (id, set_version, signature.to_vec()),
                );
            }
            Record::Refused { validator, id } => {
                self.refused.insert((validator, id));
            }
        }
        Ok(())
    }

    fn next_publication(&self, validator: Address) -> u64 {
        self.publications
            .range((validator, 0)..=(validator, u64::MAX))
            .next_back()
            .map_or(1, |((_, n), _)| n + 1)
    }
}

struct Inner {
    file: File,
    state: State,
}

/// See the module docs. One per validator process; cheap to share behind an `Arc`.
pub struct JournalStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for JournalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalStore")
            .field("path", &self.path)
            .finish()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl JournalStore {
    /// Opens (or creates) `dir/journal.jsonl`, takes its lock and replays it.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join("journal.jsonl");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::Locked(path)),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        let mut state = State::default();
        let mut good_len = 0u64;
        let mut reader = BufReader::new(&file);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(io(&path))?;
            if n == 0 {
                break;
            }
            if !line.ends_with('\n') {
                // A torn last write: it never returned, drop it.
                tracing::warn!(path = %path.display(), bytes = n, "dropping a torn journal tail");
                break;
            }
            let record: Record = serde_json::from_str(line.trim_end()).map_err(|e| {
                StoreError::Corrupt(format!("journal line at byte {good_len}: {e}"))
            })?;
            state.apply(record)?;
            good_len += n as u64;
        }
        drop(reader);
        file.set_len(good_len).map_err(io(&path))?;
        file.seek(SeekFrom::End(0)).map_err(io(&path))?;
        Ok(Self {
            path,
            inner: Mutex::new(Inner { file, state }),
        })
    }

    /// Appends and syncs `records`, then applies them: memory never runs ahead of the disk.
    fn append(inner: &mut Inner, path: &Path, records: Vec<Record>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for r in &records {
            serde_json::to_writer(&mut buf, r)
                .map_err(|e| StoreError::Corrupt(format!("journal record: {e}")))?;
            buf.push(b'\n');
        }
        inner.file.write_all(&buf).map_err(io(path))?;
        inner.file.sync_data().map_err(io(path))?;
        for r in records {
            inner.state.apply(r)?;
        }
        Ok(())
    }
}

impl ValidatorStore for JournalStore {
    async fn cursor(
        &self,
        validator: Address,
        origin_domain: u32,
        source: &str,
    ) -> Result<Option<u64>, StoreError> {
        let inner = self.inner.lock().await;
        Ok(inner
            .state
            .cursors
            .get(&(validator, origin_domain, source.to_owned()))
            .copied())
    }

    async fn record_batch(
        &self,
        validator: Address,
        origin_domain: u32,
        source: &str,
        observed: &[ObservedMessage],
        next_cursor: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().await;
        let mut records: Vec<Record> = observed
            .iter()
            .filter(|o| !inner.state.by_id.contains_key(&(validator, o.id)))
            .map(|o| Record::Observed {
                validator,
                id: o.id,
                message: WireMessage::from(&o.message),
                origin_block: o.origin_block,
                origin_tx: Bytes::from(o.origin_tx.clone()),
            })
            .collect();
        if let Some(next) = next_cursor {
            records.push(Record::Cursor {
                validator,
                origin_domain,
                source: source.to_owned(),
                next,
            });
        }
        Self::append(&mut inner, &self.path, records)
    }

    async fn messages_to_sign(
        &self,
        validator: Address,
        destination_domain: u32,
        set_version: u64,
        limit: usize,
    ) -> Result<Vec<(B256, Message)>, StoreError> {
        let inner = self.inner.lock().await;
        let s = &inner.state;
        Ok(s.observed
            .range(
                (validator, destination_domain, 0, 0, B256::ZERO)
                    ..=(
                        validator,
                        destination_domain,
                        u32::MAX,
                        u64::MAX,
                        B256::repeat_byte(0xFF),
                    ),
            )
            .filter(|((_, _, _, _, id), _)| {
                !s.signed.contains(&(validator, *id, set_version))
                    && !s.refused.contains(&(validator, *id))
            })
            .take(limit)
            .map(|((_, _, _, _, id), o)| (*id, o.message.clone()))
            .collect())
    }

    async fn store_signature(
        &self,
        validator: Address,
        id: B256,
        message: &Message,
        set_version: u64,
        signature: &[u8; 65],
    ) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().await;
        if !inner.state.by_id.contains_key(&(validator, id)) {
            return Err(StoreError::Corrupt(format!(
                "signing {id}, which this validator never observed"
            )));
        }
        if let Some(claimed) =
            inner
                .state
                .claims
                .get(&(validator, message.originDomain, message.sequence))
            && *claimed != id
        {
            return Err(StoreError::Equivocation {
                validator,
                origin_domain: message.originDomain,
                sequence: message.sequence,
                claimed: *claimed,
                attempted: id,
            });
        }
        if inner.state.signed.contains(&(validator, id, set_version)) {
            return Ok(());
        }
        let publication = inner.state.next_publication(validator);
        Self::append(
            &mut inner,
            &self.path,
            vec![Record::Signed {
                validator,
                id,
                set_version,
                signature: Bytes::from(signature.to_vec()),
                publication,
            }],
        )
    }

    async fn store_refusal(&self, validator: Address, id: B256) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().await;
        if inner.state.refused.contains(&(validator, id)) {
            return Ok(());
        }
        Self::append(
            &mut inner,
            &self.path,
            vec![Record::Refused { validator, id }],
        )
    }

    async fn unpublished(
        &self,
        validator: Address,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Signed>, StoreError> {
        let inner = self.inner.lock().await;
        let s = &inner.state;
        s.publications
            .range((validator, after.saturating_add(1))..=(validator, u64::MAX))
            .take(limit)
            .map(|((_, publication), (id, set_version, signature))| {
                let o = s.by_id.get(&(validator, *id)).ok_or_else(|| {
                    StoreError::Corrupt(format!("journal: signature of unobserved {id}"))
                })?;
                Ok(Signed {
                    publication: *publication,
                    id: *id,
                    message: o.message.clone(),
                    origin_block: o.origin_block,
                    origin_tx: o.origin_tx.clone(),
                    set_version: *set_version,
                    signature: signature.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::U256;

    use super::*;

    fn observed(sequence: u64, amount: u64) -> ObservedMessage {
        let message = Message {
            originDomain: 7,
            sequence,
            sender: B256::repeat_byte(1),
            destinationDomain: 9,
            recipient: B256::repeat_byte(2),
            asset: B256::ZERO,
            amount: U256::from(amount),
        };
        ObservedMessage {
            id: crate::message::message_id(&message),
            message,
            origin_block: 100 + sequence,
            origin_tx: vec![sequence as u8; 64],
        }
    }

    #[tokio::test]
    async fn the_journal_survives_a_restart_and_a_torn_tail_and_refuses_equivocation() {
        let tmp = tempfile::tempdir().unwrap();
        let me = Address::repeat_byte(0xAA);
        let sig = [7u8; 65];
        {
            let store = JournalStore::open(tmp.path()).unwrap();
            // A second process on the same store is refused.
            assert!(matches!(
                JournalStore::open(tmp.path()),
                Err(StoreError::Locked(_))
            ));
            let (a, b) = (observed(0, 10), observed(1, 20));
            store
                .record_batch(me, 7, "src", &[a.clone(), b.clone()], Some(50))
                .await
                .unwrap();
            let todo = store.messages_to_sign(me, 9, 1, 10).await.unwrap();
            assert_eq!(
                todo.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
                [a.id, b.id]
            );
            store
                .store_signature(me, a.id, &a.message, 1, &sig)
                .await
                .unwrap();
            // The same sequence with another amount: a reorg deeper than the depth, or a lie.
            let twin = observed(0, 999);
            store
                .record_batch(me, 7, "src", std::slice::from_ref(&twin), None)
                .await
                .unwrap();
            assert!(matches!(
                store
                    .store_signature(me, twin.id, &twin.message, 1, &sig)
                    .await,
                Err(StoreError::Equivocation { .. })
            ));
            store.store_refusal(me, twin.id).await.unwrap();
        }
        // A torn write at the end (crash mid-append) is dropped on replay.
        let path = tmp.path().join("journal.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"kind":"cursor","validator":"0xaa"#)
            .unwrap();
        drop(f);

        let store = JournalStore::open(tmp.path()).unwrap();
        assert_eq!(store.cursor(me, 7, "src").await.unwrap(), Some(50));
        let todo = store.messages_to_sign(me, 9, 1, 10).await.unwrap();
        assert_eq!(todo.len(), 1, "only the second message is left to sign");
        let published = store.unpublished(me, 0, 10).await.unwrap();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].publication, 1);
        assert_eq!(published[0].message.amount, U256::from(10u64));
        let b = observed(1, 20);
        store
            .store_signature(me, b.id, &b.message, 1, &sig)
            .await
            .unwrap();
        assert_eq!(
            store.unpublished(me, 1, 10).await.unwrap()[0].publication,
            2
        );
        // A set change needs a fresh signature, with a new publication index.
        assert_eq!(store.messages_to_sign(me, 9, 2, 10).await.unwrap().len(), 2);
    }
}
