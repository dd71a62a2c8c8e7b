//! How a relayer learns of messages and their signatures: it reads each validator's
//! announced publication location (directory or HTTP endpoint), checks every attestation
//! (announcement signed by the validator, validator in the destination's current set, id
//! recomputed from the fields, signature recovering to that validator) and keeps the good
//! ones in its own store, where the delivery queue takes them from. A location that serves
//! garbage costs the relayer a log line and a counter, nothing else.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use alloy::primitives::{Address, B256};

use crate::attestation::{AttestationError, Location};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Location(#[from] AttestationError),
}

/// What a gathering step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatherReport {
    /// Attestations verified and stored.
    pub accepted: usize,
    /// Attestations refused (bad signature, wrong validator, tampered fields).
    pub rejected: usize,
    /// Locations that could not be read this step (retried next step).
    pub unreachable: usize,
}

/// Counters for the relayer's metrics endpoint.
#[derive(Debug, Default)]
pub struct GatherMetrics {
    accepted: std::sync::atomic::AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
}

impl GatherMetrics {
    fn reject(&self, reason: &'static str) {
        if let Ok(mut r) = self.rejected.lock() {
            *r.entry(reason).or_default() += 1;
        }
    }

    pub fn render(&self, destination: u32) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let name = "advancia_bridge_attestations_accepted_total";
        let _ = writeln!(
            out,
            "# HELP {name} Attestations read from validator locations that verified.\n# TYPE {name} counter\n{name}{{destination=\"{destination}\"}} {}",
            self.accepted.load(std::sync::atomic::Ordering::Relaxed)
        );
        let name = "advancia_bridge_attestations_rejected_total";
        let _ = writeln!(
            out,
            "# HELP {name} Attestations read from validator locations and refused, by reason.\n# TYPE {name} counter"
        );
        if let Ok(r) = self.rejected.lock() {
            for (reason, n) in r.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{destination=\"{destination}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
        out
    }
}

/// Reads the attestations of a destination's validators from their announced locations.
pub struct AttestationSync {
    store: Store,
    locations: Vec<(String, Location)>,
    destination_domain: u32,
    destination_contract: B256,
    /// Attestations read per location and step.
    batch: u64,
    announced: Mutex<HashMap<String, Address>>,
    metrics: std::sync::Arc<GatherMetrics>,
}

impl AttestationSync {
    pub fn new(
        store: Store,
        locations: &[String],
        destination_domain: u32,
        destination_contract: B256,
    ) -> Result<Self, AttestationError> {
        let locations = locations
            .iter()
            .map(|l| Ok((l.clone(), Location::parse(l)?)))
            .collect::<Result<Vec<_>, AttestationError>>()?;
        Ok(Self {
            store,
            locations,
            destination_domain,
            destination_contract,
            batch: 500,
            announced: Mutex::new(HashMap::new()),
            metrics: std::sync::Arc::default(),
        })
    }

    pub fn metrics(&self) -> std::sync::Arc<GatherMetrics> {
        self.metrics.clone()
    }

    /// The validator a location announces, checked once and remembered.
    async fn validator_of(
        &self,
        name: &str,
        location: &Location,
    ) -> Result<Option<Address>, GatherError> {
        if let Some(v) = self
            .announced
            .lock()
            .ok()
            .and_then(|a| a.get(name).copied())
        {
            return Ok(Some(v));
        }
        let Some(announcement) = location.announcement().await? else {
            return Ok(None);
        };
        let validator = match announcement.verify() {
            Ok(v) if announcement.location == name => v,
            Ok(_) => {
                self.metrics.reject("announcement_location");
                tracing::warn!(location = name, announced = %announcement.location, "announcement names another location");
                return Ok(None);
            }
            Err(e) => {
                self.metrics.reject("announcement_signature");
                tracing::warn!(location = name, error = %e, "announcement refused");
                return Ok(None);
            }
        };
        if let Ok(mut a) = self.announced.lock() {
            a.insert(name.to_owned(), validator);
        }
        Ok(Some(validator))
    }

    /// Reads what is new at every location whose validator is in `members` (the
    /// destination's current set); locations of others are not read at all.
    pub async fn step(&self, members: &[Address]) -> Result<GatherReport, StoreError> {
        let mut report = GatherReport::default();
        for (name, location) in &self.locations {
            match self
                .read_location(name, location, members, &mut report)
                .await
            {
                Ok(()) => {}
                Err(GatherError::Store(e)) => return Err(e),
                Err(GatherError::Location(e)) => {
                    report.unreachable += 1;
                    tracing::warn!(location = %name, error = %e, "validator location unreadable");
                }
            }
        }
        Ok(report)
    }

    async fn read_location(
        &self,
        name: &str,
        location: &Location,
        members: &[Address],
        report: &mut GatherReport,
    ) -> Result<(), GatherError> {
        let Some(validator) = self.validator_of(name, location).await? else {
            report.unreachable += 1;
            return Ok(());
        };
        if !members.contains(&validator) {
            tracing::debug!(location = name, %validator, "not in the current set; skipped");
            return Ok(());
        }
        let Some(latest) = location.latest().await? else {
            return Ok(());
        };
        let mut next = self.store.attestation_cursor(name).await?.unwrap_or(1);
        let end = latest.min(next.saturating_add(self.batch - 1));
        while next <= end {
            // Indexes are published in order, so a missing one is not there *yet*.
            let Some(attestation) = location.attestation(next).await? else {
                break;
            };
            if attestation.message.destination_domain == self.destination_domain {
                let verdict = if attestation.validator != validator {
                    Err((
                        "wrong_validator",
                        format!(
                            "signed as {}, location announced {validator}",
                            attestation.validator
                        ),
                    ))
                } else {
                    attestation
                        .verify(self.destination_domain, self.destination_contract)
                        .map_err(|e| ("invalid", e.to_string()))
                };
                match verdict {
                    Ok(message) => {
                        self.store
                            .record_attestation(&attestation, &message)
                            .await?;
                        report.accepted += 1;
                        self.metrics
                            .accepted
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err((reason, detail)) => {
                        report.rejected += 1;
                        self.metrics.reject(reason);
                        tracing::warn!(location = name, index = next, %detail, "attestation refused");
                    }
                }
            }
            next += 1;
            self.store
                .set_attestation_cursor(name, validator, next)
                .await?;
        }
        Ok(())
    }
}
