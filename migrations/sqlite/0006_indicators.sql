-- The plan's indicators: baselines and yearly targets per (indicator,
-- site), and snapshots of values per (indicator, site, date).
-- SQLite flavour; migrations/postgres/0006_indicators.sql is the same schema.
-- `indicator` is '1'..'10' for the plan's ten, or '<plugin>.<name>' for an
-- indicator a plugin declares. Values are thousandths (`*_milli`), so a
-- ratio such as teaching points per village (0.667) is exact as stored.

-- Set by city admins (audited). `baseline_milli` NULL: not set, the
-- baseline comes from a snapshot or is computed. `targets` is a JSON object
-- {"2026": 4, …, "2030": 16} of yearly targets (increases over the baseline,
-- or levels for a level indicator).
CREATE TABLE indicator_targets (
    indicator       TEXT    NOT NULL,
    site_id         INTEGER NOT NULL REFERENCES sites(id),
    baseline_milli  INTEGER,
    targets         TEXT    NOT NULL,
    updated_by      TEXT    NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (indicator, site_id)
);

-- One value per (indicator, site subtree, date): a daily schedule on
-- several nodes, or an on-demand request for a day already taken, finds the
-- row there (INSERT … ON CONFLICT DO NOTHING) and keeps it. `value_milli`
-- NULL with `error`: the value could not be had (no plugin provides it
-- here, or the plugin failed). An adjustment keeps the original beside it.
CREATE TABLE indicator_snapshots (
    id                    INTEGER PRIMARY KEY,
    indicator             TEXT    NOT NULL,
    site_id               INTEGER NOT NULL REFERENCES sites(id),
    as_of                 TEXT    NOT NULL,
    value_milli           INTEGER,
    error                 TEXT,
    formula_version       INTEGER NOT NULL,
    source                TEXT    NOT NULL,
    -- the parameters the formula used (circles: distance and share), JSON
    params                TEXT,
    taken_at              INTEGER NOT NULL,
    taken_by              TEXT    NOT NULL,
    adjusted_value_milli  INTEGER,
    adjusted_note         TEXT,
    adjusted_by           TEXT,
    adjusted_at           INTEGER,
    UNIQUE (indicator, site_id, as_of)
);
CREATE INDEX indicator_snapshots_site ON indicator_snapshots(site_id, as_of);

-- The daily scheduled run: one row per day, claimed by the node that runs
-- it. A claim older than its lease with no `done_at` (the node died) may be
-- taken over by another node.
CREATE TABLE indicator_schedule (
    day         TEXT    PRIMARY KEY,
    claimed_by  TEXT    NOT NULL,
    claimed_at  INTEGER NOT NULL,
    done_at     INTEGER
);
