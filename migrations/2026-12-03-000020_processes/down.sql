DELETE FROM paas_notifications WHERE kind = 'release_failed';
ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed',
                    'backup_failed', 'restore_failed', 'build_succeeded', 'build_failed',
                    'app_crashed', 'app_moved', 'app_unplaced', 'no_room'));
ALTER TABLE paas_instances DROP COLUMN started_at;
ALTER TABLE paas_instances DROP COLUMN process_type;
DROP INDEX paas_releases_status_idx;
ALTER TABLE paas_releases DROP COLUMN failure;
ALTER TABLE paas_releases DROP COLUMN status;
ALTER TABLE paas_applications DROP COLUMN release_command;
ALTER TABLE paas_applications DROP COLUMN processes;
ALTER TABLE paas_applications DROP COLUMN formation;
