//! Specialities and their versioned job-type standards, partner enterprises
//! (approved as training places by the authority above the school), school
//! teachers (full-time and specially hired from enterprises, kept apart),
//! enterprise mentors (the kernel's `enterprise_mentor` role plus a
//! qualification record) and assessment committees.

use crate::standard::Standard;
use crate::*;

/// The speciality with this id (404 otherwise).
pub(crate) fn speciality(id: i64) -> Result<Row> {
    SPECIALITIES
        .get(&[i(id)])?
        .ok_or_else(|| Error::not_found(format!("no speciality {id}")))
}

/// A published standard version.
pub(crate) fn standard_of(speciality_id: i64, version: i64) -> Result<Standard> {
    let row = STANDARDS
        .get(&[i(speciality_id), i(version)])?
        .ok_or_else(|| Error::internal(format!("standard {speciality_id}@{version} is missing")))?;
    serde_json::from_str(text(&row, "body"))
        .map_err(|e| Error::internal(format!("standard {speciality_id}@{version}: {e}")))
}

fn check_standard(s: &Standard) -> Result<()> {
    s.check().map_err(invalid)?;
    if let Some(c) = &s.conversion {
        if c.is_empty()
            || c.len() > 64
            || !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(invalid("conversion must be a conversion standard's code"));
        }
    }
    Ok(())
}

/// `code` is an enterprise site (a training centre at city or township level).
fn enterprise(code: &str) -> Result<()> {
    let s = lifelong_sdk::sites::get(code).map_err(|_| invalid(format!("no site {code:?}")))?;
    if s.kind != "enterprise_training_centre" || s.status != "active" {
        return Err(invalid(format!(
            "{code} is not an active enterprise (enterprise_training_centre) site"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSpeciality {
    code: String,
    name: String,
    #[serde(default)]
    distance: bool,
    standard: Standard,
    #[serde(default)]
    partners: Vec<String>,
    /// Created on, if before today (recording an existing speciality).
    #[serde(default)]
    created_on: Option<String>,
}

/// Create a speciality offered by the request's site (staff there).
pub(crate) fn create_speciality(req: &Request) -> Result<Response> {
    let school = site(req)?.to_string();
    let by = staff_at(req, &school)?;
    let n: NewSpeciality = body(req)?;
    let kind = lifelong_sdk::sites::get(&school)?.kind;
    if matches!(
        kind.as_str(),
        "city" | "township" | "village" | "enterprise_training_centre"
    ) {
        return Err(invalid(format!(
            "a speciality is offered by a school; {school} is a {kind}"
        )));
    }
    if n.code.trim().is_empty() || n.name.trim().is_empty() {
        return Err(invalid("code and name must not be empty"));
    }
    check_standard(&n.standard)?;
    if !SPECIALITIES
        .select(vec![eq("code", t(&n.code))], vec![], 1, None)?
        .rows
        .is_empty()
    {
        return Err(Error::conflict(format!("speciality {} exists", n.code)));
    }
    for e in &n.partners {
        enterprise(e)?;
    }
    let on = match n.created_on {
        None => today(),
        Some(d) if !lifelong_sdk::is_date(&d) => {
            return Err(invalid(format!(
                "created_on: {d:?} is not a date (YYYY-MM-DD)"
            )))
        }
        Some(d) if d > today() => {
            return Err(invalid(format!(
                "created_on: {d} is in the future; record it on the day"
            )))
        }
        Some(d) => d,
    };
    let id = next("speciality")?;
    SPECIALITIES.insert(&[
        ("id", i(id)),
        ("code", t(&n.code)),
        ("name", t(n.name.trim())),
        ("school", t(&school)),
        ("distance", Value::Boolean(n.distance)),
        ("job_type", t(&n.standard.job_type)),
        ("version", i(1)),
        ("created_on", t(&on)),
    ])?;
    STANDARDS.insert(&[
        ("speciality_id", i(id)),
        ("version", i(1)),
        ("body", t(&serde_json::to_string(&n.standard)?)),
        ("published_on", t(&on)),
        ("published_by", i(by)),
    ])?;
    for e in &n.partners {
        if PARTNERS.get(&[i(id), t(e)])?.is_none() {
            PARTNERS.insert(&[
                ("speciality_id", i(id)),
                ("enterprise", t(e)),
                ("school", t(&school)),
                ("status", t("proposed")),
                ("approved_by", Value::Null),
                ("approved_on", Value::Null),
            ])?;
        }
    }
    Response::json(201, &speciality_json(&speciality(id)?)?)
}

fn speciality_json(r: &Row) -> Result<serde_json::Value> {
    let id = int(r, "id");
    let partners: Vec<_> = all(PARTNERS, vec![eq("speciality_id", i(id))], vec![])?
        .iter()
        .map(|p| json!({"enterprise": text(p, "enterprise"), "status": text(p, "status"), "approved_on": opt_text(p, "approved_on")}))
        .collect();
    let committee: Vec<_> = all(COMMITTEE, vec![eq("speciality_id", i(id))], vec![])?
        .iter()
        .map(|c| json!({"person_id": int(c, "person_id"), "side": text(c, "side")}))
        .collect();
    let version = int(r, "version");
    Ok(json!({
        "id": id,
        "code": text(r, "code"),
        "name": text(r, "name"),
        "school": text(r, "school"),
        "distance": flag(r, "distance"),
        "job_type": text(r, "job_type"),
        "version": version,
        "created_on": text(r, "created_on"),
        "standard": standard_of(id, version)?,
        "partners": partners,
        "committee": committee,
    }))
}

/// Specialities offered in the request site's subtree (anyone may read).
pub(crate) fn list_specialities(req: &Request) -> Result<Response> {
    let mut out = Vec::new();
    for code in subtree(site(req)?)? {
        for r in all(SPECIALITIES, vec![eq("school", t(&code))], vec![])? {
            out.push(json!({
                "id": int(&r, "id"), "code": text(&r, "code"), "name": text(&r, "name"),
                "school": text(&r, "school"), "distance": flag(&r, "distance"),
                "job_type": text(&r, "job_type"), "version": int(&r, "version"),
            }));
        }
    }
    Response::json(200, &json!({ "specialities": out }))
}

pub(crate) fn speciality_view(req: &Request) -> Result<Response> {
    Response::json(200, &speciality_json(&speciality(req.param_i64("id")?)?)?)
}

/// Publish a new standard version (staff at the school). Agreements keep
/// the version they were made under.
pub(crate) fn publish_standard(req: &Request) -> Result<Response> {
    let s = speciality(req.param_i64("id")?)?;
    let by = staff_at(req, text(&s, "school"))?;
    let n: Standard = body(req)?;
    check_standard(&n)?;
    let id = int(&s, "id");
    let version = int(&s, "version") + 1;
    STANDARDS.insert(&[
        ("speciality_id", i(id)),
        ("version", i(version)),
        ("body", t(&serde_json::to_string(&n)?)),
        ("published_on", t(&today())),
        ("published_by", i(by)),
    ])?;
    SPECIALITIES.update(
        &[i(id)],
        &[("version", i(version)), ("job_type", t(&n.job_type))],
    )?;
    Response::json(201, &json!({ "speciality_id": id, "version": version }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Partner {
    enterprise: String,
}

/// Propose a partner enterprise (staff at the school).
pub(crate) fn propose_partner(req: &Request) -> Result<Response> {
    let s = speciality(req.param_i64("id")?)?;
    staff_at(req, text(&s, "school"))?;
    let p: Partner = body(req)?;
    enterprise(&p.enterprise)?;
    let id = int(&s, "id");
    if PARTNERS.get(&[i(id), t(&p.enterprise)])?.is_some() {
        return Err(Error::conflict(format!(
            "{} is already a partner",
            p.enterprise
        )));
    }
    PARTNERS.insert(&[
        ("speciality_id", i(id)),
        ("enterprise", t(&p.enterprise)),
        ("school", t(text(&s, "school"))),
        ("status", t("proposed")),
        ("approved_by", Value::Null),
        ("approved_on", Value::Null),
    ])?;
    Response::json(
        201,
        &json!({ "enterprise": p.enterprise, "status": "proposed" }),
    )
}

/// Approve an enterprise as a training place for the speciality: staff of
/// the authority above the school (its township or the city), not the
/// school's own.
pub(crate) fn approve_partner(req: &Request) -> Result<Response> {
    let s = speciality(req.param_i64("id")?)?;
    let id = int(&s, "id");
    let e = req.param("enterprise").to_string();
    let school = lifelong_sdk::sites::get(text(&s, "school"))?;
    let above = school
        .parent
        .ok_or_else(|| Error::internal("a school without a parent site"))?;
    let by = staff_at(req, &above)?;
    let row = PARTNERS
        .get(&[i(id), t(&e)])?
        .ok_or_else(|| Error::not_found(format!("{e} is not a proposed partner")))?;
    if text(&row, "status") == "approved" {
        return Err(Error::conflict(format!("{e} is already approved")));
    }
    PARTNERS.update(
        &[i(id), t(&e)],
        &[
            ("status", t("approved")),
            ("approved_by", i(by)),
            ("approved_on", t(&today())),
        ],
    )?;
    Response::json(200, &json!({ "enterprise": e, "status": "approved" }))
}

pub(crate) fn approved_partner(speciality_id: i64, enterprise: &str) -> Result<bool> {
    Ok(PARTNERS
        .get(&[i(speciality_id), t(enterprise)])?
        .is_some_and(|p| text(&p, "status") == "approved"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTeacher {
    person_id: i64,
    /// `full_time` or `enterprise_hired`.
    kind: String,
    #[serde(default)]
    enterprise: Option<String>,
}

/// Register a teacher at the request's school (staff there).
pub(crate) fn add_teacher(req: &Request) -> Result<Response> {
    let school = site(req)?.to_string();
    staff_at(req, &school)?;
    let n: NewTeacher = body(req)?;
    match (n.kind.as_str(), &n.enterprise) {
        ("full_time", None) => {}
        ("enterprise_hired", Some(e)) => enterprise(e)?,
        _ => {
            return Err(invalid(
                "kind is full_time (no enterprise) or enterprise_hired (with the enterprise)",
            ))
        }
    }
    let p = lifelong_sdk::identity::get(n.person_id)?;
    if TEACHERS.get(&[t(&school), i(n.person_id)])?.is_some() {
        return Err(Error::conflict(format!(
            "person {} already teaches at {school}",
            n.person_id
        )));
    }
    TEACHERS.insert(&[
        ("school", t(&school)),
        ("person_id", i(n.person_id)),
        ("kind", t(&n.kind)),
        ("enterprise", opt_t(n.enterprise.as_deref())),
        ("name", t(&p.name)),
    ])?;
    Response::json(
        201,
        &json!({ "person_id": n.person_id, "school": school, "kind": n.kind }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMentor {
    person_id: i64,
    qualification: String,
    valid_until: String,
}

/// Register (or renew) an enterprise mentor at the request's enterprise
/// (staff there): the kernel's `enterprise_mentor` role is granted through
/// the kernel, and the qualification record kept.
pub(crate) fn add_mentor(req: &Request) -> Result<Response> {
    let ent = site(req)?.to_string();
    staff_at(req, &ent)?;
    enterprise(&ent)?;
    let n: NewMentor = body(req)?;
    if n.qualification.trim().is_empty() {
        return Err(invalid("qualification must not be empty"));
    }
    if n.valid_until.len() != 10 || n.valid_until < today() {
        return Err(invalid(
            "valid_until must be a date (YYYY-MM-DD), today or later",
        ));
    }
    let p = lifelong_sdk::identity::get(n.person_id)?;
    lifelong_sdk::identity::grant_role(n.person_id, "enterprise_mentor", &ent)?;
    let row = [
        ("enterprise", t(&ent)),
        ("person_id", i(n.person_id)),
        ("name", t(&p.name)),
        ("qualification", t(n.qualification.trim())),
        ("valid_until", t(&n.valid_until)),
    ];
    if MENTORS.get(&[t(&ent), i(n.person_id)])?.is_some() {
        MENTORS.update(&[t(&ent), i(n.person_id)], &row[2..])?;
    } else {
        MENTORS.insert(&row)?;
    }
    Response::json(
        201,
        &json!({ "enterprise": ent, "person_id": n.person_id, "valid_until": n.valid_until }),
    )
}

/// The mentors of the request's enterprise (staff there).
pub(crate) fn list_mentors(req: &Request) -> Result<Response> {
    let ent = site(req)?.to_string();
    staff_at(req, &ent)?;
    let on = today();
    let out: Vec<_> = all(MENTORS, vec![eq("enterprise", t(&ent))], vec![])?
        .iter()
        .map(|m| {
            json!({
                "person_id": int(m, "person_id"), "name": text(m, "name"),
                "qualification": text(m, "qualification"), "valid_until": text(m, "valid_until"),
                "qualified": text(m, "valid_until") >= on.as_str(),
            })
        })
        .collect();
    Response::json(200, &json!({ "mentors": out }))
}

/// `person` may mentor at `enterprise` now: a qualification record valid
/// today and the kernel's role there.
pub(crate) fn qualified_mentor(enterprise: &str, person: i64) -> Result<()> {
    let row = MENTORS.get(&[t(enterprise), i(person)])?.ok_or_else(|| {
        Error::conflict(format!("person {person} is not a mentor at {enterprise}"))
    })?;
    if text(&row, "valid_until") < today().as_str() {
        return Err(Error::conflict(format!(
            "mentor {person}'s qualification lapsed on {}",
            text(&row, "valid_until")
        )));
    }
    if !lifelong_sdk::identity::has_role(person, "enterprise_mentor", enterprise)? {
        return Err(Error::conflict(format!(
            "person {person} does not hold the enterprise_mentor role at {enterprise}"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    person_id: i64,
    /// `school` or `enterprise`.
    side: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Committee {
    members: Vec<Member>,
}

/// Set the speciality's assessment committee (staff at the school): school
/// members are its teachers, enterprise members mentors at an approved
/// partner; at least one of each.
pub(crate) fn set_committee(req: &Request) -> Result<Response> {
    let s = speciality(req.param_i64("id")?)?;
    let school = text(&s, "school").to_string();
    staff_at(req, &school)?;
    let id = int(&s, "id");
    let c: Committee = body(req)?;
    let mut sides = std::collections::BTreeSet::new();
    for m in &c.members {
        match m.side.as_str() {
            "school" => {
                if TEACHERS.get(&[t(&school), i(m.person_id)])?.is_none() {
                    return Err(invalid(format!(
                        "person {} is not a teacher at {school}",
                        m.person_id
                    )));
                }
            }
            "enterprise" => {
                let mentor_at = all(PARTNERS, vec![eq("speciality_id", i(id))], vec![])?
                    .iter()
                    .filter(|p| text(p, "status") == "approved")
                    .any(|p| {
                        MENTORS
                            .get(&[t(text(p, "enterprise")), i(m.person_id)])
                            .ok()
                            .flatten()
                            .is_some()
                    });
                if !mentor_at {
                    return Err(invalid(format!(
                        "person {} is not a mentor at an approved partner enterprise",
                        m.person_id
                    )));
                }
            }
            other => return Err(invalid(format!("side {other:?}: school or enterprise"))),
        }
        sides.insert(m.side.as_str());
    }
    if sides.len() != 2 {
        return Err(invalid(
            "a committee has at least one school and one enterprise member",
        ));
    }
    for old in all(COMMITTEE, vec![eq("speciality_id", i(id))], vec![])? {
        COMMITTEE.delete(&[i(id), i(int(&old, "person_id"))])?;
    }
    for m in &c.members {
        COMMITTEE.insert(&[
            ("speciality_id", i(id)),
            ("person_id", i(m.person_id)),
            ("side", t(&m.side)),
        ])?;
    }
    Response::json(200, &speciality_json(&speciality(id)?)?)
}
