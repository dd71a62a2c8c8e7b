-- The outbox of KYC's domain events (`kyc.decided`), advancia-outbox's shape: written in
-- the transaction of each decision, followed by notifications and published to the bus.
-- Decisions made before this migration stay in decision_events only (they were notified
-- from there).
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
    EXECUTE FUNCTION advancia_log.append('kyc.events_seq', 'kyc.events');
