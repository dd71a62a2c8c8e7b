-- The facility side of the payment saga and the facilities service's certification
-- reminders, sent to the facility's staff (see saga.rs and facility_events.rs for who).
INSERT INTO templates (key, description, subject, body_text, body_html) VALUES
('facility.payment_received', 'A payment to the facility was confirmed on chain',
 'Payment received: {{ label }}',
 'A payment of {{ amount }} {{ asset }} for {{ label }} is confirmed on chain (transaction {{ signature }}).',
 '<p>A payment of <strong>{{ amount }} {{ asset }}</strong> for {{ label }} is confirmed on chain.</p><p>Transaction: <code>{{ signature }}</code></p>'),
('facility.refund_issued', 'The facility refunded (part of) a payment',
 'Refund issued: {{ label }}',
 '{{ refunded }} {{ asset }} of the payment of {{ amount }} {{ asset }} for {{ label }} was refunded to the payer.',
 '<p><strong>{{ refunded }} {{ asset }}</strong> of the payment of {{ amount }} {{ asset }} for {{ label }} was refunded to the payer.</p>'),
('facility.escrow_released', 'Escrowed funds were released to the facility',
 'Escrow released to you: {{ label }}',
 '{{ released }} {{ asset }} held in escrow for {{ label }} was released to the facility.',
 '<p><strong>{{ released }} {{ asset }}</strong> held in escrow for {{ label }} was released to the facility.</p>'),
('facility.certification_expiring', 'A facility certification expires soon',
 'Certification expiring: {{ certification }} ({{ facility_name }})',
 '{{ certification }} issued by {{ issuer }} for {{ facility_name }} {% if days_left < 0 %}expired on {{ expires_on }}{% else %}expires on {{ expires_on }} ({{ days_left }} days){% endif %}.',
 '<p><strong>{{ certification }}</strong> issued by {{ issuer }} for {{ facility_name }} {% if days_left < 0 %}expired on {{ expires_on }}{% else %}expires on {{ expires_on }} ({{ days_left }} days){% endif %}.</p>');
