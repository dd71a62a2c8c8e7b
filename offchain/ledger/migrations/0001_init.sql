-- Double-entry ledger. The transfer log is the source of truth; account balances are a
-- projection of it (rebuildable). Accounts and transfers share one hash chain (column
-- `seq`), so the audit trail covers every row that carries meaning.
-- u128 ids are stored as uuid (byte order = numeric order); u128 amounts as numeric(39,0),
-- always bound and read as text so nothing passes through a float.

CREATE TABLE ledgers (
    id bigint PRIMARY KEY CHECK (id > 0 AND id <= 4294967295),
    code text NOT NULL UNIQUE,
    scale smallint NOT NULL CHECK (scale BETWEEN 0 AND 38)
);

CREATE TABLE chain_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_seq bigint NOT NULL,
    last_hash bytea NOT NULL,
    last_timestamp bigint NOT NULL
);
INSERT INTO chain_head (last_seq, last_hash, last_timestamp)
VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000', 0);

CREATE TABLE accounts (
    id uuid PRIMARY KEY,
    seq bigint NOT NULL UNIQUE,
    ledger bigint NOT NULL REFERENCES ledgers (id),
    kind smallint NOT NULL,
    flags integer NOT NULL,
    owner_kind smallint NOT NULL,
    owner_id text NOT NULL,
    jurisdiction text,
    user_data uuid NOT NULL,
    debits_pending numeric(39, 0) NOT NULL DEFAULT 0,
    debits_posted numeric(39, 0) NOT NULL DEFAULT 0,
    credits_pending numeric(39, 0) NOT NULL DEFAULT 0,
    credits_posted numeric(39, 0) NOT NULL DEFAULT 0,
    timestamp bigint NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL
);
CREATE INDEX accounts_ledger ON accounts (ledger, kind);

CREATE TABLE transfers (
    id uuid PRIMARY KEY,
    seq bigint NOT NULL UNIQUE,
    debit_account_id uuid NOT NULL,
    credit_account_id uuid NOT NULL,
    amount numeric(39, 0) NOT NULL,
    pending_id uuid,
    ledger bigint NOT NULL,
    code integer NOT NULL,
    flags integer NOT NULL,
    timeout bigint NOT NULL,
    expires_at bigint,
    user_data uuid NOT NULL,
    ext_chain text,
    ext_signature text,
    ext_ix_index bigint,
    timestamp bigint NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL
);
-- At most one post/void/expiry per pending transfer, enforced by the store as well.
CREATE UNIQUE INDEX transfers_pending_id ON transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX transfers_debit ON transfers (debit_account_id, seq);
CREATE INDEX transfers_credit ON transfers (credit_account_id, seq);
CREATE UNIQUE INDEX transfers_ext ON transfers (ext_chain, ext_signature, ext_ix_index)
    WHERE ext_chain IS NOT NULL;
CREATE INDEX transfers_expiry ON transfers (expires_at) WHERE expires_at IS NOT NULL;

-- Append-only: the log rejects UPDATE, DELETE and TRUNCATE; accounts reject changes to
-- any column except the balance projection and the closed flag (bit 4).
CREATE FUNCTION reject_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger.% is append-only (% rejected)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION reject_log_change();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION reject_log_change();
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION reject_log_change();
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION reject_log_change();

CREATE FUNCTION reject_account_identity_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.seq <> OLD.seq OR NEW.ledger <> OLD.ledger
       OR NEW.kind <> OLD.kind OR (NEW.flags & ~16) <> (OLD.flags & ~16)
       OR NEW.owner_kind <> OLD.owner_kind OR NEW.owner_id <> OLD.owner_id
       OR NEW.jurisdiction IS DISTINCT FROM OLD.jurisdiction
       OR NEW.user_data <> OLD.user_data OR NEW.timestamp <> OLD.timestamp
       OR NEW.prev_hash <> OLD.prev_hash OR NEW.hash <> OLD.hash THEN
        RAISE EXCEPTION 'ledger.accounts: only balances and the closed flag may change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_identity_immutable BEFORE UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION reject_account_identity_change();

-- Settlement batches: consecutive, gap-free seq ranges of the transfer log.
CREATE TABLE settlement_batches (
    batch_number bigint PRIMARY KEY CHECK (batch_number > 0),
    first_seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    entry_count bigint NOT NULL CHECK (entry_count > 0),
    depth integer NOT NULL,
    root bytea NOT NULL,
    totals jsonb NOT NULL,
    closed_at bigint NOT NULL
);

-- Tax on fee revenue: rate in basis points per jurisdiction, effective from a timestamp (ns).
CREATE TABLE tax_rates (
    jurisdiction text NOT NULL,
    effective_from bigint NOT NULL,
    rate_bps integer NOT NULL CHECK (rate_bps BETWEEN 0 AND 10000),
    PRIMARY KEY (jurisdiction, effective_from)
);
