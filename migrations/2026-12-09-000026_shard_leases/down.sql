DROP TABLE paas_shard_leases;
DROP TABLE paas_replicas;
