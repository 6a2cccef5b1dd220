//! The one place that asks plugins for indicator values: the kernel side
//! of the plugin indicator contract (`plugins/indicators.rs`). The kernel
//! never reads plugin tables; a plugin answers for a site subtree as of a
//! date, under the same sandbox and limits as a GET call.

use crate::error::Result;
use crate::plugins::registry::Registry;

/// An indicator a plugin declares (its manifest's `[[indicators]]`).
#[derive(Debug, Clone)]
pub struct Provided {
    /// Plugin id.
    pub plugin: String,
    /// "1".."10" for a plan indicator, else "<plugin>.<name>".
    pub key: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Chinese unit.
    pub unit_zh: String,
    /// English unit.
    pub unit_en: String,
    /// The plugin's formula version.
    pub formula_version: u32,
}

/// Every indicator declared by the installed plugins, sorted by (key, plugin).
pub fn provided(registry: Option<&Registry>) -> Vec<Provided> {
    let Some(registry) = registry else {
        return Vec::new();
    };
    let mut out: Vec<Provided> = registry
        .provided_indicators()
        .into_iter()
        .map(|p| Provided {
            plugin: p.plugin,
            key: p.key,
            name_zh: p.name_zh,
            name_en: p.name_en,
            unit_zh: p.unit_zh,
            unit_en: p.unit_en,
            formula_version: p.formula_version,
        })
        .collect();
    out.sort_by(|a, b| (&a.key, &a.plugin).cmp(&(&b.key, &b.plugin)));
    out
}

/// The plugin's value of `key` for `site_code`'s subtree as of `as_of`;
/// `Ok(None)` when the plugin is not enabled there (or has no value there).
pub async fn value(
    registry: &Registry,
    plugin: &str,
    key: &str,
    site_code: &str,
    as_of: &str,
) -> Result<Option<f64>> {
    registry
        .indicator_value(plugin, key, site_code, as_of)
        .await
}
