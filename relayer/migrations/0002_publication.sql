-- Validators publish their attestations themselves (ADR 0028): each signature gets the next
-- publication index of its validator (1, 2, 3… in signing order), so a crash between signing
-- and publishing is repaired by publishing every index above the location's latest.
ALTER TABLE signatures ADD COLUMN publication bigint;
CREATE UNIQUE INDEX signatures_publication ON signatures (validator, publication)
    WHERE publication IS NOT NULL;

-- Which attestation a relayer has read up to, per validator location.
CREATE TABLE attestation_cursors (
    location text PRIMARY KEY,
    validator bytea CHECK (length(validator) = 20),
    next_index bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
