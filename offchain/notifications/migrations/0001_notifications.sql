-- Notifications: templates, preferences, notifications and their delivery outbox.

-- Message templates (minijinja). `key` is what senders and saga events name.
CREATE TABLE templates (
    key text PRIMARY KEY CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,127}$'),
    description text NOT NULL DEFAULT '',
    subject text NOT NULL,          -- title: email subject, push title, in-app heading
    body_text text NOT NULL,        -- plain text: email text part, SMS, push, in-app
    body_html text,                 -- optional HTML email part, rendered with autoescape
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Per-user delivery preferences. No row: defaults (in-app and webhook, no quiet hours).
CREATE TABLE preferences (
    user_id uuid PRIMARY KEY,
    channels text[] NOT NULL DEFAULT '{in_app,webhook}'
        CHECK (channels <@ '{in_app,webhook,email,sms,push}'::text[]),
    email text,
    phone text,                     -- E.164
    push_token text,
    time_zone text NOT NULL DEFAULT 'UTC',   -- IANA name, resolved by Postgres' tz database
    quiet_start time,               -- local wall-clock time; both or neither
    quiet_end time,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

-- Webhook endpoints of a user (a partner, a facility's back office).
CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    url text NOT NULL CHECK (url ~ '^https?://'),
    secret text NOT NULL,           -- whsec_<base64>
    event_types text[],             -- NULL: every type
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id) WHERE active;

CREATE TABLE notifications (
    id uuid PRIMARY KEY,
    seq bigserial UNIQUE,           -- in-app stream position
    user_id uuid NOT NULL,
    event_type text NOT NULL,
    template_key text,
    priority text NOT NULL DEFAULT 'normal' CHECK (priority IN ('normal', 'high')),
    subject text NOT NULL,
    body_text text NOT NULL,
    body_html text,
    data jsonb NOT NULL DEFAULT '{}',
    -- Producer's key (API Idempotency-Key, `payments:<history id>`): one notification each.
    source_key text UNIQUE,
    read_at timestamptz,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_user ON notifications (user_id, created_at DESC, id DESC);

-- In-app inbox: a notification appears here when its in_app delivery runs.
CREATE TABLE inbox (
    notification_id uuid PRIMARY KEY REFERENCES notifications ON DELETE CASCADE,
    user_id uuid NOT NULL,
    seq bigserial UNIQUE,
    delivered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_user ON inbox (user_id, seq);

-- The outbox: one row per (notification, channel, destination), written in the same
-- transaction as the notification. Workers claim due rows with FOR UPDATE SKIP LOCKED and
-- a lease; `claim` fences a worker whose lease expired out of the final update.
CREATE TABLE deliveries (
    id uuid PRIMARY KEY,
    notification_id uuid NOT NULL REFERENCES notifications ON DELETE CASCADE,
    channel text NOT NULL CHECK (channel IN ('in_app', 'webhook', 'email', 'sms', 'push')),
    destination text NOT NULL,      -- endpoint id, address, number, device token, user id
    idempotency_key text NOT NULL UNIQUE,  -- webhook-id / Message-ID / provider key
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claim uuid,
    locked_until timestamptz,
    last_error text,
    provider_id text,               -- the provider's message id, when it returns one
    delivered_at timestamptz,
    dead_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (notification_id, channel, destination)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_dead ON deliveries (dead_at DESC) WHERE status = 'dead';

-- Every attempt, for support.
CREATE TABLE delivery_attempts (
    id bigserial PRIMARY KEY,
    delivery_id uuid NOT NULL REFERENCES deliveries ON DELETE CASCADE,
    attempt integer NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead', 'replayed')),
    detail text,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);

-- Positions of the event readers (payment status history, ...).
CREATE TABLE cursors (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- End of the quiet period `ts` falls in, or NULL outside quiet hours. Wall-clock times in
-- `tz` (IANA), so daylight-saving shifts are Postgres' business; windows may cross midnight.
CREATE FUNCTION quiet_until(tz text, q_start time, q_end time, ts timestamptz)
RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
DECLARE
    local_ts timestamp := ts AT TIME ZONE tz;
    local_t time := local_ts::time;
    local_day date := local_ts::date;
BEGIN
    IF q_start IS NULL OR q_end IS NULL OR q_start = q_end THEN
        RETURN NULL;
    END IF;
    IF q_start < q_end THEN
        IF local_t >= q_start AND local_t < q_end THEN
            RETURN (local_day + q_end) AT TIME ZONE tz;
        END IF;
        RETURN NULL;
    END IF;
    -- Crosses midnight: [start, 24:00) of today or [00:00, end) of today.
    IF local_t >= q_start THEN
        RETURN (local_day + 1 + q_end) AT TIME ZONE tz;
    ELSIF local_t < q_end THEN
        RETURN (local_day + q_end) AT TIME ZONE tz;
    END IF;
    RETURN NULL;
END $$;

-- Templates of the payment saga's events; operators edit them through the API.
INSERT INTO templates (key, description, subject, body_text, body_html) VALUES
('payment.confirmed', 'A payment was confirmed on chain',
 'Payment confirmed: {{ label }}',
 'Your payment of {{ amount }} {{ asset }} to facility {{ facility_id[:8] }}… is confirmed on chain (transaction {{ signature }}).',
 '<p>Your payment of <strong>{{ amount }} {{ asset }}</strong> for {{ label }} is confirmed on chain.</p><p>Transaction: <code>{{ signature }}</code></p>'),
('payment.refunded', 'A payment was (partly) refunded',
 'Refund received: {{ label }}',
 '{{ refunded }} {{ asset }} of your payment of {{ amount }} {{ asset }} was refunded.',
 '<p><strong>{{ refunded }} {{ asset }}</strong> of your payment of {{ amount }} {{ asset }} for {{ label }} was refunded.</p>'),
('escrow.released', 'Escrowed funds were released to the facility',
 'Escrow released: {{ label }}',
 '{{ released }} {{ asset }} held in escrow for {{ label }} was released to the facility.',
 '<p><strong>{{ released }} {{ asset }}</strong> held in escrow for {{ label }} was released to the facility.</p>'),
('kyc.decided', 'An identity verification was decided',
 'Identity verification {{ decision }}',
 'Your identity verification was {{ decision }}.{% if reason %} Reason: {{ reason }}{% endif %}',
 NULL);
