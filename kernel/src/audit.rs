//! The append-only audit log: every change made by an admin or the system.
//!
//! Entries are written inside the same transaction as the change they
//! describe, so a change and its audit record commit together or not at all.
//! `before`/`after` snapshots are the objects' public JSON forms, in which ID
//! numbers and phones are already masked.
//!
//! **Invariant:** nothing updates or deletes an audit row (database triggers
//! refuse it).

use crate::authz::{path_upper, Actor};
use crate::error::Result;
use crate::storage::{now_micros, Db, Tx};
use serde::Serialize;
use serde_json::Value;

/// One change to record.
pub struct Change<'a> {
    /// Dotted verb, e.g. `site.create`.
    pub action: &'a str,
    /// The site the object belongs to (for subtree queries).
    pub site: Option<(i64, &'a str)>,
    /// Object type, e.g. `site`.
    pub object_type: &'a str,
    /// Object id as text.
    pub object_id: String,
    /// State before, if any.
    pub before: Option<Value>,
    /// State after, if any.
    pub after: Option<Value>,
}

const INSERT: &str = "INSERT INTO audit_log (at, actor_id, actor, action, site_id, site_path, \
     object_type, object_id, before_json, after_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Audited changes that plugins can subscribe to, as `kernel.<action>`.
pub const EVENTS: &[&str] = &[
    "site.create",
    "site.update",
    "site.close",
    "person.create",
    "person.import",
    "role.grant",
    "role.revoke",
    "account.activate",
    "account.freeze",
    "account.unfreeze",
    "ledger.record",
    "ledger.reverse",
    "plugin.enable",
    "plugin.disable",
];

const EVENT: &str = "INSERT INTO plugin_outbox (name, payload, site, published_at, fanned) VALUES ($1, $2, $3, $4, 0)";

/// The kernel event for a change, if it is one plugins can subscribe to:
/// (name, payload, site path). The payload carries the object's public
/// (masked) form, never an unmasked ID number.
fn event(change: &Change<'_>) -> Option<(String, String, Option<String>)> {
    EVENTS.contains(&change.action).then(|| {
        (
            format!("kernel.{}", change.action),
            serde_json::json!({
                "object": change.object_type,
                "id": change.object_id,
                "after": change.after,
            })
            .to_string(),
            change.site.map(|s| s.1.to_string()),
        )
    })
}

/// Append one audit entry in `tx`, and the kernel event it makes (same transaction).
pub async fn record(tx: &mut Tx, actor: &Actor, change: Change<'_>) -> Result<()> {
    if let Some((name, payload, site)) = event(&change) {
        sqlx::query(EVENT)
            .bind(name)
            .bind(payload)
            .bind(site)
            .bind(now_micros())
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(INSERT)
        .bind(now_micros())
        .bind(actor.person_id())
        .bind(actor.label())
        .bind(change.action)
        .bind(change.site.map(|s| s.0))
        .bind(change.site.map(|s| s.1.to_string()))
        .bind(change.object_type)
        .bind(change.object_id)
        .bind(change.before.map(|v| v.to_string()))
        .bind(change.after.map(|v| v.to_string()))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Append one audit entry in a transaction on a direct SQLite connection
/// (bulk paths), with the same statement.
pub fn record_native(
    tx: &rusqlite::Transaction<'_>,
    actor: &Actor,
    change: Change<'_>,
) -> rusqlite::Result<()> {
    if let Some((name, payload, site)) = event(&change) {
        tx.execute(EVENT, rusqlite::params![name, payload, site, now_micros()])?;
    }
    tx.execute(
        INSERT,
        rusqlite::params![
            now_micros(),
            actor.person_id(),
            actor.label(),
            change.action,
            change.site.map(|s| s.0),
            change.site.map(|s| s.1.to_string()),
            change.object_type,
            change.object_id,
            change.before.map(|v| v.to_string()),
            change.after.map(|v| v.to_string()),
        ],
    )?;
    Ok(())
}

/// An audit entry as shown to admins.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Entry {
    /// Position in the log.
    pub id: i64,
    /// Microseconds since the epoch.
    pub at: i64,
    /// The person who acted, if a person did.
    pub actor_id: Option<i64>,
    /// `person:N` or `system:…`.
    pub actor: String,
    /// Dotted verb.
    pub action: String,
    /// Site of the object.
    pub site_id: Option<i64>,
    /// Object type.
    pub object_type: String,
    /// Object id.
    pub object_id: String,
    /// JSON before the change.
    pub before_json: Option<String>,
    /// JSON after the change.
    pub after_json: Option<String>,
}

/// Query parameters for [`list`].
#[derive(Debug, Default)]
pub struct Query {
    /// Restrict to this site's subtree (its path).
    pub within_path: Option<String>,
    /// From this time (µs, inclusive).
    pub from: Option<i64>,
    /// Until this time (µs, exclusive).
    pub until: Option<i64>,
    /// Entries with id above this (cursor); with `newest_first`, below it
    /// (0: from the newest).
    pub after_id: i64,
    /// Page size.
    pub limit: i64,
    /// Newest entries first (the console's view) instead of oldest first.
    pub newest_first: bool,
}

/// Read the log, newest last (or first, with `newest_first`). Admins see
/// their subtrees; city admins all.
pub async fn list(db: &Db, actor: &Actor, q: Query) -> Result<Vec<Entry>> {
    let path = match (&q.within_path, actor.admin_scopes()) {
        (Some(p), _) => {
            actor.require_admin(p, "reading the audit log")?;
            Some(p.clone())
        }
        (None, None) => None,
        (None, Some(scopes)) => match scopes.as_slice() {
            [one] => Some(one.clone()),
            [] => {
                return Err(crate::error::Error::forbidden(
                    "reading the audit log needs the site_admin role",
                ))
            }
            _ => {
                return Err(crate::error::Error::invalid(
                    "site",
                    "you administer several subtrees: name one with ?site=",
                ))
            }
        },
    };
    let (lo, hi) = match &path {
        Some(p) => (Some(p.clone()), Some(path_upper(p))),
        None => (None, None),
    };
    let (cursor, order, after) = match (q.newest_first, q.after_id) {
        (false, id) => (">", "", id),
        (true, 0) => ("<", "DESC", i64::MAX),
        (true, id) => ("<", "DESC", id),
    };
    let rows = sqlx::query_as::<_, Entry>(&format!(
        "SELECT id, at, actor_id, actor, action, site_id, object_type, object_id, before_json, after_json \
         FROM audit_log WHERE id {cursor} $1 \
         AND ($2 IS NULL OR (site_path >= $2 AND site_path < $3)) \
         AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR at < $5) \
         ORDER BY id {order} LIMIT $6"
    ))
    .bind(after)
    .bind(lo)
    .bind(hi)
    .bind(q.from)
    .bind(q.until)
    .bind(q.limit)
    .fetch_all(db.reader())
    .await?;
    Ok(rows)
}
