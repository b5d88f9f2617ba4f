-- Process types (Heroku's Procfile model). An application runs `web`
-- (`instance_count`) and any other types of its release as its formation
-- says (`{"worker": 2}`, counts above zero only); capacity and billing
-- count every process instance.
ALTER TABLE paas_applications ADD COLUMN formation JSONB NOT NULL DEFAULT '{}';
-- An image application's declared processes (a git application's come from
-- its Procfile), and the release phase's command when the Procfile has none.
ALTER TABLE paas_applications ADD COLUMN processes JSONB;
ALTER TABLE paas_applications ADD COLUMN release_command TEXT;

-- A release is `pending` until its first rollout ends: `succeeded`, or
-- `failed` with why (its release phase or its instances), or `superseded`
-- when a later release was rolled out first.
ALTER TABLE paas_releases ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
ALTER TABLE paas_releases ADD COLUMN failure TEXT;
UPDATE paas_releases SET status = 'succeeded';
CREATE INDEX paas_releases_status_idx ON paas_releases (status) WHERE status = 'pending';

ALTER TABLE paas_instances ADD COLUMN process_type TEXT NOT NULL DEFAULT 'web';
-- When the control plane first saw the container running since its last
-- (re)start: a process's uptime in `sky ps`.
ALTER TABLE paas_instances ADD COLUMN started_at TIMESTAMPTZ;

-- A release whose release phase (or rollout) failed tells its owner.
ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed',
                    'backup_failed', 'restore_failed', 'build_succeeded', 'build_failed',
                    'app_crashed', 'app_moved', 'app_unplaced', 'no_room', 'release_failed'));
