-- Releases as the unit of deployment: what made each one, the image it runs
-- by content (the same on every node), and where that image lives in the
-- platform's registry. Requests that wait for a rollout in flight.

ALTER TABLE paas_releases
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'config'
        CHECK (kind IN ('build', 'image', 'config', 'rollback', 'link')),
    -- The image's own digest (its config's sha256, what `docker inspect` calls
    -- its Id): every container of the release runs exactly this.
    ADD COLUMN image_id TEXT,
    -- Where the image is in the platform's registry (repository:tag) and the
    -- manifest's digest there once the push is done.
    ADD COLUMN registry_ref TEXT,
    ADD COLUMN image_digest TEXT,
    ADD COLUMN pushed_at TIMESTAMPTZ,
    ADD COLUMN push_error TEXT,
    -- The image's size when pushed (the registry's share of it, for admins).
    ADD COLUMN image_bytes BIGINT;
UPDATE paas_releases SET kind = CASE
    WHEN description LIKE 'Build #%' THEN 'build'
    WHEN description LIKE 'Rollback to %' THEN 'rollback'
    WHEN description LIKE 'Deploy of image %' THEN 'image'
    WHEN description LIKE 'Link %' OR description LIKE 'Unlink %' THEN 'link'
    ELSE 'config' END;

-- A deploy, rollback or configuration release asked for while another
-- rollout is in flight: it runs after it. One per kind and application: the
-- newest request of a kind replaces an older one. 'move': an application whose
-- node went offline and that no other node could take yet.
CREATE TABLE paas_app_requests (
    id             BIGSERIAL PRIMARY KEY,
    application_id BIGINT NOT NULL REFERENCES paas_applications (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('deploy', 'rollback', 'config', 'move')),
    payload        JSONB NOT NULL DEFAULT '{}',
    requested_by   BIGINT REFERENCES users (id) ON DELETE SET NULL,
    requested_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (application_id, kind)
);
CREATE INDEX paas_app_requests_requested_by_idx ON paas_app_requests (requested_by);

-- What the platform's notices can now say about where an application runs.
ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed',
                    'backup_failed', 'restore_failed', 'build_succeeded', 'build_failed',
                    'app_crashed', 'app_moved', 'app_unplaced', 'no_room'));

-- The images a node holds, as its heartbeats report them (admin statistics).
ALTER TABLE paas_nodes
    ADD COLUMN image_count INTEGER,
    ADD COLUMN image_bytes BIGINT;
