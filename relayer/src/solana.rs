//! Solana as a destination: attestations are for the Anchor program's bridge inbox
//! (`bridge_process_sol` / `bridge_process_token`, ADR 0012), delivered by [`SolanaRelayer`].
//!
//! Exactly once without stored transactions: the program creates a `[bridge-msg, id]` PDA
//! when it processes a message and refuses the id afterwards, so a relayer that crashed after
//! its transaction landed finds the PDA on its next step and records the delivery instead of
//! sending again; a resend that races it fails on-chain and moves nothing.

use std::sync::Arc;
use std::time::Duration;

use advancia_pay::bridge::BridgeMessage;
use advancia_pay::client as pay;
use advancia_pay::state::BridgeConfig;
use alloy::primitives::{Address, B256};
use anchor_lang::prelude::Pubkey;
use solana_commitment_config::CommitmentConfig;
use solana_keypair::Keypair;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer;
use solana_transaction::Transaction;

use crate::message;
use crate::relayer::{Outcome, RelayerError, StepReport};
use crate::store::{Delivery, Store};
use crate::validator::{Destination, ValidatorError};

fn rpc(e: impl std::fmt::Display) -> RelayerError {
    RelayerError::Rpc(e.to_string())
}

/// The program id as the attestation's salt.
pub fn program_word() -> B256 {
    B256::from(advancia_pay::ID.to_bytes())
}

/// The program's bridge configuration account, read at `confirmed`.
pub async fn bridge_config(rpc: &RpcClient) -> Result<BridgeConfig, String> {
    let account = rpc
        .get_account_with_commitment(&pay::bridge_pda(), CommitmentConfig::confirmed())
        .await
        .map_err(|e| e.to_string())?
        .value
        .ok_or("the program's bridge is not initialized")?;
    if account.owner != advancia_pay::ID {
        return Err(format!("bridge account owned by {}", account.owner));
    }
    pay::decode_account::<BridgeConfig>(&account.data).map_err(|e| e.to_string())
}

/// The program's inbox on a Solana cluster, for validators.
#[derive(Clone)]
pub struct SolanaDestination {
    pub domain: u32,
    pub rpc: Arc<RpcClient>,
}

impl Destination for SolanaDestination {
    fn domain(&self) -> u32 {
        self.domain
    }

    fn contract(&self) -> B256 {
        program_word()
    }

    async fn set_version(&self) -> Result<u64, ValidatorError> {
        bridge_config(&self.rpc)
            .await
            .map(|c| c.set_version)
            .map_err(|detail| ValidatorError::Destination {
                domain: self.domain,
                detail,
            })
    }
}

/// Delivers attested messages to the program's inbox, paying fees from `payer`.
pub struct SolanaRelayer {
    store: Store,
    sync: Option<crate::gather::AttestationSync>,
    rpc: Arc<RpcClient>,
    payer: Keypair,
    domain: u32,
    retry: Duration,
}

impl SolanaRelayer {
    pub fn new(store: Store, rpc: Arc<RpcClient>, payer: Keypair, domain: u32) -> Self {
        Self {
            store,
            sync: None,
            rpc,
            payer,
            domain,
            retry: Duration::from_secs(1),
        }
    }

    /// Reads attestations from the validators' announced `locations` each step.
    pub fn with_attestations_from(
        mut self,
        locations: &[String],
    ) -> Result<Self, crate::attestation::AttestationError> {
        self.sync = Some(crate::gather::AttestationSync::new(
            self.store.clone(),
            locations,
            self.domain,
            program_word(),
        )?);
        Ok(self)
    }

    pub fn attestation_metrics(&self) -> Option<Arc<crate::gather::GatherMetrics>> {
        self.sync.as_ref().map(|s| s.metrics())
    }

    /// How long a failed delivery waits before its next try.
    pub fn with_retry(mut self, retry: Duration) -> Self {
        self.retry = retry;
        self
    }

    fn retry_ms(&self) -> u64 {
        u64::try_from(self.retry.as_millis()).unwrap_or(u64::MAX)
    }

    /// Queues new messages for this domain, then works through the due deliveries.
    pub async fn step(&self) -> Result<StepReport, RelayerError> {
        if let Some(sync) = &self.sync {
            let config = bridge_config(&self.rpc).await.map_err(RelayerError::Rpc)?;
            let members: Vec<Address> = config
                .validator_set()
                .iter()
                .map(|v| Address::from(*v))
                .collect();
            sync.step(&members).await?;
        }
        let enqueued = self.store.enqueue(self.domain).await?;
        let due = self.store.due(self.domain, 500).await?;
        let mut report = StepReport {
            enqueued,
            outcomes: Vec::with_capacity(due.len()),
        };
        if due.is_empty() {
            return Ok(report);
        }
        let config = bridge_config(&self.rpc).await.map_err(RelayerError::Rpc)?;
        for delivery in due {
            let outcome = match self.handle(&config, &delivery).await {
                Ok(o) => o,
                Err(RelayerError::Rpc(detail)) => {
                    self.store
                        .retry_later(delivery.id, "rpc", &detail, self.retry_ms(), true, false)
                        .await?;
                    Outcome::Failed("rpc".into())
                }
                Err(e) => return Err(e),
            };
            report.outcomes.push((delivery.id, outcome));
        }
        Ok(report)
    }

    async fn handle(
        &self,
        config: &BridgeConfig,
        delivery: &Delivery,
    ) -> Result<Outcome, RelayerError> {
        let id = delivery.id;
        let processed = pay::bridge_message_pda(&id.0);
        let landed = self
            .rpc
            .get_account_with_commitment(&processed, CommitmentConfig::confirmed())
            .await
            .map_err(rpc)?
            .value
            .is_some_and(|a| a.owner == advancia_pay::ID);
        if landed {
            self.store.mark_delivered(id, None, None).await?;
            return Ok(Outcome::AlreadyDelivered);
        }
        let set_version = config.set_version;
        let members: Vec<Address> = config
            .validator_set()
            .iter()
            .map(|a| Address::from(*a))
            .collect();
        let need = usize::from(config.threshold);
        let digest = message::message_digest(&delivery.message, program_word(), set_version);
        let usable: Vec<(Address, Vec<u8>)> = self
            .store
            .signatures(id, set_version)
            .await?
            .into_iter()
            .filter(|(validator, sig)| {
                members.contains(validator)
                    && message::recover(digest, sig).ok() == Some(*validator)
            })
            .collect();
        if usable.len() < need {
            let detail = format!(
                "{} of {need} signatures at set version {set_version}",
                usable.len()
            );
            self.store
                .retry_later(
                    id,
                    "awaiting_signatures",
                    &detail,
                    self.retry_ms(),
                    false,
                    false,
                )
                .await?;
            return Ok(Outcome::AwaitingSignatures {
                have: usable.len(),
                need,
            });
        }
        let signatures: Vec<[u8; 65]> = message::ordered_for_submission(usable, need)
            .into_iter()
            .filter_map(|(_, sig)| <[u8; 65]>::try_from(sig.as_slice()).ok())
            .collect();
        let m = &delivery.message;
        let wire = BridgeMessage {
            origin_domain: m.originDomain,
            sequence: m.sequence,
            sender: m.sender.0,
            destination_domain: m.destinationDomain,
            recipient: m.recipient.0,
            asset: m.asset.0,
            amount: m.amount.to_be_bytes::<32>(),
        };
        // Token releases name the mint's own token program (Token or Token-2022).
        let token_program = if wire.asset == [0; 32] {
            Pubkey::default()
        } else {
            self.rpc
                .get_account(&Pubkey::new_from_array(wire.asset))
                .await
                .map_err(rpc)?
                .owner
        };
        let ix = pay::bridge_process(
            self.payer.pubkey(),
            wire,
            token_program,
            set_version,
            signatures,
        );
        let blockhash = self.rpc.get_latest_blockhash().await.map_err(rpc)?;
        let tx = Transaction::new_signed_with_payer(
            &[ix],
            Some(&self.payer.pubkey()),
            &[&self.payer],
            blockhash,
        );
        // Simulated first: a message the program refuses costs no fee and says why.
        let simulation = self.rpc.simulate_transaction(&tx).await.map_err(rpc)?;
        if let Some(err) = simulation.value.err {
            let logs = simulation.value.logs.unwrap_or_default();
            let reason = logs
                .iter()
                .find_map(|l| l.split("Error Code: ").nth(1))
                .and_then(|rest| rest.split('.').next())
                .unwrap_or("simulation")
                .to_owned();
            self.store
                .retry_later(
                    id,
                    &reason,
                    &format!("{err:?}"),
                    self.retry_ms(),
                    true,
                    false,
                )
                .await?;
            return Ok(Outcome::Failed(reason));
        }
        let signature = self
            .rpc
            .send_and_confirm_transaction(&tx)
            .await
            .map_err(rpc)?;
        let slot = self
            .rpc
            .get_slot_with_commitment(CommitmentConfig::confirmed())
            .await
            .map_err(rpc)?;
        self.store.mark_delivered(id, Some(slot), None).await?;
        tracing::info!(id = %id, %signature, "delivered to Solana");
        Ok(Outcome::Delivered)
    }
}
