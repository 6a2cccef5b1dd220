//! Enrolment: eligibility, the per-term limit, first-come seats with a
//! waitlist, the seeded lottery, withdrawal and promotion, rosters and a
//! learner's own courses and record.

use crate::*;

/// Enrolment states that hold a place (count towards the per-term limit).
const ACTIVE: &[&str] = &["enrolled", "waitlisted", "applied"];

// ---------------------------------------------------------------- enrolment

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Who {
    /// Staff may act for a learner; learners act for themselves.
    person_id: Option<i64>,
}

/// The person a learner route acts for: the caller, or (staff only) the
/// person named in the body.
pub(crate) fn acting_for(req: &Request) -> Result<i64> {
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

pub(crate) fn enrolment_of(course_id: i64, person: i64) -> Result<Option<Row>> {
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
pub(crate) fn check_eligible(person: i64) -> Result<()> {
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
pub(crate) fn is_returning(person: i64, term_id: i64, site: &str) -> Result<bool> {
    let rows = all(ENROLMENTS, vec![eq("person_id", i(person))], vec![])?;
    Ok(rows.iter().any(|r| {
        text(r, "status") == "enrolled" && int(r, "term_id") != term_id && text(r, "site") == site
    }))
}

pub(crate) fn enrol(req: &Request) -> Result<Response> {
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
pub(crate) fn waitlist_position(course_id: i64, queue: i64) -> Result<i64> {
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

pub(crate) fn withdraw(req: &Request) -> Result<Response> {
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
pub(crate) fn promote(c: &Row) -> Result<Option<i64>> {
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

pub(crate) fn draw(req: &Request) -> Result<Response> {
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

pub(crate) fn lottery_json(
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
pub(crate) fn lottery_view(req: &Request) -> Result<Response> {
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

pub(crate) fn roster(req: &Request) -> Result<Response> {
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

pub(crate) fn my_courses(req: &Request) -> Result<Response> {
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

pub(crate) fn my_record(req: &Request) -> Result<Response> {
    let me = req.person()?;
    let rows = all(COMPLETIONS, vec![eq("person_id", i(me))], vec![])?;
    let items: Vec<_> = rows
        .iter()
        .map(|r| json!({ "course_id": int(r, "course_id"), "site": text(r, "site"), "ledger_entry": int(r, "entry_id"), "credits": real(r, "credits") }))
        .collect();
    let credits: f64 = rows.iter().map(|r| real(r, "credits")).sum();
    Response::json(200, &json!({ "completed": items, "credits": credits }))
}
