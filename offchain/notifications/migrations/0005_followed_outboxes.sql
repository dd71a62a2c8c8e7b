-- Notifications now follow the producers' outboxes (payments.events, facilities.events,
-- kyc.events) by their gap-safe position instead of their tables by id (ADR 0023). The
-- cursors of the old readers go: payments and KYC are read from new logs, and
-- facilities.events is re-read from its start by position, its events keeping the source
-- keys they had (`facilities.events:<id>:<user>`), so nothing is sent twice.
DELETE FROM cursors
 WHERE name IN ('payments.payment_status_history', 'kyc.decision_events', 'facilities.events');

-- The event a facility's systems wait for: the payment can no longer be rolled back.
INSERT INTO templates (key, description, subject, body_text, body_html) VALUES
('payment.finalized', 'A payment is final on chain',
 'Payment final: {{ label }}',
 'The payment of {{ amount }} {{ asset }} for {{ label }} is final on chain (transaction {{ signature }}).',
 '<p>The payment of <strong>{{ amount }} {{ asset }}</strong> for {{ label }} is final on chain.</p><p>Transaction: <code>{{ signature }}</code></p>'),
('facility.payment_finalized', 'A payment to the facility is final on chain',
 'Payment final: {{ label }}',
 'A payment of {{ amount }} {{ asset }} for {{ label }} is final on chain (transaction {{ signature }}).',
 '<p>A payment of <strong>{{ amount }} {{ asset }}</strong> for {{ label }} is final on chain.</p><p>Transaction: <code>{{ signature }}</code></p>')
ON CONFLICT (key) DO NOTHING;
