//! Recognition rules: the published standards that convert a learning
//! outcome into credit-bank credits.
//!
//! **Invariant:** a rule version, once stored, never changes. A change is a
//! new version of the same code with a later `valid_from`; an entry records
//! the version it used, so history is never rewritten.

use super::ledger::{unit_for, KINDS};
use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::sites::parse_date;
use crate::storage::{now_micros, Tx};
use serde::{Deserialize, Serialize};

/// A stored rule version.
#[derive(Debug, Clone, Serialize, PartialEq, sqlx::FromRow)]
pub struct Rule {
    /// Row id.
    pub id: i64,
    /// Stable code, e.g. `skill-cert-electrician`.
    pub code: String,
    /// 1, 2, …
    pub version: i64,
    /// Human name.
    pub name: String,
    /// The outcome kind it applies to.
    pub outcome_kind: String,
    /// The unit of the outcome's quantity.
    pub unit: String,
    /// Credits (thousandths) per one unit.
    pub credits_per_unit_milli: i64,
    /// Cap per entry (thousandths).
    pub max_credits_milli: Option<i64>,
    /// First day it applies.
    pub valid_from: String,
}

/// Input for a new rule version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// Code; a new version is made if it exists.
    pub code: String,
    /// Human name.
    pub name: String,
    /// Outcome kind.
    pub outcome_kind: String,
    /// Credits per unit (decimal, up to 3 places).
    pub credits_per_unit: f64,
    /// Optional cap per entry.
    #[serde(default)]
    pub max_credits: Option<f64>,
    /// First day it applies.
    pub valid_from: String,
}

const COLUMNS: &str = "id, code, version, name, outcome_kind, unit, credits_per_unit_milli, max_credits_milli, valid_from";

/// Publish a new version of a rule (city admins).
pub async fn publish(k: &Kernel, actor: &Actor, n: NewRule) -> Result<Rule> {
    actor.require_city_admin("publishing a recognition rule")?;
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
    if n.name.trim().is_empty() {
        return Err(Error::invalid("name", "must not be empty"));
    }
    if !KINDS.contains(&n.outcome_kind.as_str()) {
        return Err(Error::invalid(
            "outcome_kind",
            format!(
                "unknown kind {:?}; expected one of {}",
                n.outcome_kind,
                KINDS.join(", ")
            ),
        ));
    }
    let per_unit = super::ledger::to_milli("credits_per_unit", n.credits_per_unit)?;
    if per_unit < 0 {
        return Err(Error::invalid("credits_per_unit", "must not be negative"));
    }
    let max = n
        .max_credits
        .map(|m| super::ledger::to_milli("max_credits", m))
        .transpose()?;
    let valid_from = parse_date("valid_from", &n.valid_from)?;
    let mut tx = k.db.begin().await?;
    let (latest,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM recognition_rules WHERE code = $1",
    )
    .bind(&n.code)
    .fetch_one(&mut *tx)
    .await?;
    if latest > 0 {
        let prev = find_version(&mut tx, &n.code, latest).await?;
        if valid_from <= prev.valid_from {
            return Err(Error::invalid(
                "valid_from",
                format!(
                    "must be after version {latest}'s valid_from {}",
                    prev.valid_from
                ),
            ));
        }
        if prev.outcome_kind != n.outcome_kind {
            return Err(Error::invalid(
                "outcome_kind",
                format!(
                    "rule {} applies to {}; a new version cannot change that",
                    n.code, prev.outcome_kind
                ),
            ));
        }
    }
    let rule = sqlx::query_as::<_, Rule>(&format!(
        "INSERT INTO recognition_rules (code, version, name, outcome_kind, unit, credits_per_unit_milli, \
         max_credits_milli, valid_from, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         RETURNING {COLUMNS}"
    ))
    .bind(&n.code)
    .bind(latest + 1)
    .bind(n.name.trim())
    .bind(&n.outcome_kind)
    .bind(unit_for(&n.outcome_kind))
    .bind(per_unit)
    .bind(max)
    .bind(&valid_from)
    .bind(actor.person_id())
    .bind(now_micros())
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "rule.publish",
            site: None,
            object_type: "recognition_rule",
            object_id: format!("{}@{}", rule.code, rule.version),
            before: None,
            after: Some(serde_json::to_value(&rule).unwrap_or_default()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(rule)
}

async fn find_version(tx: &mut Tx, code: &str, version: i64) -> Result<Rule> {
    Ok(sqlx::query_as::<_, Rule>(&format!(
        "SELECT {COLUMNS} FROM recognition_rules WHERE code = $1 AND version = $2"
    ))
    .bind(code)
    .bind(version)
    .fetch_one(&mut **tx)
    .await?)
}

/// The version of `code` in force on `date`.
pub async fn effective(tx: &mut Tx, code: &str, date: &str) -> Result<Rule> {
    sqlx::query_as::<_, Rule>(&format!(
        "SELECT {COLUMNS} FROM recognition_rules WHERE code = $1 AND valid_from <= $2 ORDER BY version DESC LIMIT 1"
    ))
    .bind(code)
    .bind(date)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| Error::invalid("rule", format!("no version of rule {code:?} is in force on {date}")))
}

/// Every version of every rule.
pub async fn list(k: &Kernel) -> Result<Vec<Rule>> {
    Ok(sqlx::query_as::<_, Rule>(&format!(
        "SELECT {COLUMNS} FROM recognition_rules ORDER BY code, version"
    ))
    .fetch_all(k.db.reader())
    .await?)
}

impl Rule {
    /// Credits (thousandths) this rule grants for `quantity_milli` units.
    pub fn credits_for(&self, quantity_milli: i64) -> i64 {
        let raw =
            (i128::from(quantity_milli) * i128::from(self.credits_per_unit_milli) / 1000) as i64;
        match self.max_credits_milli {
            Some(max) => raw.min(max),
            None => raw,
        }
    }
}
