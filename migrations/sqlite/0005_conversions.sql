-- Conversion standards of the credit bank: published, versioned rules that
-- turn outcomes of one kind (e.g. skill certificates) into outcomes of
-- another (e.g. academic credits). A new version never changes an old one.
--   cardinality '1:1': one source outcome → one conversion, used once;
--               'n:1': `sources_per_conversion` (≥ 2) sources → one conversion;
--               '1:n': one source may back up to `uses_per_source` (≥ 2) conversions.
-- `cap_milli`: the most target quantity one account may hold, net, through
-- conversions under this code (all versions). Valid from/until: the days a
-- version may be used for a new conversion.
CREATE TABLE conversion_standards (
    id                         INTEGER PRIMARY KEY,
    code                       TEXT    NOT NULL,
    version                    INTEGER NOT NULL,
    name                       TEXT    NOT NULL,
    cardinality                TEXT    NOT NULL,
    source_kind                TEXT    NOT NULL,
    sources_per_conversion     INTEGER NOT NULL,
    uses_per_source            INTEGER NOT NULL,
    min_source_quantity_milli  INTEGER NOT NULL,
    target_kind                TEXT    NOT NULL,
    target_quantity_milli      INTEGER NOT NULL,
    cap_milli                  INTEGER,
    valid_from                 TEXT    NOT NULL,
    valid_until                TEXT,
    created_by                 INTEGER REFERENCES persons(id),
    created_at                 INTEGER NOT NULL,
    UNIQUE (code, version)
);

-- What each conversion entry consumed. A source outcome holds at most one
-- live link per slot (slots 1..uses_per_source), so "never twice" is a
-- unique index that holds under concurrency on both backends. A reversal of
-- the conversion releases its links (sets `released_by_entry_id`, once);
-- rows are never deleted and nothing else ever changes.
CREATE TABLE conversion_links (
    id                    INTEGER PRIMARY KEY,
    conversion_entry_id   INTEGER NOT NULL REFERENCES ledger_entries(id),
    source_entry_id       INTEGER NOT NULL REFERENCES ledger_entries(id),
    slot                  INTEGER NOT NULL,
    standard_code         TEXT    NOT NULL,
    released_by_entry_id  INTEGER REFERENCES ledger_entries(id),
    UNIQUE (conversion_entry_id, source_entry_id)
);
CREATE UNIQUE INDEX conversion_links_live ON conversion_links(source_entry_id, slot)
    WHERE released_by_entry_id IS NULL;
CREATE INDEX conversion_links_standard ON conversion_links(standard_code, released_by_entry_id);

CREATE TRIGGER conversion_links_no_delete BEFORE DELETE ON conversion_links
BEGIN SELECT RAISE(ABORT, 'conversion links are never deleted'); END;
CREATE TRIGGER conversion_links_release_once BEFORE UPDATE ON conversion_links
WHEN OLD.released_by_entry_id IS NOT NULL
  OR NEW.released_by_entry_id IS NULL
  OR NEW.conversion_entry_id <> OLD.conversion_entry_id
  OR NEW.source_entry_id <> OLD.source_entry_id
  OR NEW.slot <> OLD.slot
  OR NEW.standard_code <> OLD.standard_code
BEGIN SELECT RAISE(ABORT, 'a conversion link is only ever released, once'); END;
