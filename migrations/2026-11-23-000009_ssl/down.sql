DELETE FROM paas_notifications WHERE kind IN ('ssl_failed', 'ssl_renewal_failed');
ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed'));
DROP INDEX paas_domains_certificate_expires_at_idx;
DROP INDEX paas_domains_ssl_due_at_idx;
ALTER TABLE paas_domains
    DROP COLUMN certificate_issued_at,
    DROP COLUMN ssl_request,
    DROP COLUMN ssl_due_at,
    DROP COLUMN ssl_attempts;
DROP TABLE paas_acme_accounts;
