//! Training agreements (learner × school × enterprise × mentor, under the
//! standard version in force when made; signed by every party before any
//! practice; ended with a reason; prior learning waived at the start with
//! evidence), module records (theory by the school's teachers, practice by
//! the learner's own mentor, nobody else) and assessment results (by the
//! committee's members of the side the item names).

use crate::specialities::{approved_partner, qualified_mentor, speciality, standard_of};
use crate::standard::Standard;
use crate::*;
use std::collections::BTreeSet;

pub(crate) fn agreement(id: i64) -> Result<Row> {
    AGREEMENTS
        .get(&[i(id)])?
        .ok_or_else(|| Error::not_found(format!("no agreement {id}")))
}

pub(crate) fn standard_for(a: &Row) -> Result<Standard> {
    standard_of(int(a, "speciality_id"), int(a, "version"))
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Waiver {
    module: String,
    /// Where the evidence of the prior learning is kept.
    evidence: String,
}

pub(crate) fn waived(a: &Row) -> BTreeSet<String> {
    serde_json::from_str::<Vec<Waiver>>(text(a, "waivers"))
        .unwrap_or_default()
        .into_iter()
        .map(|w| w.module)
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAgreement {
    speciality_id: i64,
    learner_id: i64,
    enterprise: String,
    mentor_id: i64,
    #[serde(default)]
    waivers: Vec<Waiver>,
}

/// Draw up an agreement at the school (staff there).
pub(crate) fn create_agreement(req: &Request) -> Result<Response> {
    let school = site(req)?.to_string();
    staff_at(req, &school)?;
    let n: NewAgreement = body(req)?;
    let s = speciality(n.speciality_id)?;
    if text(&s, "school") != school {
        return Err(Error::not_found(format!(
            "no speciality {} at {school}",
            n.speciality_id
        )));
    }
    if !approved_partner(n.speciality_id, &n.enterprise)? {
        return Err(Error::conflict(format!(
            "{} is not approved as a training place for this speciality",
            n.enterprise
        )));
    }
    qualified_mentor(&n.enterprise, n.mentor_id)?;
    lifelong_sdk::identity::get(n.learner_id)?;
    let open = AGREEMENTS
        .select(vec![eq("learner", i(n.learner_id))], vec![], 1000, None)?
        .rows
        .into_iter()
        .any(|a| {
            int(&a, "speciality_id") == n.speciality_id
                && matches!(text(&a, "status"), "draft" | "active")
        });
    if open {
        return Err(Error::conflict(format!(
            "person {} already has an open agreement in this speciality",
            n.learner_id
        )));
    }
    let version = int(&s, "version");
    let std = standard_of(n.speciality_id, version)?;
    let mut seen = BTreeSet::new();
    let mut hours = 0;
    for w in &n.waivers {
        let m = std
            .module(&w.module)
            .ok_or_else(|| invalid(format!("no module {} in the standard", w.module)))?;
        if w.evidence.trim().is_empty() {
            return Err(invalid(format!(
                "waiving {} needs evidence of the prior learning",
                w.module
            )));
        }
        if !seen.insert(w.module.clone()) {
            return Err(invalid(format!("module {} waived twice", w.module)));
        }
        hours += m.hours;
    }
    let cap = setting("max_waived_percent")?;
    if hours * 100 > std.hours() * cap {
        return Err(invalid(format!(
            "prior learning may waive at most {cap}% of the plan's {} hours",
            std.hours()
        )));
    }
    let id = next("agreement")?;
    AGREEMENTS.insert(&[
        ("id", i(id)),
        ("speciality_id", i(n.speciality_id)),
        ("version", i(version)),
        ("job_type", t(&std.job_type)),
        ("learner", i(n.learner_id)),
        ("school", t(&school)),
        ("enterprise", t(&n.enterprise)),
        ("mentor", i(n.mentor_id)),
        ("status", t("draft")),
        ("signed_learner", Value::Null),
        ("signed_school", Value::Null),
        ("signed_enterprise", Value::Null),
        ("created_on", t(&today())),
        ("signed_on", Value::Null),
        ("waivers", t(&serde_json::to_string(&n.waivers)?)),
        ("ended_reason", Value::Null),
        ("ended_on", Value::Null),
    ])?;
    Response::json(201, &agreement_json(&agreement(id)?)?)
}

fn agreement_json(a: &Row) -> Result<serde_json::Value> {
    let id = int(a, "id");
    let std = standard_for(a)?;
    let (done, passed, results) = progress(id)?;
    let (missing_modules, missing_items) = std.missing(&done, &waived(a), &passed);
    Ok(json!({
        "id": id,
        "speciality_id": int(a, "speciality_id"),
        "version": int(a, "version"),
        "job_type": text(a, "job_type"),
        "learner": int(a, "learner"),
        "school": text(a, "school"),
        "enterprise": text(a, "enterprise"),
        "mentor": int(a, "mentor"),
        "status": text(a, "status"),
        "signed": {
            "learner": opt_int(a, "signed_learner").is_some(),
            "school": opt_int(a, "signed_school").is_some(),
            "enterprise": opt_int(a, "signed_enterprise").is_some(),
        },
        "signed_on": opt_text(a, "signed_on"),
        "waivers": serde_json::from_str::<serde_json::Value>(text(a, "waivers")).unwrap_or_default(),
        "modules_done": done,
        "results": results,
        "missing": {"modules": missing_modules, "items": missing_items},
        "ended_reason": opt_text(a, "ended_reason"),
    }))
}

/// Modules recorded, items passed, and every result of an agreement.
pub(crate) fn progress(
    id: i64,
) -> Result<(BTreeSet<String>, BTreeSet<String>, Vec<serde_json::Value>)> {
    let done = all(MODULE_RECORDS, vec![eq("agreement_id", i(id))], vec![])?
        .iter()
        .map(|r| text(r, "module").to_string())
        .collect();
    let rows = all(RESULTS, vec![eq("agreement_id", i(id))], vec![])?;
    let passed = rows
        .iter()
        .filter(|r| flag(r, "passed"))
        .map(|r| text(r, "item").to_string())
        .collect();
    let results = rows
        .iter()
        .map(|r| json!({"item": text(r, "item"), "score": real(r, "score"), "passed": flag(r, "passed")}))
        .collect();
    Ok((done, passed, results))
}

/// The learner, the mentor, and staff at the school or the enterprise.
pub(crate) fn agreement_view(req: &Request) -> Result<Response> {
    let a = agreement(req.param_i64("id")?)?;
    let me = req.person()?;
    if me != int(&a, "learner")
        && me != int(&a, "mentor")
        && !is_staff(me, text(&a, "school"))?
        && !is_staff(me, text(&a, "enterprise"))?
    {
        return Err(Error::not_found(format!("no agreement {}", int(&a, "id"))));
    }
    Response::json(200, &agreement_json(&a)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Signature {
    /// `learner`, `school` or `enterprise`.
    party: String,
}

/// Record a party's acceptance; the agreement is active once all three
/// have signed.
pub(crate) fn sign(req: &Request) -> Result<Response> {
    let a = agreement(req.param_i64("id")?)?;
    let id = int(&a, "id");
    if text(&a, "status") != "draft" {
        return Err(Error::conflict(format!(
            "agreement {id} is {}; only a draft is signed",
            text(&a, "status")
        )));
    }
    let me = req.person()?;
    let s: Signature = body(req)?;
    let column = match s.party.as_str() {
        "learner" if me == int(&a, "learner") => "signed_learner",
        "school" if is_staff(me, text(&a, "school"))? => "signed_school",
        "enterprise" if is_staff(me, text(&a, "enterprise"))? => "signed_enterprise",
        "learner" | "school" | "enterprise" => {
            return Err(Error::forbidden(format!(
                "you cannot sign for the {}",
                s.party
            )))
        }
        other => {
            return Err(invalid(format!(
                "party {other:?}: learner, school or enterprise"
            )))
        }
    };
    if opt_int(&a, column).is_some() {
        return Err(Error::conflict(format!(
            "the {} has signed already",
            s.party
        )));
    }
    AGREEMENTS.update(&[i(id)], &[(column, i(me))])?;
    let a = agreement(id)?;
    let all_signed = ["signed_learner", "signed_school", "signed_enterprise"]
        .iter()
        .all(|c| opt_int(&a, c).is_some());
    if all_signed {
        AGREEMENTS.update(
            &[i(id)],
            &[("status", t("active")), ("signed_on", t(&today()))],
        )?;
    }
    Response::json(200, &agreement_json(&agreement(id)?)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ending {
    reason: String,
}

/// End an agreement with a reason (staff at the school or the enterprise).
pub(crate) fn end_agreement(req: &Request) -> Result<Response> {
    let a = agreement(req.param_i64("id")?)?;
    let id = int(&a, "id");
    let me = req.person()?;
    if !is_staff(me, text(&a, "school"))? && !is_staff(me, text(&a, "enterprise"))? {
        return Err(Error::forbidden(
            "ending an agreement needs staff at its school or enterprise",
        ));
    }
    let e: Ending = body(req)?;
    if e.reason.trim().is_empty() {
        return Err(invalid("an agreement is ended with a reason"));
    }
    if !matches!(text(&a, "status"), "draft" | "active") {
        return Err(Error::conflict(format!(
            "agreement {id} is {}",
            text(&a, "status")
        )));
    }
    AGREEMENTS.update(
        &[i(id)],
        &[
            ("status", t("ended")),
            ("ended_reason", t(e.reason.trim())),
            ("ended_on", t(&today())),
        ],
    )?;
    Response::json(200, &agreement_json(&agreement(id)?)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleRecord {
    #[serde(default)]
    hours: Option<i64>,
}

/// Record a module as completed: a theory (school) module by a teacher of
/// the school, a practice (enterprise) module by the learner's own mentor
/// once every party has signed.
pub(crate) fn record_module(req: &Request) -> Result<Response> {
    let a = agreement(req.param_i64("id")?)?;
    let id = int(&a, "id");
    let code = req.param("module").to_string();
    let std = standard_for(&a)?;
    let m = std.module(&code).ok_or_else(|| {
        Error::not_found(format!("no module {code} in this agreement's standard"))
    })?;
    let me = req.person()?;
    match m.place.as_str() {
        "school" => {
            if TEACHERS.get(&[t(text(&a, "school")), i(me)])?.is_none() {
                return Err(Error::forbidden(format!(
                    "theory module {code} is recorded by a teacher of {}",
                    text(&a, "school")
                )));
            }
            if !matches!(text(&a, "status"), "draft" | "active") {
                return Err(Error::conflict(format!(
                    "agreement {id} is {}",
                    text(&a, "status")
                )));
            }
        }
        _ => {
            if me != int(&a, "mentor")
                || !lifelong_sdk::identity::has_role(
                    me,
                    "enterprise_mentor",
                    text(&a, "enterprise"),
                )?
            {
                return Err(Error::forbidden(format!(
                    "practice module {code} is recorded by the learner's mentor at {}",
                    text(&a, "enterprise")
                )));
            }
            if text(&a, "status") != "active" {
                return Err(Error::conflict(format!(
                    "practice starts once every party has signed; agreement {id} is {}",
                    text(&a, "status")
                )));
            }
        }
    }
    if waived(&a).contains(&code) {
        return Err(Error::conflict(format!(
            "module {code} was waived for prior learning"
        )));
    }
    if MODULE_RECORDS.get(&[i(id), t(&code)])?.is_some() {
        return Err(Error::conflict(format!(
            "module {code} is recorded already"
        )));
    }
    let r: ModuleRecord = body(req)?;
    let hours = r.hours.unwrap_or(m.hours);
    if !(1..=m.hours).contains(&hours) {
        return Err(invalid(format!("hours must be 1-{}", m.hours)));
    }
    MODULE_RECORDS.insert(&[
        ("agreement_id", i(id)),
        ("module", t(&code)),
        ("place", t(&m.place)),
        ("hours", i(hours)),
        ("recorded_by", i(me)),
        ("on_date", t(&today())),
    ])?;
    Response::json(
        201,
        &json!({"agreement_id": id, "module": code, "hours": hours}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewResult {
    item: String,
    score: f64,
}

/// Record an assessment result (a committee member of the item's side; a
/// retake replaces the earlier result until completion).
pub(crate) fn record_result(req: &Request) -> Result<Response> {
    let a = agreement(req.param_i64("id")?)?;
    let id = int(&a, "id");
    if text(&a, "status") != "active" {
        return Err(Error::conflict(format!(
            "agreement {id} is {}; results are recorded while it is active",
            text(&a, "status")
        )));
    }
    let n: NewResult = body(req)?;
    let std = standard_for(&a)?;
    let item = std
        .item(&n.item)
        .ok_or_else(|| invalid(format!("no item {} in this agreement's standard", n.item)))?;
    if !(0.0..=100.0).contains(&n.score) {
        return Err(invalid("score must be 0-100"));
    }
    let me = req.person()?;
    let member = COMMITTEE
        .get(&[i(int(&a, "speciality_id")), i(me)])?
        .ok_or_else(|| Error::forbidden("results are recorded by the assessment committee"))?;
    if item.assessor != "committee" && text(&member, "side") != item.assessor {
        return Err(Error::forbidden(format!(
            "item {} is assessed by the committee's {} members",
            item.code, item.assessor
        )));
    }
    let passed = n.score >= item.pass_mark;
    let row = [
        ("agreement_id", i(id)),
        ("item", t(&item.code)),
        ("score", Value::Real(n.score)),
        ("passed", Value::Boolean(passed)),
        ("assessed_by", i(me)),
        ("on_date", t(&today())),
    ];
    if RESULTS.get(&[i(id), t(&item.code)])?.is_some() {
        RESULTS.update(&[i(id), t(&item.code)], &row[2..])?;
    } else {
        RESULTS.insert(&row)?;
    }
    Response::json(
        200,
        &json!({"agreement_id": id, "item": item.code, "score": n.score, "passed": passed}),
    )
}
