-- A click journal per instance (see src/store/postgres/clicks.rs): each flush appends one row
-- with the clicks it made durable of the links it did not fold, and folds one slice of the
-- links into the tables, so a flush writes a few hundred rows rather than one per link clicked.
-- Each flush also marks its instance as alive; another instance replays (and deletes) the
-- journal of an instance that has not flushed for minutes. click_flushes is no longer written
-- (the journal row makes a retried flush a no-op); the purge empties it within a day.
CREATE TABLE click_instances (
    instance TEXT        PRIMARY KEY,
    seen_at  TIMESTAMPTZ NOT NULL
);
CREATE TABLE click_journal (
    instance TEXT   NOT NULL,
    seq      BIGINT NOT NULL,
    slots    BIGINT NOT NULL,
    entries  BYTEA  NOT NULL,
    PRIMARY KEY (instance, seq)
);
