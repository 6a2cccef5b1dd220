//! Special funds: a city or township continuing-education fund has a
//! yearly budget, allocations to programs and orders, and spending with
//! evidence under the fund's rules (a per-trainee subsidy cap, the
//! categories it may pay for). A fund is never overspent, nor an
//! allocation, even under concurrent spending; every movement is kept, and
//! a correction is a reversal pointing at the spend it corrects. Managed by
//! the admins of the fund's site.

use crate::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFund {
    name: String,
    year: i64,
    budget: i64,
    #[serde(default)]
    per_trainee_cap: i64,
    #[serde(default)]
    categories: Vec<String>,
}

fn fund(id: i64) -> Result<Row> {
    FUNDS
        .get(&[i(id)])?
        .ok_or_else(|| Error::not_found(format!("no fund {id}")))
}

fn fund_json(f: &Row) -> serde_json::Value {
    json!({
        "id": int(f, "id"),
        "site": text(f, "site"),
        "name": text(f, "name"),
        "year": int(f, "year"),
        "budget": int(f, "budget"),
        "allocated": int(f, "allocated"),
        "spent": int(f, "spent"),
        "remaining": int(f, "budget") - int(f, "spent"),
        "per_trainee_cap": int(f, "per_trainee_cap"),
        "categories": text(f, "categories").split(',').filter(|c| !c.is_empty()).collect::<Vec<_>>(),
    })
}

fn movement_json(m: &Row) -> serde_json::Value {
    json!({
        "id": int(m, "id"),
        "kind": text(m, "kind"),
        "amount": int(m, "amount"),
        "target": text(m, "target"),
        "township": text(m, "township"),
        "category": text(m, "category"),
        "trainees": int(m, "trainees"),
        "evidence": text(m, "evidence"),
        "reverses": opt_int(m, "reverses"),
        "on_date": text(m, "on_date"),
    })
}

/// An admin of a city or township sets up a fund there.
pub(crate) fn create(req: &Request) -> Result<Response> {
    admin(req)?;
    let s = lifelong_sdk::sites::get(site(req)?)?;
    if s.kind != "city" && s.kind != "township" {
        return Err(invalid("special funds are held by the city or a township"));
    }
    let n: NewFund = req.json()?;
    let name = n.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(invalid("name is 1-100 characters"));
    }
    if !(2000..=2100).contains(&n.year) {
        return Err(invalid("year must be a year such as 2026"));
    }
    if !(1..=10_000_000_000).contains(&n.budget) || n.per_trainee_cap < 0 {
        return Err(invalid(
            "budget is 1 to 10^10 yuan and per_trainee_cap not negative",
        ));
    }
    for c in &n.categories {
        check_category(c)?;
    }
    let exists = FUNDS
        .select(
            vec![
                eq("site", t(&s.code)),
                eq("name", t(name)),
                eq("year", i(n.year)),
            ],
            vec![],
            1,
            None,
        )?
        .rows;
    if !exists.is_empty() {
        return Err(Error::conflict(format!(
            "{name} {} already exists here",
            n.year
        )));
    }
    let f = FUNDS.insert(&[
        ("site", t(&s.code)),
        ("name", t(name)),
        ("year", i(n.year)),
        ("budget", i(n.budget)),
        ("allocated", i(0)),
        ("spent", i(0)),
        ("per_trainee_cap", i(n.per_trainee_cap)),
        ("categories", t(&n.categories.join(","))),
    ])?;
    Response::json(201, &fund_json(&f))
}

/// Funds held in the site's subtree.
pub(crate) fn list(req: &Request) -> Result<Response> {
    admin(req)?;
    let mut items = Vec::new();
    for code in subtree(site(req)?)? {
        for f in all(FUNDS, vec![eq("site", t(&code))], vec![])? {
            items.push(fund_json(&f));
        }
    }
    Response::json(200, &json!({ "items": items }))
}

/// A fund with its allocations, its movements and its use by target and
/// township.
pub(crate) fn view(req: &Request) -> Result<Response> {
    let f = fund(req.param_i64("id")?)?;
    staff_at(req, text(&f, "site"))?;
    Response::json(200, &fund_detail(&f)?)
}

pub(crate) fn fund_detail(f: &Row) -> Result<serde_json::Value> {
    let id = int(f, "id");
    let allocations: Vec<_> = all(ALLOCATIONS, vec![eq("fund_id", i(id))], vec![])?
        .iter()
        .map(|a| json!({"id": int(a, "id"), "target": text(a, "target"), "amount": int(a, "amount"), "spent": int(a, "spent")}))
        .collect();
    let movements = all(MOVEMENTS, vec![eq("fund_id", i(id))], vec![])?;
    let mut by_target: std::collections::BTreeMap<String, i64> = Default::default();
    let mut by_township: std::collections::BTreeMap<String, i64> = Default::default();
    for m in &movements {
        *by_target.entry(text(m, "target").to_string()).or_default() += int(m, "amount");
        *by_township
            .entry(text(m, "township").to_string())
            .or_default() += int(m, "amount");
    }
    let mut out = fund_json(f);
    out["allocations"] = json!(allocations);
    out["movements"] = json!(movements.iter().map(movement_json).collect::<Vec<_>>());
    out["spent_by_target"] = json!(by_target);
    out["spent_by_township"] = json!(by_township);
    Ok(out)
}

struct Target {
    program_id: Option<i64>,
    order_id: Option<i64>,
}

/// `program/<id>` or `order/<id>`, with the target's category and the
/// township it is in.
fn target(t: &Target) -> Result<(String, String, String)> {
    match (t.program_id, t.order_id) {
        (Some(p), None) => {
            let p = programs::program(p)?;
            Ok((
                format!("program/{}", int(&p, "id")),
                text(&p, "category").to_string(),
                township_of(text(&p, "provider"))?,
            ))
        }
        (None, Some(o)) => {
            let o = ORDERS
                .get(&[i(o)])?
                .ok_or_else(|| Error::not_found(format!("no order {o}")))?;
            Ok((
                format!("order/{}", int(&o, "id")),
                text(&o, "category").to_string(),
                township_of(text(&o, "enterprise"))?,
            ))
        }
        _ => Err(invalid("name one program_id or one order_id")),
    }
}

fn check_pays_for(f: &Row, category: &str) -> Result<()> {
    let cats = text(f, "categories");
    if !cats.is_empty() && !cats.split(',').any(|c| c == category) {
        return Err(invalid(format!(
            "fund {} pays for {cats}, not {category}",
            int(f, "id")
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Allocate {
    #[serde(default)]
    program_id: Option<i64>,
    #[serde(default)]
    order_id: Option<i64>,
    amount: i64,
}

/// Set money aside for a program or an order: allocations never exceed the
/// budget.
pub(crate) fn allocate(req: &Request) -> Result<Response> {
    let f = fund(req.param_i64("id")?)?;
    staff_at(req, text(&f, "site"))?;
    let a: Allocate = req.json()?;
    let (target, category, _) = target(&Target {
        program_id: a.program_id,
        order_id: a.order_id,
    })?;
    check_pays_for(&f, &category)?;
    if a.amount <= 0 {
        return Err(invalid("amount is a positive number of yuan"));
    }
    let id = int(&f, "id");
    if !all(
        ALLOCATIONS,
        vec![eq("fund_id", i(id)), eq("target", t(&target))],
        vec![],
    )?
    .is_empty()
    {
        return Err(Error::conflict(format!(
            "{target} already has an allocation from fund {id}"
        )));
    }
    if int(&f, "allocated") + a.amount > int(&f, "budget") {
        return Err(Error::conflict(format!(
            "fund {id} has {} yuan left to allocate",
            int(&f, "budget") - int(&f, "allocated")
        )));
    }
    FUNDS.update_where(&[eq("id", i(id))], &[add("allocated", a.amount)])?;
    let row = ALLOCATIONS.insert(&[
        ("fund_id", i(id)),
        ("target", t(&target)),
        ("amount", i(a.amount)),
        ("spent", i(0)),
    ])?;
    Response::json(
        201,
        &json!({"id": int(&row, "id"), "fund_id": id, "target": target, "amount": a.amount, "spent": 0}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spend {
    #[serde(default)]
    program_id: Option<i64>,
    #[serde(default)]
    order_id: Option<i64>,
    amount: i64,
    trainees: i64,
    evidence: String,
}

/// Record spending with evidence: within the budget, within the target's
/// allocation if it has one, within the per-trainee cap, on a category the
/// fund pays for.
pub(crate) fn spend(req: &Request) -> Result<Response> {
    let f = fund(req.param_i64("id")?)?;
    let by = staff_at(req, text(&f, "site"))?;
    let s: Spend = req.json()?;
    let (target, category, township) = target(&Target {
        program_id: s.program_id,
        order_id: s.order_id,
    })?;
    check_pays_for(&f, &category)?;
    if s.amount <= 0 || s.trainees <= 0 {
        return Err(invalid("amount and trainees are positive"));
    }
    let evidence = s.evidence.trim();
    if evidence.is_empty() || evidence.chars().count() > 500 {
        return Err(invalid(
            "evidence is 1-500 characters (an invoice number, a contract, …)",
        ));
    }
    let cap = int(&f, "per_trainee_cap");
    if cap > 0 && s.amount > cap * s.trainees {
        return Err(invalid(format!(
            "at most {cap} yuan per trainee: {} for {} trainees",
            cap * s.trainees,
            s.trainees
        )));
    }
    let id = int(&f, "id");
    let allocation = all(
        ALLOCATIONS,
        vec![eq("fund_id", i(id)), eq("target", t(&target))],
        vec![],
    )?;
    if let Some(a) = allocation.first() {
        if int(a, "spent") + s.amount > int(a, "amount") {
            return Err(Error::conflict(format!(
                "the allocation to {target} has {} yuan left",
                int(a, "amount") - int(a, "spent")
            )));
        }
    }
    let within = FUNDS.update_where(
        &[
            eq("id", i(id)),
            lifelong_sdk::tables::cmp(
                "spent",
                lifelong_sdk::tables::Op::Le,
                i(int(&f, "budget") - s.amount),
            ),
        ],
        &[add("spent", s.amount)],
    )?;
    if within == 0 {
        let now = fund(id)?;
        return Err(Error::conflict(format!(
            "fund {id} has {} yuan left; {} asked",
            int(&now, "budget") - int(&now, "spent"),
            s.amount
        )));
    }
    if let Some(a) = allocation.first() {
        ALLOCATIONS.update_where(&[eq("id", i(int(a, "id")))], &[add("spent", s.amount)])?;
    }
    let m = MOVEMENTS.insert(&[
        ("fund_id", i(id)),
        ("kind", t("spend")),
        ("amount", i(s.amount)),
        ("target", t(&target)),
        ("township", t(&township)),
        ("category", t(&category)),
        ("trainees", i(s.trainees)),
        ("evidence", t(evidence)),
        ("reverses", Value::Null),
        ("by_person", i(by)),
        ("on_date", t(&today())),
    ])?;
    Response::json(201, &movement_json(&m))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

/// Correct a spend by reversing it, once; the spend stays on record.
pub(crate) fn reverse(req: &Request) -> Result<Response> {
    let id = req.param_i64("id")?;
    let m = MOVEMENTS
        .get(&[i(id)])?
        .ok_or_else(|| Error::not_found(format!("no movement {id}")))?;
    let f = fund(int(&m, "fund_id"))?;
    let by = staff_at(req, text(&f, "site"))?;
    let r: Reason = req.json()?;
    let reason = r.reason.trim();
    if reason.is_empty() || reason.chars().count() > 300 {
        return Err(invalid("reason is 1-300 characters"));
    }
    if text(&m, "kind") != "spend" {
        return Err(Error::conflict(
            "a reversal is not reversed; record a new spend",
        ));
    }
    if !all(MOVEMENTS, vec![eq("reverses", i(id))], vec![])?.is_empty() {
        return Err(Error::conflict(format!(
            "movement {id} is already reversed"
        )));
    }
    let amount = int(&m, "amount");
    FUNDS.update_where(&[eq("id", i(int(&f, "id")))], &[add("spent", -amount)])?;
    ALLOCATIONS.update_where(
        &[
            eq("fund_id", i(int(&f, "id"))),
            eq("target", t(text(&m, "target"))),
        ],
        &[add("spent", -amount)],
    )?;
    let rev = MOVEMENTS.insert(&[
        ("fund_id", i(int(&f, "id"))),
        ("kind", t("reversal")),
        ("amount", i(-amount)),
        ("target", t(text(&m, "target"))),
        ("township", t(text(&m, "township"))),
        ("category", t(text(&m, "category"))),
        ("trainees", i(-int(&m, "trainees"))),
        ("evidence", t(reason)),
        ("reverses", i(id)),
        ("by_person", i(by)),
        ("on_date", t(&today())),
    ])?;
    Response::json(201, &movement_json(&rev))
}
