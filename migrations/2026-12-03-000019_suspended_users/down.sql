DROP INDEX IF EXISTS users_suspended_at_idx;
ALTER TABLE users DROP COLUMN suspension_reason;
ALTER TABLE users DROP COLUMN suspended_at;
