//! Conversion standards: the published, versioned rules by which the credit
//! bank converts one kind of outcome into another (`conversion.rs` makes the
//! conversions). A version never changes; a new one has a later
//! `valid_from` and the same kinds; the version in force on a date is the
//! one a conversion uses.

use super::ledger::{to_milli, KINDS};
use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::sites::parse_date;
use crate::storage::{now_micros, Tx};
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
pub(super) async fn effective(tx: &mut Tx, code: &str, date: &str) -> Result<Standard> {
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
