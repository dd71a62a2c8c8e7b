-- ADR 0023: the rollups follow the indexer's stream and the payment service's outbox through
-- the one gap-safe follower (advancia_db::follow), whose cursors live in `cursors` (already
-- in its shape). The indexer's stream keeps its positions, so its cursor only changes name;
-- the old position in the payments status history means nothing in the outbox, so that
-- cursor starts over (re-reading an intent's outcome replaces it: nothing counts twice).
UPDATE cursors SET name = 'chain-events', updated_at = now() WHERE name = 'indexer.event_seq';
DELETE FROM cursors WHERE name = 'payments.payment_status_history';
