-- Point lookups by the payments service (lookup.rs): a Solana Pay reference to its payment,
-- refunds of one payment account.
CREATE INDEX payments_reference ON payments (reference);
CREATE INDEX refunds_payment ON refunds (payment);
