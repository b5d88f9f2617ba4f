ALTER TABLE paas_replicas DROP COLUMN address;
