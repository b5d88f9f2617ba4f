DROP INDEX paas_releases_node_id_idx;
ALTER TABLE paas_releases DROP COLUMN node_id;
ALTER TABLE paas_applications DROP COLUMN webhook_secret;
DROP INDEX paas_builds_requested_by_idx;
ALTER TABLE paas_builds
    DROP COLUMN image_size_mb,
    DROP COLUMN builder,
    DROP COLUMN requested_by,
    DROP COLUMN commit_requested,
    DROP COLUMN git_branch;
CREATE OR REPLACE FUNCTION skypanel_notify_task() RETURNS trigger AS $$
BEGIN
    IF NEW.status = 'queued'
       OR (NEW.status IN ('succeeded', 'failed', 'cancelled')
           AND NEW.application_id IS NOT NULL
           AND EXISTS (SELECT 1 FROM paas_tasks q
                        WHERE q.application_id = NEW.application_id AND q.status = 'queued'))
    THEN
        PERFORM pg_notify('skypanel_tasks', NEW.node_id::text);
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
DROP INDEX paas_tasks_app_node_status_idx;
ALTER TABLE paas_task_logs DROP CONSTRAINT paas_task_logs_pkey;
DELETE FROM paas_task_logs WHERE attempt > 1;
ALTER TABLE paas_task_logs DROP COLUMN attempt;
ALTER TABLE paas_task_logs ADD PRIMARY KEY (task_id, seq);
ALTER TABLE paas_tasks DROP COLUMN cancel_requested;
