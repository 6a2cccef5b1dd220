//! The plan's ten indicators (and the extra ones plugins declare), per site
//! subtree, as of a date; baselines, yearly targets, progress; snapshots.
//!
//! **Value semantics.** Every value is a *level* as of a date (inclusive)
//! for a site's whole subtree: indicator 4 is the number of walking points
//! active in the subtree on that day. The *baseline* is the value at the
//! period's start (2026-01-01): set by a city admin, else the latest snapshot
//! on or before that day, else computed as of that day. *Increase* is value −
//! baseline. Targets are yearly increases over the baseline (`increase`),
//! except indicator 7 whose target is a level (`level`: teaching points per
//! village). Progress is increase / 2030 target (value / target for a level),
//! none without a target.
//!
//! **Sources.** The kernel computes 3, 4, 6, 7 and 10 from its own
//! registries, honouring `opened_on`/`closed_on` and activation dates, so a
//! value as of a past date can be computed again (`snapshots.rs` checks it).
//! The others come from plugins through the declared contract
//! (`providers.rs`); without one, a value is null with an `error`.
//!
//! Access: indicators of a subtree are for admins over it (a township admin
//! sees their township; the city is outside it); targets and adjustments are
//! for city admins; both are audited.

pub mod circles;
pub mod providers;
pub mod snapshots;

use crate::audit::{self, Change};
use crate::authz::{path_upper, Actor};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::plugins::registry::Registry;
use crate::sites::{self, Site};
use crate::storage::now_micros;
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// First day of the plan period (the baseline date).
pub const PERIOD_START: &str = "2026-01-01";
/// Last day of the plan period.
pub const PERIOD_END: &str = "2030-12-31";
/// The years that may carry a target.
pub const TARGET_YEARS: std::ops::RangeInclusive<i32> = 2026..=2030;

/// One of the plan's ten indicators.
#[derive(Debug, Clone, Copy)]
pub struct Definition {
    /// 1..=10.
    pub id: u8,
    /// Chinese name.
    pub name_zh: &'static str,
    /// English name.
    pub name_en: &'static str,
    /// Chinese unit.
    pub unit_zh: &'static str,
    /// English unit.
    pub unit_en: &'static str,
    /// `increase` or `level`.
    pub target_kind: &'static str,
    /// True when the kernel computes it.
    pub kernel: bool,
    /// Version of the kernel's formula (kernel indicators).
    pub formula_version: u32,
}

/// The plan's ten indicators, in order.
pub const PLAN: [Definition; 10] = [
    def(
        1,
        "社会力量参与举办的老年大学",
        "Elder universities run with social organisations",
        "所",
        "institutions",
        "increase",
        false,
    ),
    def(
        2,
        "新增远程教育专业",
        "New distance-education specialities",
        "个",
        "specialities",
        "increase",
        false,
    ),
    def(
        3,
        "新激活市民终身学习账户",
        "Newly activated citizen lifelong-learning accounts",
        "人",
        "people",
        "increase",
        true,
    ),
    def(
        4,
        "新增人文行走点",
        "New humanistic walking points",
        "个",
        "points",
        "increase",
        true,
    ),
    def(
        5,
        "“智慧助老”学习场景",
        "\"Smart help for the elderly\" learning scenarios",
        "个",
        "scenarios",
        "increase",
        false,
    ),
    def(
        6,
        "新增乡镇（街道）社区学校",
        "New township (street) community schools",
        "所",
        "schools",
        "increase",
        true,
    ),
    def(
        7,
        "村（社区）教学点",
        "Village (community) teaching points per village",
        "个/村",
        "per village",
        "level",
        true,
    ),
    def(
        8,
        "终身学习品牌项目",
        "Lifelong-learning brand projects",
        "个",
        "projects",
        "increase",
        false,
    ),
    def(
        9,
        "新增学习团队",
        "New learning teams",
        "支",
        "teams",
        "increase",
        false,
    ),
    def(
        10,
        "15分钟社区学习圈",
        "15-minute community learning circles",
        "个",
        "circles",
        "increase",
        true,
    ),
];

#[allow(clippy::too_many_arguments)]
const fn def(
    id: u8,
    name_zh: &'static str,
    name_en: &'static str,
    unit_zh: &'static str,
    unit_en: &'static str,
    target_kind: &'static str,
    kernel: bool,
) -> Definition {
    Definition {
        id,
        name_zh,
        name_en,
        unit_zh,
        unit_en,
        target_kind,
        kernel,
        formula_version: 1,
    }
}

/// The plan definition of `key` ("1".."10").
pub fn plan(key: &str) -> Option<&'static Definition> {
    key.parse::<u8>()
        .ok()
        .and_then(|id| PLAN.iter().find(|d| d.id == id))
}

/// A number shown as an integer when it is whole (`7`, not `7.0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num(pub f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            s.serialize_i64(self.0 as i64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

/// Values are kept to thousandths (as snapshots store them).
pub fn to_milli(v: f64) -> i64 {
    (v * 1000.0).round() as i64
}

/// Thousandths back to a value.
pub fn from_milli(m: i64) -> f64 {
    m as f64 / 1000.0
}

fn round3(v: f64) -> f64 {
    from_milli(to_milli(v))
}

/// One computed value.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    /// The value, if it could be had.
    pub value: Option<f64>,
    /// Why not.
    pub error: Option<String>,
    /// `kernel` or `plugin:<id>` (or `none` when nothing provides it).
    pub source: String,
    /// The formula version that produced it.
    pub formula_version: u32,
}

/// What an indicator key names: a plan indicator or a plugin's own.
#[derive(Debug, Clone)]
pub struct Described {
    /// The key ("4" or "volunteers.verified_hours").
    pub key: String,
    /// Plan id, for the ten.
    pub id: Option<u8>,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Chinese unit.
    pub unit_zh: String,
    /// English unit.
    pub unit_en: String,
    /// `increase` or `level`.
    pub target_kind: &'static str,
    /// `kernel`, `plugin:<id>` or `none`.
    pub source: String,
    /// Current formula version.
    pub formula_version: u32,
    provider: Option<String>,
}

/// A site row as the circle map reads it.
type MapRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    Option<i64>,
    String,
    Option<f64>,
    Option<f64>,
);

/// One computation's context: the kernel, the plugins, the circle
/// parameters, and a cache of circle maps per date.
#[derive(Clone)]
pub struct Ctx {
    /// The kernel.
    pub kernel: Kernel,
    /// The plugin registry, when plugins run.
    pub registry: Option<Registry>,
    /// Circle parameters for indicator 10.
    pub circles: circles::Params,
    provided: Arc<Vec<providers::Provided>>,
    maps: Arc<Mutex<HashMap<String, Arc<CircleMap>>>>,
}

/// The sites active as of a date and their coverage.
pub struct CircleMap {
    /// Sites active on the date.
    pub sites: Vec<circles::MapSite>,
    /// Their coverage.
    pub coverage: circles::Coverage,
}

impl Ctx {
    /// A context over `kernel` and `registry` with circle parameters `circles`.
    pub fn new(kernel: Kernel, registry: Option<Registry>, circles: circles::Params) -> Ctx {
        let provided = providers::provided(registry.as_ref());
        Ctx {
            kernel,
            registry,
            circles,
            provided: Arc::new(provided),
            maps: Arc::default(),
        }
    }

    /// Every indicator: the ten, then the plugins' own keys.
    pub fn all(&self) -> Vec<Described> {
        let mut out: Vec<Described> = PLAN
            .iter()
            .map(|d| self.describe(&d.id.to_string()).expect("plan indicator"))
            .collect();
        let mut extra: Vec<&str> = self
            .provided
            .iter()
            .filter(|p| plan(&p.key).is_none())
            .map(|p| p.key.as_str())
            .collect();
        extra.sort();
        extra.dedup();
        out.extend(extra.into_iter().filter_map(|k| self.describe(k)));
        out
    }

    /// Describe `key`, or None when nothing defines it.
    pub fn describe(&self, key: &str) -> Option<Described> {
        let provider = self.provided.iter().find(|p| p.key == key);
        if let Some(d) = plan(key) {
            let (source, version, provider) = if d.kernel {
                ("kernel".to_string(), d.formula_version, None)
            } else {
                match provider {
                    Some(p) => (
                        format!("plugin:{}", p.plugin),
                        p.formula_version,
                        Some(p.plugin.clone()),
                    ),
                    None => ("none".to_string(), 0, None),
                }
            };
            return Some(Described {
                key: key.to_string(),
                id: Some(d.id),
                name_zh: d.name_zh.into(),
                name_en: d.name_en.into(),
                unit_zh: d.unit_zh.into(),
                unit_en: d.unit_en.into(),
                target_kind: d.target_kind,
                source,
                formula_version: version,
                provider,
            });
        }
        provider.map(|p| Described {
            key: key.to_string(),
            id: None,
            name_zh: p.name_zh.clone(),
            name_en: p.name_en.clone(),
            unit_zh: p.unit_zh.clone(),
            unit_en: p.unit_en.clone(),
            target_kind: "increase",
            source: format!("plugin:{}", p.plugin),
            formula_version: p.formula_version,
            provider: Some(p.plugin.clone()),
        })
    }

    /// The map of sites active on `as_of` and their coverage under `params`.
    pub async fn circle_map(&self, as_of: &str, params: circles::Params) -> Result<Arc<CircleMap>> {
        let key = format!("{as_of}|{}|{}", params.distance_m, params.share);
        if let Some(m) = self
            .maps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(m.clone());
        }
        let rows: Vec<MapRow> =
            sqlx::query_as(
                "SELECT id, code, name_zh, name_en, kind, parent_id, path, latitude, longitude FROM sites \
                 WHERE opened_on <= $1 AND (closed_on IS NULL OR closed_on > $1) ORDER BY path",
            )
            .bind(as_of)
            .fetch_all(self.kernel.db.reader())
            .await?;
        let sites: Vec<circles::MapSite> = rows
            .into_iter()
            .map(|r| circles::MapSite {
                id: r.0,
                code: r.1,
                name_zh: r.2,
                name_en: r.3,
                kind: r.4,
                parent_id: r.5,
                path: r.6,
                latitude: r.7,
                longitude: r.8,
            })
            .collect();
        let coverage = circles::compute(&sites, params);
        let map = Arc::new(CircleMap { sites, coverage });
        self.maps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, map.clone());
        Ok(map)
    }

    /// The value of `key` for `site`'s subtree as of `as_of`, with the
    /// current formula and, for indicator 10, circle parameters `params`.
    pub async fn compute(
        &self,
        key: &str,
        site: &Site,
        as_of: &str,
        params: circles::Params,
    ) -> Result<Computed> {
        let Some(d) = self.describe(key) else {
            return Err(Error::NotFound(format!("indicator {key}")));
        };
        if d.source == "kernel" {
            let (value, error) = self
                .kernel_value(d.id.unwrap_or(0), site, as_of, params)
                .await?;
            return Ok(Computed {
                value: value.map(round3),
                error,
                source: d.source,
                formula_version: d.formula_version,
            });
        }
        let (Some(plugin), Some(registry)) = (&d.provider, &self.registry) else {
            return Ok(Computed {
                value: None,
                error: Some("no installed plugin provides this indicator".into()),
                source: d.source,
                formula_version: d.formula_version,
            });
        };
        let (value, error) = match providers::value(registry, plugin, key, &site.code, as_of).await
        {
            Ok(Some(v)) if v.is_finite() => (Some(round3(v)), None),
            Ok(Some(v)) => (None, Some(format!("plugin {plugin} answered {v}"))),
            Ok(None) => (
                None,
                Some(format!(
                    "plugin {plugin} has no value at {} (it is not enabled there, or has nothing to count)",
                    site.code
                )),
            ),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(Computed {
            value,
            error,
            source: d.source,
            formula_version: d.formula_version,
        })
    }

    async fn kernel_value(
        &self,
        id: u8,
        site: &Site,
        as_of: &str,
        params: circles::Params,
    ) -> Result<(Option<f64>, Option<String>)> {
        let db = self.kernel.db.reader();
        let (lo, hi) = (site.path.as_str(), path_upper(&site.path));
        let count_kind = |kind: &'static str| {
            let hi = hi.clone();
            async move {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM sites WHERE path >= $1 AND path < $2 \
                     AND kind = $3 AND opened_on <= $4 AND (closed_on IS NULL OR closed_on > $4)",
                )
                .bind(lo)
                .bind(hi)
                .bind(kind)
                .bind(as_of)
                .fetch_one(db)
                .await?;
                Ok::<_, Error>(n)
            }
        };
        Ok(match id {
            3 => {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM accounts a JOIN persons p ON p.id = a.person_id \
                     JOIN sites s ON s.id = p.home_site_id WHERE s.path >= $1 AND s.path < $2 \
                     AND a.activated_on IS NOT NULL AND a.activated_on <= $3",
                )
                .bind(lo)
                .bind(&hi)
                .bind(as_of)
                .fetch_one(db)
                .await?;
                (Some(n as f64), None)
            }
            4 => (Some(count_kind("walking_point").await? as f64), None),
            6 => (Some(count_kind("community_school").await? as f64), None),
            7 => {
                let villages = count_kind("village").await?;
                let points = count_kind("community_teaching_point").await?;
                if villages == 0 {
                    (
                        None,
                        Some(format!("no village is active in this subtree on {as_of}")),
                    )
                } else {
                    (Some(points as f64 / villages as f64), None)
                }
            }
            10 => {
                let map = self.circle_map(as_of, params).await?;
                let n = map
                    .coverage
                    .townships
                    .iter()
                    .filter(|t| t.circle && map.sites[t.site].path.starts_with(&site.path))
                    .count();
                (Some(n as f64), None)
            }
            _ => (None, Some("not a kernel indicator".into())),
        })
    }
}

/// Parse an `as_of` date; today (the city's calendar) when absent. A date
/// after today is refused: a value as of a future day is not known.
pub fn parse_as_of(field: &str, s: Option<&str>) -> Result<String> {
    let today = sites::today();
    match s {
        None => Ok(today),
        Some(s) => {
            let d = sites::parse_date(field, s)?;
            if d > today {
                return Err(Error::invalid(
                    field,
                    format!("{d} is in the future (today is {today})"),
                ));
            }
            Ok(d)
        }
    }
}

/// The site whose indicators `actor` asks for: `reference`, or the
/// outermost site the actor administers. Not visible: not found; visible
/// but not administered (an ancestor, a learner's home): forbidden.
pub async fn scoped_site(k: &Kernel, actor: &Actor, reference: Option<&str>) -> Result<Site> {
    let site = match reference {
        Some(r) => sites::get(&k.db, actor, r).await?,
        None => match actor.admin_scopes() {
            None => {
                let root: Option<(i64,)> = sqlx::query_as(
                    "SELECT id FROM sites WHERE parent_id IS NULL ORDER BY id LIMIT 1",
                )
                .fetch_optional(k.db.reader())
                .await?;
                let id = root
                    .ok_or_else(|| Error::NotFound("the city site".into()))?
                    .0;
                sites::fetch(k.db.reader(), id)
                    .await?
                    .ok_or_else(|| Error::NotFound("the city site".into()))?
            }
            Some(scopes) => {
                let Some(path) = scopes.first() else {
                    return Err(Error::forbidden(
                        "indicators need the site_admin role at a site or above it",
                    ));
                };
                let code = sites::code_of_path(&k.db, path)
                    .await?
                    .ok_or_else(|| Error::NotFound("your site".into()))?;
                sites::resolve(&k.db, &code).await?
            }
        },
    };
    actor.require_admin(&site.path, "reading indicators")?;
    Ok(site)
}

/// The administrative children of a site (townships of the city, villages
/// of a township), as of now.
pub async fn admin_children(k: &Kernel, site: &Site) -> Result<Vec<Site>> {
    let ids: Vec<(i64,)> = sqlx::query_as(
        "SELECT id FROM sites WHERE parent_id = $1 AND kind IN ('township', 'village') ORDER BY code",
    )
    .bind(site.id)
    .fetch_all(k.db.reader())
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for (id,) in ids {
        if let Some(s) = sites::fetch(k.db.reader(), id).await? {
            out.push(s);
        }
    }
    Ok(out)
}

/// Targets and a set baseline of one (indicator, site).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Targets {
    /// Set baseline, if any.
    pub baseline: Option<f64>,
    /// Yearly targets by year.
    pub targets: BTreeMap<String, f64>,
}

/// The targets of every indicator at `site_id`, by key.
pub async fn targets_at(k: &Kernel, site_id: i64) -> Result<HashMap<String, Targets>> {
    let rows: Vec<(String, Option<i64>, String)> = sqlx::query_as(
        "SELECT indicator, baseline_milli, targets FROM indicator_targets WHERE site_id = $1",
    )
    .bind(site_id)
    .fetch_all(k.db.reader())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(key, b, t)| {
            (
                key,
                Targets {
                    baseline: b.map(from_milli),
                    targets: serde_json::from_str(&t).unwrap_or_default(),
                },
            )
        })
        .collect())
}

/// The baseline of `key` at `site` and where it came from.
async fn baseline(
    ctx: &Ctx,
    key: &str,
    site: &Site,
    set: Option<f64>,
) -> Result<(Option<f64>, Option<&'static str>)> {
    if let Some(b) = set {
        return Ok((Some(b), Some("set")));
    }
    if let Some(s) = snapshots::latest_on_or_before(&ctx.kernel, key, site.id, PERIOD_START).await?
    {
        return Ok((Some(s), Some("snapshot")));
    }
    let c = ctx.compute(key, site, PERIOD_START, ctx.circles).await?;
    Ok(match c.value {
        Some(v) => (Some(v), Some("computed")),
        None => (None, None),
    })
}

/// One indicator at one site (a row of the breakdown).
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Baseline.
    pub baseline: Option<Num>,
    /// `set`, `snapshot`, `computed` or null.
    pub baseline_source: Option<&'static str>,
    /// Value as of the date.
    pub value: Option<Num>,
    /// value − baseline.
    pub increase: Option<Num>,
    /// The 2030 target.
    pub target_2030: Option<Num>,
    /// Yearly targets.
    pub targets: BTreeMap<String, Num>,
    /// The target of the as-of year.
    pub target_this_year: Option<Num>,
    /// Progress towards the 2030 target.
    pub progress: Option<Num>,
    /// Why the value is missing.
    pub error: Option<String>,
}

async fn figures(
    ctx: &Ctx,
    d: &Described,
    site: &Site,
    as_of: &str,
    t: Option<&Targets>,
) -> Result<Figures> {
    let c = ctx.compute(&d.key, site, as_of, ctx.circles).await?;
    let (baseline, baseline_source) =
        baseline(ctx, &d.key, site, t.and_then(|t| t.baseline)).await?;
    let increase = match (c.value, baseline) {
        (Some(v), Some(b)) => Some(round3(v - b)),
        _ => None,
    };
    let targets = t.map(|t| t.targets.clone()).unwrap_or_default();
    let target_2030 = targets.get("2030").copied();
    let year = &as_of[..4];
    let progress = match (d.target_kind, target_2030) {
        (_, None) | (_, Some(0.0)) => None,
        ("level", Some(t)) => c.value.map(|v| v / t),
        (_, Some(t)) => increase.map(|i| i / t),
    }
    .map(|p| (p * 10_000.0).round() / 10_000.0);
    Ok(Figures {
        baseline: baseline.map(Num),
        baseline_source,
        value: c.value.map(Num),
        increase: increase.map(Num),
        target_2030: target_2030.map(Num),
        target_this_year: targets.get(year).copied().map(Num),
        targets: targets.into_iter().map(|(k, v)| (k, Num(v))).collect(),
        progress: progress.map(Num),
        error: c.error,
    })
}

/// A child's row of the breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct ChildFigures {
    /// Child site code.
    pub site: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: Option<String>,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// One indicator in the report.
#[derive(Debug, Clone, Serialize)]
pub struct IndicatorView {
    /// Plan id (1..10); absent for a plugin's own indicator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u8>,
    /// Key ("4", "volunteers.verified_hours").
    pub key: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Chinese unit.
    pub unit_zh: String,
    /// English unit.
    pub unit_en: String,
    /// `kernel`, `plugin:<id>` or `none`.
    pub source: String,
    /// Formula version.
    pub formula_version: u32,
    /// `increase` or `level`.
    pub target_kind: &'static str,
    /// The site's own figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// Per child.
    pub children: Vec<ChildFigures>,
}

/// `GET /indicators`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Site code.
    pub site: String,
    /// The date.
    pub as_of: String,
    /// The plan period.
    pub period: serde_json::Value,
    /// The ten.
    pub indicators: Vec<IndicatorView>,
    /// Plugins' own.
    pub extra: Vec<IndicatorView>,
}

/// Every indicator for `site`'s subtree as of `as_of`, with a breakdown
/// per administrative child.
pub async fn report(
    ctx: &Ctx,
    actor: &Actor,
    site: Option<&str>,
    as_of: Option<&str>,
) -> Result<Report> {
    let as_of = parse_as_of("as_of", as_of)?;
    let site = scoped_site(&ctx.kernel, actor, site).await?;
    let children = admin_children(&ctx.kernel, &site).await?;
    let own_targets = targets_at(&ctx.kernel, site.id).await?;
    let mut child_targets = Vec::with_capacity(children.len());
    for c in &children {
        child_targets.push(targets_at(&ctx.kernel, c.id).await?);
    }
    let mut indicators = Vec::new();
    let mut extra = Vec::new();
    for d in ctx.all() {
        let figures = figures(ctx, &d, &site, &as_of, own_targets.get(&d.key)).await?;
        let mut rows = Vec::with_capacity(children.len());
        for (c, t) in children.iter().zip(&child_targets) {
            rows.push(ChildFigures {
                site: c.code.clone(),
                name_zh: c.name_zh.clone(),
                name_en: c.name_en.clone(),
                figures: figures_for_child(ctx, &d, c, &as_of, t.get(&d.key)).await?,
            });
        }
        let view = IndicatorView {
            id: d.id,
            key: d.key.clone(),
            name_zh: d.name_zh.clone(),
            name_en: d.name_en.clone(),
            unit_zh: d.unit_zh.clone(),
            unit_en: d.unit_en.clone(),
            source: d.source.clone(),
            formula_version: d.formula_version,
            target_kind: d.target_kind,
            figures,
            children: rows,
        };
        if d.id.is_some() {
            indicators.push(view);
        } else {
            extra.push(view);
        }
    }
    Ok(Report {
        site: site.code,
        as_of,
        period: serde_json::json!({ "start": PERIOD_START, "end": PERIOD_END }),
        indicators,
        extra,
    })
}

async fn figures_for_child(
    ctx: &Ctx,
    d: &Described,
    site: &Site,
    as_of: &str,
    t: Option<&Targets>,
) -> Result<Figures> {
    Box::pin(figures(ctx, d, site, as_of, t)).await
}

/// One point of a series.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Year.
    pub year: i32,
    /// The date of the value (year end, or today for the current year).
    pub date: String,
    /// Value.
    pub value: Option<Num>,
    /// Baseline.
    pub baseline: Option<Num>,
    /// value − baseline.
    pub increase: Option<Num>,
    /// That year's target.
    pub target: Option<Num>,
    /// `snapshot` (the value stored that day, adjusted if it was) or `computed`.
    pub source: &'static str,
    /// Why the value is missing.
    pub error: Option<String>,
}

/// `GET /indicators/{id}/series`.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Plan id, for the ten.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u8>,
    /// Key.
    pub key: String,
    /// Site code.
    pub site: String,
    /// `year` or `month`.
    pub interval: &'static str,
    /// The points, oldest first.
    pub points: Vec<Point>,
}

/// The series of `key` at `site`: year ends of the plan period up to today
/// (`interval = year`), or month ends from the period's start (`month`).
pub async fn series(
    ctx: &Ctx,
    actor: &Actor,
    key: &str,
    site: Option<&str>,
    interval: Option<&str>,
) -> Result<Series> {
    let d = ctx
        .describe(key)
        .ok_or_else(|| Error::NotFound(format!("indicator {key}")))?;
    let site = scoped_site(&ctx.kernel, actor, site).await?;
    let today = sites::today();
    let interval = match interval.unwrap_or("year") {
        "year" => "year",
        "month" => "month",
        other => {
            return Err(Error::invalid(
                "interval",
                format!("unknown interval {other:?}; expected year or month"),
            ))
        }
    };
    let mut dates: Vec<String> = Vec::new();
    let start = chrono::NaiveDate::parse_from_str(PERIOD_START, "%Y-%m-%d").expect("date");
    let end = chrono::NaiveDate::parse_from_str(PERIOD_END, "%Y-%m-%d").expect("date");
    let now = chrono::NaiveDate::parse_from_str(&today, "%Y-%m-%d").expect("today");
    let last = now.min(end);
    if last >= start {
        let mut d = start;
        loop {
            use chrono::Datelike;
            let period_end = if interval == "year" {
                chrono::NaiveDate::from_ymd_opt(d.year(), 12, 31).expect("date")
            } else {
                let (y, m) = if d.month() == 12 {
                    (d.year() + 1, 1)
                } else {
                    (d.year(), d.month() + 1)
                };
                chrono::NaiveDate::from_ymd_opt(y, m, 1).expect("date") - chrono::Duration::days(1)
            };
            let point = period_end.min(last);
            dates.push(point.format("%Y-%m-%d").to_string());
            if period_end >= last {
                break;
            }
            d = period_end + chrono::Duration::days(1);
        }
    }
    let t = targets_at(&ctx.kernel, site.id).await?;
    let t = t.get(&d.key);
    let (baseline, _) = baseline(ctx, &d.key, &site, t.and_then(|t| t.baseline)).await?;
    let mut points = Vec::with_capacity(dates.len());
    for date in dates {
        let (value, source, error) =
            match snapshots::stored_value(&ctx.kernel, &d.key, site.id, &date).await? {
                Some(v) => (Some(v), "snapshot", None),
                None => {
                    let c = ctx.compute(&d.key, &site, &date, ctx.circles).await?;
                    (c.value, "computed", c.error)
                }
            };
        let year: i32 = date[..4].parse().unwrap_or(0);
        points.push(Point {
            year,
            value: value.map(Num),
            baseline: baseline.map(Num),
            increase: value.zip(baseline).map(|(v, b)| Num(round3(v - b))),
            target: t
                .and_then(|t| t.targets.get(&year.to_string()))
                .copied()
                .map(Num),
            source,
            error,
            date,
        });
    }
    Ok(Series {
        id: d.id,
        key: d.key,
        site: site.code,
        interval,
        points,
    })
}

/// `PUT /indicators/{id}/targets` body.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsInput {
    /// Site code (default: the city).
    #[serde(default)]
    pub site: Option<String>,
    /// Absent: unchanged; null: cleared; a number: set.
    #[serde(default, deserialize_with = "some")]
    pub baseline: Option<Option<f64>>,
    /// Yearly targets, "2026".."2030".
    pub targets: BTreeMap<String, f64>,
}

fn some<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<f64>>, D::Error> {
    use serde::Deserialize;
    Ok(Some(Option::<f64>::deserialize(d)?))
}

/// What `set_targets` stored.
#[derive(Debug, Clone, Serialize)]
pub struct TargetsSet {
    /// Key.
    pub key: String,
    /// Site code.
    pub site: String,
    /// The stored baseline.
    pub baseline: Option<Num>,
    /// The stored targets.
    pub targets: BTreeMap<String, Num>,
}

/// Set the baseline and yearly targets of `key` at a site (city admins; audited).
pub async fn set_targets(
    ctx: &Ctx,
    actor: &Actor,
    key: &str,
    input: TargetsInput,
) -> Result<TargetsSet> {
    actor.require_city_admin("setting indicator targets")?;
    let d = ctx
        .describe(key)
        .ok_or_else(|| Error::NotFound(format!("indicator {key}")))?;
    let mut errs = Vec::new();
    for (year, v) in &input.targets {
        let ok_year =
            year.parse::<i32>().is_ok_and(|y| TARGET_YEARS.contains(&y)) && year.len() == 4;
        if !ok_year {
            errs.push(crate::error::FieldError {
                field: format!("targets.{year}"),
                message: "a target year must be one of 2026..2030".into(),
            });
        } else if !(v.is_finite() && v.abs() < 1e12) {
            errs.push(crate::error::FieldError {
                field: format!("targets.{year}"),
                message: "must be a finite number".into(),
            });
        }
    }
    if let Some(Some(b)) = input.baseline {
        if !(b.is_finite() && b.abs() < 1e12) {
            errs.push(crate::error::FieldError {
                field: "baseline".into(),
                message: "must be a finite number".into(),
            });
        }
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let site = match &input.site {
        Some(code) => sites::fetch_ref(ctx.kernel.db.reader(), code)
            .await?
            .ok_or_else(|| Error::invalid("site", format!("no site has code {code:?}")))?,
        None => scoped_site(&ctx.kernel, actor, None).await?,
    };
    let targets: BTreeMap<String, f64> = input
        .targets
        .iter()
        .map(|(k, v)| (k.clone(), round3(*v)))
        .collect();
    let mut tx = ctx.kernel.db.begin().await?;
    let before: Option<(Option<i64>, String)> = sqlx::query_as(
        "SELECT baseline_milli, targets FROM indicator_targets WHERE indicator = $1 AND site_id = $2",
    )
    .bind(&d.key)
    .bind(site.id)
    .fetch_optional(&mut *tx)
    .await?;
    let baseline_milli: Option<i64> = match input.baseline {
        None => before.as_ref().and_then(|b| b.0),
        Some(b) => b.map(to_milli),
    };
    let targets_json = serde_json::to_string(&targets).unwrap_or_else(|_| "{}".into());
    sqlx::query(
        "INSERT INTO indicator_targets (indicator, site_id, baseline_milli, targets, updated_by, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (indicator, site_id) DO UPDATE SET \
         baseline_milli = excluded.baseline_milli, targets = excluded.targets, \
         updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(&d.key)
    .bind(site.id)
    .bind(baseline_milli)
    .bind(&targets_json)
    .bind(actor.label())
    .bind(now_micros())
    .execute(&mut *tx)
    .await?;
    let view = |b: Option<i64>, t: &str| {
        serde_json::json!({
            "baseline": b.map(from_milli),
            "targets": serde_json::from_str::<serde_json::Value>(t).unwrap_or_default(),
        })
    };
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "indicator.targets",
            site: Some((site.id, &site.path)),
            object_type: "indicator_targets",
            object_id: format!("{}@{}", d.key, site.code),
            before: before.as_ref().map(|(b, t)| view(*b, t)),
            after: Some(view(baseline_milli, &targets_json)),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(TargetsSet {
        key: d.key,
        site: site.code,
        baseline: baseline_milli.map(from_milli).map(Num),
        targets: targets.into_iter().map(|(k, v)| (k, Num(v))).collect(),
    })
}

/// One community in the circles report.
#[derive(Debug, Clone, Serialize)]
pub struct TownshipView {
    /// Township code.
    pub site: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: Option<String>,
    /// Active communities.
    pub communities: usize,
    /// Covered.
    pub covered: usize,
    /// Share covered.
    pub coverage: Option<Num>,
    /// A 15-minute circle.
    pub circle: bool,
}

/// The nearest learning site of an uncovered community.
#[derive(Debug, Clone, Serialize)]
pub struct Nearest {
    /// Code (null when the site is outside the caller's view).
    pub site: Option<String>,
    /// Chinese name (null outside the caller's view).
    pub name_zh: Option<String>,
    /// English name.
    pub name_en: Option<String>,
    /// Kind.
    pub kind: String,
    /// Great-circle distance, metres (rounded).
    pub distance_m: Num,
    /// False when the site lies outside the caller's view.
    pub visible: bool,
}

/// An uncovered community.
#[derive(Debug, Clone, Serialize)]
pub struct Uncovered {
    /// Community code.
    pub site: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: Option<String>,
    /// Its township's code.
    pub township: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Nearest learning site, if any has coordinates.
    pub nearest: Option<Nearest>,
}

/// `GET /circles`.
#[derive(Debug, Clone, Serialize)]
pub struct CirclesReport {
    /// Site code.
    pub site: String,
    /// The date.
    pub as_of: String,
    /// Walking distance used.
    pub distance_m: Num,
    /// Share used.
    pub share: Num,
    /// Townships in the subtree that are circles.
    pub circles: usize,
    /// Townships in the subtree.
    pub townships: Vec<TownshipView>,
    /// Uncovered communities in the subtree.
    pub uncovered: Vec<Uncovered>,
}

/// Circle coverage of the townships and communities in `site`'s subtree.
pub async fn circles_report(
    ctx: &Ctx,
    actor: &Actor,
    site: Option<&str>,
    as_of: Option<&str>,
    distance_m: Option<f64>,
    share: Option<f64>,
) -> Result<CirclesReport> {
    let params = circles::Params {
        distance_m: distance_m.unwrap_or(ctx.circles.distance_m),
        share: share.unwrap_or(ctx.circles.share),
    };
    params
        .check()
        .map_err(|(field, message)| Error::invalid(field, message))?;
    let as_of = parse_as_of("as_of", as_of)?;
    let site = scoped_site(&ctx.kernel, actor, site).await?;
    let map = ctx.circle_map(&as_of, params).await?;
    let inside = |i: usize| map.sites[i].path.starts_with(&site.path);
    let mut townships: Vec<TownshipView> = map
        .coverage
        .townships
        .iter()
        .filter(|t| inside(t.site))
        .map(|t| {
            let s = &map.sites[t.site];
            TownshipView {
                site: s.code.clone(),
                name_zh: s.name_zh.clone(),
                name_en: s.name_en.clone(),
                communities: t.communities,
                covered: t.covered,
                coverage: t.coverage.map(|c| Num((c * 10_000.0).round() / 10_000.0)),
                circle: t.circle,
            }
        })
        .collect();
    townships.sort_by(|a, b| a.site.cmp(&b.site));
    let mut uncovered: Vec<Uncovered> = map
        .coverage
        .communities
        .iter()
        .filter(|c| !c.covered && inside(c.site))
        .map(|c| {
            let s = &map.sites[c.site];
            Uncovered {
                site: s.code.clone(),
                name_zh: s.name_zh.clone(),
                name_en: s.name_en.clone(),
                township: c.township.map(|t| map.sites[t].code.clone()),
                latitude: s.latitude,
                longitude: s.longitude,
                nearest: c.nearest.map(|(i, d)| {
                    let n = &map.sites[i];
                    let visible = actor.can_see_site(&n.path);
                    Nearest {
                        site: visible.then(|| n.code.clone()),
                        name_zh: visible.then(|| n.name_zh.clone()),
                        name_en: if visible { n.name_en.clone() } else { None },
                        kind: n.kind.clone(),
                        distance_m: Num(d.round()),
                        visible,
                    }
                }),
            }
        })
        .collect();
    uncovered.sort_by(|a, b| a.site.cmp(&b.site));
    Ok(CirclesReport {
        site: site.code,
        as_of,
        distance_m: Num(params.distance_m),
        share: Num(params.share),
        circles: townships.iter().filter(|t| t.circle).count(),
        townships,
        uncovered,
    })
}
