DROP TABLE paas_database_engines;
