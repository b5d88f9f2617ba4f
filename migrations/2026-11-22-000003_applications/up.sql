-- Customer resources: applications with their builds, releases, environment,
-- domains, and managed databases with their links to applications.

CREATE TABLE paas_applications (
    id                 BIGSERIAL PRIMARY KEY,
    user_id            BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    slug               TEXT NOT NULL UNIQUE,
    runtime_id         BIGINT REFERENCES paas_runtimes (id),
    plan_id            BIGINT NOT NULL REFERENCES paas_plans (id),
    node_id            BIGINT REFERENCES paas_nodes (id),
    region             TEXT NOT NULL,
    git_repo_url       TEXT,
    git_branch         TEXT NOT NULL DEFAULT 'main',
    git_oauth_token    BYTEA,  -- sealed with AES-256-GCM
    image              TEXT,   -- a prebuilt image instead of a repository
    port               INTEGER NOT NULL DEFAULT 8080 CHECK (port BETWEEN 1 AND 65535),
    health_check_path  TEXT,
    auto_deploy        BOOLEAN NOT NULL DEFAULT false,
    status             TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'building', 'running', 'stopped', 'failed', 'suspended')),
    current_build_id   BIGINT,
    current_release_id BIGINT,
    instance_count     INTEGER NOT NULL DEFAULT 1 CHECK (instance_count BETWEEN 1 AND 10),
    system_domain      TEXT NOT NULL UNIQUE,
    -- Bumped by every state change: writers check it to detect a concurrent change.
    version            BIGINT NOT NULL DEFAULT 0,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (git_repo_url IS NULL OR image IS NULL)
);
CREATE INDEX paas_applications_user_id_idx ON paas_applications (user_id);
CREATE INDEX paas_applications_runtime_id_idx ON paas_applications (runtime_id);
CREATE INDEX paas_applications_plan_id_idx ON paas_applications (plan_id);
CREATE INDEX paas_applications_node_id_idx ON paas_applications (node_id);
CREATE INDEX paas_applications_status_idx ON paas_applications (status);
CREATE INDEX paas_applications_region_idx ON paas_applications (region);
CREATE TRIGGER paas_applications_updated_at BEFORE UPDATE ON paas_applications
    FOR EACH ROW EXECUTE FUNCTION skypanel_set_updated_at();

CREATE TABLE paas_builds (
    id                 BIGSERIAL PRIMARY KEY,
    application_id     BIGINT NOT NULL REFERENCES paas_applications (id) ON DELETE CASCADE,
    build_number       INTEGER NOT NULL,
    git_commit_sha     TEXT,
    git_commit_message TEXT,
    status             TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'building', 'success', 'failed', 'cancelled')),
    build_log          TEXT NOT NULL DEFAULT '',
    image_tag          TEXT,
    failure_reason     TEXT,
    node_id            BIGINT REFERENCES paas_nodes (id) ON DELETE SET NULL,
    attempt            INTEGER NOT NULL DEFAULT 0,
    started_at         TIMESTAMPTZ,
    completed_at       TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (application_id, build_number)
);
CREATE INDEX paas_builds_status_idx ON paas_builds (status);
CREATE INDEX paas_builds_node_id_idx ON paas_builds (node_id);

-- Every successful build, and every rollback, is a release. config holds the
-- non-secret settings; env_snapshot the sealed environment it ran with.
CREATE TABLE paas_releases (
    id             BIGSERIAL PRIMARY KEY,
    application_id BIGINT NOT NULL REFERENCES paas_applications (id) ON DELETE CASCADE,
    version        INTEGER NOT NULL,
    build_id       BIGINT REFERENCES paas_builds (id) ON DELETE SET NULL,
    image_tag      TEXT NOT NULL,
    config         JSONB NOT NULL DEFAULT '{}',
    env_snapshot   BYTEA,
    description    TEXT NOT NULL DEFAULT '',
    created_by     BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (application_id, version)
);
CREATE INDEX paas_releases_build_id_idx ON paas_releases (build_id);
CREATE INDEX paas_releases_created_by_idx ON paas_releases (created_by);

ALTER TABLE paas_applications
    ADD CONSTRAINT paas_applications_current_build_fk
        FOREIGN KEY (current_build_id) REFERENCES paas_builds (id) ON DELETE SET NULL,
    ADD CONSTRAINT paas_applications_current_release_fk
        FOREIGN KEY (current_release_id) REFERENCES paas_releases (id) ON DELETE SET NULL;
CREATE INDEX paas_applications_current_build_id_idx ON paas_applications (current_build_id);
CREATE INDEX paas_applications_current_release_id_idx ON paas_applications (current_release_id);

-- Values sealed with AES-256-GCM; the associated data is (application_id, key).
CREATE TABLE paas_environment_vars (
    id             BIGSERIAL PRIMARY KEY,
    application_id BIGINT NOT NULL REFERENCES paas_applications (id) ON DELETE CASCADE,
    key            TEXT NOT NULL,
    value          BYTEA NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (application_id, key)
);
CREATE TRIGGER paas_environment_vars_updated_at BEFORE UPDATE ON paas_environment_vars
    FOR EACH ROW EXECUTE FUNCTION skypanel_set_updated_at();

-- The system domain (<slug>.<platform domain>) and custom domains of each app.
-- A hostname belongs to one application across all customers.
CREATE TABLE paas_domains (
    id                     BIGSERIAL PRIMARY KEY,
    application_id         BIGINT NOT NULL REFERENCES paas_applications (id) ON DELETE CASCADE,
    hostname               TEXT NOT NULL UNIQUE CHECK (hostname = lower(hostname)),
    is_system              BOOLEAN NOT NULL DEFAULT false,
    ssl_status             TEXT NOT NULL DEFAULT 'none'
        CHECK (ssl_status IN ('none', 'pending', 'active', 'failed')),
    ssl_error              TEXT,
    certificate_pem        TEXT,
    private_key            BYTEA,  -- sealed
    certificate_expires_at TIMESTAMPTZ,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX paas_domains_application_id_idx ON paas_domains (application_id);
CREATE INDEX paas_domains_ssl_status_idx ON paas_domains (ssl_status);
CREATE TRIGGER paas_domains_updated_at BEFORE UPDATE ON paas_domains
    FOR EACH ROW EXECUTE FUNCTION skypanel_set_updated_at();

CREATE TABLE paas_databases (
    id             BIGSERIAL PRIMARY KEY,
    user_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    db_type        TEXT NOT NULL CHECK (db_type IN ('postgresql', 'mysql', 'redis', 'mongodb')),
    version        TEXT NOT NULL,
    plan_id        BIGINT NOT NULL REFERENCES paas_plans (id),
    node_id        BIGINT REFERENCES paas_nodes (id),
    region         TEXT NOT NULL,
    host           TEXT,
    port           INTEGER,
    username       TEXT,
    password       BYTEA,  -- sealed
    database_name  TEXT,
    status         TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'stopped', 'failed', 'suspended')),
    failure_reason TEXT,
    container_id   TEXT,
    volume_path    TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, name)
);
CREATE INDEX paas_databases_plan_id_idx ON paas_databases (plan_id);
CREATE INDEX paas_databases_node_id_idx ON paas_databases (node_id);
CREATE INDEX paas_databases_status_idx ON paas_databases (status);
CREATE TRIGGER paas_databases_updated_at BEFORE UPDATE ON paas_databases
    FOR EACH ROW EXECUTE FUNCTION skypanel_set_updated_at();

CREATE TABLE paas_app_databases (
    id             BIGSERIAL PRIMARY KEY,
    application_id BIGINT NOT NULL REFERENCES paas_applications (id) ON DELETE CASCADE,
    database_id    BIGINT NOT NULL REFERENCES paas_databases (id) ON DELETE CASCADE,
    env_var_prefix TEXT NOT NULL DEFAULT 'DATABASE',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (application_id, database_id),
    UNIQUE (application_id, env_var_prefix)
);
CREATE INDEX paas_app_databases_database_id_idx ON paas_app_databases (database_id);
