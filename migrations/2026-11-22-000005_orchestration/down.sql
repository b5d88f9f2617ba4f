ALTER TABLE paas_nodes
    DROP COLUMN previous_credential_digest,
    DROP COLUMN previous_credential_expires_at,
    DROP COLUMN hostname;
DROP TABLE paas_instances;
DROP TRIGGER paas_tasks_notify ON paas_tasks;
DROP FUNCTION skypanel_notify_task();
DROP TABLE paas_task_logs;
ALTER TABLE paas_tasks DROP COLUMN sealed_secrets, DROP COLUMN generation;
ALTER TABLE paas_applications
    DROP COLUMN generation,
    DROP COLUMN applied_generation,
    DROP COLUMN target_status,
    DROP COLUMN last_error;
UPDATE paas_applications SET status = 'failed' WHERE status = 'deleting';
ALTER TABLE paas_applications DROP CONSTRAINT paas_applications_status_check;
ALTER TABLE paas_applications ADD CONSTRAINT paas_applications_status_check
    CHECK (status IN ('pending', 'building', 'running', 'stopped', 'failed', 'suspended'));
