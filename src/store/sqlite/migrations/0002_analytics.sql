-- Click analytics (issue 4): bots counted apart, hourly rows rolled up into daily ones after
-- the retention age, one row per link and day with the dimension counts and the unique-visitor
-- sketches (merged in SQL by the functions the store registers), unknown-code hits, and the
-- daily visitor-hash keys (deleted when their day is over).
ALTER TABLE clicks_hourly ADD COLUMN bot_clicks INTEGER NOT NULL DEFAULT 0;

CREATE TABLE clicks_daily (
    link_id    INTEGER NOT NULL,
    day        INTEGER NOT NULL,
    clicks     INTEGER NOT NULL,
    bot_clicks INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (link_id, day)
) WITHOUT ROWID;

CREATE TABLE link_days (
    link_id INTEGER NOT NULL,
    day     INTEGER NOT NULL,
    dims    BLOB    NOT NULL,
    humans  BLOB    NOT NULL,
    bots    BLOB    NOT NULL,
    PRIMARY KEY (link_id, day)
) WITHOUT ROWID;

CREATE TABLE unknown_codes (
    day  INTEGER NOT NULL,
    code TEXT    NOT NULL,
    hits INTEGER NOT NULL,
    PRIMARY KEY (day, code)
) WITHOUT ROWID;

CREATE TABLE visitor_keys (
    day INTEGER PRIMARY KEY,
    key BLOB    NOT NULL
);
