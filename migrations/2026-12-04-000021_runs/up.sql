-- One-off runs (`heroku run`): a command in a new container of a release,
-- with the release's environment and the plan's limits, attached to the
-- caller's terminal through the control plane or detached (its output in
-- the application's logs). A run never restarts; it ends with its command,
-- its session, or its time limit, and is billed per second like an instance
-- (a usage interval of resource type `run`).
CREATE TABLE paas_runs (
    id               BIGSERIAL PRIMARY KEY,
    application_id   BIGINT NOT NULL REFERENCES paas_applications (id) ON DELETE CASCADE,
    -- The application's owner (who pays), and who started it.
    user_id          BIGINT NOT NULL REFERENCES users (id),
    started_by       BIGINT NOT NULL REFERENCES users (id),
    release_version  INT NOT NULL,
    plan_id          BIGINT NOT NULL REFERENCES paas_plans (id),
    command          TEXT NOT NULL,
    attach           BOOLEAN NOT NULL,
    tty              BOOLEAN NOT NULL DEFAULT false,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    exit_code        INT,
    -- Why a run failed other than by its command's exit: in words its owner
    -- can act on.
    failure          TEXT,
    ttl_secs         INT NOT NULL CHECK (ttl_secs > 0),
    node_id          BIGINT REFERENCES paas_nodes (id) ON DELETE SET NULL,
    task_id          BIGINT REFERENCES paas_tasks (id) ON DELETE SET NULL,
    -- SHA-256 of the one-time ticket that opens an attached run's session;
    -- NULL once the caller used it.
    session_ticket   TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at       TIMESTAMPTZ,
    ended_at         TIMESTAMPTZ
);
CREATE INDEX paas_runs_application_idx ON paas_runs (application_id, id DESC);
CREATE UNIQUE INDEX paas_runs_task_idx ON paas_runs (task_id);
CREATE INDEX paas_runs_live_idx ON paas_runs (status) WHERE status IN ('pending', 'running');
CREATE INDEX paas_runs_user_idx ON paas_runs (user_id);
CREATE INDEX paas_runs_started_by_idx ON paas_runs (started_by);
CREATE INDEX paas_runs_plan_idx ON paas_runs (plan_id);
CREATE INDEX paas_runs_node_idx ON paas_runs (node_id);

ALTER TABLE paas_usage DROP CONSTRAINT paas_usage_resource_type_check;
ALTER TABLE paas_usage ADD CONSTRAINT paas_usage_resource_type_check
    CHECK (resource_type IN ('application', 'database', 'run'));
ALTER TABLE paas_billing_records DROP CONSTRAINT paas_billing_records_resource_type_check;
ALTER TABLE paas_billing_records ADD CONSTRAINT paas_billing_records_resource_type_check
    CHECK (resource_type IN ('application', 'database', 'run'));
