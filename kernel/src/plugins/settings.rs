//! Per-site plugin settings: declared in the manifest with a type and a
//! default, set by admins at a site, inherited down the site tree.

use super::manifest::Manifest;
use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::storage::now_micros;

/// Set `name` for `plugin` at `site` (an admin over that site only).
pub async fn set(
    k: &Kernel,
    actor: &Actor,
    manifest: &Manifest,
    site: &str,
    name: &str,
    value: serde_json::Value,
) -> Result<()> {
    let def = manifest
        .settings
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "plugin {} declares no setting {name:?}",
                manifest.id
            ))
        })?;
    let value = def.json(&value).ok_or_else(|| {
        Error::invalid(
            "value",
            format!(
                "setting {name} of plugin {} is of type {}",
                manifest.id,
                def.ty.name()
            ),
        )
    })?;
    let site = crate::sites::get(&k.db, actor, site).await?;
    actor.require_admin(&site.path, "changing a plugin's settings at this site")?;
    crate::plugins::registry::confine_settings(&k.db, &manifest.id, &site).await?;
    let mut tx = k.db.begin().await?;
    let before: Option<(String,)> = sqlx::query_as(
        "SELECT value FROM plugin_settings WHERE plugin = $1 AND name = $2 AND site_id = $3",
    )
    .bind(&manifest.id)
    .bind(name)
    .bind(site.id)
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO plugin_settings (plugin, site_id, name, value, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (plugin, name, site_id) DO UPDATE SET value = $4, updated_at = $5",
    )
    .bind(&manifest.id)
    .bind(site.id)
    .bind(name)
    .bind(value.to_string())
    .bind(now_micros())
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "plugin.setting.set",
            site: Some((site.id, &site.path)),
            object_type: "plugin_setting",
            object_id: format!("{}/{name}", manifest.id),
            before: before.and_then(|(v,)| serde_json::from_str(&v).ok()),
            after: Some(value),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The value of `name` at the site with path `path`: the one set at the
/// nearest site on the way up, else the declared default. None if the
/// setting is not declared.
pub async fn effective(
    k: &Kernel,
    manifest: &Manifest,
    path: Option<&str>,
    name: &str,
) -> Result<Option<serde_json::Value>> {
    let Some(def) = manifest.settings.iter().find(|s| s.name == name) else {
        return Ok(None);
    };
    if let Some(path) = path {
        let set: Vec<(String, String)> = sqlx::query_as(
            "SELECT s.path, ps.value FROM plugin_settings ps JOIN sites s ON s.id = ps.site_id \
             WHERE ps.plugin = $1 AND ps.name = $2",
        )
        .bind(&manifest.id)
        .bind(name)
        .fetch_all(k.db.reader())
        .await?;
        if let Some((_, v)) = set
            .iter()
            .filter(|(p, _)| path.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
        {
            if let Ok(v) = serde_json::from_str(v) {
                return Ok(Some(v));
            }
        }
    }
    Ok(Some(def.default_json()))
}
