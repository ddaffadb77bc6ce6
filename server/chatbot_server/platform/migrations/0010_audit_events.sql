-- The audit trail: one row per admin action or attempt at one, through gRPC or a
-- `chatbot-server` command. Append-only: the app role may insert and read rows, never
-- change or delete them (see the grants in migrations.py); no foreign keys, so a row
-- outlives the key or document it names.
CREATE TABLE audit_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor text NOT NULL,
    actor_name text NOT NULL DEFAULT '',
    action text NOT NULL,
    target text NOT NULL DEFAULT '',
    request_id text NOT NULL DEFAULT '',
    outcome text NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    status_code text NOT NULL,
    request_json text NOT NULL DEFAULT '',
    error_message text NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_occurred_idx ON audit_events (occurred_at DESC, id DESC);
CREATE INDEX audit_events_actor_idx ON audit_events (actor, occurred_at DESC);
