-- Kernel registries: sites, identity, accounts and the credit bank, audit.
-- SQLite flavour; migrations/postgres/0001_kernel.sql is the same schema.

-- The three-level site network. `path` is the materialised ancestry
-- ('/1/7/42/'), so a whole subtree is one index range scan.
CREATE TABLE sites (
    id          INTEGER PRIMARY KEY,
    code        TEXT    NOT NULL UNIQUE,
    name_zh     TEXT    NOT NULL,
    name_en     TEXT,
    kind        TEXT    NOT NULL,
    level       INTEGER NOT NULL,
    parent_id   INTEGER REFERENCES sites(id),
    path        TEXT    NOT NULL,
    address     TEXT,
    latitude    REAL,
    longitude   REAL,
    operator    TEXT    NOT NULL DEFAULT 'public',
    status      TEXT    NOT NULL DEFAULT 'active',
    opened_on   TEXT    NOT NULL,
    closed_on   TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX sites_path ON sites(path);
CREATE INDEX sites_parent ON sites(parent_id);
CREATE INDEX sites_kind ON sites(kind, opened_on);

-- People. The resident ID number is stored encrypted (`id_cipher`), found by a
-- keyed hash (`id_hash`) and shown masked (`id_masked`).
CREATE TABLE persons (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    id_hash       BLOB    NOT NULL UNIQUE,
    id_cipher     BLOB    NOT NULL,
    id_masked     TEXT    NOT NULL,
    birth_date    TEXT    NOT NULL,
    sex           TEXT    NOT NULL,
    phone_cipher  BLOB,
    phone_masked  TEXT,
    home_site_id  INTEGER NOT NULL REFERENCES sites(id),
    login         TEXT    UNIQUE,
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX persons_home_site ON persons(home_site_id, id);

-- Roles are granted at a site and hold for its whole subtree. Revoking keeps
-- the row (history); at most one live grant per (person, role, site).
CREATE TABLE role_grants (
    id          INTEGER PRIMARY KEY,
    person_id   INTEGER NOT NULL REFERENCES persons(id),
    role        TEXT    NOT NULL,
    site_id     INTEGER NOT NULL REFERENCES sites(id),
    granted_by  INTEGER REFERENCES persons(id),
    granted_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE UNIQUE INDEX role_grants_live ON role_grants(person_id, role, site_id) WHERE revoked_at IS NULL;
CREATE INDEX role_grants_site ON role_grants(site_id);

-- Bearer tokens: only a SHA-256 of the token is stored.
CREATE TABLE tokens (
    token_hash  BLOB    PRIMARY KEY,
    person_id   INTEGER NOT NULL REFERENCES persons(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX tokens_person ON tokens(person_id);

-- One lifelong-learning account per person. `entry_count` and `head_hash`
-- are the tip of the account's ledger hash chain.
CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    person_id     INTEGER NOT NULL UNIQUE REFERENCES persons(id),
    status        TEXT    NOT NULL DEFAULT 'open',
    opened_at     INTEGER NOT NULL,
    activated_on  TEXT,
    frozen_at     INTEGER,
    entry_count   INTEGER NOT NULL DEFAULT 0,
    head_hash     BLOB    NOT NULL
);
CREATE INDEX accounts_activated ON accounts(activated_on);

-- Versioned recognition standards. A new version never changes an old one.
CREATE TABLE recognition_rules (
    id                      INTEGER PRIMARY KEY,
    code                    TEXT    NOT NULL,
    version                 INTEGER NOT NULL,
    name                    TEXT    NOT NULL,
    outcome_kind            TEXT    NOT NULL,
    unit                    TEXT    NOT NULL,
    credits_per_unit_milli  INTEGER NOT NULL,
    max_credits_milli       INTEGER,
    valid_from              TEXT    NOT NULL,
    created_by              INTEGER REFERENCES persons(id),
    created_at              INTEGER NOT NULL,
    UNIQUE (code, version)
);

-- The credit bank ledger: append-only, hash-chained per account, idempotent
-- per (origin, idempotency_key).
CREATE TABLE ledger_entries (
    id                 INTEGER PRIMARY KEY,
    account_id         INTEGER NOT NULL REFERENCES accounts(id),
    seq                INTEGER NOT NULL,
    kind               TEXT    NOT NULL,
    title              TEXT    NOT NULL,
    quantity_milli     INTEGER NOT NULL,
    unit               TEXT    NOT NULL,
    credits_milli      INTEGER NOT NULL,
    rule_code          TEXT,
    rule_version       INTEGER,
    occurred_on        TEXT    NOT NULL,
    source_site_id     INTEGER REFERENCES sites(id),
    issuer             TEXT,
    origin             TEXT    NOT NULL,
    reference          TEXT,
    evidence           TEXT,
    idempotency_key    TEXT    NOT NULL,
    content_hash       BLOB    NOT NULL,
    reverses_entry_id  INTEGER REFERENCES ledger_entries(id),
    recorded_by        INTEGER REFERENCES persons(id),
    recorded_at        INTEGER NOT NULL,
    prev_hash          BLOB    NOT NULL,
    entry_hash         BLOB    NOT NULL,
    UNIQUE (account_id, seq),
    UNIQUE (origin, idempotency_key)
);
CREATE UNIQUE INDEX ledger_one_reversal ON ledger_entries(reverses_entry_id) WHERE reverses_entry_id IS NOT NULL;
CREATE INDEX ledger_source_site ON ledger_entries(source_site_id);

CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;

-- Every change by an admin or the system. `site_path` is copied from the site
-- so the log can be read by subtree with one index range.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    actor_id     INTEGER,
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    site_id      INTEGER,
    site_path    TEXT,
    object_type  TEXT    NOT NULL,
    object_id    TEXT    NOT NULL,
    before_json  TEXT,
    after_json   TEXT
);
CREATE INDEX audit_log_path ON audit_log(site_path, id);
CREATE INDEX audit_log_at ON audit_log(at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
