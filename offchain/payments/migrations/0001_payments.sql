-- Payment intents created through the API and resolved against indexed chain data.
-- Amounts are u64 base units (numeric(20,0): bigint cannot hold them).
CREATE TABLE payments (
    id uuid PRIMARY KEY,
    created_by uuid NOT NULL,
    chain text NOT NULL DEFAULT 'solana',
    kind text NOT NULL CHECK (kind IN ('payment', 'escrow')),
    facility_id text NOT NULL,          -- hex of the 32-byte on-chain facility id
    facility text NOT NULL,             -- facility account (PDA), base58
    mint text NOT NULL,                 -- base58; the all-zero key is native SOL
    amount numeric(20,0) NOT NULL CHECK (amount > 0),
    escrow_arbiter text,
    escrow_expires_at bigint,
    invoice_id text NOT NULL UNIQUE,    -- hex of 32 random bytes (also the escrow id)
    reference text NOT NULL UNIQUE,     -- Solana Pay reference key, base58
    label text NOT NULL,
    memo text,
    payer text,                         -- wallet the last transaction request was built for
    status text NOT NULL CHECK (status IN ('pending', 'confirmed', 'finalized', 'failed', 'expired')),
    signature text,
    slot bigint,
    fee numeric(20,0),
    refunded numeric(20,0) NOT NULL DEFAULT 0,
    released numeric(20,0) NOT NULL DEFAULT 0,
    failure text,
    verified_at timestamptz,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'escrow') = (escrow_arbiter IS NOT NULL AND escrow_expires_at IS NOT NULL))
);
CREATE INDEX payments_creator ON payments (created_by, created_at DESC, id DESC);
CREATE INDEX payments_facility ON payments (facility, created_at DESC, id DESC);
CREATE INDEX payments_open ON payments (expires_at) WHERE status IN ('pending', 'confirmed');

-- Every status change, for support and audit.
CREATE TABLE payment_status_history (
    id bigserial PRIMARY KEY,
    payment_id uuid NOT NULL REFERENCES payments ON DELETE CASCADE,
    status text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_status_history_payment ON payment_status_history (payment_id, id);

-- Refund (and escrow refund/release) transactions handed to facility or arbiter wallets.
CREATE TABLE refund_requests (
    id uuid PRIMARY KEY,
    payment_id uuid NOT NULL REFERENCES payments ON DELETE CASCADE,
    action text NOT NULL CHECK (action IN ('refund', 'escrow_refund', 'escrow_release')),
    amount numeric(20,0) NOT NULL,
    authority text NOT NULL,
    requested_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refund_requests_payment ON refund_requests (payment_id, created_at);
