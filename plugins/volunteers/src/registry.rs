//! The volunteer registry: registration (an active credit-bank account, a
//! minimum age, a guardian's consent record for minors, the kernel's
//! `volunteer` role granted through the kernel), training records, and a
//! volunteer's own view.

use crate::*;

/// The volunteer row of `person`, if registered.
pub(crate) fn volunteer(person: i64) -> Result<Option<Row>> {
    VOLUNTEERS.get(&[i(person)])
}

/// The volunteer with this number (404 otherwise).
pub(crate) fn by_number(number: &str) -> Result<Row> {
    VOLUNTEERS
        .select(vec![eq("number", t(number))], vec![], 1, None)?
        .rows
        .into_iter()
        .next()
        .ok_or_else(|| Error::not_found(format!("no volunteer {number}")))
}

pub(crate) fn thresholds() -> Result<Vec<i64>> {
    let s = setting_text("tier_hours")?;
    time::thresholds(&s)
        .ok_or_else(|| Error::internal(format!("setting tier_hours {s:?} is not ascending hours")))
}

/// A volunteer as shown to themselves and coordinators: never an ID number.
pub(crate) fn volunteer_json(r: &Row) -> Result<serde_json::Value> {
    let minutes = int(r, "minutes");
    Ok(json!({
        "person_id": int(r, "person_id"),
        "number": text(r, "number"),
        "name": text(r, "name"),
        "site": text(r, "site"),
        "skills": text(r, "skills"),
        "languages": text(r, "languages"),
        "availability": text(r, "availability"),
        "service_area": text(r, "service_area"),
        "minor": opt_text(r, "consent_document").is_some(),
        "registered_on": text(r, "registered_on"),
        "verified_hours": minutes as f64 / 60.0,
        "tier": time::tier(minutes, &thresholds()?),
        "conferred_tier": int(r, "conferred_tier"),
        "blocked_until": opt_text(r, "blocked_until"),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Consent {
    guardian_name: String,
    relation: String,
    /// The signed consent form's reference (where the paper or scan is kept).
    document: String,
    signed_on: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    /// A coordinator registering someone else; default the caller.
    #[serde(default)]
    person_id: Option<i64>,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    availability: String,
    #[serde(default)]
    service_area: String,
    #[serde(default)]
    guardian_consent: Option<Consent>,
}

/// Register the caller (or, for a coordinator, `person_id`) at the site.
pub(crate) fn register(req: &Request) -> Result<Response> {
    let caller = req.person()?;
    let site = site(req)?.to_string();
    let r: Registration = body(req)?;
    let person = match r.person_id {
        Some(p) if p != caller => {
            staff(req)?;
            p
        }
        _ => caller,
    };
    if volunteer(person)?.is_some() {
        return Err(Error::conflict(format!(
            "person {person} is already a registered volunteer"
        )));
    }
    let p = lifelong_sdk::identity::get(person)?;
    let account = lifelong_sdk::accounts::get_account(person)?;
    if account.status != "active" {
        return Err(Error::conflict(format!(
            "registering needs an active lifelong-learning account; person {person}'s is {}",
            account.status
        )));
    }
    let on = today();
    let age = time::age(&p.birth_date, &on)
        .ok_or_else(|| Error::internal("the person's birth date is unreadable"))?;
    if age < setting("min_age")? {
        return Err(invalid(format!(
            "volunteers register from age {}",
            setting("min_age")?
        )));
    }
    let consent = match (age < setting("adult_age")?, r.guardian_consent) {
        (true, None) => {
            return Err(invalid(
                "a minor registers only with a guardian's consent record: guardian_consent {guardian_name, relation, document, signed_on}",
            ))
        }
        (true, Some(c)) => {
            if c.guardian_name.trim().is_empty()
                || c.relation.trim().is_empty()
                || c.document.trim().is_empty()
            {
                return Err(invalid("guardian_name, relation and document are required"));
            }
            if time::parse_date(&c.signed_on).is_none() || c.signed_on > on {
                return Err(invalid("signed_on is a date, YYYY-MM-DD, not in the future"));
            }
            Some(c)
        }
        (false, _) => None,
    };
    for (field, v) in [("skills", &r.skills), ("languages", &r.languages)] {
        if v.len() > 20
            || v.iter()
                .any(|s| s.trim().is_empty() || s.chars().count() > 50)
        {
            return Err(invalid(format!(
                "{field}: at most 20 entries of 1-50 characters"
            )));
        }
    }
    // The kernel's role first: if the kernel refuses it, nothing was written.
    lifelong_sdk::identity::grant_role(person, "volunteer", &site)?;
    let number = format!(
        "{}{:08}",
        setting_text("number_prefix")?,
        next("volunteer")?
    );
    VOLUNTEERS.insert(&[
        ("person_id", i(person)),
        ("number", t(&number)),
        ("name", t(&p.name)),
        ("birth_date", t(&p.birth_date)),
        ("site", t(&site)),
        ("skills", t(&r.skills.join(","))),
        ("languages", t(&r.languages.join(","))),
        ("availability", t(&r.availability)),
        ("service_area", t(&r.service_area)),
        (
            "guardian_name",
            opt_t(consent.as_ref().map(|c| c.guardian_name.as_str())),
        ),
        (
            "guardian_relation",
            opt_t(consent.as_ref().map(|c| c.relation.as_str())),
        ),
        (
            "consent_document",
            opt_t(consent.as_ref().map(|c| c.document.as_str())),
        ),
        (
            "consent_on",
            opt_t(consent.as_ref().map(|c| c.signed_on.as_str())),
        ),
        ("registered_on", t(&on)),
        ("minutes", i(0)),
        ("conferred_tier", i(0)),
        ("blocked_until", Value::Null),
    ])?;
    let row = volunteer(person)?.ok_or_else(|| Error::internal("volunteer vanished"))?;
    Response::json(201, &volunteer_json(&row)?)
}

/// Volunteers registered at the site (coordinators).
pub(crate) fn list_volunteers(req: &Request) -> Result<Response> {
    staff(req)?;
    let rows = all(VOLUNTEERS, vec![eq("site", t(&req.site))], vec![])?;
    let items = rows
        .iter()
        .map(volunteer_json)
        .collect::<Result<Vec<_>>>()?;
    Response::json(200, &json!({ "items": items }))
}

/// One volunteer, to themselves or a coordinator where they registered.
pub(crate) fn volunteer_view(req: &Request) -> Result<Response> {
    let caller = req.person()?;
    let v = by_number(req.param("number"))?;
    if int(&v, "person_id") != caller && !is_staff(caller, text(&v, "site"))? {
        return Err(Error::forbidden(
            "only the volunteer and their coordinators see this",
        ));
    }
    let mut out = volunteer_json(&v)?;
    out["trainings"] = json!(trainings_of(int(&v, "person_id"))?);
    Response::json(200, &out)
}

fn trainings_of(person: i64) -> Result<Vec<serde_json::Value>> {
    Ok(all(TRAININGS, vec![eq("person_id", i(person))], vec![])?
        .iter()
        .map(|r| json!({"course": text(r, "course"), "on_date": text(r, "on_date"), "valid_until": text(r, "valid_until"), "site": text(r, "site")}))
        .collect())
}

/// Does `person` hold a training in `course` valid on `on`?
pub(crate) fn trained(person: i64, course: &str, on: &str) -> Result<bool> {
    Ok(all(TRAININGS, vec![eq("person_id", i(person))], vec![])?
        .iter()
        .any(|r| {
            text(r, "course") == course && text(r, "on_date") <= on && text(r, "valid_until") >= on
        }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTraining {
    course: String,
    on_date: String,
    valid_until: String,
}

/// Record a training a volunteer completed (coordinators at the site).
pub(crate) fn add_training(req: &Request) -> Result<Response> {
    staff(req)?;
    let v = by_number(req.param("number"))?;
    let n: NewTraining = req.json()?;
    if n.course.trim().is_empty() {
        return Err(invalid("course is required"));
    }
    if time::parse_date(&n.on_date).is_none() || time::parse_date(&n.valid_until).is_none() {
        return Err(invalid("on_date and valid_until are dates, YYYY-MM-DD"));
    }
    if n.valid_until < n.on_date || n.on_date > today() {
        return Err(invalid(
            "a training is valid from its date, which is not in the future",
        ));
    }
    let row = TRAININGS.insert(&[
        ("person_id", i(int(&v, "person_id"))),
        ("course", t(n.course.trim())),
        ("on_date", t(&n.on_date)),
        ("valid_until", t(&n.valid_until)),
        ("site", t(&req.site)),
    ])?;
    Response::json(
        201,
        &json!({"id": int(&row, "id"), "course": n.course.trim()}),
    )
}

/// The caller's volunteer record, sign-ups, hours and proofs.
pub(crate) fn me(req: &Request) -> Result<Response> {
    let person = req.person()?;
    let v =
        volunteer(person)?.ok_or_else(|| Error::not_found("you are not a registered volunteer"))?;
    let mut out = volunteer_json(&v)?;
    out["trainings"] = json!(trainings_of(person)?);
    let mut signups = Vec::new();
    for st in [
        "applied",
        "confirmed",
        "attended",
        "no_show",
        "cancelled",
        "rejected",
    ] {
        for r in all(
            SIGNUPS,
            vec![eq("person_id", i(person)), eq("status", t(st))],
            vec![],
        )? {
            signups.push(signup_json(&r));
        }
    }
    out["signups"] = json!(signups);
    let mut hours = Vec::new();
    for st in ["pending", "verified", "rejected", "reversed"] {
        for r in all(
            HOURS,
            vec![eq("person_id", i(person)), eq("status", t(st))],
            vec![],
        )? {
            hours.push(hours_json(&r));
        }
    }
    out["hours"] = json!(hours);
    out["proofs"] = json!(all(PROOFS, vec![eq("person_id", i(person))], vec![])?
        .iter()
        .map(|r| text(r, "number").to_string())
        .collect::<Vec<_>>());
    Response::json(200, &out)
}
