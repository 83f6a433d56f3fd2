-- Initial schema. Times are Unix seconds (UTC). Codes compare with BINARY collation, so they are
-- case-sensitive. Links are never removed: a deleted link keeps its row (deleted_at) so that the
-- UNIQUE constraint on code also forbids reissuing it.
CREATE TABLE api_keys (
    row_id     INTEGER PRIMARY KEY,
    id         TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL CHECK (role IN ('admin', 'user')),
    key_hash   BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE links (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    code         TEXT    NOT NULL UNIQUE,
    url          TEXT    NOT NULL,
    title        TEXT,
    tags         TEXT    NOT NULL DEFAULT '[]',
    owner        INTEGER NOT NULL REFERENCES api_keys (row_id),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    max_clicks   INTEGER,
    disabled     INTEGER NOT NULL DEFAULT 0,
    deleted_at   INTEGER
);
CREATE INDEX links_by_owner ON links (owner, id);

-- The view counter's aggregates: one row per link and hour, one per link, day and referrer host.
-- A link's all-time total is the sum of its hours; direct clicks are the day's clicks minus the
-- referred ones, so a flush of direct traffic writes one row per link and nothing else.
CREATE TABLE clicks_hourly (
    link_id INTEGER NOT NULL,
    hour    INTEGER NOT NULL,
    clicks  INTEGER NOT NULL,
    PRIMARY KEY (link_id, hour)
) WITHOUT ROWID;

CREATE TABLE referrers_daily (
    link_id INTEGER NOT NULL,
    day     INTEGER NOT NULL,
    host    TEXT    NOT NULL,
    clicks  INTEGER NOT NULL,
    PRIMARY KEY (link_id, day, host)
) WITHOUT ROWID;

CREATE TABLE idempotency (
    key_row_id   INTEGER NOT NULL,
    idem_key     TEXT    NOT NULL,
    request_hash BLOB    NOT NULL,
    link_id      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (key_row_id, idem_key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency (created_at);
