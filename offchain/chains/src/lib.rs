//! `advancia-chains`: the blockchain service's library.
//!
//! - [`SolanaChain`]: typed access to a Solana JSON-RPC node (any: the local node, a
//!   validator, a provider) for our program's accounts, balances, relay of transactions that
//!   wallets signed, signature status, priority-fee estimates and simulation; and building
//!   *unsigned* transactions for wallets to sign (no server ever holds a user key).
//! - [`wallets`]: watch-only wallet registry (schema `chains`).
//! - [`address`]: chain names and address validation (base58, EIP-55).

pub mod address;
pub mod breaker;
pub mod wallets;

use std::sync::Arc;
use std::time::Duration;

use advancia_db::{Migration, ServiceMigrations};
use advancia_pay::client as pay;
use advancia_pay::state::{Asset, Config, Escrow, Facility, KycAttestation, PaymentRecord};
use anchor_lang::AccountDeserialize;
use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use solana_account_decoder_client_types::UiAccountData;
use solana_commitment_config::CommitmentConfig;
use solana_hash::Hash;
use solana_message::Message;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_rpc_client_api::client_error::{Error as ClientError, ErrorKind};
use solana_rpc_client_api::request::{RpcError, RpcResponseErrorData, TokenAccountsFilter};
use solana_rpc_client_types::config::{
    RpcSendTransactionConfig, RpcSignaturesForAddressConfig, RpcSimulateTransactionConfig,
};
use solana_signature::Signature;
use solana_transaction::Transaction;
use solana_transaction::versioned::VersionedTransaction;

pub use address::Chain;

pub const MIGRATIONS: ServiceMigrations = ServiceMigrations {
    schema: "chains",
    migrations: &[Migration {
        version: 1,
        name: "wallets",
        sql: include_str!("../migrations/0001_wallets.sql"),
    }],
};

/// SPL Token and Token-2022 program ids.
pub const TOKEN_PROGRAM: Pubkey =
    Pubkey::from_str_const("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA");
pub const TOKEN_2022_PROGRAM: Pubkey =
    Pubkey::from_str_const("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb");
pub const ASSOCIATED_TOKEN_PROGRAM: Pubkey =
    Pubkey::from_str_const("ATokenGPvbdGVxr1b2hvZbsiqMW5hBmTpCKd8tb7AGJ");

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The caller's input is malformed (address, transaction encoding, amounts).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The node refused the transaction (failed preflight, bad signature, expired blockhash).
    #[error("transaction rejected: {0}")]
    Rejected(String),
    /// The node could not be reached or answered something unusable.
    #[error("chain node unavailable: {0}")]
    Unavailable(String),
    /// The node has been failing: calls are refused at once until it may be tried again.
    #[error("chain node unavailable (circuit open; retry in {retry_after_secs} s)")]
    CircuitOpen { retry_after_secs: u64 },
    #[error("account {0} does not hold a valid {1}")]
    Decode(Pubkey, &'static str),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

fn node_error(e: ClientError) -> ChainError {
    match e.kind() {
        // -32002 preflight failure, -32003 signature verification, -32602 invalid params.
        ErrorKind::RpcError(RpcError::RpcResponseError {
            code: -32002 | -32003 | -32602,
            message,
            data,
            ..
        }) => {
            let logs = match data {
                RpcResponseErrorData::SendTransactionPreflightFailure(r) => r
                    .logs
                    .as_ref()
                    .map(|l| format!(" (logs: {})", l.join(" | ")))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            ChainError::Rejected(format!("{message}{logs}"))
        }
        _ => ChainError::Unavailable(e.to_string()),
    }
}

/// An unsigned transaction for a wallet: base64 of the wire format with empty signatures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnsignedTransaction {
    pub transaction: String,
    pub blockhash: String,
    pub last_valid_block_height: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenBalance {
    pub account: String,
    pub mint: String,
    pub program: String,
    /// Base units, as a decimal string.
    pub amount: String,
    pub decimals: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Balances {
    pub address: String,
    pub slot: u64,
    pub lamports: u64,
    pub tokens: Vec<TokenBalance>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TransactionStatus {
    pub signature: String,
    pub slot: u64,
    /// `processed`, `confirmed` or `finalized`.
    pub confirmation_status: String,
    /// Confirmations so far; `None` once finalized (the node stops counting).
    pub confirmations: Option<usize>,
    /// The transaction's error, if it executed and failed.
    pub error: Option<String>,
}

/// Priority fees paid in recent slots (micro-lamports per compute unit).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PriorityFees {
    pub slots: usize,
    pub min: u64,
    pub median: u64,
    pub p75: u64,
    pub p90: u64,
    pub max: u64,
    /// Base fee of a one-signature transaction, in lamports.
    pub base_fee_lamports: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Simulation {
    pub error: Option<String>,
    pub logs: Vec<String>,
    pub units_consumed: Option<u64>,
    pub return_data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignatureInfo {
    pub signature: String,
    pub slot: u64,
    pub error: Option<String>,
    pub confirmation_status: Option<String>,
}

/// A Solana JSON-RPC node, read at `confirmed` unless said otherwise.
#[derive(Clone)]
pub struct SolanaChain {
    rpc: Arc<RpcClient>,
    url: String,
    breaker: Arc<breaker::Breaker>,
}

impl std::fmt::Debug for SolanaChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolanaChain")
            .field("url", &self.url)
            .finish()
    }
}

impl SolanaChain {
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        let rpc = RpcClient::new_with_timeout_and_commitment(
            url.clone(),
            Duration::from_secs(15),
            CommitmentConfig::confirmed(),
        );
        Self {
            rpc: Arc::new(rpc),
            url,
            breaker: Arc::new(breaker::Breaker::new(Default::default())),
        }
    }

    /// The same node behind a breaker configured as `config`.
    pub fn with_breaker(mut self, config: breaker::BreakerConfig) -> Self {
        self.breaker = Arc::new(breaker::Breaker::new(config));
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The circuit breaker in front of the node (its state is a metric).
    pub fn breaker(&self) -> &breaker::Breaker {
        &self.breaker
    }

    /// A node call through the breaker: refused at once while it is open; a node failure
    /// counts towards opening it, anything the node answered (even a rejection) closes it.
    async fn guard<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ChainError> {
        self.breaker.admit()?;
        match call.await {
            Ok(v) => {
                self.breaker.record(true);
                Ok(v)
            }
            Err(e) => {
                let e = node_error(e);
                self.breaker
                    .record(!matches!(e, ChainError::Unavailable(_)));
                Err(e)
            }
        }
    }

    /// Asks the node for its slot every `every` (each try bounded by `every`), so the
    /// breaker opens while nobody calls and closes as soon as the node answers again.
    pub async fn probe(&self, every: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            // While open and not yet due, the probe waits like everyone else.
            if self.breaker.admit_probe().is_ok() {
                match tokio::time::timeout(every, self.rpc.get_slot()).await {
                    Ok(Ok(_)) => self.breaker.record(true),
                    Ok(Err(e)) => self
                        .breaker
                        .record(!matches!(node_error(e), ChainError::Unavailable(_))),
                    // No answer in time: a node failure, as a timeout is.
                    Err(_) => self.breaker.record(false),
                }
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Raw account bytes and owner, if the account exists.
    pub async fn raw_account(
        &self,
        address: &Pubkey,
    ) -> Result<Option<(Pubkey, Vec<u8>)>, ChainError> {
        let acc = self
            .guard(
                self.rpc
                    .get_account_with_commitment(address, CommitmentConfig::confirmed()),
            )
            .await?
            .value;
        Ok(acc.map(|a| (a.owner, a.data)))
    }

    /// An account of our program, decoded; `None` if it does not exist. An account at the
    /// address that our program does not own is an error, never decoded.
    async fn program_account<T: AccountDeserialize>(
        &self,
        address: Pubkey,
        what: &'static str,
    ) -> Result<Option<T>, ChainError> {
        match self.raw_account(&address).await? {
            None => Ok(None),
            Some((owner, _)) if owner != advancia_pay::ID => Err(ChainError::Decode(address, what)),
            Some((_, data)) => pay::decode_account::<T>(&data)
                .map(Some)
                .map_err(|_| ChainError::Decode(address, what)),
        }
    }

    pub async fn config(&self) -> Result<Option<Config>, ChainError> {
        self.program_account(pay::config_pda(), "config").await
    }

    pub async fn facility(&self, facility_id: &[u8; 32]) -> Result<Option<Facility>, ChainError> {
        self.program_account(pay::facility_pda(facility_id), "facility")
            .await
    }

    pub async fn asset(&self, mint: &Pubkey) -> Result<Option<Asset>, ChainError> {
        self.program_account(pay::asset_pda(mint), "asset").await
    }

    pub async fn payment_record(
        &self,
        payer: &Pubkey,
        invoice_id: &[u8; 32],
    ) -> Result<Option<PaymentRecord>, ChainError> {
        self.program_account(pay::payment_pda(payer, invoice_id), "payment record")
            .await
    }

    pub async fn escrow(
        &self,
        payer: &Pubkey,
        escrow_id: &[u8; 32],
    ) -> Result<Option<Escrow>, ChainError> {
        self.program_account(pay::escrow_pda(payer, escrow_id), "escrow")
            .await
    }

    /// The facility account at `address` (a facility known by its account only).
    pub async fn facility_at(&self, address: &Pubkey) -> Result<Option<Facility>, ChainError> {
        self.program_account(*address, "facility").await
    }

    /// The escrow account at `address`.
    pub async fn escrow_at(&self, address: &Pubkey) -> Result<Option<Escrow>, ChainError> {
        self.program_account(*address, "escrow").await
    }

    pub async fn attestation(&self, wallet: &Pubkey) -> Result<Option<KycAttestation>, ChainError> {
        self.program_account(pay::kyc_pda(wallet), "KYC attestation")
            .await
    }

    /// The token program that owns `mint` and the mint's decimals.
    pub async fn mint(&self, mint: &Pubkey) -> Result<(Pubkey, u8), ChainError> {
        let (owner, data) = self
            .raw_account(mint)
            .await?
            .ok_or_else(|| ChainError::Invalid(format!("mint {mint} does not exist")))?;
        if owner != TOKEN_PROGRAM && owner != TOKEN_2022_PROGRAM {
            return Err(ChainError::Decode(*mint, "token mint"));
        }
        // SPL mint layout (both programs): COption<Pubkey> authority (36) + supply (8) + decimals.
        let decimals = *data
            .get(44)
            .ok_or(ChainError::Decode(*mint, "token mint"))?;
        Ok((owner, decimals))
    }

    /// The cluster's genesis hash (its CAIP-2 chain id is `solana:` and the first 32
    /// characters of it).
    pub async fn genesis_hash(&self) -> Result<Hash, ChainError> {
        self.rpc.get_genesis_hash().await.map_err(node_error)
    }

    /// The current blockhash (at `confirmed`) and the last block height it is valid for.
    pub async fn latest_blockhash(&self) -> Result<(Hash, u64), ChainError> {
        self.guard(
            self.rpc
                .get_latest_blockhash_with_commitment(CommitmentConfig::confirmed()),
        )
        .await
    }

    /// An unsigned legacy transaction with `fee_payer` paying, for a wallet to sign.
    pub async fn unsigned_transaction(
        &self,
        instructions: &[Instruction],
        fee_payer: &Pubkey,
    ) -> Result<UnsignedTransaction, ChainError> {
        let (blockhash, last_valid_block_height) = self.latest_blockhash().await?;
        let tx = Transaction::new_unsigned(Message::new_with_blockhash(
            instructions,
            Some(fee_payer),
            &blockhash,
        ));
        let bytes = bincode::serialize(&tx)
            .map_err(|e| ChainError::Invalid(format!("cannot serialize transaction: {e}")))?;
        Ok(UnsignedTransaction {
            transaction: B64.encode(bytes),
            blockhash: blockhash.to_string(),
            last_valid_block_height,
        })
    }

    /// SOL and SPL token balances (Token and Token-2022) of `owner`.
    pub async fn balances(&self, owner: &Pubkey) -> Result<Balances, ChainError> {
        let bal = self
            .guard(
                self.rpc
                    .get_balance_with_commitment(owner, CommitmentConfig::confirmed()),
            )
            .await?;
        let mut tokens = Vec::new();
        for program in [TOKEN_PROGRAM, TOKEN_2022_PROGRAM] {
            let accounts = self
                .guard(self.rpc.get_token_accounts_by_owner_with_commitment(
                    owner,
                    TokenAccountsFilter::ProgramId(program),
                    CommitmentConfig::confirmed(),
                ))
                .await?
                .value;
            for keyed in accounts {
                let UiAccountData::Json(parsed) = &keyed.account.data else {
                    continue;
                };
                let info = &parsed.parsed["info"];
                let (Some(mint), Some(amount), Some(decimals)) = (
                    info["mint"].as_str(),
                    info["tokenAmount"]["amount"].as_str(),
                    info["tokenAmount"]["decimals"].as_u64(),
                ) else {
                    return Err(ChainError::Unavailable(format!(
                        "token account {} came back without mint/amount",
                        keyed.pubkey
                    )));
                };
                tokens.push(TokenBalance {
                    account: keyed.pubkey,
                    mint: mint.to_owned(),
                    program: program.to_string(),
                    amount: amount.to_owned(),
                    decimals: u8::try_from(decimals).unwrap_or(u8::MAX),
                });
            }
        }
        tokens.sort_by(|a, b| (&a.mint, &a.account).cmp(&(&b.mint, &b.account)));
        Ok(Balances {
            address: owner.to_string(),
            slot: bal.context.slot,
            lamports: bal.value,
            tokens,
        })
    }

    /// Relays a transaction a wallet signed (base64 wire format, legacy or v0). Every
    /// signature is checked here first so a bad one gets a precise error; the node then runs
    /// its preflight simulation.
    pub async fn send(&self, transaction_b64: &str) -> Result<String, ChainError> {
        let tx = decode_signed(transaction_b64)?;
        self.submit(&tx).await
    }

    /// [`Self::send`], for transactions with at least one instruction of `program` (a relay
    /// for our users, not an open one).
    pub async fn send_for_program(
        &self,
        transaction_b64: &str,
        program: &Pubkey,
    ) -> Result<String, ChainError> {
        let tx = decode_signed(transaction_b64)?;
        let keys = tx.message.static_account_keys();
        let invokes = tx
            .message
            .instructions()
            .iter()
            .any(|ix| keys.get(usize::from(ix.program_id_index)) == Some(program));
        if !invokes {
            return Err(ChainError::Invalid(format!(
                "only transactions that invoke {program} are relayed"
            )));
        }
        self.submit(&tx).await
    }

    async fn submit(&self, tx: &VersionedTransaction) -> Result<String, ChainError> {
        let sig = self
            .guard(self.rpc.send_transaction_with_config(
                tx,
                RpcSendTransactionConfig {
                    skip_preflight: false,
                    preflight_commitment: Some(CommitmentConfig::confirmed().commitment),
                    ..Default::default()
                },
            ))
            .await?;
        Ok(sig.to_string())
    }

    /// Status of a transaction signature (searching history), `None` if the node does not
    /// know it (never landed, or dropped).
    pub async fn status(&self, signature: &str) -> Result<Option<TransactionStatus>, ChainError> {
        let sig: Signature = signature
            .parse()
            .map_err(|_| ChainError::Invalid(format!("`{signature}` is not a signature")))?;
        let st = self
            .guard(self.rpc.get_signature_statuses_with_history(&[sig]))
            .await?
            .value
            .into_iter()
            .next()
            .flatten();
        Ok(st.map(|s| TransactionStatus {
            signature: signature.to_owned(),
            slot: s.slot,
            confirmation_status: s
                .confirmation_status
                .map(|c| format!("{c:?}").to_lowercase())
                .unwrap_or_else(|| "processed".into()),
            confirmations: s.confirmations,
            error: s.err.map(|e| e.to_string()),
        }))
    }

    /// Priority fees in the recent slots, optionally only those of transactions writing to
    /// `accounts` (fees are local to the accounts a transaction locks).
    pub async fn priority_fees(&self, accounts: &[Pubkey]) -> Result<PriorityFees, ChainError> {
        let mut fees: Vec<u64> = self
            .guard(self.rpc.get_recent_prioritization_fees(accounts))
            .await?
            .into_iter()
            .map(|f| f.prioritization_fee)
            .collect();
        fees.sort_unstable();
        let pick = |q: usize| -> u64 {
            if fees.is_empty() {
                0
            } else {
                fees[((fees.len() - 1) * q) / 100]
            }
        };
        // Base fee from the node for a one-signature message (it has no fixed constant).
        let probe = Message::new_with_blockhash(
            &[],
            Some(&advancia_pay::ID),
            &self.latest_blockhash().await?.0,
        );
        let base_fee_lamports = self.guard(self.rpc.get_fee_for_message(&probe)).await?;
        Ok(PriorityFees {
            slots: fees.len(),
            min: pick(0),
            median: pick(50),
            p75: pick(75),
            p90: pick(90),
            max: pick(100),
            base_fee_lamports,
        })
    }

    /// Simulates `instructions` with `fee_payer` paying, without signatures (the node replaces
    /// the blockhash): errors, logs and compute units before anyone signs.
    pub async fn simulate(
        &self,
        instructions: &[Instruction],
        fee_payer: &Pubkey,
    ) -> Result<Simulation, ChainError> {
        let tx = Transaction::new_unsigned(Message::new(instructions, Some(fee_payer)));
        let r = self
            .guard(self.rpc.simulate_transaction_with_config(
                &tx,
                RpcSimulateTransactionConfig {
                    sig_verify: false,
                    replace_recent_blockhash: true,
                    commitment: Some(CommitmentConfig::confirmed()),
                    ..Default::default()
                },
            ))
            .await?
            .value;
        Ok(Simulation {
            error: r.err.map(|e| e.to_string()),
            logs: r.logs.unwrap_or_default(),
            units_consumed: r.units_consumed,
            return_data: r.return_data.map(|d| d.data.0),
        })
    }

    /// Newest-first signatures of transactions that mention `address` (Solana Pay's
    /// reference lookup), at `confirmed`.
    pub async fn signatures_for(
        &self,
        address: &Pubkey,
        limit: usize,
    ) -> Result<Vec<SignatureInfo>, ChainError> {
        let rows: Vec<
            solana_rpc_client_types::response::RpcConfirmedTransactionStatusWithSignature,
        > = self
            .guard(self.rpc.send(
                solana_rpc_client_types::request::RpcRequest::GetSignaturesForAddress,
                serde_json::json!([
                    address.to_string(),
                    RpcSignaturesForAddressConfig {
                        limit: Some(limit.clamp(1, 1000)),
                        commitment: Some(CommitmentConfig::confirmed()),
                        ..Default::default()
                    }
                ]),
            ))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| SignatureInfo {
                signature: r.signature,
                slot: r.slot,
                error: r.err.map(|e| e.to_string()),
                confirmation_status: r
                    .confirmation_status
                    .map(|c| format!("{c:?}").to_lowercase()),
            })
            .collect())
    }
}

/// The associated token account of `wallet` for `mint` under `token_program`.
pub fn associated_token_address(wallet: &Pubkey, mint: &Pubkey, token_program: &Pubkey) -> Pubkey {
    Pubkey::find_program_address(
        &[wallet.as_ref(), token_program.as_ref(), mint.as_ref()],
        &ASSOCIATED_TOKEN_PROGRAM,
    )
    .0
}

/// Decodes a signed wire-format transaction and checks every signature.
pub fn decode_signed(transaction_b64: &str) -> Result<VersionedTransaction, ChainError> {
    let bytes = B64
        .decode(transaction_b64.trim())
        .map_err(|_| ChainError::Invalid("transaction is not base64".into()))?;
    if bytes.len() > 1232 {
        return Err(ChainError::Invalid(format!(
            "transaction is {} bytes; the packet limit is 1232",
            bytes.len()
        )));
    }
    let tx: VersionedTransaction = bincode::deserialize(&bytes)
        .map_err(|_| ChainError::Invalid("transaction does not decode".into()))?;
    tx.sanitize()
        .map_err(|e| ChainError::Invalid(format!("malformed transaction: {e}")))?;
    if let Some(i) = tx.verify_with_results().iter().position(|ok| !ok) {
        let key = tx
            .message
            .static_account_keys()
            .get(i)
            .map(ToString::to_string)
            .unwrap_or_default();
        return Err(ChainError::Rejected(format!(
            "signature {i} (signer {key}) is missing or does not verify"
        )));
    }
    Ok(tx)
}

/// The ledger's posting rules learn a Solana asset's scale from its mint account (native
/// SOL: `SOL` with 9 decimals); a mint that does not exist (yet) parks its events.
impl advancia_ledger::projection::AssetScales for SolanaChain {
    async fn asset(
        &self,
        mint: &str,
    ) -> Result<
        Option<advancia_ledger::projection::AssetInfo>,
        advancia_ledger::projection::ProjectionError,
    > {
        use advancia_ledger::projection::{AssetInfo, ProjectionError};
        let key: Pubkey = mint
            .parse()
            .map_err(|_| ProjectionError::Asset(format!("mint {mint} is not a public key")))?;
        if key == advancia_pay::state::NATIVE_SOL {
            return Ok(Some(AssetInfo {
                code: "SOL".into(),
                scale: 9,
            }));
        }
        match self.mint(&key).await {
            Ok((_, scale)) => Ok(Some(AssetInfo {
                code: mint.to_string(),
                scale,
            })),
            Err(ChainError::Invalid(_) | ChainError::Decode(..)) => Ok(None),
            Err(e) => Err(ProjectionError::Asset(e.to_string())),
        }
    }
}
