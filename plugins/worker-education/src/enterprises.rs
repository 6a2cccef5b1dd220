//! Enterprises and their staff: an enterprise is a kernel site of kind
//! `enterprise_training_centre` registered here with its unified social
//! credit code; its HR (site admins there) register staff — existing kernel
//! persons the call may see — by hand or by CSV upload, all or nothing.

use crate::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEnterprise {
    uscc: String,
}

fn enterprise_json(e: &Row) -> serde_json::Value {
    json!({
        "site": text(e, "site"),
        "name": text(e, "name"),
        "uscc": text(e, "uscc"),
        "registered_on": text(e, "registered_on"),
    })
}

/// The enterprise at `code`, or 404.
pub(crate) fn enterprise(code: &str) -> Result<Row> {
    ENTERPRISES
        .get(&[t(code)])?
        .ok_or_else(|| Error::not_found(format!("{code} is not a registered enterprise")))
}

/// HR registers its enterprise site with the credit code.
pub(crate) fn register(req: &Request) -> Result<Response> {
    admin(req)?;
    let n: NewEnterprise = req.json()?;
    let s = lifelong_sdk::sites::get(site(req)?)?;
    if s.kind != "enterprise_training_centre" {
        return Err(invalid(format!(
            "{} is a {} site; an enterprise is a site of kind enterprise_training_centre",
            s.code, s.kind
        )));
    }
    let uscc = uscc::validate(&n.uscc).map_err(|e| invalid(format!("uscc: {e}")))?;
    if ENTERPRISES.get(&[t(&s.code)])?.is_some() {
        return Err(Error::conflict(format!("{} is already registered", s.code)));
    }
    if !ENTERPRISES
        .select(vec![eq("uscc", t(&uscc))], vec![], 1, None)?
        .rows
        .is_empty()
    {
        return Err(Error::conflict(format!(
            "credit code {uscc} belongs to another enterprise"
        )));
    }
    let e = ENTERPRISES.insert(&[
        ("site", t(&s.code)),
        ("name", t(&s.name_zh)),
        ("uscc", t(&uscc)),
        ("registered_on", t(&today())),
    ])?;
    Response::json(201, &enterprise_json(&e))
}

/// An enterprise with its learning-enterprise rates for `?year=`.
pub(crate) fn view(req: &Request) -> Result<Response> {
    let code = req.param("code").to_string();
    staff_at(req, &code)?;
    let e = enterprise(&code)?;
    let year = year_param(req)?;
    let mut out = enterprise_json(&e);
    out["year"] = json!(year);
    out["rates"] = compliance::rates(&code, year)?;
    Response::json(200, &out)
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct NewStaff {
    person_id: i64,
    population: String,
    #[serde(default)]
    cadre_level: String,
    #[serde(default)]
    profession: String,
    #[serde(default)]
    title: String,
}

/// Why `n` cannot be registered at `enterprise`, or its row.
fn staff_row(
    n: &NewStaff,
    enterprise: &str,
) -> std::result::Result<Vec<(&'static str, Value)>, String> {
    if !POPULATIONS.contains(&n.population.as_str()) {
        return Err(format!(
            "population must be one of {}",
            POPULATIONS.join(", ")
        ));
    }
    let level = n.cadre_level.trim();
    match (n.population.as_str(), level) {
        ("cadre", "township" | "county") | ("professional_technician" | "employee", "") => {}
        ("cadre", _) => return Err("a cadre's cadre_level is township or county".into()),
        _ => return Err("cadre_level is only for cadres".into()),
    }
    if n.profession.chars().count() > 100 || n.title.chars().count() > 100 {
        return Err("profession and title are at most 100 characters".into());
    }
    let person = match lifelong_sdk::identity::get(n.person_id) {
        Ok(p) => p,
        Err(_) => return Err(format!("no person {} in this area", n.person_id)),
    };
    match STAFF.get(&[i(n.person_id)]) {
        Ok(Some(s)) => {
            return Err(format!(
                "person {} is already registered at {}",
                n.person_id,
                text(&s, "enterprise")
            ))
        }
        Ok(None) => {}
        Err(e) => return Err(e.detail),
    }
    Ok(vec![
        ("person_id", i(n.person_id)),
        ("enterprise", t(enterprise)),
        ("name", t(&person.name)),
        ("population", t(&n.population)),
        ("cadre_level", t(level)),
        ("profession", t(n.profession.trim())),
        ("title", t(n.title.trim())),
        ("registered_on", t(&today())),
    ])
}

pub(crate) fn staff_json(s: &Row) -> serde_json::Value {
    json!({
        "person_id": int(s, "person_id"),
        "name": text(s, "name"),
        "enterprise": text(s, "enterprise"),
        "population": text(s, "population"),
        "cadre_level": text(s, "cadre_level"),
        "profession": text(s, "profession"),
        "title": text(s, "title"),
        "registered_on": text(s, "registered_on"),
    })
}

/// HR registers one staff member at its enterprise.
pub(crate) fn add_staff(req: &Request) -> Result<Response> {
    admin(req)?;
    let code = site(req)?;
    enterprise(code)?;
    let n: NewStaff = req.json()?;
    let row = staff_row(&n, code).map_err(|e| {
        if e.contains("already registered") {
            Error::conflict(e)
        } else {
            invalid(e)
        }
    })?;
    let s = STAFF.insert(&row)?;
    Response::json(201, &staff_json(&s))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upload {
    csv: String,
}

/// HR uploads staff as CSV (`person_id,population,cadre_level,profession,title`
/// with that header), as a raw `text/csv` body or `{"csv": "..."}`. Every
/// row is checked first; one bad row and nothing is stored, and every bad
/// row is reported with its line number.
pub(crate) fn import_staff(req: &Request) -> Result<Response> {
    admin(req)?;
    let code = site(req)?;
    enterprise(code)?;
    let csv = if req.body.first() == Some(&b'{') {
        req.json::<Upload>()?.csv
    } else {
        String::from_utf8(req.body.clone()).map_err(|_| Error::bad_request("CSV must be UTF-8"))?
    };
    let mut lines = csv
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header = lines
        .next()
        .map(|(_, h)| h.trim().trim_start_matches('\u{feff}'));
    if header != Some("person_id,population,cadre_level,profession,title") {
        return Err(invalid(
            "the first line must be the header person_id,population,cadre_level,profession,title",
        ));
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (n, line) in lines {
        let line_no = n + 1;
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 5 {
            errors.push(json!({"line": line_no, "message": format!("5 fields expected, found {}", f.len())}));
            continue;
        }
        let Ok(person_id) = f[0].parse::<i64>() else {
            errors.push(json!({"line": line_no, "message": "person_id must be an integer"}));
            continue;
        };
        if !seen.insert(person_id) {
            errors.push(
                json!({"line": line_no, "message": format!("person {person_id} appears twice")}),
            );
            continue;
        }
        let s = NewStaff {
            person_id,
            population: f[1].into(),
            cadre_level: f[2].into(),
            profession: f[3].into(),
            title: f[4].into(),
        };
        match staff_row(&s, code) {
            Ok(r) => rows.push(r),
            Err(e) => errors.push(json!({"line": line_no, "message": e})),
        }
    }
    if rows.is_empty() && errors.is_empty() {
        return Err(invalid("the file has no rows"));
    }
    if rows.len() > 5000 {
        return Err(invalid("at most 5000 rows per upload"));
    }
    if !errors.is_empty() {
        return Response::json(
            422,
            &json!({
                "type": "urn:lifelong:problem:invalid",
                "title": "Invalid input",
                "status": 422,
                "detail": format!("{} row error(s); nothing was imported", errors.len()),
                "errors": errors,
            }),
        );
    }
    for r in &rows {
        STAFF.insert(r)?;
    }
    Response::json(201, &json!({"imported": rows.len()}))
}

/// HR lists its enterprise's staff.
pub(crate) fn list_staff(req: &Request) -> Result<Response> {
    admin(req)?;
    let code = site(req)?;
    let items: Vec<_> = all(STAFF, vec![eq("enterprise", t(code))], vec![])?
        .iter()
        .map(staff_json)
        .collect();
    Response::json(200, &json!({ "items": items }))
}
