-- Deploys from git, and fixes to the task queue found in review.

-- A task can be cancelled while an agent works on it (a cancelled build): the
-- agent learns it from its next lease extension, and an expiring lease of a
-- cancelled task ends it instead of requeuing it.
ALTER TABLE paas_tasks ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT false;

-- Each attempt numbers its log batches from 0: the attempt is part of the key,
-- so a retried attempt's log is kept beside the first one's.
ALTER TABLE paas_task_logs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1);
ALTER TABLE paas_task_logs DROP CONSTRAINT paas_task_logs_pkey;
ALTER TABLE paas_task_logs ADD PRIMARY KEY (task_id, attempt, seq);

-- Tasks of one application wait for earlier ones on the same node only: an
-- application that moved away from a lost node is not held up by it.
CREATE INDEX paas_tasks_app_node_status_idx ON paas_tasks (application_id, node_id, status);
CREATE OR REPLACE FUNCTION skypanel_notify_task() RETURNS trigger AS $$
BEGIN
    IF NEW.status = 'queued'
       OR (NEW.status IN ('succeeded', 'failed', 'cancelled')
           AND NEW.application_id IS NOT NULL
           AND EXISTS (SELECT 1 FROM paas_tasks q
                        WHERE q.application_id = NEW.application_id
                          AND q.node_id = NEW.node_id AND q.status = 'queued'))
    THEN
        PERFORM pg_notify('skypanel_tasks', NEW.node_id::text);
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- Builds: what was asked (branch, pinned commit, by whom) and what came out.
ALTER TABLE paas_builds
    ADD COLUMN git_branch       TEXT,
    ADD COLUMN commit_requested TEXT,
    ADD COLUMN requested_by     BIGINT REFERENCES users (id) ON DELETE SET NULL,
    ADD COLUMN builder          TEXT,
    ADD COLUMN image_size_mb    BIGINT;
CREATE INDEX paas_builds_requested_by_idx ON paas_builds (requested_by);

-- The secret that signs push webhooks of an application (sealed).
ALTER TABLE paas_applications ADD COLUMN webhook_secret BYTEA;

-- A built image lives on the node that built it (there is no registry).
ALTER TABLE paas_releases ADD COLUMN node_id BIGINT REFERENCES paas_nodes (id) ON DELETE SET NULL;
CREATE INDEX paas_releases_node_id_idx ON paas_releases (node_id);
