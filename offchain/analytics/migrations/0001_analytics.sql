-- Analytics (read side): rollups maintained incrementally from the indexer's event stream
-- (indexer.*.seq, ADR 0010) and the payment intents' status log, behind cursors that move
-- in the same transaction as the rollup rows (exactly once).

CREATE TABLE cursors (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- What each counted (finalized) indexer event added to the buckets, so a rollback or a
-- re-streamed row (new slot/block time) subtracts exactly what was added.
-- kind: payment | refund | release | escrow_refund.
CREATE TABLE counted_events (
    chain text NOT NULL, signature text NOT NULL, ix_index integer NOT NULL, inner_index integer NOT NULL,
    kind text NOT NULL,
    at timestamptz NOT NULL,
    facility text NOT NULL,
    mint text NOT NULL,
    amount numeric NOT NULL,
    fee numeric NOT NULL,
    PRIMARY KEY (chain, signature, ix_index, inner_index)
);

-- Latest terminal outcome of each payment intent (finalized = success; failed, expired).
CREATE TABLE intent_outcomes (
    payment_id uuid PRIMARY KEY,
    outcome text NOT NULL CHECK (outcome IN ('finalized', 'failed', 'expired')),
    at timestamptz NOT NULL,
    chain text NOT NULL,
    facility text NOT NULL,
    mint text NOT NULL
);

-- One row per (bucket, chain, facility, mint). Amounts are base units of `mint` (never
-- summed across mints). volume = payments + escrow releases (gross), fees = their fees
-- (platform revenue), refunded = payment refunds + escrow refunds. attempts/succeeded:
-- payment intents reaching a terminal state / reaching `finalized` (success rate).
CREATE TABLE rollup_hourly (
    bucket timestamptz NOT NULL,
    chain text NOT NULL, facility text NOT NULL, mint text NOT NULL,
    payments bigint NOT NULL DEFAULT 0,
    releases bigint NOT NULL DEFAULT 0,
    refunds bigint NOT NULL DEFAULT 0,
    volume numeric NOT NULL DEFAULT 0,
    fees numeric NOT NULL DEFAULT 0,
    refunded numeric NOT NULL DEFAULT 0,
    attempts bigint NOT NULL DEFAULT 0,
    succeeded bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, chain, facility, mint)
);
CREATE TABLE rollup_daily (LIKE rollup_hourly INCLUDING ALL);
CREATE INDEX rollup_daily_facility ON rollup_daily (facility, bucket);

-- Saved dashboard definitions (which widgets, filters, period).
CREATE TABLE dashboards (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    definition jsonb NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
