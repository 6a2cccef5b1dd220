//! The demo's elder-education catalogue, entered through the plugin's own
//! routes by the people who would enter it: each elder school's admin
//! creates a term, courses and a teacher; elders enrol themselves; the admin
//! draws the lottery; a teacher takes attendance.

use crate::plugins::registry::Registry;
use anyhow::{Context, Result};
use serde_json::{json, Value};

/// The city's date `days` days before today: facts the demo records late
/// (a team founded last spring), so the plugin-provided indicators have a
/// year of history.
pub(super) fn days_ago(days: i64) -> String {
    let today =
        chrono::NaiveDate::parse_from_str(&crate::sites::today(), "%Y-%m-%d").unwrap_or_default();
    (today - chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

const ID: &str = "elder-education";

struct Demo<'a> {
    registry: &'a Registry,
}

impl Demo<'_> {
    async fn call(
        &self,
        site: &str,
        person: i64,
        method: &str,
        path: &str,
        body: Value,
    ) -> Result<Value> {
        super::client::call(self.registry, ID, site, person, method, path, body).await
    }

    async fn person_by_login(&self, login: &str) -> Result<i64> {
        super::client::person_by_login(self.registry, login).await
    }

    /// People holding `role` at `site`.
    async fn holders(&self, role: &str, site: &str) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT g.person_id FROM role_grants g JOIN sites s ON s.id = g.site_id \
             WHERE g.role = $1 AND s.code = $2 AND g.revoked_at IS NULL ORDER BY g.person_id",
        )
        .bind(role)
        .bind(site)
        .fetch_all(self.registry.kernel().db.reader())
        .await?;
        Ok(rows.into_iter().map(|(p,)| p).collect())
    }

    /// Learners homed in a township's villages.
    async fn learners_of(&self, township: &str) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT g.person_id FROM role_grants g JOIN sites s ON s.id = g.site_id \
             WHERE g.role = 'learner' AND s.code LIKE $1 AND g.revoked_at IS NULL ORDER BY g.person_id",
        )
        .bind(format!("{township}-V%"))
        .fetch_all(self.registry.kernel().db.reader())
        .await?;
        Ok(rows.into_iter().map(|(p,)| p).collect())
    }
}

/// Fill the catalogue, once (nothing is done if the city school has a term).
pub async fn seed(registry: &Registry) -> Result<Option<String>> {
    if registry.manifest(ID).is_none() {
        return Ok(None);
    }
    let d = Demo { registry };
    let city_admin = d.person_by_login(super::DEMO_ADMIN.0).await?;
    let terms = d
        .call("CITY-EU", city_admin, "GET", "/terms", json!({}))
        .await?;
    if terms["items"].as_array().is_some_and(|a| !a.is_empty()) {
        return Ok(Some("elder-education catalogue already present".into()));
    }
    let k = registry.kernel();
    let system = crate::authz::Actor::System("demo");
    let m = registry.manifest(ID).context("manifest")?;
    crate::plugins::settings::set(
        k,
        &system,
        &m,
        "CITY",
        "credit_rule",
        json!("elder-course-hours"),
    )
    .await?;
    let (mut courses, mut enrolments, mut completions) = (0, 0, 0);
    let schools: Vec<(String, String, i64)> = {
        let mut v = vec![
            ("CITY-EU".to_string(), "CITY".to_string(), city_admin),
            ("CITY-EU-SO".to_string(), "CITY".to_string(), city_admin),
        ];
        for t in 1..=6 {
            let login = format!("t{t:02}-admin");
            v.push((
                format!("T{t:02}-EU"),
                format!("T{t:02}"),
                d.person_by_login(&login).await?,
            ));
        }
        v
    };
    for (n, (school, township, admin)) in schools.iter().enumerate() {
        let term = d
            .call(school, *admin, "POST", "/terms", json!({"code": "2026-autumn", "name": "2026年秋季学期", "starts_on": "2026-09-01", "ends_on": "2027-01-15"}))
            .await?;
        let term = term["id"].as_i64().context("term id")?;
        let catalogue = [
            json!({"title": "书法与国画", "category": "arts", "schedule": "周二 09:00-11:00", "venue": "书画室", "capacity": 20, "sessions": 4, "hours": 32.0, "brand": "一校一品：翰墨书香"}),
            json!({"title": "太极拳", "category": "health", "schedule": "周三 08:00-09:30", "venue": "操场", "capacity": 25, "sessions": 4, "hours": 24.0}),
            json!({"title": "智能手机应用（智慧助老）", "category": "digital_skills", "schedule": "周四 14:30-16:00", "venue": "电脑室", "capacity": 6, "sessions": 4, "hours": 16.0, "wants_assistants": true}),
            json!({"title": "老年合唱", "category": "arts", "schedule": "周五 09:00-11:00", "venue": "音乐厅", "capacity": 4, "sessions": 4, "hours": 24.0, "mode": "lottery", "returning_percent": 25}),
        ];
        let mut ids = Vec::new();
        for mut c in catalogue {
            c["term_id"] = json!(term);
            let r = d.call(school, *admin, "POST", "/courses", c).await?;
            ids.push(r["id"].as_i64().context("course id")?);
            courses += 1;
        }
        d.call(
            school,
            *admin,
            "PUT",
            "/designation",
            json!({"kind": "one_school_one_brand", "name": "翰墨书香", "since": days_ago(60 + (37 * n as i64) % 400)}),
        )
        .await?;
        let scenario = d
            .call(
                school,
                *admin,
                "POST",
                "/scenarios",
                json!({"code": "smart-phone", "name": "用智能手机挂号、扫码出行", "created_on": days_ago(45 + (53 * n as i64) % 380)}),
            )
            .await?;
        d.call(
            school,
            *admin,
            "POST",
            &format!("/scenarios/{}/courses", scenario["id"]),
            json!({"course_id": ids[2]}),
        )
        .await?;
        // Township schools: their teachers, their villages' elders, the
        // first four of whom found the school's learning team.
        let learners = if township != "CITY" {
            d.learners_of(township).await?
        } else {
            Vec::new()
        };
        let founders: Vec<i64> = learners.iter().take(4).copied().collect();
        d.call(
            school,
            *admin,
            "POST",
            "/teams",
            json!({"name": format!("{school}书画学习团队"), "members": founders, "founded_on": days_ago(20 + (41 * n as i64) % 420)}),
        )
        .await?;
        if township != "CITY" {
            let teachers = d.holders("teacher", school).await?;
            if let Some(t) = teachers.first() {
                let r = d
                    .call(school, *admin, "POST", "/teachers", json!({"person_id": t, "name": "书画老师", "kind": "part_time", "cert_number": format!("LN-2026-{n:03}"), "cert_issuer": "滨海市教育局", "cert_valid_until": "2028-06-30"}))
                    .await?;
                d.call(
                    school,
                    *admin,
                    "PUT",
                    &format!("/courses/{}/teacher", ids[0]),
                    json!({"teacher_id": r["id"]}),
                )
                .await?;
            }
            for (j, l) in learners.iter().enumerate() {
                // Elders only (the plugin checks age); others are refused.
                for course in [ids[j % 3], ids[3]] {
                    if d.call(
                        school,
                        *l,
                        "POST",
                        &format!("/courses/{course}/enrol"),
                        json!({}),
                    )
                    .await
                    .is_ok()
                    {
                        enrolments += 1;
                    }
                }
            }
            d.call(
                school,
                *admin,
                "POST",
                &format!("/courses/{}/draw", ids[3]),
                json!({"seed": format!("demo/{school}/2026-autumn/choir")}),
            )
            .await?;
            if let Some(t) = teachers.first() {
                let roster = d
                    .call(
                        school,
                        *t,
                        "GET",
                        &format!("/courses/{}/roster", ids[0]),
                        json!({}),
                    )
                    .await?;
                let present: Vec<i64> = roster["enrolled"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|e| e["person_id"].as_i64()).collect())
                    .unwrap_or_default();
                for session in 1..=3 {
                    let r = d
                        .call(
                            school,
                            *t,
                            "POST",
                            &format!("/courses/{}/attendance", ids[0]),
                            json!({"session": session, "present": present}),
                        )
                        .await?;
                    completions += r["completed_now"].as_array().map_or(0, |a| a.len());
                }
            }
        }
    }
    Ok(Some(format!(
        "elder-education: {} schools, {courses} courses, {enrolments} enrolments and applications, {completions} completions recorded in accounts",
        schools.len()
    )))
}
