//! Snapshots: one stored value per (indicator, site subtree, date), with
//! the formula version, source and parameters that produced it.
//!
//! **Idempotent per day.** `(indicator, site, as_of)` is unique and every
//! insert is `ON CONFLICT DO NOTHING`: a second request, or a second node
//! running the daily schedule, finds the row there and keeps it (a stored
//! snapshot is a record; `recompute` compares it with the data, `adjust`
//! corrects it with a note). The daily run is claimed per day in
//! `indicator_schedule`, so on several nodes one node computes it; a claim
//! left unfinished past its lease (the node died) is taken over.

use super::{circles, from_milli, plan, to_milli, Ctx, Num};
use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::sites::{self, Site};
use crate::storage::{col, now_micros};
use serde::Serialize;
use sqlx::any::AnyRow;

/// How long a node's claim on a day's run holds before another node may
/// take it over (microseconds): 15 minutes.
pub const CLAIM_LEASE_MICROS: i64 = 15 * 60 * 1_000_000;

/// A stored snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Snapshot id.
    pub id: i64,
    /// Plan id, for the ten.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indicator: Option<u8>,
    /// Indicator key.
    pub key: String,
    /// Site code.
    pub site: String,
    /// The date of the value.
    pub as_of: String,
    /// The value as computed then (kept after an adjustment).
    pub value: Option<Num>,
    /// Why there is no value.
    pub error: Option<String>,
    /// The formula version that computed it.
    pub formula_version: i64,
    /// `kernel` or `plugin:<id>`.
    pub source: String,
    /// Parameters the formula used (circles), if any.
    pub params: Option<serde_json::Value>,
    /// When it was taken (µs since the epoch).
    pub taken_at: i64,
    /// Who took it (`system:schedule`, `person:7`).
    pub taken_by: String,
    /// The adjusted value, if adjusted.
    pub adjusted_value: Option<Num>,
    /// The adjustment's note.
    pub adjusted_note: Option<String>,
    /// Who adjusted it.
    pub adjusted_by: Option<String>,
    /// When.
    pub adjusted_at: Option<i64>,
    /// The value in effect: adjusted if adjusted, else the value.
    pub effective_value: Option<Num>,
    /// On a take: true if this request stored it, false if it was there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    #[serde(skip)]
    site_id: i64,
    #[serde(skip)]
    site_path: String,
}

const SELECT: &str = "SELECT n.id, n.indicator, n.site_id, s.code AS site_code, s.path AS site_path, \
    n.as_of, n.value_milli, n.error, n.formula_version, n.source, n.params, n.taken_at, n.taken_by, \
    n.adjusted_value_milli, n.adjusted_note, n.adjusted_by, n.adjusted_at \
    FROM indicator_snapshots n JOIN sites s ON s.id = n.site_id";

fn from_row(r: &AnyRow) -> Result<Snapshot, sqlx::Error> {
    let key: String = col(r, "indicator")?;
    let value: Option<i64> = col(r, "value_milli")?;
    let adjusted: Option<i64> = col(r, "adjusted_value_milli")?;
    let params: Option<String> = col(r, "params")?;
    Ok(Snapshot {
        id: col(r, "id")?,
        indicator: plan(&key).map(|d| d.id),
        key,
        site: col(r, "site_code")?,
        as_of: col(r, "as_of")?,
        value: value.map(from_milli).map(Num),
        error: col(r, "error")?,
        formula_version: col(r, "formula_version")?,
        source: col(r, "source")?,
        params: params.and_then(|p| serde_json::from_str(&p).ok()),
        taken_at: col(r, "taken_at")?,
        taken_by: col(r, "taken_by")?,
        adjusted_value: adjusted.map(from_milli).map(Num),
        adjusted_note: col(r, "adjusted_note")?,
        adjusted_by: col(r, "adjusted_by")?,
        adjusted_at: col(r, "adjusted_at")?,
        effective_value: adjusted.or(value).map(from_milli).map(Num),
        created: None,
        site_id: col(r, "site_id")?,
        site_path: col(r, "site_path")?,
    })
}

/// The value in effect of the latest snapshot of `key` at `site_id` on or
/// before `date` that has one.
pub async fn latest_on_or_before(
    k: &Kernel,
    key: &str,
    site_id: i64,
    date: &str,
) -> Result<Option<f64>> {
    let row: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT value_milli, adjusted_value_milli FROM indicator_snapshots WHERE indicator = $1 \
         AND site_id = $2 AND as_of <= $3 AND (value_milli IS NOT NULL OR adjusted_value_milli IS NOT NULL) \
         ORDER BY as_of DESC LIMIT 1",
    )
    .bind(key)
    .bind(site_id)
    .bind(date)
    .fetch_optional(k.db.reader())
    .await?;
    Ok(row.and_then(|(v, a)| a.or(v)).map(from_milli))
}

/// The value in effect of the snapshot of `key` at `site_id` on `date`.
pub async fn stored_value(k: &Kernel, key: &str, site_id: i64, date: &str) -> Result<Option<f64>> {
    let row: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT value_milli, adjusted_value_milli FROM indicator_snapshots WHERE indicator = $1 \
         AND site_id = $2 AND as_of = $3",
    )
    .bind(key)
    .bind(site_id)
    .bind(date)
    .fetch_optional(k.db.reader())
    .await?;
    Ok(row.and_then(|(v, a)| a.or(v)).map(from_milli))
}

fn params_json(key: &str, p: circles::Params) -> Option<String> {
    (key == "10").then(|| serde_json::to_string(&p).unwrap_or_default())
}

/// Take snapshots of every indicator for `site` and each administrative
/// child as of `as_of`, as `actor` (who is recorded as `taken_by`, and
/// audited as `indicator.snapshot` in the same transaction). Existing ones
/// are kept. Returns them all, and how many this call stored.
pub async fn take_for(
    ctx: &Ctx,
    site: &Site,
    as_of: &str,
    actor: &Actor,
) -> Result<(Vec<Snapshot>, usize)> {
    let taken_by = actor.label();
    let mut targets = vec![site.clone()];
    targets.extend(super::admin_children(&ctx.kernel, site).await?);
    let all = ctx.all();
    // Compute first (plugin calls run outside the write transaction), then
    // store everything in one transaction.
    let mut computed = Vec::with_capacity(targets.len() * all.len());
    for s in &targets {
        for d in &all {
            let c = ctx.compute(&d.key, s, as_of, ctx.circles).await?;
            computed.push((s, d.key.clone(), c));
        }
    }
    let mut tx = ctx.kernel.db.begin().await?;
    let mut ids = Vec::with_capacity(computed.len());
    let mut created = 0;
    let now = now_micros();
    for (s, key, c) in &computed {
        let inserted: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO indicator_snapshots (indicator, site_id, as_of, value_milli, error, formula_version, \
             source, params, taken_at, taken_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (indicator, site_id, as_of) DO NOTHING RETURNING id",
        )
        .bind(key)
        .bind(s.id)
        .bind(as_of)
        .bind(c.value.map(to_milli))
        .bind(c.error.as_deref())
        .bind(i64::from(c.formula_version))
        .bind(&c.source)
        .bind(params_json(key, ctx.circles))
        .bind(now)
        .bind(&taken_by)
        .fetch_optional(&mut *tx)
        .await?;
        let (id, new) = match inserted {
            Some((id,)) => (id, true),
            None => {
                let (id,): (i64,) = sqlx::query_as(
                    "SELECT id FROM indicator_snapshots WHERE indicator = $1 AND site_id = $2 AND as_of = $3",
                )
                .bind(key)
                .bind(s.id)
                .bind(as_of)
                .fetch_one(&mut *tx)
                .await?;
                (id, false)
            }
        };
        created += usize::from(new);
        ids.push((id, new));
    }
    let mut out = Vec::with_capacity(ids.len());
    for (id, new) in ids {
        let row = sqlx::query(&format!("{SELECT} WHERE n.id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let mut snap = from_row(&row)?;
        snap.created = Some(new);
        out.push(snap);
    }
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "indicator.snapshot",
            site: Some((site.id, &site.path)),
            object_type: "indicator_snapshots",
            object_id: format!("{}@{as_of}", site.code),
            before: None,
            after: Some(serde_json::json!({ "stored": created, "kept": out.len() - created })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((out, created))
}

/// The day before today (the city's date): the latest day a snapshot may
/// be of, and the day the daily run snapshots.
pub fn yesterday() -> String {
    let today =
        chrono::NaiveDate::parse_from_str(&sites::today(), "%Y-%m-%d").expect("today is a date");
    (today - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string()
}

/// A snapshot is of a day that has ended: a snapshot of today would miss
/// the rest of the day's data, and stay frozen unequal to a later
/// recompute (and whoever took it first would decide the day's record).
fn ended(field: &str, day: &str) -> Result<()> {
    let today = sites::today();
    if day >= today.as_str() {
        return Err(Error::invalid(
            field,
            format!(
                "{day} has not ended: a snapshot is of a past day (today is {today}; the latest is {})",
                yesterday()
            ),
        ));
    }
    Ok(())
}

/// `POST /indicators/snapshots`: admins over the site; audited. As of
/// yesterday unless asked; never as of today or later.
pub async fn take(
    ctx: &Ctx,
    actor: &Actor,
    site: Option<&str>,
    as_of: Option<&str>,
) -> Result<Vec<Snapshot>> {
    let as_of = match as_of {
        None => yesterday(),
        Some(_) => super::parse_as_of("as_of", as_of)?,
    };
    ended("as_of", &as_of)?;
    let site = super::scoped_site(&ctx.kernel, actor, site).await?;
    Ok(take_for(ctx, &site, &as_of, actor).await?.0)
}

/// `GET /indicators/snapshots` filters.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    /// Site (default: the caller's top site).
    pub site: Option<String>,
    /// Indicator key.
    pub key: Option<String>,
    /// From date (inclusive).
    pub from: Option<String>,
    /// To date (inclusive).
    pub to: Option<String>,
}

/// Snapshots of one site, newest first (at most 5,000).
pub async fn list(ctx: &Ctx, actor: &Actor, f: ListFilter) -> Result<Vec<Snapshot>> {
    let from = f
        .from
        .as_deref()
        .map(|d| sites::parse_date("from", d))
        .transpose()?;
    let to =
        f.to.as_deref()
            .map(|d| sites::parse_date("to", d))
            .transpose()?;
    if let Some(key) = &f.key {
        if ctx.describe(key).is_none() {
            return Err(Error::NotFound(format!("indicator {key}")));
        }
    }
    let site = super::scoped_site(&ctx.kernel, actor, f.site.as_deref()).await?;
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE n.site_id = $1 AND ($2 = '' OR n.indicator = $2) AND ($3 = '' OR n.as_of >= $3) \
         AND ($4 = '' OR n.as_of <= $4) ORDER BY n.as_of DESC, n.id LIMIT 5000"
    ))
    .bind(site.id)
    .bind(f.key.unwrap_or_default())
    .bind(from.unwrap_or_default())
    .bind(to.unwrap_or_default())
    .fetch_all(ctx.kernel.db.reader())
    .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<Snapshot> {
    let n: i64 = id
        .parse()
        .map_err(|_| Error::NotFound(format!("snapshot {id}")))?;
    let row = sqlx::query(&format!("{SELECT} WHERE n.id = $1"))
        .bind(n)
        .fetch_optional(ctx.kernel.db.reader())
        .await?
        .ok_or_else(|| Error::NotFound(format!("snapshot {id}")))?;
    let snap = from_row(&row)?;
    if !actor.can_see_site(&snap.site_path) {
        return Err(Error::NotFound(format!("snapshot {id}")));
    }
    actor.require_admin(&snap.site_path, "reading indicator snapshots")?;
    Ok(snap)
}

/// `GET /indicators/snapshots/{id}/recompute`.
#[derive(Debug, Clone, Serialize)]
pub struct Recomputed {
    /// Snapshot id.
    pub id: i64,
    /// The date.
    pub as_of: String,
    /// The value stored then (not the adjustment).
    pub stored: Option<Num>,
    /// The adjusted value, if any.
    pub adjusted: Option<Num>,
    /// The value computed now from the data as of the date.
    pub recomputed: Option<Num>,
    /// stored == recomputed (to thousandths).
    pub equal: bool,
    /// The formula version the snapshot was taken with.
    pub formula_version: i64,
    /// The formula version used now.
    pub current_formula_version: u32,
    /// Why the recomputed value is missing.
    pub error: Option<String>,
}

/// Compute a snapshot's value again from the data as of its date, with the
/// parameters it was taken with.
pub async fn recompute(ctx: &Ctx, actor: &Actor, id: &str) -> Result<Recomputed> {
    let snap = get(ctx, actor, id).await?;
    let site = sites::fetch(ctx.kernel.db.reader(), snap.site_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("snapshot {id}")))?;
    let params = snap
        .params
        .as_ref()
        .and_then(|p| serde_json::from_value::<circles::Params>(p.clone()).ok())
        .unwrap_or(ctx.circles);
    let c = ctx.compute(&snap.key, &site, &snap.as_of, params).await?;
    let stored = snap.value.map(|n| to_milli(n.0));
    Ok(Recomputed {
        id: snap.id,
        as_of: snap.as_of,
        stored: snap.value,
        adjusted: snap.adjusted_value,
        recomputed: c.value.map(Num),
        equal: stored == c.value.map(to_milli),
        formula_version: snap.formula_version,
        current_formula_version: c.formula_version,
        error: c.error,
    })
}

/// `POST /indicators/snapshots/{id}/adjust` body.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adjustment {
    /// The corrected value.
    pub value: f64,
    /// Why (required).
    #[serde(default)]
    pub note: Option<String>,
}

/// Adjust a snapshot's value with a note (city admins; audited). The value
/// computed then stays beside the adjustment.
pub async fn adjust(ctx: &Ctx, actor: &Actor, id: &str, a: Adjustment) -> Result<Snapshot> {
    actor.require_city_admin("adjusting an indicator snapshot")?;
    let note = a.note.as_deref().map(str::trim).unwrap_or("");
    if note.is_empty() {
        return Err(Error::invalid(
            "note",
            "an adjustment needs a note saying why",
        ));
    }
    if note.chars().count() > 2000 {
        return Err(Error::invalid("note", "must be at most 2000 characters"));
    }
    if !(a.value.is_finite() && a.value.abs() < 1e12) {
        return Err(Error::invalid("value", "must be a finite number"));
    }
    let before = get(ctx, actor, id).await?;
    let mut tx = ctx.kernel.db.begin().await?;
    sqlx::query(
        "UPDATE indicator_snapshots SET adjusted_value_milli = $1, adjusted_note = $2, adjusted_by = $3, \
         adjusted_at = $4 WHERE id = $5",
    )
    .bind(to_milli(a.value))
    .bind(note)
    .bind(actor.label())
    .bind(now_micros())
    .bind(before.id)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(&format!("{SELECT} WHERE n.id = $1"))
        .bind(before.id)
        .fetch_one(&mut *tx)
        .await?;
    let after = from_row(&row)?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "indicator.adjust",
            site: Some((after.site_id, &after.site_path)),
            object_type: "indicator_snapshot",
            object_id: after.id.to_string(),
            before: Some(serde_json::to_value(&before).unwrap_or_default()),
            after: Some(serde_json::to_value(&after).unwrap_or_default()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// The daily scheduled run for `day` (a day that has ended: `serve` runs
/// it for yesterday): claim it (or take over a claim past its lease),
/// snapshot the city and its townships, mark it done. Returns the number
/// of snapshots stored, or None when another node has (or is running)
/// this day.
pub async fn run_daily(ctx: &Ctx, node: &str, day: &str) -> Result<Option<usize>> {
    ended("day", day)?;
    let root: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM sites WHERE parent_id IS NULL ORDER BY id LIMIT 1")
            .fetch_optional(ctx.kernel.db.reader())
            .await?;
    let Some(city) = root else {
        // Nothing to snapshot yet; the day stays unclaimed.
        return Ok(None);
    };
    let city = sites::fetch(ctx.kernel.db.reader(), city.0)
        .await?
        .ok_or_else(|| Error::NotFound("the city site".into()))?;
    let now = now_micros();
    let mut tx = ctx.kernel.db.begin().await?;
    let claimed: Option<(String,)> = sqlx::query_as(
        "INSERT INTO indicator_schedule (day, claimed_by, claimed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (day) DO UPDATE SET claimed_by = excluded.claimed_by, claimed_at = excluded.claimed_at \
         WHERE indicator_schedule.done_at IS NULL AND indicator_schedule.claimed_at < $4 RETURNING day",
    )
    .bind(day)
    .bind(node)
    .bind(now)
    .bind(now - CLAIM_LEASE_MICROS)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    if claimed.is_none() {
        return Ok(None);
    }
    let stored = take_for(ctx, &city, day, &Actor::System("schedule"))
        .await?
        .1;
    let mut tx = ctx.kernel.db.begin().await?;
    sqlx::query("UPDATE indicator_schedule SET done_at = $1 WHERE day = $2 AND claimed_by = $3")
        .bind(now_micros())
        .bind(day)
        .bind(node)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(stored))
}
