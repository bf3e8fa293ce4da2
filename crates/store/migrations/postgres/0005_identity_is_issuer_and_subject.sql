-- Identity is (issuer, subject), and the client that acts is recorded
-- beside it: a second provider's `alice` is not the first provider's, and
-- another client of the same user is not the client that asked.
-- Rows from before have '' where the issuer or client was not recorded.
-- An approval pending across the upgrade could not tell its requester from
-- anyone else's, nor one approver's old vote from their new one: it is
-- expired here (decided_at: when it was created, its true decision time
-- being unknown) and must be asked again.

ALTER TABLE approvals ADD COLUMN requester_issuer TEXT NOT NULL DEFAULT '';
UPDATE approvals SET status = 'expired', decided_at = created_at WHERE status = 'pending';
-- The same pending action from the same requester through the same client
-- is one approval; another client of that person asks on its own.
DROP INDEX approvals_one_pending;
CREATE UNIQUE INDEX approvals_one_pending
    ON approvals (requester_issuer, requester, client_id, action_digest)
    WHERE status = 'pending';

-- One vote per approver identity; the client it came through is recorded.
ALTER TABLE votes ADD COLUMN approver_issuer TEXT NOT NULL DEFAULT '';
ALTER TABLE votes ADD COLUMN approver_client TEXT NOT NULL DEFAULT '';
ALTER TABLE votes DROP CONSTRAINT votes_pkey;
ALTER TABLE votes ADD PRIMARY KEY (approval_id, approver_issuer, approver);

-- A window grant is the requester's, through the client that asked.
ALTER TABLE grants ADD COLUMN issuer TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
DROP INDEX grants_lookup;
CREATE INDEX grants_lookup ON grants (issuer, subject, client_id, action_digest, expires_at);
