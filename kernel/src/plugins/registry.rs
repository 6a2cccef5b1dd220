//! The plugin registry: installing signed packages, upgrades with a table
//! migration and a data snapshot, rollback, removal, the trust store, and
//! per-site enablement and capability grants. Each node's in-memory view of
//! it, which decides which plugin version serves a call at a site, is
//! `registry/view.rs`.
//!
//! **Invariants:**
//! - everything about a package is checked before anything is stored
//!   (layout, manifest, signature, host API, limits, component imports and
//!   exports, dependencies); a refused package leaves no trace;
//! - an upgrade's registry change, table migration and snapshot are one
//!   transaction: if the migration fails, the old version stays active and
//!   its tables untouched; calls in flight finish on the version they began on;
//! - a site inherits enablement and each capability grant from the nearest
//!   site above it that sets one; nothing is enabled or granted by default;
//! - a call runs on the newest installed version whose capabilities are all
//!   granted at its site, restricted to those grants;
//! - every change bumps `plugin_generation`, and every node reloads its view
//!   when the generation moves (at once on the node that made the change,
//!   within one delivery-loop pass elsewhere).

use super::manifest::{Manifest, CAPABILITIES};
use super::package::{self, Package, Trust};
use super::runtime::Runtime;
use super::tables::stored_name;
use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::storage::{now_micros, Tx};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use wasmtime::component::Component;

mod approvals;
mod at_site;
mod publishers;
mod view;

use approvals::Via;
pub use approvals::{Approval, AskedCapability, Outcome, CAPABILITY_MEANINGS};
pub use at_site::{CapabilityAtSite, PluginAtSite};
pub use publishers::{confine_settings, present, Binding, Publisher};
pub use view::Refusal;
use view::{enabled_at, granted_at, missing, site_rows, View};

/// The registry and this node's view of it.
#[derive(Clone)]
pub struct Registry {
    kernel: Kernel,
    runtime: Runtime,
    cache: Option<PathBuf>,
    dev_mode: bool,
    view: Arc<RwLock<Arc<View>>>,
    refreshing: Arc<tokio::sync::Mutex<()>>,
    /// Components compiled on this node, by content hash.
    compiled: Arc<Mutex<HashMap<String, Component>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("dev_mode", &self.dev_mode)
            .finish()
    }
}

/// What `list` and `info` show of an installed plugin.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginInfo {
    pub id: String,
    pub version: String,
    pub previous: Option<String>,
    pub name_zh: String,
    pub name_en: String,
    pub publisher: String,
    pub description: String,
    pub host_api: String,
    pub capabilities: Vec<String>,
    /// The person fields `identity.read` is narrowed to, if it is.
    pub identity_fields: Option<Vec<String>>,
    pub dependencies: BTreeMap<String, String>,
    pub sha256: String,
    pub signed: bool,
    pub installed_at: i64,
    /// Sites where enablement is set explicitly: (site code, enabled).
    pub sites: Vec<SiteSetting>,
    /// Capability grants set explicitly.
    pub grants: Vec<GrantSetting>,
    /// The indicators this version declares (`[[indicators]]`).
    pub indicators: Vec<super::indicators::ProvidedIndicator>,
}

/// An explicit enablement at a site.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SiteSetting {
    pub site: String,
    pub enabled: bool,
}

/// An explicit grant (or refusal) of a capability at a site.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GrantSetting {
    pub site: String,
    pub capability: String,
    pub granted: bool,
}

fn snapshot_name(plugin: &str, table: &str) -> String {
    format!("snp_{}", &stored_name(plugin, table)[4..])
}

async fn bump(tx: &mut Tx) -> Result<()> {
    sqlx::query("UPDATE plugin_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn registry_row(tx: &mut Tx, plugin: &str) -> Result<Option<(String, Option<String>)>> {
    Ok(
        sqlx::query_as("SELECT active, previous FROM plugin_registry WHERE plugin = $1")
            .bind(plugin)
            .fetch_optional(&mut **tx)
            .await?,
    )
}

/// The registry row, locked for the rest of the transaction (a no-op
/// update: PostgreSQL row lock; SQLite has one writer anyway), so two admins
/// changing one plugin at once are serialised and the second sees the first.
async fn registry_row_locked(
    tx: &mut Tx,
    plugin: &str,
) -> Result<Option<(String, Option<String>)>> {
    Ok(sqlx::query_as(
        "UPDATE plugin_registry SET updated_at = updated_at WHERE plugin = $1 RETURNING active, previous",
    )
    .bind(plugin)
    .fetch_optional(&mut **tx)
    .await?)
}

async fn stored_manifest(tx: &mut Tx, plugin: &str, version: &str) -> Result<Manifest> {
    let (text,): (String,) =
        sqlx::query_as("SELECT manifest FROM plugin_versions WHERE plugin = $1 AND version = $2")
            .bind(plugin)
            .bind(version)
            .fetch_one(&mut **tx)
            .await?;
    super::manifest::parse(&text).map_err(|e| {
        Error::Internal(anyhow::anyhow!(
            "stored manifest of {plugin} {version}: {e}"
        ))
    })
}

/// Every installed plugin's active manifest.
async fn active_manifests(tx: &mut Tx) -> Result<Vec<Manifest>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT v.manifest FROM plugin_registry r JOIN plugin_versions v \
         ON v.plugin = r.plugin AND v.version = r.active ORDER BY r.plugin",
    )
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|(t,)| {
            super::manifest::parse(&t)
                .map_err(|e| Error::Internal(anyhow::anyhow!("stored manifest: {e}")))
        })
        .collect()
}

impl Registry {
    /// A registry over `kernel`'s database; compiled components are cached
    /// in `cache` if given. `dev_mode` accepts unsigned packages.
    pub fn new(
        kernel: Kernel,
        runtime: Runtime,
        cache: Option<PathBuf>,
        dev_mode: bool,
    ) -> Registry {
        Registry {
            kernel,
            runtime,
            cache,
            dev_mode,
            view: Arc::default(),
            refreshing: Arc::default(),
            compiled: Arc::default(),
        }
    }

    /// The kernel this registry serves.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// True if unsigned packages are accepted.
    pub fn dev_mode(&self) -> bool {
        self.dev_mode
    }

    /// The runtime plugins run on.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Finish a registry change: bump the generation (every node reloads its
    /// view), audit it, commit, and reload this node's view at once.
    async fn commit_change(&self, mut tx: Tx, actor: &Actor, change: Change<'_>) -> Result<()> {
        bump(&mut tx).await?;
        audit::record(&mut tx, actor, change).await?;
        tx.commit().await?;
        self.refresh().await
    }

    /// Check a package for install or upgrade: signature, host API,
    /// limits, the component itself and its dependencies. Compiles it.
    async fn check(&self, pkg: &Package) -> Result<Trust> {
        let m = &pkg.manifest;
        let key: Option<(String,)> =
            sqlx::query_as("SELECT public_key FROM plugin_publishers WHERE publisher = $1")
                .bind(&m.publisher)
                .fetch_optional(self.kernel.db.reader())
                .await?;
        let trust = pkg.verify(key.as_ref().map(|(k,)| k.as_str()), self.dev_mode)?;
        if m.host_api_served().is_none() {
            return Err(Error::invalid(
                "host_api",
                format!(
                    "plugin {} needs host API {}, but this kernel serves {}",
                    m.id,
                    m.host_api,
                    super::manifest::HOST_APIS.join(", ")
                ),
            ));
        }
        let caps = self.runtime.limits();
        if let Some(ms) = m.limits.deadline_ms {
            if ms == 0 || u128::from(ms) > caps.deadline.as_millis() {
                return Err(Error::invalid(
                    "limits.deadline_ms",
                    format!(
                        "{ms} ms is outside this kernel's range of 1 to {} ms",
                        caps.deadline.as_millis()
                    ),
                ));
            }
        }
        if let Some(mib) = m.limits.memory_mib {
            let cap = (caps.memory_bytes >> 20) as u64;
            if mib == 0 || mib > cap {
                return Err(Error::invalid(
                    "limits.memory_mib",
                    format!("{mib} MiB is outside this kernel's range of 1 to {cap} MiB"),
                ));
            }
        }
        if let Some(n) = m.limits.max_concurrent_calls {
            let cap = caps.max_concurrent_calls as u64;
            if n == 0 || n > cap {
                return Err(Error::invalid(
                    "limits.max_concurrent_calls",
                    format!("{n} is outside this kernel's range of 1 to {cap} calls at once"),
                ));
            }
        }
        if m.limits.max_body_bytes == Some(0) {
            return Err(Error::invalid(
                "limits.max_body_bytes",
                "a plugin must accept a body of at least 1 byte (leave it out for the kernel's cap)",
            ));
        }
        super::quota::check_asked(&m.limits)?;
        let sha = package::sha256_hex(&pkg.component);
        let compiled = self.compile(&pkg.component, &sha).await.map_err(|e| {
            Error::invalid(
                "component",
                format!("not a valid WebAssembly component: {e:#}"),
            )
        })?;
        let built_for = package::check_component(self.runtime.engine(), &compiled)?;
        let req =
            semver::VersionReq::parse(&m.host_api).map_err(|e| Error::invalid("host_api", e))?;
        if !req.matches(&built_for) {
            return Err(Error::invalid(
                "host_api",
                format!("the manifest asks for host API {} but the component was built against {built_for}", m.host_api),
            ));
        }
        // Linking catches an import of the right name with the wrong type.
        let prepared = self
            .runtime
            .prepare(m.clone(), &compiled, self.kernel.db.backend())
            .map_err(|e| {
                Error::invalid(
                    "component",
                    format!("does not link against this kernel: {e:#}"),
                )
            })?;
        super::indicators::check_declared(&self.kernel.db, m, prepared.provides_indicators())
            .await?;
        let mut tx = self.kernel.db.begin_read().await?;
        for (dep, req) in &m.dependencies {
            let req =
                semver::VersionReq::parse(req).map_err(|e| Error::invalid("dependencies", e))?;
            match registry_row(&mut tx, dep).await? {
                None => {
                    return Err(Error::invalid(
                        "dependencies",
                        format!(
                            "plugin {} needs plugin {dep} {req}, which is not installed",
                            m.id
                        ),
                    ))
                }
                Some((active, _)) => {
                    let v =
                        semver::Version::parse(&active).map_err(|e| Error::Internal(e.into()))?;
                    if !req.matches(&v) {
                        return Err(Error::invalid(
                            "dependencies",
                            format!("plugin {} needs plugin {dep} {req}, but version {active} is installed", m.id),
                        ));
                    }
                }
            }
        }
        tx.rollback().await?;
        Ok(trust)
    }

    async fn store_version(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        pkg: &Package,
        trust: &Trust,
    ) -> Result<()> {
        let m = &pkg.manifest;
        sqlx::query(
            "INSERT INTO plugin_versions (plugin, version, manifest, component, sha256, signed, installed_at, installed_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (plugin, version) DO UPDATE SET manifest = $3, component = $4, sha256 = $5, signed = $6, installed_at = $7, installed_by = $8",
        )
        .bind(&m.id)
        .bind(&m.version)
        .bind(&pkg.manifest_text)
        .bind(&pkg.component)
        .bind(package::sha256_hex(&pkg.component))
        .bind(i64::from(*trust == Trust::Signed))
        .bind(now_micros())
        .bind(actor.label())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Install a new plugin from a package file (city admins).
    /// A site-bound publisher's packages are installed by its site's
    /// `plugin_publisher` holders and admins too (`registry/publishers.rs`).
    pub async fn install(&self, actor: &Actor, bytes: &[u8]) -> Result<PluginInfo> {
        let pkg = Package::decode(bytes)?;
        let m = &pkg.manifest;
        self.admit(actor, m, "installing a plugin").await?;
        {
            let mut tx = self.kernel.db.begin_read().await?;
            if let Some((active, _)) = registry_row(&mut tx, &m.id).await? {
                return Err(Error::conflict(
                    "id",
                    format!(
                        "plugin {} is already installed (version {active}); use upgrade",
                        m.id
                    ),
                ));
            }
            tx.rollback().await?;
        }
        let trust = self.check(&pkg).await?;
        let mut tx = self.kernel.db.begin().await?;
        if registry_row(&mut tx, &m.id).await?.is_some() {
            return Err(Error::conflict(
                "id",
                format!("plugin {} was installed meanwhile", m.id),
            ));
        }
        publishers::claim(&mut tx, actor, m).await?;
        self.store_version(&mut tx, actor, &pkg, &trust).await?;
        super::indicators::claims_free(&mut tx, m).await?;
        let inserted = sqlx::query(
            "INSERT INTO plugin_registry (plugin, active, previous, updated_at) VALUES ($1, $2, NULL, $3) \
             ON CONFLICT (plugin) DO NOTHING",
        )
        .bind(&m.id)
        .bind(&m.version)
        .bind(now_micros())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != 1 {
            return Err(Error::conflict(
                "id",
                format!("plugin {} was installed meanwhile", m.id),
            ));
        }
        super::tables::ensure(&mut tx, self.kernel.db.backend(), m)
            .await
            .map_err(|e| {
                Error::invalid("tables", format!("creating the tables of {}: {e}", m.id))
            })?;
        self.commit_change(tx, actor, Change {
            action: "plugin.install",
            site: None,
            object_type: "plugin",
            object_id: m.id.clone(),
            before: None,
            after: Some(serde_json::json!({"version": m.version, "sha256": package::sha256_hex(&pkg.component), "signed": trust == Trust::Signed})),
        })
        .await?;
        self.info(&m.id).await
    }

    /// Upgrade an installed plugin to a higher version (city admins): the
    /// new version's tables are migrated and the old data snapshotted in
    /// the same transaction that switches versions.
    pub async fn upgrade(&self, actor: &Actor, bytes: &[u8]) -> Result<PluginInfo> {
        match self.upgrade_or_request(actor, bytes).await? {
            Outcome::Done(info) => Ok(info),
            Outcome::Pending(a) => Err(Error::conflict(
                "approval",
                format!(
                    "the upgrade of plugin {} to {} asks for more than the city approved, so it waits for approval as request {}",
                    a.plugin, a.version, a.id
                ),
            )),
        }
    }

    /// Upgrade, or, when the publisher requires approval and the new
    /// version asks for more than was approved, queue the upgrade for a
    /// city admin (the old version keeps serving).
    pub async fn upgrade_or_request(
        &self,
        actor: &Actor,
        bytes: &[u8],
    ) -> Result<Outcome<PluginInfo>> {
        self.upgrade_via(actor, bytes, Via::Direct).await
    }

    async fn upgrade_via(
        &self,
        actor: &Actor,
        bytes: &[u8],
        via: Via<'_>,
    ) -> Result<Outcome<PluginInfo>> {
        let pkg = Package::decode(bytes)?;
        let m = &pkg.manifest;
        let publisher = self.admit(actor, m, "upgrading a plugin").await?;
        let mut tx = self.kernel.db.begin_read().await?;
        let Some((active, _)) = registry_row(&mut tx, &m.id).await? else {
            return Err(Error::NotFound(format!("plugin {}", m.id)));
        };
        let current = semver::Version::parse(&active).map_err(|e| Error::Internal(e.into()))?;
        if m.semver() <= current {
            return Err(Error::conflict(
                "version",
                format!(
                    "plugin {} is at version {active}; an upgrade must go to a higher version, not {} (use rollback to go back)",
                    m.id, m.version
                ),
            ));
        }
        for other in active_manifests(&mut tx).await? {
            if let Some(req) = other.dependencies.get(&m.id) {
                let req = semver::VersionReq::parse(req).map_err(|e| Error::Internal(e.into()))?;
                if !req.matches(&m.semver()) {
                    return Err(Error::conflict(
                        "version",
                        format!(
                            "plugin {} needs {} {req}, which version {} does not meet",
                            other.id, m.id, m.version
                        ),
                    ));
                }
            }
        }
        tx.rollback().await?;
        let trust = self.check(&pkg).await?;
        if let Some(a) = self
            .gate_upgrade(actor, publisher.as_ref(), m, &pkg.manifest_text, bytes, via)
            .await?
        {
            return Ok(Outcome::Pending(Box::new(a)));
        }

        let mut tx = self.kernel.db.begin().await?;
        let Some((active_now, previous)) = registry_row_locked(&mut tx, &m.id).await? else {
            return Err(Error::NotFound(format!("plugin {}", m.id)));
        };
        if active_now != active {
            return Err(Error::conflict(
                "version",
                format!("plugin {} changed version meanwhile; try again", m.id),
            ));
        }
        let old = stored_manifest(&mut tx, &m.id, &active).await?;
        // The snapshot of the version before this one is replaced.
        if let Some(prev) = previous {
            let prev = stored_manifest(&mut tx, &m.id, &prev).await?;
            for t in &prev.tables {
                sqlx::query(&format!(
                    "DROP TABLE IF EXISTS {}",
                    snapshot_name(&m.id, &t.name)
                ))
                .execute(&mut *tx)
                .await?;
            }
        }
        for t in &old.tables {
            let snap = snapshot_name(&m.id, &t.name);
            sqlx::query(&format!("DROP TABLE IF EXISTS {snap}"))
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "CREATE TABLE {snap} AS SELECT * FROM {}",
                stored_name(&m.id, &t.name)
            ))
            .execute(&mut *tx)
            .await?;
        }
        super::tables::ensure(&mut tx, self.kernel.db.backend(), m)
            .await
            .map_err(|e| {
                Error::invalid(
                    "migration",
                    format!("migrating the tables of {} to {} failed, so version {active} stays active with its data untouched: {e}", m.id, m.version),
                )
            })?;
        publishers::claim(&mut tx, actor, m).await?;
        approvals::upgrade_approved(&mut tx, actor, m, via).await?;
        self.store_version(&mut tx, actor, &pkg, &trust).await?;
        super::indicators::claims_free(&mut tx, m).await?;
        sqlx::query("UPDATE plugin_registry SET active = $1, previous = $2, updated_at = $3 WHERE plugin = $4")
            .bind(&m.version)
            .bind(&active)
            .bind(now_micros())
            .bind(&m.id)
            .execute(&mut *tx)
            .await?;
        self.commit_change(tx, actor, Change {
            action: "plugin.upgrade",
            site: None,
            object_type: "plugin",
            object_id: m.id.clone(),
            before: Some(serde_json::json!({"version": active})),
            after: Some(serde_json::json!({"version": m.version, "sha256": package::sha256_hex(&pkg.component), "signed": trust == Trust::Signed})),
        })
        .await?;
        self.info(&m.id).await.map(Outcome::Done)
    }

    /// Return to the version before the last upgrade, with the plugin's
    /// tables as they were at that upgrade (city admins).
    pub async fn rollback(&self, actor: &Actor, plugin: &str) -> Result<PluginInfo> {
        self.require_over(actor, plugin, "rolling back a plugin")
            .await?;
        let mut tx = self.kernel.db.begin().await?;
        let Some((active, previous)) = registry_row_locked(&mut tx, plugin).await? else {
            return Err(Error::NotFound(format!("plugin {plugin}")));
        };
        let Some(previous) = previous else {
            return Err(Error::conflict(
                "version",
                format!("plugin {plugin} has no earlier version to roll back to (version {active} was not installed by an upgrade, or was rolled back to already)"),
            ));
        };
        let now = stored_manifest(&mut tx, plugin, &active).await?;
        let before = stored_manifest(&mut tx, plugin, &previous).await?;
        // The version restored passes what an upgrade to it would: its
        // publisher not revoked, within the ceiling, within what the city
        // approved (`approvals::gate_rollback`).
        let publisher = publishers::owner_entry_locked(&mut tx, plugin).await?;
        publishers::admissible(publisher.as_ref(), &before)?;
        approvals::gate_rollback(&mut tx, actor, publisher.as_ref(), &before).await?;
        super::indicators::claims_free(&mut tx, &before).await?;
        for t in &now.tables {
            let live = stored_name(plugin, &t.name);
            match before.tables.iter().find(|b| b.name == t.name) {
                Some(b) => {
                    let cols = b
                        .columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    sqlx::query(&format!("DELETE FROM {live}"))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(&format!(
                        "INSERT INTO {live} ({cols}) SELECT {cols} FROM {}",
                        snapshot_name(plugin, &t.name)
                    ))
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query(&format!("DROP TABLE IF EXISTS {live}"))
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        for t in &before.tables {
            sqlx::query(&format!(
                "DROP TABLE IF EXISTS {}",
                snapshot_name(plugin, &t.name)
            ))
            .execute(&mut *tx)
            .await?;
        }
        // The restored tables' stored usage, recounted (`quota.rs`).
        super::quota::recount(&mut tx, &before, self.kernel.db.backend()).await?;
        sqlx::query("UPDATE plugin_registry SET active = $1, previous = NULL, updated_at = $2 WHERE plugin = $3")
            .bind(&previous)
            .bind(now_micros())
            .bind(plugin)
            .execute(&mut *tx)
            .await?;
        self.commit_change(
            tx,
            actor,
            Change {
                action: "plugin.rollback",
                site: None,
                object_type: "plugin",
                object_id: plugin.to_string(),
                before: Some(serde_json::json!({"version": active})),
                after: Some(serde_json::json!({"version": previous})),
            },
        )
        .await?;
        self.info(plugin).await
    }

    /// Uninstall a plugin (city admins). Refused while an enabled plugin
    /// depends on it. Its tables and settings are kept unless `purge`.
    pub async fn remove(&self, actor: &Actor, plugin: &str, purge: bool) -> Result<()> {
        self.require_over(actor, plugin, "removing a plugin")
            .await?;
        let mut tx = self.kernel.db.begin().await?;
        if registry_row_locked(&mut tx, plugin).await?.is_none() {
            return Err(Error::NotFound(format!("plugin {plugin}")));
        }
        for other in active_manifests(&mut tx).await? {
            if other.id == plugin || !other.dependencies.contains_key(plugin) {
                continue;
            }
            let enabled: Option<(String,)> = sqlx::query_as(
                "SELECT s.code FROM plugin_enablement e JOIN sites s ON s.id = e.site_id \
                 WHERE e.plugin = $1 AND e.enabled = 1 ORDER BY s.path LIMIT 1",
            )
            .bind(&other.id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((site,)) = enabled {
                return Err(Error::conflict(
                    "id",
                    format!("plugin {} depends on {plugin} and is enabled at site {site}; disable it first", other.id),
                ));
            }
        }
        // The id stays its publisher's, even once a purge deletes the
        // versions an old install's ownership is read from.
        publishers::keep_claim(&mut tx, actor, plugin).await?;
        // Its pending approval requests cannot be carried out any more.
        sqlx::query(
            "UPDATE plugin_approvals SET status = 'refused', decided_by = $2, decided_at = $3, \
             reason = 'the plugin was removed' WHERE plugin = $1 AND status = 'pending'",
        )
        .bind(plugin)
        .bind(actor.label())
        .bind(now_micros())
        .execute(&mut *tx)
        .await?;
        for table in ["plugin_registry", "plugin_enablement", "plugin_grants"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE plugin = $1"))
                .bind(plugin)
                .execute(&mut *tx)
                .await?;
        }
        if purge {
            let versions: Vec<(String,)> =
                sqlx::query_as("SELECT manifest FROM plugin_versions WHERE plugin = $1")
                    .bind(plugin)
                    .fetch_all(&mut *tx)
                    .await?;
            let mut tables = BTreeSet::new();
            for (text,) in versions {
                if let Ok(m) = super::manifest::parse(&text) {
                    tables.extend(m.tables.into_iter().map(|t| t.name));
                }
            }
            for t in &tables {
                for name in [stored_name(plugin, t), snapshot_name(plugin, t)] {
                    sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for table in ["plugin_settings", "plugin_versions", "plugin_usage"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE plugin = $1"))
                    .bind(plugin)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        self.commit_change(
            tx,
            actor,
            Change {
                action: "plugin.remove",
                site: None,
                object_type: "plugin",
                object_id: plugin.to_string(),
                before: None,
                after: Some(serde_json::json!({"purged": purge})),
            },
        )
        .await
    }

    /// Enable or disable a plugin at a site and its subtree (admins over
    /// that site). Enabling needs every capability the plugin asks for
    /// granted at the site, and its dependencies enabled there. Disabling
    /// keeps all data.
    pub async fn set_enabled(
        &self,
        actor: &Actor,
        plugin: &str,
        site: &str,
        enabled: bool,
    ) -> Result<()> {
        match self.enable_via(actor, plugin, site, enabled, Via::Direct).await? {
            Outcome::Done(()) => Ok(()),
            Outcome::Pending(a) => Err(Error::conflict(
                "approval",
                format!(
                    "enabling plugin {plugin} at site {} waits for the city's approval as request {}",
                    a.site.unwrap_or_default(),
                    a.id
                ),
            )),
        }
    }

    /// Enable or disable, or, for a plugin whose publisher requires
    /// approval and whose capabilities were not approved yet, queue the
    /// enable for a city admin (`registry/approvals.rs`). A site-bound
    /// publisher's plugin is enabled only within its site's subtree, within
    /// its ceiling, and not while the publisher is revoked.
    pub async fn enable_or_request(
        &self,
        actor: &Actor,
        plugin: &str,
        site: &str,
        enabled: bool,
    ) -> Result<Outcome<()>> {
        self.enable_via(actor, plugin, site, enabled, Via::Direct)
            .await
    }

    async fn enable_via(
        &self,
        actor: &Actor,
        plugin: &str,
        site: &str,
        enabled: bool,
        via: Via<'_>,
    ) -> Result<Outcome<()>> {
        let site = crate::sites::get(&self.kernel.db, actor, site).await?;
        actor.require_admin(
            &site.path,
            if enabled {
                "enabling a module"
            } else {
                "disabling a module"
            },
        )?;
        let mut tx = self.kernel.db.begin().await?;
        let Some((active, _)) = registry_row_locked(&mut tx, plugin).await? else {
            return Err(Error::NotFound(format!("plugin {plugin}")));
        };
        // Locked: an enable and a revocation of its publisher serialise, so
        // no enable lands after the revocation disabled everything.
        let publisher = publishers::owner_entry_locked(&mut tx, plugin).await?;
        if enabled {
            publishers::confine(publisher.as_ref(), plugin, &site, "enabled")?;
            let m = stored_manifest(&mut tx, plugin, &active).await?;
            if let Some(p) = &publisher {
                if p.revoked() {
                    return Err(Error::conflict(
                        "publisher",
                        format!("the city revoked publisher {}, so its plugin {plugin} cannot be enabled", p.publisher),
                    ));
                }
                let above = p.above_ceiling(&m);
                if !above.is_empty() {
                    return Err(Error::forbidden(format!(
                        "plugin {plugin} {active} asks for {}, above the ceiling the city set for publisher {} ({})",
                        above.join(", "),
                        p.publisher,
                        p.ceiling_words()
                    )));
                }
            }
            let rows = site_rows(&mut tx, Some(plugin)).await?;
            let (_, grants) = rows.into_iter().next().map(|(_, r)| r).unwrap_or_default();
            let lacking = missing(&m, &granted_at(&grants, &site.path));
            if !lacking.is_empty() {
                return Err(Error::conflict(
                    "capabilities",
                    format!(
                        "plugin {plugin} asks for {}, not granted at site {}; grant them first",
                        lacking.join(", "),
                        site.code
                    ),
                ));
            }
            for dep in m.dependencies.keys() {
                // Locking the dependency's row serialises this with its
                // removal, which checks for enabled dependents.
                if registry_row_locked(&mut tx, dep).await?.is_none() {
                    return Err(Error::conflict(
                        "dependencies",
                        format!("plugin {plugin} needs plugin {dep}, which is not installed"),
                    ));
                }
                let rows = site_rows(&mut tx, Some(dep)).await?;
                let (en, _) = rows.into_iter().next().map(|(_, r)| r).unwrap_or_default();
                if !enabled_at(&en, &site.path) {
                    return Err(Error::conflict(
                        "dependencies",
                        format!(
                            "plugin {plugin} needs plugin {dep}, which is not enabled at site {}",
                            site.code
                        ),
                    ));
                }
            }
            let (text,): (String,) = sqlx::query_as(
                "SELECT manifest FROM plugin_versions WHERE plugin = $1 AND version = $2",
            )
            .bind(plugin)
            .bind(&active)
            .fetch_one(&mut *tx)
            .await?;
            if let Some(id) =
                approvals::gate_enable(&mut tx, actor, publisher.as_ref(), &m, &text, &site, via)
                    .await?
            {
                tx.commit().await?;
                return Ok(Outcome::Pending(Box::new(self.approval_by_id(id).await?)));
            }
        }
        sqlx::query(
            "INSERT INTO plugin_enablement (plugin, site_id, enabled, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (plugin, site_id) DO UPDATE SET enabled = $3, updated_at = $4",
        )
        .bind(plugin)
        .bind(site.id)
        .bind(i64::from(enabled))
        .bind(now_micros())
        .execute(&mut *tx)
        .await?;
        self.commit_change(
            tx,
            actor,
            Change {
                action: if enabled {
                    "plugin.enable"
                } else {
                    "plugin.disable"
                },
                site: Some((site.id, &site.path)),
                object_type: "plugin",
                object_id: plugin.to_string(),
                before: None,
                after: Some(
                    serde_json::json!({"plugin": plugin, "site": site.code, "version": active}),
                ),
            },
        )
        .await
        .map(Outcome::Done)
    }

    /// Grant (or, with `granted = false`, refuse) capabilities to a plugin
    /// at a site and its subtree (admins over that site).
    pub async fn grant(
        &self,
        actor: &Actor,
        plugin: &str,
        site: &str,
        capabilities: &[String],
        granted: bool,
    ) -> Result<()> {
        let site = crate::sites::get(&self.kernel.db, actor, site).await?;
        actor.require_admin(&site.path, "granting a module's capabilities")?;
        if capabilities.is_empty() {
            return Err(Error::invalid(
                "capabilities",
                "name at least one capability",
            ));
        }
        let mut tx = self.kernel.db.begin().await?;
        let Some((active, _)) = registry_row_locked(&mut tx, plugin).await? else {
            return Err(Error::NotFound(format!("plugin {plugin}")));
        };
        let m = stored_manifest(&mut tx, plugin, &active).await?;
        if granted {
            let publisher = publishers::owner_entry(&mut tx, plugin).await?;
            publishers::confine(publisher.as_ref(), plugin, &site, "granted capabilities")?;
            if let Some(p) = &publisher {
                let above = p.grant_above_ceiling(&m, capabilities);
                if !above.is_empty() {
                    return Err(Error::forbidden(format!(
                        "granting {} to plugin {plugin} is above the ceiling the city set for publisher {} ({})",
                        above.join(", "),
                        p.publisher,
                        p.ceiling_words()
                    )));
                }
            }
        }
        for c in capabilities {
            if !CAPABILITIES.contains(&c.as_str()) {
                return Err(Error::invalid(
                    "capabilities",
                    format!(
                        "unknown capability {c:?}; this kernel offers {}",
                        CAPABILITIES.join(", ")
                    ),
                ));
            }
            if granted && !m.capabilities.contains(c) {
                return Err(Error::invalid(
                    "capabilities",
                    format!("plugin {plugin} {active} does not ask for {c}"),
                ));
            }
            sqlx::query(
                "INSERT INTO plugin_grants (plugin, site_id, capability, granted, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (plugin, site_id, capability) DO UPDATE SET granted = $4, updated_at = $5",
            )
            .bind(plugin)
            .bind(site.id)
            .bind(c)
            .bind(i64::from(granted))
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
        }
        self.commit_change(
            tx,
            actor,
            Change {
                action: if granted {
                    "plugin.grant"
                } else {
                    "plugin.revoke"
                },
                site: Some((site.id, &site.path)),
                object_type: "plugin",
                object_id: plugin.to_string(),
                before: None,
                after: Some(serde_json::json!({"capabilities": capabilities})),
            },
        )
        .await
    }

    /// Trust a publisher's public key (city admins): a new publisher is
    /// city-wide; an existing one keeps its binding, ceiling and approval
    /// flag (see [`Registry::trust_publisher`] for binding it to a site).
    pub async fn trust(&self, actor: &Actor, publisher: &str, public_key: &str) -> Result<()> {
        self.trust_publisher(actor, publisher, public_key, &Binding::default())
            .await
            .map(|_| ())
    }

    /// The trusted publishers and their keys.
    pub async fn publishers(&self) -> Result<Vec<(String, String)>> {
        Ok(
            sqlx::query_as(
                "SELECT publisher, public_key FROM plugin_publishers ORDER BY publisher",
            )
            .fetch_all(self.kernel.db.reader())
            .await?,
        )
    }

    /// Every installed plugin.
    pub async fn list(&self) -> Result<Vec<PluginInfo>> {
        let ids: Vec<(String,)> =
            sqlx::query_as("SELECT plugin FROM plugin_registry ORDER BY plugin")
                .fetch_all(self.kernel.db.reader())
                .await?;
        let mut out = Vec::new();
        for (id,) in ids {
            out.push(self.info(&id).await?);
        }
        Ok(out)
    }

    /// One installed plugin, with its explicit site settings.
    pub async fn info(&self, plugin: &str) -> Result<PluginInfo> {
        let db = self.kernel.db.reader();
        let row: Option<(String, Option<String>, String, String, i64, i64)> = sqlx::query_as(
            "SELECT r.active, r.previous, v.manifest, v.sha256, v.signed, v.installed_at FROM plugin_registry r \
             JOIN plugin_versions v ON v.plugin = r.plugin AND v.version = r.active WHERE r.plugin = $1",
        )
        .bind(plugin)
        .fetch_optional(db)
        .await?;
        let Some((version, previous, manifest, sha256, signed, installed_at)) = row else {
            return Err(Error::NotFound(format!("plugin {plugin}")));
        };
        let m = super::manifest::parse(&manifest)
            .map_err(|e| Error::Internal(anyhow::anyhow!("{e}")))?;
        let sites: Vec<(String, i64)> = sqlx::query_as(
            "SELECT s.code, e.enabled FROM plugin_enablement e JOIN sites s ON s.id = e.site_id WHERE e.plugin = $1 ORDER BY s.path",
        )
        .bind(plugin)
        .fetch_all(db)
        .await?;
        let grants: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT s.code, g.capability, g.granted FROM plugin_grants g JOIN sites s ON s.id = g.site_id \
             WHERE g.plugin = $1 ORDER BY s.path, g.capability",
        )
        .bind(plugin)
        .fetch_all(db)
        .await?;
        Ok(PluginInfo {
            id: m.id.clone(),
            version,
            previous,
            name_zh: m.name.zh_cn.clone(),
            name_en: m.name.en.clone(),
            publisher: m.publisher.clone(),
            description: m.description.clone(),
            host_api: m.host_api.clone(),
            capabilities: m.capabilities.clone(),
            identity_fields: m.identity_fields.clone(),
            dependencies: m.dependencies.clone(),
            sha256,
            signed: signed != 0,
            installed_at,
            sites: sites
                .into_iter()
                .map(|(site, e)| SiteSetting {
                    site,
                    enabled: e != 0,
                })
                .collect(),
            grants: grants
                .into_iter()
                .map(|(site, capability, g)| GrantSetting {
                    site,
                    capability,
                    granted: g != 0,
                })
                .collect(),
            indicators: super::indicators::ProvidedIndicator::of(&m),
        })
    }
}
