//! The plugin registry over HTTP, as admins use it, with metrics and logs.

use crate::plugin_dir;
use lifelong_harness::TestKernel;
use serde_json::json;

/// The admin HTTP API end to end: install by upload, grant, enable, call,
/// then read metrics and the plugin's logs; unauthorised callers refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_plugins_over_http_and_read_metrics_and_logs() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let k = TestKernel::sqlite().await;
    super::bootstrap_root(&k).await;
    let app = super::served_app(&k);
    let send = |method: &str, uri: &str, token: Option<&str>, body: Body, ct: &str| {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", ct);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(body).unwrap();
        let app = app.clone();
        async move {
            let res = app.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8_lossy(&bytes).to_string();
            (
                status,
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            )
        }
    };
    let json_body = |v: serde_json::Value| Body::from(v.to_string());
    let (s, v) = send(
        "POST",
        "/api/v1/auth/login",
        None,
        json_body(json!({"login": "root", "password": "pw-12345678"})),
        "application/json",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let t = Some(token.as_str());

    let pkg = k.package(plugin_dir("probe")).await.encode();
    let (s, v) = send(
        "POST",
        "/api/v1/plugin-registry",
        None,
        Body::from(pkg.clone()),
        "application/octet-stream",
    )
    .await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = send(
        "POST",
        "/api/v1/plugin-registry",
        t,
        Body::from(b"junk".to_vec()),
        "application/octet-stream",
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(
        v["detail"],
        "package: not a Lifelong plugin package (bad magic bytes)"
    );
    let (s, v) = send(
        "POST",
        "/api/v1/plugin-registry",
        t,
        Body::from(pkg),
        "application/octet-stream",
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (
            v["id"].as_str(),
            v["version"].as_str(),
            v["signed"].as_bool()
        ),
        (Some("probe"), Some("1.0.0"), Some(false))
    );

    let (s, v) = send(
        "POST",
        "/api/v1/plugins/probe/seats?site=CITY",
        t,
        json_body(json!({"capacity": 2})),
        "application/json",
    )
    .await;
    assert_eq!(s, 404, "not enabled yet: {v}");
    assert_eq!(v["detail"], "plugin probe is not enabled at site CITY");
    let (s, v) = send(
        "PUT",
        "/api/v1/plugin-registry/probe/sites/CITY/enabled",
        t,
        json_body(json!({"enabled": true})),
        "application/json",
    )
    .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = send(
        "PUT",
        "/api/v1/plugin-registry/probe/sites/CITY/grants",
        t,
        json_body(json!({"capabilities": ["sites.read", "identity.read", "accounts.record", "accounts.read"]})),
        "application/json",
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = send(
        "PUT",
        "/api/v1/plugin-registry/probe/sites/CITY/enabled",
        t,
        json_body(json!({"enabled": true})),
        "application/json",
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = send(
        "POST",
        "/api/v1/plugins/probe/seats?site=CITY",
        t,
        json_body(json!({"capacity": 2})),
        "application/json",
    )
    .await;
    assert_eq!(s, 201, "{v}");

    let (s, v) = send(
        "GET",
        "/api/v1/plugin-registry",
        t,
        Body::empty(),
        "application/json",
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        v["items"][0]["sites"],
        json!([{"site": "CITY", "enabled": true}])
    );
    let (s, v) = send("GET", "/metrics", None, Body::empty(), "text/plain").await;
    assert_eq!(s, 200);
    let text = v.as_str().unwrap();
    assert!(
        text.contains("lifelong_plugin_calls_total{plugin=\"probe\",version=\"1.0.0\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "lifelong_plugin_call_duration_seconds_count{plugin=\"probe\",version=\"1.0.0\"} 1"
        ),
        "{text}"
    );
    let (s, v) = send(
        "GET",
        "/api/v1/plugin-registry/probe/logs",
        t,
        Body::empty(),
        "application/json",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let line = &v["items"][0];
    assert_eq!(
        (
            line["message"].as_str(),
            line["site"].as_str(),
            line["version"].as_str()
        ),
        (Some("seat row 1 created"), Some("CITY"), Some("1.0.0"))
    );
    assert!(!line["request_id"].as_str().unwrap().is_empty());
    let (s, v) = send("GET", "/readyz", None, Body::empty(), "application/json").await;
    assert_eq!(
        (s, v["dev_mode"].as_bool(), v["plugins"].as_u64()),
        (200, Some(true), Some(1))
    );
    // Malformed requests are problems too.
    let (s, v) = send(
        "DELETE",
        "/api/v1/plugin-registry/probe?purge=maybe",
        t,
        Body::empty(),
        "application/json",
    )
    .await;
    assert_eq!((s, v["status"].as_u64()), (422, Some(422)), "{v}");
    let (s, v) = send(
        "PUT",
        "/api/v1/plugin-registry/probe/sites/CITY/grants",
        t,
        json_body(json!({"capabilities": "sites.read"})),
        "application/json",
    )
    .await;
    assert_eq!((s, v["status"].as_u64()), (422, Some(422)), "{v}");
    let (s, v) = send(
        "POST",
        "/api/v1/plugin-registry/hello/upgrade",
        t,
        Body::from(k.package(plugin_dir("probe")).await.encode()),
        "application/octet-stream",
    )
    .await;
    assert_eq!(
        (s, v["detail"].as_str()),
        (422, Some("package: the package is plugin probe, not hello")),
        "{v}"
    );
    let (s, v) = send(
        "GET",
        "/api/v1/plugin-registry/nope",
        t,
        Body::empty(),
        "application/json",
    )
    .await;
    assert_eq!(
        (s, v["detail"].as_str()),
        (404, Some("plugin nope not found")),
        "{v}"
    );
    let (s, _) = send(
        "DELETE",
        "/api/v1/plugin-registry/probe",
        t,
        Body::empty(),
        "application/json",
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = send(
        "POST",
        "/api/v1/plugins/probe/seats?site=CITY",
        t,
        json_body(json!({"capacity": 2})),
        "application/json",
    )
    .await;
    assert_eq!(s, 404);
    k.cleanup().await;
}
