//! Service hours: logged at check-out or as walk-in hours against a
//! flexible need; counted only once a coordinator at the organising site,
//! who is not the volunteer, verifies them ("whoever records, certifies").
//! Verifying records one `volunteer_service` outcome in the volunteer's
//! account in the same call; a reversal with a reason is the only
//! correction, and reverses the ledger entry too.

use crate::*;
use lifelong_sdk::tables::{cmp, Op};

pub(crate) fn hours_json(r: &Row) -> serde_json::Value {
    json!({
        "id": int(r, "id"),
        "person_id": int(r, "person_id"),
        "need_id": int(r, "need_id"),
        "signup_id": opt_int(r, "signup_id"),
        "site": text(r, "site"),
        "content": text(r, "content"),
        "check_in": time::fmt_at(int(r, "check_in")),
        "check_out": time::fmt_at(int(r, "check_out")),
        "minutes": int(r, "minutes"),
        "status": text(r, "status"),
        "verified_by": opt_int(r, "verified_by"),
        "verified_on": opt_text(r, "verified_on"),
        "entry_id": opt_int(r, "entry_id"),
        "reason": opt_text(r, "reason"),
    })
}

/// Log `minutes` (default the whole interval, never more) served by
/// `person` for `need` between `check_in` and `check_out`, pending.
pub(crate) fn insert_hours(
    person: i64,
    need: &Row,
    signup: Option<i64>,
    check_in: i64,
    check_out: i64,
    minutes: Option<i64>,
    recorded_by: i64,
) -> Result<Row> {
    let interval = check_out - check_in;
    if interval <= 0 {
        return Err(invalid("check-out is after check-in"));
    }
    if interval > 24 * 60 {
        return Err(invalid(
            "one entry covers at most 24 hours; log longer service as several",
        ));
    }
    let minutes = minutes.unwrap_or(interval);
    if minutes <= 0 || minutes > interval {
        return Err(invalid(format!(
            "completed minutes are 1 to {interval}, the checked interval ({} to {})",
            time::fmt_at(check_in),
            time::fmt_at(check_out)
        )));
    }
    HOURS.insert(&[
        ("person_id", i(person)),
        ("need_id", i(int(need, "id"))),
        ("signup_id", signup.map_or(Value::Null, i)),
        ("site", t(text(need, "site"))),
        (
            "content",
            t(&format!("{}：{}", text(need, "role"), text(need, "title"))),
        ),
        ("check_in", i(check_in)),
        ("check_out", i(check_out)),
        ("minutes", i(minutes)),
        ("status", t("pending")),
        ("month", t(&time::month_at(check_in))),
        ("recorded_by", i(recorded_by)),
        ("verified_by", Value::Null),
        ("verified_on", Value::Null),
        ("entry_id", Value::Null),
        ("reason", Value::Null),
    ])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WalkIn {
    #[serde(default)]
    person_id: Option<i64>,
    check_in: String,
    check_out: String,
    #[serde(default)]
    minutes: Option<i64>,
}

/// Walk-in hours against a flexible need, by the volunteer or a coordinator.
pub(crate) fn walk_in(req: &Request) -> Result<Response> {
    let caller = req.person()?;
    let n = need_here(req, req.param_i64("id")?)?;
    let w: WalkIn = req.json()?;
    let person = match w.person_id {
        Some(p) if p != caller => {
            staff(req)?;
            p
        }
        _ => caller,
    };
    if !flag(&n, "flexible") {
        return Err(Error::conflict(
            "walk-in hours are logged against a flexible need; sign up for a shift",
        ));
    }
    let ci = time::parse_at(&w.check_in).ok_or_else(|| invalid("check_in is YYYY-MM-DDTHH:MM"))?;
    let co =
        time::parse_at(&w.check_out).ok_or_else(|| invalid("check_out is YYYY-MM-DDTHH:MM"))?;
    if ci < int(&n, "starts_at") || co > int(&n, "ends_at") {
        return Err(invalid(format!(
            "hours fall inside the need's window, {} to {}",
            time::fmt_at(int(&n, "starts_at")),
            time::fmt_at(int(&n, "ends_at"))
        )));
    }
    if co > now_minutes()? {
        return Err(invalid("check_out is not in the future"));
    }
    signups::check_requirements(person, &n, &time::date_at(ci))?;
    let h = insert_hours(person, &n, None, ci, co, w.minutes, caller)?;
    Response::json(201, &hours_json(&h))
}

/// Hours at the site in a state (default pending), for coordinators.
pub(crate) fn pending_hours(req: &Request) -> Result<Response> {
    staff(req)?;
    let status = query(req, "status").unwrap_or("pending");
    let rows = all(
        HOURS,
        vec![eq("site", t(&req.site)), eq("status", t(status))],
        vec![],
    )?;
    Response::json(
        200,
        &json!({"items": rows.iter().map(hours_json).collect::<Vec<_>>()}),
    )
}

/// The hours entry `id`, organised at the request's site.
fn hours_here(req: &Request, id: i64) -> Result<Row> {
    let r = HOURS
        .get(&[i(id)])?
        .ok_or_else(|| Error::not_found(format!("no hours entry {id}")))?;
    if text(&r, "site") == site(req)? {
        Ok(r)
    } else {
        Err(Error::not_found(format!(
            "no hours entry {id} at this site"
        )))
    }
}

fn idempotency_key(id: i64) -> String {
    format!("volunteers/hours/{id}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Verify {
    /// Fewer minutes than logged, if the coordinator corrects them down.
    #[serde(default)]
    minutes: Option<i64>,
}

/// A coordinator at the organising site verifies hours: never their own,
/// never more than the checked interval, never overlapping the person's
/// other verified hours. Records the outcome, then the tables.
pub(crate) fn verify(req: &Request) -> Result<Response> {
    let verifier = staff(req)?;
    let id = req.param_i64("id")?;
    let h = hours_here(req, id)?;
    let person = int(&h, "person_id");
    if verifier == person {
        return Err(Error::forbidden(
            "a volunteer's hours are verified by someone else, never by themselves",
        ));
    }
    if text(&h, "status") != "pending" {
        return Err(Error::conflict(format!(
            "hours entry {id} is {}",
            text(&h, "status")
        )));
    }
    let v: Verify = body(req)?;
    let (ci, co) = (int(&h, "check_in"), int(&h, "check_out"));
    let minutes = v.minutes.unwrap_or(int(&h, "minutes"));
    if minutes <= 0 || minutes > co - ci {
        return Err(invalid(format!(
            "completed minutes are 1 to {}, the checked interval",
            co - ci
        )));
    }
    let overlapping = all(
        HOURS,
        vec![
            eq("person_id", i(person)),
            eq("status", t("verified")),
            cmp("check_in", Op::Lt, i(co)),
        ],
        vec![],
    )?;
    if let Some(o) = overlapping.iter().find(|o| int(o, "check_out") > ci) {
        return Err(Error::conflict(format!(
            "these hours overlap verified hours entry {} ({} to {})",
            int(o, "id"),
            time::fmt_at(int(o, "check_in")),
            time::fmt_at(int(o, "check_out"))
        )));
    }
    let rule = setting_text("credit_rule")?;
    let recorded = lifelong_sdk::accounts::record_outcome(&lifelong_sdk::accounts::Outcome {
        person_id: person,
        kind: "volunteer_service".into(),
        title: text(&h, "content").chars().take(200).collect(),
        // The ledger keeps three decimals.
        quantity: (minutes as f64 / 60.0 * 1000.0).round() / 1000.0,
        occurred_on: time::date_at(ci),
        source_site: req.site.clone(),
        issuer: Some(req.site.clone()),
        reference: Some(format!("hours-{id}")),
        evidence: None,
        rule: (!rule.is_empty()).then_some(rule),
        idempotency_key: idempotency_key(id),
    })?;
    HOURS.update(
        &[i(id)],
        &[
            ("status", t("verified")),
            ("minutes", i(minutes)),
            ("verified_by", i(verifier)),
            ("verified_on", t(&today())),
            ("entry_id", i(recorded.entry_id)),
        ],
    )?;
    VOLUNTEERS.update_where(&[eq("person_id", i(person))], &[add("minutes", minutes)])?;
    let mut out = hours_json(&HOURS.get(&[i(id)])?.unwrap_or_default());
    out["credits"] = json!(recorded.credits);
    Response::json(200, &out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

/// A coordinator refuses pending hours (they never count).
pub(crate) fn reject_hours(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    let h = hours_here(req, id)?;
    let r: Reason = req.json()?;
    if r.reason.trim().is_empty() {
        return Err(invalid("reason is required"));
    }
    if text(&h, "status") != "pending" {
        return Err(Error::conflict(format!(
            "hours entry {id} is {}",
            text(&h, "status")
        )));
    }
    HOURS.update(
        &[i(id)],
        &[("status", t("rejected")), ("reason", t(r.reason.trim()))],
    )?;
    Response::json(200, &hours_json(&HOURS.get(&[i(id)])?.unwrap_or_default()))
}

/// Reverse verified hours, with a reason: the ledger entry is reversed in
/// the same call, the volunteer's hours and tier drop, and a conferred tier
/// above the new one follows it down.
pub(crate) fn reverse(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    let h = hours_here(req, id)?;
    let r: Reason = req.json()?;
    let reason = r.reason.trim();
    if reason.is_empty() || reason.chars().count() > 300 {
        return Err(invalid("reason is 1-300 characters"));
    }
    if text(&h, "status") != "verified" {
        return Err(Error::conflict(format!(
            "only verified hours are reversed; entry {id} is {}",
            text(&h, "status")
        )));
    }
    let reversal = lifelong_sdk::accounts::reverse_outcome(&idempotency_key(id), reason)?;
    let person = int(&h, "person_id");
    HOURS.update(
        &[i(id)],
        &[
            ("status", t("reversed")),
            ("reason", t(reason)),
            ("reversed_on", t(&today())),
        ],
    )?;
    VOLUNTEERS.update_where(
        &[eq("person_id", i(person))],
        &[add("minutes", -int(&h, "minutes"))],
    )?;
    let v = registry::volunteer(person)?.ok_or_else(|| Error::internal("volunteer vanished"))?;
    let tier = time::tier(int(&v, "minutes"), &registry::thresholds()?);
    if int(&v, "conferred_tier") > tier {
        VOLUNTEERS.update(&[i(person)], &[("conferred_tier", i(tier))])?;
    }
    let mut out = hours_json(&HOURS.get(&[i(id)])?.unwrap_or_default());
    out["reversal_entry_id"] = json!(reversal.entry_id);
    out["tier"] = json!(tier);
    Response::json(200, &out)
}
