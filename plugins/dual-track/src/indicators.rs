//! The plan indicator dual-track provides to the kernel (host API 1.4):
//! 2, new distance-education specialities — as a level, the number of
//! distance-education specialities offered by schools in the asked site's
//! subtree and created on or before the date. The kernel subtracts the
//! plan's baseline (the level on 2026-01-01) to get the increase; the
//! report's `new_distance` (created since the `indicator_since` setting) is
//! the same figure taken today.

use crate::*;
use lifelong_sdk::{IndicatorQuery, Indicators};

pub(crate) fn provided() -> Indicators {
    Indicators::new().provide("2", distance_specialities)
}

fn distance_specialities(q: &IndicatorQuery) -> Result<Option<f64>> {
    if !lifelong_sdk::is_date(&q.as_of) {
        return Err(invalid(format!("as of {:?}: not a date", q.as_of)));
    }
    let mut n = 0u32;
    for code in subtree(&q.site)? {
        for s in all(SPECIALITIES, vec![eq("school", t(&code))], vec![])? {
            n += u32::from(flag(&s, "distance") && q.includes(text(&s, "created_on")));
        }
    }
    Ok(Some(f64::from(n)))
}
