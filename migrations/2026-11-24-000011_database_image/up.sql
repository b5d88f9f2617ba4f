-- The image a managed database was created with (its engine's image then):
-- an engine pointed at another image later leaves running databases alone.
ALTER TABLE paas_databases ADD COLUMN image TEXT;
