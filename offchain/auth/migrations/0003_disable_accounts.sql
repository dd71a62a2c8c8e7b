-- Administrative deactivation (offboarding): a disabled account cannot sign in,
-- refresh, or use its API keys. Reversible, unlike deletion, and keeps the audit trail.
ALTER TABLE users ADD COLUMN disabled_at timestamptz;
