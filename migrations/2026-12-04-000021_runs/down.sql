DELETE FROM paas_usage WHERE resource_type = 'run';
DELETE FROM paas_billing_records WHERE resource_type = 'run';
ALTER TABLE paas_usage DROP CONSTRAINT paas_usage_resource_type_check;
ALTER TABLE paas_usage ADD CONSTRAINT paas_usage_resource_type_check
    CHECK (resource_type IN ('application', 'database'));
ALTER TABLE paas_billing_records DROP CONSTRAINT paas_billing_records_resource_type_check;
ALTER TABLE paas_billing_records ADD CONSTRAINT paas_billing_records_resource_type_check
    CHECK (resource_type IN ('application', 'database'));
DROP TABLE paas_runs;
