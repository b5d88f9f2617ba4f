-- The catalog admins manage: hosting plans, runtimes, and worker nodes.

CREATE TABLE paas_runtimes (
    id                BIGSERIAL PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    runtime_type      TEXT NOT NULL CHECK (runtime_type IN ('node', 'python', 'php', 'static', 'docker')),
    version           TEXT NOT NULL,
    base_image        TEXT NOT NULL,
    default_build_cmd TEXT,
    default_start_cmd TEXT,
    is_active         BOOLEAN NOT NULL DEFAULT true,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX paas_runtimes_is_active_idx ON paas_runtimes (is_active);
CREATE TRIGGER paas_runtimes_updated_at BEFORE UPDATE ON paas_runtimes
    FOR EACH ROW EXECUTE FUNCTION skypanel_set_updated_at();

-- Official images; a machine without a registry registers local ones instead.
INSERT INTO paas_runtimes (name, runtime_type, version, base_image, default_build_cmd, default_start_cmd) VALUES
    ('Node.js 20', 'node', '20', 'node:20-slim', 'npm install --omit=dev', 'npm start'),
    ('Python 3.12', 'python', '3.12', 'python:3.12-slim', 'pip install --no-cache-dir -r requirements.txt', 'python app.py'),
    ('PHP 8.3', 'php', '8.3', 'php:8.3-cli', NULL, 'php -S 0.0.0.0:${PORT} -t /app'),
    ('Static', 'static', '1', 'busybox:1.36', NULL, 'httpd -f -v -p ${PORT} -h /app'),
    ('Dockerfile', 'docker', '1', 'scratch', NULL, NULL);

-- cpu_limit in millicores (1000 = one core), memory and storage in MB.
-- supported_runtimes lists runtime ids; empty means every runtime.
CREATE TABLE paas_plans (
    id                 BIGSERIAL PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    cpu_limit          INTEGER NOT NULL CHECK (cpu_limit > 0),
    memory_limit       INTEGER NOT NULL CHECK (memory_limit > 0),
    storage_limit      INTEGER NOT NULL CHECK (storage_limit > 0),
    monthly_price      NUMERIC(10, 2) NOT NULL CHECK (monthly_price >= 0),
    hourly_rate        NUMERIC(10, 4) NOT NULL CHECK (hourly_rate >= 0),
    supported_runtimes BIGINT[] NOT NULL DEFAULT '{}'
        CHECK (array_position(supported_runtimes, NULL) IS NULL),
    is_active          BOOLEAN NOT NULL DEFAULT true,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX paas_plans_is_active_idx ON paas_plans (is_active);
CREATE INDEX paas_plans_supported_runtimes_idx ON paas_plans USING GIN (supported_runtimes);
CREATE TRIGGER paas_plans_updated_at BEFORE UPDATE ON paas_plans
    FOR EACH ROW EXECUTE FUNCTION skypanel_set_updated_at();

-- Worker nodes. Secrets are kept as SHA-256 digests only: the one-time
-- registration token, and the per-node credential the agent gets for it.
-- cpu_* in millicores, memory_* and disk_* in MB.
CREATE TABLE paas_nodes (
    id                        BIGSERIAL PRIMARY KEY,
    name                      TEXT NOT NULL UNIQUE,
    region                    TEXT NOT NULL,
    host_address              TEXT NOT NULL,
    registration_token_digest TEXT UNIQUE,
    registration_expires_at   TIMESTAMPTZ,
    credential_digest         TEXT UNIQUE,
    credential_issued_at      TIMESTAMPTZ,
    status                    TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'online', 'degraded', 'offline', 'disabled')),
    cpu_total                 INTEGER NOT NULL DEFAULT 0,
    memory_total              INTEGER NOT NULL DEFAULT 0,
    disk_total                INTEGER NOT NULL DEFAULT 0,
    cpu_used                  INTEGER NOT NULL DEFAULT 0,
    memory_used               INTEGER NOT NULL DEFAULT 0,
    disk_used                 INTEGER NOT NULL DEFAULT 0,
    container_count           INTEGER NOT NULL DEFAULT 0,
    agent_version             TEXT,
    last_heartbeat            TIMESTAMPTZ,
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX paas_nodes_status_idx ON paas_nodes (status);
CREATE INDEX paas_nodes_region_idx ON paas_nodes (region);
CREATE TRIGGER paas_nodes_updated_at BEFORE UPDATE ON paas_nodes
    FOR EACH ROW EXECUTE FUNCTION skypanel_set_updated_at();
