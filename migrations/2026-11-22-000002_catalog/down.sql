DROP TABLE paas_nodes;
DROP TABLE paas_plans;
DROP TABLE paas_runtimes;
