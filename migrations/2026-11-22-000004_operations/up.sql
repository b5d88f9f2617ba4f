-- Operations: the agent task queue, billing records, and the audit log.

-- The durable per-node task queue the agents lease from (FOR UPDATE SKIP LOCKED).
-- A task outlives the application or database it acts on (a delete task must
-- still run after the row is gone), hence SET NULL rather than CASCADE there.
CREATE TABLE paas_tasks (
    id             BIGSERIAL PRIMARY KEY,
    node_id        BIGINT NOT NULL REFERENCES paas_nodes (id) ON DELETE CASCADE,
    application_id BIGINT REFERENCES paas_applications (id) ON DELETE SET NULL,
    database_id    BIGINT REFERENCES paas_databases (id) ON DELETE SET NULL,
    build_id       BIGINT REFERENCES paas_builds (id) ON DELETE SET NULL,
    kind           TEXT NOT NULL,
    payload        JSONB NOT NULL DEFAULT '{}',
    status         TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'leased', 'running', 'succeeded', 'failed', 'cancelled')),
    attempt        INTEGER NOT NULL DEFAULT 0,
    max_attempts   INTEGER NOT NULL DEFAULT 3,
    lease_id       UUID,
    lease_deadline TIMESTAMPTZ,
    result         JSONB,
    error          TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ
);
CREATE INDEX paas_tasks_node_id_status_idx ON paas_tasks (node_id, status, id);
CREATE INDEX paas_tasks_status_idx ON paas_tasks (status);
CREATE INDEX paas_tasks_application_id_idx ON paas_tasks (application_id);
CREATE INDEX paas_tasks_database_id_idx ON paas_tasks (database_id);
CREATE INDEX paas_tasks_build_id_idx ON paas_tasks (build_id);
CREATE INDEX paas_tasks_lease_deadline_idx ON paas_tasks (lease_deadline)
    WHERE status IN ('leased', 'running');
CREATE TRIGGER paas_tasks_updated_at BEFORE UPDATE ON paas_tasks
    FOR EACH ROW EXECUTE FUNCTION skypanel_set_updated_at();

-- One record per resource and billing hour, written in the same transaction as
-- the wallet debit it explains; the unique key makes a second charge impossible.
CREATE TABLE paas_billing_records (
    id                   BIGSERIAL PRIMARY KEY,
    user_id              BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    resource_type        TEXT NOT NULL CHECK (resource_type IN ('application', 'database')),
    resource_id          BIGINT NOT NULL,
    plan_id              BIGINT NOT NULL REFERENCES paas_plans (id),
    instance_count       INTEGER NOT NULL DEFAULT 1,
    hourly_rate          NUMERIC(10, 4) NOT NULL,
    hours_used           NUMERIC(14, 6) NOT NULL,
    total_cost           NUMERIC(14, 4) NOT NULL CHECK (total_cost >= 0),
    billing_period_start TIMESTAMPTZ NOT NULL,
    billing_period_end   TIMESTAMPTZ NOT NULL,
    wallet_transaction_id BIGINT REFERENCES wallet_transactions (id) ON DELETE SET NULL,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (resource_type, resource_id, billing_period_start),
    CHECK (billing_period_end > billing_period_start)
);
CREATE INDEX paas_billing_records_user_id_idx ON paas_billing_records (user_id, billing_period_start);
CREATE INDEX paas_billing_records_plan_id_idx ON paas_billing_records (plan_id);
CREATE INDEX paas_billing_records_period_idx ON paas_billing_records (billing_period_start);
CREATE INDEX paas_billing_records_wallet_transaction_id_idx ON paas_billing_records (wallet_transaction_id);

-- Sensitive actions: who (a user, an agent's node, or the system) did what to what.
CREATE TABLE audit_log (
    id            BIGSERIAL PRIMARY KEY,
    actor_user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    actor_node_id BIGINT REFERENCES paas_nodes (id) ON DELETE SET NULL,
    action        TEXT NOT NULL,
    target_type   TEXT,
    target_id     BIGINT,
    details       JSONB NOT NULL DEFAULT '{}',
    ip_address    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_actor_user_id_idx ON audit_log (actor_user_id, id);
CREATE INDEX audit_log_actor_node_id_idx ON audit_log (actor_node_id);
CREATE INDEX audit_log_action_idx ON audit_log (action, id);
CREATE INDEX audit_log_created_at_idx ON audit_log (created_at);
