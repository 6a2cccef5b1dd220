-- The plugin registry: trusted publishers, installed versions (their
-- content pinned by SHA-256), the version serving each plugin, and per-site
-- enablement and capability grants. A site inherits enablement and each
-- grant from the nearest site above it that sets one.

-- Publisher keys trusted to sign packages; managed by city admins.
CREATE TABLE plugin_publishers (
    publisher  TEXT    PRIMARY KEY,
    public_key TEXT    NOT NULL,
    added_at   BIGINT  NOT NULL,
    added_by   TEXT    NOT NULL
);

-- Every installed version of every plugin, as it was verified at install.
CREATE TABLE plugin_versions (
    plugin       TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    manifest     TEXT    NOT NULL,
    component    BYTEA   NOT NULL,
    sha256       TEXT    NOT NULL,
    -- 1 if signed by a trusted publisher key, 0 if accepted in development mode.
    signed       BIGINT  NOT NULL,
    installed_at BIGINT  NOT NULL,
    installed_by TEXT    NOT NULL,
    PRIMARY KEY (plugin, version)
);

-- The version each installed plugin runs, and the one an upgrade replaced
-- (what `rollback` returns to; its tables' data is kept in snapshot tables
-- `snp_<plugin>__<table>` until the next upgrade or rollback).
CREATE TABLE plugin_registry (
    plugin     TEXT    PRIMARY KEY,
    active     TEXT    NOT NULL,
    previous   TEXT,
    updated_at BIGINT  NOT NULL
);

CREATE TABLE plugin_enablement (
    plugin     TEXT    NOT NULL,
    site_id    BIGINT  NOT NULL REFERENCES sites(id),
    enabled    BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (plugin, site_id)
);

CREATE TABLE plugin_grants (
    plugin     TEXT    NOT NULL,
    site_id    BIGINT  NOT NULL REFERENCES sites(id),
    capability TEXT    NOT NULL,
    granted    BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (plugin, site_id, capability)
);

-- Bumped by every change to the tables above, so each node reloads its
-- view of the registry when (and only when) it changed.
CREATE TABLE plugin_generation (
    id         BIGINT  PRIMARY KEY CHECK (id = 1),
    generation BIGINT  NOT NULL
);
INSERT INTO plugin_generation (id, generation) VALUES (1, 0);
