//! Order-based training: an enterprise orders a customised course from a
//! provider (topic, cohort size, hours, dates, price); the provider quotes;
//! the enterprise accepts, which opens the course at the provider with the
//! cohort size as its capacity; the enterprise fills the roster (never above
//! the cohort size, even under concurrent additions); the provider delivers
//! and completes it, which records every rostered person's hours.
//!
//! requested → quoted → accepted → delivering → completed; requested,
//! quoted or accepted → cancelled.

use crate::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    provider: String,
    topic: String,
    category: String,
    #[serde(default = "classroom")]
    mode: String,
    cohort_size: i64,
    hours: i64,
    starts_on: String,
    ends_on: String,
    price: i64,
}

fn classroom() -> String {
    "classroom".into()
}

fn order(id: i64) -> Result<Row> {
    ORDERS
        .get(&[i(id)])?
        .ok_or_else(|| Error::not_found(format!("no order {id}")))
}

fn order_json(o: &Row) -> Result<serde_json::Value> {
    let roster = match opt_int(o, "program_id") {
        Some(p) => int(&programs::program(p)?, "enrolled"),
        None => 0,
    };
    Ok(json!({
        "id": int(o, "id"),
        "enterprise": text(o, "enterprise"),
        "provider": text(o, "provider"),
        "topic": text(o, "topic"),
        "category": text(o, "category"),
        "mode": text(o, "mode"),
        "cohort_size": int(o, "cohort_size"),
        "hours": int(o, "hours"),
        "starts_on": text(o, "starts_on"),
        "ends_on": text(o, "ends_on"),
        "price": int(o, "price"),
        "quote": opt_int(o, "quote"),
        "status": text(o, "status"),
        "program_id": opt_int(o, "program_id"),
        "roster": roster,
        "ordered_on": text(o, "ordered_on"),
    }))
}

fn expect(o: &Row, states: &[&str], action: &str) -> Result<()> {
    if states.contains(&text(o, "status")) {
        Ok(())
    } else {
        Err(Error::conflict(format!(
            "order {} is {}; {action} needs it {}",
            int(o, "id"),
            text(o, "status"),
            states.join(" or ")
        )))
    }
}

fn set_status(o: &Row, status: &str) -> Result<Response> {
    ORDERS.update(&[i(int(o, "id"))], &[("status", t(status))])?;
    Response::json(200, &order_json(&order(int(o, "id"))?)?)
}

/// The enterprise's HR orders a course (called at the enterprise's site).
pub(crate) fn create(req: &Request) -> Result<Response> {
    let by = admin(req)?;
    let code = site(req)?;
    enterprises::enterprise(code)?;
    let n: NewOrder = req.json()?;
    let topic = programs::check_course(
        &n.topic,
        &n.category,
        &n.mode,
        n.hours,
        &n.starts_on,
        &n.ends_on,
    )?;
    if !(1..=500).contains(&n.cohort_size) {
        return Err(invalid("cohort_size is 1 to 500"));
    }
    if n.price < 0 {
        return Err(invalid("price is a number of yuan, not negative"));
    }
    let provider = lifelong_sdk::sites::get(&n.provider)
        .map_err(|_| invalid(format!("provider: no site {}", n.provider)))?;
    if !PROVIDER_KINDS.contains(&provider.kind.as_str()) || provider.code == code {
        return Err(invalid(format!(
            "provider: {} is not a training provider",
            provider.code
        )));
    }
    let o = ORDERS.insert(&[
        ("enterprise", t(code)),
        ("provider", t(&provider.code)),
        ("topic", t(&topic)),
        ("category", t(&n.category)),
        ("mode", t(&n.mode)),
        ("cohort_size", i(n.cohort_size)),
        ("hours", i(n.hours)),
        ("starts_on", t(&n.starts_on)),
        ("ends_on", t(&n.ends_on)),
        ("price", i(n.price)),
        ("quote", Value::Null),
        ("status", t("requested")),
        ("program_id", Value::Null),
        ("ordered_by", i(by)),
        ("ordered_on", t(&today())),
    ])?;
    Response::json(201, &order_json(&o)?)
}

/// Orders placed by, or with, sites in the subtree.
pub(crate) fn list(req: &Request) -> Result<Response> {
    admin(req)?;
    let mut seen = std::collections::BTreeSet::new();
    let mut items = Vec::new();
    for code in subtree(site(req)?)? {
        for col in ["enterprise", "provider"] {
            for o in all(ORDERS, vec![eq(col, t(&code))], vec![])? {
                if seen.insert(int(&o, "id")) {
                    items.push(order_json(&o)?);
                }
            }
        }
    }
    Response::json(200, &json!({ "items": items }))
}

/// Either party's view.
pub(crate) fn view(req: &Request) -> Result<Response> {
    let o = order(req.param_i64("id")?)?;
    let p = req.person()?;
    if !is_staff(p, text(&o, "enterprise"))? && !is_staff(p, text(&o, "provider"))? {
        return Err(Error::forbidden("only the two parties see an order"));
    }
    Response::json(200, &order_json(&o)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Quote {
    price: i64,
}

/// The provider quotes a price.
pub(crate) fn quote(req: &Request) -> Result<Response> {
    let o = order(req.param_i64("id")?)?;
    staff_at(req, text(&o, "provider"))?;
    expect(&o, &["requested", "quoted"], "a quote")?;
    let q: Quote = req.json()?;
    if q.price < 0 {
        return Err(invalid("price is a number of yuan, not negative"));
    }
    ORDERS.update(&[i(int(&o, "id"))], &[("quote", i(q.price))])?;
    set_status(&o, "quoted")
}

/// The enterprise accepts the quote: the course opens at the provider.
pub(crate) fn accept(req: &Request) -> Result<Response> {
    let o = order(req.param_i64("id")?)?;
    staff_at(req, text(&o, "enterprise"))?;
    expect(&o, &["quoted"], "acceptance")?;
    let p = PROGRAMS.insert(&[
        ("provider", t(text(&o, "provider"))),
        ("title", t(text(&o, "topic"))),
        ("category", t(text(&o, "category"))),
        ("mode", t(text(&o, "mode"))),
        ("hours", i(int(&o, "hours"))),
        ("starts_on", t(text(&o, "starts_on"))),
        ("ends_on", t(text(&o, "ends_on"))),
        ("capacity", i(int(&o, "cohort_size"))),
        ("enrolled", i(0)),
        ("demonstration", b(false)),
        ("status", t("open")),
        ("order_id", i(int(&o, "id"))),
    ])?;
    ORDERS.update(&[i(int(&o, "id"))], &[("program_id", i(int(&p, "id")))])?;
    set_status(&o, "accepted")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Roster {
    person_ids: Vec<i64>,
}

/// The enterprise adds its staff to the roster: all or none, never above
/// the cohort size.
pub(crate) fn add_to_roster(req: &Request) -> Result<Response> {
    let o = order(req.param_i64("id")?)?;
    let ent = text(&o, "enterprise").to_string();
    staff_at(req, &ent)?;
    expect(&o, &["accepted", "delivering"], "adding to the roster")?;
    let r: Roster = req.json()?;
    if r.person_ids.is_empty() {
        return Err(invalid("person_ids is empty"));
    }
    let program = programs::program(opt_int(&o, "program_id").unwrap_or(0))?;
    let room = int(&program, "capacity") - int(&program, "enrolled");
    if r.person_ids.len() as i64 > room {
        return Err(Error::conflict(format!(
            "the roster has room for {room} more (cohort of {})",
            int(&o, "cohort_size")
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in &r.person_ids {
        if !seen.insert(*p) {
            return Err(invalid(format!("person {p} appears twice")));
        }
        if !ENROLMENTS
            .select(
                vec![
                    eq("program_id", i(int(&program, "id"))),
                    eq("person_id", i(*p)),
                ],
                vec![],
                1,
                None,
            )?
            .rows
            .is_empty()
        {
            return Err(Error::conflict(format!(
                "person {p} is already on the roster"
            )));
        }
        let s = STAFF.get(&[i(*p)])?;
        if s.as_ref().map(|s| text(s, "enterprise")) != Some(ent.as_str()) {
            return Err(invalid(format!("person {p} is not staff of {ent}")));
        }
    }
    for p in &r.person_ids {
        let program = programs::program(int(&program, "id"))?;
        programs::take_seat(&program, *p)?;
    }
    Response::json(200, &order_json(&order(int(&o, "id"))?)?)
}

/// The provider starts delivering.
pub(crate) fn deliver(req: &Request) -> Result<Response> {
    let o = order(req.param_i64("id")?)?;
    staff_at(req, text(&o, "provider"))?;
    expect(&o, &["accepted"], "delivery")?;
    set_status(&o, "delivering")
}

/// The provider completes the course: every rostered person's hours are
/// recorded, verified by the provider.
pub(crate) fn complete(req: &Request) -> Result<Response> {
    let o = order(req.param_i64("id")?)?;
    let verifier = staff_at(req, text(&o, "provider"))?;
    expect(&o, &["delivering"], "completion")?;
    let program = programs::program(opt_int(&o, "program_id").unwrap_or(0))?;
    let recorded =
        programs::complete_enrolments(&program, None, None, verifier, text(&o, "provider"))?;
    PROGRAMS.update(&[i(int(&program, "id"))], &[("status", t("completed"))])?;
    ORDERS.update(&[i(int(&o, "id"))], &[("status", t("completed"))])?;
    let mut out = order_json(&order(int(&o, "id"))?)?;
    out["activities"] = json!(recorded.len());
    Response::json(200, &out)
}

/// Either party cancels before delivery.
pub(crate) fn cancel(req: &Request) -> Result<Response> {
    let o = order(req.param_i64("id")?)?;
    let p = req.person()?;
    if !is_staff(p, text(&o, "enterprise"))? && !is_staff(p, text(&o, "provider"))? {
        return Err(Error::forbidden("only the two parties cancel an order"));
    }
    expect(&o, &["requested", "quoted", "accepted"], "cancelling")?;
    if let Some(pid) = opt_int(&o, "program_id") {
        PROGRAMS.update(&[i(pid)], &[("status", t("cancelled"))])?;
    }
    set_status(&o, "cancelled")
}
