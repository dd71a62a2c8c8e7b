-- The posting rules follow the indexer's stream behind their own cursor (ADR 0023): the
-- ledger no longer marks the indexer's rows, it keeps its position here.
CREATE TABLE cursors (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Finalized money events that cannot be posted yet (asset scale unknown, escrow opened
-- before indexing began), retried without holding up the events behind them.
CREATE TABLE parked_events (
    chain text NOT NULL,
    signature text NOT NULL,
    ix_index bigint NOT NULL,
    inner_index bigint NOT NULL,
    event jsonb NOT NULL,
    reason text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    parked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, signature, ix_index, inner_index)
);
