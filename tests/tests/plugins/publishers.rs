//! Institution plugins as a deployment serves them: a publisher the city
//! binds to an institution with a capability ceiling, whose packages the
//! institution installs itself; confinement to the institution's subtree,
//! the ceiling, plugin-id ownership, revocation, and the approval queue.
//! Everything through the HTTP API on the real router, over a registry that
//! checks signatures (not development mode), one city per backend.

use crate::{plugin_dir, site_tree, variant};
use axum::body::Body;
use http_body_util::BodyExt;
use kernel::plugins::package::{Package, PublisherKey};
use kernel::plugins::registry::{Refusal, Registry};
use lifelong_harness::TestKernel;
use serde_json::{json, Value};
use tower::ServiceExt;

struct City {
    k: TestKernel,
    app: axum::Router,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: Value,
}

impl City {
    async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Body,
        ct: &str,
    ) -> Answer {
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
        let location = res
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        Answer {
            status,
            location,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    async fn json(&self, method: &str, uri: &str, token: &str, body: Value) -> Answer {
        self.send(
            method,
            uri,
            Some(token),
            Body::from(body.to_string()),
            "application/json",
        )
        .await
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> Answer {
        self.send("GET", uri, token, Body::empty(), "application/json")
            .await
    }

    async fn upload(&self, uri: &str, token: &str, pkg: &Package) -> Answer {
        self.send(
            "POST",
            uri,
            Some(token),
            Body::from(pkg.encode()),
            "application/octet-stream",
        )
        .await
    }

    /// A person with a login and `roles` (role, site code); their token.
    async fn login(&self, n: u32, home: &str, roles: &[(&str, &str)]) -> String {
        let sys = kernel::authz::Actor::System("test");
        let login = format!("user{n}");
        let p = kernel::identity::create(
            &self.k.kernel,
            &sys,
            kernel::identity::NewPerson {
                name: format!("管理员{n}"),
                id_number: kernel::idnumber::synthesize(
                    350602,
                    chrono::NaiveDate::from_ymd_opt(1975, 3, 4).unwrap(),
                    n * 10,
                    kernel::idnumber::Sex::Female,
                ),
                home_site: home.into(),
                login: Some(login.clone()),
                password: Some("pw-12345678".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        for (role, site) in roles {
            kernel::identity::grant(&self.k.kernel, &sys, p.id, role, site)
                .await
                .unwrap();
        }
        kernel::identity::login(&self.k.kernel, &login, "pw-12345678")
            .await
            .unwrap()
            .token
    }

    /// A plugin call at `site`: the status.
    async fn call(&self, plugin: &str, site: &str) -> u16 {
        self.get(
            &format!("/api/v1/plugins/{plugin}/receipts?site={site}"),
            None,
        )
        .await
        .status
    }

    async fn audited(&self, action: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(self.k.kernel.db.reader())
            .await
            .unwrap();
        n
    }
}

/// The `other` test plugin as `id` from `publisher`, at `version`, asking
/// for `capabilities`, signed with `key`.
fn package(
    base: &Package,
    id: &str,
    version: &str,
    capabilities: &[&str],
    key: &PublisherKey,
) -> Package {
    let caps = capabilities
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut p = variant(base, |t| {
        format!("{t}\n[[settings]]\nname = \"greeting\"\ntype = \"text\"\ndefault = \"hi\"\n")
            .replacen("id = \"other\"", &format!("id = \"{id}\""), 1)
            .replacen(
                "version = \"1.0.0\"",
                &format!("version = \"{version}\""),
                1,
            )
            .replacen(
                "publisher = \"lifelong\"",
                &format!("publisher = \"{}\"\ncapabilities = [{caps}]", key.publisher),
                1,
            )
    });
    p.sign(key).unwrap();
    p
}

async fn institution_plugins(k: TestKernel) {
    site_tree(
        &k,
        &[
            ("CITY", "city", None),
            ("T1", "township", Some("CITY")),
            ("T2", "township", Some("CITY")),
            ("UNI", "elder_university", Some("T1")),
        ],
    )
    .await;
    // A node that checks signatures, as production runs.
    let registry = Registry::new(k.kernel.clone(), k.runtime.clone(), None, false);
    registry.refresh().await.unwrap();
    let limits = kernel::config::Limits::default();
    let state =
        kernel::http::AppState::new(k.kernel.clone(), &limits).with_registry(registry.clone());
    let app = kernel::http::app(state, &limits);
    let base = k.package(plugin_dir("other")).await;
    let c = City { k, app };
    let root = c.login(1, "CITY", &[("city_admin", "CITY")]).await;
    let uni_admin = c.login(2, "UNI", &[("site_admin", "UNI")]).await;
    let uni_dev = c.login(3, "UNI", &[("plugin_publisher", "UNI")]).await;
    let t2_admin = c.login(4, "T2", &[("site_admin", "T2")]).await;
    let elder = PublisherKey::generate("elder-uni").unwrap();
    let rogue = PublisherKey::generate("rogue").unwrap();
    let lifelong = PublisherKey::generate("lifelong").unwrap();

    // Only a city admin trusts and binds a publisher.
    let bind = json!({"public_key": elder.public_hex(), "site": "UNI", "capabilities": ["sites.read", "identity.read"]});
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-publishers/elder-uni",
            &uni_admin,
            bind.clone(),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-publishers/elder-uni",
            &root,
            json!({"public_key": elder.public_hex(), "site": "UNI", "capabilities": ["sites.fly"]}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-publishers/elder-uni",
            &root,
            bind.clone(),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (
            &a.body["site"],
            &a.body["capabilities"],
            &a.body["approval"],
            &a.body["status"]
        ),
        (
            &json!("UNI"),
            &json!(["identity.read", "sites.read"]),
            &json!(true),
            &json!("trusted")
        )
    );
    for (name, key, site) in [("rogue", &rogue, Some("T2")), ("lifelong", &lifelong, None)] {
        let mut body = json!({"public_key": key.public_hex()});
        if let Some(s) = site {
            body["site"] = json!(s);
        }
        let a = c
            .json(
                "PUT",
                &format!("/api/v1/plugin-publishers/{name}"),
                &root,
                body,
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }

    // The institution installs its own package; another township's admin may not.
    let v1 = package(&base, "uni-feedback", "1.0.0", &["sites.read"], &elder);
    let a = c.upload("/api/v1/plugin-registry", &t2_admin, &v1).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(
        a.body["detail"],
        "installing a plugin from publisher elder-uni needs the plugin_publisher or site_admin role at site UNI (where the city bound the publisher) or above it"
    );
    let a = c.upload("/api/v1/plugin-registry", &uni_dev, &v1).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["publisher"], "elder-uni");

    // A manifest above the ceiling is refused, and nothing is stored.
    let greedy = package(
        &base,
        "uni-grades",
        "1.0.0",
        &["sites.read", "accounts.record"],
        &elder,
    );
    let a = c.upload("/api/v1/plugin-registry", &uni_dev, &greedy).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(
        a.body["detail"],
        "capabilities: plugin uni-grades asks for accounts.record, above the ceiling the city set for publisher elder-uni (identity.read, sites.read)"
    );
    assert_eq!(
        c.get("/api/v1/plugin-registry/uni-grades", Some(&root))
            .await
            .status,
        404
    );

    // The city-wide publisher stays the city's: an institution cannot install its packages.
    let city_pkg = package(&base, "city-notes", "1.0.0", &[], &lifelong);
    let a = c
        .upload("/api/v1/plugin-registry", &uni_dev, &city_pkg)
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(
        a.body["detail"],
        "installing a plugin needs the city_admin role"
    );
    let a = c.upload("/api/v1/plugin-registry", &root, &city_pkg).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/city-notes/sites/CITY/enabled",
            &root,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(a.status, 204, "no approval for the city's own: {}", a.body);
    assert_eq!(c.call("city-notes", "T2").await, 200);

    // Granting or enabling outside the institution's subtree is refused,
    // even to a city admin and to the other township's admin.
    let confined =
        "plugin uni-feedback comes from publisher elder-uni, which the city bound to site UNI";
    for (token, site) in [
        (&root, "T2"),
        (&t2_admin, "T2"),
        (&root, "T1"),
        (&root, "CITY"),
    ] {
        let a = c
            .json(
                "PUT",
                &format!("/api/v1/plugin-registry/uni-feedback/sites/{site}/grants"),
                token,
                json!({"capabilities": ["sites.read"]}),
            )
            .await;
        assert_eq!(a.status, 403, "{}", a.body);
        assert!(
            a.body["detail"].as_str().unwrap().starts_with(confined),
            "{}",
            a.body
        );
        let a = c
            .json(
                "PUT",
                &format!("/api/v1/plugin-registry/uni-feedback/sites/{site}/enabled"),
                token,
                json!({"enabled": true}),
            )
            .await;
        assert_eq!(a.status, 403, "{}", a.body);
        assert!(
            a.body["detail"].as_str().unwrap().starts_with(confined),
            "{}",
            a.body
        );
    }
    // Configuring is confined the same way.
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-settings/uni-feedback/T2/greeting",
            &root,
            json!({"value": "你好"}),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.body["detail"].as_str().unwrap().starts_with(confined),
        "{}",
        a.body
    );
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-settings/uni-feedback/UNI/greeting",
            &uni_admin,
            json!({"value": "你好"}),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    // A grant above the ceiling is refused.
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/uni-feedback/sites/UNI/grants",
            &uni_admin,
            json!({"capabilities": ["accounts.record"]}),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(
        a.body["detail"],
        "granting accounts.record to plugin uni-feedback is above the ceiling the city set for publisher elder-uni (identity.read, sites.read)"
    );
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/uni-feedback/sites/UNI/grants",
            &uni_admin,
            json!({"capabilities": ["sites.read"]}),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);

    // The first enable waits for the city's approval.
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/uni-feedback/sites/UNI/enabled",
            &uni_admin,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["status"], "pending");
    let id = a.body["request"]["id"].as_i64().unwrap();
    assert_eq!(
        a.location.as_deref(),
        Some(format!("/api/v1/plugin-approvals/{id}").as_str())
    );
    assert_eq!(
        c.call("uni-feedback", "UNI").await,
        404,
        "not enabled before approval"
    );
    let q = c.get("/api/v1/plugin-approvals", Some(&root)).await;
    assert_eq!(q.status, 200, "{}", q.body);
    let items = q.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", q.body);
    let r = &items[0];
    assert_eq!(
        (
            &r["plugin"],
            &r["version"],
            &r["kind"],
            &r["site"],
            &r["publisher"],
            &r["status"]
        ),
        (
            &json!("uni-feedback"),
            &json!("1.0.0"),
            &json!("first-enable"),
            &json!("UNI"),
            &json!("elder-uni"),
            &json!("pending")
        )
    );
    assert_eq!(r["capabilities"][0]["name"], "sites.read");
    assert_eq!(r["capabilities"][0]["new"], true);
    assert_eq!(
        r["capabilities"][0]["meaning"],
        "read the site registry (names, kinds, the tree of sites)"
    );
    assert!(r["manifest"]
        .as_str()
        .unwrap()
        .contains("id = \"uni-feedback\""));
    // The queue is the city's; the institution follows its own request only.
    assert_eq!(
        c.get("/api/v1/plugin-approvals", Some(&uni_admin))
            .await
            .status,
        403
    );
    assert_eq!(
        c.get(&format!("/api/v1/plugin-approvals/{id}"), Some(&uni_dev))
            .await
            .status,
        200
    );
    assert_eq!(
        c.get(&format!("/api/v1/plugin-approvals/{id}"), Some(&t2_admin))
            .await
            .status,
        404
    );
    let a = c
        .json(
            "POST",
            &format!("/api/v1/plugin-approvals/{id}/approve"),
            &uni_admin,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = c
        .json(
            "POST",
            &format!("/api/v1/plugin-approvals/{id}/approve"),
            &root,
            json!({"reason": "reviewed the feedback form"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (&a.body["status"], &a.body["reason"]),
        (&json!("approved"), &json!("reviewed the feedback form"))
    );
    assert_eq!(
        c.call("uni-feedback", "UNI").await,
        200,
        "serves at the institution"
    );
    assert_eq!(c.call("uni-feedback", "T2").await, 404);
    assert_eq!(
        c.call("uni-feedback", "T1").await,
        404,
        "not above the institution either"
    );
    let a = c
        .json(
            "POST",
            &format!("/api/v1/plugin-approvals/{id}/approve"),
            &root,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 409, "decided once: {}", a.body);

    // Refused with a reason: nothing is enabled.
    let notes = package(&base, "uni-notes", "1.0.0", &[], &elder);
    assert_eq!(
        c.upload("/api/v1/plugin-registry", &uni_dev, &notes)
            .await
            .status,
        201
    );
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/uni-notes/sites/UNI/enabled",
            &uni_admin,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let refused_id = a.body["request"]["id"].as_i64().unwrap();
    let a = c
        .json(
            "POST",
            &format!("/api/v1/plugin-approvals/{refused_id}/refuse"),
            &root,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 422, "a refusal says why: {}", a.body);
    let a = c
        .json(
            "POST",
            &format!("/api/v1/plugin-approvals/{refused_id}/refuse"),
            &root,
            json!({"reason": "collects more than the course needs"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (&a.body["status"], &a.body["reason"]),
        (
            &json!("refused"),
            &json!("collects more than the course needs")
        )
    );
    assert_eq!(c.call("uni-notes", "UNI").await, 404);
    let mine = c
        .get(
            &format!("/api/v1/plugin-approvals/{refused_id}"),
            Some(&uni_admin),
        )
        .await;
    assert_eq!(mine.body["reason"], "collects more than the course needs");
    assert_eq!(
        c.get("/api/v1/plugin-approvals", Some(&root)).await.body["items"],
        json!([])
    );

    // An upgrade within what was approved is done at once; one asking for
    // more goes back to the queue while the old version keeps serving.
    let a = c
        .upload(
            "/api/v1/plugin-registry/uni-feedback/upgrade",
            &uni_dev,
            &package(&base, "uni-feedback", "1.0.1", &["sites.read"], &elder),
        )
        .await;
    assert_eq!(
        (a.status, &a.body["version"]),
        (200, &json!("1.0.1")),
        "{}",
        a.body
    );
    let wider = package(
        &base,
        "uni-feedback",
        "1.1.0",
        &["sites.read", "identity.read"],
        &elder,
    );
    let a = c
        .upload(
            "/api/v1/plugin-registry/uni-feedback/upgrade",
            &uni_dev,
            &wider,
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let up = a.body["request"]["id"].as_i64().unwrap();
    let caps = &a.body["request"]["capabilities"];
    assert_eq!(
        (&caps[0]["name"], &caps[0]["new"]),
        (&json!("sites.read"), &json!(false))
    );
    assert_eq!(
        (&caps[1]["name"], &caps[1]["new"]),
        (&json!("identity.read"), &json!(true))
    );
    let a = c
        .upload(
            "/api/v1/plugin-registry/uni-feedback/upgrade",
            &uni_dev,
            &package(
                &base,
                "uni-feedback",
                "1.2.0",
                &["sites.read", "identity.read"],
                &elder,
            ),
        )
        .await;
    assert_eq!(a.status, 409, "one pending upgrade at a time: {}", a.body);
    let info = c
        .get("/api/v1/plugin-registry/uni-feedback", Some(&root))
        .await;
    assert_eq!(info.body["version"], "1.0.1");
    assert_eq!(
        c.call("uni-feedback", "UNI").await,
        200,
        "the old version keeps serving"
    );
    let a = c
        .json(
            "POST",
            &format!("/api/v1/plugin-approvals/{up}/approve"),
            &root,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let info = c
        .get("/api/v1/plugin-registry/uni-feedback", Some(&root))
        .await;
    assert_eq!(
        (&info.body["version"], &info.body["previous"]),
        (&json!("1.1.0"), &json!("1.0.1"))
    );
    assert_eq!(c.call("uni-feedback", "UNI").await, 200);
    // What the ceiling allows is granted at the institution.
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/uni-feedback/sites/UNI/grants",
            &uni_admin,
            json!({"capabilities": ["identity.read"]}),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);

    // The institution rolls back its own plugin; another township cannot.
    let a = c
        .json(
            "POST",
            "/api/v1/plugin-registry/uni-feedback/rollback",
            &t2_admin,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = c
        .json(
            "POST",
            "/api/v1/plugin-registry/uni-feedback/rollback",
            &uni_dev,
            json!({}),
        )
        .await;
    assert_eq!(
        (a.status, &a.body["version"]),
        (200, &json!("1.0.1")),
        "{}",
        a.body
    );
    assert_eq!(c.call("uni-feedback", "UNI").await, 200);
    // Plugin ids belong to their first publisher: another publisher's
    // package is refused for them, even after removal, even from a city admin.
    let taken = "plugin id uni-feedback belongs to publisher elder-uni, whose package first installed it; a package from publisher rogue cannot install or upgrade it (choose another id)";
    let impostor = package(&base, "uni-feedback", "2.0.0", &[], &rogue);
    for token in [&t2_admin, &root] {
        let a = c
            .upload(
                "/api/v1/plugin-registry/uni-feedback/upgrade",
                token,
                &impostor,
            )
            .await;
        assert_eq!(a.status, 409, "{}", a.body);
        assert_eq!(a.body["detail"], taken);
    }
    let a = c
        .send(
            "DELETE",
            "/api/v1/plugin-registry/uni-notes",
            Some(&uni_dev),
            Body::empty(),
            "application/json",
        )
        .await;
    assert_eq!(a.status, 204, "the institution removes its own: {}", a.body);
    let a = c
        .upload(
            "/api/v1/plugin-registry",
            &t2_admin,
            &package(&base, "uni-notes", "1.0.0", &[], &rogue),
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("plugin id uni-notes belongs to publisher elder-uni"),
        "{}",
        a.body
    );

    // Revocation disables at once, here and on another node after its
    // reload; trusting again re-enables nothing.
    let other_node = Registry::new(c.k.kernel.clone(), c.k.runtime.clone(), None, false);
    other_node.refresh().await.unwrap();
    let uni_path = crate::path_of(&c.k, "UNI").await;
    assert!(other_node.route("uni-feedback", Some(&uni_path)).is_ok());
    assert_eq!(
        c.json(
            "POST",
            "/api/v1/plugin-publishers/elder-uni/revoke",
            &uni_admin,
            json!({})
        )
        .await
        .status,
        403
    );
    let a = c
        .json(
            "POST",
            "/api/v1/plugin-publishers/elder-uni/revoke",
            &root,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body["disabled"],
        json!([{"plugin": "uni-feedback", "site": "UNI"}])
    );
    assert_eq!(
        c.call("uni-feedback", "UNI").await,
        404,
        "the next call is refused"
    );
    other_node.refresh().await.unwrap();
    assert_eq!(
        other_node
            .route("uni-feedback", Some(&uni_path))
            .unwrap_err(),
        Refusal::NotEnabled
    );
    assert_eq!(c.audited("plugin.publisher.revoke").await, 1);
    let a = c
        .upload(
            "/api/v1/plugin-registry",
            &uni_dev,
            &package(&base, "uni-quiz", "1.0.0", &[], &elder),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.body["detail"], "publisher: the city revoked publisher elder-uni: its packages are refused until a city admin trusts it again");
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/uni-feedback/sites/UNI/enabled",
            &uni_admin,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.body);
    let a = c
        .json("PUT", "/api/v1/plugin-publishers/elder-uni", &root, bind)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        c.call("uni-feedback", "UNI").await,
        404,
        "trusting again re-enables nothing"
    );
    let tables: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM plg_uni_feedback__receipts")
        .fetch_one(c.k.kernel.db.reader())
        .await
        .expect("its data is kept");
    assert_eq!(tables.0, 0);
    // Its admin enables it again; what was approved stays approved.
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/uni-feedback/sites/UNI/enabled",
            &uni_admin,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(c.call("uni-feedback", "UNI").await, 200);

    for (action, n) in [
        ("plugin.publisher.trust", 4),
        ("plugin.approval.request", 3),
        ("plugin.approval.approve", 2),
        ("plugin.approval.refuse", 1),
    ] {
        assert_eq!(c.audited(action).await, n, "{action}");
    }
    approved_versions_only(&c, &base, &root).await;
    no_plan_indicators_from_a_site(&c, &base, &root).await;
    purged_ids_stay_owned(&c, &base, &root).await;
    key_rotation_keeps_the_binding(&c, &root).await;
    at_site_as_routed(&c, &root).await;
    c.k.cleanup().await;
}

/// Re-trusting a bound publisher with its key only (a rotation) keeps its
/// binding, ceiling and approval flag; `"site": null` makes it city-wide.
async fn key_rotation_keeps_the_binding(c: &City, root: &str) {
    let rotated = PublisherKey::generate("acme").unwrap();
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-publishers/acme",
            root,
            json!({"public_key": rotated.public_hex()}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (
            &a.body["public_key"],
            &a.body["site"],
            &a.body["capabilities"],
            &a.body["approval"]
        ),
        (
            &json!(rotated.public_hex()),
            &json!("T1"),
            &json!(["identity.read"]),
            &json!(true)
        )
    );
    assert_eq!(c.call("acme-x", "T2").await, 404, "still confined to T1");
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-publishers/acme",
            root,
            json!({"public_key": rotated.public_hex(), "approval": false}),
        )
        .await;
    assert_eq!(
        (&a.body["site"], &a.body["approval"]),
        (&json!("T1"), &json!(false))
    );
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-publishers/acme",
            root,
            json!({"public_key": rotated.public_hex(), "site": null}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (
            &a.body["site"],
            &a.body["capabilities"],
            &a.body["approval"]
        ),
        (&Value::Null, &Value::Null, &json!(false))
    );
}

/// `GET /sites/{site}/plugins` says what the view does: a plugin outside
/// its publisher's subtree, or from a revoked publisher, is not enabled
/// there whatever its rows say; and a registry entry's per-site usage is
/// for city admins only.
async fn at_site_as_routed(c: &City, root: &str) {
    let t1_admin = c.login(12, "T1", &[("site_admin", "T1")]).await;
    let at = |site: &'static str| async move {
        let a = c
            .get(&format!("/api/v1/sites/{site}/plugins"), Some(root))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == "acme-x")
            .cloned()
            .unwrap()
    };
    let x = at("T1").await;
    assert_eq!((&x["enabled"], &x["blocked"]), (&json!(true), &Value::Null));
    // Re-bound below T1: its row at T1 is inert, here and in the listing.
    let key = PublisherKey::generate("acme").unwrap();
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-publishers/acme",
            root,
            json!({"public_key": key.public_hex(), "site": "UNI"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(c.call("acme-x", "T1").await, 404);
    let x = at("T1").await;
    assert_eq!(
        (&x["enabled"], &x["enabled_set_at"], &x["blocked"]),
        (
            &json!(false),
            &json!("T1"),
            &json!("publisher acme is bound to site UNI: the plugin runs only there and below")
        )
    );
    assert_eq!(at("UNI").await["enabled"], true);
    let a = c
        .json(
            "POST",
            "/api/v1/plugin-publishers/acme/revoke",
            root,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let x = at("UNI").await;
    assert_eq!(
        (&x["enabled"], &x["blocked"]),
        (&json!(false), &json!("the city revoked publisher acme"))
    );

    // Per-site usage in the registry entry: city admins only.
    let mine = c
        .get("/api/v1/plugin-registry/uni-feedback", Some(&t1_admin))
        .await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body["quota"]["top_sites"], json!([]));
    assert_eq!(mine.body["quota"]["this_minute"]["calls"], json!([]));
    assert!(mine.body["quota"]["stored"].is_object(), "{}", mine.body);
    let city = c
        .get("/api/v1/plugin-registry/uni-feedback", Some(root))
        .await;
    assert!(city.body["quota"]["top_sites"].is_array(), "{}", city.body);
}

/// A plugin installed before ownership was recorded (no `plugin_ids` row,
/// owned by its stored versions' publisher) keeps its owner after
/// `remove --purge` deletes those versions.
async fn purged_ids_stay_owned(c: &City, base: &Package, root: &str) {
    let old = PublisherKey::generate("old-pub").unwrap();
    let new = PublisherKey::generate("new-pub").unwrap();
    for key in [&old, &new] {
        let a = c
            .json(
                "PUT",
                &format!("/api/v1/plugin-publishers/{}", key.publisher),
                root,
                json!({"public_key": key.public_hex()}),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let a = c
        .upload(
            "/api/v1/plugin-registry",
            root,
            &package(base, "legacy", "1.0.0", &[], &old),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    // As an install from before migration 0007 left it.
    let mut tx = c.k.kernel.db.begin().await.unwrap();
    sqlx::query("DELETE FROM plugin_ids WHERE plugin = 'legacy'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let a = c
        .send(
            "DELETE",
            "/api/v1/plugin-registry/legacy?purge=true",
            Some(root),
            Body::empty(),
            "application/json",
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = c
        .upload(
            "/api/v1/plugin-registry",
            root,
            &package(base, "legacy", "1.0.0", &[], &new),
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(
        a.body["detail"],
        "plugin id legacy belongs to publisher old-pub, whose package first installed it; a package from publisher new-pub cannot install or upgrade it (choose another id)"
    );
}

/// A publisher bound to a site may not provide the plan's indicators (the
/// city's figures), on install or upgrade, whoever uploads the package.
async fn no_plan_indicators_from_a_site(c: &City, base: &Package, root: &str) {
    let key = PublisherKey::generate("site-stats").unwrap();
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-publishers/site-stats",
            root,
            json!({"public_key": key.public_hex(), "site": "T2", "approval": false}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let with = |version: &str, keys: &[&str]| {
        let p = package(base, "t2-stats", version, &[], &key);
        let mut p = variant(&p, |t| {
            let mut t = t;
            for k in keys {
                t.push_str(&format!(
                    "\n[[indicators]]\nkey = \"{k}\"\nname = {{ zh-CN = \"指标{k}\", en = \"Indicator {k}\" }}\n\
                     unit = {{ zh-CN = \"个\", en = \"items\" }}\nformula_version = 1\n"
                ));
            }
            t
        });
        p.sign(&key).unwrap();
        p
    };
    let refused = "indicators: plugin t2-stats declares plan indicator 2, but publisher site-stats is bound to site T2: only a city-wide publisher's plugins may provide the plan's indicators (declare your own as t2-stats.<name>)";
    let a = c
        .upload("/api/v1/plugin-registry", root, &with("1.0.0", &["2"]))
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.body["detail"], refused);
    assert_eq!(
        c.get("/api/v1/plugin-registry/t2-stats", Some(root))
            .await
            .status,
        404
    );
    let a = c
        .upload("/api/v1/plugin-registry", root, &with("1.0.0", &[]))
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = c
        .upload(
            "/api/v1/plugin-registry/t2-stats/upgrade",
            root,
            &with("1.1.0", &["t2-stats.count", "2"]),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.body["detail"], refused);
    assert_eq!(
        c.get("/api/v1/plugin-registry/t2-stats", Some(root))
            .await
            .body["version"],
        "1.0.0"
    );
    // Its own indicators stay allowed.
    let a = c
        .upload(
            "/api/v1/plugin-registry/t2-stats/upgrade",
            root,
            &with("1.1.0", &["t2-stats.count"]),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

/// An institution cannot make an unreviewed version active or served: a
/// rollback to a version asking beyond what the city approved is refused
/// (a city admin's rollback is the approval), the view does not fall back
/// to such a version where the active one's grants are missing, and an
/// upgrade of a plugin enabled before approval was required is queued.
async fn approved_versions_only(c: &City, base: &Package, root: &str) {
    let t1_admin = c.login(11, "T1", &[("site_admin", "T1")]).await;
    let acme = PublisherKey::generate("acme").unwrap();
    let trust = |approval: bool| {
        json!({"public_key": acme.public_hex(), "site": "T1",
               "capabilities": ["identity.read", "accounts.record"], "approval": approval})
    };
    let a = c
        .json("PUT", "/api/v1/plugin-publishers/acme", root, trust(false))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);

    // Enabled while no approval was required; then the city requires it:
    // an upgrade asking for anything is queued (nothing was approved).
    let y1 = package(base, "acme-y", "1.0.0", &[], &acme);
    assert_eq!(
        c.upload("/api/v1/plugin-registry", &t1_admin, &y1)
            .await
            .status,
        201
    );
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/acme-y/sites/T1/enabled",
            &t1_admin,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = c
        .json("PUT", "/api/v1/plugin-publishers/acme", root, trust(true))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let y2 = package(base, "acme-y", "1.1.0", &["accounts.record"], &acme);
    let a = c
        .upload("/api/v1/plugin-registry/acme-y/upgrade", &t1_admin, &y2)
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let queued = a.body["request"]["id"].as_i64().unwrap();
    assert_eq!(
        c.get("/api/v1/plugin-registry/acme-y", Some(root))
            .await
            .body["version"],
        "1.0.0"
    );
    let a = c
        .json(
            "POST",
            &format!("/api/v1/plugin-approvals/{queued}/refuse"),
            root,
            json!({"reason": "not reviewed"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);

    // 1.0.0 asks for accounts.record; 1.1.0 (not gated: nothing approved
    // and enabled nowhere) for identity.read, which the city approves.
    let x1 = package(base, "acme-x", "1.0.0", &["accounts.record"], &acme);
    let x2 = package(base, "acme-x", "1.1.0", &["identity.read"], &acme);
    assert_eq!(
        c.upload("/api/v1/plugin-registry", &t1_admin, &x1)
            .await
            .status,
        201
    );
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/acme-x/sites/UNI/grants",
            &t1_admin,
            json!({"capabilities": ["accounts.record"]}),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = c
        .upload("/api/v1/plugin-registry/acme-x/upgrade", &t1_admin, &x2)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/acme-x/sites/T1/grants",
            &t1_admin,
            json!({"capabilities": ["identity.read"]}),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/acme-x/sites/T1/enabled",
            &t1_admin,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let id = a.body["request"]["id"].as_i64().unwrap();
    let a = c
        .json(
            "POST",
            &format!("/api/v1/plugin-approvals/{id}/approve"),
            root,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);

    assert_eq!(c.call("acme-x", "T1").await, 200);
    // Below T1, 1.0.0's capability granted (while it was active) but not
    // 1.1.0's: the unapproved 1.0.0 is not served in its place.
    let a = c
        .json(
            "PUT",
            "/api/v1/plugin-registry/acme-x/sites/UNI/grants",
            &t1_admin,
            json!({"capabilities": ["identity.read"], "granted": false}),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(c.call("acme-x", "UNI").await, 403, "no fallback to 1.0.0");

    // The institution's rollback to 1.0.0 is refused; nothing changes.
    let a = c
        .json(
            "POST",
            "/api/v1/plugin-registry/acme-x/rollback",
            &t1_admin,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(
        a.body["detail"],
        "version 1.0.0 of plugin acme-x asks for accounts.record, which the city has not approved for it: only a city admin may roll back to it (or upgrade, which asks for approval)"
    );
    let info = c.get("/api/v1/plugin-registry/acme-x", Some(root)).await;
    assert_eq!(
        (&info.body["version"], &info.body["previous"]),
        (&json!("1.1.0"), &json!("1.0.0"))
    );
    // A city admin's rollback is the approval.
    let a = c
        .json(
            "POST",
            "/api/v1/plugin-registry/acme-x/rollback",
            root,
            json!({}),
        )
        .await;
    assert_eq!(
        (a.status, &a.body["version"]),
        (200, &json!("1.0.0")),
        "{}",
        a.body
    );
    // The ceiling applies to a rollback as to an upgrade, even a city admin's.
    let a = c
        .upload("/api/v1/plugin-registry/acme-x/upgrade", root, &x2)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let mut narrower = trust(true);
    narrower["capabilities"] = json!(["identity.read"]);
    let a = c
        .json("PUT", "/api/v1/plugin-publishers/acme", root, narrower)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = c
        .json(
            "POST",
            "/api/v1/plugin-registry/acme-x/rollback",
            root,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(
        a.body["detail"],
        "capabilities: plugin acme-x asks for accounts.record, above the ceiling the city set for publisher acme (identity.read)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn institutions_publish_within_their_site_sqlite() {
    institution_plugins(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn institutions_publish_within_their_site_postgres() {
    institution_plugins(TestKernel::postgres().await).await;
}

/// The city's side through the CLI (the operator, `system:cli`): binding a
/// publisher, the ceiling and confinement refusals on one line each, the
/// queue, revocation.
fn operator_binds_and_revokes(dep: tests::Deployment) {
    let run = |args: &[&str]| {
        let out = dep.command().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(run(&["migrate"]).0, 0);
    let sites = dep.dir.path().join("sites.csv");
    std::fs::write(
        &sites,
        "code,name_zh,kind,parent_code\nCITY,市,city,\nT1,一镇,township,CITY\nT2,二镇,township,CITY\nUNI,老年大学,elder_university,T1\n",
    )
    .unwrap();
    let (code, _, err) = run(&["site", "import", sites.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let key = PublisherKey::generate("elder-uni").unwrap();
    let base = lifelong_harness::package(plugin_dir("other")).unwrap();
    let write = |name: &str, pkg: Package| {
        let path = dep.dir.path().join(name);
        std::fs::write(&path, pkg.encode()).unwrap();
        path.to_str().unwrap().to_string()
    };
    let ok = write(
        "ok.llpkg",
        package(&base, "uni-feedback", "1.0.0", &["sites.read"], &key),
    );
    let greedy = write(
        "greedy.llpkg",
        package(&base, "uni-grades", "1.0.0", &["accounts.read"], &key),
    );

    let (code, out, err) = run(&[
        "plugin",
        "trust",
        "elder-uni",
        &key.public_hex(),
        "--site",
        "UNI",
        "--capabilities",
        "sites.read,identity.grant",
        "--roles",
        "volunteer",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "publisher elder-uni is trusted: trusted, bound to site UNI, capabilities identity.grant,sites.read, identity.grant roles volunteer, approval required\n");
    let (code, _, err) = run(&[
        "plugin",
        "trust",
        "elder-uni",
        &key.public_hex(),
        "--capabilities",
        "sites.read",
        "--roles",
        "teacher",
    ]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: roles: roles are the ceiling of identity.grant: name identity.grant in capabilities too\n")
    );
    let (code, _, err) = run(&["plugin", "install", &greedy]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: capabilities: plugin uni-grades asks for accounts.read, above the ceiling the city set for publisher elder-uni (identity.grant, sites.read; identity.grant roles volunteer)\n")
    );
    let (code, _, err) = run(&["plugin", "install", &ok]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&[
        "plugin",
        "grant",
        "uni-feedback",
        "--site",
        "T2",
        "sites.read",
    ]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: plugin uni-feedback comes from publisher elder-uni, which the city bound to site UNI: it can be granted capabilities only at UNI and the sites below it, not at T2\n")
    );
    let (code, _, err) = run(&[
        "plugin",
        "grant",
        "uni-feedback",
        "--site",
        "UNI",
        "sites.read",
    ]);
    assert_eq!(code, 0, "{err}");
    // The operator is the city: no request.
    let (code, _, err) = run(&["plugin", "enable", "uni-feedback", "--site", "UNI"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(&["plugin", "approvals"]);
    assert_eq!((code, out.as_str()), (0, "no requests\n"));
    let (code, _, err) = run(&["plugin", "refuse", "99", "--reason", "no"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: approval request 99 not found\n")
    );
    let (code, out, err) = run(&["plugin", "revoke-publisher", "elder-uni"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "publisher elder-uni is revoked; disabled: uni-feedback at UNI\n"
    );
    let (code, out, _) = run(&["plugin", "publishers"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!(
            "elder-uni {}: revoked, bound to site UNI",
            key.public_hex()
        )),
        "{out}"
    );
    let (code, out, _) = run(&["plugin", "list"]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "uni-feedback 1.0.0 by elder-uni, signed  enabled at: -\n"
        )
    );
    // Trusting again with the key only (a rotation) keeps the binding,
    // ceiling and approval; --city-wide is how to lift them.
    let (code, out, err) = run(&["plugin", "trust", "elder-uni", &key.public_hex()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "publisher elder-uni is trusted: trusted, bound to site UNI, capabilities identity.grant,sites.read, identity.grant roles volunteer, approval required\n");
    let (code, out, err) = run(&[
        "plugin",
        "trust",
        "elder-uni",
        &key.public_hex(),
        "--city-wide",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("publisher elder-uni is trusted: trusted, city-wide"),
        "{out}"
    );
}

#[test]
fn operator_binds_and_revokes_sqlite() {
    operator_binds_and_revokes(tests::Deployment::sqlite());
}

#[test]
fn operator_binds_and_revokes_postgres() {
    operator_binds_and_revokes(tests::Deployment::postgres());
}

/// The institution's side through the CLI: `lifelong plugin remote` with
/// its own token against a running node installs, grants and requests the
/// enable; the city approves with the operator CLI; the plugin then serves
/// at the institution. Refusals are one line.
async fn institution_uses_the_cli(dep: tests::Deployment) {
    let run = |args: &[&str], token: Option<&str>| {
        let mut cmd = dep.command();
        cmd.args(args);
        if let Some(t) = token {
            cmd.env("LIFELONG_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(run(&["migrate"], None).0, 0);
    let sites = dep.dir.path().join("sites.csv");
    std::fs::write(
        &sites,
        "code,name_zh,kind,parent_code\nCITY,市,city,\nT1,一镇,township,CITY\nUNI,老年大学,elder_university,T1\n",
    )
    .unwrap();
    assert_eq!(run(&["site", "import", sites.to_str().unwrap()], None).0, 0);
    let id = |n: u32| {
        kernel::idnumber::synthesize(
            350602,
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap(),
            n,
            kernel::idnumber::Sex::Male,
        )
    };
    let out = dep
        .command()
        .args([
            "admin",
            "bootstrap",
            "--login",
            "root",
            "--name",
            "管理员",
            "--id-number",
            &id(11),
        ])
        .env("LIFELONG_ADMIN_PASSWORD", "pw-12345678")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = PublisherKey::generate("elder-uni").unwrap();
    let (code, _, err) = run(
        &[
            "plugin",
            "trust",
            "elder-uni",
            &key.public_hex(),
            "--site",
            "UNI",
            "--capabilities",
            "sites.read",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let base = lifelong_harness::package(plugin_dir("other")).unwrap();
    let write = |name: &str, pkg: Package| {
        let path = dep.dir.path().join(name);
        std::fs::write(&path, pkg.encode()).unwrap();
        path.to_str().unwrap().to_string()
    };
    let ok = write(
        "ok.llpkg",
        package(&base, "uni-feedback", "1.0.0", &["sites.read"], &key),
    );
    let greedy = write(
        "greedy.llpkg",
        package(&base, "uni-grades", "1.0.0", &["accounts.read"], &key),
    );

    let (mut child, url) = dep.serve();
    let http = reqwest::Client::new();
    let login = |login: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let v: Value = http
                .post(format!("{url}/api/v1/auth/login"))
                .json(&json!({"login": login, "password": "pw-12345678"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["token"].as_str().unwrap().to_string()
        }
    };
    let root = login("root").await;
    let person: Value = http
        .post(format!("{url}/api/v1/persons"))
        .bearer_auth(&root)
        .json(&json!({"name": "开发者", "id_number": id(21), "home_site": "UNI", "login": "dev", "password": "pw-12345678"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for role in ["plugin_publisher", "site_admin"] {
        let r = http
            .post(format!("{url}/api/v1/persons/{}/roles", person["id"]))
            .bearer_auth(&root)
            .json(&json!({"role": role, "site": "UNI"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let dev = login("dev").await;
    let remote = |args: &[&str], token: &str| {
        let mut all = vec!["plugin", "remote", "--server", url.as_str()];
        all.extend_from_slice(args);
        run(&all, Some(token))
    };

    let (code, out, err) = remote(&["install", &ok], &dev);
    assert_eq!(
        (code, out.as_str()),
        (0, "installed uni-feedback 1.0.0 by elder-uni\n"),
        "{err}"
    );
    let (code, _, err) = remote(&["install", &greedy], &dev);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: capabilities: plugin uni-grades asks for accounts.read, above the ceiling the city set for publisher elder-uni (sites.read)\n")
    );
    let (code, _, err) = remote(&["install", &ok], "not-a-token");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
    let (code, out, err) = remote(
        &["grant", "uni-feedback", "--site", "UNI", "sites.read"],
        &dev,
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "granted sites.read to uni-feedback at UNI and below\n"),
        "{err}"
    );
    let (code, out, err) = remote(&["enable", "uni-feedback", "--site", "UNI"], &dev);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "enabling uni-feedback at UNI waits for the city's approval as request 1\n"
        ),
        "{err}"
    );
    let (code, out, _) = run(&["plugin", "approvals"], None);
    assert_eq!(code, 0);
    assert!(out.starts_with("request 1 [pending]: first-enable uni-feedback 1.0.0 by publisher elder-uni at site UNI, asked by person:"), "{out}");
    assert!(
        out.contains("\n  sites.read [new]: read the site registry"),
        "{out}"
    );
    let (code, _, err) = run(&["plugin", "approve", "1", "--reason", "fine"], None);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = remote(&["request", "1"], &dev);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "request 1 [approved]: first-enable uni-feedback 1.0.0 at UNI; reason: fine\n"
        ),
        "{err}"
    );
    // The node picks the operator's change up on its next reload pass.
    let served = async {
        loop {
            let r = http
                .get(format!(
                    "{url}/api/v1/plugins/uni-feedback/receipts?site=UNI"
                ))
                .send()
                .await
                .unwrap();
            if r.status().as_u16() == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), served)
        .await
        .expect("the approved plugin serves at the institution");
    let (code, out, err) = remote(&["remove", "uni-feedback"], &dev);
    assert_eq!((code, out.as_str()), (0, "removed uni-feedback\n"), "{err}");
    let (code, _, err) = run(
        &[
            "plugin",
            "remote",
            "--server",
            "https://example.org",
            "request",
            "1",
        ],
        Some(&dev),
    );
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: --server must be a node's http://host:port"),
        "{err}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn institution_uses_the_cli_sqlite() {
    institution_uses_the_cli(tests::Deployment::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn institution_uses_the_cli_postgres() {
    institution_uses_the_cli(tests::Deployment::postgres()).await;
}
