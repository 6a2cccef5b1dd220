//! Plugin-provided indicators: the declared, versioned contract through
//! which a program plugin contributes an indicator's value to the kernel.
//!
//! A plugin declares what it provides in its manifest (`[[indicators]]`:
//! a plan indicator's number — only 1, 2, 5, 8 and 9 — or
//! `<plugin id>.<name>`, names, units, formula version) and exports
//! `lifelong:plugin/indicators` (host API 1.4.0, world `provider`). The
//! kernel never reads a plugin's tables: it asks the plugin.
//!
//! **Invariants:**
//! - install refuses a declared indicator without the export, a plan
//!   indicator the kernel computes itself, and a plan indicator another
//!   installed plugin already provides (one source per plan indicator);
//! - a value is asked for exactly as a GET request runs (see
//!   [`Loaded::indicator`]): the version that serves the site, restricted to
//!   the capabilities granted there, its fair share, a fresh instance under
//!   its deadline and memory cap, a read-only transaction, no caller;
//! - a plugin that is not enabled at the site (nor above it) has no value
//!   there (`Ok(None)`); any failure — a trap, a limit, an error the plugin
//!   returns, a value that is not a finite number — fails that one question
//!   with a message for admins, logged in the plugin's log and counted in
//!   its metrics like any failed call.

use super::registry::{Refusal, Registry};
use super::runtime::IndicatorQuery;
use super::Loaded;
use crate::error::{Error, Result};

/// An indicator a plugin declares in its manifest's `[[indicators]]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProvidedIndicator {
    /// The plugin id.
    pub plugin: String,
    /// `"1"`..`"10"` for a plan indicator, else `"<plugin>.<name>"`.
    pub key: String,
    pub name_zh: String,
    pub name_en: String,
    pub unit_zh: String,
    pub unit_en: String,
    pub formula_version: u32,
    /// How the plugin computes it (from the manifest; may be empty).
    pub description: String,
}

impl ProvidedIndicator {
    /// The indicators `m` declares.
    pub fn of(m: &super::Manifest) -> Vec<ProvidedIndicator> {
        m.indicators
            .iter()
            .map(|i| ProvidedIndicator {
                plugin: m.id.clone(),
                key: i.key.clone(),
                name_zh: i.name.zh_cn.clone(),
                name_en: i.name.en.clone(),
                unit_zh: i.unit.zh_cn.clone(),
                unit_en: i.unit.en.clone(),
                formula_version: i.formula_version,
                description: i.description.clone(),
            })
            .collect()
    }

    /// True for one of the plan's ten indicators.
    pub fn is_plan(&self) -> bool {
        self.key.parse::<u32>().is_ok()
    }
}

/// True if `s` is a real calendar date written `YYYY-MM-DD`.
fn is_date(s: &str) -> bool {
    s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// The error every failed question becomes: a conflict naming the
/// indicator (its message is for admins; the HTTP layer never shows a
/// plugin's internals to others).
fn failed(plugin: &str, key: &str, site: &str, as_of: &str, why: impl std::fmt::Display) -> Error {
    Error::Conflict {
        field: Some(format!("indicators.{key}")),
        message: format!(
            "plugin {plugin} could not compute indicator {key} for site {site} as of {as_of}: {why}"
        ),
    }
}

/// Refuse a package whose manifest declares indicators its component does
/// not export (`exports`: it has `lifelong:plugin/indicators`), or a plan
/// indicator that another installed plugin already provides. (A component
/// that exports `indicators` but declares none is accepted: the SDK exports
/// it for every plugin, and the kernel only ever asks for declared keys.)
pub(super) async fn check_declared(
    db: &crate::storage::Db,
    m: &super::Manifest,
    exports: bool,
) -> Result<()> {
    if m.indicators.is_empty() {
        return Ok(());
    }
    if !exports {
        return Err(Error::invalid(
            "indicators",
            format!(
                "plugin {} declares indicators ({}) but its component does not export lifelong:plugin/indicators; build it against host API 1.4 with the SDK's indicator support",
                m.id,
                m.indicators.iter().map(|i| i.key.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let rows: Vec<(String, String)> = sqlx::query_as(OTHER_MANIFESTS)
        .bind(&m.id)
        .fetch_all(db.reader())
        .await?;
    clash(m, rows)
}

/// The active manifest of every other installed plugin.
const OTHER_MANIFESTS: &str =
    "SELECT v.plugin, v.manifest FROM plugin_registry r JOIN plugin_versions v \
     ON v.plugin = r.plugin AND v.version = r.active WHERE r.plugin <> $1 ORDER BY v.plugin";

/// The same plan-indicator check inside the transaction that installs,
/// upgrades or rolls back `m`, after locking the registry generation row
/// (which every registry change updates before it commits): two changes
/// claiming one plan indicator at once are serialised, and the second sees
/// the first.
pub(super) async fn claims_free(tx: &mut crate::storage::Tx, m: &super::Manifest) -> Result<()> {
    if !m.indicators.iter().any(|i| i.key.parse::<u32>().is_ok()) {
        return Ok(());
    }
    sqlx::query("UPDATE plugin_generation SET generation = generation WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    let rows: Vec<(String, String)> = sqlx::query_as(OTHER_MANIFESTS)
        .bind(&m.id)
        .fetch_all(&mut **tx)
        .await?;
    clash(m, rows)
}

/// Refuse `m` if it claims a plan indicator one of `others` (plugin,
/// manifest text) provides.
fn clash(m: &super::Manifest, others: Vec<(String, String)>) -> Result<()> {
    for (other, text) in others {
        let Ok(theirs) = super::manifest::parse(&text) else {
            continue;
        };
        for i in m.indicators.iter().filter(|i| i.key.parse::<u32>().is_ok()) {
            if theirs.indicators.iter().any(|t| t.key == i.key) {
                return Err(Error::conflict(
                    "indicators",
                    format!(
                        "plan indicator {} is already provided by plugin {other} (version {}); one plugin provides each plan indicator — remove it from one of the two manifests",
                        i.key, theirs.version
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl Registry {
    /// Indicators declared by the installed (current) versions of plugins,
    /// ordered by plugin then key.
    pub fn provided_indicators(&self) -> Vec<ProvidedIndicator> {
        let mut out: Vec<ProvidedIndicator> = self
            .loaded()
            .into_iter()
            .filter_map(|(id, _)| self.manifest(&id))
            .flat_map(|m| ProvidedIndicator::of(&m))
            .collect();
        out.sort_by(|a, b| (&a.plugin, &a.key).cmp(&(&b.plugin, &b.key)));
        out
    }

    /// The plugin's value of `key` for `site_code`'s subtree as of `as_of`
    /// (YYYY-MM-DD). `Ok(None)` when the plugin is not enabled at that site
    /// (nor above it), or answers that it has no value there. Runs the
    /// plugin under the same sandbox, limits, fair share and read-only
    /// transaction as a GET call; a plugin failure is an `Err` with a
    /// message for admins.
    pub async fn indicator_value(
        &self,
        plugin: &str,
        key: &str,
        site_code: &str,
        as_of: &str,
    ) -> Result<Option<f64>> {
        if !is_date(as_of) {
            return Err(Error::invalid(
                "as_of",
                format!("{as_of:?} is not a date written YYYY-MM-DD"),
            ));
        }
        let Some(manifest) = self.manifest(plugin) else {
            return Err(Error::NotFound(format!("plugin {plugin}")));
        };
        if !manifest.indicators.iter().any(|i| i.key == key) {
            return Err(Error::NotFound(format!(
                "indicator {key} of plugin {plugin}"
            )));
        }
        let site = crate::sites::fetch_by_code(self.kernel().db.reader(), site_code)
            .await?
            .ok_or_else(|| Error::NotFound(format!("site {site_code}")))?;
        let loaded: Loaded = match self.route(plugin, Some(&site.path)) {
            Ok(l) => l,
            Err(Refusal::NotEnabled) => return Ok(None),
            Err(Refusal::NotInstalled) => return Err(Error::NotFound(format!("plugin {plugin}"))),
            Err(Refusal::NotGranted(caps)) => {
                return Err(failed(
                    plugin,
                    key,
                    site_code,
                    as_of,
                    format!(
                        "it is enabled here but not granted {} (grant them, or disable it)",
                        caps.join(", ")
                    ),
                ))
            }
        };
        // The version serving this site may be an older one (grants).
        if !loaded.manifest.indicators.iter().any(|i| i.key == key) {
            return Err(failed(
                plugin,
                key,
                site_code,
                as_of,
                format!(
                    "version {} serves this site and does not provide it",
                    loaded.manifest.version
                ),
            ));
        }
        let q = IndicatorQuery {
            key: key.to_string(),
            site: site.code.clone(),
            as_of: as_of.to_string(),
        };
        let request_id = format!("indicator-{key}-{}-{as_of}", site.code);
        let log = |message: String| {
            tracing::warn!(plugin, key, site = %site.code, as_of, "{message}");
            self.runtime().observatory().log(super::metrics::LogLine {
                at: crate::storage::now_micros(),
                plugin: loaded.manifest.id.clone(),
                version: loaded.manifest.version.clone(),
                level: "error",
                site: site.code.clone(),
                request_id: request_id.clone(),
                message,
            });
        };
        match loaded.indicator(self.kernel(), q).await {
            Ok(Ok(Some(v))) if v.is_finite() => Ok(Some(v)),
            Ok(Ok(Some(v))) => {
                let why = format!("it answered {v}, which is not a finite number");
                log(format!("indicator {key} failed: {why}"));
                Err(failed(plugin, key, site_code, as_of, why))
            }
            Ok(Ok(None)) => Ok(None),
            Ok(Err(message)) => {
                log(format!("indicator {key} failed: {message}"));
                Err(failed(plugin, key, site_code, as_of, message))
            }
            Err(e) => {
                let backtrace = e.backtrace.join(" <- ");
                log(if backtrace.is_empty() {
                    format!(
                        "indicator {key} call failed ({}): {}",
                        e.kind.as_str(),
                        e.message
                    )
                } else {
                    format!(
                        "indicator {key} call failed ({}): {}; wasm backtrace: {backtrace}",
                        e.kind.as_str(),
                        e.message
                    )
                });
                Err(failed(
                    plugin,
                    key,
                    site_code,
                    as_of,
                    format!("the call failed ({}): {}", e.kind.as_str(), e.message),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_real_calendar_days() {
        assert!(super::is_date("2026-12-31"));
        assert!(super::is_date("2028-02-29"));
        assert!(!super::is_date("2026-02-29"));
        assert!(!super::is_date("2026-1-31"));
        assert!(!super::is_date("yesterday"));
    }
}
