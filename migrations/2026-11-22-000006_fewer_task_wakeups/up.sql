-- Wake agents only when it can matter: a task became leasable (queued, or
-- requeued), or a task finished while a later task of the same application
-- waits behind it. Fewer notifying commits: PostgreSQL serialises those.
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
