-- An admin can suspend a customer's account (abuse, an unpaid invoice
-- outside the wallet, a court order): their applications and databases stop
-- with their data kept, nothing new can be created or deployed, and the
-- customer reads why. Resuming clears both columns.
ALTER TABLE users ADD COLUMN suspended_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN suspension_reason TEXT;
CREATE INDEX users_suspended_at_idx ON users (suspended_at) WHERE suspended_at IS NOT NULL;
