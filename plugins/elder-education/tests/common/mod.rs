//! The elder-education test city: sites, the plugin installed and enabled
//! as it is served, a site admin, and helpers to make people and call routes.
#![allow(dead_code)]

use chrono::Datelike;
use kernel::authz::Actor;
use lifelong_harness::{TestKernel, TestPlugin};
use serde_json::{json, Value};

pub const ID: &str = "elder-education";

pub fn sys() -> Actor {
    Actor::System("test")
}

pub struct City {
    pub k: TestKernel,
    pub p: TestPlugin,
    pub staff: i64,
    serial: std::sync::atomic::AtomicU32,
}

impl City {
    /// CITY → T1 (township) → U1 (elder university run with a social
    /// organisation), T2; the plugin enabled at CITY; a site admin at U1.
    pub async fn new(k: TestKernel) -> City {
        for (code, kind, parent, operator) in [
            ("CITY", "city", None, None),
            ("T1", "township", Some("CITY"), None),
            (
                "U1",
                "elder_university",
                Some("T1"),
                Some("social_organisation"),
            ),
            ("T2", "township", Some("CITY"), None),
        ] {
            kernel::sites::create(
                &k.kernel.db,
                &sys(),
                kernel::sites::NewSite {
                    code: code.into(),
                    name_zh: code.into(),
                    kind: kind.into(),
                    parent_code: parent.map(Into::into),
                    operator: operator.map(Into::into),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        let pkg = k.package(env!("CARGO_MANIFEST_DIR")).await;
        let p = k.install(&pkg).await.at("U1");
        k.enable(ID, "CITY").await;
        let mut city = City {
            k,
            p,
            staff: 0,
            serial: 0.into(),
        };
        city.staff = city.person(1970, "male", "U1").await;
        kernel::identity::grant(&city.k.kernel, &sys(), city.staff, "site_admin", "U1")
            .await
            .unwrap();
        city
    }

    /// A person born in `year` (mid-year, so the age is `this year - year - 1`
    /// or `this year - year`), homed at `home`.
    pub async fn person(&self, year: i32, sex: &str, home: &str) -> i64 {
        let n = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let born = chrono::NaiveDate::from_ymd_opt(year, 1 + (n % 12), 1 + (n % 28)).unwrap();
        let sex_ = if sex == "female" {
            kernel::idnumber::Sex::Female
        } else {
            kernel::idnumber::Sex::Male
        };
        kernel::identity::create(
            &self.k.kernel,
            &sys(),
            kernel::identity::NewPerson {
                name: format!("学员{n}"),
                id_number: kernel::idnumber::synthesize(350602, born, n, sex_),
                home_site: home.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id
    }

    pub async fn learners(&self, n: usize, year: i32) -> Vec<i64> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(self.person(year, "male", "U1").await);
        }
        v
    }

    pub fn as_(&self, person: i64) -> kernel::plugins::runtime::Caller {
        self.k.person(person, &[])
    }

    pub async fn post(&self, who: i64, path: &str, body: Value) -> (u16, Value) {
        self.p.post(path, Some(body), &self.as_(who)).await.unwrap()
    }

    pub async fn get(&self, who: i64, path: &str) -> (u16, Value) {
        self.p.get(path, &self.as_(who)).await.unwrap()
    }

    pub async fn setting(&self, name: &str, value: Value) {
        let m = self.k.registry.manifest(ID).unwrap();
        kernel::plugins::settings::set(&self.k.kernel, &sys(), &m, "U1", name, value)
            .await
            .unwrap();
    }

    pub async fn term(&self, code: &str) -> i64 {
        let (s, v) = self
            .post(self.staff, "/terms", json!({"code": code, "name": code, "starts_on": "2026-03-01", "ends_on": "2026-07-01"}))
            .await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_i64().unwrap()
    }

    pub async fn course(&self, term: i64, capacity: i64, extra: Value) -> i64 {
        let mut body = json!({
            "term_id": term, "title": "太极拳", "category": "health", "schedule": "Tue 09:00",
            "venue": "Hall 1", "capacity": capacity, "sessions": 4, "hours": 8.0,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, v) = self.post(self.staff, "/courses", body).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_i64().unwrap()
    }
}

pub fn this_year() -> i32 {
    chrono::Utc::now().year()
}
