-- Greenlight store, SQLite. Times are Unix seconds; JSON is stored as text.
-- Keep in step with ../postgres/0001_initial.sql: the same tables, columns
-- and constraints, in each database's own types.

CREATE TABLE approvals (
    -- Insertion order, for "newest first" between approvals created in the
    -- same second. Internal: never exposed.
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,
    id                    TEXT    NOT NULL UNIQUE,
    status                TEXT    NOT NULL
        CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'revoked')),
    requester             TEXT    NOT NULL,
    client_id             TEXT    NOT NULL,
    action_digest         TEXT    NOT NULL,
    action                TEXT    NOT NULL,
    authorization_details TEXT    NOT NULL,
    obligation            TEXT    NOT NULL,
    binding_message       TEXT,
    reason                TEXT,
    policy_hash           TEXT    NOT NULL,
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL,
    decided_at            INTEGER,
    poll_interval_seconds INTEGER NOT NULL,
    last_polled_at        INTEGER,
    delivered_at          INTEGER,
    delivered_jti         TEXT
);

-- The same pending action from the same requester is one approval.
CREATE UNIQUE INDEX approvals_one_pending
    ON approvals (requester, action_digest) WHERE status = 'pending';
CREATE INDEX approvals_by_status ON approvals (status, seq);
CREATE INDEX approvals_pending_expiry ON approvals (expires_at) WHERE status = 'pending';

CREATE TABLE votes (
    approval_id TEXT    NOT NULL REFERENCES approvals (id),
    approver    TEXT    NOT NULL,
    decision    TEXT    NOT NULL CHECK (decision IN ('approve', 'deny')),
    reason      TEXT,
    at          INTEGER NOT NULL,
    -- One vote per approver: approving twice counts once.
    PRIMARY KEY (approval_id, approver)
);

CREATE TABLE grants (
    id            TEXT    PRIMARY KEY,
    -- One window grant per approval.
    approval_id   TEXT    NOT NULL UNIQUE REFERENCES approvals (id),
    subject       TEXT    NOT NULL,
    action_digest TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX grants_lookup ON grants (subject, action_digest, expires_at);

-- Used single-use token ids, kept until their tokens expire.
CREATE TABLE consumed_tokens (
    jti         TEXT    PRIMARY KEY,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER NOT NULL
);
CREATE INDEX consumed_tokens_expiry ON consumed_tokens (expires_at);

CREATE TABLE signing_keys (
    kid             TEXT    PRIMARY KEY,
    algorithm       TEXT    NOT NULL,
    private_key_pem TEXT    NOT NULL,
    public_jwk      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    retired_at      INTEGER,
    publish_until   INTEGER
);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    -- No foreign key: the log outlives anything it mentions.
    approval_id TEXT,
    detail      TEXT    NOT NULL
);
CREATE INDEX audit_events_by_approval ON audit_events (approval_id, id);

-- The audit log is append-only, whoever connects.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
