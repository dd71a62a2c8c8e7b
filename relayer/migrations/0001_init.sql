-- Bridge messages observed by validators, their attestations, and the relayer's delivery state.
-- Domains are u32 (bigint here), sequences u64 (bigint; > i64::MAX is refused by the code),
-- amounts uint256 (numeric(78,0)), hashes/addresses bytea of fixed length.

CREATE TABLE messages (
    id bytea PRIMARY KEY CHECK (length(id) = 32),
    origin_domain bigint NOT NULL,
    sequence bigint NOT NULL,
    sender bytea NOT NULL CHECK (length(sender) = 32),
    destination_domain bigint NOT NULL,
    recipient bytea NOT NULL CHECK (length(recipient) = 32),
    asset bytea NOT NULL CHECK (length(asset) = 32),
    amount numeric(78, 0) NOT NULL CHECK (amount >= 0),
    first_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_destination ON messages (destination_domain, first_seen_at);

-- What each validator saw at its confirmation depth (it only signs its own observations).
CREATE TABLE observations (
    message_id bytea NOT NULL REFERENCES messages (id),
    validator bytea NOT NULL CHECK (length(validator) = 20),
    origin_block bigint NOT NULL,
    origin_tx bytea NOT NULL,
    observed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, validator)
);

-- The equivocation guard: the first message a validator signs for (origin, sequence) pins it;
-- signing a different message for the same slot violates the primary key.
CREATE TABLE signing_claims (
    origin_domain bigint NOT NULL,
    sequence bigint NOT NULL,
    validator bytea NOT NULL CHECK (length(validator) = 20),
    message_id bytea NOT NULL REFERENCES messages (id),
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (origin_domain, sequence, validator)
);

-- Messages a validator refused to sign (another message already holds their slot).
CREATE TABLE signing_refusals (
    message_id bytea NOT NULL REFERENCES messages (id),
    validator bytea NOT NULL CHECK (length(validator) = 20),
    refused_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, validator)
);

-- One attestation per (message, validator, destination set version): a set change needs
-- fresh signatures for the same message.
CREATE TABLE signatures (
    message_id bytea NOT NULL REFERENCES messages (id),
    validator bytea NOT NULL CHECK (length(validator) = 20),
    set_version bigint NOT NULL,
    signature bytea NOT NULL CHECK (length(signature) = 65),
    signed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, validator, set_version),
    FOREIGN KEY (message_id, validator) REFERENCES observations (message_id, validator)
);

-- Per validator and source: the next origin block to scan.
CREATE TABLE validator_cursors (
    validator bytea NOT NULL CHECK (length(validator) = 20),
    origin_domain bigint NOT NULL,
    source text NOT NULL,
    next_block bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (validator, origin_domain, source)
);

-- Relayer queue and retry state. The signed transaction is stored BEFORE it is broadcast, so
-- a restart rebroadcasts the same bytes (same hash, same nonce) instead of a second delivery.
CREATE TABLE deliveries (
    message_id bytea PRIMARY KEY REFERENCES messages (id),
    destination_domain bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'submitted', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_reason text,
    last_detail text,
    tx_hash bytea,
    raw_tx bytea,
    tx_nonce bigint,
    submitted_at timestamptz,
    delivered_at timestamptz,
    delivered_block bigint,
    gas_used bigint,
    enqueued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_due ON deliveries (destination_domain, next_attempt_at)
    WHERE status IN ('pending', 'submitted');

-- Every failed attempt, for failures-by-reason metrics and the `stuck` report.
CREATE TABLE delivery_failures (
    id bigserial PRIMARY KEY,
    message_id bytea NOT NULL REFERENCES messages (id),
    reason text NOT NULL,
    detail text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_failures_reason ON delivery_failures (reason);
