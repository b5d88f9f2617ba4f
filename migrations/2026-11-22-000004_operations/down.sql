DROP TABLE audit_log;
DROP TABLE paas_billing_records;
DROP TABLE paas_tasks;
