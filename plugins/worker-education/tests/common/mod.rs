//! The worker-education test city: a city with the open university and a
//! teacher-training school, township T1 with two enterprises, township T2
//! with one; the plugin packaged, installed through the registry and enabled
//! at the city; a city admin, a township admin, each enterprise's HR and
//! each provider's office; the kernel's hours→credits rule; helpers.
#![allow(dead_code)]

use kernel::authz::Actor;
use lifelong_harness::{TestKernel, TestPlugin};
use serde_json::{json, Value};

pub const ID: &str = "worker-education";

pub fn sys() -> Actor {
    Actor::System("test")
}

pub fn today() -> String {
    kernel::sites::today()
}

pub fn this_year() -> i64 {
    today()[..4].parse().unwrap()
}

/// A valid unified social credit code whose organisation part is `n`.
pub fn uscc(n: u32) -> String {
    let first = format!("91350100{n:09}");
    let check = worker_education::uscc::check_character(&first).unwrap();
    format!("{first}{check}")
}

pub struct City {
    pub k: TestKernel,
    pub p: TestPlugin,
    pub city_admin: i64,
    /// site_admin of T1 (the township fund).
    pub t1_admin: i64,
    /// HR of T1-E1 and T1-E2.
    pub hr1: i64,
    pub hr2: i64,
    /// Offices of the open university and the teacher-training school.
    pub ou: i64,
    pub tts: i64,
    serial: std::sync::atomic::AtomicU32,
}

impl City {
    pub async fn new(k: TestKernel) -> City {
        for (code, kind, parent) in [
            ("CITY", "city", None),
            ("T1", "township", Some("CITY")),
            ("T1-V1", "village", Some("T1")),
            ("CITY-OU", "open_university", Some("CITY")),
            ("CITY-TTS", "teacher_training_school", Some("CITY")),
            ("T1-E1", "enterprise_training_centre", Some("T1")),
            ("T1-E2", "enterprise_training_centre", Some("T1")),
            ("T2", "township", Some("CITY")),
            ("T2-V1", "village", Some("T2")),
            ("T2-E1", "enterprise_training_centre", Some("T2")),
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
        kernel::accounts::rules::publish(
            &k.kernel,
            &sys(),
            kernel::accounts::rules::NewRule {
                code: "ce-hours".into(),
                name: "继续教育学时转换".into(),
                outcome_kind: "continuing_education".into(),
                credits_per_unit: 0.1,
                max_credits: None,
                valid_from: "2000-01-01".into(),
            },
        )
        .await
        .unwrap();
        let pkg = k.package(env!("CARGO_MANIFEST_DIR")).await;
        let p = k.install(&pkg).await.at("T1-E1");
        k.enable(ID, "CITY").await;
        let mut c = City {
            k,
            p,
            city_admin: 0,
            t1_admin: 0,
            hr1: 0,
            hr2: 0,
            ou: 0,
            tts: 0,
            serial: 0.into(),
        };
        c.setting("CITY", "credit_rule", json!("ce-hours")).await;
        for (field, role, site) in [
            (0, "city_admin", "CITY"),
            (1, "site_admin", "T1"),
            (2, "site_admin", "T1-E1"),
            (3, "site_admin", "T1-E2"),
            (4, "site_admin", "CITY-OU"),
            (5, "site_admin", "CITY-TTS"),
        ] {
            let p = c.person("T1-V1").await;
            kernel::identity::grant(&c.k.kernel, &sys(), p, role, site)
                .await
                .unwrap();
            match field {
                0 => c.city_admin = p,
                1 => c.t1_admin = p,
                2 => c.hr1 = p,
                3 => c.hr2 = p,
                4 => c.ou = p,
                _ => c.tts = p,
            }
        }
        for (n, (site, hr)) in [("T1-E1", c.hr1), ("T1-E2", c.hr2)].iter().enumerate() {
            let (s, v) = c
                .call(
                    site,
                    *hr,
                    "POST",
                    "/enterprises",
                    json!({"uscc": uscc(n as u32 + 1)}),
                )
                .await;
            assert_eq!(s, 201, "{v}");
        }
        c
    }

    /// A person homed at `home`, with an active account.
    pub async fn person(&self, home: &str) -> i64 {
        let n = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let born = chrono::NaiveDate::from_ymd_opt(1980, 1 + (n % 12), 1 + (n % 28)).unwrap();
        let id = kernel::identity::create(
            &self.k.kernel,
            &sys(),
            kernel::identity::NewPerson {
                name: format!("职工{n}"),
                id_number: kernel::idnumber::synthesize(
                    350602,
                    born,
                    n,
                    kernel::idnumber::Sex::Male,
                ),
                home_site: home.into(),
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

    /// A person registered as staff of T1-E1 with `population`.
    pub async fn staff(&self, population: &str, cadre_level: &str, profession: &str) -> i64 {
        let p = self.person("T1-V1").await;
        let (s, v) = self
            .call(
                "T1-E1",
                self.hr1,
                "POST",
                "/staff",
                json!({"person_id": p, "population": population, "cadre_level": cadre_level, "profession": profession, "title": "工程师"}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        p
    }

    /// Verified hours for `person` of T1-E1: submitted and verified by HR.
    pub async fn hours(&self, person: i64, category: &str, hours: i64, on: &str) -> i64 {
        let (s, v) = self
            .call(
                "T1-E1",
                person,
                "POST",
                "/activities",
                json!({"title": "学术会议", "category": category, "kind": "conference", "hours": hours, "on_date": on, "evidence": "会议证明 2026-17"}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let id = v["id"].as_i64().unwrap();
        let (s, v) = self
            .call(
                "T1-E1",
                self.hr1,
                "POST",
                &format!("/activities/{id}/verify"),
                json!({}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        id
    }

    pub fn as_(&self, person: i64) -> kernel::plugins::runtime::Caller {
        self.k.person(person, &[])
    }

    pub async fn call(
        &self,
        site: &str,
        who: i64,
        method: &str,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let body = (method != "GET").then_some(body);
        self.p
            .at(site)
            .call(method, path, body, &self.as_(who))
            .await
            .unwrap()
    }

    pub async fn get(&self, site: &str, who: i64, path: &str) -> (u16, Value) {
        self.call(site, who, "GET", path, Value::Null).await
    }

    pub async fn setting(&self, site: &str, name: &str, value: Value) {
        let m = self.k.registry.manifest(ID).unwrap();
        kernel::plugins::settings::set(&self.k.kernel, &sys(), &m, site, name, value)
            .await
            .unwrap();
    }

    /// Continuing-education hours and entries in a person's account.
    pub async fn account_hours(&self, person: i64) -> (f64, usize) {
        let st = kernel::accounts::ledger::statement(&self.k.kernel, &sys(), person, 0, 200)
            .await
            .unwrap();
        let v: Vec<_> = st
            .entries
            .iter()
            .filter(|e| e.kind == "continuing_education")
            .collect();
        (v.iter().map(|e| e.quantity).sum(), v.len())
    }

    /// A program at `site` by its office `who`; returns its id.
    pub async fn program(&self, site: &str, who: i64, capacity: i64, extra: Value) -> i64 {
        let mut body = json!({
            "title": "新技术专题研修", "category": "professional", "mode": "classroom", "hours": 24,
            "starts_on": today(), "ends_on": today(), "capacity": capacity,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, v) = self.call(site, who, "POST", "/programs", body).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_i64().unwrap()
    }
}
