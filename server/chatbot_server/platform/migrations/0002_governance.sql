-- Governance: API keys' budgets and limits, the ledger's owner key, and the daily budget's
-- running totals and reservations.

ALTER TABLE api_keys
    -- The key's own daily budget in micro-USD; NULL: only the global budget applies.
    ADD COLUMN daily_budget_micro_usd bigint CHECK (daily_budget_micro_usd >= 0),
    -- Replaces RATE_LIMIT_AUTHENTICATED for this key, as "N/unit"; '' keeps the default.
    ADD COLUMN rate_limit text NOT NULL DEFAULT '';
CREATE INDEX api_keys_created_idx ON api_keys (created_at DESC, id DESC);

ALTER TABLE answer_logs
    ADD COLUMN api_key_id uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    ADD COLUMN experiment_name text NOT NULL DEFAULT '';
ALTER TABLE answer_logs DROP CONSTRAINT answer_logs_cost_source_check;
ALTER TABLE answer_logs ADD CONSTRAINT answer_logs_cost_source_check
    CHECK (cost_source IN ('provider', 'pricing_table', 'estimated', 'free'));
CREATE INDEX answer_logs_key_idx ON answer_logs (api_key_id, created_at DESC)
    WHERE api_key_id IS NOT NULL;
CREATE INDEX answer_logs_identity_idx ON answer_logs (identity, created_at DESC);

-- What each UTC day has cost, globally (scope 'global') and per API key (scope = its id).
-- Written in the same statement as each ledger row, so it always equals the ledger's sum.
CREATE TABLE budget_days (
    day             date NOT NULL,
    scope           text NOT NULL,
    spent_micro_usd bigint NOT NULL DEFAULT 0,
    -- Set by the one replica that sends the day's alert.
    alert_sent_at   timestamptz,
    PRIMARY KEY (day, scope)
);

-- The worst-case cost of each model call in flight. A reservation whose holder died is
-- ignored once it expires; settling a call deletes its reservation.
CREATE TABLE budget_reservations (
    id          uuid PRIMARY KEY,
    day         date NOT NULL,
    scopes      text[] NOT NULL,
    micro_usd   bigint NOT NULL CHECK (micro_usd >= 0),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX budget_reservations_day_idx ON budget_reservations (day, expires_at);

-- Reserves `p_amount` against every scope's budget, or against none: one round trip,
-- atomic across replicas because each scope's row is locked (in a fixed order) while the
-- spent and reserved sums are compared with its limit. `p_limits[i]` is the budget of
-- `p_scopes[i]` in micro-USD. Returns one row per scope; `granted` is the same on all.
CREATE FUNCTION budget_reserve(
    p_id uuid, p_scopes text[], p_limits bigint[], p_amount bigint, p_ttl interval
) RETURNS TABLE (scope text, spent bigint, reserved bigint, budget bigint, granted boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_day date := (now() AT TIME ZONE 'UTC')::date;
    v_scopes text[];
    v_spent bigint[];
    v_reserved bigint[];
    v_budget bigint[];
    v_granted boolean;
BEGIN
    -- A reservation lives for one call; losing the last ones to a crash of the database is
    -- harmless (the calls' ledger rows still settle), so its commit need not wait for disk.
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO budget_days (day, scope)
    SELECT v_day, s FROM unnest(p_scopes) AS s ORDER BY s
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM budget_days b
    WHERE b.day = v_day AND b.scope = ANY (p_scopes)
    ORDER BY b.scope
    FOR UPDATE;
    SELECT array_agg(c.scope), array_agg(c.spent), array_agg(c.reserved), array_agg(c.budget),
           coalesce(bool_and(c.spent + c.reserved + p_amount <= c.budget), true)
    INTO v_scopes, v_spent, v_reserved, v_budget, v_granted
    FROM (
        SELECT l.scope, b.spent_micro_usd AS spent, l.budget,
               coalesce((SELECT sum(r.micro_usd) FROM budget_reservations r
                         WHERE r.day = v_day AND l.scope = ANY (r.scopes)
                           AND r.expires_at > clock_timestamp()), 0)::bigint AS reserved
        FROM unnest(p_scopes, p_limits) AS l (scope, budget)
        JOIN budget_days b ON b.day = v_day AND b.scope = l.scope
    ) AS c;
    IF v_granted THEN
        INSERT INTO budget_reservations (id, day, scopes, micro_usd, expires_at)
        VALUES (p_id, v_day, p_scopes, p_amount, clock_timestamp() + p_ttl);
    END IF;
    -- Reservations of calls whose process died stay harmless once expired; drop old ones.
    DELETE FROM budget_reservations r WHERE r.expires_at < clock_timestamp() - interval '1 day';
    RETURN QUERY
    SELECT u.scope, u.spent, u.reserved, u.budget, v_granted
    FROM unnest(v_scopes, v_spent, v_reserved, v_budget) AS u (scope, spent, reserved, budget);
END;
$$;
