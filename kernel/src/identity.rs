//! The identity registry: persons, their roles at sites, and authentication.
//!
//! **Invariant:** a resident ID number is validated (GB 11643 check digit,
//! birth date and sex consistent with any given), stored only encrypted with
//! a keyed hash for de-duplication, and leaves this module masked — except
//! through [`reveal_id_number`], which needs the `pii_reader` (or
//! `city_admin`) role over the person's home site and is audited.
//!
//! Every person gets a lifelong-learning account (status `open`) in the same
//! transaction that creates them.

pub mod csv;

use crate::audit::{self, Change};
use crate::authz::{path_upper, Actor, Caller, Grant, Role};
use crate::crypto::{self, PiiKeys};
use crate::error::{Error, FieldError, Result};
use crate::idnumber::{Phone, ResidentId, Sex};
use crate::kernel::Kernel;
use crate::sites;
use crate::storage::{col, is_unique_violation, now_micros, Tx};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

/// A person as shown to callers: personal data masked.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Person {
    /// Internal id.
    pub id: i64,
    /// Full name.
    pub name: String,
    /// Masked resident ID number.
    pub id_number: String,
    /// Birth date (YYYY-MM-DD), from the ID number.
    pub birth_date: String,
    /// `male` or `female`, from the ID number.
    pub sex: String,
    /// Masked phone.
    pub phone: Option<String>,
    /// Home site id.
    pub home_site_id: i64,
    /// Home site code.
    pub home_site_code: String,
    /// Login name, if the person can sign in.
    pub login: Option<String>,
    /// Internal: home site path.
    #[serde(skip)]
    pub home_path: String,
}

const SELECT: &str = "SELECT p.id, p.name, p.id_masked, p.birth_date, p.sex, p.phone_masked, \
    p.home_site_id, s.code AS home_code, s.path AS home_path, p.login \
    FROM persons p JOIN sites s ON s.id = p.home_site_id";

fn from_row(r: &AnyRow) -> Result<Person, sqlx::Error> {
    Ok(Person {
        id: col(r, "id")?,
        name: col(r, "name")?,
        id_number: col(r, "id_masked")?,
        birth_date: col(r, "birth_date")?,
        sex: col(r, "sex")?,
        phone: col(r, "phone_masked")?,
        home_site_id: col(r, "home_site_id")?,
        home_site_code: col(r, "home_code")?,
        login: col(r, "login")?,
        home_path: col(r, "home_path")?,
    })
}

/// Input for creating a person.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    /// Full name.
    pub name: String,
    /// 18-character resident ID number.
    pub id_number: String,
    /// Birth date, checked against the ID number when given.
    #[serde(default)]
    pub birth_date: Option<String>,
    /// Sex, checked against the ID number when given.
    #[serde(default)]
    pub sex: Option<String>,
    /// Mobile phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Home site code (or id).
    pub home_site: String,
    /// Login name, to let the person sign in.
    #[serde(default)]
    pub login: Option<String>,
    /// Password, with `login`.
    #[serde(default)]
    pub password: Option<String>,
}

/// A validated person, ready to store.
pub struct Checked {
    pub(crate) name: String,
    pub(crate) id: ResidentId,
    pub(crate) phone: Option<Phone>,
}

/// Validate everything about a new person that needs no database.
pub fn check(n: &NewPerson) -> std::result::Result<Checked, Vec<FieldError>> {
    let mut errs = Vec::new();
    let mut bad = |f: &str, m: String| {
        errs.push(FieldError {
            field: f.into(),
            message: m,
        })
    };
    let name = n.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        bad("name", "must be 1-100 characters".into());
    }
    let id = match ResidentId::parse(&n.id_number) {
        Ok(id) => Some(id),
        Err(e) => {
            bad("id_number", e.to_string());
            None
        }
    };
    if let (Some(id), Some(b)) = (&id, &n.birth_date) {
        if id.birth_date().format("%Y-%m-%d").to_string() != *b {
            bad(
                "birth_date",
                format!("{b} does not match the birth date in the ID number"),
            );
        }
    }
    if let (Some(id), Some(s)) = (&id, &n.sex) {
        match Sex::parse(s) {
            None => bad("sex", format!("{s:?} is not male or female")),
            Some(sex) if sex != id.sex() => bad(
                "sex",
                format!("{s} does not match the sex in the ID number"),
            ),
            Some(_) => {}
        }
    }
    let phone = match n
        .phone
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(Phone::parse)
    {
        Some(Ok(p)) => Some(p),
        Some(Err(m)) => {
            bad("phone", m.to_string());
            None
        }
        None => None,
    };
    if let Some(login) = &n.login {
        if login.len() < 3
            || login.len() > 64
            || !login
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        {
            bad(
                "login",
                "must be 3-64 letters, digits, '_', '.' or '-'".into(),
            );
        }
        match &n.password {
            Some(p) if p.chars().count() >= 10 => {}
            _ => bad("password", "must be at least 10 characters".into()),
        }
    } else if n.password.is_some() {
        bad("login", "a password needs a login".into());
    }
    match id {
        Some(id) if errs.is_empty() => Ok(Checked { name, id, phone }),
        _ => Err(errs),
    }
}

/// Insert a validated person and their account into `tx`; returns the id.
pub(crate) async fn insert(
    tx: &mut Tx,
    pii: &PiiKeys,
    c: &Checked,
    home_site_id: i64,
    login: Option<(&str, String)>,
) -> Result<i64> {
    let now = now_micros();
    let res = sqlx::query(
        "INSERT INTO persons (name, id_hash, id_cipher, id_masked, birth_date, sex, phone_cipher, \
         phone_masked, home_site_id, login, password_hash, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
    )
    .bind(&c.name)
    .bind(pii.lookup_hash(c.id.expose()))
    .bind(pii.encrypt(c.id.expose()))
    .bind(c.id.masked())
    .bind(c.id.birth_date().format("%Y-%m-%d").to_string())
    .bind(c.id.sex().as_str())
    .bind(c.phone.as_ref().map(|p| pii.encrypt(p.expose())))
    .bind(c.phone.as_ref().map(Phone::masked))
    .bind(home_site_id)
    .bind(login.as_ref().map(|l| l.0))
    .bind(login.as_ref().map(|l| l.1.clone()))
    .bind(now)
    .fetch_one(&mut **tx)
    .await;
    let id: i64 = match res {
        Ok(row) => col(&row, "id")?,
        Err(e) if is_unique_violation(&e) => {
            let msg = e.to_string();
            return Err(if msg.contains("login") {
                Error::conflict("login", "that login is taken")
            } else {
                Error::conflict(
                    "id_number",
                    format!(
                        "a person with ID number {} is already registered",
                        c.id.masked()
                    ),
                )
            });
        }
        Err(e) => return Err(e.into()),
    };
    sqlx::query("INSERT INTO accounts (person_id, status, opened_at, entry_count, head_hash) VALUES ($1, 'open', $2, 0, $3)")
        .bind(id)
        .bind(now)
        .bind(vec![0u8; 32])
        .execute(&mut **tx)
        .await?;
    Ok(id)
}

/// Register a person.
pub async fn create(k: &Kernel, actor: &Actor, n: NewPerson) -> Result<Person> {
    let checked = check(&n).map_err(Error::Invalid)?;
    let home = sites::resolve(&k.db, &n.home_site)
        .await
        .map_err(|_| Error::invalid("home_site", format!("no site {:?}", n.home_site)))?;
    if home.status != "active" {
        return Err(Error::invalid(
            "home_site",
            format!("site {} is closed", home.code),
        ));
    }
    actor.require_admin(&home.path, "registering a person")?;
    let login = match (&n.login, &n.password) {
        (Some(l), Some(p)) => Some((
            l.as_str(),
            crypto::hash_password(p).map_err(|e| Error::Internal(e.into()))?,
        )),
        _ => None,
    };
    let mut tx = k.db.begin().await?;
    let id = insert(&mut tx, &k.pii, &checked, home.id, login).await?;
    let person = fetch(&mut tx, id).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "person.create",
            site: Some((home.id, &home.path)),
            object_type: "person",
            object_id: id.to_string(),
            before: None,
            after: Some(serde_json::to_value(&person).unwrap_or_default()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(person)
}

async fn fetch(tx: &mut Tx, id: i64) -> Result<Person> {
    let row = sqlx::query(&format!("{SELECT} WHERE p.id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| from_row(&r))
        .transpose()?
        .ok_or_else(|| Error::NotFound(format!("person {id}")))
}

/// True if the actor may read this person's record.
pub fn can_read(actor: &Actor, p: &Person) -> bool {
    actor.person_id() == Some(p.id) || actor.is_admin_over(&p.home_path)
}

/// Get a person the actor may read (self, or an admin over their home site).
pub async fn get(k: &Kernel, actor: &Actor, id: i64) -> Result<Person> {
    let row = sqlx::query(&format!("{SELECT} WHERE p.id = $1"))
        .bind(id)
        .fetch_optional(k.db.reader())
        .await?;
    match row.map(|r| from_row(&r)).transpose()? {
        Some(p) if can_read(actor, &p) => Ok(p),
        _ => Err(Error::NotFound(format!("person {id}"))),
    }
}

/// Find a person by resident ID number (through the keyed hash).
pub async fn find_by_id_number(k: &Kernel, actor: &Actor, id_number: &str) -> Result<Person> {
    let id = ResidentId::parse(id_number).map_err(|e| Error::invalid("id_number", e))?;
    let row = sqlx::query(&format!("{SELECT} WHERE p.id_hash = $1"))
        .bind(k.pii.lookup_hash(id.expose()))
        .fetch_optional(k.db.reader())
        .await?;
    match row.map(|r| from_row(&r)).transpose()? {
        Some(p) if can_read(actor, &p) => Ok(p),
        _ => Err(Error::NotFound(format!(
            "person with ID number {}",
            id.masked()
        ))),
    }
}

/// List persons whose home site is in a subtree (admins), by id cursor.
pub async fn list(
    k: &Kernel,
    actor: &Actor,
    site: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<Person>> {
    let site = sites::get(&k.db, actor, site).await?;
    actor.require_admin(&site.path, "listing persons")?;
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE s.path >= $1 AND s.path < $2 AND p.id > $3 ORDER BY p.id LIMIT $4"
    ))
    .bind(&site.path)
    .bind(path_upper(&site.path))
    .bind(after_id)
    .bind(limit)
    .fetch_all(k.db.reader())
    .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// The full ID number, for holders of `pii_reader` (or `city_admin`) over the
/// person's home site. Every read is audited, successful or not.
pub async fn reveal_id_number(k: &Kernel, actor: &Actor, id: i64) -> Result<String> {
    let mut tx = k.db.begin().await?;
    let row = sqlx::query(&format!("{SELECT} WHERE p.id = $1"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let person = row
        .map(|r| from_row(&r))
        .transpose()?
        .ok_or_else(|| Error::NotFound(format!("person {id}")))?;
    if !actor.covers(&[Role::PiiReader, Role::CityAdmin], &person.home_path) {
        return Err(Error::forbidden(
            "reading a full ID number needs the pii_reader role over the person's home site",
        ));
    }
    let (cipher,): (Vec<u8>,) = sqlx::query_as("SELECT id_cipher FROM persons WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let plain = k
        .pii
        .decrypt(&cipher)
        .map_err(|e| Error::Internal(e.into()))?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "person.id_number.read",
            site: Some((person.home_site_id, &person.home_path)),
            object_type: "person",
            object_id: id.to_string(),
            before: None,
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(plain)
}

/// One role grant as listed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RoleGrant {
    /// Grant id.
    pub id: i64,
    /// The role.
    pub role: String,
    /// Site id.
    pub site_id: i64,
    /// Site code.
    pub site_code: String,
}

/// Grant `role` at `site` to a person.
pub async fn grant(
    k: &Kernel,
    actor: &Actor,
    person_id: i64,
    role: &str,
    site: &str,
) -> Result<RoleGrant> {
    let role = Role::parse(role)?;
    let person = get(k, actor, person_id).await?;
    let site = sites::get(&k.db, actor, site)
        .await
        .map_err(|_| Error::invalid("site", format!("no site {site:?}")))?;
    match role {
        Role::CityAdmin => {
            actor.require_city_admin("granting city_admin")?;
            if site.kind != "city" {
                return Err(Error::invalid(
                    "site",
                    "city_admin is granted only at the city site",
                ));
            }
        }
        Role::PiiReader => actor.require_city_admin("granting pii_reader")?,
        Role::SiteAdmin => {
            // A peer admin is made from above: an admin of the parent (or city).
            actor.require_admin(site.parent_path(), "granting site_admin")?
        }
        _ => actor.require_admin(&site.path, "granting a role")?,
    }
    if site.status != "active" {
        return Err(Error::invalid(
            "site",
            format!("site {} is closed", site.code),
        ));
    }
    let mut tx = k.db.begin().await?;
    let res = sqlx::query(
        "INSERT INTO role_grants (person_id, role, site_id, granted_by, granted_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(person.id)
    .bind(role.as_str())
    .bind(site.id)
    .bind(actor.person_id())
    .bind(now_micros())
    .fetch_one(&mut *tx)
    .await;
    let id: i64 = match res {
        Ok(row) => col(&row, "id")?,
        Err(e) if is_unique_violation(&e) => {
            return Err(Error::conflict(
                "role",
                format!(
                    "{} already holds {} at {}",
                    person.id,
                    role.as_str(),
                    site.code
                ),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let g = RoleGrant {
        id,
        role: role.as_str().into(),
        site_id: site.id,
        site_code: site.code.clone(),
    };
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "role.grant",
            site: Some((site.id, &site.path)),
            object_type: "person",
            object_id: person.id.to_string(),
            before: None,
            after: Some(serde_json::to_value(&g).unwrap_or_default()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(g)
}

/// Grant `role` at `site` to a person inside the caller's transaction `tx`
/// (a plugin call's: it commits or rolls back with the call). Only roles
/// without administrative power (learner, teacher, volunteer, enterprise
/// mentor); the caller checks who may ask. `by` names, for the audit
/// record, the plugin and the person whose call it was. Returns None if the
/// person already holds the role there (nothing is written).
pub async fn grant_in(
    tx: &mut Tx,
    k: &Kernel,
    actor: &Actor,
    by: (&str, Option<i64>),
    person_id: i64,
    role: &str,
    site: &str,
) -> Result<Option<RoleGrant>> {
    let role = Role::parse(role)?;
    if !matches!(
        role,
        Role::Learner | Role::Teacher | Role::Volunteer | Role::EnterpriseMentor
    ) {
        return Err(Error::invalid(
            "role",
            format!("{} is not granted from inside a call", role.as_str()),
        ));
    }
    let person = get(k, actor, person_id).await?;
    let site = sites::get(&k.db, actor, site)
        .await
        .map_err(|_| Error::invalid("site", format!("no site {site:?}")))?;
    actor.require_admin(&site.path, "granting a role")?;
    if site.status != "active" {
        return Err(Error::invalid(
            "site",
            format!("site {} is closed", site.code),
        ));
    }
    // Look first: on PostgreSQL a unique violation would abort the call's
    // transaction.
    let held: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM role_grants WHERE person_id = $1 AND role = $2 AND site_id = $3 AND revoked_at IS NULL",
    )
    .bind(person.id)
    .bind(role.as_str())
    .bind(site.id)
    .fetch_optional(&mut **tx)
    .await?;
    if held.is_some() {
        return Ok(None);
    }
    let row = sqlx::query(
        "INSERT INTO role_grants (person_id, role, site_id, granted_by, granted_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(person.id)
    .bind(role.as_str())
    .bind(site.id)
    .bind(actor.person_id())
    .bind(now_micros())
    .fetch_one(&mut **tx)
    .await?;
    let g = RoleGrant {
        id: col(&row, "id")?,
        role: role.as_str().into(),
        site_id: site.id,
        site_code: site.code.clone(),
    };
    let mut after = serde_json::to_value(&g).unwrap_or_default();
    after["plugin"] = serde_json::json!(by.0);
    after["caller"] = serde_json::json!(by.1);
    audit::record(
        tx,
        actor,
        Change {
            action: "role.grant",
            site: Some((site.id, &site.path)),
            object_type: "person",
            object_id: person.id.to_string(),
            before: None,
            after: Some(after),
        },
    )
    .await?;
    Ok(Some(g))
}

/// Revoke a grant (kept, marked revoked).
pub async fn revoke(k: &Kernel, actor: &Actor, person_id: i64, grant_id: i64) -> Result<()> {
    let person = get(k, actor, person_id).await?;
    let row: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT g.role, g.site_id, s.path FROM role_grants g JOIN sites s ON s.id = g.site_id \
         WHERE g.id = $1 AND g.person_id = $2 AND g.revoked_at IS NULL",
    )
    .bind(grant_id)
    .bind(person.id)
    .fetch_optional(k.db.reader())
    .await?;
    let (role, site_id, path) = row.ok_or_else(|| Error::NotFound(format!("grant {grant_id}")))?;
    if role == "city_admin" || role == "pii_reader" {
        actor.require_city_admin("revoking this role")?;
    } else {
        actor.require_admin(&path, "revoking a role")?;
    }
    let mut tx = k.db.begin().await?;
    sqlx::query("UPDATE role_grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now_micros())
        .bind(grant_id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "role.revoke",
            site: Some((site_id, &path)),
            object_type: "person",
            object_id: person.id.to_string(),
            before: Some(serde_json::json!({ "grant_id": grant_id, "role": role })),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Live grants of a person (self or admins).
pub async fn roles(k: &Kernel, actor: &Actor, person_id: i64) -> Result<Vec<RoleGrant>> {
    let person = get(k, actor, person_id).await?;
    let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(
        "SELECT g.id, g.role, g.site_id, s.code FROM role_grants g JOIN sites s ON s.id = g.site_id \
         WHERE g.person_id = $1 AND g.revoked_at IS NULL ORDER BY g.id",
    )
    .bind(person.id)
    .fetch_all(k.db.reader())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, role, site_id, site_code)| RoleGrant {
            id,
            role,
            site_id,
            site_code,
        })
        .collect())
}

/// A freshly issued bearer token.
#[derive(Debug, Serialize)]
pub struct IssuedToken {
    /// The token; shown once, stored only hashed.
    pub token: String,
    /// Expiry, µs since the epoch.
    pub expires_at: i64,
    /// The person signed in.
    pub person_id: i64,
}

/// Exchange a login and password for a bearer token.
pub async fn login(k: &Kernel, login: &str, password: &str) -> Result<IssuedToken> {
    let row: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT id, password_hash FROM persons WHERE login = $1")
            .bind(login)
            .fetch_optional(k.db.reader())
            .await?;
    let hash = row.as_ref().and_then(|r| r.1.clone());
    // Verify against a fixed hash when the login is unknown, so timing does
    // not reveal which logins exist.
    let ok = match &hash {
        Some(h) => crypto::verify_password(password, h),
        None => {
            static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let dummy = DUMMY
                .get_or_init(|| crypto::hash_password("not a real password").unwrap_or_default());
            crypto::verify_password(password, dummy);
            false
        }
    };
    let person_id = match (ok, row) {
        (true, Some((id, _))) => id,
        _ => return Err(Error::Unauthenticated("wrong login or password".into())),
    };
    let (token, hash) = crypto::new_token();
    let now = now_micros();
    let expires_at = now + k.token_ttl_secs * 1_000_000;
    let mut tx = k.db.begin().await?;
    sqlx::query("INSERT INTO tokens (token_hash, person_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(hash)
        .bind(person_id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(IssuedToken {
        token,
        expires_at,
        person_id,
    })
}

/// Resolve a bearer token to a caller with live grants.
pub async fn authenticate(k: &Kernel, token: &str) -> Result<Caller> {
    let row: Option<(i64, i64, Option<i64>, String)> = sqlx::query_as(
        "SELECT t.person_id, t.expires_at, t.revoked_at, s.path FROM tokens t \
         JOIN persons p ON p.id = t.person_id JOIN sites s ON s.id = p.home_site_id WHERE t.token_hash = $1",
    )
    .bind(crypto::token_hash(token))
    .fetch_optional(k.db.reader())
    .await?;
    let (person_id, expires_at, revoked_at, home_path) =
        row.ok_or_else(|| Error::Unauthenticated("the bearer token is not valid".into()))?;
    if revoked_at.is_some() {
        return Err(Error::Unauthenticated(
            "the bearer token was revoked".into(),
        ));
    }
    if expires_at <= now_micros() {
        return Err(Error::Unauthenticated(
            "the bearer token has expired".into(),
        ));
    }
    caller(k, person_id, home_path).await
}

/// Load a person's live grants.
pub async fn caller(k: &Kernel, person_id: i64, home_path: String) -> Result<Caller> {
    let grants: Vec<(String, i64, String, String)> = sqlx::query_as(
        "SELECT g.role, g.site_id, s.path, s.code FROM role_grants g JOIN sites s ON s.id = g.site_id \
         WHERE g.person_id = $1 AND g.revoked_at IS NULL AND s.status = 'active'",
    )
    .bind(person_id)
    .fetch_all(k.db.reader())
    .await?;
    let grants = grants
        .into_iter()
        .filter_map(|(role, site_id, site_path, site_code)| {
            Role::parse(&role).ok().map(|role| Grant {
                role,
                site_id,
                site_path,
                site_code,
            })
        })
        .collect();
    Ok(Caller {
        person_id,
        home_path,
        grants,
    })
}

/// Revoke a bearer token (sign out).
pub async fn logout(k: &Kernel, token: &str) -> Result<()> {
    let mut tx = k.db.begin().await?;
    sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
        .bind(now_micros())
        .bind(crypto::token_hash(token))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
