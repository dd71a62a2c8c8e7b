-- Positions of the checkout pages' live-status feeds (ADR 0025): each API process follows the
-- payments outbox with a row of its own (`checkout:<process>`), so every process sees every
-- event; a process removes its row when it stops.
CREATE TABLE checkout_cursors (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
