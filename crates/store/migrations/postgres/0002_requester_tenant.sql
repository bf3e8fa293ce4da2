-- The requester's tenant claim, for approvers scoped to the requester's
-- tenant (`group:NAME@tenant`). Empty or NULL when the token has none.
ALTER TABLE approvals ADD COLUMN requester_tenant TEXT;
