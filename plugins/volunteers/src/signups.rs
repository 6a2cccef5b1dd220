//! Sign-up and attendance: applied → confirmed → attended / no-show /
//! cancelled / rejected. Confirmed places never exceed the number wanted
//! (one conditional update on the need's counter); requirements are checked
//! at sign-up; nobody holds two confirmed (or attended) shifts that
//! overlap. A public need with `auto_confirm` confirms sign-ups while
//! places are free (the rest wait as applied); otherwise coordinators
//! confirm or reject.

use crate::*;
use lifelong_sdk::tables::{cmp, cmp_columns, Op};

pub(crate) fn signup_json(r: &Row) -> serde_json::Value {
    json!({
        "id": int(r, "id"),
        "need_id": int(r, "need_id"),
        "person_id": int(r, "person_id"),
        "site": text(r, "site"),
        "status": text(r, "status"),
        "starts_at": time::fmt_at(int(r, "starts_at")),
        "ends_at": time::fmt_at(int(r, "ends_at")),
        "check_in": opt_int(r, "check_in").map(time::fmt_at),
        "check_out": opt_int(r, "check_out").map(time::fmt_at),
        "hours_id": opt_int(r, "hours_id"),
    })
}

fn signup(id: i64) -> Result<Row> {
    SIGNUPS
        .get(&[i(id)])?
        .ok_or_else(|| Error::not_found(format!("no sign-up {id}")))
}

/// The sign-up `id` at the request's site.
fn signup_here(req: &Request, id: i64) -> Result<Row> {
    let r = signup(id)?;
    if text(&r, "site") == site(req)? {
        Ok(r)
    } else {
        Err(Error::not_found(format!("no sign-up {id} at this site")))
    }
}

/// Can this volunteer serve this need? (registered, age, training)
pub(crate) fn check_requirements(person: i64, need: &Row, on: &str) -> Result<Row> {
    let v = registry::volunteer(person)?
        .ok_or_else(|| Error::conflict(format!("person {person} is not a registered volunteer")))?;
    if flag(need, "adult_only") {
        let age = time::age(text(&v, "birth_date"), on).unwrap_or(0);
        if age < setting("adult_age")? {
            return Err(Error::conflict(format!(
                "this need is for volunteers aged {} and over",
                setting("adult_age")?
            )));
        }
    }
    if let Some(course) = opt_text(need, "requires_training") {
        if !registry::trained(person, &course, on)? {
            return Err(Error::conflict(format!(
                "this need requires the training {course:?}, valid on {on}"
            )));
        }
    }
    Ok(v)
}

/// Refuse if `person` holds a fixed shift overlapping [starts, ends): one
/// confirmed, or one already served (attended) — checking in and out does
/// not give its time back.
fn check_overlap(person: i64, starts: i64, ends: i64, except: Option<i64>) -> Result<()> {
    for status in ["confirmed", "attended"] {
        let held = all(
            SIGNUPS,
            vec![
                eq("person_id", i(person)),
                eq("status", t(status)),
                cmp("starts_at", Op::Lt, i(ends)),
            ],
            vec![],
        )?;
        if let Some(r) = held.iter().find(|r| {
            flag(r, "fixed") && int(r, "ends_at") > starts && Some(int(r, "id")) != except
        }) {
            return Err(Error::conflict(format!(
                "this shift overlaps the {status} shift of need {} ({} to {})",
                int(r, "need_id"),
                time::fmt_at(int(r, "starts_at")),
                time::fmt_at(int(r, "ends_at"))
            )));
        }
    }
    Ok(())
}

/// Take one place of `need` if one is free: one conditional update.
fn take_place(need: i64) -> Result<bool> {
    Ok(NEEDS.update_where(
        &[
            eq("id", i(need)),
            cmp_columns("confirmed", Op::Lt, "max_wanted"),
        ],
        &[add("confirmed", 1)],
    )? == 1)
}

fn free_place(need: i64) -> Result<()> {
    NEEDS.update_where(
        &[eq("id", i(need)), cmp("confirmed", Op::Gt, i(0))],
        &[add("confirmed", -1)],
    )?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUp {
    /// A coordinator assigning someone; default the caller.
    #[serde(default)]
    person_id: Option<i64>,
}

/// Sign up for a need: the caller for a public need before it starts (or
/// ends, for a window), or a coordinator assigning a volunteer.
pub(crate) fn sign_up(req: &Request) -> Result<Response> {
    let caller = req.person()?;
    let n = need_here(req, req.param_i64("id")?)?;
    let need_id = int(&n, "id");
    let s: SignUp = body(req)?;
    let (person, assigned) = match s.person_id {
        Some(p) if p != caller => {
            staff(req)?;
            (p, true)
        }
        _ => (caller, false),
    };
    if text(&n, "status") != "open" {
        return Err(Error::conflict(format!("need {need_id} is closed")));
    }
    let (starts, ends, fixed) = (
        int(&n, "starts_at"),
        int(&n, "ends_at"),
        !flag(&n, "flexible"),
    );
    let now = now_minutes()?;
    if !assigned {
        if !flag(&n, "public") {
            return Err(Error::forbidden("this need is not open for public sign-up"));
        }
        if (fixed && now >= starts) || now >= ends {
            return Err(Error::conflict("this shift has already started"));
        }
    }
    let on = time::date_at(if fixed { starts } else { starts.max(now) });
    check_requirements(person, &n, &on)?;
    let existing = SIGNUPS
        .select(
            vec![eq("need_id", i(need_id)), eq("person_id", i(person))],
            vec![],
            1,
            None,
        )?
        .rows
        .into_iter()
        .next();
    if let Some(e) = &existing {
        if !matches!(text(e, "status"), "cancelled") {
            return Err(Error::conflict(format!(
                "person {person} already signed up for need {need_id} ({})",
                text(e, "status")
            )));
        }
    }
    if fixed {
        check_overlap(person, starts, ends, None)?;
    }
    let confirm = assigned || flag(&n, "auto_confirm");
    let status = if confirm && take_place(need_id)? {
        "confirmed"
    } else if assigned {
        return Err(Error::conflict(format!(
            "need {need_id} has all {} places confirmed",
            int(&n, "max_wanted")
        )));
    } else {
        "applied"
    };
    let row = match existing {
        Some(e) => {
            SIGNUPS.update(
                &[i(int(&e, "id"))],
                &[("status", t(status)), ("at", i(now))],
            )?;
            signup(int(&e, "id"))?
        }
        None => SIGNUPS.insert(&[
            ("need_id", i(need_id)),
            ("person_id", i(person)),
            ("site", t(&req.site)),
            ("status", t(status)),
            ("starts_at", i(starts)),
            ("ends_at", i(ends)),
            ("fixed", b(fixed)),
            ("at", i(now)),
            ("check_in", Value::Null),
            ("check_out", Value::Null),
            ("hours_id", Value::Null),
        ])?,
    };
    Response::json(201, &signup_json(&row))
}

/// A need's sign-ups by state (coordinators).
pub(crate) fn roster(req: &Request) -> Result<Response> {
    staff(req)?;
    let n = need_here(req, req.param_i64("id")?)?;
    let mut out = serde_json::Map::new();
    for st in [
        "applied",
        "confirmed",
        "attended",
        "no_show",
        "cancelled",
        "rejected",
    ] {
        let rows = all(
            SIGNUPS,
            vec![eq("need_id", i(int(&n, "id"))), eq("status", t(st))],
            vec![],
        )?;
        out.insert(
            st.into(),
            json!(rows.iter().map(signup_json).collect::<Vec<_>>()),
        );
    }
    Response::json(200, &json!({"need": need_json(&n), "signups": out}))
}

/// A coordinator confirms an applied sign-up, if a place is free.
pub(crate) fn confirm(req: &Request) -> Result<Response> {
    staff(req)?;
    let s = signup_here(req, req.param_i64("id")?)?;
    if text(&s, "status") != "applied" {
        return Err(Error::conflict(format!(
            "sign-up {} is {}",
            int(&s, "id"),
            text(&s, "status")
        )));
    }
    let n = need(int(&s, "need_id"))?;
    if text(&n, "status") != "open" {
        return Err(Error::conflict(format!("need {} is closed", int(&n, "id"))));
    }
    let person = int(&s, "person_id");
    check_requirements(
        person,
        &n,
        &time::date_at(int(&n, "starts_at").max(now_minutes()?)),
    )?;
    if flag(&s, "fixed") {
        check_overlap(
            person,
            int(&s, "starts_at"),
            int(&s, "ends_at"),
            Some(int(&s, "id")),
        )?;
    }
    if !take_place(int(&n, "id"))? {
        return Err(Error::conflict(format!(
            "need {} has all {} places confirmed",
            int(&n, "id"),
            int(&n, "max_wanted")
        )));
    }
    SIGNUPS.update(&[i(int(&s, "id"))], &[("status", t("confirmed"))])?;
    Response::json(200, &signup_json(&signup(int(&s, "id"))?))
}

/// A coordinator rejects a sign-up (freeing its place if it had one).
pub(crate) fn reject(req: &Request) -> Result<Response> {
    staff(req)?;
    let s = signup_here(req, req.param_i64("id")?)?;
    let was = text(&s, "status").to_string();
    if !matches!(was.as_str(), "applied" | "confirmed") {
        return Err(Error::conflict(format!(
            "sign-up {} is {was}",
            int(&s, "id")
        )));
    }
    if was == "confirmed" {
        free_place(int(&s, "need_id"))?;
    }
    SIGNUPS.update(&[i(int(&s, "id"))], &[("status", t("rejected"))])?;
    Response::json(200, &signup_json(&signup(int(&s, "id"))?))
}

/// The volunteer cancels up to the cut-off before the shift; a coordinator
/// at any time before check-in.
pub(crate) fn cancel(req: &Request) -> Result<Response> {
    let caller = req.person()?;
    let s = signup_here(req, req.param_i64("id")?)?;
    let coordinator = is_staff(caller, &req.site)?;
    if int(&s, "person_id") != caller && !coordinator {
        return Err(Error::forbidden(
            "only the volunteer or a coordinator cancels a sign-up",
        ));
    }
    let was = text(&s, "status").to_string();
    if !matches!(was.as_str(), "applied" | "confirmed") || opt_int(&s, "check_in").is_some() {
        return Err(Error::conflict(format!(
            "sign-up {} is {was}",
            int(&s, "id")
        )));
    }
    if !coordinator && flag(&s, "fixed") {
        let cutoff = int(&s, "starts_at") - setting("cancel_cutoff_hours")? * 60;
        if now_minutes()? > cutoff {
            return Err(Error::conflict(format!(
                "sign-ups are cancelled up to {}; ask the coordinator",
                time::fmt_at(cutoff)
            )));
        }
    }
    if was == "confirmed" {
        free_place(int(&s, "need_id"))?;
    }
    SIGNUPS.update(&[i(int(&s, "id"))], &[("status", t("cancelled"))])?;
    Response::json(200, &signup_json(&signup(int(&s, "id"))?))
}

/// A coordinator marks a confirmed volunteer who never checked in.
pub(crate) fn no_show(req: &Request) -> Result<Response> {
    staff(req)?;
    let s = signup_here(req, req.param_i64("id")?)?;
    if text(&s, "status") != "confirmed" || opt_int(&s, "check_in").is_some() {
        return Err(Error::conflict(
            "only a confirmed sign-up without check-in can be a no-show",
        ));
    }
    if now_minutes()? < int(&s, "starts_at") {
        return Err(Error::conflict("the shift has not started yet"));
    }
    SIGNUPS.update(&[i(int(&s, "id"))], &[("status", t("no_show"))])?;
    Response::json(200, &signup_json(&signup(int(&s, "id"))?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Clock {
    /// A coordinator recording the time afterwards; default now.
    #[serde(default)]
    at: Option<String>,
    /// Check-out: the minutes actually served (default the whole interval).
    #[serde(default)]
    minutes: Option<i64>,
}

/// The time a check-in or -out is recorded at: now for the volunteer, or a
/// coordinator's `at` (not in the future).
fn clock_time(req: &Request, s: &Row, c: &Clock) -> Result<(i64, bool)> {
    let caller = req.person()?;
    let coordinator = is_staff(caller, &req.site)?;
    if int(s, "person_id") != caller && !coordinator {
        return Err(Error::forbidden(
            "only the volunteer or a coordinator checks in and out",
        ));
    }
    let now = now_minutes()?;
    match &c.at {
        Some(at) if coordinator => {
            let at = time::parse_at(at).ok_or_else(|| invalid("at is YYYY-MM-DDTHH:MM"))?;
            if at > now {
                return Err(invalid("at is not in the future"));
            }
            Ok((at, true))
        }
        Some(_) => Err(Error::forbidden(
            "only a coordinator records a time other than now",
        )),
        None => Ok((now, coordinator)),
    }
}

pub(crate) fn check_in(req: &Request) -> Result<Response> {
    let s = signup_here(req, req.param_i64("id")?)?;
    let c: Clock = body(req)?;
    let (at, coordinator) = clock_time(req, &s, &c)?;
    if text(&s, "status") != "confirmed" || opt_int(&s, "check_in").is_some() {
        return Err(Error::conflict(format!(
            "only a confirmed sign-up not yet checked in can check in (this one is {})",
            text(&s, "status")
        )));
    }
    let early = if coordinator {
        24 * 60
    } else {
        setting("checkin_early_minutes")?
    };
    if at < int(&s, "starts_at") - early || at >= int(&s, "ends_at") {
        return Err(Error::conflict(format!(
            "check-in is open from {} until {}",
            time::fmt_at(int(&s, "starts_at") - early),
            time::fmt_at(int(&s, "ends_at"))
        )));
    }
    SIGNUPS.update(&[i(int(&s, "id"))], &[("check_in", i(at))])?;
    Response::json(200, &signup_json(&signup(int(&s, "id"))?))
}

/// Check out: the sign-up is attended and its hours wait for verification.
pub(crate) fn check_out(req: &Request) -> Result<Response> {
    let s = signup_here(req, req.param_i64("id")?)?;
    let c: Clock = body(req)?;
    let (at, _) = clock_time(req, &s, &c)?;
    let Some(check_in) = opt_int(&s, "check_in") else {
        return Err(Error::conflict("check in first"));
    };
    if opt_int(&s, "check_out").is_some() {
        return Err(Error::conflict("already checked out"));
    }
    if at <= check_in {
        return Err(invalid("check-out is after check-in"));
    }
    let n = need(int(&s, "need_id"))?;
    let h = hours::insert_hours(
        int(&s, "person_id"),
        &n,
        Some(int(&s, "id")),
        check_in,
        at,
        c.minutes,
        req.person()?,
    )?;
    SIGNUPS.update(
        &[i(int(&s, "id"))],
        &[
            ("check_out", i(at)),
            ("status", t("attended")),
            ("hours_id", i(int(&h, "id"))),
        ],
    )?;
    Response::json(
        200,
        &json!({"signup": signup_json(&signup(int(&s, "id"))?), "hours": hours::hours_json(&h)}),
    )
}
