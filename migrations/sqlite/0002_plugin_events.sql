-- Events published by plugin calls and by the kernel (`kernel.<action>`),
-- written in the publishing transaction (so a rolled-back change leaves
-- none) and delivered after commit.
CREATE TABLE plugin_outbox (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    site         TEXT,
    published_at INTEGER NOT NULL,
    -- 0 until delivery rows exist for its subscribers: plugin events are
    -- fanned out as they are published, kernel events by the delivery pass.
    fanned       INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX plugin_outbox_unfanned ON plugin_outbox(id) WHERE fanned = 0;

-- One row per (event, subscriber), written with the event, so a subscriber
-- gets exactly the events committed while it was subscribed. A delivery is
-- marked done in the subscriber's own call transaction: exactly once, across
-- restarts and nodes. Failed deliveries back off; past the attempt limit they
-- are parked (dead_at) for admins to read and replay.
CREATE TABLE plugin_deliveries (
    event_id        INTEGER NOT NULL REFERENCES plugin_outbox(id),
    subscriber      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    dead_at         INTEGER,
    last_error      TEXT,
    PRIMARY KEY (event_id, subscriber)
);
CREATE INDEX plugin_deliveries_due ON plugin_deliveries(next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;

-- Per-site values of the settings a plugin declares; a value holds for the
-- site's subtree unless set again below it. Absent: the declared default.
CREATE TABLE plugin_settings (
    plugin     TEXT   NOT NULL,
    site_id    INTEGER NOT NULL REFERENCES sites(id),
    name       TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (plugin, name, site_id)
);
