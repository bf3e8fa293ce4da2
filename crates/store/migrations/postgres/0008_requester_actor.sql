-- Who acts for the requester when an agent does (RFC 8693 `act`, the
-- current actor's `sub`), so approvers see that an agent asks for a
-- person. NULL when the person's own client asks.
ALTER TABLE approvals ADD COLUMN requester_actor TEXT;
