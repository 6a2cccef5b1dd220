//! The indicator volunteers provides to the kernel (host API 1.4):
//! `volunteers.verified_hours` — the verified volunteer-service hours in the
//! asked site's subtree as of a date: hours verified on or before the date,
//! less those reversed on or before it (hours reversed before version 1.1,
//! which kept no reversal date, count at no date).

use crate::*;
use lifelong_sdk::{IndicatorQuery, Indicators};

pub(crate) fn provided() -> Indicators {
    Indicators::new().provide("volunteers.verified_hours", verified_hours)
}

fn verified_hours(q: &IndicatorQuery) -> Result<Option<f64>> {
    if !lifelong_sdk::is_date(&q.as_of) {
        return Err(invalid(format!("as of {:?}: not a date", q.as_of)));
    }
    let mut minutes = 0i64;
    for code in subtree(&q.site)? {
        for status in ["verified", "reversed"] {
            for h in all(
                HOURS,
                vec![eq("site", t(&code)), eq("status", t(status))],
                vec![],
            )? {
                let verified = opt_text(&h, "verified_on").is_some_and(|d| q.includes(&d));
                let standing = match (status, opt_text(&h, "reversed_on")) {
                    ("verified", _) => true,
                    (_, Some(d)) => !q.includes(&d),
                    (_, None) => false,
                };
                if verified && standing {
                    minutes += int(&h, "minutes");
                }
            }
        }
    }
    Ok(Some(minutes as f64 / 60.0))
}
