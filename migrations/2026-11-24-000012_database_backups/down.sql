DELETE FROM paas_notifications WHERE kind IN ('backup_failed', 'restore_failed');
ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed'));
DROP TABLE paas_kept_volumes;
DROP TABLE paas_database_restores;
DROP TABLE paas_database_backups;
