//! The city's approval of institution plugins: for a publisher that
//! requires it, a plugin's first enable at a site, and an upgrade asking
//! for more capabilities (or identity.grant roles) than were approved, wait
//! in a queue until a city admin approves (then the enable or the upgrade
//! happens, in the same transaction as the decision) or refuses with a
//! reason. City admins' own enables and upgrades need no request: they are
//! the approval. All of it audited.

use super::publishers::{owner_entry, Publisher};
use super::Registry;
use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::error::{Error, Result};
use crate::plugins::manifest::Manifest;
use crate::sites::Site;
use crate::storage::{now_micros, Tx};
use sqlx::AnyConnection;

/// What each capability lets a plugin do, for the admins deciding.
pub const CAPABILITY_MEANINGS: &[(&str, &str)] = &[
    (
        "sites.read",
        "read the site registry (names, kinds, the tree of sites)",
    ),
    (
        "identity.read",
        "read persons' records (name, masked ID number, birth date, sex, home site — or only the fields listed) for persons the call may see",
    ),
    (
        "accounts.read",
        "read learners' credit-bank accounts and recorded learning outcomes",
    ),
    (
        "accounts.record",
        "record (and reverse its own) learning outcomes in learners' credit-bank accounts",
    ),
    (
        "identity.grant",
        "grant persons the roles listed, at the call's site or below it",
    ),
    (
        "accounts.convert",
        "convert learners' recorded outcomes into credits under the city's published conversion standards",
    ),
];

/// The meaning of one capability.
pub fn meaning(capability: &str) -> &'static str {
    CAPABILITY_MEANINGS
        .iter()
        .find(|(c, _)| *c == capability)
        .map(|(_, m)| *m)
        .unwrap_or("a capability this kernel does not describe")
}

/// The result of an enable or upgrade that may wait for approval.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Done now.
    Done(T),
    /// Waiting in the approval queue.
    Pending(Box<Approval>),
}

/// Whether an enable or upgrade comes straight from an actor or from a
/// city admin approving request `id`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Via<'a> {
    Direct,
    Approval { id: i64, reason: Option<&'a str> },
}

/// One capability a request asks for, explained.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AskedCapability {
    pub name: String,
    /// The person fields (`identity.read`) or roles (`identity.grant`) it is narrowed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    pub meaning: String,
    /// Not approved for this plugin before.
    pub new: bool,
}

/// One request in the approval queue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Approval {
    pub id: i64,
    pub plugin: String,
    pub version: String,
    /// `first-enable` or `upgrade`.
    pub kind: String,
    /// The site a first enable asks for.
    pub site: Option<String>,
    pub publisher: String,
    pub name_zh: String,
    pub name_en: String,
    pub description: String,
    pub capabilities: Vec<AskedCapability>,
    /// The manifest (TOML) of the version asked for.
    pub manifest: String,
    pub requested_by: String,
    pub requested_at: i64,
    /// `pending`, `approved` or `refused`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
}

/// What was approved for a plugin: (capabilities, identity.grant roles);
/// None: never approved.
type Approved = Option<(Vec<String>, Vec<String>)>;

pub(super) async fn approved(conn: &mut AnyConnection, plugin: &str) -> Result<Approved> {
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT approved_capabilities, approved_roles FROM plugin_ids WHERE plugin = $1",
    )
    .bind(plugin)
    .fetch_optional(&mut *conn)
    .await?;
    let parse = |t: Option<String>| -> Vec<String> {
        t.and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    };
    Ok(match row {
        Some((Some(c), r)) => Some((parse(Some(c)), parse(r))),
        _ => None,
    })
}

/// What `m` asks for beyond `approved` (capabilities and roles, named).
pub(super) fn beyond(approved: &Approved, m: &Manifest) -> Vec<String> {
    let (caps, roles) = approved.clone().unwrap_or_default();
    let mut out: Vec<String> = m
        .capabilities
        .iter()
        .filter(|c| !caps.contains(c))
        .cloned()
        .collect();
    out.extend(
        m.grantable_roles
            .iter()
            .filter(|r| !roles.contains(r))
            .map(|r| format!("identity.grant role {r}")),
    );
    out
}

/// Whether `plugin` is enabled at any site now.
async fn enabled_anywhere(conn: &mut AnyConnection, plugin: &str) -> Result<bool> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM plugin_enablement WHERE plugin = $1 AND enabled = 1 LIMIT 1")
            .bind(plugin)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.is_some())
}

/// Inside a rollback's transaction, before `m` (the version restored)
/// becomes active again: for a publisher that requires approval, an
/// institution may restore only a version within what the city approved
/// (or, when nothing was approved yet, only while the plugin is enabled
/// nowhere: its first enable is then gated); otherwise it is refused and a
/// city admin rolls back. A city admin's rollback is the approval.
pub(super) async fn gate_rollback(
    tx: &mut Tx,
    actor: &Actor,
    publisher: Option<&Publisher>,
    m: &Manifest,
) -> Result<()> {
    let Some(p) = publisher else { return Ok(()) };
    if actor.is_city_admin() {
        if p.approval || p.site.is_some() {
            record_approved(tx, actor, m).await?;
        }
        return Ok(());
    }
    if !p.approval {
        return Ok(());
    }
    let granted = approved(tx, &m.id).await?;
    if granted.is_none() && !enabled_anywhere(tx, &m.id).await? {
        return Ok(());
    }
    let extra = beyond(&granted, m);
    if extra.is_empty() {
        return Ok(());
    }
    Err(Error::conflict(
        "capabilities",
        format!(
            "version {} of plugin {} asks for {}, which the city has not approved for it: only a city admin may roll back to it (or upgrade, which asks for approval)",
            m.version,
            m.id,
            extra.join(", ")
        ),
    ))
}

/// Add what `m` asks for to what is approved for its plugin.
async fn record_approved(tx: &mut Tx, actor: &Actor, m: &Manifest) -> Result<()> {
    let (mut caps, mut roles) = approved(tx, &m.id).await?.unwrap_or_default();
    caps.extend(m.capabilities.iter().cloned());
    roles.extend(m.grantable_roles.iter().cloned());
    caps.sort();
    caps.dedup();
    roles.sort();
    roles.dedup();
    sqlx::query(
        "INSERT INTO plugin_ids (plugin, publisher, claimed_at, claimed_by, approved_capabilities, approved_roles) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (plugin) DO UPDATE SET approved_capabilities = $5, approved_roles = $6",
    )
    .bind(&m.id)
    .bind(&m.publisher)
    .bind(now_micros())
    .bind(actor.label())
    .bind(serde_json::json!(caps).to_string())
    .bind(serde_json::json!(roles).to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

type Row = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    i64,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
);

const SELECT: &str =
    "SELECT a.id, a.plugin, a.version, a.kind, s.code, a.capabilities, a.roles, a.manifest, \
     a.requested_by, a.requested_at, a.status, a.decided_by, a.decided_at, a.reason \
     FROM plugin_approvals a LEFT JOIN sites s ON s.id = a.site_id";

/// Which requests to load.
enum Filter<'a> {
    Id(i64),
    /// '' for all.
    Status(&'a str),
}

async fn load(conn: &mut AnyConnection, filter: Filter<'_>) -> Result<Vec<Approval>> {
    let rows: Vec<Row> = match filter {
        Filter::Id(id) => {
            sqlx::query_as(&format!("{SELECT} WHERE a.id = $1"))
                .bind(id)
                .fetch_all(&mut *conn)
                .await?
        }
        Filter::Status(s) => {
            sqlx::query_as(&format!(
                "{SELECT} WHERE ($1 = '' OR a.status = $1) ORDER BY a.id"
            ))
            .bind(s)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let mut out = Vec::new();
    for r in rows {
        let m = crate::plugins::manifest::parse(&r.7)
            .map_err(|e| Error::Internal(anyhow::anyhow!("stored request manifest: {e}")))?;
        // What was approved before this request (for a decided request,
        // what is approved now; `new` is then informational).
        let before = approved(conn, &r.1).await?;
        let (old_caps, old_roles) = before.unwrap_or_default();
        let capabilities = m
            .capabilities
            .iter()
            .map(|c| AskedCapability {
                name: c.clone(),
                fields: (c == "identity.read")
                    .then(|| m.identity_fields.clone())
                    .flatten(),
                roles: (c == "identity.grant").then(|| m.grantable_roles.clone()),
                meaning: meaning(c).to_string(),
                new: !old_caps.contains(c)
                    || (c == "identity.grant"
                        && m.grantable_roles.iter().any(|r| !old_roles.contains(r))),
            })
            .collect();
        out.push(Approval {
            id: r.0,
            plugin: r.1,
            version: r.2,
            kind: r.3,
            site: r.4,
            publisher: m.publisher.clone(),
            name_zh: m.name.zh_cn.clone(),
            name_en: m.name.en.clone(),
            description: m.description.clone(),
            capabilities,
            manifest: r.7,
            requested_by: r.8,
            requested_at: r.9,
            status: r.10,
            decided_by: r.11,
            decided_at: r.12,
            reason: r.13,
        });
    }
    Ok(out)
}

async fn one(conn: &mut AnyConnection, id: i64) -> Result<Option<Approval>> {
    Ok(load(conn, Filter::Id(id)).await?.pop())
}

/// Queue a request in `tx` and audit it; returns its id.
async fn queue(
    tx: &mut Tx,
    actor: &Actor,
    m: &Manifest,
    manifest_text: &str,
    kind: &str,
    site: Option<&Site>,
    package: Option<&[u8]>,
) -> Result<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO plugin_approvals (plugin, version, kind, site_id, capabilities, roles, manifest, package, requested_by, requested_at, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending') RETURNING id",
    )
    .bind(&m.id)
    .bind(&m.version)
    .bind(kind)
    .bind(site.map(|s| s.id))
    .bind(serde_json::json!(m.capabilities).to_string())
    .bind(serde_json::json!(m.grantable_roles).to_string())
    .bind(manifest_text)
    .bind(package.map(|p| p.to_vec()))
    .bind(actor.label())
    .bind(now_micros())
    .fetch_one(&mut **tx)
    .await?;
    audit::record(
        tx,
        actor,
        Change {
            action: "plugin.approval.request",
            site: site.map(|s| (s.id, s.path.as_str())),
            object_type: "plugin_approval",
            object_id: id.to_string(),
            before: None,
            after: Some(serde_json::json!({
                "plugin": m.id, "version": m.version, "kind": kind,
                "site": site.map(|s| s.code.clone()),
                "capabilities": m.capabilities, "roles": m.grantable_roles,
            })),
        },
    )
    .await?;
    Ok(id)
}

/// Mark request `id` (for `plugin`) approved in `tx`, audited.
async fn mark_approved(
    tx: &mut Tx,
    actor: &Actor,
    id: i64,
    m: &Manifest,
    reason: Option<&str>,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE plugin_approvals SET status = 'approved', decided_by = $2, decided_at = $3, reason = $4 \
         WHERE id = $1 AND plugin = $5 AND status = 'pending'",
    )
    .bind(id)
    .bind(actor.label())
    .bind(now_micros())
    .bind(reason)
    .bind(&m.id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(Error::conflict(
            "status",
            format!("approval request {id} is not pending any more"),
        ));
    }
    record_approved(tx, actor, m).await?;
    audit::record(
        tx,
        actor,
        Change {
            action: "plugin.approval.approve",
            site: None,
            object_type: "plugin_approval",
            object_id: id.to_string(),
            before: Some(serde_json::json!({"status": "pending"})),
            after: Some(serde_json::json!({
                "status": "approved", "plugin": m.id, "version": m.version,
                "capabilities": m.capabilities, "roles": m.grantable_roles, "reason": reason,
            })),
        },
    )
    .await
}

/// Before enabling `m` at `site` (inside the enable's transaction): record
/// a city admin's enable as approval, mark an approved request, or queue a
/// request (Some(id): the caller commits and answers "pending").
pub(super) async fn gate_enable(
    tx: &mut Tx,
    actor: &Actor,
    publisher: Option<&Publisher>,
    m: &Manifest,
    manifest_text: &str,
    site: &Site,
    via: Via<'_>,
) -> Result<Option<i64>> {
    if let Via::Approval { id, reason } = via {
        let asked: Option<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT capabilities, roles, site_id FROM plugin_approvals WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((caps, roles, site_id)) = asked else {
            return Err(Error::NotFound(format!("approval request {id}")));
        };
        let caps: Vec<String> = serde_json::from_str(&caps).unwrap_or_default();
        let roles: Vec<String> = serde_json::from_str(&roles).unwrap_or_default();
        let extra = beyond(&Some((caps, roles)), m);
        if !extra.is_empty() || site_id != Some(site.id) {
            return Err(Error::conflict(
                "version",
                format!(
                    "plugin {} changed since request {id} (version {} now asks for {}); refuse the request and let the institution ask again",
                    m.id,
                    m.version,
                    extra.join(", ")
                ),
            ));
        }
        mark_approved(tx, actor, id, m, reason).await?;
        return Ok(None);
    }
    let Some(p) = publisher else { return Ok(None) };
    if actor.is_city_admin() {
        if p.approval || p.site.is_some() {
            record_approved(tx, actor, m).await?;
        }
        return Ok(None);
    }
    let granted = approved(tx, &m.id).await?;
    if !p.approval || (granted.is_some() && beyond(&granted, m).is_empty()) {
        return Ok(None);
    }
    let waiting: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM plugin_approvals WHERE plugin = $1 AND kind = 'first-enable' AND site_id = $2 \
         AND version = $3 AND status = 'pending' ORDER BY id LIMIT 1",
    )
    .bind(&m.id)
    .bind(site.id)
    .bind(&m.version)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((id,)) = waiting {
        return Ok(Some(id));
    }
    queue(
        tx,
        actor,
        m,
        manifest_text,
        "first-enable",
        Some(site),
        None,
    )
    .await
    .map(Some)
}

/// Inside an upgrade's transaction: mark the request it carries out
/// approved, or record a city admin's own upgrade as approval.
pub(super) async fn upgrade_approved(
    tx: &mut Tx,
    actor: &Actor,
    m: &Manifest,
    via: Via<'_>,
) -> Result<()> {
    match via {
        Via::Approval { id, reason } => mark_approved(tx, actor, id, m, reason).await,
        Via::Direct if actor.is_city_admin() => {
            let p = owner_entry(tx, &m.id).await?;
            if p.is_some_and(|p| p.approval || p.site.is_some()) {
                record_approved(tx, actor, m).await?;
            }
            Ok(())
        }
        Via::Direct => Ok(()),
    }
}

impl Registry {
    /// Before an upgrade to `m` (package verified, not yet stored): queue
    /// it if its publisher requires approval, something was approved for
    /// the plugin (or it is enabled somewhere, taken as nothing approved),
    /// and `m` asks for more (Some(request)). With
    /// `Via::Approval` nothing is queued; the upgrade's transaction marks
    /// the request (see [`Registry::approve`]).
    pub(super) async fn gate_upgrade(
        &self,
        actor: &Actor,
        publisher: Option<&Publisher>,
        m: &Manifest,
        manifest_text: &str,
        bytes: &[u8],
        via: Via<'_>,
    ) -> Result<Option<Approval>> {
        let Some(p) = publisher else { return Ok(None) };
        if !matches!(via, Via::Direct) || actor.is_city_admin() || !p.approval {
            return Ok(None);
        }
        let mut tx = self.kernel.db.begin().await?;
        let granted = approved(&mut tx, &m.id).await?;
        // Never approved: a plugin enabled nowhere is gated at its first
        // enable; one enabled already (approval turned on later) has
        // nothing approved, so the upgrade asks for all it needs.
        if granted.is_none() && !enabled_anywhere(&mut tx, &m.id).await? {
            return Ok(None);
        }
        if beyond(&granted, m).is_empty() {
            return Ok(None);
        }
        let waiting: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, version FROM plugin_approvals WHERE plugin = $1 AND kind = 'upgrade' AND status = 'pending' ORDER BY id LIMIT 1",
        )
        .bind(&m.id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id, version)) = waiting {
            return Err(Error::conflict(
                "version",
                format!("an upgrade of plugin {} to version {version} is waiting for the city's approval (request {id}); wait for the decision first", m.id),
            ));
        }
        let id = queue(
            &mut tx,
            actor,
            m,
            manifest_text,
            "upgrade",
            None,
            Some(bytes),
        )
        .await?;
        tx.commit().await?;
        let mut conn = self.kernel.db.reader().acquire().await?;
        one(&mut conn, id).await
    }

    /// A request the caller just made (after `Outcome::Pending`), or any one.
    pub(super) async fn approval_by_id(&self, id: i64) -> Result<Approval> {
        let mut conn = self.kernel.db.reader().acquire().await?;
        one(&mut conn, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("approval request {id}")))
    }

    /// The approval queue (city admins): requests with `status` (pending,
    /// approved, refused; None: all), oldest first.
    pub async fn approvals(&self, actor: &Actor, status: Option<&str>) -> Result<Vec<Approval>> {
        actor.require_city_admin("reading the plugin approval queue")?;
        if let Some(s) = status {
            if !["pending", "approved", "refused"].contains(&s) {
                return Err(Error::invalid(
                    "status",
                    format!("unknown status {s:?}; expected pending, approved or refused"),
                ));
            }
        }
        let mut conn = self.kernel.db.reader().acquire().await?;
        load(&mut conn, Filter::Status(status.unwrap_or(""))).await
    }

    /// One request: for city admins, and for whoever may publish the
    /// plugin's packages (so an institution follows its own requests).
    pub async fn approval(&self, actor: &Actor, id: i64) -> Result<Approval> {
        let a = self.approval_by_id(id).await?;
        if !actor.is_city_admin() && self.require_over(actor, &a.plugin, "").await.is_err() {
            return Err(Error::NotFound(format!("approval request {id}")));
        }
        Ok(a)
    }

    /// Approve a pending request (city admins): the enable or the upgrade
    /// it asks for happens now, in the same transaction as the decision.
    pub async fn approve(&self, actor: &Actor, id: i64, reason: Option<&str>) -> Result<Approval> {
        actor.require_city_admin("approving a plugin request")?;
        let a = self.approval_by_id(id).await?;
        if a.status != "pending" {
            return Err(Error::conflict(
                "status",
                format!("approval request {id} was {} already", a.status),
            ));
        }
        let via = Via::Approval { id, reason };
        match a.kind.as_str() {
            "first-enable" => {
                let site = a.site.clone().ok_or_else(|| {
                    Error::Internal(anyhow::anyhow!("request {id} names no site"))
                })?;
                self.enable_via(actor, &a.plugin, &site, true, via).await?;
            }
            _ => {
                let (package,): (Option<Vec<u8>>,) =
                    sqlx::query_as("SELECT package FROM plugin_approvals WHERE id = $1")
                        .bind(id)
                        .fetch_one(self.kernel.db.reader())
                        .await?;
                let package = package.ok_or_else(|| {
                    Error::Internal(anyhow::anyhow!("request {id} keeps no package"))
                })?;
                self.upgrade_via(actor, &package, via).await?;
            }
        }
        self.approval_by_id(id).await
    }

    /// Refuse a pending request with a reason (city admins); nothing else changes.
    pub async fn refuse(&self, actor: &Actor, id: i64, reason: &str) -> Result<Approval> {
        actor.require_city_admin("refusing a plugin request")?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::invalid(
                "reason",
                "say why the request is refused (the institution reads it)",
            ));
        }
        let mut tx = self.kernel.db.begin().await?;
        let row: Option<(String, String)> = sqlx::query_as(
            "UPDATE plugin_approvals SET status = 'refused', decided_by = $2, decided_at = $3, reason = $4 \
             WHERE id = $1 AND status = 'pending' RETURNING plugin, version",
        )
        .bind(id)
        .bind(actor.label())
        .bind(now_micros())
        .bind(reason)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((plugin, version)) = row else {
            let status: Option<(String,)> =
                sqlx::query_as("SELECT status FROM plugin_approvals WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match status {
                None => Error::NotFound(format!("approval request {id}")),
                Some((s,)) => {
                    Error::conflict("status", format!("approval request {id} was {s} already"))
                }
            });
        };
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "plugin.approval.refuse",
                site: None,
                object_type: "plugin_approval",
                object_id: id.to_string(),
                before: Some(serde_json::json!({"status": "pending"})),
                after: Some(serde_json::json!({"status": "refused", "plugin": plugin, "version": version, "reason": reason})),
            },
        )
        .await?;
        tx.commit().await?;
        self.approval_by_id(id).await
    }
}
