//! Recognition: star tiers and commendations go on public notice for
//! `notice_working_days` working days and are conferred only after it ends
//! without a pending or upheld objection; an upheld objection for
//! falsified hours blocks the volunteer for `block_years` years.

use crate::*;

fn commendation(id: i64) -> Result<Row> {
    COMMENDATIONS
        .get(&[i(id)])?
        .ok_or_else(|| Error::not_found(format!("no commendation {id}")))
}

fn commendation_json(c: &Row, v: Option<&Row>) -> serde_json::Value {
    json!({
        "id": int(c, "id"),
        "person_id": int(c, "person_id"),
        "name": v.map(|v| text(v, "name")),
        "number": v.map(|v| text(v, "number")),
        "site": text(c, "site"),
        "kind": text(c, "kind"),
        "tier": int(c, "tier"),
        "title": text(c, "title"),
        "status": text(c, "status"),
        "notice_from": text(c, "notice_from"),
        "notice_until": text(c, "notice_until"),
        "decided_on": opt_text(c, "decided_on"),
    })
}

fn blocked(v: &Row, on: &str) -> Option<String> {
    opt_text(v, "blocked_until").filter(|until| until.as_str() >= on)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Proposal {
    number: String,
    /// A star tier (1-5) the volunteer's verified hours earn…
    #[serde(default)]
    tier: Option<i64>,
    /// …or a named commendation.
    #[serde(default)]
    title: Option<String>,
}

/// A coordinator puts a tier or commendation on public notice.
pub(crate) fn propose(req: &Request) -> Result<Response> {
    let by = staff(req)?;
    let p: Proposal = req.json()?;
    let v = registry::by_number(&p.number)?;
    let person = int(&v, "person_id");
    let on = today();
    if let Some(until) = blocked(&v, &on) {
        return Err(Error::conflict(format!(
            "{} is not eligible for tiers or commendations until {until} (an upheld objection for falsified hours)",
            p.number
        )));
    }
    let (kind, tier, title) = match (p.tier, p.title) {
        (Some(n), None) => {
            if !(1..=5).contains(&n) {
                return Err(invalid("tier is 1 to 5"));
            }
            let earned = time::tier(int(&v, "minutes"), &registry::thresholds()?);
            if n > earned {
                return Err(Error::conflict(format!(
                    "{}'s verified hours earn tier {earned}, not {n}",
                    p.number
                )));
            }
            if n <= int(&v, "conferred_tier") {
                return Err(Error::conflict(format!(
                    "{} already holds tier {}",
                    p.number,
                    int(&v, "conferred_tier")
                )));
            }
            ("tier", n, format!("{}星级志愿者", "★".repeat(n as usize)))
        }
        (None, Some(title)) if !title.trim().is_empty() && title.chars().count() <= 100 => {
            ("commendation", 0, title.trim().to_string())
        }
        _ => {
            return Err(invalid(
                "give either tier (1-5) or title (1-100 characters)",
            ))
        }
    };
    for st in ["notice", "objected"] {
        let open = all(COMMENDATIONS, vec![eq("person_id", i(person))], vec![])?;
        if open
            .iter()
            .any(|c| text(c, "status") == st && text(c, "title") == title)
        {
            return Err(Error::conflict(format!(
                "{title} for {} is already on notice",
                p.number
            )));
        }
    }
    let days = setting("notice_working_days")?.max(0);
    let until = if days == 0 {
        time::date_of(time::day_number(&on).unwrap_or(0) - 1)
    } else {
        time::working_days_after(&on, days).ok_or_else(|| Error::internal("today is unreadable"))?
    };
    let c = COMMENDATIONS.insert(&[
        ("person_id", i(person)),
        ("site", t(&req.site)),
        ("kind", t(kind)),
        ("tier", i(tier)),
        ("title", t(&title)),
        ("status", t("notice")),
        ("notice_from", t(&on)),
        ("notice_until", t(&until)),
        ("proposed_by", i(by)),
        ("decided_on", Value::Null),
    ])?;
    Response::json(201, &commendation_json(&c, Some(&v)))
}

/// The public notice board of the site: names, numbers and what they are
/// proposed for, while on notice or under objection.
pub(crate) fn notices(req: &Request) -> Result<Response> {
    let site = site(req)?;
    let mut items = Vec::new();
    for st in ["notice", "objected"] {
        for c in all(
            COMMENDATIONS,
            vec![eq("site", t(site)), eq("status", t(st))],
            vec![],
        )? {
            let v = registry::volunteer(int(&c, "person_id"))?;
            let mut j = commendation_json(&c, v.as_ref());
            j.as_object_mut().map(|o| o.remove("person_id"));
            items.push(j);
        }
    }
    Response::json(200, &json!({ "items": items }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Objection {
    reason: String,
    #[serde(default)]
    falsified_hours: bool,
}

/// Anyone signed in objects to a tier or commendation on notice.
pub(crate) fn object(req: &Request) -> Result<Response> {
    let by = req.person()?;
    let id = req.param_i64("id")?;
    let c = commendation(id)?;
    let o: Objection = req.json()?;
    if o.reason.trim().is_empty() || o.reason.chars().count() > 1000 {
        return Err(invalid("reason is 1-1000 characters"));
    }
    if !matches!(text(&c, "status"), "notice" | "objected") {
        return Err(Error::conflict(format!(
            "commendation {id} is {}",
            text(&c, "status")
        )));
    }
    let row = OBJECTIONS.insert(&[
        ("commendation_id", i(id)),
        ("by_person", i(by)),
        ("reason", t(o.reason.trim())),
        ("falsified_hours", b(o.falsified_hours)),
        ("status", t("pending")),
        ("decided_by", Value::Null),
    ])?;
    COMMENDATIONS.update(&[i(id)], &[("status", t("objected"))])?;
    Response::json(
        201,
        &json!({"id": int(&row, "id"), "commendation_id": id, "status": "pending"}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    upheld: bool,
}

/// A coordinator at the commendation's site decides an objection. Upheld:
/// the commendation is refused, and for falsified hours the volunteer is
/// blocked. Dismissed: back on notice once no objection is pending.
pub(crate) fn decide(req: &Request) -> Result<Response> {
    let id = req.param_i64("id")?;
    let o = OBJECTIONS
        .get(&[i(id)])?
        .ok_or_else(|| Error::not_found(format!("no objection {id}")))?;
    let c = commendation(int(&o, "commendation_id"))?;
    let by = staff_at(req, text(&c, "site"))?;
    let d: Decision = req.json()?;
    if text(&o, "status") != "pending" {
        return Err(Error::conflict(format!(
            "objection {id} is {}",
            text(&o, "status")
        )));
    }
    let cid = int(&c, "id");
    let on = today();
    let mut blocked_until = None;
    if d.upheld {
        if flag(&o, "falsified_hours") {
            let years = setting("block_years")?.clamp(1, 3);
            let until = time::add_years(&on, years)
                .ok_or_else(|| Error::internal("today is unreadable"))?;
            VOLUNTEERS.update(&[i(int(&c, "person_id"))], &[("blocked_until", t(&until))])?;
            blocked_until = Some(until);
        }
        COMMENDATIONS.update(
            &[i(cid)],
            &[("status", t("refused")), ("decided_on", t(&on))],
        )?;
    }
    OBJECTIONS.update(
        &[i(id)],
        &[
            ("status", t(if d.upheld { "upheld" } else { "dismissed" })),
            ("decided_by", i(by)),
        ],
    )?;
    if !d.upheld {
        let pending = all(
            OBJECTIONS,
            vec![eq("commendation_id", i(cid)), eq("status", t("pending"))],
            vec![],
        )?;
        if pending.is_empty() && text(&c, "status") == "objected" {
            COMMENDATIONS.update(&[i(cid)], &[("status", t("notice"))])?;
        }
    }
    let c = commendation(cid)?;
    Response::json(
        200,
        &json!({"objection": id, "upheld": d.upheld, "blocked_until": blocked_until, "commendation": commendation_json(&c, None)}),
    )
}

/// Confer a tier or commendation whose notice has ended without objection.
pub(crate) fn confer(req: &Request) -> Result<Response> {
    let id = req.param_i64("id")?;
    let c = commendation(id)?;
    staff_at(req, text(&c, "site"))?;
    let on = today();
    match text(&c, "status") {
        "notice" => {}
        "objected" => return Err(Error::conflict("an objection is pending; decide it first")),
        other => return Err(Error::conflict(format!("commendation {id} is {other}"))),
    }
    if text(&c, "notice_until") >= on.as_str() {
        return Err(Error::conflict(format!(
            "the public notice runs until {}; conferral from the next day",
            text(&c, "notice_until")
        )));
    }
    let person = int(&c, "person_id");
    let v = registry::volunteer(person)?.ok_or_else(|| Error::internal("volunteer vanished"))?;
    if let Some(until) = blocked(&v, &on) {
        return Err(Error::conflict(format!(
            "the volunteer is blocked until {until}"
        )));
    }
    let tier = int(&c, "tier");
    if text(&c, "kind") == "tier" {
        let earned = time::tier(int(&v, "minutes"), &registry::thresholds()?);
        if tier > earned {
            return Err(Error::conflict(format!(
                "verified hours now earn tier {earned}, below {tier} (hours were reversed)"
            )));
        }
        if tier > int(&v, "conferred_tier") {
            VOLUNTEERS.update(&[i(person)], &[("conferred_tier", i(tier))])?;
        }
    }
    COMMENDATIONS.update(
        &[i(id)],
        &[("status", t("conferred")), ("decided_on", t(&on))],
    )?;
    Response::json(200, &commendation_json(&commendation(id)?, Some(&v)))
}
