-- Control-plane replicas and the shards of actors they own (issue: several
-- replicas on one PostgreSQL). Each application, node and wallet belongs to
-- shard `id mod 64`; a replica owns a shard while its lease row names it and
-- has not expired. Every claim bumps the shard's epoch: a replica renews
-- only the epoch it claimed, so one that was cut off longer than its lease
-- finds its shards taken (the epoch moved) and cannot renew them. Writes
-- fenced by a shard check `owner` and `epoch` in their own transaction.
CREATE TABLE paas_replicas (
    id         UUID PRIMARY KEY,
    hostname   TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    seen_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE paas_shard_leases (
    shard      INTEGER PRIMARY KEY CHECK (shard >= 0 AND shard < 64),
    owner      UUID REFERENCES paas_replicas (id) ON DELETE SET NULL,
    epoch      BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ
);
CREATE INDEX paas_shard_leases_owner_idx ON paas_shard_leases (owner);

INSERT INTO paas_shard_leases (shard) SELECT generate_series(0, 63);
