//! Conversion between kinds of outcome: the published standards by which the
//! credit bank turns, say, two skill certificates into academic credits, and
//! the conversions made under them.
//!
//! A standard is versioned and dated like a recognition rule (`rules.rs`): a
//! version never changes, a new one has a later `valid_from`, and a version
//! may be used for a new conversion only between its `valid_from` and its
//! `valid_until`. Its cardinality says how sources are consumed: `1:1` one
//! source, once; `n:1` exactly n sources, each once; `1:n` one source that
//! may back up to n conversions. A cap bounds the net quantity one account
//! may receive through conversions under the standard's code.
//!
//! **Invariants:**
//! - a conversion is one ledger entry (kind: the target's) whose `reference`
//!   names the entries it consumed, and `conversion_links` rows pointing from
//!   it to each source; a source holds at most one live link per slot
//!   (`1..=uses_per_source`, a unique index), so a source is never consumed
//!   twice, whatever runs concurrently, on either backend;
//! - a source already consumed under another standard is not consumed again;
//! - a conversion locks its account row before it reads the links, so
//!   conversions of one account's outcomes are ordered (the unique index is
//!   the backstop);
//! - a reversal of a conversion releases its links in the same transaction
//!   (`release`); a source consumed by a live conversion cannot be reversed
//!   until the conversion is (`refuse_if_consumed`).
//!
//! This module knows nothing of HTTP or plugins; it is called by
//! `http/accounts.rs` (admins) and by the plugin host (`accounts.convert`).

use super::ledger::{
    append_in, existing, stored, to_milli, unit_for, AppendError, Entry, Recorded, Request,
    COLUMNS as ENTRY_COLUMNS, KINDS,
};
use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::sites::{self, parse_date, today};
use crate::storage::{is_unique_violation, now_micros, Tx};
use serde::{Deserialize, Serialize};

/// A stored version of a conversion standard.
#[derive(Debug, Clone, Serialize, PartialEq, sqlx::FromRow)]
pub struct Standard {
    /// Row id.
    pub id: i64,
    /// Stable code, e.g. `cert-to-credit-electrician`.
    pub code: String,
    /// 1, 2, …
    pub version: i64,
    /// Human name; the conversion entry's title.
    pub name: String,
    /// `1:1`, `n:1` or `1:n`.
    pub cardinality: String,
    /// The kind consumed.
    pub source_kind: String,
    /// Sources one conversion consumes (n for `n:1`, else 1).
    pub sources_per_conversion: i64,
    /// Conversions one source may back (n for `1:n`, else 1).
    pub uses_per_source: i64,
    /// The least quantity (thousandths) a source must have.
    pub min_source_quantity_milli: i64,
    /// The kind produced.
    pub target_kind: String,
    /// Quantity (thousandths) one conversion produces.
    pub target_quantity_milli: i64,
    /// The most target quantity (thousandths) one account may hold, net,
    /// through conversions under this code; `None`: no cap.
    pub cap_milli: Option<i64>,
    /// First day a conversion may use this version.
    pub valid_from: String,
    /// Last day a conversion may use this version (`None`: open).
    pub valid_until: Option<String>,
}

/// Input for a new version of a standard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStandard {
    /// Code; a new version is made if it exists.
    pub code: String,
    /// Human name.
    pub name: String,
    /// `1:1`, `n:1` or `1:n`.
    pub cardinality: String,
    /// Kind consumed.
    pub source_kind: String,
    /// n for `n:1` (at least 2); must be absent or 1 otherwise.
    #[serde(default)]
    pub sources: Option<i64>,
    /// n for `1:n` (at least 2); must be absent or 1 otherwise.
    #[serde(default)]
    pub uses: Option<i64>,
    /// The least quantity a source must have (default: any).
    #[serde(default)]
    pub min_source_quantity: Option<f64>,
    /// Kind produced.
    pub target_kind: String,
    /// Quantity one conversion produces, in the target kind's unit.
    pub target_quantity: f64,
    /// Cap per account under this code, in the target kind's unit.
    #[serde(default)]
    pub cap: Option<f64>,
    /// First day.
    pub valid_from: String,
    /// Last day (optional).
    #[serde(default)]
    pub valid_until: Option<String>,
}

/// A conversion to make.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConversion {
    /// Whose account (sources and result are in it).
    pub person_id: i64,
    /// The standard's code; the version in force today applies.
    pub standard: String,
    /// Ledger entry ids of the outcomes to consume.
    pub sources: Vec<i64>,
    /// The site that makes the conversion (code or id).
    pub source_site: String,
    /// Unique per origin: the same key converts once.
    pub idempotency_key: String,
}

const COLUMNS: &str = "id, code, version, name, cardinality, source_kind, sources_per_conversion, \
    uses_per_source, min_source_quantity_milli, target_kind, target_quantity_milli, cap_milli, \
    valid_from, valid_until";

fn kind(field: &str, k: &str) -> Result<()> {
    if KINDS.contains(&k) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("unknown kind {k:?}; expected one of {}", KINDS.join(", ")),
        ))
    }
}

/// Publish a new version of a conversion standard (city admins).
pub async fn publish(k: &Kernel, actor: &Actor, n: NewStandard) -> Result<Standard> {
    actor.require_city_admin("publishing a conversion standard")?;
    if n.code.is_empty()
        || n.code.len() > 64
        || !n
            .code
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(Error::invalid(
            "code",
            "must be 1-64 letters, digits, '-', '_' or '.'",
        ));
    }
    if n.name.trim().is_empty() || n.name.chars().count() > 200 {
        return Err(Error::invalid("name", "must be 1-200 characters"));
    }
    kind("source_kind", &n.source_kind)?;
    kind("target_kind", &n.target_kind)?;
    if n.source_kind == n.target_kind {
        return Err(Error::invalid(
            "target_kind",
            "a conversion turns one kind into another",
        ));
    }
    let n_of = |field: &str, v: Option<i64>, wanted: bool| -> Result<i64> {
        match (wanted, v) {
            (true, Some(x)) if (2..=20).contains(&x) => Ok(x),
            (true, _) => Err(Error::invalid(
                field,
                format!("{} needs n between 2 and 20", n.cardinality),
            )),
            (false, None | Some(1)) => Ok(1),
            (false, Some(_)) => Err(Error::invalid(
                field,
                format!("a {} standard takes no {field}", n.cardinality),
            )),
        }
    };
    let (sources, uses) = match n.cardinality.as_str() {
        "1:1" => (
            n_of("sources", n.sources, false)?,
            n_of("uses", n.uses, false)?,
        ),
        "n:1" => (
            n_of("sources", n.sources, true)?,
            n_of("uses", n.uses, false)?,
        ),
        "1:n" => (
            n_of("sources", n.sources, false)?,
            n_of("uses", n.uses, true)?,
        ),
        other => {
            return Err(Error::invalid(
                "cardinality",
                format!("unknown cardinality {other:?}; expected 1:1, n:1 or 1:n"),
            ))
        }
    };
    let min_source = n
        .min_source_quantity
        .map(|m| to_milli("min_source_quantity", m))
        .transpose()?
        .unwrap_or(0);
    if min_source < 0 {
        return Err(Error::invalid(
            "min_source_quantity",
            "must not be negative",
        ));
    }
    let target = to_milli("target_quantity", n.target_quantity)?;
    if target <= 0 {
        return Err(Error::invalid(
            "target_quantity",
            "must be greater than zero",
        ));
    }
    let cap = n.cap.map(|c| to_milli("cap", c)).transpose()?;
    if cap.is_some_and(|c| c < target) {
        return Err(Error::invalid(
            "cap",
            "must allow at least one conversion (cap ≥ target_quantity)",
        ));
    }
    let valid_from = parse_date("valid_from", &n.valid_from)?;
    let valid_until = n
        .valid_until
        .as_deref()
        .map(|d| parse_date("valid_until", d))
        .transpose()?;
    if valid_until.as_ref().is_some_and(|u| *u < valid_from) {
        return Err(Error::invalid(
            "valid_until",
            "must not be before valid_from",
        ));
    }
    let mut tx = k.db.begin().await?;
    let (latest,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM conversion_standards WHERE code = $1",
    )
    .bind(&n.code)
    .fetch_one(&mut *tx)
    .await?;
    if latest > 0 {
        let prev = sqlx::query_as::<_, Standard>(&format!(
            "SELECT {COLUMNS} FROM conversion_standards WHERE code = $1 AND version = $2"
        ))
        .bind(&n.code)
        .bind(latest)
        .fetch_one(&mut *tx)
        .await?;
        if valid_from <= prev.valid_from {
            return Err(Error::invalid(
                "valid_from",
                format!(
                    "must be after version {latest}'s valid_from {}",
                    prev.valid_from
                ),
            ));
        }
        if prev.source_kind != n.source_kind || prev.target_kind != n.target_kind {
            return Err(Error::invalid(
                "source_kind",
                format!(
                    "standard {} converts {} into {}; a new version cannot change that",
                    n.code, prev.source_kind, prev.target_kind
                ),
            ));
        }
    }
    let standard = sqlx::query_as::<_, Standard>(&format!(
        "INSERT INTO conversion_standards (code, version, name, cardinality, source_kind, \
         sources_per_conversion, uses_per_source, min_source_quantity_milli, target_kind, \
         target_quantity_milli, cap_milli, valid_from, valid_until, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING {COLUMNS}"
    ))
    .bind(&n.code)
    .bind(latest + 1)
    .bind(n.name.trim())
    .bind(&n.cardinality)
    .bind(&n.source_kind)
    .bind(sources)
    .bind(uses)
    .bind(min_source)
    .bind(&n.target_kind)
    .bind(target)
    .bind(cap)
    .bind(&valid_from)
    .bind(&valid_until)
    .bind(actor.person_id())
    .bind(now_micros())
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "conversion_standard.publish",
            site: None,
            object_type: "conversion_standard",
            object_id: format!("{}@{}", standard.code, standard.version),
            before: None,
            after: Some(serde_json::to_value(&standard).unwrap_or_default()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(standard)
}

/// Every version of every standard (admins of any site).
pub async fn list(k: &Kernel, actor: &Actor) -> Result<Vec<Standard>> {
    if actor.admin_scopes().is_some_and(|s| s.is_empty()) {
        return Err(Error::Forbidden(
            "only admins may read the conversion standards".into(),
        ));
    }
    Ok(sqlx::query_as::<_, Standard>(&format!(
        "SELECT {COLUMNS} FROM conversion_standards ORDER BY code, version"
    ))
    .fetch_all(k.db.reader())
    .await?)
}

/// The version of `code` a conversion on `date` uses.
async fn effective(tx: &mut Tx, code: &str, date: &str) -> Result<Standard> {
    let s = sqlx::query_as::<_, Standard>(&format!(
        "SELECT {COLUMNS} FROM conversion_standards WHERE code = $1 AND valid_from <= $2 \
         ORDER BY version DESC LIMIT 1"
    ))
    .bind(code)
    .bind(date)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| {
        Error::invalid(
            "standard",
            format!("no version of conversion standard {code:?} is in force on {date}"),
        )
    })?;
    if let Some(until) = s.valid_until.as_deref().filter(|u| *u < date) {
        return Err(Error::invalid(
            "standard",
            format!(
                "version {} of conversion standard {code:?} was valid until {until}",
                s.version
            ),
        ));
    }
    Ok(s)
}

/// Convert, as an admin over the converting site, in a transaction of its
/// own. Replays with the same key return the first conversion.
pub async fn convert(
    k: &Kernel,
    actor: &Actor,
    origin: &str,
    n: NewConversion,
) -> Result<(Entry, Recorded)> {
    let site = sites::resolve(&k.db, &n.source_site)
        .await
        .map_err(|_| Error::invalid("source_site", format!("no site {:?}", n.source_site)))?;
    actor.require_admin(&site.path, "converting learning outcomes at this site")?;
    let mut tx = k.db.begin().await?;
    match convert_tx(&mut tx, actor, origin, &n, site.id, &site.path).await {
        Ok(done) => {
            tx.commit().await?;
            Ok(done)
        }
        Err(Converr::Raced) => {
            drop(tx);
            Err(Error::conflict(
                "sources",
                "a concurrent conversion consumed these outcomes first",
            ))
        }
        Err(Converr::Other(e)) => Err(e),
    }
}

/// Convert inside the caller's transaction `tx` (a plugin call's), at the
/// call's site. A lost race is reported as a write conflict, so the whole
/// call is re-run (and then sees what the winner consumed).
pub async fn convert_in(
    tx: &mut Tx,
    k: &Kernel,
    actor: &Actor,
    origin: &str,
    n: NewConversion,
) -> Result<(Entry, Recorded)> {
    let site = sites::resolve(&k.db, &n.source_site)
        .await
        .map_err(|_| Error::invalid("source_site", format!("no site {:?}", n.source_site)))?;
    match convert_tx(tx, actor, origin, &n, site.id, &site.path).await {
        Ok(done) => Ok(done),
        Err(Converr::Raced) => Err(Error::Internal(anyhow::anyhow!(
            "write conflict: a concurrent conversion consumed the sources of {:?}",
            n.idempotency_key
        ))),
        Err(Converr::Other(e)) => Err(e),
    }
}

enum Converr {
    Raced,
    Other(Error),
}

impl<E: Into<Error>> From<E> for Converr {
    fn from(e: E) -> Self {
        Converr::Other(e.into())
    }
}

async fn convert_tx(
    tx: &mut Tx,
    actor: &Actor,
    origin: &str,
    n: &NewConversion,
    site_id: i64,
    site_path: &str,
) -> Result<(Entry, Recorded), Converr> {
    if n.idempotency_key.is_empty() || n.idempotency_key.len() > 200 {
        return Err(Error::invalid("idempotency_key", "must be 1-200 characters").into());
    }
    let mut sources = n.sources.clone();
    sources.sort_unstable();
    sources.dedup();
    if sources.is_empty() || sources.len() != n.sources.len() {
        return Err(Error::invalid("sources", "must name distinct ledger entries").into());
    }
    // Lock the account first: conversions of its outcomes are ordered, and
    // each reads the links its predecessors committed.
    let locked: Option<(i64,)> = sqlx::query_as(
        "UPDATE accounts SET entry_count = entry_count WHERE person_id = $1 RETURNING id",
    )
    .bind(n.person_id)
    .fetch_optional(&mut **tx)
    .await?;
    let (account_id,) = locked.ok_or_else(|| {
        Error::invalid(
            "person_id",
            format!("person {} has no account", n.person_id),
        )
    })?;
    let date = today();
    let listed = sources
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut req = Request {
        account_person: n.person_id,
        kind: String::new(),
        title: String::new(),
        quantity_milli: 0,
        unit: String::new(),
        occurred_on: date.clone(),
        source_site_id: Some(site_id),
        issuer: None,
        reference: Some(format!("converts entries {listed}")),
        evidence: None,
        rule: Some(n.standard.clone()),
        idempotency_key: n.idempotency_key.clone(),
        reverses: None,
        credits: None,
        standard: None,
    };
    // A replay answers before anything is checked against the current state.
    let hash = req.content_hash();
    if let Some(found) = existing(None, origin, &n.idempotency_key, &hash, Some(&mut *tx)).await? {
        return Ok((found, Recorded::Replayed));
    }
    let standard = effective(tx, &n.standard, &date).await?;
    if sources.len() as i64 != standard.sources_per_conversion {
        return Err(Error::invalid(
            "sources",
            format!(
                "standard {}@{} ({}) consumes {} source outcome(s), not {}",
                standard.code,
                standard.version,
                standard.cardinality,
                standard.sources_per_conversion,
                sources.len()
            ),
        )
        .into());
    }
    let mut slots = Vec::with_capacity(sources.len());
    for &id in &sources {
        slots.push((id, free_slot(tx, account_id, id, &standard).await?));
    }
    if let Some(cap) = standard.cap_milli {
        let (held,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(e.quantity_milli), 0) AS BIGINT) FROM ledger_entries e \
             WHERE e.account_id = $1 AND e.id IN (SELECT conversion_entry_id FROM conversion_links \
             WHERE standard_code = $2 AND released_by_entry_id IS NULL)",
        )
        .bind(account_id)
        .bind(&standard.code)
        .fetch_one(&mut **tx)
        .await?;
        if held + standard.target_quantity_milli > cap {
            return Err(Error::conflict(
                "standard",
                format!(
                    "standard {} caps conversions at {} per account; {} already converted",
                    standard.code,
                    cap as f64 / 1000.0,
                    held as f64 / 1000.0
                ),
            )
            .into());
        }
    }
    req.kind = standard.target_kind.clone();
    req.title = standard.name.clone();
    req.quantity_milli = standard.target_quantity_milli;
    req.unit = unit_for(&standard.target_kind).to_string();
    req.credits = Some(if standard.target_kind == "academic_credit" {
        standard.target_quantity_milli
    } else {
        0
    });
    req.standard = Some((standard.code.clone(), standard.version));
    let (entry, how) = match append_in(tx, actor, origin, &req, &hash, Some(site_path)).await {
        Ok(v) => v,
        Err(AppendError::KeyTaken) => return Err(Converr::Raced),
        Err(AppendError::Other(e)) => return Err(e.into()),
    };
    if how == Recorded::Replayed {
        return Ok((entry, how));
    }
    for (source, slot) in slots {
        let r = sqlx::query(
            "INSERT INTO conversion_links (conversion_entry_id, source_entry_id, slot, standard_code) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(entry.id)
        .bind(source)
        .bind(slot)
        .bind(&standard.code)
        .execute(&mut **tx)
        .await;
        match r {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(Converr::Raced),
            Err(e) => return Err(e.into()),
        }
    }
    audit::record(
        tx,
        actor,
        Change {
            action: "ledger.convert",
            site: Some((site_id, site_path)),
            object_type: "ledger_entry",
            object_id: entry.id.to_string(),
            before: None,
            after: Some(serde_json::json!({
                "standard": standard.code,
                "version": standard.version,
                "consumed": sources,
                "entry": entry,
            })),
        },
    )
    .await?;
    Ok((entry, how))
}

/// Check one source and find the slot this conversion takes in it.
async fn free_slot(
    tx: &mut Tx,
    account_id: i64,
    id: i64,
    standard: &Standard,
) -> Result<i64, Converr> {
    let row = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let src = match row.map(|r| stored(&r)).transpose()? {
        Some(s) if s.account_id == account_id => s,
        _ => {
            return Err(
                Error::invalid("sources", format!("entry {id} is not in this account")).into(),
            )
        }
    };
    if src.reverses_entry_id.is_some() || src.kind != standard.source_kind {
        return Err(Error::invalid(
            "sources",
            format!(
                "entry {id} is not a {} outcome; standard {} consumes {}",
                standard.source_kind, standard.code, standard.source_kind
            ),
        )
        .into());
    }
    if src.quantity_milli < standard.min_source_quantity_milli {
        return Err(Error::invalid(
            "sources",
            format!(
                "entry {id} has {} {}; standard {} needs at least {}",
                src.quantity_milli as f64 / 1000.0,
                src.unit,
                standard.code,
                standard.min_source_quantity_milli as f64 / 1000.0
            ),
        )
        .into());
    }
    let reversed: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM ledger_entries WHERE reverses_entry_id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    if reversed.is_some() {
        return Err(Error::conflict("sources", format!("entry {id} was reversed")).into());
    }
    let live: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT slot, standard_code, conversion_entry_id FROM conversion_links \
         WHERE source_entry_id = $1 AND released_by_entry_id IS NULL ORDER BY slot",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    if let Some((_, other, by)) = live.iter().find(|l| l.1 != standard.code) {
        return Err(Error::conflict(
            "sources",
            format!("entry {id} was consumed by conversion entry {by} under standard {other}"),
        )
        .into());
    }
    let taken: Vec<i64> = live.iter().map(|l| l.0).collect();
    match (1..=standard.uses_per_source).find(|s| !taken.contains(s)) {
        Some(slot) => Ok(slot),
        None => Err(Error::conflict(
            "sources",
            format!(
                "entry {id} was already consumed{} (by conversion entry {})",
                if standard.uses_per_source > 1 {
                    format!(
                        " {} times, as far as standard {} allows",
                        standard.uses_per_source, standard.code
                    )
                } else {
                    String::new()
                },
                live.last().map(|l| l.2).unwrap_or_default()
            ),
        )
        .into()),
    }
}

/// Refuse reversing an outcome a live conversion consumed (reverse the
/// conversion first, which releases it).
pub(super) async fn refuse_if_consumed(tx: &mut Tx, original: i64) -> Result<()> {
    let by: Option<(i64,)> = sqlx::query_as(
        "SELECT conversion_entry_id FROM conversion_links \
         WHERE source_entry_id = $1 AND released_by_entry_id IS NULL LIMIT 1",
    )
    .bind(original)
    .fetch_optional(&mut **tx)
    .await?;
    match by {
        Some((c,)) => Err(Error::conflict(
            "entry",
            format!("entry {original} was consumed by conversion entry {c}; reverse that first"),
        )),
        None => Ok(()),
    }
}

/// A reversal `reversal` of `original` releases what `original` consumed,
/// if it was a conversion.
pub(super) async fn release(tx: &mut Tx, original: i64, reversal: i64) -> Result<()> {
    sqlx::query(
        "UPDATE conversion_links SET released_by_entry_id = $1 \
         WHERE conversion_entry_id = $2 AND released_by_entry_id IS NULL",
    )
    .bind(reversal)
    .bind(original)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
