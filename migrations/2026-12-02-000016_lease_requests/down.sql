DROP INDEX IF EXISTS paas_tasks_lease_request;
ALTER TABLE paas_tasks DROP COLUMN lease_request;
