-- Live stream, partner query indexes, decoded instruction names.
--
-- `seq`: one sequence across every event table and `rollbacks`, taken at insert and again
-- when a row's commitment or slot changes, so "everything after position N" is one
-- indexed range per table and a reconnecting client (SSE Last-Event-ID) misses nothing.
-- Writers take a transaction-scoped advisory lock before drawing numbers, so numbers
-- become visible in order (no commit of a lower number after a higher one is read).
CREATE SEQUENCE event_seq;

ALTER TABLE payments ADD COLUMN seq bigint NOT NULL DEFAULT nextval('indexer.event_seq');
ALTER TABLE refunds ADD COLUMN seq bigint NOT NULL DEFAULT nextval('indexer.event_seq');
ALTER TABLE escrows ADD COLUMN seq bigint NOT NULL DEFAULT nextval('indexer.event_seq');
ALTER TABLE facilities ADD COLUMN seq bigint NOT NULL DEFAULT nextval('indexer.event_seq');
ALTER TABLE attestations ADD COLUMN seq bigint NOT NULL DEFAULT nextval('indexer.event_seq');
ALTER TABLE settlement_commitments ADD COLUMN seq bigint NOT NULL DEFAULT nextval('indexer.event_seq');
ALTER TABLE admin_events ADD COLUMN seq bigint NOT NULL DEFAULT nextval('indexer.event_seq');
ALTER TABLE rollbacks ADD COLUMN seq bigint NOT NULL DEFAULT nextval('indexer.event_seq');

CREATE INDEX payments_seq ON payments (seq);
CREATE INDEX refunds_seq ON refunds (seq);
CREATE INDEX escrows_seq ON escrows (seq);
CREATE INDEX facilities_seq ON facilities (seq);
CREATE INDEX attestations_seq ON attestations (seq);
CREATE INDEX settlement_commitments_seq ON settlement_commitments (seq);
CREATE INDEX admin_events_seq ON admin_events (seq);
CREATE INDEX rollbacks_seq ON rollbacks (seq);

-- Partner queries by facility / wallet on the newer tables.
CREATE INDEX escrows_facility ON escrows (facility, slot) WHERE facility IS NOT NULL;
CREATE INDEX attestations_wallet ON attestations (wallet, slot);
CREATE INDEX facilities_facility ON facilities (facility, slot);

-- Names of our program's top-level instructions in the transaction, in order (decoded
-- from the Anchor discriminator; `unknown` if it matched none).
ALTER TABLE transactions ADD COLUMN instructions text[] NOT NULL DEFAULT '{}';
