//! Reports for admins over a site subtree.

use crate::*;

// ----------------------------------------------------------------- reports

/// Figures over the request site's subtree, for admins there.
pub(crate) fn report(req: &Request) -> Result<Response> {
    staff(req)?;
    let sites = lifelong_sdk::sites::subtree(&req.site)?;
    let mut enrolments = serde_json::Map::new();
    let (mut completions, mut courses, mut lottery_courses) = (0i64, 0i64, 0i64);
    let (mut applications, mut lottery_seats) = (0f64, 0f64);
    let mut teams_by_stars = serde_json::Map::new();
    let (mut teams, mut scenarios) = (0i64, 0i64);
    let (mut elder_universities, mut with_social_organisations) = (0i64, 0i64);
    let mut designations = serde_json::Map::new();
    for s in &sites {
        let code = s.code.as_str();
        if let Some(d) = DESIGNATIONS.get(&[t(code)])? {
            let kind = text(&d, "kind").to_string();
            let n = designations
                .get(&kind)
                .and_then(|x| x.as_i64())
                .unwrap_or(0)
                + 1;
            designations.insert(kind, json!(n));
        }
        if s.kind == "elder_university" {
            elder_universities += 1;
            if lifelong_sdk::sites::operator(code)? == "social_organisation" {
                with_social_organisations += 1;
            }
        }
        for (k, v) in by_key(&ENROLMENTS.aggregate(&[eq("site", t(code))], &["status"], None)?) {
            let n =
                enrolments.get(&k).and_then(|x| x.as_i64()).unwrap_or(0) + v.as_i64().unwrap_or(0);
            enrolments.insert(k, json!(n));
        }
        completions += count(&COMPLETIONS.aggregate(&[eq("site", t(code))], &[], None)?);
        for c in all(COURSES, vec![eq("site", t(code))], vec![])? {
            courses += 1;
            if opt_text(&c, "lottery_seed").is_some() {
                lottery_courses += 1;
                let applicants: Vec<(i64, bool)> =
                    serde_json::from_str(&opt_text(&c, "lottery_applicants").unwrap_or_default())
                        .unwrap_or_default();
                applications += applicants.len() as f64;
                lottery_seats += int(&c, "capacity") as f64;
            }
        }
        let by_stars = TEAMS.aggregate(&[eq("site", t(code))], &["stars"], None)?;
        teams += count(&by_stars);
        for (k, v) in by_key(&by_stars) {
            let n = teams_by_stars.get(&k).and_then(|x| x.as_i64()).unwrap_or(0)
                + v.as_i64().unwrap_or(0);
            teams_by_stars.insert(k, json!(n));
        }
        scenarios += count(&SCENARIOS.aggregate(&[eq("site", t(code))], &[], None)?);
    }
    let enrolled = enrolments
        .get("enrolled")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    Response::json(
        200,
        &json!({
            "site": req.site,
            "sites": sites.len(),
            "courses": courses,
            "enrolments": enrolments,
            "waitlisted": enrolments.get("waitlisted").cloned().unwrap_or(json!(0)),
            "completions": completions,
            "completion_rate": if enrolled > 0 { completions as f64 / enrolled as f64 } else { 0.0 },
            "lottery_courses": lottery_courses,
            "lottery_applications_per_seat": if lottery_seats > 0.0 { applications / lottery_seats } else { 0.0 },
            "teams": teams,
            "teams_by_stars": teams_by_stars,
            "scenarios": scenarios,
            "elder_universities": elder_universities,
            "brand_designations": designations,
            "indicators": {
                "1_elder_universities_with_social_organisations": with_social_organisations,
                "5_smart_help_scenarios": scenarios,
                "8_brand_projects": designations.values().filter_map(|v| v.as_i64()).sum::<i64>(),
                "9_learning_teams": teams,
            },
        }),
    )
}
