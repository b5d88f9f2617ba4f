-- The platform's GitHub App (one per platform): what the admin configures,
-- with the client secret, the private key and the webhook secret sealed
-- together in `secrets` (JSON, associated data `paas_github_app.secrets:<id>`).
CREATE TABLE paas_github_app (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    app_id      BIGINT NOT NULL CHECK (app_id > 0),
    slug        TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    secrets     BYTEA NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The `state` of an authorization in flight: SHA-256 of the value handed to
-- GitHub, bound to the customer who asked, used once, 10 minutes long.
CREATE TABLE paas_github_states (
    digest      TEXT PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX paas_github_states_user_id ON paas_github_states (user_id);
CREATE INDEX paas_github_states_expires_at ON paas_github_states (expires_at);

-- Installations of the App a customer connected (GitHub vouched, through the
-- customer's own authorization, that they can reach it). An organisation's
-- installation may be connected by several customers.
CREATE TABLE paas_github_installations (
    id               BIGSERIAL PRIMARY KEY,
    user_id          BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    installation_id  BIGINT NOT NULL,
    account_login    TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, installation_id)
);
CREATE INDEX paas_github_installations_installation_id
    ON paas_github_installations (installation_id);

-- An application built from a GitHub repository through an installation.
-- `disconnected_at`: the installation was removed or suspended on GitHub;
-- pushes no longer deploy and builds cannot clone until it is back.
CREATE TABLE paas_app_github (
    application_id   BIGINT PRIMARY KEY REFERENCES paas_applications (id) ON DELETE CASCADE,
    installation_id  BIGINT NOT NULL,
    repository       TEXT NOT NULL,
    disconnected_at  TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX paas_app_github_installation_id ON paas_app_github (installation_id);
CREATE INDEX paas_app_github_repository ON paas_app_github (lower(repository));

-- Webhook deliveries already acted on (`X-GitHub-Delivery`): a redelivery
-- does nothing. Kept a week.
CREATE TABLE paas_github_deliveries (
    delivery_id  TEXT PRIMARY KEY,
    event        TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX paas_github_deliveries_received_at ON paas_github_deliveries (received_at);

-- An application whose installation went away tells its owner.
ALTER TABLE paas_notifications DROP CONSTRAINT paas_notifications_kind_check;
ALTER TABLE paas_notifications ADD CONSTRAINT paas_notifications_kind_check
    CHECK (kind IN ('balance_negative', 'suspended', 'resumed', 'ssl_failed', 'ssl_renewal_failed',
                    'backup_failed', 'restore_failed', 'build_succeeded', 'build_failed',
                    'app_crashed', 'app_moved', 'app_unplaced', 'no_room', 'release_failed',
                    'github_disconnected'));
