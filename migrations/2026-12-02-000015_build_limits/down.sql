ALTER TABLE paas_plans DROP COLUMN build_cpu_limit, DROP COLUMN build_memory_limit,
    DROP COLUMN build_pids_limit;
