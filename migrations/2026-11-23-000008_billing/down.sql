ALTER TABLE paas_applications DROP COLUMN suspended_from;
ALTER TABLE wallets DROP COLUMN negative_noticed;
DROP TABLE paas_notifications;
DROP TABLE paas_billing_runs;
DROP TABLE paas_usage;
