//! Hours: each activity counts in one category only. Course completions
//! are recorded as verified by the provider; hours earned elsewhere (a
//! conference, a distance course, a certificate) are submitted with
//! evidence and verified by the enterprise's HR or the provider named —
//! never by the person themself. Verification records one
//! `continuing_education` outcome in the credit bank through the kernel's
//! recognition rules, exactly once per activity (its idempotency key); a
//! reversal with a reason is the only correction, and reverses the ledger
//! entry too. Hours in a closed year are not added or changed.

use crate::*;

const KINDS: &[&str] = &[
    "conference",
    "distance",
    "certificate",
    "practice",
    "seminar",
    "other",
];

fn idempotency_key(id: i64) -> String {
    format!("worker-education/activity/{id}")
}

fn activity(id: i64) -> Result<Row> {
    ACTIVITIES
        .get(&[i(id)])?
        .ok_or_else(|| Error::not_found(format!("no activity {id}")))
}

pub(crate) fn activity_json(a: &Row) -> serde_json::Value {
    json!({
        "id": int(a, "id"),
        "person_id": int(a, "person_id"),
        "enterprise": text(a, "enterprise"),
        "site": text(a, "site"),
        "title": text(a, "title"),
        "category": text(a, "category"),
        "kind": text(a, "kind"),
        "hours": int(a, "hours"),
        "on_date": text(a, "on_date"),
        "evidence": text(a, "evidence"),
        "program_id": opt_int(a, "program_id"),
        "status": text(a, "status"),
        "verified_by": opt_int(a, "verified_by"),
        "credits": column(a, "credits").and_then(|v| match v { Value::Real(r) => Some(*r), _ => None }),
        "reason": opt_text(a, "reason"),
    })
}

pub(crate) fn not_closed(year: i64) -> Result<()> {
    if CLOSURES.get(&[i(year)])?.is_some() {
        Err(Error::conflict(format!(
            "{year} is closed; its hours are no longer added or changed"
        )))
    } else {
        Ok(())
    }
}

/// Record the outcome in the credit bank and mark the activity verified.
fn record(a: &Row, verifier: i64, site: &str) -> Result<Row> {
    let id = int(a, "id");
    let rule = setting_text("credit_rule")?;
    let recorded = lifelong_sdk::accounts::record_outcome(&lifelong_sdk::accounts::Outcome {
        person_id: int(a, "person_id"),
        kind: "continuing_education".into(),
        title: text(a, "title").chars().take(200).collect(),
        quantity: int(a, "hours") as f64,
        occurred_on: text(a, "on_date").to_string(),
        source_site: site.to_string(),
        issuer: Some(site.to_string()),
        reference: Some(format!("activity-{id}")),
        evidence: Some(text(a, "evidence").chars().take(500).collect()),
        rule: (!rule.is_empty()).then_some(rule),
        idempotency_key: idempotency_key(id),
    })?;
    ACTIVITIES.update(
        &[i(id)],
        &[
            ("status", t("verified")),
            ("verified_by", i(verifier)),
            ("verified_on", t(&today())),
            ("entry_id", i(recorded.entry_id)),
            ("credits", Value::Real(recorded.credits)),
        ],
    )?;
    activity(id)
}

/// The date a course's hours count on: its last day, or today if it is
/// completed early.
pub(crate) fn course_date(p: &Row) -> String {
    if text(p, "ends_on") <= today().as_str() {
        text(p, "ends_on").to_string()
    } else {
        today()
    }
}

/// A completed course's hours, verified by the provider as it records them.
pub(crate) fn record_course(
    p: &Row,
    person: i64,
    hours: i64,
    verifier: i64,
    site: &str,
) -> Result<serde_json::Value> {
    let on = course_date(p);
    let year: i64 = on[..4].parse().unwrap_or(0);
    not_closed(year)?;
    let staff = STAFF
        .get(&[i(person)])?
        .ok_or_else(|| Error::conflict(format!("person {person} is not registered staff")))?;
    let a = ACTIVITIES.insert(&[
        (
            "source_key",
            t(&format!("program/{}/{person}", int(p, "id"))),
        ),
        ("person_id", i(person)),
        ("enterprise", t(text(&staff, "enterprise"))),
        ("site", t(site)),
        ("title", t(text(p, "title"))),
        ("category", t(text(p, "category"))),
        ("kind", t("course")),
        ("hours", i(hours)),
        ("on_date", t(&on)),
        ("year", i(year)),
        ("evidence", t(&format!("program {}", int(p, "id")))),
        ("program_id", i(int(p, "id"))),
        ("status", t("pending")),
        ("submitted_by", i(verifier)),
    ])?;
    Ok(activity_json(&record(&a, verifier, site)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    /// The person whose hours they are (default: the caller).
    #[serde(default)]
    person_id: Option<i64>,
    title: String,
    /// One category: an activity's hours count in one category only.
    category: String,
    kind: String,
    hours: i64,
    on_date: String,
    evidence: String,
}

/// Hours earned elsewhere, submitted at the site that will verify them
/// (the person's enterprise or a provider), by the person or their HR.
pub(crate) fn submit(req: &Request) -> Result<Response> {
    let caller = req.person()?;
    let at = site(req)?.to_string();
    let s: Submission = req.json()?;
    let person = s.person_id.unwrap_or(caller);
    let staff = STAFF
        .get(&[i(person)])?
        .ok_or_else(|| Error::conflict(format!("person {person} is not registered staff")))?;
    if person != caller {
        staff_at(req, text(&staff, "enterprise"))?;
    }
    let verifying = lifelong_sdk::sites::get(&at)?;
    if at != text(&staff, "enterprise") && !PROVIDER_KINDS.contains(&verifying.kind.as_str()) {
        return Err(invalid(format!(
            "hours are submitted at the person's enterprise or at a provider, not at {at}"
        )));
    }
    let title = s.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(invalid("title is 1-200 characters"));
    }
    check_category(&s.category)?;
    if !KINDS.contains(&s.kind.as_str()) {
        return Err(invalid(format!("kind must be one of {}", KINDS.join(", "))));
    }
    let max = setting("max_activity_hours")?;
    if !(1..=max).contains(&s.hours) {
        return Err(invalid(format!("hours are 1 to {max}")));
    }
    let on = date("on_date", &s.on_date)?;
    if on > today() {
        return Err(invalid("on_date is in the future"));
    }
    let evidence = s.evidence.trim();
    if evidence.is_empty() || evidence.chars().count() > 500 {
        return Err(invalid(
            "evidence is 1-500 characters (a certificate number, a link, …)",
        ));
    }
    let year: i64 = on[..4].parse().unwrap_or(0);
    not_closed(year)?;
    let serial = ACTIVITIES.aggregate(&[eq("person_id", i(person))], &[], None)?;
    let n = serial.first().map_or(0, |g| g.count);
    let a = ACTIVITIES.insert(&[
        (
            "source_key",
            t(&format!(
                "submitted/{person}/{n}/{}",
                lifelong_sdk::clock::now_micros()
            )),
        ),
        ("person_id", i(person)),
        ("enterprise", t(text(&staff, "enterprise"))),
        ("site", t(&at)),
        ("title", t(title)),
        ("category", t(&s.category)),
        ("kind", t(&s.kind)),
        ("hours", i(s.hours)),
        ("on_date", t(&on)),
        ("year", i(year)),
        ("evidence", t(evidence)),
        ("program_id", Value::Null),
        ("status", t("pending")),
        ("submitted_by", i(caller)),
    ])?;
    Response::json(201, &activity_json(&a))
}

/// Activities to verify at the site (`?status=pending` by default), or a
/// person's own (`?mine=true`).
pub(crate) fn list(req: &Request) -> Result<Response> {
    let me = req.person()?;
    let rows = if query(req, "mine") == Some("true") {
        all(ACTIVITIES, vec![eq("person_id", i(me))], vec![])?
    } else {
        admin(req)?;
        let status = query(req, "status").unwrap_or("pending");
        all(
            ACTIVITIES,
            vec![eq("site", t(site(req)?)), eq("status", t(status))],
            vec![],
        )?
    };
    let items: Vec<_> = rows.iter().map(activity_json).collect();
    Response::json(200, &json!({ "items": items }))
}

/// The verifier: an admin of the site the hours were submitted at, or of
/// the person's enterprise; never the person.
fn verifier(req: &Request, a: &Row) -> Result<i64> {
    let me = req.person()?;
    if me == int(a, "person_id") {
        return Err(Error::forbidden(
            "hours are verified by the enterprise HR or the provider, never by the person themself",
        ));
    }
    if is_staff(me, text(a, "site"))? || is_staff(me, text(a, "enterprise"))? {
        Ok(me)
    } else {
        Err(Error::forbidden(format!(
            "this needs the site_admin role at {} or {}",
            text(a, "site"),
            text(a, "enterprise")
        )))
    }
}

/// Verify pending hours: one outcome in the credit bank. Verifying again
/// answers the same activity and records nothing more.
pub(crate) fn verify(req: &Request) -> Result<Response> {
    let a = activity(req.param_i64("id")?)?;
    let by = verifier(req, &a)?;
    match text(&a, "status") {
        "verified" => {
            let mut out = activity_json(&a);
            out["replayed"] = json!(true);
            return Response::json(200, &out);
        }
        "pending" => {}
        other => {
            return Err(Error::conflict(format!(
                "activity {} is {other}",
                int(&a, "id")
            )))
        }
    }
    not_closed(int(&a, "year"))?;
    let done = record(&a, by, &req.site)?;
    let mut out = activity_json(&done);
    out["replayed"] = json!(false);
    Response::json(200, &out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

fn reason(req: &Request) -> Result<String> {
    let r: Reason = req.json()?;
    let reason = r.reason.trim();
    if reason.is_empty() || reason.chars().count() > 300 {
        return Err(invalid("reason is 1-300 characters"));
    }
    Ok(reason.to_string())
}

/// Refuse pending hours (they never count).
pub(crate) fn reject(req: &Request) -> Result<Response> {
    let a = activity(req.param_i64("id")?)?;
    verifier(req, &a)?;
    let reason = reason(req)?;
    if text(&a, "status") != "pending" {
        return Err(Error::conflict(format!(
            "activity {} is {}",
            int(&a, "id"),
            text(&a, "status")
        )));
    }
    ACTIVITIES.update(
        &[i(int(&a, "id"))],
        &[("status", t("rejected")), ("reason", t(&reason))],
    )?;
    Response::json(200, &activity_json(&activity(int(&a, "id"))?))
}

/// Reverse verified hours with a reason: the ledger entry is reversed in
/// the same call and the hours stop counting.
pub(crate) fn reverse(req: &Request) -> Result<Response> {
    let a = activity(req.param_i64("id")?)?;
    verifier(req, &a)?;
    let reason = reason(req)?;
    if text(&a, "status") != "verified" {
        return Err(Error::conflict(format!(
            "only verified hours are reversed; activity {} is {}",
            int(&a, "id"),
            text(&a, "status")
        )));
    }
    not_closed(int(&a, "year"))?;
    let r = lifelong_sdk::accounts::reverse_outcome(&idempotency_key(int(&a, "id")), &reason)?;
    ACTIVITIES.update(
        &[i(int(&a, "id"))],
        &[
            ("status", t("reversed")),
            ("reason", t(&reason)),
            ("reversed_on", t(&today())),
        ],
    )?;
    let mut out = activity_json(&activity(int(&a, "id"))?);
    out["reversal_entry_id"] = json!(r.entry_id);
    Response::json(200, &out)
}
