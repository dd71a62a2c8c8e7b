-- W3C trace context of the request or saga step that created the notification; the outbox
-- worker's delivery spans join that trace (ADR 0021).
ALTER TABLE notifications ADD COLUMN traceparent text;
