//! Publishers in the trust store: city-wide ones (the project's own, only
//! city admins install their packages) and ones the city binds to a site
//! (an institution or a township) with a capability ceiling, whose packages
//! that site's `plugin_publisher` holders and site admins install, upgrade,
//! roll back and remove themselves, and whose plugins are enabled, granted
//! and configured only within that site's subtree. Also: who owns a plugin
//! id, and revoking a publisher.
//!
//! **Invariants:**
//! - a plugin id belongs for ever to the publisher whose package first
//!   installed it (kept after removal): a package from another publisher is
//!   refused for that id;
//! - a bound publisher's manifests stay within its ceiling (install, upgrade,
//!   grant and enable all check it);
//! - revoking a publisher refuses its packages, disables each of its plugins
//!   at every site in one transaction, and stops the view from routing them;
//!   trusting it again re-enables nothing.

use super::{active_manifests, Registry};
use crate::audit::Change;
use crate::authz::{Actor, Role};
use crate::error::{Error, Result};
use crate::plugins::manifest::{Manifest, CAPABILITIES, GRANTABLE_ROLES};
use crate::plugins::package;
use crate::sites::Site;
use crate::storage::{now_micros, Db, Tx};
use sqlx::AnyConnection;

/// A publisher in the trust store, as admins see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Publisher {
    pub publisher: String,
    pub public_key: String,
    /// The site the city bound it to (None: city-wide).
    pub site: Option<String>,
    /// The capabilities the city allows its plugins (None: no ceiling).
    pub capabilities: Option<Vec<String>>,
    /// The roles `identity.grant` may name in its plugins (None: no ceiling).
    pub roles: Option<Vec<String>>,
    /// Whether a plugin's first enable, and an upgrade asking for more
    /// than was approved, wait for a city admin's approval.
    pub approval: bool,
    /// `trusted` or `revoked`.
    pub status: String,
    /// Who last trusted or revoked it, and when (µs).
    pub status_by: Option<String>,
    pub status_at: Option<i64>,
    pub added_at: i64,
    pub added_by: String,
    /// The bound site's path.
    #[serde(skip)]
    pub site_path: Option<String>,
}

/// How a city admin trusts a publisher. A field left out keeps the
/// entry's current value (a key rotation changes nothing else); for a new
/// publisher, or when `site` moves it between city-wide and bound, a field
/// left out takes that kind's default.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// None: keep; Some(Some(code)): bind to that site; Some(None) (JSON
    /// `"site": null`, CLI `--city-wide`): make it city-wide.
    #[serde(default, deserialize_with = "present")]
    pub site: Option<Option<String>>,
    /// The capability ceiling; default: none allowed for a bound publisher,
    /// no ceiling for a city-wide one.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// The roles `identity.grant` may name (needs `identity.grant` in the ceiling).
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Require approval; default: required for a bound publisher, not for a city-wide one.
    #[serde(default)]
    pub approval: Option<bool>,
}

/// A field that is present (even as `null`) is `Some`: with
/// `#[serde(default)]`, an absent one stays `None`.
pub fn present<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Who may install, upgrade, roll back and remove a bound publisher's packages.
const PUBLISHING: &[Role] = &[Role::PluginPublisher, Role::SiteAdmin, Role::CityAdmin];

type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    String,
    Option<String>,
    Option<i64>,
    i64,
    String,
);

const SELECT: &str =
    "SELECT p.publisher, p.public_key, s.code, s.path, p.ceiling_capabilities, p.ceiling_roles, \
     p.approval, p.status, p.status_by, p.status_at, p.added_at, p.added_by \
     FROM plugin_publishers p LEFT JOIN sites s ON s.id = p.site_id";

fn list_of(text: Option<String>) -> Result<Option<Vec<String>>> {
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| Error::Internal(anyhow::anyhow!("stored publisher ceiling: {e}")))
    })
    .transpose()
}

fn from_row(r: Row) -> Result<Publisher> {
    Ok(Publisher {
        publisher: r.0,
        public_key: r.1,
        site: r.2,
        site_path: r.3,
        capabilities: list_of(r.4)?,
        roles: list_of(r.5)?,
        approval: r.6 != 0,
        status: r.7,
        status_by: r.8,
        status_at: r.9,
        added_at: r.10,
        added_by: r.11,
    })
}

/// One publisher from the trust store.
pub(super) async fn publisher_in(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<Publisher>> {
    let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE p.publisher = $1"))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(from_row).transpose()
}

/// The publisher that owns a plugin id: the one recorded when its first
/// package was installed, or, for a plugin installed before ownership was
/// recorded, the publisher of its newest stored version.
pub(super) async fn owner(conn: &mut AnyConnection, plugin: &str) -> Result<Option<String>> {
    let claimed: Option<(String,)> =
        sqlx::query_as("SELECT publisher FROM plugin_ids WHERE plugin = $1")
            .bind(plugin)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some((p,)) = claimed {
        return Ok(Some(p));
    }
    let versions: Vec<(String, String)> =
        sqlx::query_as("SELECT version, manifest FROM plugin_versions WHERE plugin = $1")
            .bind(plugin)
            .fetch_all(&mut *conn)
            .await?;
    Ok(versions
        .into_iter()
        .filter_map(|(v, m)| Some((semver::Version::parse(&v).ok()?, m)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .and_then(|(_, m)| crate::plugins::manifest::parse(&m).ok())
        .map(|m| m.publisher))
}

/// The trust-store entry of the publisher owning `plugin` (None: not
/// installed, or its publisher is not in the store — development mode).
pub(super) async fn owner_entry(
    conn: &mut AnyConnection,
    plugin: &str,
) -> Result<Option<Publisher>> {
    match owner(conn, plugin).await? {
        Some(p) => publisher_in(conn, &p).await,
        None => Ok(None),
    }
}

/// [`owner_entry`], with the publisher's row locked for the rest of the
/// transaction (a no-op update, as `registry_row_locked` does).
pub(super) async fn owner_entry_locked(
    conn: &mut AnyConnection,
    plugin: &str,
) -> Result<Option<Publisher>> {
    let Some(p) = owner(conn, plugin).await? else {
        return Ok(None);
    };
    sqlx::query("UPDATE plugin_publishers SET status = status WHERE publisher = $1")
        .bind(&p)
        .execute(&mut *conn)
        .await?;
    publisher_in(conn, &p).await
}

/// Refuse a package whose id another publisher owns.
pub(super) async fn check_owner(conn: &mut AnyConnection, m: &Manifest) -> Result<()> {
    match owner(conn, &m.id).await? {
        Some(o) if o != m.publisher => Err(Error::conflict(
            "publisher",
            format!(
                "plugin id {} belongs to publisher {o}, whose package first installed it; a package from publisher {} cannot install or upgrade it (choose another id)",
                m.id, m.publisher
            ),
        )),
        _ => Ok(()),
    }
}

/// Record that `m.publisher` owns `m.id` (no-op if recorded already).
pub(super) async fn claim(tx: &mut Tx, actor: &Actor, m: &Manifest) -> Result<()> {
    check_owner(tx, m).await?;
    sqlx::query(
        "INSERT INTO plugin_ids (plugin, publisher, claimed_at, claimed_by) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (plugin) DO NOTHING",
    )
    .bind(&m.id)
    .bind(&m.publisher)
    .bind(now_micros())
    .bind(actor.label())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Record the owner of `plugin` if no claim is stored (a plugin installed
/// before ownership was recorded is owned by its newest stored version's
/// publisher): `remove` calls it before a purge deletes those versions, so
/// the id stays its publisher's.
pub(super) async fn keep_claim(tx: &mut Tx, actor: &Actor, plugin: &str) -> Result<()> {
    let Some(publisher) = owner(tx, plugin).await? else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO plugin_ids (plugin, publisher, claimed_at, claimed_by) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (plugin) DO NOTHING",
    )
    .bind(plugin)
    .bind(&publisher)
    .bind(now_micros())
    .bind(actor.label())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Publisher {
    /// True once a city admin revoked it (and has not trusted it again).
    pub fn revoked(&self) -> bool {
        self.status == "revoked"
    }

    /// What `m` asks for above this publisher's ceiling, each named
    /// (`accounts.record`, `identity.grant role teacher`).
    pub(super) fn above_ceiling(&self, m: &Manifest) -> Vec<String> {
        self.grant_above_ceiling(m, &m.capabilities)
    }

    /// Which of `capabilities` (granted to `m`'s plugin) are above the
    /// ceiling, with the identity.grant roles `m` names if it is among them.
    pub(super) fn grant_above_ceiling(&self, m: &Manifest, capabilities: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(caps) = &self.capabilities {
            out.extend(capabilities.iter().filter(|c| !caps.contains(c)).cloned());
        }
        if let Some(roles) = &self.roles {
            if capabilities.iter().any(|c| c == "identity.grant") {
                out.extend(
                    m.grantable_roles
                        .iter()
                        .filter(|r| !roles.contains(r))
                        .map(|r| format!("identity.grant role {r}")),
                );
            }
        }
        out
    }

    /// The ceiling in words, for refusals.
    pub(super) fn ceiling_words(&self) -> String {
        match &self.capabilities {
            None => "no ceiling".into(),
            Some(c) if c.is_empty() => "no capabilities".into(),
            Some(c) => {
                let mut s = c.join(", ");
                if let Some(r) = self.roles.as_ref().filter(|r| !r.is_empty()) {
                    s.push_str(&format!("; identity.grant roles {}", r.join(", ")));
                }
                s
            }
        }
    }
}

/// Refuse `m` (a package installed or upgraded, or a version rolled back
/// to) when its publisher is revoked, `m` asks above its ceiling, or its
/// publisher is bound to a site and `m` declares a plan indicator.
pub(super) fn admissible(p: Option<&Publisher>, m: &Manifest) -> Result<()> {
    let Some(p) = p else { return Ok(()) };
    if p.revoked() {
        return Err(Error::invalid(
            "publisher",
            format!(
                "the city revoked publisher {}: its packages are refused until a city admin trusts it again",
                p.publisher
            ),
        ));
    }
    // The plan's indicators are the city's figures: only a city-wide
    // publisher's plugin may provide one (its own `<id>.<name>` ones stay open).
    let plan: Vec<&str> = m
        .indicators
        .iter()
        .map(|i| i.key.as_str())
        .filter(|k| k.parse::<u32>().is_ok())
        .collect();
    if let (false, Some(code)) = (plan.is_empty(), p.site.as_deref()) {
        return Err(Error::invalid(
            "indicators",
            format!(
                "plugin {} declares plan indicator {}, but publisher {} is bound to site {code}: only a city-wide publisher's plugins may provide the plan's indicators (declare your own as {}.<name>)",
                m.id,
                plan.join(", "),
                p.publisher,
                m.id
            ),
        ));
    }
    let above = p.above_ceiling(m);
    if !above.is_empty() {
        return Err(Error::invalid(
            "capabilities",
            format!(
                "plugin {} asks for {}, above the ceiling the city set for publisher {} ({})",
                m.id,
                above.join(", "),
                p.publisher,
                p.ceiling_words()
            ),
        ));
    }
    Ok(())
}

/// Require the authority to publish `publisher`'s packages: for a bound
/// publisher, `plugin_publisher` or an admin role at its site or above;
/// otherwise (city-wide, or not in the trust store) a city admin.
pub(super) fn require_publishing(p: Option<&Publisher>, actor: &Actor, action: &str) -> Result<()> {
    match p.and_then(|p| Some((p, p.site_path.as_deref()?, p.site.as_deref()?))) {
        Some((p, path, code)) => {
            if actor.covers(PUBLISHING, path) {
                Ok(())
            } else {
                Err(Error::forbidden(format!(
                    "{action} from publisher {} needs the plugin_publisher or site_admin role at site {code} (where the city bound the publisher) or above it",
                    p.publisher
                )))
            }
        }
        None => actor.require_city_admin(action),
    }
}

/// Refuse `site` unless it is inside the subtree the plugin's publisher
/// is bound to.
pub(super) fn confine(
    p: Option<&Publisher>,
    plugin: &str,
    site: &Site,
    action: &str,
) -> Result<()> {
    if let Some((p, path, code)) =
        p.and_then(|p| Some((p, p.site_path.as_deref()?, p.site.as_deref()?)))
    {
        if !site.path.starts_with(path) {
            return Err(Error::forbidden(format!(
                "plugin {plugin} comes from publisher {}, which the city bound to site {code}: it can be {action} only at {code} and the sites below it, not at {}",
                p.publisher, site.code
            )));
        }
    }
    Ok(())
}

/// Refuse configuring `plugin` at `site` outside its publisher's subtree
/// (the settings path calls this; enable and grant check it themselves).
pub async fn confine_settings(db: &Db, plugin: &str, site: &Site) -> Result<()> {
    let mut conn = db.reader().acquire().await?;
    let p = owner_entry(&mut conn, plugin).await?;
    confine(p.as_ref(), plugin, site, "configured")
}

fn checked_list(
    field: &str,
    items: &[String],
    allowed: &[&str],
    what: &str,
) -> Result<Vec<String>> {
    for i in items {
        if !allowed.contains(&i.as_str()) {
            return Err(Error::invalid(
                field,
                format!(
                    "unknown {what} {i:?}; expected some of {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    let mut v = items.to_vec();
    v.sort();
    v.dedup();
    Ok(v)
}

impl Registry {
    /// Trust a publisher's public key (city admins), bound to a site with a
    /// ceiling or city-wide, per `binding` (what it leaves out is kept), and
    /// mark a revoked publisher trusted again (its plugins stay disabled).
    pub async fn trust_publisher(
        &self,
        actor: &Actor,
        publisher: &str,
        public_key: &str,
        binding: &Binding,
    ) -> Result<Publisher> {
        actor.require_city_admin("changing the plugin trust store")?;
        if !crate::plugins::manifest::ident(publisher, &['-']) {
            return Err(Error::invalid(
                "publisher",
                "a publisher is lower-case letters, digits and '-'",
            ));
        }
        let key = hex::encode(package::parse_public_key(public_key)?.to_bytes());
        let current = {
            let mut conn = self.kernel.db.reader().acquire().await?;
            publisher_in(&mut conn, publisher).await?
        };
        let code = match &binding.site {
            Some(code) => code.clone(),
            None => current.as_ref().and_then(|c| c.site.clone()),
        };
        let site = match &code {
            Some(code) => Some(crate::sites::get(&self.kernel.db, actor, code).await?),
            None => None,
        };
        // The entry's current values, kept for what the body leaves out
        // (unless it moves between city-wide and bound).
        let kept = current
            .as_ref()
            .filter(|c| c.site.is_some() == site.is_some());
        let caps = match &binding.capabilities {
            Some(c) => Some(checked_list("capabilities", c, CAPABILITIES, "capability")?),
            None => kept.and_then(|c| c.capabilities.clone()),
        };
        let roles = match &binding.roles {
            Some(r) => Some(checked_list("roles", r, GRANTABLE_ROLES, "role")?),
            None if binding.capabilities.is_none() => kept.and_then(|c| c.roles.clone()),
            None => None,
        };
        if roles.as_ref().is_some_and(|r| !r.is_empty())
            && !caps
                .as_ref()
                .is_some_and(|c| c.iter().any(|c| c == "identity.grant"))
        {
            return Err(Error::invalid(
                "roles",
                "roles are the ceiling of identity.grant: name identity.grant in capabilities too",
            ));
        }
        let (caps, roles) = match (caps, site.is_some()) {
            (Some(c), _) => (Some(c), Some(roles.unwrap_or_default())),
            (None, true) => (Some(Vec::new()), Some(Vec::new())),
            (None, false) => (None, None),
        };
        let approval = binding
            .approval
            .or(kept.map(|c| c.approval))
            .unwrap_or(site.is_some());
        let mut tx = self.kernel.db.begin().await?;
        let before = publisher_in(&mut tx, publisher).await?;
        let now = now_micros();
        sqlx::query(
            "INSERT INTO plugin_publishers (publisher, public_key, added_at, added_by, site_id, ceiling_capabilities, ceiling_roles, approval, status, status_by, status_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'trusted', $4, $3) \
             ON CONFLICT (publisher) DO UPDATE SET public_key = $2, added_at = $3, added_by = $4, site_id = $5, \
             ceiling_capabilities = $6, ceiling_roles = $7, approval = $8, status = 'trusted', status_by = $4, status_at = $3",
        )
        .bind(publisher)
        .bind(&key)
        .bind(now)
        .bind(actor.label())
        .bind(site.as_ref().map(|s| s.id))
        .bind(caps.as_ref().map(|c| serde_json::json!(c).to_string()))
        .bind(roles.as_ref().map(|r| serde_json::json!(r).to_string()))
        .bind(i64::from(approval))
        .execute(&mut *tx)
        .await?;
        let after = publisher_in(&mut tx, publisher)
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("publisher {publisher} not stored")))?;
        // The view routes by each publisher's binding and status: a change
        // moves the generation like any registry change.
        self.commit_change(
            tx,
            actor,
            Change {
                action: "plugin.publisher.trust",
                site: site.as_ref().map(|s| (s.id, s.path.as_str())),
                object_type: "plugin_publisher",
                object_id: publisher.to_string(),
                before: before.map(|b| serde_json::json!(b)),
                after: Some(serde_json::json!(after)),
            },
        )
        .await?;
        Ok(after)
    }

    /// Revoke a publisher (city admins): its packages are refused, each of
    /// its plugins is disabled at every site where it was enabled (data
    /// kept), and its pending approval requests are refused. Returns what
    /// was disabled, as (plugin, site code). Trusting it again re-enables
    /// nothing.
    pub async fn revoke_publisher(
        &self,
        actor: &Actor,
        publisher: &str,
    ) -> Result<Vec<(String, String)>> {
        actor.require_city_admin("revoking a plugin publisher")?;
        let mut tx = self.kernel.db.begin().await?;
        // Lock the entry: two revocations (or a trust) at once serialise.
        let locked =
            sqlx::query("UPDATE plugin_publishers SET status = status WHERE publisher = $1")
                .bind(publisher)
                .execute(&mut *tx)
                .await?;
        if locked.rows_affected() == 0 {
            return Err(Error::NotFound(format!("publisher {publisher}")));
        }
        let Some(before) = publisher_in(&mut tx, publisher).await? else {
            return Err(Error::NotFound(format!("publisher {publisher}")));
        };
        if before.revoked() {
            return Err(Error::conflict(
                "publisher",
                format!("publisher {publisher} is revoked already"),
            ));
        }
        let now = now_micros();
        sqlx::query(
            "UPDATE plugin_publishers SET status = 'revoked', status_by = $2, status_at = $3 WHERE publisher = $1",
        )
        .bind(publisher)
        .bind(actor.label())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut plugins: Vec<String> =
            sqlx::query_as::<_, (String,)>("SELECT plugin FROM plugin_ids WHERE publisher = $1")
                .bind(publisher)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(p,)| p)
                .collect();
        plugins.extend(
            active_manifests(&mut tx)
                .await?
                .into_iter()
                .filter(|m| m.publisher == publisher)
                .map(|m| m.id),
        );
        plugins.sort();
        plugins.dedup();
        let mut disabled = Vec::new();
        let mut refused = 0;
        for plugin in &plugins {
            let sites: Vec<(String,)> = sqlx::query_as(
                "SELECT s.code FROM plugin_enablement e JOIN sites s ON s.id = e.site_id \
                 WHERE e.plugin = $1 AND e.enabled = 1 ORDER BY s.path",
            )
            .bind(plugin)
            .fetch_all(&mut *tx)
            .await?;
            disabled.extend(sites.into_iter().map(|(s,)| (plugin.clone(), s)));
            sqlx::query(
                "UPDATE plugin_enablement SET enabled = 0, updated_at = $2 WHERE plugin = $1 AND enabled = 1",
            )
            .bind(plugin)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            refused += sqlx::query(
                "UPDATE plugin_approvals SET status = 'refused', decided_by = $2, decided_at = $3, reason = $4 \
                 WHERE plugin = $1 AND status = 'pending'",
            )
            .bind(plugin)
            .bind(actor.label())
            .bind(now)
            .bind(format!("publisher {publisher} was revoked"))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        self.commit_change(
            tx,
            actor,
            Change {
                action: "plugin.publisher.revoke",
                site: None,
                object_type: "plugin_publisher",
                object_id: publisher.to_string(),
                before: Some(serde_json::json!({"status": before.status})),
                after: Some(serde_json::json!({
                    "status": "revoked",
                    "disabled": disabled.iter().map(|(p, s)| serde_json::json!({"plugin": p, "site": s})).collect::<Vec<_>>(),
                    "refused_requests": refused,
                })),
            },
        )
        .await?;
        Ok(disabled)
    }

    /// Every publisher in the trust store.
    pub async fn publisher_entries(&self) -> Result<Vec<Publisher>> {
        let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} ORDER BY p.publisher"))
            .fetch_all(self.kernel.db.reader())
            .await?;
        rows.into_iter().map(from_row).collect()
    }

    /// Before installing or upgrading `m`: the actor's authority over its
    /// publisher, the publisher not revoked, the manifest within its
    /// ceiling, and the id not owned by another publisher.
    pub(super) async fn admit(
        &self,
        actor: &Actor,
        m: &Manifest,
        action: &str,
    ) -> Result<Option<Publisher>> {
        let mut conn = self.kernel.db.reader().acquire().await?;
        let p = publisher_in(&mut conn, &m.publisher).await?;
        require_publishing(p.as_ref(), actor, action)?;
        admissible(p.as_ref(), m)?;
        check_owner(&mut conn, m).await?;
        Ok(p)
    }

    /// Require the authority to roll back or remove `plugin` (see [`require_publishing`]).
    pub(super) async fn require_over(
        &self,
        actor: &Actor,
        plugin: &str,
        action: &str,
    ) -> Result<()> {
        let mut conn = self.kernel.db.reader().acquire().await?;
        let p = owner_entry(&mut conn, plugin).await?;
        require_publishing(p.as_ref(), actor, action)
    }
}
