-- The payment lifecycle follows the chain by itself (ADR 0023). The payments worker is the
-- one writer of an intent's status: it follows the indexer's stream behind a cursor here and
-- settles an intent only with an on-chain payment that matches it in every term.

-- The on-chain event that settled the intent: its account (PaymentRecord or Escrow) and
-- position in the transaction (`signature`, `slot` exist already).
ALTER TABLE payments ADD COLUMN account text,
                     ADD COLUMN ix_index integer,
                     ADD COLUMN inner_index integer;
CREATE INDEX payments_signature ON payments (signature) WHERE signature IS NOT NULL;
CREATE INDEX payments_account ON payments (account) WHERE account IS NOT NULL;

-- Wallets that asked for a transaction (or were seen paying on chain), with the account the
-- program keys their payment by (escrow PDAs depend on the payer), and the last failed
-- attempt the chain reports for the intent's reference.
CREATE TABLE attempts (
    payment_id uuid NOT NULL REFERENCES payments ON DELETE CASCADE,
    payer text NOT NULL,
    account text NOT NULL,
    source text NOT NULL CHECK (source IN ('request', 'chain')),
    requested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (payment_id, payer)
);
CREATE INDEX attempts_account ON attempts (account);
CREATE INDEX attempts_watch ON attempts (requested_at) WHERE source = 'request';

-- On-chain payments recorded against an intent that do not settle it: wrong amount, asset,
-- facility, invoice, reference, arbiter or expiry, or a second payment of a settled intent.
-- Shown in status and history, refundable by the facility, never blocking the intent.
CREATE TABLE mismatches (
    id uuid PRIMARY KEY,
    payment_id uuid NOT NULL REFERENCES payments ON DELETE CASCADE,
    chain text NOT NULL,
    signature text NOT NULL,
    ix_index integer NOT NULL,
    inner_index integer NOT NULL,
    slot bigint NOT NULL,
    commitment text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('payment', 'escrow')),
    payer text NOT NULL,
    account text NOT NULL,
    facility text NOT NULL,
    mint text NOT NULL,
    amount numeric(20,0) NOT NULL,
    fee numeric(20,0) NOT NULL DEFAULT 0,
    arbiter text,
    expires_at bigint,
    invoice_id text,
    reference text,
    reasons text[] NOT NULL,
    refunded numeric(20,0) NOT NULL DEFAULT 0,
    released numeric(20,0) NOT NULL DEFAULT 0,
    detected_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chain, signature, ix_index, inner_index)
);
CREATE INDEX mismatches_payment ON mismatches (payment_id, detected_at);
CREATE INDEX mismatches_account ON mismatches (account);
CREATE INDEX mismatches_signature ON mismatches (signature);

-- Refunds handed out for a mismatched payment name it.
ALTER TABLE refund_requests ADD COLUMN mismatch_id uuid REFERENCES mismatches ON DELETE SET NULL;

-- Where the worker is in the indexer's stream.
CREATE TABLE cursors (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The outbox of domain events (payment.*) other services follow (advancia-outbox's shape).
CREATE SEQUENCE events_seq;
CREATE TABLE events (
    seq bigint PRIMARY KEY,
    id uuid NOT NULL UNIQUE,
    kind text NOT NULL,
    payload jsonb NOT NULL,
    traceparent text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER events_append BEFORE INSERT ON events FOR EACH ROW
    EXECUTE FUNCTION advancia_log.append('payments.events_seq', 'payments.events');
