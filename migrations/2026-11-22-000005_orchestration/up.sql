-- Orchestration: what the actors and agents need.

-- Applications: a deleting state, and generations. Every accepted command that
-- needs the node bumps `generation` and queues a task carrying it; when the
-- agent reports that generation done, `applied_generation` catches up and the
-- status becomes `target_status`. A report for an older generation is ignored.
ALTER TABLE paas_applications DROP CONSTRAINT paas_applications_status_check;
ALTER TABLE paas_applications ADD CONSTRAINT paas_applications_status_check
    CHECK (status IN ('pending', 'building', 'running', 'stopped', 'failed', 'suspended', 'deleting'));
ALTER TABLE paas_applications
    ADD COLUMN generation         BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN applied_generation BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN target_status      TEXT
        CHECK (target_status IN ('pending', 'building', 'running', 'stopped', 'failed', 'suspended', 'deleting')),
    ADD COLUMN last_error         TEXT;

-- Tasks: the environment an app task needs is sealed here and opened only in
-- the lease answer to its node; the app generation the task carries out.
ALTER TABLE paas_tasks
    ADD COLUMN sealed_secrets BYTEA,
    ADD COLUMN generation     BIGINT;

-- Log lines an agent sends while working on a task; (task, seq) makes a
-- resent batch a no-op.
CREATE TABLE paas_task_logs (
    task_id    BIGINT NOT NULL REFERENCES paas_tasks (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL CHECK (seq >= 0),
    lines      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, seq)
);

-- Wake long-polling agents the moment a task for their node is committed (or
-- requeued, or finished so that the next task of the same app may go).
CREATE FUNCTION skypanel_notify_task() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('skypanel_tasks', NEW.node_id::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER paas_tasks_notify AFTER INSERT OR UPDATE OF status ON paas_tasks
    FOR EACH ROW EXECUTE FUNCTION skypanel_notify_task();

-- The containers nodes report, per application: what actually runs.
CREATE TABLE paas_instances (
    id              BIGSERIAL PRIMARY KEY,
    application_id  BIGINT NOT NULL REFERENCES paas_applications (id) ON DELETE CASCADE,
    node_id         BIGINT NOT NULL REFERENCES paas_nodes (id) ON DELETE CASCADE,
    container_name  TEXT NOT NULL UNIQUE,
    container_id    TEXT NOT NULL,
    release_version INTEGER NOT NULL,
    instance        INTEGER NOT NULL,
    generation      BIGINT NOT NULL,
    state           TEXT NOT NULL,
    host_port       INTEGER,
    restart_count   INTEGER NOT NULL DEFAULT 0,
    crash_looping   BOOLEAN NOT NULL DEFAULT false,
    cpu_percent     DOUBLE PRECISION NOT NULL DEFAULT 0,
    memory_used_mb  BIGINT NOT NULL DEFAULT 0,
    observed_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX paas_instances_application_id_idx ON paas_instances (application_id);
CREATE INDEX paas_instances_node_id_idx ON paas_instances (node_id);

-- Credential rotation: the previous credential keeps working for a short
-- grace period, so an answer lost in transit does not lock the agent out.
ALTER TABLE paas_nodes
    ADD COLUMN previous_credential_digest     TEXT UNIQUE,
    ADD COLUMN previous_credential_expires_at TIMESTAMPTZ,
    ADD COLUMN hostname                       TEXT;
