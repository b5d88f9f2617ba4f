-- A task's end is an event: the same trigger that wakes long-polls also
-- notifies `skypanel_task_ends` with the task's id when its status moves
-- into an end state. NOTIFY is transactional: it is sent at the commit of
-- the transition and never for a transition that rolled back. Waiters
-- (build, backup and SSL jobs) read the task again when woken, and at a
-- bounded interval anyway (a listener that reconnects may have missed one).
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
    IF TG_OP = 'UPDATE'
       AND NEW.status IN ('succeeded', 'failed', 'cancelled')
       AND OLD.status IS DISTINCT FROM NEW.status
    THEN
        PERFORM pg_notify('skypanel_task_ends', NEW.id::text);
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
