-- How far each outbox source has been published.
CREATE TABLE cursors (
    source text PRIMARY KEY,
    last_id bigint NOT NULL DEFAULT 0,
    published bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
