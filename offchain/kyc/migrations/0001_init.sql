-- KYC and compliance service. Personal data (names, birth dates, document numbers) lives
-- only here; document bytes live in the object store under their SHA-256.

-- Uploaded documents, per user (the same bytes uploaded by two users are two rows, one object).
CREATE TABLE documents (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL,
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    mime        text NOT NULL CHECK (mime IN ('application/pdf', 'image/png', 'image/jpeg')),
    size_bytes  bigint NOT NULL CHECK (size_bytes > 0),
    kind        text NOT NULL CHECK (kind IN ('passport', 'id_card', 'driving_licence', 'proof_of_address', 'selfie', 'other')),
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, sha256)
);

-- The workflow's states and the only moves between them. A trigger refuses any other
-- update of `verifications.state`, whatever code runs it.
CREATE TABLE transitions (
    from_state text NOT NULL,
    to_state   text NOT NULL,
    PRIMARY KEY (from_state, to_state)
);
INSERT INTO transitions VALUES
    ('submitted', 'in_review'),
    ('submitted', 'rejected'),
    ('submitted', 'expired'),
    ('in_review', 'approved'),
    ('in_review', 'rejected'),
    ('in_review', 'expired'),
    ('approved', 'expired'),
    ('approved', 'revoked');

CREATE TABLE verifications (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL,
    state           text NOT NULL CHECK (state IN ('submitted', 'in_review', 'approved', 'rejected', 'expired', 'revoked')),
    full_name       text NOT NULL,
    birth_date      date NOT NULL,
    country         text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    document_type   text NOT NULL,
    document_number text NOT NULL,
    document_expiry date,
    mrz             text,
    document_hashes text[] NOT NULL,
    -- Solana wallet to attest on approval (base58).
    wallet          text NOT NULL,
    provider        text NOT NULL,
    -- [{check, passed, detail}] from the provider; sanctions matches at submission.
    checks          jsonb NOT NULL DEFAULT '[]',
    sanctions       jsonb NOT NULL DEFAULT '[]',
    level           smallint CHECK (level BETWEEN 1 AND 255),
    reason          text,
    reviewer        uuid,
    submitted_at    timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    expires_at      timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verifications_user ON verifications (user_id, submitted_at DESC);
CREATE INDEX verifications_state ON verifications (state, submitted_at);
CREATE INDEX verifications_expiry ON verifications (expires_at) WHERE state = 'approved';
-- One open verification per user at a time.
CREATE UNIQUE INDEX verifications_open ON verifications (user_id)
    WHERE state IN ('submitted', 'in_review');

CREATE FUNCTION verifications_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IS DISTINCT FROM OLD.state AND NOT EXISTS (
        SELECT 1 FROM kyc.transitions WHERE from_state = OLD.state AND to_state = NEW.state
    ) THEN
        RAISE EXCEPTION 'illegal KYC transition % -> %', OLD.state, NEW.state
            USING ERRCODE = 'check_violation', CONSTRAINT = 'kyc_transition';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER verifications_transition BEFORE UPDATE ON verifications
    FOR EACH ROW EXECUTE FUNCTION verifications_transition();

CREATE TABLE verification_history (
    id              bigserial PRIMARY KEY,
    verification_id uuid NOT NULL REFERENCES verifications (id),
    from_state      text,
    to_state        text NOT NULL,
    actor           uuid,
    reason          text,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verification_history_verification ON verification_history (verification_id, id);

-- Append-only log of decisions (approved, rejected, expired, revoked), written in the
-- transaction of the state change. Other services (notifications) follow it by `id`.
CREATE TABLE decision_events (
    id              bigserial PRIMARY KEY,
    verification_id uuid NOT NULL REFERENCES verifications (id),
    user_id         uuid NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('approved', 'rejected', 'expired', 'revoked')),
    level           smallint,
    reason          text,
    expires_at      timestamptz,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decision_events_at ON decision_events (at);

CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER decision_events_append_only BEFORE UPDATE OR DELETE ON decision_events
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER verification_history_append_only BEFORE UPDATE OR DELETE ON verification_history
    FOR EACH ROW EXECUTE FUNCTION append_only();

-- Outbox of on-chain attestation writes: one job per decision that changes chain state.
-- A worker claims a job with a lease, signs with the compliance authority's key, sends,
-- confirms and records the signature.
CREATE TABLE attestation_jobs (
    id                bigserial PRIMARY KEY,
    decision_event_id bigint NOT NULL UNIQUE REFERENCES decision_events (id),
    verification_id   uuid NOT NULL REFERENCES verifications (id),
    wallet            text NOT NULL,
    action            text NOT NULL CHECK (action IN ('write', 'revoke')),
    level             smallint,
    expires_at        bigint,
    state             text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    claim             uuid,
    locked_until      timestamptz,
    -- The last transaction sent: checked before sending another, so a crash after sending
    -- does not write twice.
    signature         text,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    done_at           timestamptz
);
CREATE INDEX attestation_jobs_due ON attestation_jobs (next_attempt_at) WHERE state = 'pending';

-- Sanctions screenings (API checks and submissions), for the compliance reports.
CREATE TABLE screenings (
    id           uuid PRIMARY KEY,
    requested_by uuid,
    subject      text NOT NULL CHECK (subject IN ('name', 'address')),
    -- A hash of the screened value: reports count screenings without repeating the PII.
    query_sha256 text NOT NULL,
    best_score   double precision,
    matches      jsonb NOT NULL DEFAULT '[]',
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX screenings_at ON screenings (at);
