//! The volunteers test city: sites, the plugin packaged, installed through
//! the registry and enabled at the city, a coordinator, volunteers with
//! active accounts, and helpers to call routes and read accounts.
#![allow(dead_code)]

use kernel::authz::Actor;
use lifelong_harness::{TestKernel, TestPlugin};
use serde_json::{json, Value};

pub const ID: &str = "volunteers";

pub fn sys() -> Actor {
    Actor::System("test")
}

pub struct City {
    pub k: TestKernel,
    /// The plugin, called at township T1.
    pub p: TestPlugin,
    /// Site admin of T1: the coordinator.
    pub staff: i64,
    serial: std::sync::atomic::AtomicU32,
}

/// Local wall-clock time (UTC+8) `minutes` from now, as `YYYY-MM-DDTHH:MM`.
pub fn at(minutes: i64) -> String {
    let t = chrono::Utc::now() + chrono::Duration::minutes(480 + minutes);
    t.format("%Y-%m-%dT%H:%M").to_string()
}

pub fn today() -> String {
    kernel::sites::today()
}

impl City {
    /// CITY → T1 (township) → T1-V1 (village), U1 (elder university); T2.
    pub async fn new(k: TestKernel) -> City {
        for (code, kind, parent) in [
            ("CITY", "city", None),
            ("T1", "township", Some("CITY")),
            ("T1-V1", "village", Some("T1")),
            ("U1", "elder_university", Some("T1")),
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
        let pkg = k.package(env!("CARGO_MANIFEST_DIR")).await;
        let p = k.install(&pkg).await.at("T1");
        k.enable(ID, "CITY").await;
        let mut city = City {
            k,
            p,
            staff: 0,
            serial: 0.into(),
        };
        city.staff = city.person(1975, "T1-V1", true).await;
        kernel::identity::grant(&city.k.kernel, &sys(), city.staff, "site_admin", "T1")
            .await
            .unwrap();
        city
    }

    /// A person born in `year`, homed at `home`, with an active account if `active`.
    pub async fn person(&self, year: i32, home: &str, active: bool) -> i64 {
        let n = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let born = chrono::NaiveDate::from_ymd_opt(year, 1 + (n % 12), 1 + (n % 28)).unwrap();
        let id = kernel::identity::create(
            &self.k.kernel,
            &sys(),
            kernel::identity::NewPerson {
                name: format!("志愿者{n}"),
                id_number: kernel::idnumber::synthesize(
                    350602,
                    born,
                    n,
                    kernel::idnumber::Sex::Female,
                ),
                home_site: home.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
        if active {
            kernel::accounts::transition(&self.k.kernel, &sys(), id, "activate")
                .await
                .unwrap();
        }
        id
    }

    /// A registered adult volunteer; returns (person, volunteer number).
    pub async fn volunteer(&self) -> (i64, String) {
        let p = self.person(1990, "T1-V1", true).await;
        let (s, v) = self
            .post(p, "/volunteers", json!({"skills": ["教学辅助"]}))
            .await;
        assert_eq!(s, 201, "{v}");
        (p, v["number"].as_str().unwrap().to_string())
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

    pub async fn setting(&self, site: &str, name: &str, value: Value) {
        let m = self.k.registry.manifest(ID).unwrap();
        kernel::plugins::settings::set(&self.k.kernel, &sys(), &m, site, name, value)
            .await
            .unwrap();
    }

    /// A need at T1, created by the coordinator; `extra` overrides fields.
    pub async fn need(&self, starts: i64, ends: i64, max: i64, extra: Value) -> i64 {
        let mut body = json!({
            "role": "活动引导", "title": "终身学习活动周", "starts_at": at(starts),
            "ends_at": at(ends), "max_wanted": max,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, v) = self.post(self.staff, "/needs", body).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_i64().unwrap()
    }

    /// Verified volunteer-service hours and entries in a person's account.
    pub async fn account_hours(&self, person: i64) -> (f64, usize) {
        let st = kernel::accounts::ledger::statement(&self.k.kernel, &sys(), person, 0, 200)
            .await
            .unwrap();
        let v: Vec<_> = st
            .entries
            .iter()
            .filter(|e| e.kind == "volunteer_service")
            .collect();
        (v.iter().map(|e| e.quantity).sum(), v.len())
    }
}
