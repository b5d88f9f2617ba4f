-- The agent's id for a lease request: a request delivered twice (its answer
-- lost, the agent retrying) is answered with the tasks it leased the first
-- time instead of leaving them held until the acknowledgement window ends.
ALTER TABLE paas_tasks ADD COLUMN lease_request UUID;
CREATE INDEX paas_tasks_lease_request ON paas_tasks (node_id, lease_request)
    WHERE lease_request IS NOT NULL AND status = 'leased';
