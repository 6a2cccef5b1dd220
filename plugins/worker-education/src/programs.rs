//! Programs and courses at provider sites (teacher-training schools, the
//! open university, enterprise training centres): category, mode, hours,
//! dates, capacity and the demonstration flag; enrolment within capacity;
//! completion, which records each completer's hours as verified by the
//! provider.

use crate::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProgram {
    title: String,
    category: String,
    mode: String,
    hours: i64,
    starts_on: String,
    ends_on: String,
    capacity: i64,
    #[serde(default)]
    demonstration: bool,
}

pub(crate) fn program(id: i64) -> Result<Row> {
    PROGRAMS
        .get(&[i(id)])?
        .ok_or_else(|| Error::not_found(format!("no program {id}")))
}

pub(crate) fn program_json(p: &Row) -> serde_json::Value {
    json!({
        "id": int(p, "id"),
        "provider": text(p, "provider"),
        "title": text(p, "title"),
        "category": text(p, "category"),
        "mode": text(p, "mode"),
        "hours": int(p, "hours"),
        "starts_on": text(p, "starts_on"),
        "ends_on": text(p, "ends_on"),
        "capacity": int(p, "capacity"),
        "enrolled": int(p, "enrolled"),
        "demonstration": flag(p, "demonstration"),
        "status": text(p, "status"),
        "order_id": opt_int(p, "order_id"),
    })
}

/// Checks shared by programs and orders; returns the trimmed title.
pub(crate) fn check_course(
    title: &str,
    category: &str,
    mode: &str,
    hours: i64,
    starts_on: &str,
    ends_on: &str,
) -> Result<String> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(invalid("title is 1-200 characters"));
    }
    check_category(category)?;
    if !MODES.contains(&mode) {
        return Err(invalid(format!("mode must be one of {}", MODES.join(", "))));
    }
    let max = setting("max_activity_hours")?;
    if !(1..=max).contains(&hours) {
        return Err(invalid(format!("hours are 1 to {max}")));
    }
    let (s, e) = (date("starts_on", starts_on)?, date("ends_on", ends_on)?);
    if e < s {
        return Err(invalid("ends_on is before starts_on"));
    }
    Ok(title.to_string())
}

/// The provider's office creates a program at its site.
pub(crate) fn create(req: &Request) -> Result<Response> {
    admin(req)?;
    let n: NewProgram = req.json()?;
    let s = lifelong_sdk::sites::get(site(req)?)?;
    if !PROVIDER_KINDS.contains(&s.kind.as_str()) {
        return Err(invalid(format!(
            "{} is a {} site; programs are offered by {}",
            s.code,
            s.kind,
            PROVIDER_KINDS.join(", ")
        )));
    }
    let title = check_course(
        &n.title,
        &n.category,
        &n.mode,
        n.hours,
        &n.starts_on,
        &n.ends_on,
    )?;
    if !(1..=10_000).contains(&n.capacity) {
        return Err(invalid("capacity is 1 to 10000"));
    }
    let p = PROGRAMS.insert(&[
        ("provider", t(&s.code)),
        ("title", t(&title)),
        ("category", t(&n.category)),
        ("mode", t(&n.mode)),
        ("hours", i(n.hours)),
        ("starts_on", t(&n.starts_on)),
        ("ends_on", t(&n.ends_on)),
        ("capacity", i(n.capacity)),
        ("enrolled", i(0)),
        ("demonstration", b(n.demonstration)),
        ("status", t("open")),
        ("order_id", Value::Null),
    ])?;
    Response::json(201, &program_json(&p))
}

/// Programs offered in the site's subtree (`?demonstration=true` for
/// demonstration courses only).
pub(crate) fn list(req: &Request) -> Result<Response> {
    let only_demo = query(req, "demonstration") == Some("true");
    let mut items = Vec::new();
    for code in subtree(site(req)?)? {
        for p in all(PROGRAMS, vec![eq("provider", t(&code))], vec![])? {
            if !only_demo || flag(&p, "demonstration") {
                items.push(program_json(&p));
            }
        }
    }
    Response::json(200, &json!({ "items": items }))
}

pub(crate) fn view(req: &Request) -> Result<Response> {
    let p = program(req.param_i64("id")?)?;
    Response::json(200, &program_json(&p))
}

/// Take a seat for a registered staff member: never above capacity, once.
pub(crate) fn take_seat(p: &Row, person: i64) -> Result<Row> {
    let id = int(p, "id");
    if text(p, "status") != "open" {
        return Err(Error::conflict(format!(
            "program {id} is {}",
            text(p, "status")
        )));
    }
    if STAFF.get(&[i(person)])?.is_none() {
        return Err(Error::conflict(format!(
            "person {person} is not registered as staff of an enterprise"
        )));
    }
    if !ENROLMENTS
        .select(
            vec![eq("program_id", i(id)), eq("person_id", i(person))],
            vec![],
            1,
            None,
        )?
        .rows
        .is_empty()
    {
        return Err(Error::conflict(format!(
            "person {person} is already enrolled in program {id}"
        )));
    }
    let taken = PROGRAMS.update_where(
        &[
            eq("id", i(id)),
            lifelong_sdk::tables::cmp_columns("enrolled", lifelong_sdk::tables::Op::Lt, "capacity"),
        ],
        &[add("enrolled", 1)],
    )?;
    if taken == 0 {
        return Err(Error::conflict(format!(
            "program {id} is full ({} places)",
            int(p, "capacity")
        )));
    }
    ENROLMENTS.insert(&[
        ("program_id", i(id)),
        ("person_id", i(person)),
        ("status", t("enrolled")),
        ("on_date", t(&today())),
    ])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enrol {
    #[serde(default)]
    person_id: Option<i64>,
}

/// A staff member enrols (or their enterprise's HR enrols them) in an open
/// program that is not an order's.
pub(crate) fn enrol(req: &Request) -> Result<Response> {
    let caller = req.person()?;
    let p = program(req.param_i64("id")?)?;
    if opt_int(&p, "order_id").is_some() {
        return Err(Error::conflict(
            "an ordered course's roster comes from the ordering enterprise (POST /orders/{id}/roster)",
        ));
    }
    let e: Enrol = body(req)?;
    let person = e.person_id.unwrap_or(caller);
    if person != caller {
        let s = STAFF
            .get(&[i(person)])?
            .ok_or_else(|| Error::not_found(format!("person {person} is not registered staff")))?;
        staff_at(req, text(&s, "enterprise"))?;
    }
    let row = take_seat(&p, person)?;
    Response::json(
        201,
        &json!({"id": int(&row, "id"), "program_id": int(&p, "id"), "person_id": person, "status": "enrolled"}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Complete {
    /// Who completed (default: every enrolled person).
    #[serde(default)]
    person_ids: Option<Vec<i64>>,
    /// Hours attended, if fewer than the program's (default: all).
    #[serde(default)]
    hours: Option<i64>,
}

/// Mark enrolments completed and record their hours, verified by the
/// caller for the provider. Returns the activities recorded.
pub(crate) fn complete_enrolments(
    p: &Row,
    only: Option<&[i64]>,
    hours: Option<i64>,
    verifier: i64,
    site: &str,
) -> Result<Vec<serde_json::Value>> {
    let id = int(p, "id");
    let hours = hours.unwrap_or(int(p, "hours"));
    if !(1..=int(p, "hours")).contains(&hours) {
        return Err(invalid(format!(
            "hours attended are 1 to the program's {}",
            int(p, "hours")
        )));
    }
    let enrolled = all(ENROLMENTS, vec![eq("program_id", i(id))], vec![])?;
    if let Some(only) = only {
        if let Some(x) = only
            .iter()
            .find(|x| !enrolled.iter().any(|e| int(e, "person_id") == **x))
        {
            return Err(invalid(format!(
                "person {x} is not enrolled in program {id}"
            )));
        }
        if only.contains(&verifier) {
            return Err(Error::forbidden(
                "hours are verified by someone else, never by the person themself",
            ));
        }
    }
    // Everything that could refuse is checked before the first write: a
    // refusal is a 4xx, and a 4xx commits what was written before it.
    let on = hours::course_date(p);
    hours::not_closed(on[..4].parse().unwrap_or(0))?;
    let todo: Vec<&Row> = enrolled
        .iter()
        .filter(|e| {
            let person = int(e, "person_id");
            text(e, "status") == "enrolled"
                && person != verifier
                && only.is_none_or(|o| o.contains(&person))
        })
        .collect();
    let unseen: Vec<String> = todo
        .iter()
        .map(|e| int(e, "person_id"))
        .filter(|person| lifelong_sdk::identity::get(*person).is_err())
        .map(|person| person.to_string())
        .collect();
    if !unseen.is_empty() {
        return Err(Error::conflict(format!(
            "persons {} live outside the area {site} serves, so their hours cannot be recorded here; nothing was completed",
            unseen.join(", ")
        )));
    }
    let mut out = Vec::new();
    for e in todo {
        let person = int(e, "person_id");
        ENROLMENTS.update(&[i(int(e, "id"))], &[("status", t("completed"))])?;
        out.push(hours::record_course(p, person, hours, verifier, site)?);
    }
    Ok(out)
}

/// The provider's office records completion of its program.
pub(crate) fn complete(req: &Request) -> Result<Response> {
    let p = program(req.param_i64("id")?)?;
    let verifier = staff_at(req, text(&p, "provider"))?;
    if opt_int(&p, "order_id").is_some() {
        return Err(Error::conflict(
            "an ordered course is completed with its order (POST /orders/{id}/complete)",
        ));
    }
    let c: Complete = body(req)?;
    let recorded = complete_enrolments(
        &p,
        c.person_ids.as_deref(),
        c.hours,
        verifier,
        text(&p, "provider"),
    )?;
    Response::json(
        200,
        &json!({"program": program_json(&p), "activities": recorded}),
    )
}
