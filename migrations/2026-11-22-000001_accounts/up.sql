-- Accounts: users, API tokens, prepaid wallets and their ledger, and the
-- trigger that keeps updated_at current on every table that has one.

CREATE FUNCTION skypanel_set_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash TEXT NOT NULL,
    name          TEXT,
    role          TEXT NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX users_role_idx ON users (role);
CREATE TRIGGER users_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION skypanel_set_updated_at();

-- Long-lived API tokens: only the SHA-256 digest of the secret is kept.
CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_digest TEXT NOT NULL UNIQUE,
    token_hint   TEXT NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);

-- One wallet per user. balance always equals the sum of the ledger below
-- (credits minus debits); both change in one transaction.
CREATE TABLE wallets (
    id             BIGSERIAL PRIMARY KEY,
    user_id        BIGINT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    balance        NUMERIC(14, 4) NOT NULL DEFAULT 0,
    currency       TEXT NOT NULL DEFAULT 'USD',
    negative_since TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER wallets_updated_at BEFORE UPDATE ON wallets
    FOR EACH ROW EXECUTE FUNCTION skypanel_set_updated_at();

CREATE TABLE wallet_transactions (
    id            BIGSERIAL PRIMARY KEY,
    wallet_id     BIGINT NOT NULL REFERENCES wallets (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('credit', 'debit')),
    amount        NUMERIC(14, 4) NOT NULL CHECK (amount > 0),
    balance_after NUMERIC(14, 4) NOT NULL,
    description   TEXT NOT NULL,
    -- Idempotency key of the change (a payment id, a billing period): a second
    -- change with the same reference is refused by the database.
    reference     TEXT UNIQUE,
    created_by    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX wallet_transactions_wallet_id_idx ON wallet_transactions (wallet_id, id);
CREATE INDEX wallet_transactions_created_by_idx ON wallet_transactions (created_by);
CREATE INDEX wallet_transactions_kind_idx ON wallet_transactions (kind);
