//! What applies at one site: each installed plugin, whether it is enabled
//! there (set at the site itself, inherited from the nearest site above that
//! sets it, or never set), and each capability it asks for, granted or not
//! and where that was decided. Read by `GET /api/v1/sites/{site}/plugins`
//! (the console's modules page); the rule is the one calls are routed by:
//! the nearest explicit row at or above the site wins, absent means off.

use super::Registry;
use crate::authz::Actor;
use crate::error::{Error, Result};

/// One installed plugin as it stands at a site.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginAtSite {
    pub id: String,
    pub version: String,
    pub name_zh: String,
    pub name_en: String,
    pub description: String,
    /// Whether calls at this site reach the plugin's enablement (capabilities
    /// aside): false outside its publisher's subtree or once the publisher
    /// is revoked, whatever the rows say (as calls are routed).
    pub enabled: bool,
    /// Why it is not served here whatever the rows say (outside its
    /// publisher's subtree, or the publisher revoked); null otherwise.
    pub blocked: Option<String>,
    /// The site whose setting applies here (this site or one above); null
    /// when no site at or above sets it (then it is off).
    pub enabled_set_at: Option<String>,
    /// True when the applying setting is at a site above this one.
    pub inherited: bool,
    /// Every capability the active version asks for.
    pub capabilities: Vec<CapabilityAtSite>,
    /// Capabilities asked for but not granted here: while any is missing,
    /// the plugin cannot be enabled here (nor served, if enabled above).
    pub missing: Vec<String>,
}

/// One asked-for capability at a site.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CapabilityAtSite {
    pub name: String,
    pub granted: bool,
    /// The site whose grant (or refusal) applies here; null when none does.
    pub set_at: Option<String>,
    pub inherited: bool,
}

/// The nearest row at or above `path`: (site code, site path, value).
fn nearest<'a, T: Copy>(
    rows: impl Iterator<Item = (&'a str, &'a str, T)>,
    path: &str,
) -> Option<(&'a str, &'a str, T)> {
    rows.filter(|(_, p, _)| path.starts_with(p))
        .max_by_key(|(_, p, _)| p.len())
}

impl Registry {
    /// Every installed plugin at `site` (anyone who may see the site).
    pub async fn at_site(&self, actor: &Actor, site: &str) -> Result<Vec<PluginAtSite>> {
        let site = crate::sites::get(&self.kernel.db, actor, site).await?;
        let db = self.kernel.db.reader();
        let plugins: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT r.plugin, r.active, v.manifest FROM plugin_registry r \
             JOIN plugin_versions v ON v.plugin = r.plugin AND v.version = r.active ORDER BY r.plugin",
        )
        .fetch_all(db)
        .await?;
        let enabled: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT e.plugin, s.code, s.path, e.enabled FROM plugin_enablement e JOIN sites s ON s.id = e.site_id",
        )
        .fetch_all(db)
        .await?;
        let grants: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT g.plugin, s.code, s.path, g.capability, g.granted FROM plugin_grants g JOIN sites s ON s.id = g.site_id",
        )
        .fetch_all(db)
        .await?;
        let mut conn = db.acquire().await?;
        let mut out = Vec::new();
        for (id, version, manifest) in plugins {
            let m = super::super::manifest::parse(&manifest)
                .map_err(|e| Error::Internal(anyhow::anyhow!("stored manifest of {id}: {e}")))?;
            // The view's rules (`view.rs`, `decide`): the active version's
            // publisher, its subtree and status.
            let publisher = super::publishers::publisher_in(&mut conn, &m.publisher).await?;
            let blocked = publisher.and_then(|p| {
                if p.revoked() {
                    Some(format!("the city revoked publisher {}", p.publisher))
                } else {
                    match (p.site_path.as_deref(), p.site.as_deref()) {
                        (Some(path), Some(code)) if !site.path.starts_with(path) => Some(format!(
                            "publisher {} is bound to site {code}: the plugin runs only there and below",
                            p.publisher
                        )),
                        _ => None,
                    }
                }
            });
            let on = nearest(
                enabled
                    .iter()
                    .filter(|r| r.0 == id)
                    .map(|r| (r.1.as_str(), r.2.as_str(), r.3 != 0)),
                &site.path,
            );
            let capabilities: Vec<CapabilityAtSite> = m
                .capabilities
                .iter()
                .map(|cap| {
                    let g = nearest(
                        grants
                            .iter()
                            .filter(|r| r.0 == id && &r.3 == cap)
                            .map(|r| (r.1.as_str(), r.2.as_str(), r.4 != 0)),
                        &site.path,
                    );
                    CapabilityAtSite {
                        name: cap.clone(),
                        granted: g.is_some_and(|g| g.2),
                        set_at: g.map(|g| g.0.to_string()),
                        inherited: g.is_some_and(|g| g.1 != site.path),
                    }
                })
                .collect();
            out.push(PluginAtSite {
                missing: capabilities
                    .iter()
                    .filter(|c| !c.granted)
                    .map(|c| c.name.clone())
                    .collect(),
                id,
                version,
                name_zh: m.name.zh_cn.clone(),
                name_en: m.name.en.clone(),
                description: m.description.clone(),
                enabled: blocked.is_none() && on.is_some_and(|o| o.2),
                blocked,
                enabled_set_at: on.map(|o| o.0.to_string()),
                inherited: on.is_some_and(|o| o.1 != site.path),
                capabilities,
            });
        }
        Ok(out)
    }
}
