-- Institution plugins: publishers bound to a site with a capability ceiling,
-- revocation, plugin-id ownership, and the city's approval queue.

-- A publisher bound to a site (NULL: city-wide, as the project's own
-- publishers stay) may have its packages installed by that site's
-- plugin_publisher holders and site admins, enabled, granted and configured
-- only within the site's subtree, and only with capabilities within its
-- ceiling: JSON arrays of capability names and of the roles identity.grant
-- may name (NULL: no ceiling). `approval` = 1: an institution's first enable
-- of a plugin, and an upgrade asking for more than was approved, wait for a
-- city admin. A revoked publisher's packages are refused and its plugins
-- disabled everywhere.
ALTER TABLE plugin_publishers ADD COLUMN site_id INTEGER REFERENCES sites(id);
ALTER TABLE plugin_publishers ADD COLUMN ceiling_capabilities TEXT;
ALTER TABLE plugin_publishers ADD COLUMN ceiling_roles TEXT;
ALTER TABLE plugin_publishers ADD COLUMN approval INTEGER NOT NULL DEFAULT 0;
ALTER TABLE plugin_publishers ADD COLUMN status TEXT NOT NULL DEFAULT 'trusted'
    CHECK (status IN ('trusted', 'revoked'));
ALTER TABLE plugin_publishers ADD COLUMN status_by TEXT;
ALTER TABLE plugin_publishers ADD COLUMN status_at INTEGER;

-- Which publisher owns each plugin id: the one whose package first installed
-- it. Kept after the plugin is removed, so an id cannot be taken over.
-- `approved_*`: what the city approved for the plugin (JSON arrays of
-- capabilities and identity.grant roles; NULL: never approved).
CREATE TABLE plugin_ids (
    plugin                TEXT    PRIMARY KEY,
    publisher             TEXT    NOT NULL,
    claimed_at            INTEGER NOT NULL,
    claimed_by            TEXT    NOT NULL,
    approved_capabilities TEXT,
    approved_roles        TEXT
);

-- Requests waiting for (or decided by) a city admin: a plugin's first enable
-- at a site, or an upgrade asking for more capabilities than approved (the
-- package is kept here until then; the old version keeps serving).
CREATE TABLE plugin_approvals (
    id           INTEGER PRIMARY KEY,
    plugin       TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('first-enable', 'upgrade')),
    site_id      INTEGER REFERENCES sites(id),
    capabilities TEXT    NOT NULL,
    roles        TEXT    NOT NULL,
    manifest     TEXT    NOT NULL,
    package      BLOB,
    requested_by TEXT    NOT NULL,
    requested_at INTEGER NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'refused')),
    decided_by   TEXT,
    decided_at   INTEGER,
    reason       TEXT
);
CREATE INDEX plugin_approvals_pending ON plugin_approvals (status, id);
