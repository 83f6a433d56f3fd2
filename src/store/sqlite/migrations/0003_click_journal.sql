-- The click journal: every buffered flush appends the clicks it makes durable (per link and
-- hour, a postcard blob) and folds the unfolded clicks of one slice of the links (those whose
-- id is seq modulo slots) into the tables in the same transaction. Rows whose clicks are all
-- folded are deleted; after a crash, opening the store folds what the remaining rows hold and
-- their slices tell is not folded yet (see queries::replay_click_journal).
CREATE TABLE click_journal (
    seq     INTEGER PRIMARY KEY,
    slots   INTEGER NOT NULL,
    entries BLOB    NOT NULL
);
