-- Customer webhooks: signed HTTP deliveries of the platform's notices.

-- Notices carry a few facts (ids, names: never a secret) for webhook
-- payloads, and an optional key that makes writing the same event twice a no-op.
ALTER TABLE paas_notifications
    ADD COLUMN data JSONB NOT NULL DEFAULT '{}',
    ADD COLUMN dedupe_key TEXT UNIQUE;
ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed',
                    'backup_failed', 'restore_failed', 'build_succeeded', 'build_failed',
                    'app_crashed'));

-- A customer's endpoint and the events it wants; `secret` (sealed) signs
-- every delivery and is shown to the customer once, at creation.
CREATE TABLE paas_webhooks (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    events     TEXT[] NOT NULL,
    secret     BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX paas_webhooks_user_id_idx ON paas_webhooks (user_id);

-- One delivery of one notice to one webhook, with its attempts.
CREATE TABLE paas_webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    webhook_id      BIGINT NOT NULL REFERENCES paas_webhooks (id) ON DELETE CASCADE,
    notification_id BIGINT NOT NULL REFERENCES paas_notifications (id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    response_status INTEGER,
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_attempt_at TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ,
    UNIQUE (webhook_id, notification_id)
);
CREATE INDEX paas_webhook_deliveries_notification_id_idx ON paas_webhook_deliveries (notification_id);
CREATE INDEX paas_webhook_deliveries_status_idx ON paas_webhook_deliveries (status)
    WHERE status = 'pending';
