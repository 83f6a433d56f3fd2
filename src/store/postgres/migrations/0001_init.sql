-- The whole schema of the PostgreSQL store: the tables of the SQLite migrations, with the same
-- meaning, as they are after all of them (times are Unix seconds, UTC). Codes use the "C"
-- collation: equality is byte-wise (case-sensitive) and orderings match SQLite's BINARY.
-- Links are never removed: a deleted link keeps its row (deleted_at) so that the UNIQUE
-- constraint on code also forbids reissuing it.
CREATE TABLE api_keys (
    row_id     BIGSERIAL PRIMARY KEY,
    id         TEXT   NOT NULL UNIQUE,
    name       TEXT   NOT NULL,
    role       TEXT   NOT NULL CHECK (role IN ('admin', 'user')),
    key_hash   BYTEA  NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE links (
    id         BIGSERIAL PRIMARY KEY,
    code       TEXT COLLATE "C" NOT NULL UNIQUE,
    url        TEXT    NOT NULL,
    title      TEXT,
    tags       TEXT    NOT NULL DEFAULT '[]',
    owner      BIGINT  NOT NULL REFERENCES api_keys (row_id),
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    expires_at BIGINT,
    max_clicks BIGINT,
    disabled   BOOLEAN NOT NULL DEFAULT false,
    deleted_at BIGINT
);
CREATE INDEX links_by_owner ON links (owner, id);

CREATE TABLE idempotency (
    key_row_id   BIGINT NOT NULL,
    idem_key     TEXT COLLATE "C" NOT NULL,
    request_hash BYTEA  NOT NULL,
    link_id      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (key_row_id, idem_key)
);
CREATE INDEX idempotency_by_age ON idempotency (created_at);

-- The view counter's aggregates. A link's all-time total is the sum of its hourly rows and of
-- the daily rows older hours are rolled up into; bot clicks are counted apart (and included
-- in clicks).
CREATE TABLE clicks_hourly (
    link_id    BIGINT NOT NULL,
    hour       BIGINT NOT NULL,
    clicks     BIGINT NOT NULL,
    bot_clicks BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (link_id, hour)
);

CREATE TABLE clicks_daily (
    link_id    BIGINT NOT NULL,
    day        BIGINT NOT NULL,
    clicks     BIGINT NOT NULL,
    bot_clicks BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (link_id, day)
);

-- One row per link and day: the dimension counts (postcard, as in SQLite) and the
-- unique-visitor sketches of humans and bots, merged in Rust under a row lock.
CREATE TABLE link_days (
    link_id BIGINT NOT NULL,
    day     BIGINT NOT NULL,
    dims    BYTEA  NOT NULL,
    humans  BYTEA  NOT NULL,
    bots    BYTEA  NOT NULL,
    PRIMARY KEY (link_id, day)
);

-- Hits of codes that do not exist; the code '' carries the day's total.
CREATE TABLE unknown_codes (
    day  BIGINT NOT NULL,
    code TEXT COLLATE "C" NOT NULL,
    hits BIGINT NOT NULL,
    PRIMARY KEY (day, code)
);

-- The daily visitor-hash keys, shared by every instance, deleted once their day is over.
CREATE TABLE visitor_keys (
    day BIGINT PRIMARY KEY,
    key BYTEA  NOT NULL
);

-- Click flushes applied, per instance (a random id per process) and sequence number: a flush
-- whose outcome was unknown is retried as it is, and its row makes the retry a no-op. There is
-- no click journal: each flush adds its fresh counts to the tables at once, because instances
-- cannot replay each other's journals.
CREATE TABLE click_flushes (
    instance   TEXT   NOT NULL,
    seq        BIGINT NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (instance, seq)
);
CREATE INDEX click_flushes_by_age ON click_flushes (applied_at);
