-- W3C trace context of the request or job that made each status change, so the sagas that
-- follow this log (notifications) continue the payment's trace (ADR 0021).
ALTER TABLE payment_status_history ADD COLUMN traceparent text;
