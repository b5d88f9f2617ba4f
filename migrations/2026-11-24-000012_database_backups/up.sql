-- Backups and restores of managed databases, and the data volumes kept
-- after a database is deleted without purging.

-- A dump made by the engine's own tool inside the database's container and
-- kept on its node (`node_id`), with its size and SHA-256. `task_id`: the
-- node's `db.backup` task, set in the transaction that creates it.
CREATE TABLE paas_database_backups (
    id          BIGSERIAL PRIMARY KEY,
    database_id BIGINT NOT NULL REFERENCES paas_databases (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    origin      TEXT NOT NULL CHECK (origin IN ('manual', 'scheduled')),
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    node_id     BIGINT REFERENCES paas_nodes (id) ON DELETE SET NULL,
    task_id     BIGINT REFERENCES paas_tasks (id) ON DELETE SET NULL,
    size_bytes  BIGINT CHECK (size_bytes >= 0),
    sha256      TEXT CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    CHECK (status <> 'succeeded' OR (size_bytes IS NOT NULL AND sha256 IS NOT NULL))
);
CREATE INDEX paas_database_backups_database_id_idx ON paas_database_backups (database_id, id);
CREATE INDEX paas_database_backups_user_id_idx ON paas_database_backups (user_id);
CREATE INDEX paas_database_backups_node_id_idx ON paas_database_backups (node_id);
CREATE INDEX paas_database_backups_task_id_idx ON paas_database_backups (task_id);
CREATE INDEX paas_database_backups_unfinished_idx ON paas_database_backups (status)
    WHERE status IN ('pending', 'running');

-- A restore of a backup into its database (the backup may have expired since).
CREATE TABLE paas_database_restores (
    id          BIGSERIAL PRIMARY KEY,
    database_id BIGINT NOT NULL REFERENCES paas_databases (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    backup_id   BIGINT REFERENCES paas_database_backups (id) ON DELETE SET NULL,
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    task_id     BIGINT REFERENCES paas_tasks (id) ON DELETE SET NULL,
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX paas_database_restores_database_id_idx ON paas_database_restores (database_id, id);
CREATE INDEX paas_database_restores_user_id_idx ON paas_database_restores (user_id);
CREATE INDEX paas_database_restores_backup_id_idx ON paas_database_restores (backup_id);
CREATE INDEX paas_database_restores_task_id_idx ON paas_database_restores (task_id);
CREATE INDEX paas_database_restores_unfinished_idx ON paas_database_restores (status)
    WHERE status IN ('pending', 'running');

-- The data of a database deleted without `purge`: its volume (and dumps)
-- stay on the node until `purge_after`, listed to the admin; `purged_at`
-- once the node's purge task has been queued.
CREATE TABLE paas_kept_volumes (
    id          BIGSERIAL PRIMARY KEY,
    database_id BIGINT NOT NULL UNIQUE,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    node_id     BIGINT NOT NULL REFERENCES paas_nodes (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    db_type     TEXT NOT NULL,
    deleted_at  TIMESTAMPTZ NOT NULL,
    purge_after TIMESTAMPTZ NOT NULL,
    purged_at   TIMESTAMPTZ
);
CREATE INDEX paas_kept_volumes_user_id_idx ON paas_kept_volumes (user_id);
CREATE INDEX paas_kept_volumes_node_id_idx ON paas_kept_volumes (node_id);
CREATE INDEX paas_kept_volumes_purge_after_idx ON paas_kept_volumes (purge_after) WHERE purged_at IS NULL;

ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed',
                    'backup_failed', 'restore_failed'));
