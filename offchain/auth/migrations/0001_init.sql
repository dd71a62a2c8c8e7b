-- Auth service schema. Every secret is stored hashed (SHA-256 for high-entropy
-- random tokens, argon2id for passwords) or encrypted (TOTP secrets).

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    -- Normalised (trimmed, lower-cased). NULL for wallet-only accounts.
    email           text,
    display_name    text NOT NULL,
    -- PHC string (argon2id). NULL for wallet-only accounts: password login impossible.
    password_hash   text,
    roles           text[] NOT NULL DEFAULT ARRAY['patient']::text[],
    -- Version byte || nonce || ChaCha20-Poly1305 ciphertext, AAD = user id.
    totp_secret_enc bytea,
    totp_enabled    boolean NOT NULL DEFAULT false,
    -- Highest accepted TOTP time step: each step is usable once (replay protection).
    totp_last_step  bigint,
    failed_logins   integer NOT NULL DEFAULT 0,
    failed_2fa      integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT roles_known CHECK (roles <@ ARRAY['patient','provider','facility_admin','compliance_officer','partner','admin']::text[]),
    CONSTRAINT totp_enabled_has_secret CHECK (NOT totp_enabled OR totp_secret_enc IS NOT NULL)
);
CREATE UNIQUE INDEX users_email_key ON users (email) WHERE email IS NOT NULL;

CREATE TABLE recovery_codes (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- A refresh-token family is one login session; every rotation stays in it, so
-- reuse of any retired token can revoke the whole session.
CREATE TABLE refresh_families (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text,
    -- Authentication methods (RFC 8176) of the login, carried into every rotated token.
    amr            text[] NOT NULL,
    ip             text,
    user_agent     text
);
CREATE INDEX refresh_families_user ON refresh_families (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    family_id   uuid NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE two_factor_challenges (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    ip          text,
    user_agent  text
);
CREATE INDEX two_factor_challenges_user ON two_factor_challenges (user_id);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    scopes       text[] NOT NULL,
    secret_hash  bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_owner ON api_keys (owner_id);

-- Wallets bound to an account by a verified sign-in. One account per (chain, address).
CREATE TABLE wallets (
    chain      text NOT NULL,
    address    text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (chain, address)
);
CREATE INDEX wallets_user ON wallets (user_id);

CREATE TABLE wallet_nonces (
    nonce      text PRIMARY KEY,
    chain      text NOT NULL,
    address    text NOT NULL,
    message    text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- Security audit trail (who did what, from where). Never holds secrets.
CREATE TABLE events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    user_id    uuid,
    kind       text NOT NULL,
    ip         text,
    user_agent text,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX events_user_at ON events (user_id, at);
