-- Managed database engines: the image each (type, version) runs, managed by
-- admins. Seeded with the official images; a platform without a registry
-- points them at local images that honour the same environment contract.
CREATE TABLE paas_database_engines (
    id         BIGSERIAL PRIMARY KEY,
    db_type    TEXT NOT NULL CHECK (db_type IN ('postgresql', 'mysql', 'redis', 'mongodb')),
    version    TEXT NOT NULL CHECK (version ~ '^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$'),
    image      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (db_type, version)
);
CREATE TRIGGER paas_database_engines_updated_at BEFORE UPDATE ON paas_database_engines
    FOR EACH ROW EXECUTE FUNCTION skypanel_set_updated_at();

INSERT INTO paas_database_engines (db_type, version, image) VALUES
    ('postgresql', '16', 'postgres:16'),
    ('mysql', '8', 'mysql:8'),
    ('redis', '7', 'redis:7'),
    ('mongodb', '7', 'mongo:7');
