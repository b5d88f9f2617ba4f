CREATE OR REPLACE FUNCTION skypanel_notify_task() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('skypanel_tasks', NEW.node_id::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
