//! Teachers and their certificates, and attendance turning into a
//! completed course in the learner's account.

use crate::*;

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

pub(crate) fn register_teacher(req: &Request) -> Result<Response> {
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
pub(crate) fn cannot_teach(teacher: &Row, on: &str) -> Option<String> {
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
pub(crate) fn update_certificate(req: &Request) -> Result<Response> {
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

pub(crate) fn assign_teacher(req: &Request) -> Result<Response> {
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

pub(crate) fn list_teachers(req: &Request) -> Result<Response> {
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

// ------------------------------------------------------------- attendance

/// The caller teaches this course, or administers its site.
pub(crate) fn teacher_or_staff(req: &Request, c: &Row) -> Result<i64> {
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
pub(crate) fn attendance(req: &Request) -> Result<Response> {
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
