//! What the web console stands on, through the real router on both
//! backends: the console page and its embedded assets (with their security
//! headers), the public routes added for it — `GET /api/v1/sites/{site}/
//! plugins` (enabled here, inherited or off; each capability granted where),
//! `GET /api/v1/plugin-registry/{id}/metrics`, `GET /api/v1/audit?order=
//! newest` — and their refusals. The browser itself is driven in
//! `browser.rs`.

use axum::body::Body;
use http_body_util::BodyExt;
use kernel::authz::Actor;
use lifelong_harness::TestKernel;
use serde_json::{json, Value};
use std::path::PathBuf;
use tower::ServiceExt;

const CAPS: &[&str] = &[
    "sites.read",
    "identity.read",
    "accounts.record",
    "accounts.read",
];

struct App {
    app: axum::Router,
}

impl App {
    async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Body,
        ct: &str,
    ) -> (u16, axum::http::HeaderMap, Value) {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", ct);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let res = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> (u16, Value) {
        let (s, _, v) = self
            .send("GET", uri, token, Body::empty(), "application/json")
            .await;
        (s, v)
    }

    async fn json(&self, method: &str, uri: &str, token: &str, body: Value) -> (u16, Value) {
        let (s, _, v) = self
            .send(
                method,
                uri,
                Some(token),
                Body::from(body.to_string()),
                "application/json",
            )
            .await;
        (s, v)
    }

    async fn login(&self, login: &str, password: &str) -> String {
        let (s, v) = self
            .json(
                "POST",
                "/api/v1/auth/login",
                "",
                json!({"login": login, "password": password}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["token"].as_str().unwrap().to_string()
    }
}

fn plugin(items: &Value, id: &str) -> Value {
    items["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == json!(id))
        .cloned()
        .unwrap_or_else(|| panic!("no {id} in {items}"))
}

fn capability(p: &Value, name: &str) -> Value {
    p["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == json!(name))
        .cloned()
        .unwrap()
}

async fn story(k: TestKernel) {
    let id_number = |n| {
        kernel::idnumber::synthesize(
            350602,
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap(),
            n,
            kernel::idnumber::Sex::Female,
        )
    };
    kernel::demo::bootstrap(
        &k.kernel,
        "root",
        "管理员",
        &id_number(11),
        "pw-12345678",
        "CITY",
        "市",
    )
    .await
    .unwrap();
    let system = Actor::System("test");
    for (code, kind, parent) in [
        ("T1", "township", "CITY"),
        ("T2", "township", "CITY"),
        ("T1-V1", "village", "T1"),
    ] {
        kernel::sites::create(
            &k.kernel.db,
            &system,
            kernel::sites::NewSite {
                code: code.into(),
                name_zh: code.into(),
                kind: kind.into(),
                parent_code: Some(parent.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let t1_admin = kernel::identity::create(
        &k.kernel,
        &system,
        kernel::identity::NewPerson {
            name: "乡镇管理员".into(),
            id_number: id_number(23),
            home_site: "T1".into(),
            login: Some("t1-admin".into()),
            password: Some("pw-87654321".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    kernel::identity::grant(&k.kernel, &system, t1_admin.id, "site_admin", "T1")
        .await
        .unwrap();
    let limits = kernel::config::Limits::default();
    let state =
        kernel::http::AppState::new(k.kernel.clone(), &limits).with_registry(k.registry.clone());
    let app = App {
        app: kernel::http::app(state, &limits),
    };

    // The console: a page at / and its assets, embedded, with a strict CSP.
    let (s, h, v) = app.send("GET", "/", None, Body::empty(), "text/html").await;
    assert_eq!(s, 200);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let page = v.as_str().unwrap();
    assert!(page.contains("<html lang=\"zh-CN\">"));
    let mut assets = 0;
    for part in page.split("\"/console/").skip(1) {
        let file = part.split('"').next().unwrap();
        let (s, h, _) = app
            .send("GET", &format!("/console/{file}"), None, Body::empty(), "")
            .await;
        assert_eq!(s, 200, "/console/{file}");
        let ty = h["content-type"].to_str().unwrap();
        let want = match file.rsplit('.').next().unwrap() {
            "js" => "text/javascript",
            "css" => "text/css",
            "svg" => "image/svg+xml",
            other => panic!("unexpected asset {other}"),
        };
        assert!(ty.starts_with(want), "{file}: {ty}");
        assets += 1;
    }
    assert!(assets >= 10, "the page loads its scripts and styles");
    let (s, h, v) = app
        .send("GET", "/console/nope.js", None, Body::empty(), "")
        .await;
    assert_eq!(s, 404);
    assert_eq!(h["content-type"], "application/problem+json");
    assert_eq!(v["status"], json!(404));
    let (s, h, _) = app
        .send("GET", "/api/v1/no-such-route", None, Body::empty(), "")
        .await;
    assert_eq!(s, 404, "unknown API routes stay problem+json");
    assert_eq!(h["content-type"], "application/problem+json");

    let root = app.login("root", "pw-12345678").await;
    let township = app.login("t1-admin", "pw-87654321").await;
    let pkg = k
        .package(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins/probe"))
        .await
        .encode();
    let (s, _, v) = app
        .send(
            "POST",
            "/api/v1/plugin-registry",
            Some(&root),
            Body::from(pkg),
            "application/octet-stream",
        )
        .await;
    assert_eq!(s, 201, "{v}");

    // Nothing set anywhere: off, nothing granted, everything missing.
    let (s, v) = app.get("/api/v1/sites/T1/plugins", Some(&root)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["site"], json!("T1"));
    let p = plugin(&v, "probe");
    assert_eq!(p["version"], json!("1.0.0"));
    assert_eq!(p["enabled"], json!(false));
    assert_eq!(p["enabled_set_at"], Value::Null);
    assert_eq!(p["inherited"], json!(false));
    assert_eq!(p["missing"].as_array().unwrap().len(), CAPS.len());
    assert_eq!(
        capability(&p, "sites.read"),
        json!({"name": "sites.read", "granted": false, "set_at": null, "inherited": false})
    );
    // Enabling before granting is refused, and the route still says why.
    let (s, v) = app
        .json(
            "PUT",
            "/api/v1/plugin-registry/probe/sites/T1/enabled",
            &root,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(s, 409, "{v}");

    // Granted at the city, enabled at T1: inherited below, set here at T1.
    let (s, v) = app
        .json(
            "PUT",
            "/api/v1/plugin-registry/probe/sites/CITY/grants",
            &root,
            json!({"capabilities": CAPS}),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = app
        .json(
            "PUT",
            "/api/v1/plugin-registry/probe/sites/T1/enabled",
            &township,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(s, 204, "a township admin enables at the township: {v}");
    let (_, v) = app.get("/api/v1/sites/T1/plugins", Some(&township)).await;
    let p = plugin(&v, "probe");
    assert_eq!(
        (
            &p["enabled"],
            &p["enabled_set_at"],
            &p["inherited"],
            &p["missing"]
        ),
        (&json!(true), &json!("T1"), &json!(false), &json!([]))
    );
    assert_eq!(
        capability(&p, "accounts.record"),
        json!({"name": "accounts.record", "granted": true, "set_at": "CITY", "inherited": true})
    );
    let (_, v) = app.get("/api/v1/sites/T1-V1/plugins", Some(&root)).await;
    let p = plugin(&v, "probe");
    assert_eq!(
        (&p["enabled"], &p["enabled_set_at"], &p["inherited"]),
        (&json!(true), &json!("T1"), &json!(true))
    );
    let (_, v) = app.get("/api/v1/sites/T2/plugins", Some(&root)).await;
    let p = plugin(&v, "probe");
    assert_eq!(
        (&p["enabled"], &p["enabled_set_at"], &p["missing"]),
        (&json!(false), &Value::Null, &json!([]))
    );
    // The route agrees with what is served.
    let (s, v) = app
        .get("/api/v1/plugins/probe/ok?site=T1-V1", Some(&root))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = app
        .get("/api/v1/plugins/probe/ok?site=T2", Some(&root))
        .await;
    assert_ne!(s, 200);
    // A refusal below an enabled site: set at the village itself.
    let (s, _) = app
        .json(
            "PUT",
            "/api/v1/plugin-registry/probe/sites/T1-V1/enabled",
            &root,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = app.get("/api/v1/sites/T1-V1/plugins", Some(&root)).await;
    let p = plugin(&v, "probe");
    assert_eq!(
        (&p["enabled"], &p["enabled_set_at"], &p["inherited"]),
        (&json!(false), &json!("T1-V1"), &json!(false))
    );
    // Scoping: a township admin cannot read another township's; nobody anonymous.
    let (s, v) = app.get("/api/v1/sites/T2/plugins", Some(&township)).await;
    assert!(s == 403 || s == 404, "{s} {v}");
    assert!(v["title"].is_string());
    let (s, _) = app.get("/api/v1/sites/T1/plugins", None).await;
    assert_eq!(s, 401);
    let (s, _) = app.get("/api/v1/sites/NOPE/plugins", Some(&root)).await;
    assert_eq!(s, 404);

    // Metrics as JSON: the call above counted, by version; city admins only.
    let (s, v) = app
        .get("/api/v1/plugin-registry/probe/metrics", Some(&root))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["plugin"], json!("probe"));
    let m = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["version"] == json!("1.0.0"))
        .cloned()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(m["calls"].as_u64().unwrap() >= 1, "{m}");
    assert_eq!(m["latency"]["count"], m["calls"]);
    assert_eq!(m["errors"]["deadline"], json!(0));
    assert_eq!(m["latency"]["buckets"].as_array().unwrap().len(), 15);
    let (s, v) = app
        .get("/api/v1/plugin-registry/probe/metrics", Some(&township))
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, _) = app
        .get("/api/v1/plugin-registry/nope/metrics", Some(&root))
        .await;
    assert_eq!(s, 404);
    let (s, _) = app.get("/api/v1/plugin-registry/probe/metrics", None).await;
    assert_eq!(s, 401);

    // The audit log newest first, with a cursor going further back.
    let (s, v) = app
        .get("/api/v1/audit?order=newest&limit=2", Some(&root))
        .await;
    assert_eq!(s, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[0]["action"], json!("plugin.disable"), "{v}");
    let (a, b) = (
        items[0]["id"].as_i64().unwrap(),
        items[1]["id"].as_i64().unwrap(),
    );
    assert!(a > b);
    let cursor = v["next_cursor"].as_str().unwrap();
    let (_, next) = app
        .get(
            &format!("/api/v1/audit?order=newest&limit=2&cursor={cursor}"),
            Some(&root),
        )
        .await;
    assert!(next["items"][0]["id"].as_i64().unwrap() < b, "{next}");
    let (_, oldest) = app.get("/api/v1/audit?limit=2", Some(&root)).await;
    assert!(
        oldest["items"][0]["id"].as_i64().unwrap() < oldest["items"][1]["id"].as_i64().unwrap()
    );
    let (s, v) = app.get("/api/v1/audit?order=sideways", Some(&root)).await;
    assert_eq!(s, 422, "{v}");
    // A township admin's newest-first log holds only T1's subtree.
    let (s, v) = app
        .get("/api/v1/audit?order=newest&limit=100", Some(&township))
        .await;
    assert_eq!(s, 200, "{v}");
    for e in v["items"].as_array().unwrap() {
        assert_ne!(
            e["action"],
            json!("plugin.grant"),
            "the grant was at CITY: {e}"
        );
    }
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_routes_sqlite() {
    story(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_routes_postgres() {
    story(TestKernel::postgres().await).await;
}
