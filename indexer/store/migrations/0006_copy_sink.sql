-- The sink writes event rows with binary COPY (ADR 0010, "Binary COPY sink"). The foreign
-- keys from the event tables to `transactions` ran one row-locking lookup per event row,
-- a fifth of the sink's database time; every event row is written in the transaction
-- that writes its `transactions` row, and the writers that delete a `transactions` row
-- (undo of a dropped transaction, EVM reorg) delete its event rows in the same statement,
-- in place of the cascade.
ALTER TABLE payments DROP CONSTRAINT payments_chain_signature_fkey;
ALTER TABLE refunds DROP CONSTRAINT refunds_chain_signature_fkey;
ALTER TABLE escrows DROP CONSTRAINT escrows_chain_signature_fkey;
ALTER TABLE facilities DROP CONSTRAINT facilities_chain_signature_fkey;
ALTER TABLE attestations DROP CONSTRAINT attestations_chain_signature_fkey;
ALTER TABLE settlement_commitments DROP CONSTRAINT settlement_commitments_chain_signature_fkey;
ALTER TABLE admin_events DROP CONSTRAINT admin_events_chain_signature_fkey;
ALTER TABLE bridge_messages DROP CONSTRAINT bridge_messages_chain_signature_fkey;
