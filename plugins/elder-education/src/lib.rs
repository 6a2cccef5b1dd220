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

mod catalogue;
pub mod dates;
mod enrolment;
mod indicators;
pub mod lottery;
mod report;
mod teaching;
mod teams;

use catalogue::*;
use enrolment::*;
use report::*;
use teaching::*;
use teams::*;

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

/// The date a record starts on: `given` (a past fact being recorded now,
/// e.g. a team founded last spring — never a future one), else today.
fn started_on(field: &str, given: Option<String>) -> Result<String> {
    let today = today();
    match given {
        None => Ok(today),
        Some(d) if dates::parse(&d).is_none() => Err(invalid(format!(
            "{field}: {d:?} is not a date (YYYY-MM-DD)"
        ))),
        Some(d) if d > today => Err(invalid(format!(
            "{field}: {d} is in the future; record it on the day"
        ))),
        Some(d) => Ok(d),
    }
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

impl Plugin for ElderEducation {
    fn indicators() -> lifelong_sdk::Indicators {
        indicators::provided()
    }

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
