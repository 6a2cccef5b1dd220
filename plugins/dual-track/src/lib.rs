//! Dual-track (双元制) courses: a speciality is offered by a school with
//! partner enterprises (approved as training places before they take
//! learners); its job-type standard is versioned (modules at school or in
//! the enterprise, skills, assessment items per post, certificate, credits,
//! the credit bank's conversion standard). A training agreement binds a
//! learner, the school, an enterprise and a qualified mentor under one
//! standard version; every party signs before practice starts. Theory
//! modules are recorded by the school's teachers, practice modules by the
//! learner's own mentor; a committee with school and enterprise members
//! records results; completion needs every required module and item and
//! records a certificate, the credits and the conversion in the credit
//! bank, once.
//!
//! Every route works in the site named by `?site=CODE`. Staff are
//! `site_admin` (or `city_admin`) at that site or above.

mod agreements;
mod completion;
mod indicators;
mod report;
mod specialities;
pub mod standard;

use agreements::*;
use completion::*;
use report::*;
use specialities::*;

use lifelong_sdk::tables::{
    eq, flag, int, opt_int, opt_text, real, text, Condition, OrderBy, Row, Table,
};
use lifelong_sdk::{export, Error, Plugin, Request, Response, Result, Router, Value};
use serde::Deserialize;
use serde_json::json;

const COUNTERS: Table = Table("counters");
const SPECIALITIES: Table = Table("specialities");
const STANDARDS: Table = Table("standards");
const PARTNERS: Table = Table("partners");
const TEACHERS: Table = Table("teachers");
const MENTORS: Table = Table("mentors");
const COMMITTEE: Table = Table("committee");
const AGREEMENTS: Table = Table("agreements");
const MODULE_RECORDS: Table = Table("module_records");
const RESULTS: Table = Table("results");
const COMPLETIONS: Table = Table("completions");

struct DualTrack;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(422, "invalid", "Invalid input", msg)
}

fn t(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn i(n: i64) -> Value {
    Value::Integer(n)
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

/// Is `person` staff at `site` (site or city admin there or above)?
fn is_staff(person: i64, site: &str) -> Result<bool> {
    Ok(
        lifelong_sdk::identity::has_role(person, "site_admin", site)?
            || lifelong_sdk::identity::has_role(person, "city_admin", site)?,
    )
}

/// The caller, who must be staff at `site`.
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

/// The next value of a named counter (calls run one at a time per plugin).
fn next(counter: &str) -> Result<i64> {
    use lifelong_sdk::tables::add;
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

impl Plugin for DualTrack {
    fn indicators() -> lifelong_sdk::Indicators {
        indicators::provided()
    }

    fn router() -> Router {
        Router::new()
            .post("/specialities", create_speciality)
            .get("/specialities", list_specialities)
            .get("/specialities/{id}", speciality_view)
            .post("/specialities/{id}/standards", publish_standard)
            .post("/specialities/{id}/partners", propose_partner)
            .post(
                "/specialities/{id}/partners/{enterprise}/approve",
                approve_partner,
            )
            .post("/specialities/{id}/committee", set_committee)
            .post("/teachers", add_teacher)
            .post("/mentors", add_mentor)
            .get("/mentors", list_mentors)
            .post("/agreements", create_agreement)
            .get("/agreements/{id}", agreement_view)
            .post("/agreements/{id}/sign", sign)
            .post("/agreements/{id}/end", end_agreement)
            .post("/agreements/{id}/modules/{module}", record_module)
            .post("/agreements/{id}/results", record_result)
            .post("/agreements/{id}/complete", complete)
            .get("/reports", report)
    }
}

export!(DualTrack);
