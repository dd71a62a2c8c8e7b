-- Gap-safe append for followed logs (ADR 0023). Trigger arguments: the sequence that
-- numbers the log (schema-qualified) and the notification channel woken on commit.
CREATE FUNCTION append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Held until commit: numbers become visible in the order they are drawn.
    PERFORM pg_advisory_xact_lock(hashtext(TG_ARGV[0]));
    NEW.seq := nextval(TG_ARGV[0]::regclass);
    -- Delivered on commit only, one per transaction and channel.
    PERFORM pg_notify(TG_ARGV[1], '');
    RETURN NEW;
END
$$;
