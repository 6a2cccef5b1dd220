//! Elder education: elder universities and community teaching points (kernel
//! sites) run terms and course catalogues; learners enrol fairly (age
//! eligibility from the kernel's person record, a per-term course limit,
//! capacity never exceeded, a first-come waitlist or a seeded, published,
//! reproducible lottery with a capped share for returning learners);
//! attendance turns into a non-formal learning outcome in the learner's
//! account, once; learning teams earn stars; part-time teachers need a valid
//! certificate; "smart help for the elderly" scenarios list their courses;
//! admins get reports over a site subtree.
//!
//! Every route works in the site named by `?site=CODE` (the kernel checks
//! the module is enabled there). Staff routes need `site_admin` (or
//! `city_admin`) at that site or above; teachers act on their own courses.

pub mod dates;
pub mod lottery;

use lifelong_sdk::tables::{add, cmp, cmp_columns, column, eq, int, text, Op, OrderBy, Row, Table};
use lifelong_sdk::{export, publish, Error, Plugin, Request, Response, Result, Router, Value};
use serde::Deserialize;
use serde_json::json;

const TERMS: Table = Table("terms");
const COURSES: Table = Table("courses");
const TEACHERS: Table = Table("teachers");
const ENROLMENTS: Table = Table("enrolments");
const ATTENDANCE: Table = Table("attendance");
const COMPLETIONS: Table = Table("completions");
const TEAMS: Table = Table("teams");
const MEMBERS: Table = Table("team_members");
const ACTIVITIES: Table = Table("team_activities");
const RATINGS: Table = Table("team_ratings");
const SCENARIOS: Table = Table("scenarios");
const DESIGNATIONS: Table = Table("designations");
const SCENARIO_COURSES: Table = Table("scenario_courses");

/// Course categories.
pub const CATEGORIES: &[&str] = &[
    "arts",
    "health",
    "culture",
    "digital_skills",
    "life_skills",
    "other",
];

/// Enrolment states that hold a place (count towards the per-term limit).
const ACTIVE: &[&str] = &["enrolled", "waitlisted", "applied"];

struct ElderEducation;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(422, "invalid", "Invalid input", msg)
}

fn t(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn i(n: i64) -> Value {
    Value::Integer(n)
}

fn flag(row: &Row, name: &str) -> bool {
    matches!(column(row, name), Some(Value::Boolean(true)))
}

fn real(row: &Row, name: &str) -> f64 {
    match column(row, name) {
        Some(Value::Real(r)) => *r,
        Some(Value::Integer(n)) => *n as f64,
        _ => 0.0,
    }
}

fn opt_text(row: &Row, name: &str) -> Option<String> {
    match column(row, name) {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    }
}

fn opt_int(row: &Row, name: &str) -> Option<i64> {
    match column(row, name) {
        Some(Value::Integer(n)) => Some(*n),
        _ => None,
    }
}

/// The body as `T`; an empty body is `{}`.
fn body<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T> {
    if req.body.is_empty() {
        Ok(serde_json::from_str("{}")?)
    } else {
        req.json()
    }
}

fn site(req: &Request) -> Result<&str> {
    if req.site.is_empty() {
        Err(Error::bad_request("name the site with ?site=CODE"))
    } else {
        Ok(&req.site)
    }
}

fn setting(name: &str) -> Result<i64> {
    match lifelong_sdk::settings::get(name)? {
        Value::Integer(n) => Ok(n),
        other => Err(Error::internal(format!("setting {name} is {other:?}"))),
    }
}

fn today() -> String {
    lifelong_sdk::clock::today()
}

/// Does `person` administer `site` (site or city admin there or above)?
fn is_staff(person: i64, site: &str) -> Result<bool> {
    Ok(
        lifelong_sdk::identity::has_role(person, "site_admin", site)?
            || lifelong_sdk::identity::has_role(person, "city_admin", site)?,
    )
}

/// The caller, who must administer the request's site.
fn staff(req: &Request) -> Result<i64> {
    let person = req.person()?;
    let site = site(req)?;
    if is_staff(person, site)? {
        Ok(person)
    } else {
        Err(Error::forbidden(format!(
            "this needs the site_admin role at {site} or above"
        )))
    }
}

/// Every row matching `conditions`, page by page.
fn all(
    table: Table,
    conditions: Vec<lifelong_sdk::tables::Condition>,
    order: Vec<OrderBy>,
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = table.select(conditions.clone(), order.clone(), 1000, cursor)?;
        out.extend(page.rows);
        match page.next_cursor {
            Some(c) if out.len() < 100_000 => cursor = Some(c),
            _ => return Ok(out),
        }
    }
}

fn asc(column: &str) -> OrderBy {
    OrderBy {
        column: column.to_string(),
        descending: false,
    }
}

fn count(groups: &[lifelong_sdk::tables::Group]) -> i64 {
    groups.iter().map(|g| g.count).sum()
}

/// Counts by the first group-key value (text or integer, as text).
fn by_key(groups: &[lifelong_sdk::tables::Group]) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for g in groups {
        let key = match g.key.first() {
            Some(Value::Text(s)) => s.clone(),
            Some(Value::Integer(n)) => n.to_string(),
            Some(Value::Boolean(b)) => b.to_string(),
            _ => "null".into(),
        };
        m.insert(key, json!(g.count));
    }
    m
}

// ------------------------------------------------------------------ courses

/// The course `id` at the request's site (404 elsewhere).
fn course(req: &Request, id: i64) -> Result<Row> {
    let row = COURSES
        .get(&[i(id)])?
        .filter(|r| text(r, "site") == req.site)
        .ok_or_else(|| Error::not_found(format!("no course {id} at this site")))?;
    Ok(row)
}

fn course_json(r: &Row) -> serde_json::Value {
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

fn create_term(req: &Request) -> Result<Response> {
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

fn list_terms(req: &Request) -> Result<Response> {
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

fn create_course(req: &Request) -> Result<Response> {
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

fn list_courses(req: &Request) -> Result<Response> {
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

// ---------------------------------------------------------------- enrolment

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Who {
    /// Staff may act for a learner; learners act for themselves.
    person_id: Option<i64>,
}

/// The person a learner route acts for: the caller, or (staff only) the
/// person named in the body.
fn acting_for(req: &Request) -> Result<i64> {
    let who: Who = body(req)?;
    let me = req.person()?;
    match who.person_id {
        Some(p) if p != me => {
            staff(req)?;
            Ok(p)
        }
        _ => Ok(me),
    }
}

fn enrolment_of(course_id: i64, person: i64) -> Result<Option<Row>> {
    Ok(ENROLMENTS
        .select(
            vec![eq("course_id", i(course_id)), eq("person_id", i(person))],
            vec![],
            1,
            None,
        )?
        .rows
        .into_iter()
        .next())
}

/// Check age against the site's window (from the kernel's person record).
fn check_eligible(person: i64) -> Result<()> {
    let p = lifelong_sdk::identity::get(person)?;
    let age = dates::age(&p.birth_date, &today())
        .ok_or_else(|| Error::internal("the person's birth date is unreadable"))?;
    let (mut min, mut max) = (setting("min_age")?, setting("max_age")?);
    if p.sex == "female" {
        let (fmin, fmax) = (setting("min_age_female")?, setting("max_age_female")?);
        if fmin >= 0 {
            min = fmin;
        }
        if fmax >= 0 {
            max = fmax;
        }
    }
    if age < min || age > max {
        return Err(Error::new(
            422,
            "not-eligible",
            "Not eligible",
            format!("learners here must be {min} to {max} years old; this learner is {age}"),
        ));
    }
    Ok(())
}

/// Has the person held a seat in an earlier term at this site?
fn is_returning(person: i64, term_id: i64, site: &str) -> Result<bool> {
    let rows = all(ENROLMENTS, vec![eq("person_id", i(person))], vec![])?;
    Ok(rows.iter().any(|r| {
        text(r, "status") == "enrolled" && int(r, "term_id") != term_id && text(r, "site") == site
    }))
}

fn enrol(req: &Request) -> Result<Response> {
    let site = site(req)?.to_string();
    let id = req.param_i64("id")?;
    let c = course(req, id)?;
    let person = acting_for(req)?;
    let status = text(&c, "status");
    if status != "open" && status != "applying" {
        return Err(Error::conflict(format!(
            "course {id} is {status}: it takes no enrolments"
        )));
    }
    check_eligible(person)?;
    let term = int(&c, "term_id");
    let held = ENROLMENTS.aggregate(
        &[eq("person_id", i(person)), eq("term_id", i(term))],
        &["status"],
        None,
    )?;
    let active: i64 = held
        .iter()
        .filter(|g| matches!(g.key.first(), Some(Value::Text(s)) if ACTIVE.contains(&s.as_str())))
        .map(|g| g.count)
        .sum();
    let limit = setting("max_courses_per_term")?;
    if let Some(existing) = enrolment_of(id, person)? {
        if ACTIVE.contains(&text(&existing, "status")) {
            return Err(Error::conflict(format!(
                "already {} in course {id}",
                text(&existing, "status")
            )));
        }
        // Withdrawn (or not drawn) before: a new enrolment joins at the back.
        ENROLMENTS.delete(&[i(int(&existing, "id"))])?;
    }
    if active >= limit {
        return Err(Error::conflict(format!(
            "a learner may hold at most {limit} course(s) per term here"
        )));
    }
    let applying = status == "applying";
    let returning = applying && is_returning(person, term, &site)?;
    let row = ENROLMENTS.insert(&[
        ("course_id", i(id)),
        ("term_id", i(term)),
        ("site", t(&site)),
        ("person_id", i(person)),
        ("status", t(if applying { "applied" } else { "waitlisted" })),
        ("is_returning", Value::Boolean(returning)),
        ("queue", i(0)),
        ("at", i(lifelong_sdk::clock::now_micros())),
    ])?;
    // Arrival order: the generated id. The seat is taken last, so the
    // course row stays locked (PostgreSQL) only until this call commits.
    let eid = int(&row, "id");
    let new_status = if applying {
        "applied"
    } else if COURSES.update_where(
        &[eq("id", i(id)), cmp_columns("taken", Op::Lt, "capacity")],
        &[add("taken", 1)],
    )? == 1
    {
        "enrolled"
    } else {
        "waitlisted"
    };
    ENROLMENTS.update(&[i(eid)], &[("status", t(new_status)), ("queue", i(eid))])?;
    let position = if new_status == "waitlisted" {
        Some(waitlist_position(id, eid)?)
    } else {
        None
    };
    Response::json(
        201,
        &json!({ "course_id": id, "person_id": person, "status": new_status, "waitlist_position": position }),
    )
}

/// 1-based place on the waitlist of the enrolment with queue number `queue`.
fn waitlist_position(course_id: i64, queue: i64) -> Result<i64> {
    let ahead = ENROLMENTS.aggregate(
        &[
            eq("course_id", i(course_id)),
            eq("status", t("waitlisted")),
            cmp("queue", Op::Lt, i(queue)),
        ],
        &[],
        None,
    )?;
    Ok(count(&ahead) + 1)
}

fn withdraw(req: &Request) -> Result<Response> {
    let id = req.param_i64("id")?;
    let c = course(req, id)?;
    let person = acting_for(req)?;
    let e = enrolment_of(id, person)?
        .filter(|e| ACTIVE.contains(&text(e, "status")))
        .ok_or_else(|| Error::not_found(format!("no enrolment in course {id}")))?;
    let was = text(&e, "status").to_string();
    ENROLMENTS.update(&[i(int(&e, "id"))], &[("status", t("withdrawn"))])?;
    let promoted = if was == "enrolled" {
        promote(&c)?
    } else {
        None
    };
    Response::json(
        200,
        &json!({ "course_id": id, "person_id": person, "status": "withdrawn", "promoted": promoted }),
    )
}

/// Give a freed seat to the head of the waitlist (for a lottery course, the
/// first in drawn order who keeps returning learners within their share);
/// if nobody can take it, the seat is freed.
fn promote(c: &Row) -> Result<Option<i64>> {
    let id = int(c, "id");
    let lottery = text(c, "mode") == "lottery";
    let mut returning_room = i64::MAX;
    if lottery {
        let returning = all(
            ENROLMENTS,
            vec![eq("course_id", i(id)), eq("status", t("enrolled"))],
            vec![],
        )?
        .iter()
        .filter(|r| flag(r, "is_returning"))
        .count() as i64;
        returning_room =
            lottery::returning_cap(int(c, "capacity"), int(c, "returning_percent")) - returning;
    }
    let waiting = all(
        ENROLMENTS,
        vec![eq("course_id", i(id)), eq("status", t("waitlisted"))],
        vec![asc("queue")],
    )?;
    for w in waiting {
        if flag(&w, "is_returning") && returning_room <= 0 {
            continue;
        }
        ENROLMENTS.update(&[i(int(&w, "id"))], &[("status", t("enrolled"))])?;
        return Ok(Some(int(&w, "person_id")));
    }
    COURSES.update_where(
        &[eq("id", i(id)), cmp("taken", Op::Gt, i(0))],
        &[add("taken", -1)],
    )?;
    Ok(None)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrawBody {
    /// The seed to publish; default: derived from the kernel clock.
    seed: Option<String>,
}

fn draw(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    let c = course(req, id)?;
    if text(&c, "mode") != "lottery" || text(&c, "status") != "applying" {
        return Err(Error::conflict(format!(
            "course {id} is not a lottery course with an open application window"
        )));
    }
    let b: DrawBody = body(req)?;
    let seed = b
        .seed
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("{}-{id}-{}", req.site, lifelong_sdk::clock::now_micros()));
    let applied = all(
        ENROLMENTS,
        vec![eq("course_id", i(id)), eq("status", t("applied"))],
        vec![asc("queue")],
    )?;
    let applicants: Vec<lottery::Applicant> = applied
        .iter()
        .map(|r| lottery::Applicant {
            person_id: int(r, "person_id"),
            returning: flag(r, "is_returning"),
        })
        .collect();
    let capacity = int(&c, "capacity");
    let d = lottery::draw(&seed, &applicants, capacity, int(&c, "returning_percent"));
    let row_of = |person: i64| applied.iter().find(|r| int(r, "person_id") == person);
    for (rank, person) in d.order.iter().enumerate() {
        let Some(r) = row_of(*person) else { continue };
        let status = if d.seated.contains(person) {
            "enrolled"
        } else {
            "waitlisted"
        };
        ENROLMENTS.update(
            &[i(int(r, "id"))],
            &[("status", t(status)), ("queue", i(rank as i64))],
        )?;
    }
    let mut published: Vec<(i64, bool)> = applicants
        .iter()
        .map(|a| (a.person_id, a.returning))
        .collect();
    published.sort();
    COURSES.update(
        &[i(id)],
        &[
            ("status", t("drawn")),
            ("taken", i(d.seated.len() as i64)),
            ("lottery_seed", t(&seed)),
            (
                "lottery_applicants",
                t(&serde_json::to_string(&published).unwrap_or_default()),
            ),
            (
                "lottery_seated",
                t(&serde_json::to_string(&d.seated).unwrap_or_default()),
            ),
        ],
    )?;
    Response::json(200, &lottery_json(id, capacity, &seed, &published, &d))
}

fn lottery_json(
    id: i64,
    capacity: i64,
    seed: &str,
    applicants: &[(i64, bool)],
    d: &lottery::Draw,
) -> serde_json::Value {
    json!({
        "course_id": id,
        "capacity": capacity,
        "seed": seed,
        "algorithm": "lifelong elder-education lottery v1: applicants sorted by person id; SplitMix64 seeded with FNV-1a-64 of the seed's UTF-8 bytes; Fisher-Yates from the last position down (swap i with next() % (i+1)); seats go in shuffled order, returning learners only while under floor(capacity * returning_percent / 100); the rest wait in that order",
        "applicants": applicants.iter().map(|(p, r)| json!({"person_id": p, "returning": r})).collect::<Vec<_>>(),
        "applications_per_seat": if capacity > 0 { applicants.len() as f64 / capacity as f64 } else { 0.0 },
        "order": d.order,
        "seated": d.seated,
        "waitlist": d.waitlist,
    })
}

/// The published draw, re-run from its seed and applicant list: anyone can
/// check `reproduced`.
fn lottery_view(req: &Request) -> Result<Response> {
    let id = req.param_i64("id")?;
    let c = course(req, id)?;
    let Some(seed) = opt_text(&c, "lottery_seed") else {
        return Err(Error::conflict(format!("course {id} has not been drawn")));
    };
    let applicants: Vec<(i64, bool)> =
        serde_json::from_str(&opt_text(&c, "lottery_applicants").unwrap_or_default())
            .unwrap_or_default();
    let seated: Vec<i64> =
        serde_json::from_str(&opt_text(&c, "lottery_seated").unwrap_or_default())
            .unwrap_or_default();
    let list: Vec<_> = applicants
        .iter()
        .map(|(p, r)| lottery::Applicant {
            person_id: *p,
            returning: *r,
        })
        .collect();
    let capacity = int(&c, "capacity");
    let d = lottery::draw(&seed, &list, capacity, int(&c, "returning_percent"));
    let mut out = lottery_json(id, capacity, &seed, &applicants, &d);
    out["reproduced"] = json!(d.seated == seated);
    out["published_seated"] = json!(seated);
    Response::json(200, &out)
}

fn roster(req: &Request) -> Result<Response> {
    let id = req.param_i64("id")?;
    let c = course(req, id)?;
    teacher_or_staff(req, &c)?;
    let list = |status: &str| -> Result<Vec<serde_json::Value>> {
        Ok(all(
            ENROLMENTS,
            vec![eq("course_id", i(id)), eq("status", t(status))],
            vec![asc("queue")],
        )?
        .iter()
        .map(|r| json!({"person_id": int(r, "person_id"), "returning": flag(r, "is_returning")}))
        .collect())
    };
    Response::json(
        200,
        &json!({ "course": course_json(&c), "enrolled": list("enrolled")?, "waitlisted": list("waitlisted")?, "applied": list("applied")? }),
    )
}

fn my_courses(req: &Request) -> Result<Response> {
    let me = req.person()?;
    let rows = all(ENROLMENTS, vec![eq("person_id", i(me))], vec![])?;
    let mut items = Vec::new();
    for r in rows {
        let cid = int(&r, "course_id");
        let title = COURSES
            .get(&[i(cid)])?
            .map(|c| text(&c, "title").to_string());
        let status = text(&r, "status");
        let position = if status == "waitlisted" {
            Some(waitlist_position(cid, int(&r, "queue"))?)
        } else {
            None
        };
        items.push(json!({ "course_id": cid, "title": title, "site": text(&r, "site"), "term_id": int(&r, "term_id"), "status": status, "waitlist_position": position }));
    }
    Response::json(200, &json!({ "items": items }))
}

fn my_record(req: &Request) -> Result<Response> {
    let me = req.person()?;
    let rows = all(COMPLETIONS, vec![eq("person_id", i(me))], vec![])?;
    let items: Vec<_> = rows
        .iter()
        .map(|r| json!({ "course_id": int(r, "course_id"), "site": text(r, "site"), "ledger_entry": int(r, "entry_id"), "credits": real(r, "credits") }))
        .collect();
    let credits: f64 = rows.iter().map(|r| real(r, "credits")).sum();
    Response::json(200, &json!({ "completed": items, "credits": credits }))
}

// ------------------------------------------------------------- attendance

/// The caller teaches this course, or administers its site.
fn teacher_or_staff(req: &Request, c: &Row) -> Result<i64> {
    let me = req.person()?;
    if let Some(tid) = opt_int(c, "teacher_id") {
        if TEACHERS
            .get(&[i(tid)])?
            .is_some_and(|t| int(&t, "person_id") == me)
        {
            return Ok(me);
        }
    }
    staff(req)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Attendance {
    session: i64,
    present: Vec<i64>,
}

/// Record one session's attendance for the enrolled learners. Re-submitting
/// a session replaces it. A learner reaching the completion share gets the
/// course recorded in their account — once, however often attendance is sent.
fn attendance(req: &Request) -> Result<Response> {
    let id = req.param_i64("id")?;
    let c = course(req, id)?;
    teacher_or_staff(req, &c)?;
    let a: Attendance = req.json()?;
    let sessions = int(&c, "sessions");
    if a.session < 1 || a.session > sessions {
        return Err(invalid(format!("session is 1 to {sessions}")));
    }
    let enrolled = all(
        ENROLMENTS,
        vec![eq("course_id", i(id)), eq("status", t("enrolled"))],
        vec![asc("queue")],
    )?;
    let enrolled: Vec<i64> = enrolled.iter().map(|r| int(r, "person_id")).collect();
    if let Some(stranger) = a.present.iter().find(|p| !enrolled.contains(p)) {
        return Err(invalid(format!(
            "person {stranger} is not enrolled in course {id}"
        )));
    }
    let pct = setting("completion_percent")?;
    let rule = match lifelong_sdk::settings::get("credit_rule")? {
        Value::Text(r) if !r.trim().is_empty() => Some(r),
        _ => None,
    };
    let mut completed = Vec::new();
    let mut not_recorded = Vec::new();
    for person in &enrolled {
        let present = a.present.contains(person);
        let key = [i(id), i(*person), i(a.session)];
        if ATTENDANCE.get(&key)?.is_some() {
            ATTENDANCE.update(&key, &[("present", Value::Boolean(present))])?;
        } else {
            ATTENDANCE.insert(&[
                ("course_id", i(id)),
                ("person_id", i(*person)),
                ("session", i(a.session)),
                ("present", Value::Boolean(present)),
            ])?;
        }
        let attended = count(&ATTENDANCE.aggregate(
            &[
                eq("course_id", i(id)),
                eq("person_id", i(*person)),
                eq("present", Value::Boolean(true)),
            ],
            &[],
            None,
        )?);
        if attended * 100 >= pct * sessions && COMPLETIONS.get(&[i(id), i(*person)])?.is_none() {
            let outcome =
                lifelong_sdk::accounts::record_outcome(&lifelong_sdk::accounts::Outcome {
                    person_id: *person,
                    kind: "non_formal_learning".into(),
                    title: text(&c, "title").to_string(),
                    quantity: real(&c, "hours"),
                    occurred_on: today(),
                    source_site: req.site.clone(),
                    issuer: Some(format!("elder-education at {}", req.site)),
                    reference: Some(format!("course {id}")),
                    evidence: Some(format!("attended {attended} of {sessions} sessions")),
                    rule: rule.clone(),
                    idempotency_key: format!("course-{id}/person-{person}"),
                });
            // One learner's account refusing (e.g. frozen) does not lose the
            // session's attendance; the completion is retried with the next
            // submission.
            let recorded = match outcome {
                Ok(r) => r,
                Err(e) => {
                    not_recorded
                        .push(json!({ "person_id": person, "reason": Error::from(e).detail }));
                    continue;
                }
            };
            COMPLETIONS.insert(&[
                ("course_id", i(id)),
                ("person_id", i(*person)),
                ("site", t(&req.site)),
                ("entry_id", i(recorded.entry_id)),
                ("credits", Value::Real(recorded.credits)),
            ])?;
            publish(
                "course-completed",
                &json!({ "course_id": id, "person_id": person, "site": req.site }),
            )?;
            completed.push(*person);
        }
    }
    Response::json(
        200,
        &json!({ "course_id": id, "session": a.session, "present": a.present.len(), "completed_now": completed, "not_recorded": not_recorded }),
    )
}

// ---------------------------------------------------------------- teachers

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTeacher {
    person_id: i64,
    name: String,
    /// "full_time" or "part_time".
    kind: String,
    cert_number: Option<String>,
    cert_issuer: Option<String>,
    cert_valid_until: Option<String>,
}

fn register_teacher(req: &Request) -> Result<Response> {
    staff(req)?;
    let n: NewTeacher = req.json()?;
    match n.kind.as_str() {
        "full_time" => {}
        "part_time" => {
            let complete = n
                .cert_number
                .as_deref()
                .is_some_and(|s| !s.trim().is_empty())
                && n.cert_issuer
                    .as_deref()
                    .is_some_and(|s| !s.trim().is_empty())
                && n.cert_valid_until
                    .as_deref()
                    .and_then(dates::parse)
                    .is_some();
            if !complete {
                return Err(invalid(
                    "a part-time teacher must be registered with a certificate: cert_number, cert_issuer and cert_valid_until (YYYY-MM-DD)",
                ));
            }
        }
        _ => return Err(invalid("kind is full_time or part_time")),
    }
    let opt = |v: &Option<String>| v.as_deref().map_or(Value::Null, t);
    let row = TEACHERS.insert(&[
        ("site", t(&req.site)),
        ("person_id", i(n.person_id)),
        ("name", t(&n.name)),
        ("kind", t(&n.kind)),
        ("cert_number", opt(&n.cert_number)),
        ("cert_issuer", opt(&n.cert_issuer)),
        ("cert_valid_until", opt(&n.cert_valid_until)),
    ])?;
    Response::json(201, &json!({ "id": int(&row, "id") }))
}

/// Why this teacher may not take a new course, if they may not.
fn cannot_teach(teacher: &Row, on: &str) -> Option<String> {
    if text(teacher, "kind") != "part_time" {
        return None;
    }
    match opt_text(teacher, "cert_valid_until") {
        None => Some("this part-time teacher has no registered certificate".into()),
        Some(until) if until.as_str() < on => Some(format!(
            "this part-time teacher's certificate expired on {until}"
        )),
        Some(_) => None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Certificate {
    cert_number: String,
    cert_issuer: String,
    cert_valid_until: String,
}

/// Record a renewed (or corrected) certificate.
fn update_certificate(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    TEACHERS
        .get(&[i(id)])?
        .filter(|r| text(r, "site") == req.site)
        .ok_or_else(|| Error::not_found(format!("no teacher {id} at this site")))?;
    let c: Certificate = req.json()?;
    if c.cert_number.trim().is_empty()
        || c.cert_issuer.trim().is_empty()
        || dates::parse(&c.cert_valid_until).is_none()
    {
        return Err(invalid(
            "cert_number, cert_issuer and cert_valid_until (YYYY-MM-DD) are required",
        ));
    }
    TEACHERS.update(
        &[i(id)],
        &[
            ("cert_number", t(&c.cert_number)),
            ("cert_issuer", t(&c.cert_issuer)),
            ("cert_valid_until", t(&c.cert_valid_until)),
        ],
    )?;
    Response::json(
        200,
        &json!({ "id": id, "cert_valid_until": c.cert_valid_until }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Assign {
    teacher_id: i64,
}

fn assign_teacher(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    course(req, id)?;
    let a: Assign = req.json()?;
    let teacher = TEACHERS
        .get(&[i(a.teacher_id)])?
        .filter(|r| text(r, "site") == req.site)
        .ok_or_else(|| Error::not_found(format!("no teacher {} at this site", a.teacher_id)))?;
    if let Some(why) = cannot_teach(&teacher, &today()) {
        return Err(Error::conflict(why));
    }
    COURSES.update(&[i(id)], &[("teacher_id", i(a.teacher_id))])?;
    Response::json(200, &json!({ "course_id": id, "teacher_id": a.teacher_id }))
}

fn list_teachers(req: &Request) -> Result<Response> {
    staff(req)?;
    let on = today();
    let rows = all(TEACHERS, vec![eq("site", t(&req.site))], vec![])?;
    let mut items = Vec::new();
    for r in rows {
        let courses: Vec<i64> = all(COURSES, vec![eq("teacher_id", i(int(&r, "id")))], vec![])?
            .iter()
            .map(|c| int(c, "id"))
            .collect();
        let problem = cannot_teach(&r, &on);
        items.push(json!({
            "id": int(&r, "id"), "person_id": int(&r, "person_id"), "name": text(&r, "name"), "kind": text(&r, "kind"),
            "cert_number": opt_text(&r, "cert_number"), "cert_valid_until": opt_text(&r, "cert_valid_until"),
            "may_take_new_courses": problem.is_none(),
            "courses": courses,
            // An expired certificate on a teacher with current courses.
            "flagged": problem.is_some() && !courses.is_empty(),
        }));
    }
    Response::json(200, &json!({ "items": items }))
}

// ------------------------------------------------------------------- teams

fn team(req: &Request, id: i64) -> Result<Row> {
    TEAMS
        .get(&[i(id)])?
        .filter(|r| text(r, "site") == req.site)
        .ok_or_else(|| Error::not_found(format!("no team {id} at this site")))
}

/// Stars from the criteria in settings: one for being founded, one for
/// reaching the member threshold and one more at twice it, one for regular
/// activity, one for at least one showcase; at most five.
fn recompute_stars(team_id: i64, reason: &str) -> Result<i64> {
    let members = count(&MEMBERS.aggregate(&[eq("team_id", i(team_id))], &[], None)?);
    let since = dates::add_days(&today(), -setting("team_active_days")?).unwrap_or_default();
    let recent = count(&ACTIVITIES.aggregate(
        &[eq("team_id", i(team_id)), cmp("on_date", Op::Ge, t(&since))],
        &[],
        None,
    )?);
    let showcases = count(&ACTIVITIES.aggregate(
        &[eq("team_id", i(team_id)), eq("kind", t("showcase"))],
        &[],
        None,
    )?);
    let threshold = setting("team_members_for_star")?.max(1);
    let stars = (1
        + i64::from(members >= threshold)
        + i64::from(members >= 2 * threshold)
        + i64::from(recent >= setting("team_active_min_activities")?)
        + i64::from(showcases > 0))
    .min(5);
    let current = TEAMS
        .get(&[i(team_id)])?
        .map(|r| int(&r, "stars"))
        .unwrap_or(0);
    if stars != current {
        TEAMS.update(&[i(team_id)], &[("stars", i(stars))])?;
        RATINGS.insert(&[
            ("team_id", i(team_id)),
            ("stars", i(stars)),
            ("reason", t(&format!("{reason}: {members} members, {recent} recent activities, {showcases} showcases"))),
            ("at", i(lifelong_sdk::clock::now_micros())),
        ])?;
    }
    Ok(stars)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTeam {
    name: String,
}

fn create_team(req: &Request) -> Result<Response> {
    staff(req)?;
    let n: NewTeam = req.json()?;
    if n.name.trim().is_empty() {
        return Err(invalid("name is required"));
    }
    let row = TEAMS.insert(&[
        ("site", t(&req.site)),
        ("name", t(&n.name)),
        ("founded_on", t(&today())),
        ("stars", i(0)),
    ])?;
    let id = int(&row, "id");
    let stars = recompute_stars(id, "founded")?;
    Response::json(201, &json!({ "id": id, "stars": stars }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    person_id: i64,
}

fn add_member(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    team(req, id)?;
    let m: Member = req.json()?;
    if MEMBERS.get(&[i(id), i(m.person_id)])?.is_none() {
        MEMBERS.insert(&[("team_id", i(id)), ("person_id", i(m.person_id))])?;
    }
    let stars = recompute_stars(id, "member joined")?;
    Response::json(200, &json!({ "team_id": id, "stars": stars }))
}

fn remove_member(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    team(req, id)?;
    let person = req.param_i64("person")?;
    if !MEMBERS.delete(&[i(id), i(person)])? {
        return Err(Error::not_found(format!(
            "person {person} is not in team {id}"
        )));
    }
    let stars = recompute_stars(id, "member left")?;
    Response::json(200, &json!({ "team_id": id, "stars": stars }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewActivity {
    on_date: String,
    /// "activity" or "showcase".
    kind: String,
    #[serde(default)]
    note: String,
}

fn log_activity(req: &Request) -> Result<Response> {
    staff(req)?;
    let id = req.param_i64("id")?;
    team(req, id)?;
    let a: NewActivity = req.json()?;
    if dates::parse(&a.on_date).is_none() {
        return Err(invalid("on_date is a date, YYYY-MM-DD"));
    }
    if a.kind != "activity" && a.kind != "showcase" {
        return Err(invalid("kind is activity or showcase"));
    }
    ACTIVITIES.insert(&[
        ("team_id", i(id)),
        ("on_date", t(&a.on_date)),
        ("kind", t(&a.kind)),
        ("note", t(&a.note)),
    ])?;
    let stars = recompute_stars(id, &format!("{} logged", a.kind))?;
    Response::json(201, &json!({ "team_id": id, "stars": stars }))
}

fn team_view(req: &Request) -> Result<Response> {
    let id = req.param_i64("id")?;
    let r = team(req, id)?;
    let members: Vec<i64> = all(MEMBERS, vec![eq("team_id", i(id))], vec![])?
        .iter()
        .map(|m| int(m, "person_id"))
        .collect();
    let history: Vec<_> = all(RATINGS, vec![eq("team_id", i(id))], vec![asc("id")])?
        .iter()
        .map(|h| json!({ "stars": int(h, "stars"), "reason": text(h, "reason"), "at": int(h, "at") }))
        .collect();
    Response::json(
        200,
        &json!({ "id": id, "name": text(&r, "name"), "founded_on": text(&r, "founded_on"), "stars": int(&r, "stars"), "members": members, "ratings": history }),
    )
}

fn list_teams(req: &Request) -> Result<Response> {
    let rows = all(TEAMS, vec![eq("site", t(site(req)?))], vec![])?;
    let items: Vec<_> = rows
        .iter()
        .map(|r| json!({ "id": int(r, "id"), "name": text(r, "name"), "stars": int(r, "stars") }))
        .collect();
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
}

/// Give the request's site its brand designation (replacing an earlier one).
fn designate(req: &Request) -> Result<Response> {
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
        ("since", t(&today())),
    ];
    if !DESIGNATIONS.update(&key, &row)? {
        DESIGNATIONS.insert(&[&[("site", t(&req.site))][..], &row[..]].concat())?;
    }
    Response::json(
        200,
        &json!({ "site": req.site, "kind": d.kind, "name": d.name }),
    )
}

fn designation(req: &Request) -> Result<Response> {
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
}

fn create_scenario(req: &Request) -> Result<Response> {
    staff(req)?;
    let n: NewScenario = req.json()?;
    if n.code.trim().is_empty() || n.name.trim().is_empty() {
        return Err(invalid("code and name are required"));
    }
    let row = SCENARIOS.insert(&[
        ("site", t(&req.site)),
        ("code", t(&n.code)),
        ("name", t(&n.name)),
    ])?;
    Response::json(201, &json!({ "id": int(&row, "id") }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioCourse {
    course_id: i64,
}

fn link_scenario(req: &Request) -> Result<Response> {
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

fn list_scenarios(req: &Request) -> Result<Response> {
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

// ----------------------------------------------------------------- reports

/// Figures over the request site's subtree, for admins there.
fn report(req: &Request) -> Result<Response> {
    staff(req)?;
    let sites = lifelong_sdk::sites::subtree(&req.site)?;
    let mut enrolments = serde_json::Map::new();
    let (mut completions, mut courses, mut lottery_courses) = (0i64, 0i64, 0i64);
    let (mut applications, mut lottery_seats) = (0f64, 0f64);
    let mut teams_by_stars = serde_json::Map::new();
    let (mut teams, mut scenarios) = (0i64, 0i64);
    let (mut elder_universities, mut with_social_organisations) = (0i64, 0i64);
    let mut designations = serde_json::Map::new();
    for s in &sites {
        let code = s.code.as_str();
        if let Some(d) = DESIGNATIONS.get(&[t(code)])? {
            let kind = text(&d, "kind").to_string();
            let n = designations
                .get(&kind)
                .and_then(|x| x.as_i64())
                .unwrap_or(0)
                + 1;
            designations.insert(kind, json!(n));
        }
        if s.kind == "elder_university" {
            elder_universities += 1;
            if lifelong_sdk::sites::operator(code)? == "social_organisation" {
                with_social_organisations += 1;
            }
        }
        for (k, v) in by_key(&ENROLMENTS.aggregate(&[eq("site", t(code))], &["status"], None)?) {
            let n =
                enrolments.get(&k).and_then(|x| x.as_i64()).unwrap_or(0) + v.as_i64().unwrap_or(0);
            enrolments.insert(k, json!(n));
        }
        completions += count(&COMPLETIONS.aggregate(&[eq("site", t(code))], &[], None)?);
        for c in all(COURSES, vec![eq("site", t(code))], vec![])? {
            courses += 1;
            if opt_text(&c, "lottery_seed").is_some() {
                lottery_courses += 1;
                let applicants: Vec<(i64, bool)> =
                    serde_json::from_str(&opt_text(&c, "lottery_applicants").unwrap_or_default())
                        .unwrap_or_default();
                applications += applicants.len() as f64;
                lottery_seats += int(&c, "capacity") as f64;
            }
        }
        let by_stars = TEAMS.aggregate(&[eq("site", t(code))], &["stars"], None)?;
        teams += count(&by_stars);
        for (k, v) in by_key(&by_stars) {
            let n = teams_by_stars.get(&k).and_then(|x| x.as_i64()).unwrap_or(0)
                + v.as_i64().unwrap_or(0);
            teams_by_stars.insert(k, json!(n));
        }
        scenarios += count(&SCENARIOS.aggregate(&[eq("site", t(code))], &[], None)?);
    }
    let enrolled = enrolments
        .get("enrolled")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    Response::json(
        200,
        &json!({
            "site": req.site,
            "sites": sites.len(),
            "courses": courses,
            "enrolments": enrolments,
            "waitlisted": enrolments.get("waitlisted").cloned().unwrap_or(json!(0)),
            "completions": completions,
            "completion_rate": if enrolled > 0 { completions as f64 / enrolled as f64 } else { 0.0 },
            "lottery_courses": lottery_courses,
            "lottery_applications_per_seat": if lottery_seats > 0.0 { applications / lottery_seats } else { 0.0 },
            "teams": teams,
            "teams_by_stars": teams_by_stars,
            "scenarios": scenarios,
            "elder_universities": elder_universities,
            "brand_designations": designations,
            "indicators": {
                "1_elder_universities_with_social_organisations": with_social_organisations,
                "5_smart_help_scenarios": scenarios,
                "8_brand_projects": designations.values().filter_map(|v| v.as_i64()).sum::<i64>(),
                "9_learning_teams": teams,
            },
        }),
    )
}

impl Plugin for ElderEducation {
    fn router() -> Router {
        Router::new()
            .get("/terms", list_terms)
            .post("/terms", create_term)
            .get("/courses", list_courses)
            .post("/courses", create_course)
            .get("/courses/{id}", |req| {
                Response::json(200, &course_json(&course(req, req.param_i64("id")?)?))
            })
            .post("/courses/{id}/enrol", enrol)
            .post("/courses/{id}/withdraw", withdraw)
            .post("/courses/{id}/draw", draw)
            .get("/courses/{id}/lottery", lottery_view)
            .get("/courses/{id}/roster", roster)
            .post("/courses/{id}/attendance", attendance)
            .put("/courses/{id}/teacher", assign_teacher)
            .get("/me/courses", my_courses)
            .get("/me/record", my_record)
            .get("/teachers", list_teachers)
            .post("/teachers", register_teacher)
            .put("/teachers/{id}/certificate", update_certificate)
            .get("/teams", list_teams)
            .post("/teams", create_team)
            .get("/teams/{id}", team_view)
            .post("/teams/{id}/members", add_member)
            .delete("/teams/{id}/members/{person}", remove_member)
            .post("/teams/{id}/activities", log_activity)
            .get("/designation", designation)
            .put("/designation", designate)
            .get("/scenarios", list_scenarios)
            .post("/scenarios", create_scenario)
            .post("/scenarios/{id}/courses", link_scenario)
            .get("/reports", report)
    }
}

export!(ElderEducation);
