-- Billing: what ran when (usage intervals), which hours have been billed,
-- customers' notices, and what a suspension must bring back.

-- One row per stretch of time a resource ran unchanged: the same plan and
-- instance count. The actors close the open row and open a new one, with the
-- state change that caused it, in one transaction; `ended_at` NULL = running now.
CREATE TABLE paas_usage (
    id            BIGSERIAL PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    resource_type TEXT NOT NULL CHECK (resource_type IN ('application', 'database')),
    resource_id   BIGINT NOT NULL,
    plan_id       BIGINT NOT NULL REFERENCES paas_plans (id),
    instances     INTEGER NOT NULL CHECK (instances > 0),
    started_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
-- At most one open interval per resource.
CREATE UNIQUE INDEX paas_usage_open_idx ON paas_usage (resource_type, resource_id) WHERE ended_at IS NULL;
CREATE INDEX paas_usage_resource_idx ON paas_usage (resource_type, resource_id, started_at);
CREATE INDEX paas_usage_user_id_idx ON paas_usage (user_id);
CREATE INDEX paas_usage_plan_id_idx ON paas_usage (plan_id);
CREATE INDEX paas_usage_period_idx ON paas_usage (started_at, ended_at);
-- Applications running when billing arrives are billed from now on.
INSERT INTO paas_usage (user_id, resource_type, resource_id, plan_id, instances, started_at)
SELECT user_id, 'application', id, plan_id, instance_count, now()
FROM paas_applications WHERE status = 'running' AND instance_count > 0;

-- Billing hours whose job has finished: the hourly tick charges every hour
-- after the newest one here, so hours missed while the control plane was down
-- are charged on its next run (each once: the billing records are unique).
CREATE TABLE paas_billing_runs (
    period_start TIMESTAMPTZ PRIMARY KEY,
    records      INTEGER NOT NULL,
    charged      NUMERIC(14, 4) NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Notices to customers (a negative balance, a suspension, a resume). Stored
-- here and pushed on the `notify` queue; `delivered_at` is set by its worker.
CREATE TABLE paas_notifications (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('balance_negative', 'suspended', 'resumed')),
    message      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at TIMESTAMPTZ
);
CREATE INDEX paas_notifications_user_id_idx ON paas_notifications (user_id, id);
CREATE INDEX paas_notifications_delivered_at_idx ON paas_notifications (delivered_at) WHERE delivered_at IS NULL;

-- The wallet's current spell below zero has been noticed (one notice per spell).
ALTER TABLE wallets ADD COLUMN negative_noticed BOOLEAN NOT NULL DEFAULT false;

-- What a suspended application was before its owner ran out of money: the
-- resume brings back exactly that (a stopped application stays stopped).
ALTER TABLE paas_applications ADD COLUMN suspended_from TEXT;
