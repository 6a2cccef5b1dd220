//! The indicator contract (host API 1.4) as served: a provider plugin
//! uploaded, enabled and asked by the kernel through `GET /api/v1/indicators`
//! (the kernel never reads its tables); hostile indicators failing only
//! themselves; and what install refuses. Both backends.

use crate::{plugin_dir, refused, site_tree, system, variant};
use axum::body::Body;
use http_body_util::BodyExt;
use kernel::plugins::package::Package;
use lifelong_harness::TestKernel;
use serde_json::{json, Value};
use tower::ServiceExt;

/// One `[[indicators]]` entry.
fn declared(key: &str) -> String {
    format!(
        "\n[[indicators]]\nkey = \"{key}\"\nname = {{ zh-CN = \"指标{key}\", en = \"Indicator {key}\" }}\n\
         unit = {{ zh-CN = \"个\", en = \"items\" }}\nformula_version = 2\n"
    )
}

/// The probe, declaring the plan's indicator 1 and its own test indicators.
fn provider(probe: &Package) -> Package {
    variant(probe, |t| {
        let mut t = t;
        for key in [
            "1",
            "probe.setting",
            "probe.trap",
            "probe.spin",
            "probe.write",
            "probe.refuse",
            "probe.nan",
            "probe.none",
        ] {
            t.push_str(&declared(key));
        }
        t
    })
}

/// The package bytes with `text` as the manifest (unchecked, as a hostile
/// uploader could send them).
fn with_manifest(pkg: &Package, text: &str) -> Vec<u8> {
    let bytes = pkg.encode();
    [
        &bytes[..8],
        &(text.len() as u32).to_le_bytes(),
        text.as_bytes(),
        &bytes[12 + pkg.manifest_text.len()..],
    ]
    .concat()
}

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Body,
) -> (u16, Value) {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The probe uploaded over HTTP as a provider, enabled at T1 only, asked
/// for its values by the kernel's indicator report: indicator 1 from the
/// plugin where it is enabled (nothing at the city, where it is not); a
/// panicking, a spinning, a writing, a refusing and a NaN indicator each
/// fail alone with an error for admins while the report answers 200 and
/// the well-behaved ones have values; the failures are in the plugin's log
/// and metrics like any failed call.
async fn a_provider_is_asked_by_the_kernel(k: TestKernel) {
    super::bootstrap_root(&k).await;
    site_tree(
        &k,
        &[
            ("T1", "township", Some("CITY")),
            ("T2", "township", Some("CITY")),
            ("T1-V1", "village", Some("T1")),
        ],
    )
    .await;
    let app = super::served_app(&k);
    let login = axum::http::Request::builder()
        .method("POST")
        .uri("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"login": "root", "password": "pw-12345678"}).to_string(),
        ))
        .unwrap();
    let res = app.clone().oneshot(login).await.unwrap();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let token = serde_json::from_slice::<Value>(&bytes).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let pkg = provider(&k.package(plugin_dir("probe")).await);
    let (s, v) = send(
        &app,
        "POST",
        "/api/v1/plugin-registry",
        &token,
        Body::from(pkg.encode()),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let keys: Vec<_> = v["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 8, "{v}");
    assert_eq!(v["indicators"][0]["formula_version"], 2, "{v}");
    k.enable("probe", "T1").await;

    // At T1: the plan's indicator 1 from the plugin, the extras beside it.
    let (s, r) = send(
        &app,
        "GET",
        "/api/v1/indicators?site=T1",
        &token,
        Body::empty(),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let one = &r["indicators"][0];
    assert_eq!(
        (one["id"].clone(), one["source"].clone()),
        (json!(1), json!("plugin:probe")),
        "{one}"
    );
    assert_eq!(
        one["value"].as_f64(),
        Some(2.0),
        "T1 and T1-V1 are open: {one}"
    );
    assert_eq!(one["error"], Value::Null, "{one}");
    let extra = |key: &str| {
        r["extra"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .unwrap_or_else(|| panic!("{key} in {r}"))
            .clone()
    };
    assert_eq!(extra("probe.setting")["value"].as_f64(), Some(50.0));
    assert_eq!(extra("probe.setting")["source"], "plugin:probe");
    for (key, says) in [
        ("probe.trap", "(panic)"),
        ("probe.spin", "(deadline)"),
        ("probe.write", "read-only"),
        ("probe.refuse", "no figures before the census"),
        ("probe.nan", "not a finite number"),
    ] {
        let e = extra(key);
        assert_eq!(e["value"], Value::Null, "{e}");
        let error = e["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(&format!(
                "plugin probe could not compute indicator {key} for site T1"
            )) && error.contains(says),
            "{key}: {e}"
        );
    }
    assert_eq!(extra("probe.none")["value"], Value::Null);

    // At the city the plugin is not enabled: no value, said so; T1's child
    // row has the plugin's value.
    let (s, r) = send(
        &app,
        "GET",
        "/api/v1/indicators?site=CITY",
        &token,
        Body::empty(),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let one = &r["indicators"][0];
    assert_eq!(one["value"], Value::Null, "{one}");
    assert!(
        one["error"].as_str().unwrap().contains("not enabled"),
        "{one}"
    );
    let t1 = one["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["site"] == "T1")
        .unwrap();
    assert_eq!(t1["value"].as_f64(), Some(2.0), "{one}");

    // Failures are reported as calls are: in the log and the metrics.
    let logs = k.runtime.observatory().recent_logs("probe", 1000);
    assert!(
        logs.iter().any(|l| l.level == "error"
            && l.site == "T1"
            && l.message
                .starts_with("indicator probe.trap call failed (panic)")),
        "{:?}",
        logs.iter().map(|l| &l.message).collect::<Vec<_>>()
    );
    let m = k.runtime.observatory().snapshot("probe");
    assert!(m[0]["errors"]["panic"].as_u64().unwrap() >= 1, "{m:?}");
    assert!(m[0]["errors"]["deadline"].as_u64().unwrap() >= 1, "{m:?}");
    assert!(m[0]["errors"]["handler"].as_u64().unwrap() >= 1, "{m:?}");
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_is_asked_by_the_kernel_sqlite() {
    a_provider_is_asked_by_the_kernel(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_is_asked_by_the_kernel_postgres() {
    a_provider_is_asked_by_the_kernel(TestKernel::postgres().await).await;
}

/// Install refuses a kernel-computed plan indicator, a bad key, declared
/// indicators without the export (a component built for host API 1.0), and
/// a plan indicator another installed plugin provides — on install, upgrade
/// and rollback — naming it; nothing of a refused change is kept.
async fn declared_indicators_are_checked_at_install(k: TestKernel) {
    site_tree(&k, crate::TREE).await;
    let sys = system();
    let probe = k.package(plugin_dir("probe")).await;
    for (key, says) in [
        ("4", "indicator 4 is computed by the kernel from its own data; a plugin may provide plan indicators 1, 2, 5, 8, 9 only"),
        ("other.hours", "indicator key \"other.hours\" must be a plan indicator's number or \"probe.<name>\" with <name> matching [a-z][a-z0-9_]*"),
        ("12", "indicator key \"12\": the plan's indicators are numbered 1 to 10"),
    ] {
        let text = format!("{}{}", probe.manifest_text, declared(key));
        let e = refused(k.registry.install(&sys, &with_manifest(&probe, &text)).await);
        assert_eq!(e, format!("manifest: {says}"));
    }

    let fixture = Package::decode(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/hello-host-api-1.0.0.llpkg"),
        )
        .unwrap(),
    )
    .unwrap();
    let e = refused(
        k.registry
            .install(
                &sys,
                &variant(&fixture, |t| format!("{t}{}", declared("hello.greetings"))).encode(),
            )
            .await,
    );
    assert_eq!(
        e,
        "indicators: plugin hello declares indicators (hello.greetings) but its component does not export lifelong:plugin/indicators; build it against host API 1.4 with the SDK's indicator support"
    );
    assert!(k.registry.list().await.unwrap().is_empty());

    k.registry
        .install(
            &sys,
            &variant(&probe, |t| format!("{t}{}", declared("1"))).encode(),
        )
        .await
        .unwrap();
    let other = k.package(plugin_dir("other")).await;
    let e = refused(
        k.registry
            .install(
                &sys,
                &variant(&other, |t| format!("{t}{}{}", declared("2"), declared("1"))).encode(),
            )
            .await,
    );
    assert_eq!(
        e,
        "plan indicator 1 is already provided by plugin probe (version 1.0.0); one plugin provides each plan indicator — remove it from one of the two manifests"
    );
    // Its own indicators and another plan indicator are fine; then probe
    // may not take that one by an upgrade.
    k.registry
        .install(
            &sys,
            &variant(&other, |t| {
                format!("{t}{}{}", declared("2"), declared("other.count"))
            })
            .encode(),
        )
        .await
        .unwrap();
    let upgrade = crate::versioned(&probe, "1.1.0");
    let upgrade = variant(&upgrade, |t| {
        format!("{t}{}{}", declared("1"), declared("2"))
    });
    let e = refused(k.registry.upgrade(&sys, &upgrade.encode()).await);
    assert!(
        e.starts_with("plan indicator 2 is already provided by plugin other"),
        "{e}"
    );
    assert_eq!(k.registry.info("probe").await.unwrap().version, "1.0.0");
    // A rollback may not take back a plan indicator another plugin took
    // meanwhile: probe 1.2.0 gives up 1, other 1.1.0 takes it, and probe's
    // rollback to 1.0.0 (which claims 1) is refused.
    k.registry
        .upgrade(&sys, &crate::versioned(&probe, "1.2.0").encode())
        .await
        .unwrap();
    let taker = variant(&crate::versioned(&other, "1.1.0"), |t| {
        format!("{t}{}{}", declared("2"), declared("1"))
    });
    k.registry.upgrade(&sys, &taker.encode()).await.unwrap();
    let e = refused(k.registry.rollback(&sys, "probe").await);
    assert!(
        e.starts_with("plan indicator 1 is already provided by plugin other (version 1.1.0)"),
        "{e}"
    );
    assert_eq!(k.registry.info("probe").await.unwrap().version, "1.2.0");
    let mut all: Vec<_> = k
        .registry
        .provided_indicators()
        .into_iter()
        .map(|i| format!("{}:{}", i.plugin, i.key))
        .collect();
    all.sort();
    assert_eq!(all, ["other:1", "other:2"]);
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_indicators_are_checked_at_install_sqlite() {
    declared_indicators_are_checked_at_install(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_indicators_are_checked_at_install_postgres() {
    declared_indicators_are_checked_at_install(TestKernel::postgres().await).await;
}
