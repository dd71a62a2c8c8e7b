-- Watch-only wallets: public addresses users follow. No key material is ever stored here.
CREATE TABLE wallets (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    chain text NOT NULL,
    address text NOT NULL,
    label text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, chain, address)
);
CREATE INDEX wallets_user ON wallets (user_id, created_at, id);
CREATE INDEX wallets_address ON wallets (chain, address);
