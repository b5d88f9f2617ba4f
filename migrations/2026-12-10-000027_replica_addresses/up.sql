-- Where each control-plane replica answers the others: a request that
-- reaches a replica not owning its application, node or wallet is carried
-- to the owner at this address (an internal call signed with the platform's
-- key). NULL: a replica that takes no calls (it then owns every shard alone).
ALTER TABLE paas_replicas ADD COLUMN address TEXT;
