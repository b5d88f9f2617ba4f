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
