-- Payments of one invoice at a facility (query::payments_by_invoice).
CREATE INDEX payments_invoice ON payments (facility, invoice_id);
