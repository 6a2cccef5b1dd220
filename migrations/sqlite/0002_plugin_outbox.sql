-- Events published by plugin calls, written in the call's own transaction
-- (so a rolled-back call leaves none) and delivered after commit.
CREATE TABLE plugin_outbox (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    site         TEXT,
    published_at INTEGER NOT NULL
);
