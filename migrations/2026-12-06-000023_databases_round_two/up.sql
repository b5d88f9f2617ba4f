-- A database its owner stopped comes back stopped after a suspension.
ALTER TABLE paas_databases ADD COLUMN resume_stopped BOOLEAN NOT NULL DEFAULT false;

-- A stopped, resized or crashed database tells its owner (naming the apps linked to it).
ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed',
                    'backup_failed', 'restore_failed', 'build_succeeded', 'build_failed',
                    'app_crashed', 'app_moved', 'app_unplaced', 'no_room', 'release_failed',
                    'github_disconnected', 'database_stopped', 'database_resized',
                    'database_failed'));

-- What each database's node last measured of it (about once a minute).
CREATE TABLE paas_database_health (
    database_id  BIGINT PRIMARY KEY REFERENCES paas_databases (id) ON DELETE CASCADE,
    size_bytes   BIGINT,
    connections  INTEGER,
    measured_at  TIMESTAMPTZ NOT NULL
);
