-- AuthZEN Access Request and Approval (ARAP): a submission's
-- Idempotency-Key, scoped to the caller that sent it, remembers the body
-- it came with (as a SHA-256 digest) and the task (approval) it opened,
-- so a retry finds the same task and a different body under the same key
-- is refused.
CREATE TABLE access_requests (
    caller TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    created_at BIGINT NOT NULL,
    keep_until BIGINT NOT NULL,
    PRIMARY KEY (caller, idempotency_key)
);

CREATE INDEX access_requests_keep_until ON access_requests (keep_until);

-- The callbacks a PEP asked for on a task: told (through the webhook
-- outbox, to a receiver registered in the settings) when the task reaches
-- a terminal status, in the transaction that decides it.
CREATE TABLE task_callbacks (
    id TEXT PRIMARY KEY,
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    hook TEXT NOT NULL,
    state TEXT,
    events TEXT NOT NULL,
    status_endpoint TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX task_callbacks_approval ON task_callbacks (approval_id);
