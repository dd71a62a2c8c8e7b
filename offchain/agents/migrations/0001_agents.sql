-- The agent registry, its parameter history, tasks (the unit of routing and of metrics),
-- orchestrations and their shared context.
CREATE TABLE agents (
    id text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{1,62}$'),
    kind text NOT NULL,
    description text NOT NULL DEFAULT '',
    version integer NOT NULL DEFAULT 1,
    enabled boolean NOT NULL DEFAULT true,
    params jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every version an agent's parameters went through (register, train, re-parameterise).
CREATE TABLE agent_versions (
    agent_id text NOT NULL REFERENCES agents ON DELETE CASCADE,
    version integer NOT NULL,
    params jsonb NOT NULL,
    -- why this version exists: registered, trained, updated
    reason text NOT NULL,
    -- training metrics (held-out log loss / accuracy before and after) when trained
    metrics jsonb,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, version)
);

CREATE TABLE orchestrations (
    id uuid PRIMARY KEY,
    plan text NOT NULL,
    input jsonb NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    result jsonb,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- Per-orchestration key/value store the steps share.
CREATE TABLE context (
    orchestration_id uuid NOT NULL REFERENCES orchestrations ON DELETE CASCADE,
    key text NOT NULL,
    value jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (orchestration_id, key)
);

CREATE TABLE tasks (
    id uuid PRIMARY KEY,
    agent_id text NOT NULL REFERENCES agents,
    agent_version integer NOT NULL,
    orchestration_id uuid REFERENCES orchestrations ON DELETE SET NULL,
    input jsonb NOT NULL,
    status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    result jsonb,
    error text,
    attempts integer NOT NULL DEFAULT 0,
    -- run time of the last attempt, microseconds
    latency_us bigint,
    -- LLM usage; cost in micro-USD (integers, never floats)
    tokens bigint NOT NULL DEFAULT 0,
    cost_micro_usd bigint NOT NULL DEFAULT 0,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX tasks_agent ON tasks (agent_id, created_at DESC);
CREATE INDEX tasks_orchestration ON tasks (orchestration_id) WHERE orchestration_id IS NOT NULL;
CREATE INDEX tasks_open ON tasks (created_at) WHERE status IN ('queued', 'running');
