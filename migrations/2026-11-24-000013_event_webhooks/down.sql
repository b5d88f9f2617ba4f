DROP TABLE paas_webhook_deliveries;
DROP TABLE paas_webhooks;
DELETE FROM paas_notifications WHERE kind IN ('build_succeeded', 'build_failed', 'app_crashed');
ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed',
                    'backup_failed', 'restore_failed'));
ALTER TABLE paas_notifications DROP COLUMN dedupe_key, DROP COLUMN data;
