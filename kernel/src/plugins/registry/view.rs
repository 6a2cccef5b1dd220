//! Each node's view of the plugin registry: every installed plugin's
//! loaded versions and its enablement and grant rows, reloaded when the
//! registry generation moves, and the routing of a call at a site to the
//! version that serves it, restricted to the capabilities granted there.

use super::Registry;
use crate::error::Result;
use crate::plugins::call::Grants;
use crate::plugins::manifest::{Manifest, CAPABILITIES};
use crate::plugins::package;
use crate::plugins::runtime::Loaded;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use wasmtime::component::Component;

/// Why a call cannot be served at a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No plugin with this id is installed.
    NotInstalled,
    /// Installed, but not enabled at the call's site.
    NotEnabled,
    /// Enabled, but no installed version has all its capabilities granted here.
    NotGranted(Vec<String>),
}

/// One installed plugin as this node serves it.
pub(super) struct Slot {
    active: Loaded,
    previous: Option<Loaded>,
    /// (site path, enabled) rows.
    enabled: Vec<(String, bool)>,
    /// (site path, capability, granted) rows.
    grants: Vec<(String, String, bool)>,
    /// The subtree its publisher is bound to (None: city-wide), and
    /// whether the city revoked the publisher: outside that subtree, or
    /// once revoked, it is served nowhere whatever the rows say.
    scope: Option<String>,
    revoked: bool,
    /// Whether `previous` may serve where the active version's grants are
    /// missing: for a publisher that requires approval, only when all it
    /// asks for was approved (the view never serves an unreviewed version).
    fallback: bool,
    /// Routing decisions by site path, memoised for this view (a new view
    /// starts empty, so a change is never served stale). Bounded by the
    /// number of sites.
    routes: RwLock<HashMap<String, std::result::Result<Loaded, Refusal>>>,
}

#[derive(Default)]
pub(super) struct View {
    generation: Option<i64>,
    root: Option<String>,
    plugins: HashMap<String, Slot>,
}

/// The nearest row at or above `path` (longest matching prefix).
pub(super) fn nearest<'a, T: Copy + 'a>(
    rows: impl Iterator<Item = (&'a str, T)>,
    path: &str,
) -> Option<T> {
    rows.filter(|(p, _)| path.starts_with(p))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, v)| v)
}

pub(super) fn enabled_at(rows: &[(String, bool)], path: &str) -> bool {
    nearest(rows.iter().map(|(p, e)| (p.as_str(), *e)), path).unwrap_or(false)
}

pub(super) fn granted_at(rows: &[(String, String, bool)], path: &str) -> BTreeSet<String> {
    CAPABILITIES
        .iter()
        .filter(|cap| {
            nearest(
                rows.iter()
                    .filter(|(_, c, _)| c == *cap)
                    .map(|(p, _, g)| (p.as_str(), *g)),
                path,
            )
            .unwrap_or(false)
        })
        .map(|c| c.to_string())
        .collect()
}

pub(super) fn missing(m: &Manifest, granted: &BTreeSet<String>) -> Vec<String> {
    m.capabilities
        .iter()
        .filter(|c| !granted.contains(*c))
        .cloned()
        .collect()
}

pub(super) type SiteRows = (Vec<(String, bool)>, Vec<(String, String, bool)>);

/// A plugin's enablement and grant rows, by site path.
pub(super) async fn site_rows(
    conn: &mut sqlx::AnyConnection,
    plugin: Option<&str>,
) -> Result<Vec<(String, SiteRows)>> {
    let enabled: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT e.plugin, s.path, e.enabled FROM plugin_enablement e JOIN sites s ON s.id = e.site_id \
         WHERE $1 = '' OR e.plugin = $1",
    )
    .bind(plugin.unwrap_or(""))
    .fetch_all(&mut *conn)
    .await?;
    let grants: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT g.plugin, s.path, g.capability, g.granted FROM plugin_grants g JOIN sites s ON s.id = g.site_id \
         WHERE $1 = '' OR g.plugin = $1",
    )
    .bind(plugin.unwrap_or(""))
    .fetch_all(&mut *conn)
    .await?;
    let mut out: BTreeMap<String, SiteRows> = BTreeMap::new();
    for (p, path, e) in enabled {
        out.entry(p).or_default().0.push((path, e != 0));
    }
    for (p, path, c, g) in grants {
        out.entry(p).or_default().1.push((path, c, g != 0));
    }
    Ok(out.into_iter().collect())
}

impl Registry {
    /// The registry generation this node's view was loaded at (0 before the first load).
    pub fn generation(&self) -> i64 {
        self.snapshot().generation.unwrap_or(0)
    }

    fn snapshot(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The active manifest of an installed plugin.
    pub fn manifest(&self, plugin: &str) -> Option<Arc<Manifest>> {
        self.snapshot()
            .plugins
            .get(plugin)
            .map(|s| s.active.manifest.clone())
    }

    /// The version of `plugin` that serves a call at the site with path
    /// `path` (None: no site context, taken as the root site), restricted
    /// to the capabilities granted there.
    pub fn route(&self, plugin: &str, path: Option<&str>) -> std::result::Result<Loaded, Refusal> {
        let view = self.snapshot();
        let slot = view.plugins.get(plugin).ok_or(Refusal::NotInstalled)?;
        let Some(path) = path.or(view.root.as_deref()) else {
            return Err(Refusal::NotEnabled);
        };
        if let Some(r) = slot
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
        {
            return r.clone();
        }
        let decided = Self::decide(slot, path);
        slot.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_string(), decided.clone());
        decided
    }

    fn decide(slot: &Slot, path: &str) -> std::result::Result<Loaded, Refusal> {
        let outside = slot.scope.as_deref().is_some_and(|s| !path.starts_with(s));
        if slot.revoked || outside || !enabled_at(&slot.enabled, path) {
            return Err(Refusal::NotEnabled);
        }
        let granted = granted_at(&slot.grants, path);
        let previous = slot.previous.iter().filter(|_| slot.fallback);
        for l in std::iter::once(&slot.active).chain(previous) {
            if missing(&l.manifest, &granted).is_empty() {
                let grants: Grants = Arc::new(granted);
                return Ok(l.with_grants(grants));
            }
        }
        Err(Refusal::NotGranted(missing(
            &slot.active.manifest,
            &granted,
        )))
    }

    /// The active version of `plugin` with every capability it declares,
    /// wherever it is enabled (test and tooling handles; serving uses [`Registry::route`]).
    pub fn route_any(&self, plugin: &str) -> Option<Loaded> {
        self.snapshot()
            .plugins
            .get(plugin)
            .map(|s| s.active.clone())
    }

    /// Where an event delivery to `plugin` goes (see [`crate::plugins::events::Route`]).
    pub fn route_event(&self, plugin: &str, path: Option<&str>) -> crate::plugins::events::Route {
        match self.route(plugin, path) {
            Ok(l) => crate::plugins::events::Route::Deliver(Box::new(l)),
            Err(Refusal::NotInstalled) => crate::plugins::events::Route::Absent,
            Err(_) => crate::plugins::events::Route::Skip,
        }
    }

    /// Reload this node's view if the registry changed since the last load.
    /// A version that cannot be loaded is reported and skipped (the plugin
    /// keeps the version this node already serves, if any).
    pub async fn refresh(&self) -> Result<()> {
        let _one = self.refreshing.lock().await;
        let db = self.kernel.db.reader();
        let (generation,): (i64,) =
            sqlx::query_as("SELECT generation FROM plugin_generation WHERE id = 1")
                .fetch_one(db)
                .await?;
        let old = self.snapshot();
        if old.generation == Some(generation) {
            return Ok(());
        }
        // The city's per-publisher quotas change with the generation too.
        self.runtime.quotas().reload_overrides(&self.kernel).await?;
        let rows: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT plugin, active, previous FROM plugin_registry ORDER BY plugin")
                .fetch_all(db)
                .await?;
        let mut conn = db.acquire().await?;
        let mut sites: HashMap<String, SiteRows> =
            site_rows(&mut conn, None).await?.into_iter().collect();
        drop(conn);
        let root: Option<(String,)> =
            sqlx::query_as("SELECT path FROM sites WHERE parent_id IS NULL ORDER BY id LIMIT 1")
                .fetch_optional(db)
                .await?;
        let publishers: HashMap<String, (Option<String>, bool, bool)> = sqlx::query_as::<_, (String, Option<String>, String, i64)>(
            "SELECT p.publisher, s.path, p.status, p.approval FROM plugin_publishers p LEFT JOIN sites s ON s.id = p.site_id",
        )
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|(p, path, status, approval)| (p, (path, status == "revoked", approval != 0)))
        .collect();
        let mut plugins = HashMap::new();
        for (plugin, active, previous) in rows {
            let reuse = |version: &str| {
                old.plugins.get(&plugin).and_then(|s| {
                    std::iter::once(&s.active)
                        .chain(s.previous.iter())
                        .find(|l| l.manifest.version == version)
                        .cloned()
                })
            };
            let mut versions = Vec::new();
            for v in std::iter::once(Some(&active)).chain([previous.as_ref()]) {
                let Some(v) = v else {
                    versions.push(None);
                    continue;
                };
                let loaded = match reuse(v) {
                    Some(l) => Ok(l),
                    None => self.load_version(&plugin, v).await,
                };
                match loaded {
                    Ok(l) => versions.push(Some(l)),
                    Err(e) => {
                        tracing::error!(plugin, version = %v, "plugin version not loaded: {e:#}");
                        versions.push(None);
                    }
                }
            }
            let previous = versions.pop().flatten();
            let Some(active) = versions
                .pop()
                .flatten()
                .or_else(|| old.plugins.get(&plugin).map(|s| s.active.clone()))
            else {
                continue;
            };
            self.runtime.subscribe(&active.manifest);
            let (enabled, grants) = sites.remove(&plugin).unwrap_or_default();
            let (scope, revoked, approval) = publishers
                .get(&active.manifest.publisher)
                .cloned()
                .unwrap_or_default();
            let fallback = match (&previous, approval) {
                (Some(prev), true) => {
                    let mut conn = db.acquire().await?;
                    let granted = super::approvals::approved(&mut conn, &plugin).await?;
                    granted.is_some()
                        && super::approvals::beyond(&granted, &prev.manifest).is_empty()
                }
                _ => true,
            };
            plugins.insert(
                plugin,
                Slot {
                    active,
                    previous,
                    enabled,
                    grants,
                    scope,
                    revoked,
                    fallback,
                    routes: RwLock::default(),
                },
            );
        }
        for gone in old.plugins.keys().filter(|p| !plugins.contains_key(*p)) {
            self.runtime.unsubscribe(gone);
        }
        let view = Arc::new(View {
            generation: Some(generation),
            root: root.map(|(p,)| p),
            plugins,
        });
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = view;
        Ok(())
    }

    /// Every plugin this node serves: (id, active version).
    pub fn loaded(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .snapshot()
            .plugins
            .values()
            .map(|s| {
                (
                    s.active.manifest.id.clone(),
                    s.active.manifest.version.clone(),
                )
            })
            .collect();
        v.sort();
        v
    }

    async fn load_version(&self, plugin: &str, version: &str) -> anyhow::Result<Loaded> {
        let (manifest, component, sha): (String, Vec<u8>, String) = sqlx::query_as(
            "SELECT manifest, component, sha256 FROM plugin_versions WHERE plugin = $1 AND version = $2",
        )
        .bind(plugin)
        .bind(version)
        .fetch_one(self.kernel.db.reader())
        .await?;
        let actual = package::sha256_hex(&component);
        anyhow::ensure!(
            actual == sha,
            "the stored component's SHA-256 is {actual}, not the {sha} pinned at install: refusing to run it"
        );
        let manifest = crate::plugins::manifest::parse(&manifest)?;
        let compiled = self.compile(&component, &sha).await?;
        self.runtime
            .prepare(manifest, &compiled, self.kernel.db.backend())
    }

    /// Compile (or load from the on-disk cache) on a blocking thread: a
    /// large component takes seconds of CPU, which must not stall the
    /// executor serving requests.
    pub(super) async fn compile(&self, component: &[u8], sha: &str) -> anyhow::Result<Component> {
        if let Some(c) = self
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sha)
        {
            return Ok(c.clone());
        }
        let (runtime, cache, bytes) =
            (self.runtime.clone(), self.cache.clone(), component.to_vec());
        let c = tokio::task::spawn_blocking(move || match &cache {
            Some(dir) => runtime.compile_cached(&bytes, dir),
            None => runtime.compile(&bytes),
        })
        .await??;
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sha.to_string(), c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_setting_above_a_site_wins() {
        let enabled = vec![("/1/".to_string(), true), ("/1/2/".to_string(), false)];
        assert!(enabled_at(&enabled, "/1/"));
        assert!(enabled_at(&enabled, "/1/3/"));
        assert!(!enabled_at(&enabled, "/1/2/"));
        assert!(!enabled_at(&enabled, "/1/2/7/"));
        assert!(!enabled_at(&enabled, "/9/"));
        let grants = vec![
            ("/1/".to_string(), "sites.read".to_string(), true),
            ("/1/2/".to_string(), "sites.read".to_string(), false),
            ("/1/2/".to_string(), "identity.read".to_string(), true),
        ];
        assert_eq!(
            granted_at(&grants, "/1/5/").into_iter().collect::<Vec<_>>(),
            ["sites.read"]
        );
        assert_eq!(
            granted_at(&grants, "/1/2/8/")
                .into_iter()
                .collect::<Vec<_>>(),
            ["identity.read"]
        );
    }
}
