-- Write-path cost (ADR 0007). Every batch updates the balances of up to thousands of
-- accounts; the identity check ran a plpgsql call for each of those rows. As a trigger
-- WHEN condition it is evaluated by the executor, and the function only runs (and
-- raises) when an immutable column actually changes.
DROP TRIGGER accounts_identity_immutable ON accounts;
CREATE TRIGGER accounts_identity_immutable BEFORE UPDATE ON accounts
    FOR EACH ROW
    WHEN (NEW.id <> OLD.id OR NEW.seq <> OLD.seq OR NEW.ledger <> OLD.ledger
          OR NEW.kind <> OLD.kind OR (NEW.flags & ~16) <> (OLD.flags & ~16)
          OR NEW.owner_kind <> OLD.owner_kind OR NEW.owner_id <> OLD.owner_id
          OR NEW.jurisdiction IS DISTINCT FROM OLD.jurisdiction
          OR NEW.user_data <> OLD.user_data OR NEW.timestamp <> OLD.timestamp
          OR NEW.prev_hash <> OLD.prev_hash OR NEW.hash <> OLD.hash)
    EXECUTE FUNCTION reject_account_identity_change();

-- Balance updates touch no indexed column: free space on each page lets them stay
-- heap-only (HOT), without new entries in the three account indexes.
ALTER TABLE accounts SET (fillfactor = 50);
