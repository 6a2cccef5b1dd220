//! Which persons a plugin call may see, and what it may record for them.
//!
//! **Invariant:** a call sees (`identity.get`, the account reads) and records
//! learning outcomes for exactly these persons:
//! - the calling person;
//! - persons homed in the area the call's site serves: its subtree, or for
//!   an institution (an elder university, a teaching point, …) the subtree
//!   of the area it sits in, whose residents it serves;
//! - persons who have themselves called the same plugin at the same site,
//!   signed in, with a writing call (a learner who enrolled at an elder
//!   school in another township is then visible to that plugin at that
//!   school, and only there). The kernel writes that fact
//!   ([`note_caller`], table `plugin_callers`) in the writing call's own
//!   transaction, once per (plugin, site, person); reading calls never write.
//!
//! Anyone else is "not found" to the reads, and `denied` to record-outcome,
//! which also writes an audit entry (`plugin.outcome.denied`) in a
//! transaction of its own, so the entry stays whatever becomes of the call.
//!
//! Recorded outcomes must also be plausible ([`plausible`]): not dated in
//! the future or before the person's birth, and no larger than the
//! configured maximum for their kind (`config::OutcomeMaxima`).

use super::call::CallState;
use super::runtime::lifelong::plugin::accounts::Outcome;
use crate::audit::{self, Change};
use crate::authz::Actor;
use crate::config::OutcomeMaxima;
use crate::error::{Error, FieldError, Result};
use crate::identity::Person;
use crate::kernel::Kernel;
use crate::sites::Site;
use crate::storage::{now_micros, Backend};

const SYSTEM: Actor = Actor::System("plugin");

/// Remember that `person` made a writing call of the call's plugin at the
/// call's site (nothing for a call without a site). Runs in the call's
/// transaction, so it commits with the call; a second call finds the row
/// and writes nothing.
pub(super) async fn note_caller(state: &mut CallState, person: i64) -> wasmtime::Result<()> {
    if state.site.is_empty() {
        return Ok(());
    }
    let (plugin, site) = (state.manifest.id.clone(), state.site.clone());
    let tx = state.tx().await?;
    sqlx::query(
        "INSERT INTO plugin_callers (plugin, site_id, person_id, first_at) \
         SELECT $1, id, $2, $3 FROM sites WHERE code = $4 ON CONFLICT DO NOTHING",
    )
    .bind(plugin)
    .bind(person)
    .bind(now_micros())
    .bind(site)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The person `person_id` if a call of `plugin` at `site` (a code, empty for
/// none) made for `caller` may see them; None if not, or if there is no
/// such person (the two are not told apart).
pub(super) async fn visible(
    k: &Kernel,
    plugin: &str,
    caller: Option<i64>,
    site: &str,
    person_id: i64,
) -> Result<Option<Person>> {
    let p = match crate::identity::get(k, &SYSTEM, person_id).await {
        Ok(p) => p,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    if Some(p.id) == caller {
        return Ok(Some(p));
    }
    let Some(site) = site_of(k, site).await? else {
        return Ok(None);
    };
    if p.home_path.starts_with(area_served(&site)) {
        return Ok(Some(p));
    }
    let called: Option<(i64,)> = sqlx::query_as(
        "SELECT person_id FROM plugin_callers WHERE plugin = $1 AND site_id = $2 AND person_id = $3",
    )
    .bind(plugin)
    .bind(site.id)
    .bind(p.id)
    .fetch_optional(k.db.reader())
    .await?;
    Ok(called.map(|_| p))
}

async fn site_of(k: &Kernel, code: &str) -> Result<Option<Site>> {
    if code.is_empty() {
        return Ok(None);
    }
    crate::sites::fetch_by_code(k.db.reader(), code).await
}

/// The path of the area a site serves: its own subtree for a city, township
/// or village; for an institution, the subtree of the area it sits in.
fn area_served(s: &Site) -> &str {
    if crate::sites::is_admin_level(&s.kind) {
        &s.path
    } else {
        s.parent_path()
    }
}

/// Check that an outcome for `person` is plausible: `occurred_on` not after
/// today (the city's calendar) nor before the person's birth date, and the
/// quantity within the configured maximum for its kind. Every failing field
/// is named. Other checks (known kind, positive quantity, the date's form)
/// are the ledger's.
pub(super) fn plausible(
    maxima: &OutcomeMaxima,
    person: &Person,
    kind: &str,
    quantity: f64,
    occurred_on: &str,
) -> Result<()> {
    let mut bad = Vec::new();
    let mut fail = |field: &str, message: String| {
        bad.push(FieldError {
            field: field.into(),
            message,
        })
    };
    if let Ok(day) = crate::sites::parse_date("occurred_on", occurred_on) {
        let today = crate::sites::today();
        if day > today {
            fail(
                "occurred_on",
                format!("{day} is in the future (today is {today})"),
            );
        } else if !person.birth_date.is_empty() && day < person.birth_date {
            fail(
                "occurred_on",
                format!("{day} is before the person was born"),
            );
        }
    }
    if let Some(max) = maxima.for_kind(kind) {
        if quantity > max {
            let unit = crate::accounts::ledger::unit_for(kind);
            fail(
                "quantity",
                format!(
                    "{quantity} is more than one {kind} outcome may hold: at most {max} {unit}(s) (outcome_maxima.{kind})"
                ),
            );
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(bad))
    }
}

/// What is audited of a refused record-outcome: the call's site and the
/// attempt (`after` of the audit entry).
pub(super) struct Refusal {
    site: String,
    person: i64,
    after: serde_json::Value,
}

/// The refusal of outcome `o` in `call`.
pub(super) fn refusal(call: &CallState, o: &Outcome) -> Refusal {
    Refusal {
        site: call.site.clone(),
        person: o.person_id,
        after: serde_json::json!({
            "plugin": call.manifest.id,
            "version": call.manifest.version,
            "site": call.site,
            "caller": call.caller,
            "request_id": call.request_id,
            "kind": o.kind,
            "quantity": o.quantity,
            "occurred_on": o.occurred_on,
            "source_site": o.source_site,
            "idempotency_key": o.idempotency_key,
            "reason": "the person is not visible to this call",
        }),
    }
}

/// Audit a refused record-outcome in a transaction of its own, so the entry
/// stays even if the call rolls back. On PostgreSQL it is written before
/// the plugin hears the refusal; on SQLite the call holds the one writer
/// connection, so a task writes it as soon as the call lets go of it.
pub(super) async fn audit_refusal(k: &Kernel, r: Refusal) {
    let site = site_of(k, &r.site).await.ok().flatten();
    let (person, after) = (r.person, r.after);
    let k = k.clone();
    let backend = k.db.backend();
    let write = async move {
        let mut tx = k.db.begin().await?;
        audit::record(
            &mut tx,
            &SYSTEM,
            Change {
                action: "plugin.outcome.denied",
                site: site.as_ref().map(|s| (s.id, s.path.as_str())),
                object_type: "person",
                object_id: person.to_string(),
                before: None,
                after: Some(after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok::<(), Error>(())
    };
    let report = move |e: Error| {
        tracing::error!(person, "could not audit a refused plugin outcome: {e:?}");
    };
    if backend == Backend::Postgres {
        if let Err(e) = write.await {
            report(e);
        }
    } else {
        tokio::spawn(async move {
            if let Err(e) = write.await {
                report(e);
            }
        });
    }
}
