-- Automatic HTTPS: the control plane's ACME account, and the state of each
-- domain's certificate work (attempts, when the next one is due).

-- One ACME account per control plane and directory; its credentials (the
-- account key) sealed like every other secret.
CREATE TABLE paas_acme_accounts (
    id            BIGSERIAL PRIMARY KEY,
    directory_url TEXT NOT NULL UNIQUE,
    credentials   BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- `ssl_attempts`: attempts used of the current request (at most 3);
-- `ssl_due_at`: when the next attempt may run (NULL: nothing to do), the
-- sweeper pushes the job of every domain due; `ssl_request`: numbers each
-- request (add, retry, renewal) so a late job of an earlier one does nothing.
ALTER TABLE paas_domains
    ADD COLUMN ssl_attempts INTEGER NOT NULL DEFAULT 0 CHECK (ssl_attempts BETWEEN 0 AND 10),
    ADD COLUMN ssl_due_at TIMESTAMPTZ,
    ADD COLUMN ssl_request INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN certificate_issued_at TIMESTAMPTZ;
CREATE INDEX paas_domains_ssl_due_at_idx ON paas_domains (ssl_due_at) WHERE ssl_due_at IS NOT NULL;
CREATE INDEX paas_domains_certificate_expires_at_idx ON paas_domains (certificate_expires_at)
    WHERE certificate_expires_at IS NOT NULL;

ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed'));
