-- What a build of an application on a plan may use on its node: CPU, memory
-- and processes (a build runs a customer's commands).
ALTER TABLE paas_plans
    ADD COLUMN build_cpu_limit INTEGER NOT NULL DEFAULT 1000 CHECK (build_cpu_limit > 0),
    ADD COLUMN build_memory_limit INTEGER NOT NULL DEFAULT 2048 CHECK (build_memory_limit > 0),
    ADD COLUMN build_pids_limit INTEGER NOT NULL DEFAULT 1024 CHECK (build_pids_limit > 0);
