-- Per-requester quotas count a requester's pending approvals (the pending
-- unique index serves that) and the approvals they opened recently, which
-- this index serves without scanning the table.
CREATE INDEX approvals_requester_created ON approvals (requester_issuer, requester, created_at);
