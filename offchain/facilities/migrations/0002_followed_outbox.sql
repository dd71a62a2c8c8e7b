-- The outbox becomes a followed log: a gap-safe position drawn under the log's lock, and the
-- trace context of the change.
CREATE SEQUENCE events_seq;
ALTER TABLE events ADD COLUMN seq bigint, ADD COLUMN traceparent text;
UPDATE events e SET seq = o.n
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM events) o
 WHERE e.id = o.id;
SELECT setval('facilities.events_seq', greatest((SELECT max(seq) FROM events), 1),
              (SELECT count(*) > 0 FROM events));
ALTER TABLE events ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX events_seq_key ON events (seq);
CREATE TRIGGER events_append BEFORE INSERT ON events FOR EACH ROW
    EXECUTE FUNCTION advancia_log.append('facilities.events_seq', 'facilities.events');
