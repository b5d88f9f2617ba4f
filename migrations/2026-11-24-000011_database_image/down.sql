ALTER TABLE paas_databases DROP COLUMN image;
