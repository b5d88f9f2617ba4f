DELETE FROM paas_notifications WHERE kind IN ('database_moved', 'database_move_failed');
ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed',
                    'backup_failed', 'restore_failed', 'build_succeeded', 'build_failed',
                    'app_crashed', 'app_moved', 'app_unplaced', 'no_room', 'release_failed',
                    'github_disconnected', 'database_stopped', 'database_resized',
                    'database_failed'));
DROP TABLE paas_database_moves;
