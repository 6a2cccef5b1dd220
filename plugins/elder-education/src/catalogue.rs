//! Terms, the course catalogue, a site's brand designation and the
//! "smart help for the elderly" scenarios.

use crate::*;

// ------------------------------------------------------------------ courses

/// The course `id` at the request's site (404 elsewhere).
pub(crate) fn course(req: &Request, id: i64) -> Result<Row> {
    let row = COURSES
        .get(&[i(id)])?
        .filter(|r| text(r, "site") == req.site)
        .ok_or_else(|| Error::not_found(format!("no course {id} at this site")))?;
    Ok(row)
}

pub(crate) fn course_json(r: &Row) -> serde_json::Value {
    json!({
        "id": int(r, "id"),
        "site": text(r, "site"),
        "term_id": int(r, "term_id"),
        "title": text(r, "title"),
        "category": text(r, "category"),
        "description": text(r, "description"),
        "schedule": text(r, "schedule"),
        "venue": text(r, "venue"),
        "capacity": int(r, "capacity"),
        "taken": int(r, "taken"),
        "fee_cents": int(r, "fee_cents"),
        "sessions": int(r, "sessions"),
        "hours": real(r, "hours"),
        "teacher_id": opt_int(r, "teacher_id"),
        "mode": text(r, "mode"),
        "returning_percent": int(r, "returning_percent"),
        "status": text(r, "status"),
        "brand": opt_text(r, "brand"),
        "wants_assistants": flag(r, "wants_assistants"),
        "lottery_seed": opt_text(r, "lottery_seed"),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTerm {
    code: String,
    name: String,
    starts_on: String,
    ends_on: String,
}

pub(crate) fn create_term(req: &Request) -> Result<Response> {
    staff(req)?;
    let n: NewTerm = req.json()?;
    if dates::parse(&n.starts_on).is_none() || dates::parse(&n.ends_on).is_none() {
        return Err(invalid("starts_on and ends_on are dates, YYYY-MM-DD"));
    }
    if n.ends_on < n.starts_on {
        return Err(invalid("a term cannot end before it starts"));
    }
    if n.code.trim().is_empty() || n.name.trim().is_empty() {
        return Err(invalid("code and name are required"));
    }
    let row = TERMS.insert(&[
        ("site", t(&req.site)),
        ("code", t(&n.code)),
        ("name", t(&n.name)),
        ("starts_on", t(&n.starts_on)),
        ("ends_on", t(&n.ends_on)),
    ])?;
    Response::json(201, &json!({ "id": int(&row, "id"), "code": n.code }))
}

pub(crate) fn list_terms(req: &Request) -> Result<Response> {
    let rows = all(TERMS, vec![eq("site", t(site(req)?))], vec![asc("code")])?;
    let items: Vec<_> = rows
        .iter()
        .map(|r| json!({"id": int(r, "id"), "code": text(r, "code"), "name": text(r, "name"), "starts_on": text(r, "starts_on"), "ends_on": text(r, "ends_on")}))
        .collect();
    Response::json(200, &json!({ "items": items }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCourse {
    term_id: i64,
    title: String,
    category: String,
    #[serde(default)]
    description: String,
    schedule: String,
    venue: String,
    capacity: i64,
    #[serde(default)]
    fee_cents: i64,
    sessions: i64,
    hours: f64,
    /// "fifo" (default) or "lottery".
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    returning_percent: i64,
    #[serde(default)]
    brand: Option<String>,
    #[serde(default)]
    wants_assistants: bool,
}

pub(crate) fn create_course(req: &Request) -> Result<Response> {
    staff(req)?;
    let n: NewCourse = req.json()?;
    TERMS
        .get(&[i(n.term_id)])?
        .filter(|r| text(r, "site") == req.site)
        .ok_or_else(|| invalid(format!("term {} is not a term of this site", n.term_id)))?;
    if !CATEGORIES.contains(&n.category.as_str()) {
        return Err(invalid(format!(
            "category must be one of {}",
            CATEGORIES.join(", ")
        )));
    }
    if n.title.trim().is_empty() {
        return Err(invalid("title is required"));
    }
    if n.capacity < 1 || n.sessions < 1 || n.hours <= 0.0 || n.fee_cents < 0 {
        return Err(invalid(
            "capacity, sessions and hours must be positive, fee_cents not negative",
        ));
    }
    if !(0..=100).contains(&n.returning_percent) {
        return Err(invalid("returning_percent is 0 to 100"));
    }
    let mode = n.mode.unwrap_or_else(|| "fifo".into());
    let status = match mode.as_str() {
        "fifo" => "open",
        "lottery" => "applying",
        _ => return Err(invalid("mode is fifo or lottery")),
    };
    let row = COURSES.insert(&[
        ("site", t(&req.site)),
        ("term_id", i(n.term_id)),
        ("title", t(&n.title)),
        ("category", t(&n.category)),
        ("description", t(&n.description)),
        ("schedule", t(&n.schedule)),
        ("venue", t(&n.venue)),
        ("capacity", i(n.capacity)),
        ("taken", i(0)),
        ("fee_cents", i(n.fee_cents)),
        ("sessions", i(n.sessions)),
        ("hours", Value::Real(n.hours)),
        ("mode", t(&mode)),
        ("returning_percent", i(n.returning_percent)),
        ("status", t(status)),
        ("brand", n.brand.as_deref().map_or(Value::Null, t)),
        ("wants_assistants", Value::Boolean(n.wants_assistants)),
    ])?;
    if n.wants_assistants {
        // For the volunteer module: this course wants teaching assistants.
        publish(
            "assistants-wanted",
            &json!({ "course_id": int(&row, "id"), "site": req.site, "title": n.title, "schedule": n.schedule }),
        )?;
    }
    Response::json(201, &course_json(&row))
}

pub(crate) fn list_courses(req: &Request) -> Result<Response> {
    let site = site(req)?;
    let param = |name: &str| {
        req.query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .map(str::to_string)
    };
    let mut conds = vec![eq("site", t(site))];
    if let Some(term) = param("term") {
        let term: i64 = term
            .parse()
            .map_err(|_| Error::bad_request("term must be an integer"))?;
        conds.push(eq("term_id", i(term)));
    } else if let Some(cat) = param("category") {
        conds.push(eq("category", t(&cat)));
    }
    let rows = all(COURSES, conds, vec![])?;
    let items: Vec<_> = rows.iter().map(course_json).collect();
    Response::json(200, &json!({ "items": items }))
}

// ------------------------------------------------------------ designations

/// The brand designations the plan names.
pub const DESIGNATION_KINDS: &[&str] = &["one_school_one_brand", "one_point_one_feature"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Designation {
    kind: String,
    name: String,
    /// Held since, if before today (recording an existing designation).
    #[serde(default)]
    since: Option<String>,
}

/// Give the request's site its brand designation (replacing an earlier one).
pub(crate) fn designate(req: &Request) -> Result<Response> {
    staff(req)?;
    let d: Designation = req.json()?;
    if !DESIGNATION_KINDS.contains(&d.kind.as_str()) {
        return Err(invalid(format!(
            "kind is one of {}",
            DESIGNATION_KINDS.join(", ")
        )));
    }
    if d.name.trim().is_empty() {
        return Err(invalid("name is required"));
    }
    let key = [t(&req.site)];
    let row = [
        ("kind", t(&d.kind)),
        ("name", t(&d.name)),
        ("since", t(&started_on("since", d.since)?)),
    ];
    if !DESIGNATIONS.update(&key, &row)? {
        DESIGNATIONS.insert(&[&[("site", t(&req.site))][..], &row[..]].concat())?;
    }
    Response::json(
        200,
        &json!({ "site": req.site, "kind": d.kind, "name": d.name }),
    )
}

pub(crate) fn designation(req: &Request) -> Result<Response> {
    let r = DESIGNATIONS
        .get(&[t(site(req)?)])?
        .ok_or_else(|| Error::not_found(format!("{} has no brand designation", req.site)))?;
    Response::json(
        200,
        &json!({ "site": req.site, "kind": text(&r, "kind"), "name": text(&r, "name"), "since": text(&r, "since") }),
    )
}

// --------------------------------------------------------------- scenarios

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewScenario {
    code: String,
    name: String,
    /// Created on, if before today (recording an existing scenario).
    #[serde(default)]
    created_on: Option<String>,
}

pub(crate) fn create_scenario(req: &Request) -> Result<Response> {
    staff(req)?;
    let n: NewScenario = req.json()?;
    if n.code.trim().is_empty() || n.name.trim().is_empty() {
        return Err(invalid("code and name are required"));
    }
    let row = SCENARIOS.insert(&[
        ("site", t(&req.site)),
        ("code", t(&n.code)),
        ("name", t(&n.name)),
        ("created_on", t(&started_on("created_on", n.created_on)?)),
    ])?;
    Response::json(201, &json!({ "id": int(&row, "id") }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioCourse {
    course_id: i64,
}

pub(crate) fn link_scenario(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    SCENARIOS
        .get(&[i(id)])?
        .filter(|r| text(r, "site") == req.site)
        .ok_or_else(|| Error::not_found(format!("no scenario {id} at this site")))?;
    let l: ScenarioCourse = req.json()?;
    course(req, l.course_id)?;
    if SCENARIO_COURSES.get(&[i(id), i(l.course_id)])?.is_none() {
        SCENARIO_COURSES.insert(&[("scenario_id", i(id)), ("course_id", i(l.course_id))])?;
    }
    Response::json(200, &json!({ "scenario_id": id, "course_id": l.course_id }))
}

pub(crate) fn list_scenarios(req: &Request) -> Result<Response> {
    let rows = all(SCENARIOS, vec![eq("site", t(site(req)?))], vec![])?;
    let mut items = Vec::new();
    for r in rows {
        let id = int(&r, "id");
        let courses: Vec<i64> = all(SCENARIO_COURSES, vec![eq("scenario_id", i(id))], vec![])?
            .iter()
            .map(|c| int(c, "course_id"))
            .collect();
        items.push(json!({ "id": id, "code": text(&r, "code"), "name": text(&r, "name"), "courses": courses }));
    }
    Response::json(200, &json!({ "items": items }))
}
