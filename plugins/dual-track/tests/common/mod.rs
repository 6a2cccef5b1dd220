//! The dual-track test city: a township with an open university (the
//! school), three enterprises, the plugin packaged, installed through the
//! registry and enabled at the city, staff, teachers, mentors, learners
//! with active accounts, and the credit bank's conversion standard.
#![allow(dead_code)]

use kernel::authz::Actor;
use lifelong_harness::{TestKernel, TestPlugin};
use serde_json::{json, Value};

pub const ID: &str = "dual-track";

pub fn sys() -> Actor {
    Actor::System("test")
}

pub struct City {
    pub k: TestKernel,
    /// The plugin, called at the school SCH.
    pub p: TestPlugin,
    /// site_admin at T1: approves training places.
    pub authority: i64,
    /// site_admin at SCH.
    pub school_admin: i64,
    /// site_admin at E1, E2.
    pub e1_admin: i64,
    pub e2_admin: i64,
    /// A full-time teacher and a teacher specially hired from E1.
    pub teacher: i64,
    pub hired: i64,
    /// Qualified mentors at E1 and E2.
    pub m1: i64,
    pub m2: i64,
    serial: std::sync::atomic::AtomicU32,
}

/// A job-type standard; `extra_item` adds a required final item.
pub fn standard(extra_item: bool) -> Value {
    let mut items = vec![
        json!({"code": "M-T", "name": "期中理论", "post": "维修电工", "stage": "midterm", "kind": "theory", "assessor": "school", "pass_mark": 60}),
        json!({"code": "F-T", "name": "结业理论", "post": "维修电工", "stage": "final", "kind": "theory", "assessor": "school", "pass_mark": 60}),
        json!({"code": "F-P", "name": "结业实操", "post": "维修电工", "stage": "final", "kind": "practice", "assessor": "enterprise", "pass_mark": 70}),
    ];
    if extra_item {
        items.push(json!({"code": "F-S", "name": "安全规程", "post": "维修电工", "stage": "final", "kind": "practice", "assessor": "committee", "pass_mark": 80}));
    }
    json!({
        "job_type": "维修电工",
        "modules": [
            {"code": "T1", "name": "电工基础", "place": "school", "hours": 40, "content": "电路、安全"},
            {"code": "P1", "name": "配电实操", "place": "enterprise", "hours": 80},
            {"code": "P2", "name": "设备维护", "place": "enterprise", "hours": 40}
        ],
        "skills": ["低压电工作业"],
        "items": items,
        "certificate": {"kind": "skill_certificate", "title": "电工职业技能等级证书(四级)"},
        "credits": 12,
        "conversion": "dual-cert-credit"
    })
}

impl City {
    /// CITY → T1 → (T1-V1, SCH open university, E1, E2 enterprises); E3 at the city.
    pub async fn new(k: TestKernel) -> City {
        for (code, kind, parent) in [
            ("CITY", "city", None),
            ("T1", "township", Some("CITY")),
            ("T1-V1", "village", Some("T1")),
            ("SCH", "open_university", Some("T1")),
            ("E1", "enterprise_training_centre", Some("T1")),
            ("E2", "enterprise_training_centre", Some("T1")),
            ("E3", "enterprise_training_centre", Some("CITY")),
            ("T2", "township", Some("CITY")),
        ] {
            kernel::sites::create(
                &k.kernel.db,
                &sys(),
                kernel::sites::NewSite {
                    code: code.into(),
                    name_zh: format!("{code}站点"),
                    kind: kind.into(),
                    parent_code: parent.map(Into::into),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        kernel::accounts::conversion::publish(
            &k.kernel,
            &sys(),
            serde_json::from_value(json!({
                "code": "dual-cert-credit", "name": "技能证书折算学分", "cardinality": "1:1",
                "source_kind": "skill_certificate", "target_kind": "academic_credit",
                "target_quantity": 2, "cap": 10, "valid_from": "2025-01-01"
            }))
            .unwrap(),
        )
        .await
        .unwrap();
        let pkg = k.package(env!("CARGO_MANIFEST_DIR")).await;
        let p = k.install(&pkg).await.at("SCH");
        k.enable(ID, "CITY").await;
        let mut c = City {
            k,
            p,
            authority: 0,
            school_admin: 0,
            e1_admin: 0,
            e2_admin: 0,
            teacher: 0,
            hired: 0,
            m1: 0,
            m2: 0,
            serial: 0.into(),
        };
        c.authority = c.admin("T1").await;
        c.school_admin = c.admin("SCH").await;
        c.e1_admin = c.admin("E1").await;
        c.e2_admin = c.admin("E2").await;
        c.teacher = c.person().await;
        c.hired = c.person().await;
        for (who, body) in [
            (
                c.teacher,
                json!({"person_id": c.teacher, "kind": "full_time"}),
            ),
            (
                c.hired,
                json!({"person_id": c.hired, "kind": "enterprise_hired", "enterprise": "E1"}),
            ),
        ] {
            let (s, v) = c.post(c.school_admin, "/teachers", body).await;
            assert_eq!(s, 201, "teacher {who}: {v}");
        }
        c.m1 = c.mentor("E1", c.e1_admin).await;
        c.m2 = c.mentor("E2", c.e2_admin).await;
        c
    }

    async fn admin(&self, site: &str) -> i64 {
        let p = self.person().await;
        kernel::identity::grant(&self.k.kernel, &sys(), p, "site_admin", site)
            .await
            .unwrap();
        p
    }

    /// A qualified mentor at `ent`, registered by its admin.
    pub async fn mentor(&self, ent: &str, admin: i64) -> i64 {
        let m = self.person().await;
        let (s, v) = self
            .post_at(
                ent,
                admin,
                "/mentors",
                json!({"person_id": m, "qualification": "高级技师", "valid_until": "2099-12-31"}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        m
    }

    /// A resident of T1-V1 with an active account.
    pub async fn person(&self) -> i64 {
        let n = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let born = chrono::NaiveDate::from_ymd_opt(1990, 1 + (n % 12), 1 + (n % 28)).unwrap();
        let id = kernel::identity::create(
            &self.k.kernel,
            &sys(),
            kernel::identity::NewPerson {
                name: format!("学员{n}"),
                id_number: kernel::idnumber::synthesize(
                    350602,
                    born,
                    n,
                    kernel::idnumber::Sex::Male,
                ),
                home_site: "T1-V1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
        kernel::accounts::transition(&self.k.kernel, &sys(), id, "activate")
            .await
            .unwrap();
        id
    }

    pub fn as_(&self, person: i64) -> kernel::plugins::runtime::Caller {
        self.k.person(person, &[])
    }

    pub async fn post(&self, who: i64, path: &str, body: Value) -> (u16, Value) {
        self.p.post(path, Some(body), &self.as_(who)).await.unwrap()
    }

    pub async fn post_at(&self, site: &str, who: i64, path: &str, body: Value) -> (u16, Value) {
        self.p
            .at(site)
            .post(path, Some(body), &self.as_(who))
            .await
            .unwrap()
    }

    pub async fn get(&self, who: i64, path: &str) -> (u16, Value) {
        self.p.get(path, &self.as_(who)).await.unwrap()
    }

    /// A speciality at SCH with partners E1 and E2 approved and a committee.
    pub async fn speciality(&self, code: &str, distance: bool) -> i64 {
        let (s, v) = self
            .post(
                self.school_admin,
                "/specialities",
                json!({
                    "code": code, "name": "电气自动化", "distance": distance,
                    "standard": standard(false), "partners": ["E1", "E2"]
                }),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let id = v["id"].as_i64().unwrap();
        for e in ["E1", "E2"] {
            let (s, v) = self
                .post(
                    self.authority,
                    &format!("/specialities/{id}/partners/{e}/approve"),
                    json!({}),
                )
                .await;
            assert_eq!(s, 200, "{v}");
        }
        let (s, v) = self
            .post(
                self.school_admin,
                &format!("/specialities/{id}/committee"),
                json!({"members": [
                    {"person_id": self.teacher, "side": "school"},
                    {"person_id": self.m1, "side": "enterprise"}
                ]}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        id
    }

    /// An agreement for `learner` at E1 with mentor m1, signed by all.
    pub async fn agreement(&self, speciality: i64, learner: i64) -> i64 {
        let (s, v) = self
            .post(self.school_admin, "/agreements", json!({
                "speciality_id": speciality, "learner_id": learner, "enterprise": "E1", "mentor_id": self.m1
            }))
            .await;
        assert_eq!(s, 201, "{v}");
        let id = v["id"].as_i64().unwrap();
        for (who, party) in [
            (learner, "learner"),
            (self.school_admin, "school"),
            (self.e1_admin, "enterprise"),
        ] {
            let (s, v) = self
                .post(
                    who,
                    &format!("/agreements/{id}/sign"),
                    json!({"party": party}),
                )
                .await;
            assert_eq!(s, 200, "{v}");
        }
        id
    }

    /// Record every module and pass every item of the standard `items`.
    pub async fn finish(&self, id: i64, items: &[&str]) {
        for (who, m) in [(self.teacher, "T1"), (self.m1, "P1"), (self.m1, "P2")] {
            let (s, v) = self
                .post(who, &format!("/agreements/{id}/modules/{m}"), json!({}))
                .await;
            assert_eq!(s, 201, "{m}: {v}");
        }
        for item in items {
            let who = if item.ends_with("-T") {
                self.teacher
            } else {
                self.m1
            };
            let (s, v) = self
                .post(
                    who,
                    &format!("/agreements/{id}/results"),
                    json!({"item": item, "score": 88}),
                )
                .await;
            assert_eq!((s, v["passed"].as_bool()), (200, Some(true)), "{item}: {v}");
        }
    }

    /// The learner's ledger entries: (kind, quantity, rule_code).
    pub async fn entries(&self, person: i64) -> Vec<(String, f64, Option<String>)> {
        kernel::accounts::ledger::statement(&self.k.kernel, &sys(), person, 0, 200)
            .await
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.kind, e.quantity, e.rule_code))
            .collect()
    }
}
