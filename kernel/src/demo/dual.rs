//! The demo's dual-track courses, entered through the dual-track plugin's
//! own routes by the people who would enter them: the city publishes the
//! credit bank's conversion standards; the open university (the school)
//! offers two specialities — one by distance education — with three
//! township enterprises, which the city approves as training places;
//! enterprise admins register mentors (the kernel's `enterprise_mentor`
//! role, granted through the plugin); the school registers teachers and
//! committees and draws up agreements that reach several stages: a draft
//! not yet signed, active ones part-way, one ended with a reason, and
//! completed ones whose accounts show the certificate, the credits and the
//! conversion.

use crate::accounts::conversion;
use crate::plugins::registry::Registry;
use anyhow::{Context, Result};
use serde_json::{json, Value};

const ID: &str = "dual-track";
const SCHOOL: &str = "CITY-OU";

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

    async fn post(&self, site: &str, person: i64, path: &str, body: Value) -> Result<Value> {
        self.call(site, person, "POST", path, body).await
    }

    async fn person_by_login(&self, login: &str) -> Result<i64> {
        super::client::person_by_login(self.registry, login).await
    }

    /// Residents of a township's villages with an active account, last first
    /// (the volunteers demo takes the first ones).
    async fn residents(&self, township: &str) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT p.id FROM persons p JOIN sites s ON s.id = p.home_site_id JOIN accounts a ON a.person_id = p.id \
             WHERE s.code LIKE $1 AND a.status = 'active' AND p.login IS NULL ORDER BY p.id DESC",
        )
        .bind(format!("{township}-V%"))
        .fetch_all(self.registry.kernel().db.reader())
        .await?;
        Ok(rows.into_iter().map(|(p,)| p).collect())
    }
}

fn standard(
    job_type: &str,
    post: &str,
    modules: &[(&str, &str, &str, i64)],
    certificate: (&str, &str),
    credits: f64,
    conversion: &str,
) -> Value {
    json!({
        "job_type": job_type,
        "modules": modules.iter().map(|(code, name, place, hours)| json!({
            "code": code, "name": name, "place": place, "hours": hours
        })).collect::<Vec<_>>(),
        "skills": [format!("{job_type}岗位操作规范"), "安全生产"],
        "items": [
            {"code": "MID-T", "name": "期中理论考核", "post": post, "stage": "midterm", "kind": "theory", "assessor": "school", "pass_mark": 60},
            {"code": "FIN-T", "name": "结业理论考试", "post": post, "stage": "final", "kind": "theory", "assessor": "school", "pass_mark": 60},
            {"code": "FIN-P", "name": "结业实操考核", "post": post, "stage": "final", "kind": "practice", "assessor": "enterprise", "pass_mark": 70}
        ],
        "certificate": {"kind": certificate.0, "title": certificate.1},
        "credits": credits,
        "conversion": conversion,
    })
}

/// Fill the dual-track module, once (nothing is done if specialities exist).
pub async fn seed(registry: &Registry) -> Result<Option<String>> {
    if registry.manifest(ID).is_none() {
        return Ok(None);
    }
    let d = Demo { registry };
    let k = registry.kernel();
    let city_admin = d.person_by_login("admin").await?;
    let existing = d
        .call("CITY", city_admin, "GET", "/specialities", json!({}))
        .await?;
    if existing["specialities"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        return Ok(Some("dual-track: specialities exist already".into()));
    }
    let system = crate::authz::Actor::System("demo");
    // The credit bank's conversion standards (city admins publish them).
    for (code, name, source, target) in [
        (
            "dual-skill-credit",
            "职业技能等级证书折算学分",
            "skill_certificate",
            2.0,
        ),
        (
            "dual-vq-credit",
            "职业资格证书折算学分",
            "vocational_qualification",
            4.0,
        ),
    ] {
        conversion::publish(
            k,
            &system,
            serde_json::from_value(json!({
                "code": code, "name": name, "cardinality": "1:1", "source_kind": source,
                "target_kind": "academic_credit", "target_quantity": target, "cap": 12,
                "valid_from": "2026-01-01"
            }))?,
        )
        .await?;
    }
    let enterprises = ["T01-ETC", "T02-ETC", "T03-ETC"];
    let mut admins = Vec::new();
    let mut people = Vec::new();
    for t in 1..=3 {
        admins.push(d.person_by_login(&format!("t{t:02}-admin")).await?);
        people.push(d.residents(&format!("T{t:02}")).await?);
    }
    let mut pick = |t: usize| people[t].pop().context("not enough residents");
    // The school's admin, its teachers, and one mentor per enterprise (two at T01).
    let school_admin = pick(0)?;
    crate::identity::grant(k, &system, school_admin, "site_admin", SCHOOL).await?;
    let teachers = [pick(0)?, pick(1)?, pick(2)?];
    for (n, p) in teachers.iter().enumerate() {
        let body = if n == 2 {
            json!({"person_id": p, "kind": "enterprise_hired", "enterprise": "T03-ETC"})
        } else {
            json!({"person_id": p, "kind": "full_time"})
        };
        d.post(SCHOOL, school_admin, "/teachers", body).await?;
    }
    let mut mentors = Vec::new();
    for (t, ent) in enterprises.iter().enumerate() {
        let m = pick(t)?;
        d.post(
            ent,
            admins[t],
            "/mentors",
            json!({"person_id": m, "qualification": "高级技师 / 企业培训师", "valid_until": "2029-12-31"}),
        )
        .await?;
        mentors.push(m);
    }
    // Two specialities; the second is taught by distance education.
    let elec = d
        .post(
            SCHOOL,
            school_admin,
            "/specialities",
            json!({
                "code": "DT-ELEC", "name": "电气自动化技术", "distance": false,
                "created_on": super::elder::days_ago(400),
                "partners": ["T01-ETC", "T02-ETC"],
                "standard": standard("维修电工", "设备维修岗",
                    &[("T-BASE", "电工基础", "school", 60), ("T-PLC", "PLC编程", "school", 40),
                      ("P-WIRE", "配电安装实操", "enterprise", 120), ("P-MAINT", "设备维护轮岗", "enterprise", 80)],
                    ("skill_certificate", "电工职业技能等级证书(四级)"), 10.0, "dual-skill-credit"),
            }),
        )
        .await?["id"]
        .as_i64()
        .context("speciality id")?;
    let ecom = d
        .post(
            SCHOOL,
            school_admin,
            "/specialities",
            json!({
                "code": "DT-ECOM-D", "name": "电子商务(远程)", "distance": true,
                "created_on": super::elder::days_ago(200),
                "partners": ["T02-ETC", "T03-ETC"],
                "standard": standard("网店运营", "运营专员岗",
                    &[("T-MKT", "网络营销(远程)", "school", 48), ("P-SHOP", "店铺运营实训", "enterprise", 96)],
                    ("vocational_qualification", "电子商务师(四级)"), 8.0, "dual-vq-credit"),
            }),
        )
        .await?["id"]
        .as_i64()
        .context("speciality id")?;
    for (s, ent) in [
        (elec, "T01-ETC"),
        (elec, "T02-ETC"),
        (ecom, "T02-ETC"),
        (ecom, "T03-ETC"),
    ] {
        d.post(
            SCHOOL,
            city_admin,
            &format!("/specialities/{s}/partners/{ent}/approve"),
            json!({}),
        )
        .await?;
    }
    for (s, enterprise_member) in [(elec, mentors[0]), (ecom, mentors[2])] {
        d.post(
            SCHOOL,
            school_admin,
            &format!("/specialities/{s}/committee"),
            json!({"members": [
                {"person_id": teachers[0], "side": "school"},
                {"person_id": teachers[1], "side": "school"},
                {"person_id": enterprise_member, "side": "enterprise"}
            ]}),
        )
        .await?;
    }
    // Agreements: (speciality, enterprise index, stage, waive).
    let plan = [
        (elec, 0, "completed", None),
        (elec, 0, "completed", Some("P-MAINT")),
        (elec, 1, "active", None),
        (elec, 1, "draft", None),
        (ecom, 2, "completed", None),
        (ecom, 2, "ended", None),
        (ecom, 1, "active", None),
    ];
    let (mut completed, mut certificates, mut credits, mut conversions) = (0, 0, 0.0, 0);
    let mut stages: std::collections::BTreeMap<&str, i64> = Default::default();
    for (n, (spec, e, stage, waive)) in plan.into_iter().enumerate() {
        let learner = pick(n % 3)?;
        let ent = enterprises[e];
        let mentor = mentors[e];
        let waivers = waive.map_or(
            json!([]),
            |m| json!([{"module": m, "evidence": "企业在岗工作证明及原有技能证书, 2025"}]),
        );
        let a = d
            .post(
                SCHOOL,
                school_admin,
                "/agreements",
                json!({"speciality_id": spec, "learner_id": learner, "enterprise": ent, "mentor_id": mentor, "waivers": waivers}),
            )
            .await?;
        let id = a["id"].as_i64().context("agreement id")?;
        *stages.entry(stage).or_default() += 1;
        let path = |tail: &str| format!("/agreements/{id}{tail}");
        d.post(SCHOOL, learner, &path("/sign"), json!({"party": "learner"}))
            .await?;
        if stage == "draft" {
            continue;
        }
        d.post(
            SCHOOL,
            school_admin,
            &path("/sign"),
            json!({"party": "school"}),
        )
        .await?;
        d.post(
            ent,
            admins[e],
            &path("/sign"),
            json!({"party": "enterprise"}),
        )
        .await?;
        let modules: Vec<(String, String)> = a["missing"]["modules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(String::from))
            .map(|m| {
                let place = if m.starts_with("T-") {
                    "school"
                } else {
                    "enterprise"
                };
                (m, place.to_string())
            })
            .collect();
        let part = if stage == "completed" {
            modules.len()
        } else {
            2
        };
        for (m, place) in modules.iter().take(part) {
            let who = if place == "school" {
                teachers[0]
            } else {
                mentor
            };
            d.post(SCHOOL, who, &path(&format!("/modules/{m}")), json!({}))
                .await?;
        }
        d.post(
            SCHOOL,
            teachers[0],
            &path("/results"),
            json!({"item": "MID-T", "score": 78}),
        )
        .await?;
        match stage {
            "ended" => {
                d.post(
                    ent,
                    admins[e],
                    &path("/end"),
                    json!({"reason": "学员因家庭原因申请终止培训"}),
                )
                .await?;
            }
            "completed" => {
                d.post(
                    SCHOOL,
                    teachers[1],
                    &path("/results"),
                    json!({"item": "FIN-T", "score": 84}),
                )
                .await?;
                d.post(
                    SCHOOL,
                    mentor,
                    &path("/results"),
                    json!({"item": "FIN-P", "score": 88}),
                )
                .await?;
                let c = d
                    .post(SCHOOL, school_admin, &path("/complete"), json!({}))
                    .await?;
                completed += 1;
                certificates += 1;
                credits += c["credits"]["quantity"].as_f64().unwrap_or(0.0);
                if let Some(q) = c["conversion"]["quantity"].as_f64() {
                    conversions += 1;
                    credits += q;
                }
            }
            _ => {}
        }
    }
    Ok(Some(format!(
        "dual-track: 2 specialities at {SCHOOL} (1 distance), 3 enterprises approved as training places, \
         {} mentors, {} teachers, agreements {stages:?}; {completed} completed with {certificates} certificates \
         and {credits} credits (conversions included: {conversions}) in the learners' accounts",
        mentors.len(),
        teachers.len()
    )))
}
