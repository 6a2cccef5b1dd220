//! Requirement rules and compliance. A rule (by population, cadre level,
//! region — a site and its subtree — and profession) asks for a number of
//! verified hours over a period of one or more years, and optionally a
//! minimum in one category (e.g. professional technicians: 90 hours a
//! year, at least ⌈2/3 × 90⌉ = 60 professional). Rules are versioned: a
//! change is a new version of the code. A person's compliance for a year
//! is computed from verified hours in the period containing it, under the
//! most specific matching rule in its version in force on the year's last
//! day. Closing a year stores every staff member's result as computed, so
//! a later rule change never rewrites a closed year.

use crate::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRule {
    code: String,
    name: String,
    population: String,
    #[serde(default)]
    cadre_level: String,
    /// A site code; default: the city (the call's site).
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    profession: String,
    #[serde(default = "one")]
    period_years: i64,
    #[serde(default = "anchor")]
    anchor_year: i64,
    total_hours: i64,
    #[serde(default)]
    category: String,
    /// The category's share of the total, as `n/d` (e.g. `2/3`), rounded up…
    #[serde(default)]
    category_share: Option<String>,
    /// …or its minimum in hours.
    #[serde(default)]
    category_min_hours: Option<i64>,
    valid_from: String,
}

fn one() -> i64 {
    1
}

fn anchor() -> i64 {
    2026
}

fn rule_json(r: &Row) -> serde_json::Value {
    json!({
        "code": text(r, "code"),
        "version": int(r, "version"),
        "name": text(r, "name"),
        "population": text(r, "population"),
        "cadre_level": text(r, "cadre_level"),
        "region": text(r, "region"),
        "profession": text(r, "profession"),
        "period_years": int(r, "period_years"),
        "anchor_year": int(r, "anchor_year"),
        "total_hours": int(r, "total_hours"),
        "category": text(r, "category"),
        "category_min_hours": int(r, "category_min_hours"),
        "valid_from": text(r, "valid_from"),
    })
}

/// A city admin publishes a rule, or a new version of one.
pub(crate) fn publish(req: &Request) -> Result<Response> {
    let me = req.person()?;
    let at = site(req)?;
    if !lifelong_sdk::identity::has_role(me, "city_admin", at)? {
        return Err(Error::forbidden(
            "requirement rules are published by a city admin",
        ));
    }
    let n: NewRule = req.json()?;
    let code = n.code.trim();
    if code.is_empty()
        || code.len() > 64
        || !code
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(invalid("code is 1-64 letters, digits, '-', '_' or '.'"));
    }
    if n.name.trim().is_empty() {
        return Err(invalid("name is required"));
    }
    if !POPULATIONS.contains(&n.population.as_str()) {
        return Err(invalid(format!(
            "population must be one of {}",
            POPULATIONS.join(", ")
        )));
    }
    if !matches!(n.cadre_level.as_str(), "" | "township" | "county")
        || (!n.cadre_level.is_empty() && n.population != "cadre")
    {
        return Err(invalid(
            "cadre_level is township or county, for cadres only",
        ));
    }
    if !(1..=10).contains(&n.period_years) || !(2000..=2100).contains(&n.anchor_year) {
        return Err(invalid("period_years is 1 to 10 and anchor_year a year"));
    }
    if !(1..=5000).contains(&n.total_hours) {
        return Err(invalid("total_hours is 1 to 5000"));
    }
    let region = n.region.clone().unwrap_or_else(|| at.to_string());
    lifelong_sdk::sites::get(&region).map_err(|_| invalid(format!("region: no site {region}")))?;
    let min = match (n.category.as_str(), &n.category_share, n.category_min_hours) {
        ("", None, None) => 0,
        ("", _, _) => return Err(invalid("a category minimum needs the category")),
        (c, Some(share), None) => {
            check_category(c)?;
            let (num, den) = share
                .split_once('/')
                .and_then(|(a, b)| {
                    Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?))
                })
                .filter(|(a, b)| *b > 0 && *a >= 0 && a <= b)
                .ok_or_else(|| {
                    invalid("category_share is a fraction n/d of at most 1, e.g. 2/3")
                })?;
            (n.total_hours * num + den - 1) / den
        }
        (c, None, Some(h)) if (0..=n.total_hours).contains(&h) => {
            check_category(c)?;
            h
        }
        _ => {
            return Err(invalid(
                "give category_share or category_min_hours (at most total_hours), not both",
            ))
        }
    };
    let valid_from = date("valid_from", &n.valid_from)?;
    let version = all(RULES, vec![eq("code", t(code))], vec![])?
        .iter()
        .map(|r| int(r, "version"))
        .max()
        .unwrap_or(0)
        + 1;
    let r = RULES.insert(&[
        ("code", t(code)),
        ("version", i(version)),
        ("name", t(n.name.trim())),
        ("population", t(&n.population)),
        ("cadre_level", t(&n.cadre_level)),
        ("region", t(&region)),
        ("profession", t(n.profession.trim())),
        ("period_years", i(n.period_years)),
        ("anchor_year", i(n.anchor_year)),
        ("total_hours", i(n.total_hours)),
        ("category", t(&n.category)),
        ("category_min_hours", i(min)),
        ("valid_from", t(&valid_from)),
    ])?;
    Response::json(201, &rule_json(&r))
}

pub(crate) fn list_rules(req: &Request) -> Result<Response> {
    req.person()?;
    let items: Vec<_> = every(RULES, "id")?.iter().map(rule_json).collect();
    Response::json(200, &json!({ "items": items }))
}

/// The rule that applies to a staff member in `year`: among versions in
/// force on 31 December, those matching; the most specific (profession
/// named, then the deepest region) wins.
fn rule_for(staff: &Row, year: i64, rules: &[Row], regions: &[String]) -> Option<Row> {
    let end = format!("{year}-12-31");
    let mut in_force: std::collections::BTreeMap<&str, &Row> = Default::default();
    for r in rules
        .iter()
        .filter(|r| text(r, "valid_from") <= end.as_str())
    {
        let code = text(r, "code");
        if in_force
            .get(code)
            .is_none_or(|o| int(o, "version") < int(r, "version"))
        {
            in_force.insert(code, r);
        }
    }
    in_force
        .into_values()
        .filter(|r| {
            text(r, "population") == text(staff, "population")
                && (text(r, "cadre_level").is_empty()
                    || text(r, "cadre_level") == text(staff, "cadre_level"))
                && (text(r, "profession").is_empty()
                    || text(r, "profession") == text(staff, "profession"))
                && regions.iter().any(|g| g == text(r, "region"))
        })
        .max_by_key(|r| {
            (
                !text(r, "profession").is_empty(),
                regions.iter().position(|g| g == text(r, "region")),
                !text(r, "cadre_level").is_empty(),
            )
        })
        .cloned()
}

/// The enterprise site's ancestors and itself, city first.
fn regions(enterprise: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = lifelong_sdk::sites::ancestors(enterprise)?
        .into_iter()
        .map(|s| s.code)
        .collect();
    out.push(enterprise.to_string());
    Ok(out)
}

/// A staff member's compliance for `year`, computed now.
fn compute(staff: &Row, year: i64, rules: &[Row], regions: &[String]) -> Result<serde_json::Value> {
    let person = int(staff, "person_id");
    let Some(rule) = rule_for(staff, year, rules, regions) else {
        let (total, by) = hours_in(person, year, year)?;
        return Ok(json!({
            "person_id": person, "name": text(staff, "name"), "year": year,
            "rule": null, "hours": total, "hours_by_category": by,
            "compliant": null, "missing_hours": 0,
        }));
    };
    let n = int(&rule, "period_years");
    let anchor = int(&rule, "anchor_year");
    let from = anchor + (year - anchor).div_euclid(n) * n;
    let to = from + n - 1;
    let (total, by) = hours_in(person, from, to)?;
    let category = text(&rule, "category");
    let cat_hours = by.get(category).copied().unwrap_or(0);
    let missing_total = (int(&rule, "total_hours") - total).max(0);
    let missing_cat = if category.is_empty() {
        0
    } else {
        (int(&rule, "category_min_hours") - cat_hours).max(0)
    };
    Ok(json!({
        "person_id": person,
        "name": text(staff, "name"),
        "year": year,
        "period": {"from": from, "to": to},
        "rule": {"code": text(&rule, "code"), "version": int(&rule, "version"), "name": text(&rule, "name"),
                 "total_hours": int(&rule, "total_hours"), "category": category,
                 "category_min_hours": int(&rule, "category_min_hours")},
        "hours": total,
        "hours_by_category": by,
        "compliant": missing_total == 0 && missing_cat == 0,
        "missing_hours": missing_total,
        "missing_category_hours": missing_cat,
    }))
}

/// Verified hours of a person in years `from..=to`, in total and by category.
fn hours_in(
    person: i64,
    from: i64,
    to: i64,
) -> Result<(i64, std::collections::BTreeMap<String, i64>)> {
    let mut by: std::collections::BTreeMap<String, i64> = Default::default();
    for a in all(
        ACTIVITIES,
        vec![
            eq("person_id", i(person)),
            lifelong_sdk::tables::cmp("year", lifelong_sdk::tables::Op::Ge, i(from)),
            lifelong_sdk::tables::cmp("year", lifelong_sdk::tables::Op::Le, i(to)),
        ],
        vec![],
    )? {
        if text(&a, "status") == "verified" {
            *by.entry(text(&a, "category").to_string()).or_default() += int(&a, "hours");
        }
    }
    Ok((by.values().sum(), by))
}

/// A staff member's result for `year`: as stored when the year was closed,
/// else computed now.
pub(crate) fn result(staff: &Row, year: i64, rules: &[Row]) -> Result<serde_json::Value> {
    result_in(staff, year, rules, &regions(text(staff, "enterprise"))?)
}

/// As [`result`], with the enterprise's regions already read (one host
/// call per enterprise, not per person).
fn result_in(
    staff: &Row,
    year: i64,
    rules: &[Row],
    regions: &[String],
) -> Result<serde_json::Value> {
    if let Some(r) = RESULTS.get(&[i(int(staff, "person_id")), i(year)])? {
        let mut v: serde_json::Value = serde_json::from_str(text(&r, "body"))?;
        v["closed"] = json!(true);
        return Ok(v);
    }
    let mut v = compute(staff, year, rules, regions)?;
    v["closed"] = json!(false);
    Ok(v)
}

fn staff_row(person: i64) -> Result<Row> {
    STAFF
        .get(&[i(person)])?
        .ok_or_else(|| Error::not_found(format!("person {person} is not registered staff")))
}

/// The caller's own progress for `?year=`.
pub(crate) fn me(req: &Request) -> Result<Response> {
    let s = staff_row(req.person()?)?;
    let rules = every(RULES, "id")?;
    Response::json(200, &result(&s, year_param(req)?, &rules)?)
}

/// A person's compliance, for the person or their enterprise's HR.
pub(crate) fn person(req: &Request) -> Result<Response> {
    let p = req.param_i64("person")?;
    let s = staff_row(p)?;
    if req.person()? != p {
        staff_at(req, text(&s, "enterprise"))?;
    }
    let rules = every(RULES, "id")?;
    Response::json(200, &result(&s, year_param(req)?, &rules)?)
}

/// Who at the enterprise is behind for `?year=`, with the hours missing.
pub(crate) fn behind(req: &Request) -> Result<Response> {
    let code = req.param("code").to_string();
    staff_at(req, &code)?;
    enterprises::enterprise(&code)?;
    let year = year_param(req)?;
    let rules = every(RULES, "id")?;
    let regions = regions(&code)?;
    let mut items = Vec::new();
    for s in all(STAFF, vec![eq("enterprise", t(&code))], vec![])? {
        let r = result_in(&s, year, &rules, &regions)?;
        if r["compliant"] == json!(false) {
            items.push(r);
        }
    }
    Response::json(
        200,
        &json!({"enterprise": code, "year": year, "items": items}),
    )
}

/// Training and compliance rates of one enterprise for `year`.
pub(crate) fn rates(code: &str, year: i64) -> Result<serde_json::Value> {
    let rules = every(RULES, "id")?;
    let staff = all(STAFF, vec![eq("enterprise", t(code))], vec![])?;
    let mut trained = std::collections::BTreeSet::new();
    for a in all(
        ACTIVITIES,
        vec![eq("enterprise", t(code)), eq("year", i(year))],
        vec![],
    )? {
        if text(&a, "status") == "verified" {
            trained.insert(int(&a, "person_id"));
        }
    }
    let trained = staff
        .iter()
        .filter(|s| trained.contains(&int(s, "person_id")))
        .count();
    let (mut assessed, mut compliant) = (0, 0);
    let regions = regions(code)?;
    for s in &staff {
        let r = result_in(s, year, &rules, &regions)?;
        if let Some(c) = r["compliant"].as_bool() {
            assessed += 1;
            compliant += usize::from(c);
        }
    }
    let rate = |n: usize, d: usize| {
        if d == 0 {
            json!(null)
        } else {
            json!(n as f64 / d as f64)
        }
    };
    Ok(json!({
        "staff": staff.len(),
        "trained": trained,
        "training_rate": rate(trained, staff.len()),
        "assessed": assessed,
        "compliant": compliant,
        "compliance_rate": rate(compliant, assessed),
    }))
}

/// A city admin closes a year: every staff member's result is stored as
/// computed now, and that year's hours no longer change.
pub(crate) fn close_year(req: &Request) -> Result<Response> {
    let me = req.person()?;
    if !lifelong_sdk::identity::has_role(me, "city_admin", site(req)?)? {
        return Err(Error::forbidden("a year is closed by a city admin"));
    }
    let year = req.param_i64("year")?;
    if !(2000..this_year()).contains(&year) {
        return Err(invalid(format!("only a past year is closed, not {year}")));
    }
    if CLOSURES.get(&[i(year)])?.is_some() {
        return Err(Error::conflict(format!("{year} is already closed")));
    }
    let rules = every(RULES, "id")?;
    let mut stored = 0;
    let mut regions_of: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for s in every(STAFF, "person_id")? {
        let ent = text(&s, "enterprise").to_string();
        if !regions_of.contains_key(&ent) {
            regions_of.insert(ent.clone(), regions(&ent)?);
        }
        let r = compute(&s, year, &rules, &regions_of[&ent])?;
        RESULTS.insert(&[
            ("person_id", i(int(&s, "person_id"))),
            ("year", i(year)),
            ("enterprise", t(&ent)),
            ("body", t(&r.to_string())),
        ])?;
        stored += 1;
    }
    CLOSURES.insert(&[
        ("year", i(year)),
        ("closed_on", t(&today())),
        ("closed_by", i(me)),
    ])?;
    Response::json(200, &json!({"year": year, "results": stored}))
}
