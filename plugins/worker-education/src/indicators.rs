//! The indicator worker-education provides to the kernel (host API 1.4):
//! `worker-education.training_rate` — the share of enterprise staff in the
//! asked site's subtree trained in the year of the date, as of the date.
//!
//! Staff counted: of enterprises (sites with an enterprise record) in the
//! subtree registered on or before the date, staff registered on or before
//! it. Trained: with an activity of that calendar year dated on or before
//! the date, verified on or before it (activities verified before version
//! 1.1, which kept no verification date, count from their own date) and not
//! reversed on or before it. No staff: no value. The enterprise report's
//! `training_rate` is the same share for a whole year, taken today.
//! A person's employer is their current one (moves are not kept).

use crate::*;
use lifelong_sdk::{IndicatorQuery, Indicators};

pub(crate) fn provided() -> Indicators {
    Indicators::new().provide("worker-education.training_rate", training_rate)
}

fn training_rate(q: &IndicatorQuery) -> Result<Option<f64>> {
    if !lifelong_sdk::is_date(&q.as_of) {
        return Err(invalid(format!("as of {:?}: not a date", q.as_of)));
    }
    let year: i64 = q.as_of[..4]
        .parse()
        .map_err(|_| invalid(format!("as of {:?}: not a date", q.as_of)))?;
    let (mut staff, mut trained) = (0u32, 0u32);
    for code in subtree(&q.site)? {
        let Some(e) = ENTERPRISES.get(&[t(&code)])? else {
            continue;
        };
        if !q.includes(text(&e, "registered_on")) {
            continue;
        }
        let mut done = std::collections::BTreeSet::new();
        for a in all(
            ACTIVITIES,
            vec![eq("enterprise", t(&code)), eq("year", i(year))],
            vec![],
        )? {
            let on = text(&a, "on_date");
            let verified = opt_text(&a, "verified_on").unwrap_or_else(|| on.to_string());
            let standing = match text(&a, "status") {
                "verified" => true,
                "reversed" => opt_text(&a, "reversed_on").is_some_and(|d| !q.includes(&d)),
                _ => false,
            };
            if standing && q.includes(on) && q.includes(&verified) {
                done.insert(int(&a, "person_id"));
            }
        }
        for s in all(STAFF, vec![eq("enterprise", t(&code))], vec![])? {
            if q.includes(text(&s, "registered_on")) {
                staff += 1;
                trained += u32::from(done.contains(&int(&s, "person_id")));
            }
        }
    }
    Ok((staff > 0).then(|| f64::from(trained) / f64::from(staff)))
}
