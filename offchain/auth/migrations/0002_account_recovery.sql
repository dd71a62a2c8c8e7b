-- Email verification and password reset. Tokens are 256-bit random, stored as SHA-256.

ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

CREATE TABLE user_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
    -- For email verification: the address the token proves (stale if the email changed since).
    email      text,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX user_tokens_user ON user_tokens (user_id, purpose);
