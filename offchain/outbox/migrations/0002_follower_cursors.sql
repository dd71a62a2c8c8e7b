-- The dispatcher is a follower of each service's outbox log (ADR 0023): its cursor rows take
-- the follower's shape (name, position), positions are the logs' gap-safe `seq`.
ALTER TABLE cursors RENAME COLUMN source TO name;
ALTER TABLE cursors RENAME COLUMN last_id TO position;
-- Positions of the old id-ordered cursors do not carry over to `seq`: start over (the bus
-- drops what it already has by envelope id within its dedup window; consumers dedup by it).
UPDATE cursors SET position = 0;
