-- Who has called which plugin at which site: a person who made a writing
-- call (POST, PUT, DELETE, …) of a plugin at a site, signed in, becomes
-- visible to that plugin's calls at that site (identity, account reads,
-- recording learning outcomes), beside the residents of the area the site
-- serves. Written by the kernel in the call's own transaction, once per
-- (plugin, site, person); reading calls never write it.
CREATE TABLE plugin_callers (
    plugin    TEXT    NOT NULL,
    site_id   BIGINT  NOT NULL REFERENCES sites(id),
    -- Not a foreign key: the caller's id comes from a verified token.
    person_id BIGINT  NOT NULL,
    -- When the first such call was made (µs).
    first_at  BIGINT  NOT NULL,
    PRIMARY KEY (plugin, site_id, person_id)
);
