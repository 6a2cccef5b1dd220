//! Lifelong-learning accounts and the credit bank.
//!
//! An account belongs to one person and moves `open → active → frozen`
//! (and back to `active`). Its ledger (`accounts/ledger.rs`) records learning
//! outcomes; recognition rules (`accounts/rules.rs`) convert them to credits;
//! conversion standards (`accounts/conversion.rs`) turn outcomes of one kind
//! into another.
//!
//! Access: the owner and admins over the owner's home site read an account;
//! the owner or an admin activates it; only admins freeze and unfreeze.

pub mod conversion;
pub mod ledger;
pub mod rules;
pub mod standards;
mod verify;

use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::error::{Error, Result};
use crate::identity::{self, Person};
use crate::kernel::Kernel;
use crate::sites::today;
use crate::storage::now_micros;
use serde::Serialize;

/// An account as shown.
#[derive(Debug, Clone, Serialize, PartialEq, sqlx::FromRow)]
pub struct Account {
    /// Account id.
    pub id: i64,
    /// Owner.
    pub person_id: i64,
    /// `open`, `active` or `frozen`.
    pub status: String,
    /// Activation date (feeds indicator 3).
    pub activated_on: Option<String>,
    /// Number of ledger entries.
    pub entry_count: i64,
}

/// Load the account of a person the actor may read.
pub async fn get(k: &Kernel, actor: &Actor, person_id: i64) -> Result<(Account, Person)> {
    let person = identity::get(k, actor, person_id).await?;
    let account = sqlx::query_as::<_, Account>(
        "SELECT id, person_id, status, activated_on, entry_count FROM accounts WHERE person_id = $1",
    )
    .bind(person_id)
    .fetch_optional(k.db.reader())
    .await?
    .ok_or_else(|| Error::NotFound(format!("account of person {person_id}")))?;
    Ok((account, person))
}

/// Change an account's status: `activate`, `freeze` or `unfreeze`.
pub async fn transition(
    k: &Kernel,
    actor: &Actor,
    person_id: i64,
    action: &str,
) -> Result<Account> {
    let (before, person) = get(k, actor, person_id).await?;
    let is_owner = actor.person_id() == Some(person_id);
    let (from, to) = match action {
        "activate" => {
            if !is_owner {
                actor.require_admin(&person.home_path, "activating another person's account")?;
            }
            ("open", "active")
        }
        "freeze" => {
            actor.require_admin(&person.home_path, "freezing an account")?;
            ("active", "frozen")
        }
        "unfreeze" => {
            actor.require_admin(&person.home_path, "unfreezing an account")?;
            ("frozen", "active")
        }
        other => {
            return Err(Error::invalid(
                "action",
                format!("unknown action {other:?}; expected activate, freeze or unfreeze"),
            ))
        }
    };
    if before.status != from {
        return Err(Error::Conflict {
            field: Some("status".into()),
            message: format!("cannot {action} an account that is {}", before.status),
        });
    }
    let mut tx = k.db.begin().await?;
    let changed = sqlx::query(
        "UPDATE accounts SET status = $1, activated_on = CASE WHEN $2 = 'activate' THEN $3 ELSE activated_on END, \
         frozen_at = CASE WHEN $2 = 'freeze' THEN $4 ELSE frozen_at END WHERE id = $5 AND status = $6",
    )
    .bind(to)
    .bind(action)
    .bind(today())
    .bind(now_micros())
    .bind(before.id)
    .bind(from)
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() != 1 {
        return Err(Error::Conflict {
            field: Some("status".into()),
            message: "the account changed meanwhile; try again".into(),
        });
    }
    let after = sqlx::query_as::<_, Account>(
        "SELECT id, person_id, status, activated_on, entry_count FROM accounts WHERE id = $1",
    )
    .bind(before.id)
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: match action {
                "activate" => "account.activate",
                "freeze" => "account.freeze",
                _ => "account.unfreeze",
            },
            site: Some((person.home_site_id, &person.home_path)),
            object_type: "account",
            object_id: before.id.to_string(),
            before: Some(serde_json::to_value(&before).unwrap_or_default()),
            after: Some(serde_json::to_value(&after).unwrap_or_default()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}
