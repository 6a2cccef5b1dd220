//! The plan's indicators, snapshots and 15-minute circles through the real
//! router (`/api/v1/indicators…`, `/api/v1/circles`), on SQLite and
//! PostgreSQL: one hand-made city per backend, its story told in order.
//!
//! The map (every point on a meridian or a parallel, so distances are
//! latitude differences: 1° = 111,195.08 m on the mean sphere):
//! - T1 villages V1 (30.000, 120), V2 (30.100, 120), V3 (30.200, 120), V4
//!   (no coordinates, opened 2026-05-01). Learning sites: T1-CS community
//!   school (30.008: 889.6 m from V1, opened 2025-06-01); T1-V2-TP teaching
//!   point (30.109: 1000.76 m from V2 — just outside 1000 m, opened
//!   2026-03-01); T1-V3-WP walking point (at V3, opened 2026-02-01, closed
//!   2026-06-01); across the border, T2's museum T2-MUS (30.2085: 945.2 m
//!   from V3, opened 2020).
//! - T2 villages V1 (31.000, 121), V2 (31.012, 121). T2-V1-TP teaching
//!   point at V1 (2019); T2-WP walking point (31.006: 667.2 m from both,
//!   opened 2026-04-01); T2-CS community school without coordinates
//!   (opened 2026-07-01).
//!
//! So today T1 has 2 of 4 communities covered (V1, and V3 across the
//! border) and T2 2 of 2: one circle. Before 2026-04-01 T2's V2 was 1334 m
//! from the nearest learning site: no circle.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use kernel::authz::Actor;
use kernel::config::Limits;
use kernel::http::{app, AppState};
use kernel::identity::{self, NewPerson};
use kernel::idnumber::{synthesize, Sex};
use kernel::sites::{self, NewSite};
use lifelong_harness::TestKernel;
use serde_json::{json, Value};
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let k = TestKernel::sqlite().await;
    story(&k).await;
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let k = TestKernel::postgres().await;
    story(&k).await;
    k.cleanup().await;
}

struct Api {
    app: Router,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header("authorization", format!("Bearer {token}"));
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let res = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let problem = res.headers().get("content-type").is_some_and(|c| {
            c.to_str()
                .unwrap_or("")
                .starts_with("application/problem+json")
        });
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            assert!(
                problem,
                "{method} {path}: {status} is not problem+json: {v}"
            );
        }
        (status, v)
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let (s, v) = self.call("GET", path, token, None).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        v
    }

    async fn status(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> StatusCode {
        self.call(method, path, token, body).await.0
    }
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

async fn person(
    k: &TestKernel,
    login: Option<&str>,
    home: &str,
    role: Option<(&str, &str)>,
) -> (i64, Option<String>) {
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let birth =
        chrono::NaiveDate::from_ymd_opt(1960 + n as i32 % 30, 1 + n % 12, 1 + n % 28).unwrap();
    let sys = Actor::System("test");
    let p = identity::create(
        &k.kernel,
        &sys,
        NewPerson {
            name: format!("测试{n}"),
            id_number: synthesize(350602, birth, n * 2, Sex::Female),
            home_site: home.into(),
            login: login.map(Into::into),
            password: login.map(|_| "password-123".to_string()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    if let Some((role, site)) = role {
        identity::grant(&k.kernel, &sys, p.id, role, site)
            .await
            .unwrap();
    }
    let token = match login {
        Some(l) => Some(
            identity::login(&k.kernel, l, "password-123")
                .await
                .unwrap()
                .token,
        ),
        None => None,
    };
    (p.id, token)
}

async fn site(
    k: &TestKernel,
    code: &str,
    kind: &str,
    parent: Option<&str>,
    at: Option<(f64, f64)>,
    opened: &str,
) {
    sites::create(
        &k.kernel.db,
        &Actor::System("test"),
        NewSite {
            code: code.into(),
            name_zh: format!("{code}站"),
            kind: kind.into(),
            parent_code: parent.map(Into::into),
            latitude: at.map(|a| a.0),
            longitude: at.map(|a| a.1),
            opened_on: Some(opened.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

fn ind(report: &Value, id: u64) -> &Value {
    report["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("indicator {id} in {report}"))
}

fn child<'a>(i: &'a Value, code: &str) -> &'a Value {
    i["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["site"] == code)
        .unwrap_or_else(|| panic!("child {code} in {i}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

async fn story(k: &TestKernel) {
    for (code, kind, parent, at, opened) in [
        ("CITY", "city", None, None, "2000-01-01"),
        ("T1", "township", Some("CITY"), None, "2000-01-01"),
        ("T2", "township", Some("CITY"), None, "2000-01-01"),
        (
            "T1-V1",
            "village",
            Some("T1"),
            Some((30.0, 120.0)),
            "2000-01-01",
        ),
        (
            "T1-V2",
            "village",
            Some("T1"),
            Some((30.1, 120.0)),
            "2000-01-01",
        ),
        (
            "T1-V3",
            "village",
            Some("T1"),
            Some((30.2, 120.0)),
            "2000-01-01",
        ),
        ("T1-V4", "village", Some("T1"), None, "2026-05-01"),
        (
            "T1-CS",
            "community_school",
            Some("T1"),
            Some((30.008, 120.0)),
            "2025-06-01",
        ),
        (
            "T1-V2-TP",
            "community_teaching_point",
            Some("T1-V2"),
            Some((30.109, 120.0)),
            "2026-03-01",
        ),
        (
            "T1-V3-WP",
            "walking_point",
            Some("T1-V3"),
            Some((30.2, 120.0)),
            "2026-02-01",
        ),
        (
            "T2-V1",
            "village",
            Some("T2"),
            Some((31.0, 121.0)),
            "2000-01-01",
        ),
        (
            "T2-V2",
            "village",
            Some("T2"),
            Some((31.012, 121.0)),
            "2000-01-01",
        ),
        (
            "T2-MUS",
            "museum",
            Some("T2"),
            Some((30.2085, 120.0)),
            "2020-01-01",
        ),
        (
            "T2-V1-TP",
            "community_teaching_point",
            Some("T2-V1"),
            Some((31.0, 121.0)),
            "2019-01-01",
        ),
        (
            "T2-WP",
            "walking_point",
            Some("T2"),
            Some((31.006, 121.0)),
            "2026-04-01",
        ),
        ("T2-CS", "community_school", Some("T2"), None, "2026-07-01"),
    ] {
        site(k, code, kind, parent, at, opened).await;
    }
    // An elder university run by a social organisation (plan indicator 1,
    // which the elder-education plugin provides).
    sites::create(
        &k.kernel.db,
        &Actor::System("test"),
        NewSite {
            code: "T1-EU-SO".into(),
            name_zh: "乐龄老年大学".into(),
            kind: "elder_university".into(),
            parent_code: Some("T1".into()),
            operator: Some("social_organisation".into()),
            opened_on: Some("2026-03-01".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    sites::close(
        &k.kernel.db,
        &Actor::System("test"),
        "T1-V3-WP",
        Some("2026-06-01".into()),
    )
    .await
    .unwrap();
    let (_, admin) = person(k, Some("admin"), "CITY", Some(("city_admin", "CITY"))).await;
    let (_, t1) = person(k, Some("t1admin"), "T1", Some(("site_admin", "T1"))).await;
    let (_, learner) = person(k, Some("learner"), "T1-V1", Some(("learner", "T1-V1"))).await;
    let (admin, t1, learner) = (admin.unwrap(), t1.unwrap(), learner.unwrap());
    // Accounts: three activated in T1-V1, one in T2-V1, one left open.
    let sys = Actor::System("test");
    for home in ["T1-V1", "T1-V1", "T1-V1", "T2-V1", "T2-V2"] {
        let (id, _) = person(k, None, home, None).await;
        if home != "T2-V2" {
            kernel::accounts::transition(&k.kernel, &sys, id, "activate")
                .await
                .unwrap();
        }
    }
    let state =
        AppState::new(k.kernel.clone(), &Limits::default()).with_registry(k.registry.clone());
    let api = Api {
        app: app(state, &Limits::default()),
    };
    let today = sites::today();
    let yesterday = (chrono::NaiveDate::parse_from_str(&today, "%Y-%m-%d").unwrap()
        - chrono::Duration::days(1))
    .format("%Y-%m-%d")
    .to_string();

    // --- Kernel indicators, today and as of past dates. ---
    let r = api.get("/indicators", &admin).await;
    assert_eq!(r["site"], "CITY");
    assert_eq!(r["as_of"], today.as_str());
    assert_eq!(
        r["period"],
        json!({"start": "2026-01-01", "end": "2030-12-31"})
    );
    let ids: Vec<u64> = r["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=10).collect::<Vec<u64>>());
    // 3: activated accounts (all activated today).
    assert_eq!(ind(&r, 3)["value"], 4);
    assert_eq!(ind(&r, 3)["source"], "kernel");
    assert_eq!(child(ind(&r, 3), "T1")["value"], 3);
    assert_eq!(child(ind(&r, 3), "T2")["value"], 1);
    // 4: walking points: T1-V3-WP closed 2026-06-01, T2-WP open.
    assert_eq!(ind(&r, 4)["value"], 1);
    assert_eq!(child(ind(&r, 4), "T1")["value"], 0);
    // 6: community schools.
    assert_eq!(ind(&r, 6)["value"], 2);
    // 7: teaching points per village: 2 points, 6 villages.
    assert_eq!(f(&ind(&r, 7)["value"]), 0.333);
    assert_eq!(ind(&r, 7)["target_kind"], "level");
    assert_eq!(f(&child(ind(&r, 7), "T1")["value"]), 0.25);
    assert_eq!(f(&child(ind(&r, 7), "T2")["value"]), 0.5);
    // 10: circles: T2 only.
    assert_eq!(ind(&r, 10)["value"], 1);
    assert_eq!(child(ind(&r, 10), "T1")["value"], 0);
    assert_eq!(child(ind(&r, 10), "T2")["value"], 1);
    // Baselines computed as of 2026-01-01 (no snapshot, none set).
    assert_eq!(ind(&r, 4)["baseline"], 0);
    assert_eq!(ind(&r, 4)["baseline_source"], "computed");
    assert_eq!(ind(&r, 6)["baseline"], 1);
    assert_eq!(ind(&r, 6)["increase"], 1);
    assert_eq!(
        f(&ind(&r, 7)["baseline"]),
        0.2,
        "1 point, 5 villages on 2026-01-01"
    );
    assert_eq!(ind(&r, 10)["baseline"], 0);
    assert_eq!(ind(&r, 10)["increase"], 1);
    // Plugin indicators: no plugin installed here, so no value and why.
    for id in [1, 2, 5, 8, 9] {
        let i = ind(&r, id);
        assert!(i["value"].is_null(), "{i}");
        assert!(
            i["error"].as_str().unwrap().contains("no installed plugin"),
            "{i}"
        );
    }
    assert_eq!(r["extra"], json!([]));

    let past = |date: &str| format!("/indicators?site=CITY&as_of={date}");
    let r = api.get(&past("2026-03-01"), &admin).await;
    assert_eq!(ind(&r, 4)["value"], 1, "T1-V3-WP open, T2-WP not yet");
    assert_eq!(ind(&r, 6)["value"], 1);
    assert_eq!(ind(&r, 10)["value"], 0, "T2-V2 uncovered before T2-WP");
    assert_eq!(ind(&r, 3)["value"], 0);
    let r = api.get(&past("2026-05-01"), &admin).await;
    assert_eq!(ind(&r, 4)["value"], 2);
    assert_eq!(
        f(&ind(&r, 7)["value"]),
        0.333,
        "2 points, 6 villages (T1-V4 opened that day)"
    );
    assert_eq!(ind(&r, 10)["value"], 1);
    let r = api.get(&past(&yesterday), &admin).await;
    assert_eq!(ind(&r, 3)["value"], 0, "activations are today's");

    // --- Circles on the hand-made map. ---
    let c = api.get("/circles", &admin).await;
    assert_eq!(c["site"], "CITY");
    assert_eq!(c["distance_m"], 1000);
    assert_eq!(f(&c["share"]), 0.9);
    assert_eq!(c["circles"], 1);
    let t = |c: &Value, code: &str| {
        c["townships"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["site"] == code)
            .cloned()
            .unwrap()
    };
    assert_eq!(t(&c, "T1")["communities"], 4);
    assert_eq!(t(&c, "T1")["covered"], 2);
    assert_eq!(f(&t(&c, "T1")["coverage"]), 0.5);
    assert_eq!(t(&c, "T1")["circle"], false);
    assert_eq!(t(&c, "T2")["covered"], 2);
    assert_eq!(t(&c, "T2")["circle"], true);
    let unc: Vec<&str> = c["uncovered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["site"].as_str().unwrap())
        .collect();
    assert_eq!(unc, vec!["T1-V2", "T1-V4"]);
    let v2 = &c["uncovered"][0];
    assert_eq!(v2["township"], "T1");
    assert_eq!(v2["nearest"]["site"], "T1-V2-TP");
    assert_eq!(v2["nearest"]["kind"], "community_teaching_point");
    assert_eq!(v2["nearest"]["distance_m"], 1001, "0.009° of latitude");
    assert!(
        c["uncovered"][1]["nearest"].is_null(),
        "no coordinates, no nearest"
    );
    // Just past 1000.76 m, T1-V2 is covered; at share 0.75, T1 is a circle.
    let c = api.get("/circles?distance_m=1001&share=0.75", &admin).await;
    assert_eq!(t(&c, "T1")["covered"], 3);
    assert_eq!(t(&c, "T1")["circle"], true);
    assert_eq!(c["circles"], 2);
    // At 940 m T2-MUS (945.2 m) no longer covers T1-V3 across the border.
    let c = api.get("/circles?site=T1&distance_m=940", &admin).await;
    assert_eq!(t(&c, "T1")["covered"], 1);
    let v3 = c["uncovered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["site"] == "T1-V3")
        .unwrap()
        .clone();
    assert_eq!(v3["nearest"]["site"], "T2-MUS");
    assert_eq!(v3["nearest"]["distance_m"], 945);
    // Before T1-V2-TP opened, T1-V2's nearest was the school 0.092° away.
    let c = api.get("/circles?as_of=2026-02-15", &admin).await;
    assert_eq!(c["circles"], 0);
    let v2 = c["uncovered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["site"] == "T1-V2")
        .unwrap()
        .clone();
    assert_eq!(v2["nearest"]["site"], "T1-CS");
    assert_eq!(v2["nearest"]["distance_m"], 10230);
    assert!(t(&c, "T1")["communities"] == 3, "T1-V4 not yet open: {c}");

    // --- Subtree scoping. ---
    let r = api.get("/indicators", &t1).await;
    assert_eq!(
        r["site"], "T1",
        "a township admin's default is their township"
    );
    assert_eq!(ind(&r, 3)["value"], 3);
    let kids: Vec<&str> = ind(&r, 4)["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["site"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec!["T1-V1", "T1-V2", "T1-V3", "T1-V4"]);
    assert_eq!(
        api.status("GET", "/indicators?site=T2", &t1, None).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.status("GET", "/indicators?site=CITY", &t1, None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.status("GET", "/indicators", &learner, None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.status("GET", "/circles?site=T2", &t1, None).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.status("GET", "/indicators/4/series?site=T2", &t1, None)
            .await,
        StatusCode::NOT_FOUND
    );
    let c = api.get("/circles", &t1).await;
    let towns: Vec<&str> = c["townships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["site"].as_str().unwrap())
        .collect();
    assert_eq!(towns, vec!["T1"]);
    let c = api.get("/circles?distance_m=940", &t1).await;
    let v3 = c["uncovered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["site"] == "T1-V3")
        .unwrap()
        .clone();
    assert!(
        v3["nearest"]["site"].is_null(),
        "T2's museum is outside T1's view: {v3}"
    );
    assert_eq!(v3["nearest"]["visible"], false);
    assert_eq!(v3["nearest"]["distance_m"], 945);

    // --- Targets: city admins only, audited; progress. ---
    let body = json!({"site": "CITY", "baseline": 0, "targets": {"2026": 4, "2027": 8, "2028": 12, "2029": 14, "2030": 16}});
    assert_eq!(
        api.status("PUT", "/indicators/4/targets", &t1, Some(body.clone()))
            .await,
        StatusCode::FORBIDDEN
    );
    let (s, v) = api
        .call("PUT", "/indicators/4/targets", &admin, Some(body))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = api.get("/indicators", &admin).await;
    let i4 = ind(&r, 4);
    assert_eq!(i4["baseline_source"], "set");
    assert_eq!(i4["target_2030"], 16);
    assert_eq!(i4["targets"]["2026"], 4);
    assert_eq!(f(&i4["progress"]), 0.0625, "increase 1 of 16");
    let year = &today[..4];
    assert_eq!(i4["target_this_year"], i4["targets"][year]);
    let (s, _) = api
        .call(
            "PUT",
            "/indicators/7/targets",
            &admin,
            Some(json!({"site": "T1", "targets": {"2030": 1}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = api.get("/indicators?site=T1", &admin).await;
    assert_eq!(
        f(&ind(&r, 7)["progress"]),
        0.25,
        "a level target: value / target"
    );
    let audit = api.get("/audit?site=CITY&limit=500", &admin).await;
    let entries: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "indicator.targets")
        .collect();
    assert_eq!(entries.len(), 2, "{audit}");
    for (status, path, body) in [
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/indicators/4/targets",
            json!({"site": "CITY", "targets": {"2031": 1}}),
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/indicators/4/targets",
            json!({"site": "NOPE", "targets": {}}),
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/indicators/4/targets",
            json!({"site": "CITY", "targets": {"2030": "x"}}),
        ),
        (
            StatusCode::NOT_FOUND,
            "/indicators/11/targets",
            json!({"site": "CITY", "targets": {}}),
        ),
    ] {
        assert_eq!(
            api.status("PUT", path, &admin, Some(body.clone())).await,
            status,
            "{body}"
        );
    }
    assert_eq!(
        api.get("/audit?site=CITY&limit=500", &admin).await["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "indicator.targets")
            .count(),
        2,
        "refused targets write nothing"
    );

    // --- Bad input on reads. ---
    for (status, path) in [
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/indicators?as_of=2026-13-01".to_string(),
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/indicators?as_of=2999-01-01".to_string(),
        ),
        (StatusCode::NOT_FOUND, "/indicators?site=NOPE".to_string()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/indicators?sight=CITY".to_string(),
        ),
        (StatusCode::NOT_FOUND, "/indicators/0/series".to_string()),
        (
            StatusCode::NOT_FOUND,
            "/indicators/nope.key/series".to_string(),
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/indicators/4/series?interval=week".to_string(),
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/circles?distance_m=0".to_string(),
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/circles?share=1.5".to_string(),
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/circles?share=most".to_string(),
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/indicators/snapshots?from=yesterday".to_string(),
        ),
        (
            StatusCode::NOT_FOUND,
            "/indicators/snapshots/999999/recompute".to_string(),
        ),
        (
            StatusCode::NOT_FOUND,
            "/indicators/snapshots/abc/recompute".to_string(),
        ),
    ] {
        assert_eq!(
            api.status("GET", &path, &admin, None).await,
            status,
            "{path}"
        );
    }

    // --- Snapshots: on demand, idempotent, recomputed as of their date. ---
    let (s, snaps) = api
        .call(
            "POST",
            "/indicators/snapshots",
            &admin,
            Some(json!({"site": "CITY", "as_of": "2026-05-01"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{snaps}");
    let snaps = snaps.as_array().unwrap().clone();
    assert_eq!(snaps.len(), 30, "ten indicators for CITY, T1 and T2");
    assert!(snaps.iter().all(|s| s["created"] == true));
    let snap = |site: &str, id: u64| {
        snaps
            .iter()
            .find(|s| s["site"] == site && s["indicator"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(snap("CITY", 4)["value"], 2);
    assert_eq!(snap("CITY", 10)["value"], 1);
    assert_eq!(
        snap("CITY", 10)["params"],
        json!({"distance_m": 1000.0, "share": 0.9})
    );
    assert_eq!(snap("T2", 4)["value"], 1);
    assert_eq!(snap("CITY", 4)["formula_version"], 1);
    assert!(snap("CITY", 1)["value"].is_null());
    assert!(snap("CITY", 1)["error"].is_string());
    let (_, again) = api
        .call(
            "POST",
            "/indicators/snapshots",
            &admin,
            Some(json!({"site": "CITY", "as_of": "2026-05-01"})),
        )
        .await;
    let again = again.as_array().unwrap();
    assert!(
        again.iter().all(|s| s["created"] == false),
        "the day's snapshots are kept"
    );
    assert_eq!(again[0]["id"], snaps[0]["id"]);
    assert_eq!(
        api.status(
            "POST",
            "/indicators/snapshots",
            &t1,
            Some(json!({"site": "T2"}))
        )
        .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.status(
            "POST",
            "/indicators/snapshots",
            &admin,
            Some(json!({"site": "CITY", "as_of": "01/05/2026"}))
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // A snapshot is of a day that has ended: never of today (it would miss
    // the rest of the day's data and stay unequal to a later recompute, and
    // whoever took it first would decide the day's record) or later, for
    // a township admin as for the city's.
    for day in [today.as_str(), "2099-01-01"] {
        for who in [admin.as_str(), t1.as_str()] {
            let (s, p) = api
                .call(
                    "POST",
                    "/indicators/snapshots",
                    who,
                    Some(json!({ "as_of": day })),
                )
                .await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
            assert!(p["detail"].as_str().unwrap().starts_with("as_of: "), "{p}");
        }
    }
    assert_eq!(
        api.get(
            &format!("/indicators/snapshots?site=CITY&from={today}"),
            &admin
        )
        .await,
        json!([]),
        "nothing stored"
    );

    // Later data: a new walking point today, another activation, a teaching
    // point and a village opened today. As of 2026-05-01 nothing changed.
    site(
        k,
        "T1-V1-WP",
        "walking_point",
        Some("T1-V1"),
        Some((30.0, 120.0)),
        &today,
    )
    .await;
    site(
        k,
        "T1-V4-TP",
        "community_teaching_point",
        Some("T1-V4"),
        None,
        &today,
    )
    .await;
    site(
        k,
        "T1-V5",
        "village",
        Some("T1"),
        Some((30.3, 120.0)),
        &today,
    )
    .await;
    let (id, _) = person(k, None, "T1-V2", None).await;
    kernel::accounts::transition(&k.kernel, &sys, id, "activate")
        .await
        .unwrap();
    let r = api.get("/indicators", &admin).await;
    assert_eq!(ind(&r, 4)["value"], 2, "the new point counts today");
    assert_eq!(ind(&r, 3)["value"], 5);
    for s in &snaps {
        let (st, rc) = api
            .call(
                "GET",
                &format!("/indicators/snapshots/{}/recompute", s["id"]),
                &admin,
                None,
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(rc["equal"], true, "{s} → {rc}");
        assert_eq!(rc["stored"], rc["recomputed"]);
        assert_eq!(rc["formula_version"], s["formula_version"]);
    }
    // A site opened with a back-dated opening day does change the past:
    // recompute says so (the stored value stays as it was).
    site(k, "T2-WP2", "walking_point", Some("T2"), None, "2026-04-15").await;
    let city4 = snap("CITY", 4);
    let rc = api
        .get(
            &format!("/indicators/snapshots/{}/recompute", city4["id"]),
            &admin,
        )
        .await;
    assert_eq!(
        (
            rc["stored"].clone(),
            rc["recomputed"].clone(),
            rc["equal"].clone()
        ),
        (json!(2), json!(3), json!(false))
    );
    // A township admin may recompute their township's, not the city's or T2's.
    let t1_4 = snap("T1", 4);
    assert_eq!(
        api.status(
            "GET",
            &format!("/indicators/snapshots/{}/recompute", t1_4["id"]),
            &t1,
            None
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        api.status(
            "GET",
            &format!("/indicators/snapshots/{}/recompute", city4["id"]),
            &t1,
            None
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.status(
            "GET",
            &format!("/indicators/snapshots/{}/recompute", snap("T2", 4)["id"]),
            &t1,
            None
        )
        .await,
        StatusCode::NOT_FOUND
    );

    // --- Adjustment: a note is required; city admins; audited; original kept. ---
    let adjust = format!("/indicators/snapshots/{}/adjust", city4["id"]);
    assert_eq!(
        api.status("POST", &adjust, &admin, Some(json!({"value": 3})))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.status(
            "POST",
            &adjust,
            &admin,
            Some(json!({"value": 3, "note": "  "}))
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.status("POST", &adjust, &t1, Some(json!({"value": 3, "note": "x"})))
            .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.status(
            "POST",
            "/indicators/snapshots/999999/adjust",
            &admin,
            Some(json!({"value": 3, "note": "x"}))
        )
        .await,
        StatusCode::NOT_FOUND
    );
    let (s, adj) = api
        .call(
            "POST",
            &adjust,
            &admin,
            Some(
                json!({"value": 3, "note": "T2-WP2 was registered late; it opened on 2026-04-15"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{adj}");
    assert_eq!(adj["value"], 2, "the original is kept");
    assert_eq!(adj["adjusted_value"], 3);
    assert_eq!(adj["effective_value"], 3);
    assert!(adj["adjusted_by"].as_str().unwrap().starts_with("person:"));
    let audit = api.get("/audit?site=CITY&limit=500", &admin).await;
    assert_eq!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "indicator.adjust")
            .count(),
        1
    );
    assert_eq!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "indicator.snapshot")
            .count(),
        2,
        "each take is audited, a refused one is not"
    );
    let listed = api
        .get("/indicators/snapshots?site=CITY&id=4", &admin)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        listed[0]["adjusted_note"],
        "T2-WP2 was registered late; it opened on 2026-04-15"
    );
    assert_eq!(
        api.get("/indicators/snapshots?site=CITY&from=2026-06-01", &admin)
            .await,
        json!([])
    );

    // --- Series: year ends (today for this year), monthly on request. ---
    let s = api.get("/indicators/4/series?site=CITY", &admin).await;
    let points = s["points"].as_array().unwrap();
    assert_eq!(points.last().unwrap()["date"], today.as_str());
    assert_eq!(points[0]["year"], 2026);
    assert_eq!(points[0]["target"], 4);
    let m = api
        .get("/indicators/4/series?site=CITY&interval=month", &admin)
        .await;
    let mp = m["points"].as_array().unwrap();
    assert_eq!(mp[0]["date"], "2026-01-31");
    assert_eq!(mp[0]["value"], 0);
    let april = mp.iter().find(|p| p["date"] == "2026-04-30").unwrap();
    assert_eq!(
        april["value"], 3,
        "T1-V3-WP, T2-WP and the back-dated T2-WP2"
    );
    assert_eq!(april["source"], "computed");

    // --- Baseline from a snapshot on the period's first day. ---
    let (s, _) = api
        .call(
            "POST",
            "/indicators/snapshots",
            &admin,
            Some(json!({"site": "CITY", "as_of": "2026-01-01"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let r = api.get("/indicators", &admin).await;
    assert_eq!(ind(&r, 6)["baseline_source"], "snapshot");
    assert_eq!(ind(&r, 6)["baseline"], 1);
    assert_eq!(ind(&r, 4)["baseline_source"], "set", "a set baseline wins");

    // --- The daily schedule: two nodes, one run, one set of rows. ---
    let ctx = kernel::indicators::Ctx::new(
        k.kernel.clone(),
        Some(k.registry.clone()),
        Default::default(),
    );
    // It snapshots yesterday, the latest day that has ended; never today.
    let err = kernel::indicators::snapshots::run_daily(&ctx, "node-a", &today)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has not ended"), "{err}");
    let first = kernel::indicators::snapshots::run_daily(&ctx, "node-a", &yesterday)
        .await
        .unwrap();
    let second = kernel::indicators::snapshots::run_daily(&ctx, "node-b", &yesterday)
        .await
        .unwrap();
    assert_eq!(first, Some(30));
    assert_eq!(second, None, "the day is claimed and done");
    let listed = api
        .get(
            &format!("/indicators/snapshots?site=CITY&from={yesterday}&to={yesterday}"),
            &admin,
        )
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 10);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["taken_by"] == "system:schedule"));
    // Taken on demand afterwards without a date (yesterday by default):
    // the same rows.
    let (_, again) = api
        .call("POST", "/indicators/snapshots", &admin, None)
        .await;
    let again = again.as_array().unwrap();
    assert_eq!(again.len(), 30);
    assert!(again
        .iter()
        .all(|s| s["created"] == false && s["as_of"] == yesterday.as_str()));
    // Today is never snapshotted: the series' point of today is computed.
    let s = api.get("/indicators/4/series?site=CITY", &admin).await;
    assert_eq!(
        s["points"].as_array().unwrap().last().unwrap()["source"],
        "computed"
    );
    // Two nodes at the same moment: one claims the day, the other finds it
    // claimed; one set of rows.
    let before_yesterday = (chrono::NaiveDate::parse_from_str(&yesterday, "%Y-%m-%d").unwrap()
        - chrono::Duration::days(1))
    .format("%Y-%m-%d")
    .to_string();
    let (a, b) = tokio::join!(
        kernel::indicators::snapshots::run_daily(&ctx, "node-a", &before_yesterday),
        kernel::indicators::snapshots::run_daily(&ctx, "node-b", &before_yesterday),
    );
    let mut runs = [a.unwrap(), b.unwrap()];
    runs.sort();
    assert_eq!(runs, [None, Some(30)]);
    // A node that died holding a claim: after the lease, another takes over.
    let stale = kernel::storage::now_micros() - 16 * 60 * 1_000_000;
    sqlx::query("INSERT INTO indicator_schedule (day, claimed_by, claimed_at) VALUES ($1, $2, $3)")
        .bind("2026-06-30")
        .bind("node-dead")
        .bind(stale)
        .execute(k.kernel.db.reader())
        .await
        .unwrap();
    sqlx::query("INSERT INTO indicator_schedule (day, claimed_by, claimed_at) VALUES ($1, $2, $3)")
        .bind("2026-06-29")
        .bind("node-busy")
        .bind(kernel::storage::now_micros())
        .execute(k.kernel.db.reader())
        .await
        .unwrap();
    assert_eq!(
        kernel::indicators::snapshots::run_daily(&ctx, "node-a", "2026-06-30")
            .await
            .unwrap(),
        Some(30),
        "a claim past its lease is taken over"
    );
    assert_eq!(
        kernel::indicators::snapshots::run_daily(&ctx, "node-a", "2026-06-29")
            .await
            .unwrap(),
        None,
        "a live claim is left to its node"
    );

    // --- Plugin-provided indicators, through the declared contract. ---
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("plugins")
        .join("elder-education");
    let pkg = k.package(&dir).await;
    k.install(&pkg).await;
    k.enable("elder-education", "T1").await;
    let r = api.get("/indicators", &admin).await;
    let i1 = ind(&r, 1);
    assert_eq!(i1["source"], "plugin:elder-education");
    assert_eq!(i1["formula_version"], 1);
    assert!(i1["value"].is_null(), "not enabled at the city: {i1}");
    assert!(
        i1["error"].as_str().unwrap().contains("elder-education"),
        "{i1}"
    );
    assert_eq!(child(i1, "T1")["value"], 1, "{i1}");
    assert!(child(i1, "T2")["value"].is_null());
    for id in [5, 8, 9] {
        assert_eq!(ind(&r, id)["source"], "plugin:elder-education");
        assert_eq!(child(ind(&r, id), "T1")["value"], 0, "nothing recorded yet");
    }
    assert!(ind(&r, 2)["value"].is_null(), "no dual-track here");
    let r = api
        .get("/indicators?site=T1&as_of=2026-02-01", &admin)
        .await;
    assert_eq!(ind(&r, 1)["value"], 0, "it opened on 2026-03-01");
    assert_eq!(ind(&r, 1)["baseline"], 0);
    assert_eq!(ind(&r, 1)["baseline_source"], "computed");
    let r = api.get("/indicators?site=T1", &t1).await;
    assert_eq!(ind(&r, 1)["value"], 1);
    assert_eq!(ind(&r, 1)["increase"], 1);
    let (s, snaps) = api
        .call(
            "POST",
            "/indicators/snapshots",
            &t1,
            Some(json!({"as_of": "2026-04-01"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{snaps}");
    let s1 = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "T1" && s["indicator"] == 1)
        .unwrap()
        .clone();
    assert_eq!(s1["value"], 1);
    assert_eq!(s1["source"], "plugin:elder-education");
    let rc = api
        .get(
            &format!("/indicators/snapshots/{}/recompute", s1["id"]),
            &t1,
        )
        .await;
    assert_eq!(rc["equal"], true, "{rc}");
}
