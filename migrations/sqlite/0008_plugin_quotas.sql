-- Plugin quotas (ARCHITECTURE.md "Quotas").

-- Stored rows and bytes of each plugin's tables, counted in the writing
-- call's own transaction: by the site the call was made at (a site code;
-- '' for calls without one) and in total (site '*'). A row's bytes are the
-- sizes of its values: 8 for a number or boolean, the byte length of text
-- and blobs, 0 for NULL.
CREATE TABLE plugin_usage (
    plugin     TEXT    NOT NULL,
    site       TEXT    NOT NULL,
    row_count  INTEGER NOT NULL DEFAULT 0,
    byte_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (plugin, site)
);

-- Rate counts of the current minute, summed across nodes (each node adds
-- what it counted since its last sync, about once a second, and reads the
-- others' sums back). `what`: calls (per site), events and log_lines
-- (site '*'). `window_start`: ms since the epoch, a multiple of 60,000.
CREATE TABLE plugin_rate_windows (
    plugin       TEXT    NOT NULL,
    site         TEXT    NOT NULL,
    what         TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (window_start, plugin, site, what)
);

-- The city's per-publisher quotas: each set value replaces the city
-- default for every plugin of that publisher (NULL: the city default).
CREATE TABLE plugin_publisher_quotas (
    publisher            TEXT    PRIMARY KEY,
    row_count            INTEGER,
    byte_count           INTEGER,
    site_rows            INTEGER,
    site_bytes           INTEGER,
    calls_per_minute     INTEGER,
    events_per_minute    INTEGER,
    log_lines_per_minute INTEGER,
    set_at               INTEGER NOT NULL,
    set_by               TEXT    NOT NULL
);
