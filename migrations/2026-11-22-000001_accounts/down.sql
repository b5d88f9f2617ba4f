DROP TABLE wallet_transactions;
DROP TABLE wallets;
DROP TABLE api_tokens;
DROP TABLE users;
DROP FUNCTION skypanel_set_updated_at();
