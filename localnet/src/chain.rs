//! The bank driver: one `Bank` per slot on a linear fork, frozen on a clock, rooted
//! `finalization_lag` slots behind the tip, plus the in-memory ledger (blocks, transactions with
//! their status meta, per-address signature index) that the RPC reads.
//!
//! Transactions run through `Bank::load_execute_and_commit_transactions` with CPI, log,
//! return-data and balance recording on, which is what `getTransaction` needs and what
//! `BanksClient` does not return (inner instructions carry our `emit_cpi!` events).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agave_feature_set::FeatureSet;
use solana_account::{AccountSharedData, ReadableAccount};
use solana_accounts_db::accounts_db::ACCOUNTS_DB_CONFIG_FOR_TESTING;
use solana_clock::{MAX_PROCESSING_AGE, Slot, UnixTimestamp};
use solana_cluster_type::ClusterType;
use solana_fee_calculator::{DEFAULT_TARGET_LAMPORTS_PER_SIGNATURE, FeeRateGovernor};
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_message::inner_instruction::InnerInstructionsList;
use solana_message::v0::LoadedAddresses;
use solana_message::{Message, VersionedMessage};
use solana_native_token::LAMPORTS_PER_SOL;
use solana_poh_config::PohConfig;
use solana_program_runtime::invoke_context::BuiltinFunctionWithContext;
use solana_program_runtime::loaded_programs::ProgramCacheEntry;
use solana_pubkey::Pubkey;
use solana_rent::Rent;
use solana_runtime::bank::{Bank, TransactionSimulationResult};
use solana_runtime::bank_forks::BankForks;
use solana_runtime::genesis_utils::create_genesis_config_with_leader_ex;
use solana_runtime::runtime_config::RuntimeConfig;
use solana_signature::Signature;
use solana_signer::Signer;
use solana_svm::transaction_balances::SvmTokenInfo;
use solana_svm::transaction_processor::ExecutionRecordingConfig;
use solana_svm_timings::ExecuteTimings;
use solana_transaction::Transaction;
use solana_transaction::versioned::VersionedTransaction;
use solana_transaction_error::TransactionError;
use solana_transaction_status_client_types::{
    InnerInstruction, InnerInstructions, TransactionStatusMeta, TransactionTokenBalance,
};
use tokio::sync::broadcast;

use crate::encode::token_amount;
use crate::snapshot::Snapshot;

/// Commitment levels, ordered from least to most final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Commitment {
    Processed,
    Confirmed,
    Finalized,
}

/// What the node tells websocket subscribers about.
#[derive(Debug, Clone)]
pub enum Event {
    /// A transaction was executed in the working (processed) bank.
    Transaction { signature: Signature, slot: Slot },
    /// A new working slot started.
    Slot {
        slot: Slot,
        parent: Slot,
        root: Slot,
    },
    /// A slot was frozen and is now `confirmed`.
    Confirmed(Slot),
    /// A slot became `finalized` (rooted).
    Finalized(Slot),
}

/// A frozen slot on the current fork.
#[derive(Debug, Clone)]
pub struct BlockRecord {
    pub slot: Slot,
    pub parent_slot: Slot,
    pub blockhash: Hash,
    pub previous_blockhash: Hash,
    pub block_height: u64,
    pub block_time: UnixTimestamp,
    pub signatures: Vec<Signature>,
}

/// An executed (committed) transaction.
#[derive(Debug, Clone)]
pub struct TxRecord {
    pub signature: Signature,
    pub slot: Slot,
    seq: u64,
    pub transaction: VersionedTransaction,
    pub meta: TransactionStatusMeta,
    pub block_time: UnixTimestamp,
    /// Compute-unit price (micro-lamports per CU) from a `SetComputeUnitPrice` instruction.
    pub compute_unit_price: u64,
    pub writable_accounts: Vec<Pubkey>,
}

/// Why a transaction was not executed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Failed sanitization or signature verification; nothing was charged.
    #[error("{0}")]
    Rejected(TransactionError),
    /// Could not be committed (bad blockhash, already processed, cannot pay the fee, ...).
    #[error("{0}")]
    NotCommitted(TransactionError),
}

/// Errors of the test-control operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("transaction {0} not found")]
    UnknownTransaction(Signature),
    #[error("transaction {signature} is in slot {slot}, which is already finalized")]
    AlreadyFinalized { signature: Signature, slot: Slot },
    #[error("bank for slot {0} is gone")]
    MissingBank(Slot),
}

/// Result of [`Chain::drop_transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropReport {
    /// Slots abandoned with the fork (they now read as skipped).
    pub abandoned_slots: Vec<Slot>,
    /// The slot the replayed transactions landed in.
    pub new_slot: Slot,
    /// Other transactions of the abandoned slots that were replayed successfully.
    pub replayed: Vec<Signature>,
    /// Other transactions that could not be replayed on the new fork (e.g. they depended on
    /// the dropped one, or used a blockhash of an abandoned slot).
    pub lost: Vec<Signature>,
}

/// Rooted slots between accounts-cache flushes.
const FLUSH_EVERY_SLOTS: Slot = 64;

const COMPUTE_BUDGET_PROGRAM: Pubkey =
    Pubkey::from_str_const("ComputeBudget111111111111111111111111111111");
const MEMO_V1_PROGRAM: Pubkey =
    Pubkey::from_str_const("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo");

pub struct Chain {
    bank_forks: Arc<RwLock<BankForks>>,
    working: Arc<Bank>,
    working_parent_blockhash: Hash,
    working_signatures: Vec<Signature>,
    confirmed: Slot,
    finalized: Slot,
    finalization_lag: u64,
    collector: Pubkey,
    faucet: Keypair,
    genesis_hash: Hash,
    first_slot: Slot,
    blocks: BTreeMap<Slot, BlockRecord>,
    skipped: BTreeSet<Slot>,
    txs: HashMap<Signature, TxRecord>,
    by_address: HashMap<Pubkey, BTreeMap<(Slot, u64), Signature>>,
    next_seq: u64,
    airdrop_nonce: u64,
    last_flush: Slot,
    events: broadcast::Sender<Event>,
}

/// Native entrypoint shim: Anchor's `entry` wants one `'info` for the program id, the
/// `AccountInfo` slice and the data, the runtime's `ProcessInstruction` hands out unrelated
/// lifetimes, and `AccountInfo` is invariant in its lifetime. Leaking copies of the id, the
/// (small) slice of `AccountInfo` headers and the instruction data unifies them without
/// `unsafe`. That costs a few hundred bytes per instruction, acceptable for a development
/// node; account data itself is not copied.
fn advancia_pay_entry(
    program_id: &anchor_lang::prelude::Pubkey,
    accounts: &[anchor_lang::prelude::AccountInfo],
    data: &[u8],
) -> anchor_lang::solana_program::entrypoint::ProgramResult {
    let program_id: &anchor_lang::prelude::Pubkey = Box::leak(Box::new(*program_id));
    let data: &[u8] = Box::leak(data.to_vec().into_boxed_slice());
    let accounts: &[anchor_lang::prelude::AccountInfo] =
        Box::leak(accounts.to_vec().into_boxed_slice());
    advancia_pay::entry(program_id, accounts, data)
}

fn now_unix() -> UnixTimestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as UnixTimestamp)
        .unwrap_or_default()
}

impl Chain {
    /// Builds genesis the way program-test's `setup_bank` does (all features on, SPL and core
    /// BPF programs stored, our program as a native builtin), restores a snapshot if given,
    /// and opens the first working slot.
    pub fn new(
        slot_duration: Duration,
        finalization_lag: u64,
        snapshot: Option<Snapshot>,
        events: broadcast::Sender<Event>,
    ) -> Self {
        let rent = Rent::default();
        let faucet = snapshot
            .as_ref()
            .map(|s| Keypair::new_from_array(s.faucet_secret))
            .unwrap_or_else(Keypair::new);
        let validator = Keypair::new();
        let vote = Keypair::new();
        let fee_rate_governor = FeeRateGovernor {
            lamports_per_signature: DEFAULT_TARGET_LAMPORTS_PER_SIGNATURE / 2,
            ..FeeRateGovernor::default()
        };
        let feature_set = FeatureSet::all_enabled();
        let mut genesis_config = create_genesis_config_with_leader_ex(
            1_000_000_000 * LAMPORTS_PER_SOL,
            &faucet.pubkey(),
            &validator.pubkey(),
            &vote.pubkey(),
            &Pubkey::new_unique(),
            None,
            rent.minimum_balance(3762) + 1_000_000 * LAMPORTS_PER_SOL,
            42,
            fee_rate_governor,
            rent.clone(),
            ClusterType::Development,
            &feature_set,
            Vec::new(),
        );
        // Bank clocks follow the wall clock: ticks sized so a slot lasts `slot_duration`.
        let ticks_per_slot = genesis_config.ticks_per_slot.max(1);
        let tick = slot_duration / u32::try_from(ticks_per_slot).unwrap_or(64);
        genesis_config.poh_config = PohConfig::new_sleep(tick);
        genesis_config.creation_time = now_unix();
        let genesis_hash = genesis_config.hash();

        let bank0 = Bank::new_from_genesis(
            &genesis_config,
            Arc::new(RuntimeConfig::default()),
            Vec::default(),
            None,
            ACCOUNTS_DB_CONFIG_FOR_TESTING,
            None,
            None,
            Arc::default(),
            None,
            None,
        );
        for (program_id, account) in solana_program_binaries::spl_programs(&rent).iter() {
            bank0.store_account(program_id, account);
        }
        for (program_id, account) in solana_program_binaries::core_bpf_programs(&rent, |id| {
            genesis_config.accounts.contains_key(id)
        })
        .iter()
        {
            bank0.store_account(program_id, account);
        }
        let entry: Option<BuiltinFunctionWithContext> =
            solana_program_test::processor!(advancia_pay_entry);
        if let Some(entry) = entry {
            bank0.add_builtin(
                advancia_pay::ID,
                "advancia_pay",
                ProgramCacheEntry::new_builtin(0, "advancia_pay".len(), entry),
            );
        }
        let restored_slot = snapshot.as_ref().map(|s| s.slot).unwrap_or(0);
        if let Some(snapshot) = &snapshot {
            for (address, account) in &snapshot.accounts {
                bank0.store_account(address, &AccountSharedData::from(account.clone()));
            }
        }
        bank0.set_capitalization_for_tests(bank0.calculate_capitalization_for_tests());
        bank0.fill_bank_with_ticks_for_tests();
        bank0.freeze();
        let collector = *bank0.collector_id();

        let bank_forks = BankForks::new_rw_arc(bank0);
        let mut blocks = BTreeMap::new();
        let (base, first_slot) = {
            let mut forks = bank_forks.write().unwrap_or_else(|e| e.into_inner());
            let bank0 = forks.root_bank();
            // A restored node resumes at the saved slot number, so slots never go backwards
            // for an indexer that kept its cursor.
            let base = if restored_slot > 0 {
                let warped = Bank::warp_from_parent(bank0.clone(), &collector, restored_slot);
                forks.insert(warped);
                forks.set_root(restored_slot, None, None);
                forks.root_bank()
            } else {
                bank0
            };
            (base, restored_slot)
        };
        blocks.insert(
            base.slot(),
            BlockRecord {
                slot: base.slot(),
                parent_slot: base.parent_slot(),
                blockhash: base.last_blockhash(),
                previous_blockhash: base.last_blockhash(),
                block_height: base.block_height(),
                block_time: base.clock().unix_timestamp,
                signatures: Vec::new(),
            },
        );
        let working = Bank::new_from_parent(base.clone(), &collector, base.slot() + 1);
        let working = bank_forks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(working)
            .clone_without_scheduler();

        Self {
            bank_forks,
            working,
            working_parent_blockhash: base.last_blockhash(),
            working_signatures: Vec::new(),
            confirmed: base.slot(),
            finalized: base.slot(),
            finalization_lag,
            collector,
            faucet,
            genesis_hash,
            first_slot,
            blocks,
            skipped: BTreeSet::new(),
            txs: HashMap::new(),
            by_address: HashMap::new(),
            next_seq: 0,
            airdrop_nonce: 0,
            last_flush: 0,
            events,
        }
    }

    fn forks(&self) -> std::sync::RwLockReadGuard<'_, BankForks> {
        self.bank_forks.read().unwrap_or_else(|e| e.into_inner())
    }

    fn forks_mut(&self) -> std::sync::RwLockWriteGuard<'_, BankForks> {
        self.bank_forks.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn slot(&self, commitment: Commitment) -> Slot {
        match commitment {
            Commitment::Processed => self.working.slot(),
            Commitment::Confirmed => self.confirmed,
            Commitment::Finalized => self.finalized,
        }
    }

    /// The bank a read at `commitment` sees.
    pub fn bank(&self, commitment: Commitment) -> Arc<Bank> {
        match commitment {
            Commitment::Processed => self.working.clone(),
            c => self
                .forks()
                .get(self.slot(c))
                .unwrap_or_else(|| self.forks().root_bank()),
        }
    }

    pub fn working_bank(&self) -> Arc<Bank> {
        self.working.clone()
    }

    pub fn faucet(&self) -> &Keypair {
        &self.faucet
    }

    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    pub fn first_slot(&self) -> Slot {
        self.first_slot
    }

    pub fn identity(&self) -> Pubkey {
        self.collector
    }

    pub fn transaction_count(&self) -> u64 {
        self.txs.len() as u64
    }

    /// Commitment a slot on the current fork has reached, `None` if it is not on the fork.
    pub fn slot_commitment(&self, slot: Slot) -> Option<Commitment> {
        if slot == self.working.slot() {
            Some(Commitment::Processed)
        } else if !self.blocks.contains_key(&slot) {
            None
        } else if slot <= self.finalized {
            Some(Commitment::Finalized)
        } else {
            Some(Commitment::Confirmed)
        }
    }

    pub fn transaction(&self, signature: &Signature) -> Option<&TxRecord> {
        self.txs.get(signature)
    }

    pub fn block(&self, slot: Slot) -> Option<&BlockRecord> {
        self.blocks.get(&slot)
    }

    pub fn is_skipped(&self, slot: Slot) -> bool {
        self.skipped.contains(&slot)
            || (slot < self.working.slot() && !self.blocks.contains_key(&slot))
    }

    /// Slots of blocks on the fork within `range`, ascending.
    pub fn block_slots(&self, range: std::ops::RangeInclusive<Slot>) -> Vec<Slot> {
        self.blocks.range(range).map(|(s, _)| *s).collect()
    }

    /// Transactions of a slot (frozen or working), in execution order.
    pub fn slot_transactions(&self, slot: Slot) -> Vec<&TxRecord> {
        let sigs = if slot == self.working.slot() {
            &self.working_signatures
        } else {
            match self.blocks.get(&slot) {
                Some(b) => &b.signatures,
                None => return Vec::new(),
            }
        };
        sigs.iter().filter_map(|s| self.txs.get(s)).collect()
    }

    /// Signatures touching `address`, newest first, at most `commitment`.
    pub fn signatures_for_address(
        &self,
        address: &Pubkey,
        commitment: Commitment,
    ) -> Vec<&TxRecord> {
        let max_slot = self.slot(commitment);
        let Some(index) = self.by_address.get(address) else {
            return Vec::new();
        };
        index
            .iter()
            .rev()
            .filter(|((slot, _), _)| *slot <= max_slot)
            .filter_map(|(_, sig)| self.txs.get(sig))
            .collect()
    }

    /// Recent blocks, oldest first, with their transactions (for prioritization fees).
    pub fn recent_blocks(&self, count: usize) -> Vec<&BlockRecord> {
        let mut v: Vec<&BlockRecord> = self.blocks.values().rev().take(count).collect();
        v.reverse();
        v
    }

    /// Ends the working slot: ticks it to completion (registering a fresh blockhash), freezes
    /// it (now `confirmed`), opens the next slot and roots `finalization_lag` slots back.
    pub fn advance_slot(&mut self) {
        let bank = self.working.clone();
        bank.fill_bank_with_ticks_for_tests();
        bank.freeze();
        let slot = bank.slot();
        self.blocks.insert(
            slot,
            BlockRecord {
                slot,
                parent_slot: bank.parent_slot(),
                blockhash: bank.last_blockhash(),
                previous_blockhash: self.working_parent_blockhash,
                block_height: bank.block_height(),
                block_time: bank.clock().unix_timestamp,
                signatures: std::mem::take(&mut self.working_signatures),
            },
        );
        self.confirmed = slot;
        self.open_working(bank, slot + 1);
        let _ = self.events.send(Event::Confirmed(slot));
        self.finalize();
    }

    fn open_working(&mut self, parent: Arc<Bank>, slot: Slot) {
        self.working_parent_blockhash = parent.last_blockhash();
        let child = Bank::new_from_parent(parent.clone(), &self.collector, slot);
        let working = self.forks_mut().insert(child).clone_without_scheduler();
        self.working = working;
        let _ = self.events.send(Event::Slot {
            slot,
            parent: parent.slot(),
            root: self.finalized,
        });
    }

    fn finalize(&mut self) {
        let target = self.confirmed.saturating_sub(self.finalization_lag);
        let Some(root) = self
            .blocks
            .range(..=target)
            .next_back()
            .map(|(slot, _)| *slot)
        else {
            return;
        };
        if root <= self.finalized {
            return;
        }
        let root_bank = {
            let mut forks = self.forks_mut();
            forks.set_root(root, None, None);
            forks.root_bank()
        };
        // No AccountsBackgroundService runs here, so flush rooted slots ourselves: flushing
        // many rooted slots at once keeps only the newest version of each account (sysvars
        // such as SlotHistory rewrite ~130 KB per slot), which bounds memory.
        if root >= self.last_flush + FLUSH_EVERY_SLOTS {
            root_bank.force_flush_accounts_cache();
            root_bank.shrink_candidate_slots();
            self.last_flush = root;
        }
        let newly: Vec<Slot> = self
            .blocks
            .range(self.finalized + 1..=root)
            .map(|(s, _)| *s)
            .collect();
        self.finalized = root;
        for slot in newly {
            let _ = self.events.send(Event::Finalized(slot));
        }
    }

    /// Sanitizes (with signature verification) and executes `tx` in the working bank,
    /// recording it in the ledger when the bank commits it.
    pub fn execute(&mut self, tx: VersionedTransaction) -> Result<&TxRecord, ExecError> {
        self.execute_checked(tx, true)
    }

    /// As [`Chain::execute`]; `verify_signatures: false` is for a transaction whose
    /// signatures were verified moments ago (by the preflight simulation of the same bytes).
    pub fn execute_checked(
        &mut self,
        tx: VersionedTransaction,
        verify_signatures: bool,
    ) -> Result<&TxRecord, ExecError> {
        let bank = self.working.clone();
        let sanitized = if verify_signatures {
            bank.fully_verify_transaction(tx.clone())
        } else {
            bank.verify_transaction(
                tx.clone(),
                solana_transaction::TransactionVerificationMode::HashOnly,
            )
        }
        .map_err(ExecError::Rejected)?;
        let batch = bank.prepare_sanitized_batch(std::slice::from_ref(&sanitized));
        let mut timings = ExecuteTimings::default();
        let (mut results, balances) = bank.load_execute_and_commit_transactions(
            &batch,
            MAX_PROCESSING_AGE,
            ExecutionRecordingConfig {
                enable_cpi_recording: true,
                enable_log_recording: true,
                enable_return_data_recording: true,
                enable_transaction_balance_recording: true,
            },
            &mut timings,
            None,
        );
        drop(batch);
        let committed = results
            .pop()
            .unwrap_or(Err(TransactionError::InvalidProgramForExecution))
            .map_err(ExecError::NotCommitted)?;
        let (mut pre, mut post, mut token_pre, mut token_post) =
            balances.map(|b| b.into_vecs()).unwrap_or_default();

        let message = sanitized.message();
        let account_keys: Vec<Pubkey> = message.account_keys().iter().copied().collect();
        let writable_accounts = account_keys
            .iter()
            .enumerate()
            .filter(|(i, _)| message.is_writable(*i))
            .map(|(_, k)| *k)
            .collect();
        let loaded_addresses = match tx.message {
            VersionedMessage::V0(_) => sanitized.get_loaded_addresses(),
            VersionedMessage::Legacy(_) => LoadedAddresses::default(),
        };
        let signature = tx.signatures.first().copied().unwrap_or_default();
        let meta = TransactionStatusMeta {
            status: committed.status.clone(),
            fee: committed.fee_details.total_fee(),
            pre_balances: pre.pop().unwrap_or_default(),
            post_balances: post.pop().unwrap_or_default(),
            inner_instructions: committed.inner_instructions.map(map_inner_instructions),
            log_messages: committed.log_messages.map(normalize_logs),
            pre_token_balances: token_pre.pop().map(map_token_balances),
            post_token_balances: token_post.pop().map(map_token_balances),
            rewards: Some(Vec::new()),
            loaded_addresses,
            return_data: committed.return_data,
            compute_units_consumed: Some(committed.executed_units),
            cost_units: None,
        };
        let compute_unit_price = compute_unit_price(&tx.message);
        let slot = bank.slot();
        let seq = self.next_seq;
        self.next_seq += 1;
        for key in &account_keys {
            self.by_address
                .entry(*key)
                .or_default()
                .insert((slot, seq), signature);
        }
        self.working_signatures.push(signature);
        let record = TxRecord {
            signature,
            slot,
            seq,
            transaction: tx,
            meta,
            block_time: bank.clock().unix_timestamp,
            compute_unit_price,
            writable_accounts,
        };
        let _ = self.events.send(Event::Transaction { signature, slot });
        Ok(self.txs.entry(signature).or_insert(record))
    }

    /// Runs `tx` against the bank at `commitment` without committing.
    pub fn simulate(
        &self,
        commitment: Commitment,
        tx: VersionedTransaction,
        sig_verify: bool,
    ) -> Result<(TransactionSimulationResult, Vec<Pubkey>, Slot), ExecError> {
        let bank = self.bank(commitment);
        let sanitized = if sig_verify {
            bank.fully_verify_transaction(tx)
        } else {
            bank.verify_transaction(
                tx,
                solana_transaction::TransactionVerificationMode::HashOnly,
            )
        }
        .map_err(ExecError::Rejected)?;
        let keys = sanitized.message().account_keys().iter().copied().collect();
        let result = bank.simulate_transaction_unchecked(&sanitized, true);
        Ok((result, keys, bank.slot()))
    }

    /// Sends `lamports` from the faucet to `to` as an ordinary, recorded transaction.
    pub fn airdrop(&mut self, to: &Pubkey, lamports: u64) -> Result<Signature, ExecError> {
        let blockhash = self.working.last_blockhash();
        let transfer =
            solana_system_interface::instruction::transfer(&self.faucet.pubkey(), to, lamports);
        let mut tx = Transaction::new_signed_with_payer(
            std::slice::from_ref(&transfer),
            Some(&self.faucet.pubkey()),
            &[&self.faucet],
            blockhash,
        );
        // The same airdrop twice within one blockhash would be the same transaction; a memo
        // with a counter keeps them distinct, as a faucet's separate requests are.
        if self.txs.contains_key(&tx.signatures[0]) {
            self.airdrop_nonce += 1;
            let memo_ix = solana_message::Instruction {
                program_id: MEMO_V1_PROGRAM,
                accounts: Vec::new(),
                data: format!("airdrop {}", self.airdrop_nonce).into_bytes(),
            };
            let message = Message::new(&[transfer, memo_ix], Some(&self.faucet.pubkey()));
            tx = Transaction::new(&[&self.faucet], message, blockhash);
        }
        let record = self.execute(VersionedTransaction::from(tx))?;
        match &record.meta.status {
            Ok(()) => Ok(record.signature),
            Err(e) => Err(ExecError::NotCommitted(e.clone())),
        }
    }

    /// Test switch: abandons the fork from the slot of `signature` on (that slot must not be
    /// finalized yet), opens a new slot on its parent and replays every other transaction of
    /// the abandoned slots there. The dropped transaction disappears from the ledger, exactly
    /// as when a validator switches forks.
    pub fn drop_transaction(&mut self, signature: &Signature) -> Result<DropReport, ChainError> {
        let record = self
            .txs
            .get(signature)
            .ok_or(ChainError::UnknownTransaction(*signature))?;
        let slot = record.slot;
        if slot <= self.finalized {
            return Err(ChainError::AlreadyFinalized {
                signature: *signature,
                slot,
            });
        }
        let working_slot = self.working.slot();
        let parent_slot = if slot == working_slot {
            self.working.parent_slot()
        } else {
            self.blocks
                .get(&slot)
                .map(|b| b.parent_slot)
                .ok_or(ChainError::MissingBank(slot))?
        };
        let parent = self
            .forks()
            .get(parent_slot)
            .ok_or(ChainError::MissingBank(parent_slot))?;

        // Everything from `slot` on, in execution order.
        let mut abandoned_slots: Vec<Slot> = self.blocks.range(slot..).map(|(s, _)| *s).collect();
        abandoned_slots.push(working_slot);
        let mut to_replay: Vec<&TxRecord> = self.txs.values().filter(|t| t.slot >= slot).collect();
        to_replay.sort_by_key(|t| (t.slot, t.seq));
        let to_replay: Vec<(Signature, VersionedTransaction)> = to_replay
            .into_iter()
            .filter(|t| t.signature != *signature)
            .map(|t| (t.signature, t.transaction.clone()))
            .collect();

        // Forget the abandoned fork.
        let dropped: Vec<Signature> = self
            .txs
            .values()
            .filter(|t| t.slot >= slot)
            .map(|t| t.signature)
            .collect();
        for sig in dropped {
            if let Some(t) = self.txs.remove(&sig) {
                for key in t.transaction.message.static_account_keys() {
                    if let Some(index) = self.by_address.get_mut(key) {
                        index.remove(&(t.slot, t.seq));
                    }
                }
                for key in t
                    .meta
                    .loaded_addresses
                    .writable
                    .iter()
                    .chain(&t.meta.loaded_addresses.readonly)
                {
                    if let Some(index) = self.by_address.get_mut(key) {
                        index.remove(&(t.slot, t.seq));
                    }
                }
            }
        }
        self.working_signatures.clear();
        let mut removed = Vec::new();
        {
            let bank_forks = self.bank_forks.clone();
            let mut forks = bank_forks.write().unwrap_or_else(|e| e.into_inner());
            for s in abandoned_slots.iter().rev() {
                self.blocks.remove(s);
                self.skipped.insert(*s);
                if let Some(bank) = forks.remove(*s) {
                    removed.push((*s, bank.bank_id()));
                }
            }
            forks.root_bank().remove_unrooted_slots(&removed);
        }
        self.confirmed = parent_slot;
        let new_slot = working_slot + 1;
        self.open_working(parent, new_slot);

        let mut replayed = Vec::new();
        let mut lost = Vec::new();
        for (sig, tx) in to_replay {
            match self.execute(tx) {
                Ok(_) => replayed.push(sig),
                Err(_) => lost.push(sig),
            }
        }
        Ok(DropReport {
            abandoned_slots,
            new_slot,
            replayed,
            lost,
        })
    }

    /// Accounts worth persisting: everything a fresh genesis does not recreate itself.
    pub fn snapshot(&self) -> Snapshot {
        let bank = self.bank(Commitment::Confirmed);
        let skip_owners = [
            solana_sdk_ids::sysvar::ID,
            solana_sdk_ids::native_loader::ID,
            solana_sdk_ids::bpf_loader::ID,
            solana_sdk_ids::bpf_loader_deprecated::ID,
            solana_sdk_ids::bpf_loader_upgradeable::ID,
            solana_sdk_ids::loader_v4::ID,
            solana_sdk_ids::feature::ID,
            solana_sdk_ids::vote::ID,
            solana_sdk_ids::stake::ID,
            solana_sdk_ids::config::ID,
        ];
        let accounts = bank
            .get_all_accounts(true)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, account, _)| {
                !account.executable() && !skip_owners.contains(account.owner())
            })
            .map(|(address, account, _)| (address, account.into()))
            .collect();
        Snapshot {
            slot: bank.slot(),
            faucet_secret: *self.faucet.secret_bytes(),
            accounts,
        }
    }
}

pub fn map_inner_instructions(list: InnerInstructionsList) -> Vec<InnerInstructions> {
    list.into_iter()
        .enumerate()
        .filter(|(_, ixs)| !ixs.is_empty())
        .map(|(index, ixs)| InnerInstructions {
            index: u8::try_from(index).unwrap_or(u8::MAX),
            instructions: ixs
                .into_iter()
                .map(|ix| InnerInstruction {
                    instruction: ix.instruction,
                    stack_height: Some(u32::from(ix.stack_height)),
                })
                .collect(),
        })
        .collect()
}

pub fn map_token_balances(balances: Vec<SvmTokenInfo>) -> Vec<TransactionTokenBalance> {
    balances
        .into_iter()
        .map(|b| TransactionTokenBalance {
            account_index: b.account_index,
            mint: b.mint.to_string(),
            ui_token_amount: token_amount(b.amount, b.decimals),
            owner: b.owner.to_string(),
            program_id: b.program_id.to_string(),
        })
        .collect()
}

/// `SetComputeUnitPrice` (discriminator 3, u64 LE micro-lamports) of the compute-budget program.
fn compute_unit_price(message: &VersionedMessage) -> u64 {
    let keys = message.static_account_keys();
    message
        .instructions()
        .iter()
        .filter(|ix| keys.get(usize::from(ix.program_id_index)) == Some(&COMPUTE_BUDGET_PROGRAM))
        .filter_map(|ix| match ix.data.as_slice() {
            [3, rest @ ..] if rest.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(rest);
                Some(u64::from_le_bytes(b))
            }
            _ => None,
        })
        .next_back()
        .unwrap_or(0)
}

/// Undoes program-test's native-builtin log artefacts so logs read like a validator's:
/// `invoke_builtin_function` repeats the runtime's `invoke`/`success` lines of the builtin, and
/// the CPI stub logs the callee's `invoke` at the caller's height before the runtime does and a
/// `success` after it returns. A line is real when it opens a frame one level deeper
/// (`invoke [depth + 1]`) or closes the top frame; the extras are dropped. Logs of BPF
/// programs never contain such extras and pass through unchanged.
pub fn normalize_logs(logs: Vec<String>) -> Vec<String> {
    struct Frame {
        program: String,
        extra_closes: usize,
    }
    fn parse_invoke(line: &str) -> Option<(&str, usize)> {
        let rest = line.strip_prefix("Program ")?;
        let (program, height) = rest.split_once(" invoke [")?;
        let height = height.strip_suffix(']')?.parse().ok()?;
        Some((program, height))
    }
    fn parse_close(line: &str) -> Option<&str> {
        let rest = line.strip_prefix("Program ")?;
        let (program, tail) = rest.split_once(' ')?;
        (tail == "success" || tail.starts_with("failed: ")).then_some(program)
    }
    let mut frames: Vec<Frame> = Vec::new();
    let mut out = Vec::with_capacity(logs.len());
    for line in logs {
        if let Some((program, height)) = parse_invoke(&line) {
            if height == frames.len() + 1 {
                frames.push(Frame {
                    program: program.to_string(),
                    extra_closes: 0,
                });
                out.push(line);
            } else if height == frames.len() && height > 0 {
                // A repeated or early line at the current depth: its close line is extra too.
                if let Some(top) = frames.last_mut() {
                    top.extra_closes += 1;
                }
            } else {
                out.push(line);
            }
        } else if let Some(program) = parse_close(&line) {
            match frames.last_mut() {
                Some(top) if top.program == program && top.extra_closes > 0 => {
                    top.extra_closes -= 1;
                }
                Some(top) if top.program == program => {
                    frames.pop();
                    out.push(line);
                }
                // The stub's close for a callee whose frame already ended.
                Some(top) if top.extra_closes > 0 => top.extra_closes -= 1,
                Some(_) => {}
                None => out.push(line),
            }
        } else {
            out.push(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize_logs;

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn native_builtin_artefacts_are_removed() {
        // As recorded for advancia-pay initialize_config (system CPI + event self-CPI).
        let raw = v(&[
            "Program P invoke [1]",
            "Program P invoke [1]",
            "Program S invoke [1]",
            "Program S invoke [2]",
            "Program S success",
            "Program S success",
            "Program P invoke [1]",
            "Program P invoke [2]",
            "Program P invoke [2]",
            "Program P success",
            "Program P success",
            "Program P success",
            "Program P success",
            "Program P success",
        ]);
        assert_eq!(
            normalize_logs(raw),
            v(&[
                "Program P invoke [1]",
                "Program S invoke [2]",
                "Program S success",
                "Program P invoke [2]",
                "Program P success",
                "Program P success",
            ])
        );
    }

    #[test]
    fn bpf_logs_pass_through() {
        let logs = v(&[
            "Program T invoke [1]",
            "Program log: Instruction: Transfer",
            "Program T consumed 4644 of 200000 compute units",
            "Program T success",
            "Program T invoke [1]",
            "Program T failed: custom program error: 0x1",
        ]);
        assert_eq!(normalize_logs(logs.clone()), logs);
    }
}
