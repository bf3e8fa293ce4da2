-- The approval portal: sign-ins in progress, sessions, and the short codes
-- a requester types to confirm their own action. Secrets (the `state` of a
-- sign-in, a session's id) are kept only as SHA-256 digests, so reading
-- the database does not let anyone finish a sign-in or wear a session.
CREATE TABLE portal_logins (
    state_hash TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    verifier TEXT NOT NULL,
    return_to TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE portal_sessions (
    id_hash TEXT PRIMARY KEY,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    credential TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT
);

CREATE INDEX portal_sessions_expires ON portal_sessions (expires_at);

CREATE TABLE portal_codes (
    code TEXT PRIMARY KEY,
    approval_id TEXT NOT NULL UNIQUE REFERENCES approvals (id)
);
