-- AuthZEN ARAP bulk submissions (`items`): one task over several
-- (resource, action) items, each item the approval a single submission of
-- it opens or joins, in the order submitted. The task's status is the
-- profile's aggregate of its items' statuses, computed when read.
CREATE TABLE access_request_bundles (
    id TEXT PRIMARY KEY,
    requester_issuer TEXT NOT NULL,
    requester TEXT NOT NULL,
    client_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    keep_until BIGINT NOT NULL
);

CREATE INDEX access_request_bundles_keep_until ON access_request_bundles (keep_until);

CREATE TABLE access_request_bundle_items (
    bundle_id TEXT NOT NULL REFERENCES access_request_bundles (id),
    ordinal INTEGER NOT NULL,
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    resource TEXT NOT NULL,
    action TEXT NOT NULL,
    PRIMARY KEY (bundle_id, ordinal)
);

CREATE INDEX access_request_bundle_items_approval ON access_request_bundle_items (approval_id);

-- A bundle's callbacks are told when its aggregate status becomes terminal
-- (in the transaction that decides its last item), and again only if that
-- aggregate changes (`told_status` remembers what was told).
CREATE TABLE bundle_callbacks (
    id TEXT PRIMARY KEY,
    bundle_id TEXT NOT NULL REFERENCES access_request_bundles (id),
    hook TEXT NOT NULL,
    state TEXT,
    events TEXT NOT NULL,
    status_endpoint TEXT NOT NULL,
    told_status TEXT,
    created_at BIGINT NOT NULL
);

CREATE INDEX bundle_callbacks_bundle ON bundle_callbacks (bundle_id);

-- A bulk submission's Idempotency-Key names its bundle; `approval_id` is
-- then its first item's approval.
ALTER TABLE access_requests ADD COLUMN bundle_id TEXT REFERENCES access_request_bundles (id);
