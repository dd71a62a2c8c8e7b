-- Indexer schema: one row per decoded event, keyed by (chain, signature, ix_index, inner_index)
-- where ix_index is the top-level instruction and inner_index the event's position among its
-- inner instructions. u64 amounts are numeric(20,0) (bigint cannot hold them).

CREATE TABLE cursors (
    source text PRIMARY KEY,
    signature text,
    slot bigint,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every program transaction seen, with or without events (the cursor can be rewound to any).
CREATE TABLE transactions (
    chain text NOT NULL,
    signature text NOT NULL,
    slot bigint NOT NULL,
    commitment text NOT NULL CHECK (commitment IN ('confirmed', 'finalized')),
    failed boolean NOT NULL,
    block_time bigint,
    event_count integer NOT NULL,
    indexed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, signature)
);
CREATE INDEX transactions_pending ON transactions (chain, slot) WHERE commitment <> 'finalized';

-- Undone transactions (dropped by the chain before finality), for audit.
CREATE TABLE rollbacks (
    id bigserial PRIMARY KEY,
    chain text NOT NULL,
    signature text NOT NULL,
    slot bigint NOT NULL,
    events_removed integer NOT NULL,
    undone_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payments (
    chain text NOT NULL, signature text NOT NULL, ix_index integer NOT NULL, inner_index integer NOT NULL,
    slot bigint NOT NULL, commitment text NOT NULL, block_time bigint,
    payment text NOT NULL, payer text NOT NULL, facility text NOT NULL, invoice_id text NOT NULL,
    reference text NOT NULL, mint text NOT NULL,
    amount numeric(20,0) NOT NULL, fee numeric(20,0) NOT NULL, paid_at bigint NOT NULL,
    ledgered boolean NOT NULL DEFAULT false,
    PRIMARY KEY (chain, signature, ix_index, inner_index),
    FOREIGN KEY (chain, signature) REFERENCES transactions ON DELETE CASCADE
);
CREATE INDEX payments_facility ON payments (facility, slot, signature, ix_index, inner_index);
CREATE INDEX payments_payer ON payments (payer, slot, signature, ix_index, inner_index);

CREATE TABLE refunds (
    chain text NOT NULL, signature text NOT NULL, ix_index integer NOT NULL, inner_index integer NOT NULL,
    slot bigint NOT NULL, commitment text NOT NULL, block_time bigint,
    payment text NOT NULL, facility text NOT NULL, payer text NOT NULL, mint text NOT NULL,
    amount numeric(20,0) NOT NULL, refunded_total numeric(20,0) NOT NULL,
    ledgered boolean NOT NULL DEFAULT false,
    PRIMARY KEY (chain, signature, ix_index, inner_index),
    FOREIGN KEY (chain, signature) REFERENCES transactions ON DELETE CASCADE
);
CREATE INDEX refunds_facility ON refunds (facility, slot);

-- Escrow lifecycle events; kind = opened | released | refunded | closed. Later events carry
-- only the escrow address: facility and mint come from its `opened` row.
CREATE TABLE escrows (
    chain text NOT NULL, signature text NOT NULL, ix_index integer NOT NULL, inner_index integer NOT NULL,
    slot bigint NOT NULL, commitment text NOT NULL, block_time bigint,
    kind text NOT NULL CHECK (kind IN ('opened', 'released', 'refunded', 'closed')),
    escrow text NOT NULL, actor text NOT NULL,
    payer text, facility text, arbiter text, mint text,
    amount numeric(20,0) NOT NULL DEFAULT 0, fee numeric(20,0) NOT NULL DEFAULT 0,
    released_total numeric(20,0), expires_at bigint,
    ledgered boolean NOT NULL DEFAULT false,
    PRIMARY KEY (chain, signature, ix_index, inner_index),
    FOREIGN KEY (chain, signature) REFERENCES transactions ON DELETE CASCADE
);
CREATE INDEX escrows_escrow ON escrows (escrow, slot);

-- kind = registered | payout_updated | deactivated.
CREATE TABLE facilities (
    chain text NOT NULL, signature text NOT NULL, ix_index integer NOT NULL, inner_index integer NOT NULL,
    slot bigint NOT NULL, commitment text NOT NULL, block_time bigint,
    kind text NOT NULL, facility text NOT NULL, facility_id text, authority text, payout_wallet text,
    PRIMARY KEY (chain, signature, ix_index, inner_index),
    FOREIGN KEY (chain, signature) REFERENCES transactions ON DELETE CASCADE
);

-- kind = written | revoked.
CREATE TABLE attestations (
    chain text NOT NULL, signature text NOT NULL, ix_index integer NOT NULL, inner_index integer NOT NULL,
    slot bigint NOT NULL, commitment text NOT NULL, block_time bigint,
    kind text NOT NULL, wallet text NOT NULL, level smallint, expires_at bigint,
    PRIMARY KEY (chain, signature, ix_index, inner_index),
    FOREIGN KEY (chain, signature) REFERENCES transactions ON DELETE CASCADE
);

CREATE TABLE settlement_commitments (
    chain text NOT NULL, signature text NOT NULL, ix_index integer NOT NULL, inner_index integer NOT NULL,
    slot bigint NOT NULL, commitment text NOT NULL, block_time bigint,
    batch_number numeric(20,0) NOT NULL, root text NOT NULL, entry_count numeric(20,0) NOT NULL,
    totals jsonb NOT NULL,
    PRIMARY KEY (chain, signature, ix_index, inner_index),
    FOREIGN KEY (chain, signature) REFERENCES transactions ON DELETE CASCADE
);

-- Config, admin and asset events, kept whole.
CREATE TABLE admin_events (
    chain text NOT NULL, signature text NOT NULL, ix_index integer NOT NULL, inner_index integer NOT NULL,
    slot bigint NOT NULL, commitment text NOT NULL, block_time bigint,
    kind text NOT NULL, body jsonb NOT NULL,
    PRIMARY KEY (chain, signature, ix_index, inner_index),
    FOREIGN KEY (chain, signature) REFERENCES transactions ON DELETE CASCADE
);
