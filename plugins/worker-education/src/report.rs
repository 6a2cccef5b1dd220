//! `GET /reports?site=CODE` for the site's admins, over its subtree:
//! programs and orders, trainees, verified hours by category, each
//! enterprise's training and compliance rates (the plan's "learning
//! enterprise" monitoring) and the subtree's, and the use of the funds held
//! there by fund, target and township.

use crate::*;

pub(crate) fn report(req: &Request) -> Result<Response> {
    admin(req)?;
    let year = year_param(req)?;
    let (mut programs, mut demonstration, mut capacity, mut enrolled) = (0, 0, 0, 0);
    let mut by_mode: std::collections::BTreeMap<String, i64> = Default::default();
    let mut orders: std::collections::BTreeMap<String, i64> = Default::default();
    let mut order_ids = std::collections::BTreeSet::new();
    let mut hours: std::collections::BTreeMap<String, i64> = Default::default();
    let mut trainees = std::collections::BTreeSet::new();
    let mut enterprises = Vec::new();
    let (mut staff, mut trained, mut assessed, mut compliant) = (0, 0, 0, 0);
    let mut funds = Vec::new();
    for code in subtree(site(req)?)? {
        for p in all(PROGRAMS, vec![eq("provider", t(&code))], vec![])? {
            programs += 1;
            demonstration += i64::from(flag(&p, "demonstration"));
            capacity += int(&p, "capacity");
            enrolled += int(&p, "enrolled");
            *by_mode.entry(text(&p, "mode").to_string()).or_default() += 1;
        }
        for col in ["enterprise", "provider"] {
            for o in all(ORDERS, vec![eq(col, t(&code))], vec![])? {
                if order_ids.insert(int(&o, "id")) {
                    *orders.entry(text(&o, "status").to_string()).or_default() += 1;
                }
            }
        }
        if ENTERPRISES.get(&[t(&code)])?.is_some() {
            for a in all(
                ACTIVITIES,
                vec![eq("enterprise", t(&code)), eq("year", i(year))],
                vec![],
            )? {
                if text(&a, "status") == "verified" {
                    *hours.entry(text(&a, "category").to_string()).or_default() += int(&a, "hours");
                    trainees.insert(int(&a, "person_id"));
                }
            }
            let r = compliance::rates(&code, year)?;
            staff += r["staff"].as_i64().unwrap_or(0);
            trained += r["trained"].as_i64().unwrap_or(0);
            assessed += r["assessed"].as_i64().unwrap_or(0);
            compliant += r["compliant"].as_i64().unwrap_or(0);
            enterprises.push(json!({"site": code, "rates": r}));
        }
        for f in all(FUNDS, vec![eq("site", t(&code))], vec![])? {
            let mut d = funds::fund_detail(&f)?;
            d.as_object_mut().map(|o| o.remove("movements"));
            funds.push(d);
        }
    }
    let rate = |n: i64, d: i64| {
        if d == 0 {
            json!(null)
        } else {
            json!(n as f64 / d as f64)
        }
    };
    Response::json(
        200,
        &json!({
            "site": req.site,
            "year": year,
            "programs": {"count": programs, "demonstration": demonstration, "capacity": capacity, "enrolled": enrolled, "by_mode": by_mode},
            "orders": orders,
            "trainees": trainees.len(),
            "verified_hours": hours.values().sum::<i64>(),
            "verified_hours_by_category": hours,
            "learning_enterprises": {
                "staff": staff, "trained": trained, "training_rate": rate(trained, staff),
                "assessed": assessed, "compliant": compliant, "compliance_rate": rate(compliant, assessed),
                "by_enterprise": enterprises,
            },
            "funds": funds,
        }),
    )
}
