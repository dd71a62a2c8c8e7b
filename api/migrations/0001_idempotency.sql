-- Idempotency-Key records for POSTs that move money (Stripe-style semantics).
CREATE TABLE idempotency_keys (
    scope          text        NOT NULL,  -- who: api key, user, or client address
    key            text        NOT NULL,
    method         text        NOT NULL,
    path           text        NOT NULL,
    request_hash   bytea       NOT NULL,  -- sha256 of method, path and body
    state          text        NOT NULL CHECK (state IN ('in_progress', 'completed')),
    locked_until   timestamptz NOT NULL,  -- an in-progress record older than this was abandoned (crash)
    status         smallint,
    content_type   text,
    body           bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
