//! Worker continuing education: providers (teacher-training schools, the
//! open university, enterprise training centres — kernel sites) offer
//! programs; enterprises (kernel sites of kind `enterprise_training_centre`
//! with a checked unified social credit code) register their staff and order
//! customised courses; completions and verified submissions give hours, one
//! category per activity, recorded once each as a `continuing_education`
//! outcome in the credit bank; versioned requirement rules give each
//! person's compliance, kept as computed once a year is closed; enterprises
//! see their training and compliance rates; city and township special funds
//! are never overspent and every movement is kept.
//!
//! Every route works in the site named by `?site=CODE`. Staff of a site
//! (HR of an enterprise, the office of a provider, fund managers) hold
//! `site_admin` there or above, or `city_admin`. This module keeps the
//! shared helpers and the router; it knows no rule of its own.

mod compliance;
mod enterprises;
mod funds;
mod hours;
mod indicators;
mod orders;
mod programs;
mod report;
pub mod uscc;

use lifelong_sdk::tables::{
    add, column, eq, flag, int, opt_int, opt_text, text, Condition, OrderBy, Row, Table,
};
use lifelong_sdk::{export, Error, Plugin, Request, Response, Result, Router, Value};
use serde::Deserialize;
use serde_json::json;

const ENTERPRISES: Table = Table("enterprises");
const STAFF: Table = Table("staff");
const PROGRAMS: Table = Table("programs");
const ENROLMENTS: Table = Table("enrolments");
const ORDERS: Table = Table("orders");
const ACTIVITIES: Table = Table("activities");
const RULES: Table = Table("rules");
const CLOSURES: Table = Table("closures");
const RESULTS: Table = Table("results");
const FUNDS: Table = Table("funds");
const ALLOCATIONS: Table = Table("allocations");
const MOVEMENTS: Table = Table("movements");

/// Kinds of site that may offer programs.
const PROVIDER_KINDS: &[&str] = &[
    "teacher_training_school",
    "open_university",
    "enterprise_training_centre",
];
const MODES: &[&str] = &["classroom", "online", "blended", "practice", "seminar"];
const POPULATIONS: &[&str] = &["professional_technician", "cadre", "employee"];

struct WorkerEducation;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(422, "invalid", "Invalid input", msg)
}

fn t(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn i(n: i64) -> Value {
    Value::Integer(n)
}

fn b(v: bool) -> Value {
    Value::Boolean(v)
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

/// A query-string parameter.
fn query<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
}

fn today() -> String {
    lifelong_sdk::clock::today()
}

fn this_year() -> i64 {
    today()[..4].parse().unwrap_or(2026)
}

/// `?year=`, else this year.
fn year_param(req: &Request) -> Result<i64> {
    match query(req, "year") {
        None => Ok(this_year()),
        Some(y) => y
            .parse()
            .ok()
            .filter(|y| (2000..=2100).contains(y))
            .ok_or_else(|| Error::bad_request("year must be a year such as 2026")),
    }
}

fn setting_text(name: &str) -> Result<String> {
    match lifelong_sdk::settings::get(name)? {
        Value::Text(s) => Ok(s),
        other => Err(Error::internal(format!("setting {name} is {other:?}"))),
    }
}

fn setting(name: &str) -> Result<i64> {
    match lifelong_sdk::settings::get(name)? {
        Value::Integer(n) => Ok(n),
        other => Err(Error::internal(format!("setting {name} is {other:?}"))),
    }
}

/// The configured hour categories.
fn categories() -> Result<Vec<String>> {
    Ok(setting_text("categories")?
        .split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect())
}

fn check_category(category: &str) -> Result<()> {
    let known = categories()?;
    if known.iter().any(|c| c == category) {
        Ok(())
    } else {
        Err(invalid(format!(
            "category {category:?} is not one of {}",
            known.join(", ")
        )))
    }
}

/// A `YYYY-MM-DD` date, or a 422 naming the field.
fn date(field: &str, s: &str) -> Result<String> {
    let ok = s.len() == 10
        && s.as_bytes()[4] == b'-'
        && s.as_bytes()[7] == b'-'
        && s[..4].parse::<u32>().is_ok()
        && s[5..7].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m))
        && s[8..].parse::<u32>().is_ok_and(|d| (1..=31).contains(&d));
    if ok {
        Ok(s.to_string())
    } else {
        Err(invalid(format!("{field} must be a date YYYY-MM-DD")))
    }
}

/// Does `person` administer `site` (site or city admin there or above)?
fn is_staff(person: i64, site: &str) -> Result<bool> {
    Ok(
        lifelong_sdk::identity::has_role(person, "site_admin", site)?
            || lifelong_sdk::identity::has_role(person, "city_admin", site)?,
    )
}

/// The caller, who must administer `site`.
fn staff_at(req: &Request, site: &str) -> Result<i64> {
    let person = req.person()?;
    if is_staff(person, site)? {
        Ok(person)
    } else {
        Err(Error::forbidden(format!(
            "this needs the site_admin role at {site} or above"
        )))
    }
}

/// The caller, who must administer the request's site.
fn admin(req: &Request) -> Result<i64> {
    staff_at(req, site(req)?)
}

/// Every row matching `conditions`, page by page.
fn all(table: Table, conditions: Vec<Condition>, order: Vec<OrderBy>) -> Result<Vec<Row>> {
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

/// Every row of a table with an integer primary key `key` (a range on the
/// key, so the key's index serves it).
fn every(table: Table, key: &str) -> Result<Vec<Row>> {
    all(
        table,
        vec![lifelong_sdk::tables::cmp(
            key,
            lifelong_sdk::tables::Op::Gt,
            i(i64::MIN),
        )],
        vec![],
    )
}

/// The codes of `code`'s subtree.
fn subtree(code: &str) -> Result<Vec<String>> {
    Ok(lifelong_sdk::sites::subtree(code)?
        .into_iter()
        .map(|s| s.code)
        .collect())
}

/// The township (or the city) a site is in.
fn township_of(code: &str) -> Result<String> {
    let s = lifelong_sdk::sites::get(code)?;
    if s.kind == "township" || s.kind == "city" {
        return Ok(s.code);
    }
    let ancestors = lifelong_sdk::sites::ancestors(code)?;
    Ok(ancestors
        .iter()
        .rev()
        .find(|a| a.kind == "township")
        .or(ancestors.first())
        .map_or(s.code.clone(), |a| a.code.clone()))
}

impl Plugin for WorkerEducation {
    fn indicators() -> lifelong_sdk::Indicators {
        indicators::provided()
    }

    fn router() -> Router {
        Router::new()
            .post("/enterprises", enterprises::register)
            .get("/enterprises/{code}", enterprises::view)
            .post("/staff", enterprises::add_staff)
            .post("/staff/import", enterprises::import_staff)
            .get("/staff", enterprises::list_staff)
            .post("/programs", programs::create)
            .get("/programs", programs::list)
            .get("/programs/{id}", programs::view)
            .post("/programs/{id}/enrolments", programs::enrol)
            .post("/programs/{id}/complete", programs::complete)
            .post("/orders", orders::create)
            .get("/orders", orders::list)
            .get("/orders/{id}", orders::view)
            .post("/orders/{id}/quote", orders::quote)
            .post("/orders/{id}/accept", orders::accept)
            .post("/orders/{id}/roster", orders::add_to_roster)
            .post("/orders/{id}/deliver", orders::deliver)
            .post("/orders/{id}/complete", orders::complete)
            .post("/orders/{id}/cancel", orders::cancel)
            .post("/activities", hours::submit)
            .get("/activities", hours::list)
            .post("/activities/{id}/verify", hours::verify)
            .post("/activities/{id}/reject", hours::reject)
            .post("/activities/{id}/reverse", hours::reverse)
            .post("/rules", compliance::publish)
            .get("/rules", compliance::list_rules)
            .get("/me", compliance::me)
            .get("/compliance/{person}", compliance::person)
            .get("/enterprises/{code}/behind", compliance::behind)
            .post("/years/{year}/close", compliance::close_year)
            .post("/funds", funds::create)
            .get("/funds", funds::list)
            .get("/funds/{id}", funds::view)
            .post("/funds/{id}/allocations", funds::allocate)
            .post("/funds/{id}/spend", funds::spend)
            .post("/movements/{id}/reverse", funds::reverse)
            .get("/reports", report::report)
    }
}

export!(WorkerEducation);
