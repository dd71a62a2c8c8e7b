//! The state machine: validates and applies accounts and transfers against an in-memory
//! view of the locked rows, assigning timestamps, seqs and chain hashes. No I/O here:
//! the writer loads the view, runs this, and writes the result in bulk.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::audit::{self, Hash};
use crate::types::{
    Account, AccountError, Balance, ExternalRef, NewAccount, NewTransfer, Transfer, TransferError,
    account_flags as af, transfer_flags as tf,
};

/// The chain head: last seq, last hash, last timestamp.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: Hash,
    pub timestamp: u64,
}

#[derive(Default)]
pub(crate) struct State {
    /// Locked accounts (current balances) plus accounts created in this batch.
    pub accounts: HashMap<u128, Account>,
    /// Known transfers: stored ones whose ids the batch mentions, plus those created here.
    pub transfers: HashMap<u128, Transfer>,
    /// pending id -> flags of the transfer that resolved it.
    pub resolved: HashMap<u128, u32>,
    pub ext_refs: HashSet<ExternalRef>,
    pub ledgers: HashSet<u32>,
    pub new_accounts: Vec<(Account, Hash, Hash)>,
    pub new_transfers: Vec<(Transfer, Hash, Hash)>,
    pub dirty: HashSet<u128>,
    pub head: Option<Head>,
    /// Wall clock of the batch (ns); timestamps are max(now, last + 1).
    pub now: u64,
}

/// Id of the void the ledger writes when a pending transfer times out: derived from the
/// pending id so a repeated expiry run cannot create a second one.
pub fn expiry_id(pending_id: u128) -> u128 {
    let d = Sha256::new()
        .chain_update(b"advancia-ledger/expiry")
        .chain_update(pending_id.to_be_bytes())
        .finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_be_bytes(b)
}

struct Snapshot {
    head: Option<Head>,
    accounts: HashMap<u128, Account>,
    new_transfers: usize,
}

impl State {
    fn head(&self) -> Head {
        self.head.unwrap_or(Head {
            seq: 0,
            hash: audit::GENESIS,
            timestamp: 0,
        })
    }

    fn next_timestamp(&self) -> u64 {
        self.now.max(self.head().timestamp.saturating_add(1))
    }

    fn append(&mut self, bytes: &[u8], timestamp: u64) -> (u64, Hash, Hash) {
        let h = self.head();
        let hash = audit::chain_hash(&h.hash, bytes);
        self.head = Some(Head {
            seq: h.seq + 1,
            hash,
            timestamp,
        });
        (h.seq + 1, h.hash, hash)
    }

    pub fn create_account(&mut self, n: &NewAccount) -> Result<Account, AccountError> {
        if n.id == 0 {
            return Err(AccountError::IdMustNotBeZero);
        }
        if n.id == u128::MAX {
            return Err(AccountError::IdMustNotBeIntMax);
        }
        if n.flags & !af::CLIENT != 0 {
            return Err(AccountError::ReservedFlag);
        }
        if n.flags & af::CLIENT == af::CLIENT {
            return Err(AccountError::FlagsAreMutuallyExclusive);
        }
        if n.ledger == 0 {
            return Err(AccountError::LedgerMustNotBeZero);
        }
        if n.owner.id.is_empty() {
            return Err(AccountError::OwnerIdMustNotBeEmpty);
        }
        if let Some(existing) = self.accounts.get(&n.id) {
            return if existing.same_body(n) {
                Ok(existing.clone())
            } else {
                Err(AccountError::ExistsWithDifferentFields)
            };
        }
        if !self.ledgers.contains(&n.ledger) {
            return Err(AccountError::LedgerNotFound);
        }
        let timestamp = self.next_timestamp();
        let mut a = Account {
            id: n.id,
            ledger: n.ledger,
            kind: n.kind,
            owner: n.owner.clone(),
            flags: n.flags,
            jurisdiction: n.jurisdiction.clone(),
            user_data: n.user_data,
            balance: Balance::default(),
            timestamp,
            seq: 0,
        };
        let (seq, prev, hash) = self.append(&audit::account_bytes(&a), timestamp);
        a.seq = seq;
        self.accounts.insert(a.id, a.clone());
        self.new_accounts.push((a.clone(), prev, hash));
        Ok(a)
    }

    /// Applies transfers in order; linked chains commit all or none (TigerBeetle semantics).
    pub fn create_transfers(
        &mut self,
        batch: &[NewTransfer],
    ) -> Vec<Result<Transfer, TransferError>> {
        let mut results = Vec::with_capacity(batch.len());
        let mut i = 0;
        while i < batch.len() {
            if batch[i].flags & tf::LINKED == 0 {
                results.push(self.create_transfer(&batch[i]));
                i += 1;
                continue;
            }
            let mut end = i;
            while end < batch.len() && batch[end].flags & tf::LINKED != 0 {
                end += 1;
            }
            let open = end == batch.len();
            let end = end.min(batch.len() - 1);
            let snap = self.snapshot(&batch[i..=end]);
            let mut ok = Vec::new();
            let mut failed = None;
            for (k, t) in batch.iter().enumerate().take(end + 1).skip(i) {
                if open && k == end {
                    failed = Some((k, TransferError::LinkedEventChainOpen));
                    break;
                }
                match self.create_transfer(t) {
                    Ok(tr) => ok.push(Ok(tr)),
                    Err(e) => {
                        failed = Some((k, e));
                        break;
                    }
                }
            }
            match failed {
                None => results.extend(ok),
                Some((k, e)) => {
                    self.restore(snap);
                    for m in i..=end {
                        results.push(Err(if m == k {
                            e
                        } else {
                            TransferError::LinkedEventFailed
                        }));
                    }
                }
            }
            i = end + 1;
        }
        results
    }

    fn snapshot(&self, chain: &[NewTransfer]) -> Snapshot {
        let mut accounts = HashMap::new();
        for t in chain {
            let mut ids = vec![t.debit_account_id, t.credit_account_id];
            if let Some(p) = self.transfers.get(&t.pending_id) {
                ids.extend([p.debit_account_id, p.credit_account_id]);
            }
            for id in ids {
                if let Some(a) = self.accounts.get(&id) {
                    accounts.insert(id, a.clone());
                }
            }
        }
        Snapshot {
            head: self.head,
            accounts,
            new_transfers: self.new_transfers.len(),
        }
    }

    fn restore(&mut self, snap: Snapshot) {
        for (t, _, _) in self.new_transfers.drain(snap.new_transfers..) {
            self.transfers.remove(&t.id);
            if t.pending_id != 0 {
                self.resolved.remove(&t.pending_id);
            }
            if let Some(r) = &t.external_ref {
                self.ext_refs.remove(r);
            }
        }
        self.accounts.extend(snap.accounts);
        self.head = snap.head;
    }

    pub fn create_transfer(&mut self, t: &NewTransfer) -> Result<Transfer, TransferError> {
        use TransferError as E;
        if t.flags & !tf::CLIENT != 0 {
            return Err(E::ReservedFlag);
        }
        let phase = t.flags & (tf::PENDING | tf::POST_PENDING | tf::VOID_PENDING);
        if phase.count_ones() > 1 {
            return Err(E::FlagsAreMutuallyExclusive);
        }
        if t.id == 0 {
            return Err(E::IdMustNotBeZero);
        }
        if t.id == u128::MAX {
            return Err(E::IdMustNotBeIntMax);
        }
        // Idempotency first: a retry must get the original answer even if state moved on.
        if let Some(existing) = self.transfers.get(&t.id) {
            return if existing.same_body(t) {
                Ok(existing.clone())
            } else {
                Err(E::ExistsWithDifferentFields)
            };
        }
        if let Some(r) = &t.external_ref {
            if r.chain.is_empty() || r.signature.is_empty() {
                return Err(E::ExternalRefInvalid);
            }
            if self.ext_refs.contains(r) {
                return Err(E::ExternalRefExists);
            }
        }
        let timestamp = self.next_timestamp();
        let record = if phase & (tf::POST_PENDING | tf::VOID_PENDING) != 0 {
            self.resolve(t, timestamp)?
        } else {
            self.single(t, timestamp)?
        };
        Ok(self.commit(record))
    }

    fn commit(&mut self, mut record: Transfer) -> Transfer {
        let (seq, prev, hash) = self.append(&audit::transfer_bytes(&record), record.timestamp);
        record.seq = seq;
        if record.pending_id != 0 {
            self.resolved.insert(record.pending_id, record.flags);
        }
        if let Some(r) = &record.external_ref {
            self.ext_refs.insert(r.clone());
        }
        self.dirty.insert(record.debit_account_id);
        self.dirty.insert(record.credit_account_id);
        self.transfers.insert(record.id, record.clone());
        self.new_transfers.push((record.clone(), prev, hash));
        record
    }

    fn single(&mut self, t: &NewTransfer, timestamp: u64) -> Result<Transfer, TransferError> {
        use TransferError as E;
        if t.debit_account_id == 0 {
            return Err(E::DebitAccountIdMustNotBeZero);
        }
        if t.credit_account_id == 0 {
            return Err(E::CreditAccountIdMustNotBeZero);
        }
        if t.debit_account_id == t.credit_account_id {
            return Err(E::AccountsMustBeDifferent);
        }
        if t.pending_id != 0 {
            return Err(E::PendingIdMustBeZero);
        }
        let pending = t.flags & tf::PENDING != 0;
        if t.timeout != 0 && !pending {
            return Err(E::TimeoutReservedForPendingTransfer);
        }
        if t.amount == 0 {
            return Err(E::AmountMustNotBeZero);
        }
        if t.ledger == 0 {
            return Err(E::LedgerMustNotBeZero);
        }
        if t.code == 0 {
            return Err(E::CodeMustNotBeZero);
        }
        let dr = self
            .accounts
            .get(&t.debit_account_id)
            .ok_or(E::DebitAccountNotFound)?;
        let cr = self
            .accounts
            .get(&t.credit_account_id)
            .ok_or(E::CreditAccountNotFound)?;
        if dr.ledger != cr.ledger {
            return Err(E::AccountsMustHaveTheSameLedger);
        }
        if t.ledger != dr.ledger {
            return Err(E::TransferMustHaveTheSameLedgerAsAccounts);
        }
        if dr.is_closed() {
            return Err(E::DebitAccountClosed);
        }
        if cr.is_closed() {
            return Err(E::CreditAccountClosed);
        }
        let (mut db, mut cb) = (dr.balance, cr.balance);
        let amount = t.amount;
        if pending {
            db.debits_pending = db
                .debits_pending
                .checked_add(amount)
                .ok_or(E::OverflowsDebitsPending)?;
            cb.credits_pending = cb
                .credits_pending
                .checked_add(amount)
                .ok_or(E::OverflowsCreditsPending)?;
        } else {
            db.debits_posted = db
                .debits_posted
                .checked_add(amount)
                .ok_or(E::OverflowsDebitsPosted)?;
            cb.credits_posted = cb
                .credits_posted
                .checked_add(amount)
                .ok_or(E::OverflowsCreditsPosted)?;
        }
        if dr.flags & af::DEBITS_MUST_NOT_EXCEED_CREDITS != 0
            && db
                .debits_pending
                .checked_add(db.debits_posted)
                .is_none_or(|d| d > db.credits_posted)
        {
            return Err(E::ExceedsCredits);
        }
        if cr.flags & af::CREDITS_MUST_NOT_EXCEED_DEBITS != 0
            && cb
                .credits_pending
                .checked_add(cb.credits_posted)
                .is_none_or(|c| c > cb.debits_posted)
        {
            return Err(E::ExceedsDebits);
        }
        self.set_balance(t.debit_account_id, db);
        self.set_balance(t.credit_account_id, cb);
        Ok(Transfer {
            id: t.id,
            debit_account_id: t.debit_account_id,
            credit_account_id: t.credit_account_id,
            amount,
            pending_id: 0,
            ledger: t.ledger,
            code: t.code,
            flags: t.flags,
            timeout: t.timeout,
            expires_at: (pending && t.timeout > 0)
                .then(|| timestamp.saturating_add(u64::from(t.timeout) * 1_000_000_000)),
            user_data: t.user_data,
            external_ref: t.external_ref.clone(),
            timestamp,
            seq: 0,
        })
    }

    fn set_balance(&mut self, id: u128, b: Balance) {
        if let Some(a) = self.accounts.get_mut(&id) {
            a.balance = b;
        }
    }

    fn resolve(&mut self, t: &NewTransfer, timestamp: u64) -> Result<Transfer, TransferError> {
        use TransferError as E;
        let post = t.flags & tf::POST_PENDING != 0;
        if t.pending_id == 0 {
            return Err(E::PendingIdMustNotBeZero);
        }
        if t.pending_id == t.id {
            return Err(E::PendingIdMustBeDifferent);
        }
        if t.timeout != 0 {
            return Err(E::TimeoutReservedForPendingTransfer);
        }
        let p = self
            .transfers
            .get(&t.pending_id)
            .ok_or(E::PendingTransferNotFound)?;
        if !p.is_pending() {
            return Err(E::PendingTransferNotPending);
        }
        if t.debit_account_id != 0 && t.debit_account_id != p.debit_account_id {
            return Err(E::PendingTransferHasDifferentDebitAccountId);
        }
        if t.credit_account_id != 0 && t.credit_account_id != p.credit_account_id {
            return Err(E::PendingTransferHasDifferentCreditAccountId);
        }
        if t.ledger != 0 && t.ledger != p.ledger {
            return Err(E::PendingTransferHasDifferentLedger);
        }
        if t.code != 0 && t.code != p.code {
            return Err(E::PendingTransferHasDifferentCode);
        }
        let amount = if post {
            match t.amount {
                0 => p.amount,
                a if a > p.amount => return Err(E::ExceedsPendingTransferAmount),
                a => a,
            }
        } else {
            if t.amount != 0 && t.amount != p.amount {
                return Err(E::PendingTransferHasDifferentAmount);
            }
            p.amount
        };
        if let Some(flags) = self.resolved.get(&t.pending_id) {
            return Err(if flags & tf::POST_PENDING != 0 {
                E::PendingTransferAlreadyPosted
            } else if flags & tf::EXPIRED != 0 {
                E::PendingTransferExpired
            } else {
                E::PendingTransferAlreadyVoided
            });
        }
        if p.expires_at.is_some_and(|e| e <= timestamp) {
            return Err(E::PendingTransferExpired);
        }
        let p = p.clone();
        self.release(&p, post.then_some(amount))?;
        Ok(Transfer {
            id: t.id,
            debit_account_id: p.debit_account_id,
            credit_account_id: p.credit_account_id,
            amount,
            pending_id: p.id,
            ledger: p.ledger,
            code: if t.code == 0 { p.code } else { t.code },
            flags: t.flags,
            timeout: 0,
            expires_at: None,
            user_data: t.user_data,
            external_ref: t.external_ref.clone(),
            timestamp,
            seq: 0,
        })
    }

    /// Releases a pending reservation, posting `post` of it when given.
    fn release(&mut self, p: &Transfer, post: Option<u128>) -> Result<(), TransferError> {
        use TransferError as E;
        let mut db = self
            .accounts
            .get(&p.debit_account_id)
            .ok_or(E::DebitAccountNotFound)?
            .balance;
        let mut cb = self
            .accounts
            .get(&p.credit_account_id)
            .ok_or(E::CreditAccountNotFound)?
            .balance;
        // The reservation is part of these sums by construction; a shortfall means the
        // projection was tampered with, which must not panic or wrap.
        db.debits_pending = db
            .debits_pending
            .checked_sub(p.amount)
            .ok_or(E::OverflowsDebitsPending)?;
        cb.credits_pending = cb
            .credits_pending
            .checked_sub(p.amount)
            .ok_or(E::OverflowsCreditsPending)?;
        if let Some(amount) = post {
            db.debits_posted = db
                .debits_posted
                .checked_add(amount)
                .ok_or(E::OverflowsDebitsPosted)?;
            cb.credits_posted = cb
                .credits_posted
                .checked_add(amount)
                .ok_or(E::OverflowsCreditsPosted)?;
        }
        self.set_balance(p.debit_account_id, db);
        self.set_balance(p.credit_account_id, cb);
        Ok(())
    }

    /// Voids an expired pending transfer (caller checked it is unresolved and due).
    pub fn expire(&mut self, p: &Transfer) -> Option<Transfer> {
        if self.resolved.contains_key(&p.id) || !p.is_pending() {
            return None;
        }
        let timestamp = self.next_timestamp();
        if p.expires_at.is_none_or(|e| e > timestamp) {
            return None;
        }
        self.release(p, None).ok()?;
        let record = Transfer {
            id: expiry_id(p.id),
            debit_account_id: p.debit_account_id,
            credit_account_id: p.credit_account_id,
            amount: p.amount,
            pending_id: p.id,
            ledger: p.ledger,
            code: p.code,
            flags: tf::VOID_PENDING | tf::EXPIRED,
            timeout: 0,
            expires_at: None,
            user_data: p.user_data,
            external_ref: None,
            timestamp,
            seq: 0,
        };
        Some(self.commit(record))
    }

    /// Sets the closed flag; only an account without pending amounts can be closed.
    pub fn close_account(&mut self, id: u128) -> Result<Account, crate::LedgerError> {
        let a = self
            .accounts
            .get_mut(&id)
            .ok_or(crate::LedgerError::AccountNotFound(id))?;
        if a.balance.debits_pending != 0 || a.balance.credits_pending != 0 {
            return Err(crate::LedgerError::AccountHasPendingBalance(id));
        }
        a.flags |= af::CLOSED;
        let a = a.clone();
        self.dirty.insert(id);
        Ok(a)
    }
}
