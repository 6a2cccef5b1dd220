//! Volunteer management: a person registers as a volunteer at a site (a
//! number unique in the city; the kernel's `volunteer` role granted through
//! the kernel); sites post needs (fixed shifts or flexible windows, with a
//! number wanted and requirements); volunteers sign up within capacity and
//! never for two overlapping shifts; check-in and check-out give hours that
//! count only once a coordinator at the organising site — never the
//! volunteer — verifies them, which records one `volunteer_service` outcome
//! in the credit bank; a reversal with a reason is the only correction and
//! reverses the ledger entry too. Star tiers follow verified hours and are
//! conferred after a public notice without an upheld objection; service
//! proofs carry name and volunteer number, never an ID number; reports
//! cover a site's subtree.
//!
//! Every route works in the site named by `?site=CODE`. Coordinators are
//! `site_admin` (or `city_admin`) at that site or above.

mod hours;
mod indicators;
mod needs;
mod proofs;
mod recognition;
mod registry;
mod report;
mod signups;
pub mod time;

use hours::*;
use needs::*;
use proofs::*;
use recognition::*;
use registry::*;
use report::*;
use signups::*;

use lifelong_sdk::tables::{
    add, eq, flag, int, opt_int, opt_text, text, Condition, OrderBy, Row, Table,
};
use lifelong_sdk::{export, Error, Event, Plugin, Request, Response, Result, Router, Value};
use serde::Deserialize;
use serde_json::json;

const COUNTERS: Table = Table("counters");
const VOLUNTEERS: Table = Table("volunteers");
const TRAININGS: Table = Table("trainings");
const NEEDS: Table = Table("needs");
const NEED_SOURCES: Table = Table("need_sources");
const SIGNUPS: Table = Table("signups");
const HOURS: Table = Table("hours");
const COMMENDATIONS: Table = Table("commendations");
const OBJECTIONS: Table = Table("objections");
const PROOFS: Table = Table("proofs");

struct Volunteers;

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

fn opt_t(s: Option<&str>) -> Value {
    s.map_or(Value::Null, t)
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

fn setting(name: &str) -> Result<i64> {
    match lifelong_sdk::settings::get(name)? {
        Value::Integer(n) => Ok(n),
        other => Err(Error::internal(format!("setting {name} is {other:?}"))),
    }
}

fn setting_text(name: &str) -> Result<String> {
    match lifelong_sdk::settings::get(name)? {
        Value::Text(s) => Ok(s),
        other => Err(Error::internal(format!("setting {name} is {other:?}"))),
    }
}

fn today() -> String {
    lifelong_sdk::clock::today()
}

/// Now on the city's wall clock, in minutes since the epoch.
fn now_minutes() -> Result<i64> {
    Ok(lifelong_sdk::clock::now_micros().div_euclid(60_000_000) + setting("utc_offset_minutes")?)
}

/// Does `person` coordinate at `site` (site or city admin there or above)?
fn is_staff(person: i64, site: &str) -> Result<bool> {
    Ok(
        lifelong_sdk::identity::has_role(person, "site_admin", site)?
            || lifelong_sdk::identity::has_role(person, "city_admin", site)?,
    )
}

/// The caller, who must coordinate at `site`.
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

/// The caller, who must coordinate at the request's site.
fn staff(req: &Request) -> Result<i64> {
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

fn asc(column: &str) -> OrderBy {
    OrderBy {
        column: column.to_string(),
        descending: false,
    }
}

/// The next value of a named counter (calls run one at a time per plugin).
fn next(counter: &str) -> Result<i64> {
    if COUNTERS.update_where(&[eq("name", t(counter))], &[add("value", 1)])? == 0 {
        COUNTERS.insert(&[("name", t(counter)), ("value", i(1))])?;
        return Ok(1);
    }
    let row = COUNTERS
        .get(&[t(counter)])?
        .ok_or_else(|| Error::internal("counter vanished"))?;
    Ok(int(&row, "value"))
}

/// The codes of `code`'s subtree.
fn subtree(code: &str) -> Result<Vec<String>> {
    Ok(lifelong_sdk::sites::subtree(code)?
        .into_iter()
        .map(|s| s.code)
        .collect())
}

impl Plugin for Volunteers {
    fn indicators() -> lifelong_sdk::Indicators {
        indicators::provided()
    }

    fn router() -> Router {
        Router::new()
            .post("/volunteers", register)
            .get("/volunteers", list_volunteers)
            .get("/volunteers/{number}", volunteer_view)
            .post("/volunteers/{number}/trainings", add_training)
            .get("/me", me)
            .post("/needs", create_need)
            .get("/needs", list_needs)
            .get("/needs/{id}", need_view)
            .post("/needs/{id}/close", close_need)
            .post("/needs/{id}/signups", sign_up)
            .get("/needs/{id}/signups", roster)
            .post("/needs/{id}/hours", walk_in)
            .post("/signups/{id}/confirm", confirm)
            .post("/signups/{id}/reject", reject)
            .post("/signups/{id}/cancel", cancel)
            .post("/signups/{id}/no-show", no_show)
            .post("/signups/{id}/check-in", check_in)
            .post("/signups/{id}/check-out", check_out)
            .get("/hours", pending_hours)
            .post("/hours/{id}/verify", verify)
            .post("/hours/{id}/reject", reject_hours)
            .post("/hours/{id}/reverse", reverse)
            .post("/commendations", propose)
            .get("/notices", notices)
            .post("/commendations/{id}/objections", object)
            .post("/objections/{id}/decide", decide)
            .post("/commendations/{id}/confer", confer)
            .post("/proofs", issue_proof)
            .get("/proofs/{number}", proof_view)
            .get("/proofs/{number}/print", proof_print)
            .get("/reports", report)
    }

    fn on_event(event: &Event) -> std::result::Result<(), String> {
        match event.name.as_str() {
            "elder-education.assistants-wanted" => {
                assistants_wanted(event).map_err(|e| format!("{}: {}", e.title, e.detail))
            }
            _ => Ok(()),
        }
    }
}

export!(Volunteers);
