ALTER TABLE paas_nodes DROP COLUMN image_count, DROP COLUMN image_bytes;
DELETE FROM paas_notifications WHERE kind IN ('app_moved', 'app_unplaced', 'no_room');
ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed',
                    'backup_failed', 'restore_failed', 'build_succeeded', 'build_failed',
                    'app_crashed'));
DROP TABLE paas_app_requests;
ALTER TABLE paas_releases
    DROP COLUMN kind, DROP COLUMN image_id, DROP COLUMN registry_ref, DROP COLUMN image_digest,
    DROP COLUMN pushed_at, DROP COLUMN push_error, DROP COLUMN image_bytes;
