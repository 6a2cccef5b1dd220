//! Reports over a site's subtree, for its coordinators: volunteers
//! registered and active, needs open and filled, verified hours by month,
//! tiers, and the no-show rate.

use crate::*;
use lifelong_sdk::tables::{cmp, Op};

pub(crate) fn report(req: &Request) -> Result<Response> {
    staff(req)?;
    let thresholds = registry::thresholds()?;
    let on = today();
    // Active: verified hours in the last twelve months, this one included
    // (months after this month last year).
    let since = time::add_years(&on, -1).unwrap_or_default()[..7].to_string();
    let (mut registered, mut needs_open, mut needs_filled) = (0i64, 0i64, 0i64);
    let mut tiers = [0i64; 6];
    let mut active = std::collections::BTreeSet::new();
    let mut by_month: std::collections::BTreeMap<String, i64> = Default::default();
    let mut signups: std::collections::BTreeMap<String, i64> = Default::default();
    let mut sites = 0;
    for code in subtree(site(req)?)? {
        sites += 1;
        for v in all(VOLUNTEERS, vec![eq("site", t(&code))], vec![])? {
            registered += 1;
            tiers[time::tier(int(&v, "minutes"), &thresholds) as usize] += 1;
        }
        for n in all(
            NEEDS,
            vec![eq("site", t(&code)), eq("status", t("open"))],
            vec![],
        )? {
            needs_open += 1;
            needs_filled += i64::from(int(&n, "confirmed") >= int(&n, "max_wanted"));
        }
        for g in HOURS.aggregate(
            &[eq("site", t(&code)), eq("status", t("verified"))],
            &["month"],
            Some("minutes"),
        )? {
            if let Some(Value::Text(m)) = g.key.first() {
                *by_month.entry(m.clone()).or_default() += g.sum.unwrap_or(0);
            }
        }
        for h in all(
            HOURS,
            vec![
                eq("site", t(&code)),
                eq("status", t("verified")),
                cmp("month", Op::Gt, t(&since)),
            ],
            vec![],
        )? {
            active.insert(int(&h, "person_id"));
        }
        for g in SIGNUPS.aggregate(&[eq("site", t(&code))], &["status"], None)? {
            if let Some(Value::Text(s)) = g.key.first() {
                *signups.entry(s.clone()).or_default() += g.count;
            }
        }
    }
    let attended = signups.get("attended").copied().unwrap_or(0);
    let no_show = signups.get("no_show").copied().unwrap_or(0);
    let total_minutes: i64 = by_month.values().sum();
    Response::json(
        200,
        &json!({
            "site": req.site,
            "sites": sites,
            "volunteers": {"registered": registered, "active_last_12_months": active.len()},
            "needs": {"open": needs_open, "filled": needs_filled},
            "signups": signups,
            "verified_hours": total_minutes as f64 / 60.0,
            "verified_hours_by_month": by_month.iter().map(|(m, v)| (m.clone(), json!(*v as f64 / 60.0))).collect::<serde_json::Map<_, _>>(),
            "tiers": (0..6).map(|n| (n.to_string(), json!(tiers[n]))).collect::<serde_json::Map<_, _>>(),
            "no_show_rate": if attended + no_show > 0 { json!(no_show as f64 / (attended + no_show) as f64) } else { json!(null) },
        }),
    )
}
