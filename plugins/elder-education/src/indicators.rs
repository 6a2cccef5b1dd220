//! The plan indicators elder education provides to the kernel (host API
//! 1.4, declared in `plugin.toml`'s `[[indicators]]`): each a level as of a
//! date over the asked site's whole subtree, computed only from rows dated
//! on or before that date, so asking again later gives the same answer.
//!
//! - 1: elder universities run with social organisations — sites of kind
//!   `elder_university` whose operator is `social_organisation`, opened on
//!   or before the date and not closed;
//! - 5: "smart help for the elderly" learning scenarios created on or
//!   before the date (scenarios recorded before version 1.1 have no date
//!   and count at every date);
//! - 8: brand projects — sites holding a brand designation since the date
//!   or earlier;
//! - 9: learning teams founded on or before the date.

use crate::*;
use lifelong_sdk::{IndicatorQuery, Indicators};

pub(crate) fn provided() -> Indicators {
    Indicators::new()
        .provide("1", |q| level(q, universities_with_social_organisations))
        .provide("5", |q| level(q, scenarios))
        .provide("8", |q| level(q, brand_projects))
        .provide("9", |q| level(q, learning_teams))
}

/// Sum `per_site` over the subtree of the asked site.
fn level(
    q: &IndicatorQuery,
    per_site: fn(&IndicatorQuery, &lifelong_sdk::sites::Site) -> Result<i64>,
) -> Result<Option<f64>> {
    if dates::parse(&q.as_of).is_none() {
        return Err(invalid(format!("as of {:?}: not a date", q.as_of)));
    }
    let mut n = 0;
    for s in lifelong_sdk::sites::subtree(&q.site)? {
        n += per_site(q, &s)?;
    }
    Ok(Some(n as f64))
}

fn universities_with_social_organisations(
    q: &IndicatorQuery,
    s: &lifelong_sdk::sites::Site,
) -> Result<i64> {
    let open = s.kind == "elder_university" && s.status == "active" && q.includes(&s.opened_on);
    Ok(i64::from(
        open && lifelong_sdk::sites::operator(&s.code)? == "social_organisation",
    ))
}

fn scenarios(q: &IndicatorQuery, s: &lifelong_sdk::sites::Site) -> Result<i64> {
    let rows = all(SCENARIOS, vec![eq("site", t(&s.code))], vec![])?;
    Ok(rows
        .iter()
        .filter(|r| opt_text(r, "created_on").is_none_or(|d| q.includes(&d)))
        .count() as i64)
}

fn brand_projects(q: &IndicatorQuery, s: &lifelong_sdk::sites::Site) -> Result<i64> {
    Ok(i64::from(
        DESIGNATIONS
            .get(&[t(&s.code)])?
            .is_some_and(|d| q.includes(text(&d, "since"))),
    ))
}

fn learning_teams(q: &IndicatorQuery, s: &lifelong_sdk::sites::Site) -> Result<i64> {
    let rows = all(TEAMS, vec![eq("site", t(&s.code))], vec![])?;
    Ok(rows
        .iter()
        .filter(|r| q.includes(text(r, "founded_on")))
        .count() as i64)
}
