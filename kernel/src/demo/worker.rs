//! The demo's worker continuing education, entered through the
//! worker-education plugin's own routes by the people who would enter them:
//! the city admin publishes the requirement rules and runs the offices of
//! the open university and the teacher-training school (programs, a
//! demonstration course among them, completions); township admins act as
//! HR of their townships' enterprise training centres (credit codes, staff
//! by CSV and by hand, orders, submitted hours verified); staff enrol
//! themselves; one order is completed and one accepted with its roster;
//! some staff are compliant and some behind; a city and a township fund
//! carry budget, allocations, spending and a reversal.

use crate::plugins::registry::Registry;
use anyhow::{Context, Result};
use serde_json::{json, Value};

const ID: &str = "worker-education";

/// Enterprises: site and unified social credit code (check characters
/// computed by GB 32100-2015).
const ENTERPRISES: [(&str, &str); 4] = [
    ("T01-ETC", "91350602MA2Y0T0A1E"),
    ("T02-ETC", "91350603MA31KXQ729"),
    ("T03-ETC", "91350604MA8C4PR136"),
    ("T04-ETC", "91350605MA2XN2L84W"),
];

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

    /// Working-age residents of a township's villages (no admins).
    async fn workers(&self, township: &str) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT p.id FROM persons p JOIN sites s ON s.id = p.home_site_id \
             WHERE s.code LIKE $1 AND p.birth_date >= '1971-01-01' AND p.login IS NULL ORDER BY p.id",
        )
        .bind(format!("{township}-V%"))
        .fetch_all(self.registry.kernel().db.reader())
        .await?;
        Ok(rows.into_iter().map(|(p,)| p).collect())
    }
}

/// `YYYY-MM-DD`, `days` from today.
fn day(days: i64) -> String {
    let today =
        chrono::NaiveDate::parse_from_str(&crate::sites::today(), "%Y-%m-%d").unwrap_or_default();
    (today + chrono::Duration::days(days)).to_string()
}

/// Fill worker continuing education, once (nothing is done if the open
/// university already offers programs).
pub async fn seed(registry: &Registry) -> Result<Option<String>> {
    if registry.manifest(ID).is_none() {
        return Ok(None);
    }
    let d = Demo { registry };
    let admin = d.person_by_login("admin").await?;
    let existing = d
        .call("CITY-OU", admin, "GET", "/programs", json!({}))
        .await?;
    if existing["items"].as_array().is_some_and(|a| !a.is_empty()) {
        return Ok(Some("worker-education already filled".into()));
    }
    let system = crate::authz::Actor::System("demo");
    let m = registry.manifest(ID).context("manifest")?;
    crate::plugins::settings::set(
        registry.kernel(),
        &system,
        &m,
        "CITY",
        "credit_rule",
        json!("ce-hours"),
    )
    .await?;

    // The requirement rules.
    for rule in [
        json!({"code": "technician", "name": "专业技术人员继续教育（每年90学时，专业科目不少于三分之二）", "population": "professional_technician", "total_hours": 90, "category": "professional", "category_share": "2/3", "valid_from": "2020-01-01"}),
        json!({"code": "cadre-township", "name": "乡科级及以下干部教育培训（每年90学时）", "population": "cadre", "cadre_level": "township", "total_hours": 90, "valid_from": "2020-01-01"}),
        json!({"code": "cadre-county", "name": "县处级以上领导干部（每5年550学时）", "population": "cadre", "cadre_level": "county", "total_hours": 550, "period_years": 5, "anchor_year": 2026, "valid_from": "2020-01-01"}),
    ] {
        d.call("CITY", admin, "POST", "/rules", rule).await?;
    }

    // Programs at the open university and the teacher-training school.
    let (from, to) = (day(-75), day(-20));
    let mut programs = Vec::new();
    for (site, title, category, mode, hours, demo) in [
        (
            "CITY-OU",
            "专业技术人员公需科目：法治建设与诚信",
            "public",
            "online",
            30,
            false,
        ),
        (
            "CITY-OU",
            "人工智能通识与行业应用",
            "professional",
            "blended",
            36,
            true,
        ),
        (
            "CITY-TTS",
            "信息技术应用能力提升工程",
            "professional",
            "blended",
            24,
            true,
        ),
        (
            "CITY-OU",
            "党的创新理论专题学习",
            "political_theory",
            "seminar",
            40,
            false,
        ),
        (
            "CITY-TTS",
            "师德师风与职业素养",
            "public",
            "classroom",
            12,
            false,
        ),
    ] {
        let p = d
            .call(site, admin, "POST", "/programs", json!({"title": title, "category": category, "mode": mode, "hours": hours, "starts_on": from, "ends_on": to, "capacity": 80, "demonstration": demo}))
            .await?;
        programs.push((site, p["id"].as_i64().unwrap_or_default()));
    }
    let (public, ai, it, theory) = (programs[0], programs[1], programs[2], programs[3]);

    // Enterprises and their staff: 0-3 technicians (0, 1 will comply),
    // 4-5 township cadres (4 will comply), 6 a county cadre, 7 an employee.
    let mut staff_count = 0;
    let mut staff_of = Vec::new();
    for (n, (site, uscc)) in ENTERPRISES.iter().enumerate() {
        let township = &site[..3];
        let hr = d
            .person_by_login(&format!("{}-admin", township.to_lowercase()))
            .await?;
        d.call(site, hr, "POST", "/enterprises", json!({ "uscc": uscc }))
            .await?;
        let people: Vec<i64> = d.workers(township).await?.into_iter().take(8).collect();
        let row = |i: usize, p: i64| match i {
            0..=3 => format!(
                "{p},professional_technician,,{},{}",
                if i % 2 == 0 {
                    "engineering"
                } else {
                    "medicine"
                },
                if i == 0 {
                    "高级工程师"
                } else {
                    "工程师"
                }
            ),
            4 | 5 => format!("{p},cadre,township,,科员"),
            6 => format!("{p},cadre,county,,处长"),
            _ => format!("{p},employee,,,技术员"),
        };
        if n == 0 {
            let csv = std::iter::once("person_id,population,cadre_level,profession,title".into())
                .chain(people.iter().enumerate().map(|(i, p)| row(i, *p)))
                .collect::<Vec<_>>()
                .join("\n");
            d.call(site, hr, "POST", "/staff/import", json!({ "csv": csv }))
                .await?;
        } else {
            for (i, p) in people.iter().enumerate() {
                let f: Vec<String> = row(i, *p).split(',').map(String::from).collect();
                d.call(site, hr, "POST", "/staff", json!({"person_id": p, "population": f[1], "cadre_level": f[2], "profession": f[3], "title": f[4]}))
                    .await?;
            }
        }
        staff_count += people.len();
        staff_of.push((*site, hr, people));
    }

    // Staff enrol; the providers complete their programs.
    // T03's and T04's employees train nowhere yet: below a 100% rate.
    for (n, (_, _, people)) in staff_of.iter().enumerate() {
        for (i, p) in people.iter().enumerate() {
            let mine: Vec<(&str, i64)> = match i {
                0 | 1 => vec![public, ai, it],
                2 | 3 => vec![public, ai],
                4..=6 => vec![theory],
                _ if n < 2 => vec![public],
                _ => vec![],
            };
            for (site, id) in mine {
                d.call(
                    site,
                    *p,
                    "POST",
                    &format!("/programs/{id}/enrolments"),
                    json!({}),
                )
                .await?;
            }
        }
    }
    let mut activities = 0;
    for (site, id) in &programs {
        let done = d
            .call(
                site,
                admin,
                "POST",
                &format!("/programs/{id}/complete"),
                json!({}),
            )
            .await?;
        activities += done["activities"].as_array().map_or(0, Vec::len);
    }

    // Hours earned elsewhere: a township cadre's training days, verified by
    // HR; a technician's conference, still pending.
    let mut pending = 0;
    for (site, hr, people) in &staff_of {
        let a = d
            .call(site, people[4], "POST", "/activities", json!({"title": "乡镇干部集中轮训", "category": "political_theory", "kind": "seminar", "hours": 50, "on_date": day(-40), "evidence": "区委党校结业证书"}))
            .await?;
        d.call(
            site,
            *hr,
            "POST",
            &format!("/activities/{}/verify", a["id"]),
            json!({}),
        )
        .await?;
        activities += 1;
        d.call(site, people[3], "POST", "/activities", json!({"title": "全省工程技术学术年会", "category": "professional", "kind": "conference", "hours": 12, "on_date": day(-10), "evidence": "参会证明 2026-118"}))
            .await?;
        pending += 1;
    }

    // Two orders: T01's completed, T02's accepted with its roster.
    let mut orders = Vec::new();
    for (n, (provider, topic, state)) in [
        ("CITY-OU", "数字化转型定制班", "completed"),
        ("CITY-TTS", "安全生产管理定制班", "accepted"),
    ]
    .iter()
    .enumerate()
    {
        let (site, hr, people) = &staff_of[n];
        let o = d
            .call(site, *hr, "POST", "/orders", json!({"provider": provider, "topic": topic, "category": "job_skills", "mode": "practice", "cohort_size": 6, "hours": 24, "starts_on": day(if n == 0 { -30 } else { 14 }), "ends_on": day(if n == 0 { -25 } else { 20 }), "price": 36000}))
            .await?;
        let id = o["id"].as_i64().unwrap_or_default();
        d.call(
            provider,
            admin,
            "POST",
            &format!("/orders/{id}/quote"),
            json!({"price": 34000}),
        )
        .await?;
        d.call(
            site,
            *hr,
            "POST",
            &format!("/orders/{id}/accept"),
            json!({}),
        )
        .await?;
        d.call(
            site,
            *hr,
            "POST",
            &format!("/orders/{id}/roster"),
            json!({"person_ids": people[2..8]}),
        )
        .await?;
        if *state == "completed" {
            d.call(
                provider,
                admin,
                "POST",
                &format!("/orders/{id}/deliver"),
                json!({}),
            )
            .await?;
            let done = d
                .call(
                    provider,
                    admin,
                    "POST",
                    &format!("/orders/{id}/complete"),
                    json!({}),
                )
                .await?;
            activities += done["activities"].as_u64().unwrap_or(0) as usize;
        }
        orders.push(id);
    }

    // Funds: the city's and T01's, with allocations, spending and a reversal.
    let year = &crate::sites::today()[..4];
    let city_fund = d
        .call("CITY", admin, "POST", "/funds", json!({"name": "市干部和专业技术人员继续教育专项资金", "year": year.parse::<i64>().unwrap_or(2026), "budget": 500000, "per_trainee_cap": 2000}))
        .await?;
    let cf = city_fund["id"].as_i64().unwrap_or_default();
    d.call(
        "CITY",
        admin,
        "POST",
        &format!("/funds/{cf}/allocations"),
        json!({"order_id": orders[0], "amount": 34000}),
    )
    .await?;
    d.call(
        "CITY",
        admin,
        "POST",
        &format!("/funds/{cf}/allocations"),
        json!({"program_id": ai.1, "amount": 60000}),
    )
    .await?;
    d.call("CITY", admin, "POST", &format!("/funds/{cf}/spend"), json!({"order_id": orders[0], "amount": 12000, "trainees": 6, "evidence": "发票 No.35060001（数字化转型定制班）"}))
        .await?;
    let wrong = d
        .call("CITY", admin, "POST", &format!("/funds/{cf}/spend"), json!({"program_id": ai.1, "amount": 28800, "trainees": 16, "evidence": "发票 No.35060002（人工智能通识）"}))
        .await?;
    d.call(
        "CITY",
        admin,
        "POST",
        &format!("/movements/{}/reverse", wrong["id"]),
        json!({"reason": "金额录入错误，按 No.35060003 重新列支"}),
    )
    .await?;
    d.call("CITY", admin, "POST", &format!("/funds/{cf}/spend"), json!({"program_id": ai.1, "amount": 25600, "trainees": 16, "evidence": "发票 No.35060003（人工智能通识）"}))
        .await?;
    let t01 = staff_of[0].1;
    let tf = d
        .call("T01", t01, "POST", "/funds", json!({"name": "东湖街道继续教育专项资金", "year": year.parse::<i64>().unwrap_or(2026), "budget": 80000, "per_trainee_cap": 500, "categories": ["public", "professional"]}))
        .await?;
    d.call("T01", t01, "POST", &format!("/funds/{}/spend", tf["id"]), json!({"program_id": public.1, "amount": 4000, "trainees": 8, "evidence": "发票 No.35061001（公需科目）"}))
        .await?;

    // What the report shows.
    let report = d.call("CITY", admin, "GET", "/reports", json!({})).await?;
    let le = &report["learning_enterprises"];
    Ok(Some(format!(
        "worker-education: {} enterprises with {staff_count} staff, {} programs ({} demonstration), 2 orders (completed, accepted), {activities} verified activities ({} h in accounts) and {pending} pending, {}/{} staff compliant, training rate {:.0}%, funds spent {} yuan of {}",
        ENTERPRISES.len(),
        programs.len(),
        report["programs"]["demonstration"],
        report["verified_hours"],
        le["compliant"],
        le["assessed"],
        le["training_rate"].as_f64().unwrap_or(0.0) * 100.0,
        report["funds"].as_array().map_or(0, |f| f.iter().map(|f| f["spent"].as_i64().unwrap_or(0)).sum::<i64>()),
        report["funds"].as_array().map_or(0, |f| f.iter().map(|f| f["budget"].as_i64().unwrap_or(0)).sum::<i64>()),
    )))
}
