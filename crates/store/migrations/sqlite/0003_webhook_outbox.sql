-- Webhook deliveries waiting to be (re)tried, so a restart loses none.
-- `hook` is the hex SHA-256 of the receiver's URL (a Slack URL is a
-- secret: it stays in the server's settings, not here).
CREATE TABLE webhook_deliveries (
    id              TEXT    PRIMARY KEY,
    hook            TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      INTEGER  NOT NULL,
    next_attempt_at INTEGER  NOT NULL,
    attempts        INTEGER  NOT NULL DEFAULT 0,
    delivered_at    INTEGER,
    given_up_at     INTEGER,
    last_error      TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
