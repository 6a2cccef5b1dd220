//! Conversion between kinds of outcome: the conversions the credit bank
//! makes under a published standard (`standards.rs`), say two skill
//! certificates turned into academic credits.
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
    append_in, existing, stored, unit_for, AppendError, Entry, Recorded, Request,
    COLUMNS as ENTRY_COLUMNS,
};
use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::sites::{self, today};
use crate::storage::{is_unique_violation, Tx};
use serde::Deserialize;

use super::standards::effective;
pub use super::standards::{list, publish, NewStandard, Standard};

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
