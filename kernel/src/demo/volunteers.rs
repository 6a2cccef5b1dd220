//! The demo's volunteers, entered through the volunteers plugin's own
//! routes by the people who would enter them: residents with an active
//! account register at their township; the delivery pass `serve` runs turns
//! elder-education's "assistants wanted" into needs at the schools;
//! township coordinators post shifts, assign volunteers to past ones, check
//! them in and out and verify their hours (a few long-serving volunteers
//! past the first tiers, on public notice); volunteers sign up for shifts
//! to come; each township issues a service proof.

use crate::plugins::registry::Registry;
use anyhow::{Context, Result};
use serde_json::{json, Value};

const ID: &str = "volunteers";

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

    /// Residents of a township's villages with an active account.
    async fn residents(&self, township: &str) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT p.id FROM persons p JOIN sites s ON s.id = p.home_site_id JOIN accounts a ON a.person_id = p.id \
             WHERE s.code LIKE $1 AND a.status = 'active' ORDER BY p.id",
        )
        .bind(format!("{township}-V%"))
        .fetch_all(self.registry.kernel().db.reader())
        .await?;
        Ok(rows.into_iter().map(|(p,)| p).collect())
    }
}

/// `YYYY-MM-DDTHH:MM`, `days` from today at `hour`.
fn at(days: i64, hour: i64) -> String {
    let today =
        chrono::NaiveDate::parse_from_str(&crate::sites::today(), "%Y-%m-%d").unwrap_or_default();
    format!("{}T{hour:02}:00", today + chrono::Duration::days(days))
}

/// Fill the volunteer registry, once (nothing is done if T01 has volunteers).
pub async fn seed(registry: &Registry) -> Result<Option<String>> {
    if registry.manifest(ID).is_none() {
        return Ok(None);
    }
    let d = Demo { registry };
    let k = registry.kernel();
    let t01 = d.person_by_login("t01-admin").await?;
    let existing = d.call("T01", t01, "GET", "/volunteers", json!({})).await?;
    if existing["items"].as_array().is_some_and(|a| !a.is_empty()) {
        return Ok(Some("volunteers already registered".into()));
    }
    let system = crate::authz::Actor::System("demo");
    let m = registry.manifest(ID).context("manifest")?;
    crate::plugins::settings::set(
        k,
        &system,
        &m,
        "CITY",
        "credit_rule",
        json!("volunteer-hours"),
    )
    .await?;
    // The pass `serve` runs: elder-education's assistants-wanted become needs.
    let runtime = registry.runtime().clone();
    crate::plugins::events::fan_out(k, |e| runtime.subscribers_of(e)).await?;
    crate::plugins::events::deliver_due(k, |id, site| registry.route_event(id, site), 5).await?;
    let (mut volunteers, mut shifts, mut hours, mut signups, mut notices, mut proofs) =
        (0, 0, 0.0, 0, 0, 0);
    for t in 1..=6 {
        let township = format!("T{t:02}");
        let admin = d.person_by_login(&format!("t{t:02}-admin")).await?;
        let mut numbers = Vec::new();
        // The coordinator verifies, so does not volunteer here.
        for p in d
            .residents(&township)
            .await?
            .into_iter()
            .filter(|p| *p != admin)
        {
            let skills = if p % 3 == 0 {
                json!(["智能手机教学", "摄影"])
            } else {
                json!(["活动组织", "书法"])
            };
            let v = d
                .call(&township, p, "POST", "/volunteers", json!({"skills": skills, "languages": ["普通话", "闽南话"], "availability": "周末", "service_area": township}))
                .await?;
            numbers.push((p, v["number"].as_str().unwrap_or_default().to_string()));
            volunteers += 1;
        }
        // Past monthly shifts, assigned, checked and verified.
        for month in 1..=8 {
            let day = -30 * month;
            let need = d
                .call(&township, admin, "POST", "/needs", json!({"project": "社区教育助学", "role": "助学志愿者", "title": format!("社区学校助学（第{month}期）"), "starts_at": at(day, 9), "ends_at": at(day, 12), "max_wanted": 6, "public": false}))
                .await?;
            for (p, _) in numbers.iter().skip(month as usize % 3).step_by(3).take(5) {
                let s = d
                    .call(
                        &township,
                        admin,
                        "POST",
                        &format!("/needs/{}/signups", need["id"]),
                        json!({"person_id": p}),
                    )
                    .await?;
                let sid = &s["id"];
                d.call(
                    &township,
                    admin,
                    "POST",
                    &format!("/signups/{sid}/check-in"),
                    json!({"at": at(day, 9)}),
                )
                .await?;
                let out = d
                    .call(
                        &township,
                        admin,
                        "POST",
                        &format!("/signups/{sid}/check-out"),
                        json!({"at": at(day, 12)}),
                    )
                    .await?;
                d.call(
                    &township,
                    admin,
                    "POST",
                    &format!("/hours/{}/verify", out["hours"]["id"]),
                    json!({}),
                )
                .await?;
                shifts += 1;
                hours += 3.0;
            }
        }
        // Long-serving volunteers: days of walk-in service over the year.
        let year = d
            .call(&township, admin, "POST", "/needs", json!({"project": "长期助学", "role": "助学志愿者", "title": "常驻助学服务", "starts_at": at(-360, 0), "ends_at": at(-1, 0), "flexible": true, "duration_minutes": 480, "max_wanted": 10, "public": false}))
            .await?;
        for (rank, (p, number)) in numbers.iter().take(2).enumerate() {
            let days = if rank == 0 { 40 } else { 14 };
            for j in 0..days {
                let day = -300 + j * 7;
                let h = d
                    .call(
                        &township,
                        admin,
                        "POST",
                        &format!("/needs/{}/hours", year["id"]),
                        json!({"person_id": p, "check_in": at(day, 13), "check_out": at(day, 21)}),
                    )
                    .await?;
                d.call(
                    &township,
                    admin,
                    "POST",
                    &format!("/hours/{}/verify", h["id"]),
                    json!({}),
                )
                .await?;
                hours += 8.0;
            }
            let tier = if rank == 0 { 2 } else { 1 };
            d.call(
                &township,
                admin,
                "POST",
                "/commendations",
                json!({"number": number, "tier": tier}),
            )
            .await?;
            notices += 1;
        }
        if let Some((_, number)) = numbers.first() {
            d.call(
                &township,
                admin,
                "POST",
                "/proofs",
                json!({"number": number}),
            )
            .await?;
            proofs += 1;
        }
        // Shifts to come: the lifelong-learning activity week, open to all.
        for (n, title) in [
            "终身学习活动周：开幕式引导",
            "终身学习活动周：智能手机体验",
            "终身学习活动周：闭幕展演",
        ]
        .iter()
        .enumerate()
        {
            let day = 20 + n as i64;
            let need = d
                .call(&township, admin, "POST", "/needs", json!({"project": "终身学习活动周", "role": "活动志愿者", "title": title, "starts_at": at(day, 9), "ends_at": at(day, 12), "min_wanted": 4, "max_wanted": 8}))
                .await?;
            for (p, _) in numbers.iter().skip(2 + n).step_by(4).take(6) {
                if d.call(
                    &township,
                    *p,
                    "POST",
                    &format!("/needs/{}/signups", need["id"]),
                    json!({}),
                )
                .await
                .is_ok()
                {
                    signups += 1;
                }
            }
        }
        // Teaching assistants for the school's course that asked for them.
        let school = format!("{township}-EU");
        let needs = d.call(&school, admin, "GET", "/needs", json!({})).await?;
        for n in needs["items"].as_array().into_iter().flatten() {
            for (p, _) in numbers.iter().skip(5).take(2) {
                let s = d
                    .call(
                        &school,
                        *p,
                        "POST",
                        &format!("/needs/{}/signups", n["id"]),
                        json!({}),
                    )
                    .await?;
                d.call(
                    &school,
                    admin,
                    "POST",
                    &format!("/signups/{}/confirm", s["id"]),
                    json!({}),
                )
                .await?;
                signups += 1;
            }
        }
    }
    let (assistant_needs,): (i64,) = sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM plugin_deliveries WHERE subscriber = $1 AND delivered_at IS NOT NULL")
        .bind(ID)
        .fetch_one(k.db.reader())
        .await?;
    Ok(Some(format!(
        "volunteers: {volunteers} registered in 6 townships, {assistant_needs} teaching-assistant needs from elder-education courses, {shifts} past shifts with {hours} verified hours in accounts, {notices} star tiers on public notice, {proofs} service proofs, {signups} sign-ups for shifts to come"
    )))
}
