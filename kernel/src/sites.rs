//! The site registry: the city → township/street → village/community network
//! and the institutions that hang under each level.
//!
//! **Invariant:** the sites form one tree rooted at the single city site; a
//! site's kind fixes which kinds its parent may have (a village sits under a
//! township, a community school under a township, …), so levels stay
//! consistent; codes are unique; nothing is deleted (closing sets `status`).
//! Each site stores its materialised `path`, kept exact on every move.
//!
//! This module must not know about HTTP or CSV layout (see `sites/csv.rs`).

pub mod csv;

use crate::audit::{self, Change};
use crate::authz::{path_upper, Actor};
use crate::error::{Error, FieldError, Result};
use crate::storage::{col, is_unique_violation, now_micros, Db, Tx};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

/// The kinds of site. The first three are the administrative levels.
pub const KINDS: &[(&str, &[&str])] = &[
    ("city", &[]),
    ("township", &["city"]),
    ("village", &["township"]),
    ("elder_university", &["city", "township"]),
    ("community_school", &["township"]),
    ("community_teaching_point", &["village"]),
    ("open_university", &["city", "township"]),
    ("teacher_training_school", &["city", "township"]),
    ("experience_base", &["city", "township", "village"]),
    ("museum", &["city", "township", "village"]),
    ("culture_hall", &["city", "township", "village"]),
    ("youth_centre", &["city", "township", "village"]),
    ("walking_point", &["township", "village"]),
    ("science_workshop", &["city", "township", "village"]),
    ("enterprise_training_centre", &["city", "township"]),
];

/// Who runs an institution (indicator 1 counts elder universities run with
/// social organisations).
pub const OPERATORS: &[&str] = &["public", "social_organisation", "enterprise", "school"];

/// Names of the three levels, by `level` number.
pub const LEVELS: &[&str] = &["city", "township", "village"];

fn allowed_parents(kind: &str) -> Option<&'static [&'static str]> {
    KINDS.iter().find(|(k, _)| *k == kind).map(|(_, p)| *p)
}

/// True for the three administrative kinds, which may have children.
pub fn is_admin_level(kind: &str) -> bool {
    matches!(kind, "city" | "township" | "village")
}

/// A site as stored and shown.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Site {
    /// Internal id.
    pub id: i64,
    /// Stable code, unique across the city.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: Option<String>,
    /// One of [`KINDS`].
    pub kind: String,
    /// `city`, `township` or `village`: the level it is or serves.
    pub level: String,
    /// Parent id (none for the city).
    pub parent_id: Option<i64>,
    /// Parent code.
    pub parent_code: Option<String>,
    /// Street address.
    pub address: Option<String>,
    /// WGS-84 latitude.
    pub latitude: Option<f64>,
    /// WGS-84 longitude.
    pub longitude: Option<f64>,
    /// Who runs it.
    pub operator: String,
    /// `active` or `closed`.
    pub status: String,
    /// Opening date (YYYY-MM-DD).
    pub opened_on: String,
    /// Closing date.
    pub closed_on: Option<String>,
    /// Materialised ancestry; internal.
    #[serde(skip)]
    pub path: String,
}

impl Site {
    /// The path of the parent site (the site's own path for the root).
    ///
    /// Strips exactly the last segment: `trim_end_matches` would strip a
    /// repeated suffix too (`/1/15/5/` would lose `5/` twice).
    pub fn parent_path(&self) -> &str {
        if self.parent_id.is_none() {
            return &self.path;
        }
        let own = self.path.strip_suffix('/').unwrap_or(&self.path);
        match own.rfind('/') {
            Some(i) => &self.path[..=i],
            None => &self.path,
        }
    }
}

const SELECT: &str = "SELECT s.id, s.code, s.name_zh, s.name_en, s.kind, s.level, s.parent_id, \
    p.code AS parent_code, s.address, s.latitude, s.longitude, s.operator, s.status, s.opened_on, \
    s.closed_on, s.path FROM sites s LEFT JOIN sites p ON p.id = s.parent_id";

fn from_row(row: &AnyRow) -> Result<Site, sqlx::Error> {
    let level: i64 = col(row, "level")?;
    Ok(Site {
        id: col(row, "id")?,
        code: col(row, "code")?,
        name_zh: col(row, "name_zh")?,
        name_en: col(row, "name_en")?,
        kind: col(row, "kind")?,
        level: LEVELS.get(level as usize).unwrap_or(&"city").to_string(),
        parent_id: col(row, "parent_id")?,
        parent_code: col(row, "parent_code")?,
        address: col(row, "address")?,
        latitude: col(row, "latitude")?,
        longitude: col(row, "longitude")?,
        operator: col(row, "operator")?,
        status: col(row, "status")?,
        opened_on: col(row, "opened_on")?,
        closed_on: col(row, "closed_on")?,
        path: col(row, "path")?,
    })
}

/// Input for creating a site.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    /// Stable code.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    #[serde(default)]
    pub name_en: Option<String>,
    /// Kind.
    pub kind: String,
    /// Parent by code (or give `parent_id`).
    #[serde(default)]
    pub parent_code: Option<String>,
    /// Parent by id.
    #[serde(default)]
    pub parent_id: Option<i64>,
    /// Street address.
    #[serde(default)]
    pub address: Option<String>,
    /// Latitude.
    #[serde(default)]
    pub latitude: Option<f64>,
    /// Longitude.
    #[serde(default)]
    pub longitude: Option<f64>,
    /// Operator (default `public`).
    #[serde(default)]
    pub operator: Option<String>,
    /// Opening date; today when absent.
    #[serde(default)]
    pub opened_on: Option<String>,
}

/// Changes to a site; absent fields stay as they are.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SitePatch {
    /// New Chinese name.
    #[serde(default)]
    pub name_zh: Option<String>,
    /// New English name.
    #[serde(default)]
    pub name_en: Option<String>,
    /// New address.
    #[serde(default)]
    pub address: Option<String>,
    /// New latitude.
    #[serde(default)]
    pub latitude: Option<f64>,
    /// New longitude.
    #[serde(default)]
    pub longitude: Option<f64>,
    /// New operator.
    #[serde(default)]
    pub operator: Option<String>,
    /// Corrected opening date.
    #[serde(default)]
    pub opened_on: Option<String>,
    /// Move under another parent (by code).
    #[serde(default)]
    pub parent_code: Option<String>,
}

/// Parse a `YYYY-MM-DD` date, with a field-level error.
pub fn parse_date(field: &str, s: &str) -> Result<String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.format("%Y-%m-%d").to_string())
        .map_err(|_| Error::invalid(field, format!("{s:?} is not a date in YYYY-MM-DD form")))
}

/// Today's date (UTC+8, the city's calendar) as `YYYY-MM-DD`.
pub fn today() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string()
}

fn validate_new(n: &NewSite) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut bad = |field: &str, message: String| {
        errs.push(FieldError {
            field: field.to_string(),
            message,
        })
    };
    if !valid_code(&n.code) {
        bad(
            "code",
            "must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit".into(),
        );
    }
    if n.name_zh.trim().is_empty() || n.name_zh.chars().count() > 200 {
        bad("name_zh", "must be 1-200 characters".into());
    }
    if allowed_parents(&n.kind).is_none() {
        let kinds: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
        bad(
            "kind",
            format!(
                "unknown kind {:?}; expected one of {}",
                n.kind,
                kinds.join(", ")
            ),
        );
    }
    if let Some(op) = &n.operator {
        if !OPERATORS.contains(&op.as_str()) {
            bad(
                "operator",
                format!(
                    "unknown operator {op:?}; expected one of {}",
                    OPERATORS.join(", ")
                ),
            );
        }
    }
    check_coords(n.latitude, n.longitude, &mut bad);
    if let Some(d) = &n.opened_on {
        if let Err(Error::Invalid(mut e)) = parse_date("opened_on", d) {
            errs.append(&mut e);
        }
    }
    errs
}

fn check_coords(lat: Option<f64>, lon: Option<f64>, bad: &mut impl FnMut(&str, String)) {
    if let Some(lat) = lat {
        if !(-90.0..=90.0).contains(&lat) {
            bad("latitude", "must be between -90 and 90".into());
        }
    }
    if let Some(lon) = lon {
        if !(-180.0..=180.0).contains(&lon) {
            bad("longitude", "must be between -180 and 180".into());
        }
    }
}

/// Coordinates are bound as text and cast in SQL: sqlx 0.8's `Any` driver
/// binds a NULL `f64` as FLOAT4 on PostgreSQL, which poisons the cached
/// statement for later non-NULL values.
pub(crate) fn float_param(v: Option<f64>) -> Option<String> {
    v.map(|x| x.to_string())
}

fn valid_code(code: &str) -> bool {
    let b = code.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Fetch a site by id on any executor.
pub async fn fetch<'e, E>(exec: E, id: i64) -> Result<Option<Site>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(&format!("{SELECT} WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(exec)
        .await?;
    Ok(row.map(|r| from_row(&r)).transpose()?)
}

/// Fetch a site by code on any executor.
pub async fn fetch_by_code<'e, E>(exec: E, code: &str) -> Result<Option<Site>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(&format!("{SELECT} WHERE s.code = $1"))
        .bind(code)
        .fetch_optional(exec)
        .await?;
    Ok(row.map(|r| from_row(&r)).transpose()?)
}

/// The code of the site at `path`, if any.
pub async fn code_of_path(db: &Db, path: &str) -> Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT code FROM sites WHERE path = $1")
        .bind(path)
        .fetch_optional(db.reader())
        .await?;
    Ok(row.map(|r| r.0))
}

/// Fetch a site by an id-or-code reference ("42" or "TS-01") in one query;
/// an id match wins over a code match.
pub async fn fetch_ref<'e, E>(exec: E, reference: &str) -> Result<Option<Site>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(&format!(
        "{SELECT} WHERE s.id = $1 OR s.code = $2 ORDER BY CASE WHEN s.id = $1 THEN 0 ELSE 1 END LIMIT 1"
    ))
    .bind(reference.parse::<i64>().unwrap_or(-1))
    .bind(reference)
    .fetch_optional(exec)
    .await?;
    Ok(row.map(|r| from_row(&r)).transpose()?)
}

/// Resolve an id-or-code reference, without an access check.
pub async fn resolve(db: &Db, reference: &str) -> Result<Site> {
    fetch_ref(db.reader(), reference)
        .await?
        .ok_or_else(|| Error::NotFound(format!("site {reference}")))
}

/// A found site if the actor may see it; otherwise "not found", so a site
/// outside the caller's view does not reveal that it exists.
fn visible(actor: &Actor, site: Option<Site>, reference: &str) -> Result<Site> {
    match site {
        Some(s) if actor.can_see_site(&s.path) => Ok(s),
        _ => Err(Error::NotFound(format!("site {reference}"))),
    }
}

/// Get one site the actor may see.
pub async fn get(db: &Db, actor: &Actor, reference: &str) -> Result<Site> {
    visible(actor, fetch_ref(db.reader(), reference).await?, reference)
}

async fn resolve_in(tx: &mut Tx, actor: &Actor, reference: &str) -> Result<Site> {
    visible(actor, fetch_ref(&mut **tx, reference).await?, reference)
}

/// Re-read a site changed in `tx` and audit the change; returns the new state.
pub(crate) async fn audit_change(
    tx: &mut Tx,
    actor: &Actor,
    action: &str,
    before: Option<&Site>,
    id: i64,
) -> Result<Site> {
    let after = fetch(&mut **tx, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("site {id}")))?;
    audit::record(
        tx,
        actor,
        Change {
            action,
            site: Some((after.id, &after.path)),
            object_type: "site",
            object_id: after.id.to_string(),
            before: before.map(|b| serde_json::to_value(b).unwrap_or_default()),
            after: Some(serde_json::to_value(&after).unwrap_or_default()),
        },
    )
    .await?;
    Ok(after)
}

/// Create a site inside `tx` (no commit), checking the actor and invariants.
pub async fn create_in(tx: &mut Tx, actor: &Actor, n: NewSite) -> Result<Site> {
    let errs = validate_new(&n);
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let parents = allowed_parents(&n.kind).unwrap_or(&[]);
    let parent =
        match (&n.parent_code, n.parent_id) {
            (Some(code), _) => Some(fetch_by_code(&mut **tx, code).await?.ok_or_else(|| {
                Error::invalid("parent_code", format!("no site has code {code:?}"))
            })?),
            (None, Some(id)) => Some(
                fetch(&mut **tx, id)
                    .await?
                    .ok_or_else(|| Error::invalid("parent_id", format!("no site has id {id}")))?,
            ),
            (None, None) => None,
        };
    let level = match &parent {
        None if n.kind == "city" => {
            actor.require_city_admin("creating the city")?;
            let existing: Option<(i64,)> =
                sqlx::query_as("SELECT id FROM sites WHERE kind = 'city' LIMIT 1")
                    .fetch_optional(&mut **tx)
                    .await?;
            if existing.is_some() {
                return Err(Error::conflict(
                    "kind",
                    "the city site already exists; there is one root",
                ));
            }
            0
        }
        None => {
            return Err(Error::invalid(
                "parent_code",
                format!("a {} must have a parent ({})", n.kind, parents.join(" or ")),
            ))
        }
        Some(p) => {
            if n.kind == "city" {
                return Err(Error::invalid(
                    "parent_code",
                    "the city is the root and has no parent",
                ));
            }
            if !parents.contains(&p.kind.as_str()) {
                return Err(Error::invalid(
                    "parent_code",
                    format!(
                        "a {} must be under a {}, but {} is a {}",
                        n.kind,
                        parents.join(" or "),
                        p.code,
                        p.kind
                    ),
                ));
            }
            if p.status != "active" {
                return Err(Error::invalid(
                    "parent_code",
                    format!("parent {} is closed", p.code),
                ));
            }
            actor.require_admin(&p.path, "creating a site")?;
            LEVELS.iter().position(|l| *l == p.level).unwrap_or(0) as i64
                + i64::from(is_admin_level(&n.kind))
        }
    };
    let now = now_micros();
    let opened_on = match &n.opened_on {
        Some(d) => parse_date("opened_on", d)?,
        None => today(),
    };
    let inserted = sqlx::query(
        "INSERT INTO sites (code, name_zh, name_en, kind, level, parent_id, path, address, latitude, \
         longitude, operator, status, opened_on, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, '', $7, CAST($8 AS DOUBLE PRECISION), CAST($9 AS DOUBLE PRECISION), $10, 'active', $11, $12, $12) RETURNING id",
    )
    .bind(&n.code)
    .bind(n.name_zh.trim())
    .bind(n.name_en.as_deref().map(str::trim))
    .bind(&n.kind)
    .bind(level)
    .bind(parent.as_ref().map(|p| p.id))
    .bind(n.address.as_deref())
    .bind(float_param(n.latitude))
    .bind(float_param(n.longitude))
    .bind(n.operator.as_deref().unwrap_or("public"))
    .bind(&opened_on)
    .bind(now)
    .fetch_one(&mut **tx)
    .await;
    let id: i64 = match inserted {
        Ok(row) => col(&row, "id")?,
        Err(e) if is_unique_violation(&e) => {
            return Err(Error::conflict(
                "code",
                format!("a site with code {:?} already exists", n.code),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let path = format!("{}{id}/", parent.as_ref().map_or("/", |p| p.path.as_str()));
    sqlx::query("UPDATE sites SET path = $1 WHERE id = $2")
        .bind(&path)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    audit_change(tx, actor, "site.create", None, id).await
}

/// Create a site in its own transaction.
pub async fn create(db: &Db, actor: &Actor, n: NewSite) -> Result<Site> {
    let mut tx = db.begin().await?;
    let site = create_in(&mut tx, actor, n).await?;
    tx.commit().await?;
    Ok(site)
}

/// Apply a patch (and possibly a move) to a site.
pub async fn update(db: &Db, actor: &Actor, reference: &str, patch: SitePatch) -> Result<Site> {
    let mut errs = Vec::new();
    check_coords(
        patch.latitude,
        patch.longitude,
        &mut |f: &str, m: String| {
            errs.push(FieldError {
                field: f.into(),
                message: m,
            })
        },
    );
    if let Some(name) = &patch.name_zh {
        if name.trim().is_empty() || name.chars().count() > 200 {
            errs.push(FieldError {
                field: "name_zh".into(),
                message: "must be 1-200 characters".into(),
            });
        }
    }
    if let Some(op) = &patch.operator {
        if !OPERATORS.contains(&op.as_str()) {
            errs.push(FieldError {
                field: "operator".into(),
                message: format!(
                    "unknown operator {op:?}; expected one of {}",
                    OPERATORS.join(", ")
                ),
            });
        }
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let opened_on = patch
        .opened_on
        .as_deref()
        .map(|d| parse_date("opened_on", d))
        .transpose()?;
    let mut tx = db.begin().await?;
    let before = resolve_in(&mut tx, actor, reference).await?;
    actor.require_admin(&before.path, "editing a site")?;
    if let Some(code) = &patch.parent_code {
        if before.parent_code.as_deref() != Some(code.as_str()) {
            move_site(&mut tx, actor, &before, code).await?;
        }
    }
    sqlx::query(
        "UPDATE sites SET name_zh = COALESCE($1, name_zh), name_en = COALESCE($2, name_en), \
         address = COALESCE($3, address), latitude = COALESCE(CAST($4 AS DOUBLE PRECISION), latitude), \
         longitude = COALESCE(CAST($5 AS DOUBLE PRECISION), longitude), operator = COALESCE($6, operator), \
         opened_on = COALESCE($7, opened_on), updated_at = $8 WHERE id = $9",
    )
    .bind(patch.name_zh.as_deref().map(str::trim))
    .bind(patch.name_en.as_deref())
    .bind(patch.address.as_deref())
    .bind(float_param(patch.latitude))
    .bind(float_param(patch.longitude))
    .bind(patch.operator.as_deref())
    .bind(opened_on)
    .bind(now_micros())
    .bind(before.id)
    .execute(&mut *tx)
    .await?;
    let after = audit_change(&mut tx, actor, "site.update", Some(&before), before.id).await?;
    tx.commit().await?;
    Ok(after)
}

async fn move_site(tx: &mut Tx, actor: &Actor, site: &Site, new_parent_code: &str) -> Result<()> {
    let parents = allowed_parents(&site.kind).unwrap_or(&[]);
    let parent = fetch_by_code(&mut **tx, new_parent_code)
        .await?
        .ok_or_else(|| {
            Error::invalid(
                "parent_code",
                format!("no site has code {new_parent_code:?}"),
            )
        })?;
    if parent.path.starts_with(&site.path) {
        return Err(Error::conflict(
            "parent_code",
            format!(
                "moving {} under {} would make a cycle",
                site.code, parent.code
            ),
        ));
    }
    if !parents.contains(&parent.kind.as_str()) {
        return Err(Error::invalid(
            "parent_code",
            format!(
                "a {} must be under a {}, but {} is a {}",
                site.kind,
                parents.join(" or "),
                parent.code,
                parent.kind
            ),
        ));
    }
    if parent.status != "active" {
        return Err(Error::invalid(
            "parent_code",
            format!("parent {} is closed", parent.code),
        ));
    }
    // Moving is a structural change of both the old and the new parent.
    actor.require_admin(site.parent_path(), "moving a site")?;
    actor.require_admin(&parent.path, "moving a site")?;
    let new_path = format!("{}{}/", parent.path, site.id);
    sqlx::query(
        "UPDATE sites SET path = $1 || substr(path, CAST($2 AS INTEGER)) WHERE path >= $3 AND path < $4",
    )
    .bind(&new_path)
    .bind(site.path.chars().count() as i64 + 1)
    .bind(&site.path)
    .bind(path_upper(&site.path))
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE sites SET parent_id = $1 WHERE id = $2")
        .bind(parent.id)
        .bind(site.id)
        .execute(&mut **tx)
        .await?;
    // Plugin enablement and grants are inherited along paths: every node
    // must reload its view of them.
    sqlx::query("UPDATE plugin_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Close a site (kept, with its history). Its active children must be closed first.
pub async fn close(db: &Db, actor: &Actor, reference: &str, on: Option<String>) -> Result<Site> {
    let closed_on = match on {
        Some(d) => parse_date("closed_on", &d)?,
        None => today(),
    };
    let mut tx = db.begin().await?;
    let before = resolve_in(&mut tx, actor, reference).await?;
    actor.require_admin(before.parent_path(), "closing a site")?;
    if before.status == "closed" {
        return Err(Error::Conflict {
            field: None,
            message: format!("site {} is already closed", before.code),
        });
    }
    let (open_children,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM sites WHERE parent_id = $1 AND status = 'active'")
            .bind(before.id)
            .fetch_one(&mut *tx)
            .await?;
    if open_children > 0 {
        return Err(Error::Conflict {
            field: None,
            message: format!(
                "site {} still has {open_children} active child sites; close them first",
                before.code
            ),
        });
    }
    sqlx::query(
        "UPDATE sites SET status = 'closed', closed_on = $1, updated_at = $2 WHERE id = $3",
    )
    .bind(&closed_on)
    .bind(now_micros())
    .bind(before.id)
    .execute(&mut *tx)
    .await?;
    let after = audit_change(&mut tx, actor, "site.close", Some(&before), before.id).await?;
    tx.commit().await?;
    Ok(after)
}

/// Direct children of a site, by code.
pub async fn children(db: &Db, actor: &Actor, reference: &str) -> Result<Vec<Site>> {
    let site = get(db, actor, reference).await?;
    let rows = sqlx::query(&format!("{SELECT} WHERE s.parent_id = $1 ORDER BY s.code"))
        .bind(site.id)
        .fetch_all(db.reader())
        .await?;
    let all: Vec<Site> = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok(all
        .into_iter()
        .filter(|s| actor.can_see_site(&s.path))
        .collect())
}

/// Ancestors from the city down to the site's parent.
pub async fn ancestors(db: &Db, actor: &Actor, reference: &str) -> Result<Vec<Site>> {
    let site = get(db, actor, reference).await?;
    let ids: Vec<i64> = site
        .path
        .split('/')
        .filter_map(|p| p.parse().ok())
        .filter(|id| *id != site.id)
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(s) = fetch(db.reader(), id).await? {
            out.push(s);
        }
    }
    Ok(out)
}

/// Filters for [`list`].
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    /// Only within this site's subtree (including it).
    pub within: Option<String>,
    /// Name contains (Chinese or English).
    pub q: Option<String>,
    /// Exact kind.
    pub kind: Option<String>,
    /// `active` or `closed`.
    pub status: Option<String>,
    /// Cursor: path strictly after this.
    pub after_path: Option<String>,
    /// Page size.
    pub limit: i64,
}

/// List sites in subtree order (a parent before its children), one page.
pub async fn list(db: &Db, actor: &Actor, q: ListQuery) -> Result<Vec<Site>> {
    let scopes: Vec<String> = match &q.within {
        Some(reference) => {
            let site = get(db, actor, reference).await?;
            let visible = actor.visible_scopes();
            let inside = visible
                .as_ref()
                .is_none_or(|v| v.iter().any(|p| site.path.starts_with(p)));
            if !inside {
                return Err(Error::forbidden(
                    "listing a subtree needs a role at that site or above",
                ));
            }
            vec![site.path]
        }
        None => actor
            .visible_scopes()
            .unwrap_or_else(|| vec!["/".to_string()]),
    };
    if let Some(kind) = &q.kind {
        if allowed_parents(kind).is_none() {
            return Err(Error::invalid("kind", format!("unknown kind {kind:?}")));
        }
    }
    if let Some(status) = &q.status {
        if status != "active" && status != "closed" {
            return Err(Error::invalid("status", "must be active or closed"));
        }
    }
    let mut sql = format!("{SELECT} WHERE (");
    let mut binds: Vec<String> = Vec::new();
    for (i, scope) in scopes.iter().take(32).enumerate() {
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str(&format!(
            "(s.path >= ${} AND s.path < ${})",
            binds.len() + 1,
            binds.len() + 2
        ));
        binds.push(scope.clone());
        binds.push(path_upper(scope));
    }
    sql.push(')');
    if let Some(after) = &q.after_path {
        binds.push(after.clone());
        sql.push_str(&format!(" AND s.path > ${}", binds.len()));
    }
    if let Some(kind) = &q.kind {
        binds.push(kind.clone());
        sql.push_str(&format!(" AND s.kind = ${}", binds.len()));
    }
    if let Some(status) = &q.status {
        binds.push(status.clone());
        sql.push_str(&format!(" AND s.status = ${}", binds.len()));
    }
    if let Some(text) = &q.q {
        binds.push(format!("%{}%", text.replace(['%', '_'], "")));
        sql.push_str(&format!(
            " AND (s.name_zh LIKE ${0} OR s.name_en LIKE ${0} OR s.code LIKE ${0})",
            binds.len()
        ));
    }
    sql.push_str(&format!(
        " ORDER BY s.path LIMIT {}",
        q.limit.clamp(1, 10_000)
    ));
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b.as_str());
    }
    let rows = query.fetch_all(db.reader()).await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(id: i64, parent: Option<i64>, path: &str) -> Site {
        Site {
            id,
            code: String::new(),
            name_zh: String::new(),
            name_en: None,
            kind: "village".into(),
            level: "village".into(),
            parent_id: parent,
            parent_code: None,
            address: None,
            latitude: None,
            longitude: None,
            operator: "public".into(),
            status: "active".into(),
            opened_on: String::new(),
            closed_on: None,
            path: path.into(),
        }
    }

    #[test]
    fn parent_path_strips_exactly_one_segment() {
        assert_eq!(site(5, Some(15), "/1/15/5/").parent_path(), "/1/15/");
        assert_eq!(site(42, Some(7), "/1/7/42/").parent_path(), "/1/7/");
        assert_eq!(site(1, None, "/1/").parent_path(), "/1/");
    }
}
