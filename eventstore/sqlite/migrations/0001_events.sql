-- The log. position is the rowid: SQLite assigns max+1 inside the single write transaction,
-- so positions follow commit order and a reader never sees a later position before an
-- earlier one.
CREATE TABLE events (
    position    INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    data        BLOB    NOT NULL,
    metadata    BLOB    NOT NULL, -- JSON of eventstore.Metadata
    occurred_at INTEGER NOT NULL, -- unix microseconds, UTC
    recorded_at INTEGER NOT NULL, -- unix microseconds, UTC
    prev_hash   BLOB    NOT NULL, -- empty for version 1
    hash        BLOB    NOT NULL,
    UNIQUE (stream, version)
);

-- The head of every stream, so an append checks its expected version and chains its hash
-- with one primary-key lookup.
CREATE TABLE streams (
    stream  TEXT    PRIMARY KEY,
    version INTEGER NOT NULL,
    hash    BLOB    NOT NULL
) WITHOUT ROWID;

-- Last processed global position of named consumers.
CREATE TABLE checkpoints (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
