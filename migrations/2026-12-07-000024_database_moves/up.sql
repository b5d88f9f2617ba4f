-- A database moved to another node because its own had no room for its new
-- plan: dumped on the node it leaves, copied through the control plane,
-- restored on the node it goes to. One move at a time per database.
CREATE TABLE paas_database_moves (
    id                BIGSERIAL PRIMARY KEY,
    database_id       BIGINT NOT NULL REFERENCES paas_databases (id) ON DELETE CASCADE,
    from_node_id      BIGINT NOT NULL,
    to_node_id        BIGINT NOT NULL,
    from_plan_id      BIGINT NOT NULL,
    to_plan_id        BIGINT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'exporting'
                      CHECK (status IN ('exporting', 'importing', 'succeeded', 'failed')),
    export_task_id    BIGINT,
    import_task_id    BIGINT,
    size_bytes        BIGINT,
    sha256            TEXT,
    estimated_seconds INTEGER NOT NULL,
    error             TEXT,
    started_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ
);
CREATE INDEX paas_database_moves_database_id ON paas_database_moves (database_id);
CREATE INDEX paas_database_moves_status ON paas_database_moves (status);
CREATE UNIQUE INDEX paas_database_moves_one_active ON paas_database_moves (database_id)
    WHERE status IN ('exporting', 'importing');

ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed',
                    'backup_failed', 'restore_failed', 'build_succeeded', 'build_failed',
                    'app_crashed', 'app_moved', 'app_unplaced', 'no_room', 'release_failed',
                    'github_disconnected', 'database_stopped', 'database_resized',
                    'database_failed', 'database_moved', 'database_move_failed'));
