-- A deleted account keeps its row for accounting (its ledger and billing
-- records point at it) with the e-mail replaced, so the address is free to
-- register again; deleted_at says when, and nothing logs in as it.
ALTER TABLE users ADD COLUMN deleted_at TIMESTAMPTZ;
