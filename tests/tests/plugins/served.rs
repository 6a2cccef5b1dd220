//! What the platform guarantees as a deployment serves it: packages
//! installed through the registry, granted and enabled per site, called over
//! HTTP (the kernel's router in process), events delivered by the same pass
//! `serve` runs. Events between plugins follow per-site enablement; plugin
//! routes keep the body cap; failures keep the plugin's internals to admins;
//! a plugin over its share of the node waits, then is refused, without
//! slowing the others; a call that loses write races is re-run.

use crate::{plugin_dir, site_tree, variant};
use axum::body::Body;
use http_body_util::BodyExt;
use kernel::plugins::package::Package;
use kernel::plugins::RuntimeLimits;
use lifelong_harness::TestKernel;
use serde_json::{json, Value};
use std::time::Duration;
use tower::ServiceExt;

/// A served kernel: the test city, the HTTP router over its registry.
struct Served {
    k: TestKernel,
    app: axum::Router,
}

/// The answer to one request.
struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Served {
    /// CITY → T1 → T1-V1, and T2 → T2-V1; the router with `limits`.
    async fn new(k: TestKernel, limits: kernel::config::Limits) -> Served {
        site_tree(
            &k,
            &[
                ("CITY", "city", None),
                ("T1", "township", Some("CITY")),
                ("T2", "township", Some("CITY")),
                ("T1-V1", "village", Some("T1")),
                ("T2-V1", "village", Some("T2")),
            ],
        )
        .await;
        let state = kernel::http::AppState::new(k.kernel.clone(), &limits)
            .with_registry(k.registry.clone());
        let app = kernel::http::app(state, &limits);
        Served { k, app }
    }

    /// Install `pkg` as an operator does, grant what it asks and enable it at the city.
    async fn deploy(&self, pkg: &Package) {
        self.k.install(pkg).await;
        self.k.enable(&pkg.manifest.id, "CITY").await;
    }

    async fn send(&self, method: &str, uri: &str, body: Body) -> Answer {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    async fn get(&self, uri: &str) -> Answer {
        self.send("GET", uri, Body::empty()).await
    }

    async fn post(&self, uri: &str, body: Value) -> Answer {
        self.send("POST", uri, Body::from(body.to_string())).await
    }

    /// One pass of the delivery loop exactly as `serve` runs it.
    async fn deliver(&self) -> kernel::plugins::events::Pass {
        kernel::plugins::events::fan_out(&self.k.kernel, |e| self.k.runtime.subscribers_of(e))
            .await
            .unwrap();
        kernel::plugins::events::deliver_due(
            &self.k.kernel,
            |p, site| self.k.registry.route_event(p, site),
            8,
        )
        .await
        .unwrap()
    }
}

/// Two plugins deployed at the city, the subscriber disabled in T2: an
/// event published (by a plugin, or by the kernel) at a village of T1 is
/// delivered once to each subscriber; one published at a village of T2
/// reaches the publisher's own subscription and is skipped for the other.
async fn events_follow_enablement(k: TestKernel) {
    let s = Served::new(k, kernel::config::Limits::default()).await;
    s.deploy(&s.k.package(plugin_dir("probe")).await).await;
    s.deploy(&s.k.package(plugin_dir("other")).await).await;
    s.k.registry
        .set_enabled(&crate::system(), "other", "T2", false)
        .await
        .unwrap();
    for site in ["T1-V1", "T2-V1"] {
        let a = s
            .post(
                &format!("/api/v1/plugins/probe/notes/a?site={site}"),
                json!({ "body": site }),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
    }
    let pass = s.deliver().await;
    assert_eq!(
        (pass.delivered, pass.skipped, pass.failed),
        (3, 1, 0),
        "{pass:?}"
    );
    assert_eq!(s.deliver().await.delivered, 0, "exactly once");
    let ids: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM plugin_outbox WHERE name = 'probe.touched' ORDER BY id")
            .fetch_all(s.k.kernel.db.reader())
            .await
            .unwrap();
    let (first, second) = (ids[0].0, ids[1].0);
    let probe = s.get("/api/v1/plugins/probe/receipts?site=T1").await;
    assert_eq!(probe.body, json!({ "events": [first, second] }));
    let other = s.get("/api/v1/plugins/other/receipts?site=T1").await;
    assert_eq!(other.body, json!({ "events": [first] }));
    let skipped: Vec<(i64, String)> = sqlx::query_as(
        "SELECT event_id, subscriber FROM plugin_deliveries WHERE last_error LIKE 'skipped%'",
    )
    .fetch_all(s.k.kernel.db.reader())
    .await
    .unwrap();
    assert_eq!(skipped, vec![(second, "other".to_string())]);

    // Kernel events follow the same routing: `other` subscribes to
    // kernel.person.create, delivered for a resident of T1-V1 only.
    crate::person(&s.k, 1, (1950, 1, 1), kernel::idnumber::Sex::Male, "T1-V1").await;
    crate::person(&s.k, 2, (1950, 1, 1), kernel::idnumber::Sex::Male, "T2-V1").await;
    let pass = s.deliver().await;
    assert_eq!((pass.delivered, pass.skipped), (1, 1), "{pass:?}");
    let names = s.get("/api/v1/plugins/other/receipt-names?site=T1").await;
    assert_eq!(
        names
            .body
            .to_string()
            .matches("kernel.person.create")
            .count(),
        1,
        "{}",
        names.body
    );
    s.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_between_served_plugins_follow_enablement_sqlite() {
    events_follow_enablement(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_between_served_plugins_follow_enablement_postgres() {
    events_follow_enablement(TestKernel::postgres().await).await;
}

/// The body cap holds on plugin routes: a declared length past it is
/// refused before reading, a streamed body is read no further than the cap,
/// and a plugin's own lower cap applies to it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_routes_keep_the_body_cap() {
    let limits = kernel::config::Limits {
        max_body_bytes: 64 << 10,
        ..Default::default()
    };
    let s = Served::new(TestKernel::sqlite().await, limits).await;
    let probe = s.k.package(plugin_dir("probe")).await;
    s.deploy(&probe).await;
    let small = json!({ "body": "x".repeat(1000) });
    let a = s
        .post("/api/v1/plugins/probe/notes/b?site=CITY", small.clone())
        .await;
    assert_eq!(a.status, 201, "{}", a.body);

    let big = json!({ "body": "x".repeat(100 << 10) });
    let a = s.post("/api/v1/plugins/probe/notes/b?site=CITY", big).await;
    assert_eq!(a.status, 413, "{}", a.body);
    assert_eq!(a.body["type"], "urn:lifelong:problem:payload-too-large");
    assert_eq!(
        a.headers["content-type"], "application/problem+json",
        "{}",
        a.body
    );

    // 60 MB streamed without a length: refused, and read only up to the cap.
    let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = pulled.clone();
    let chunks = futures_util::stream::iter((0..960).map(move |_| {
        counter.fetch_add(64 << 10, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; 64 << 10]))
    }));
    let a = s
        .send(
            "POST",
            "/api/v1/plugins/probe/notes/b?site=CITY",
            Body::from_stream(chunks),
        )
        .await;
    assert_eq!(a.status, 413, "{}", a.body);
    let read = pulled.load(std::sync::atomic::Ordering::SeqCst);
    assert!(read <= 256 << 10, "read {read} bytes of a refused body");

    // The plugin asks for less: 2,000 bytes.
    let lower = variant(&crate::versioned(&probe, "1.1.0"), |t| {
        t.replacen("[limits]\n", "[limits]\nmax_body_bytes = 2000\n", 1)
    });
    s.k.registry
        .upgrade(&crate::system(), &lower.encode())
        .await
        .unwrap();
    let a = s
        .post("/api/v1/plugins/probe/notes/b?site=CITY", small)
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = s
        .post(
            "/api/v1/plugins/probe/notes/b?site=CITY",
            json!({ "body": "x".repeat(3000) }),
        )
        .await;
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(
        a.body["detail"].as_str().unwrap().contains("2000 bytes"),
        "{}",
        a.body
    );
    let notes = s.get("/api/v1/plugins/probe/notes/b?site=CITY").await;
    assert_eq!(notes.body["count"], 2, "refused bodies wrote nothing");
    s.k.cleanup().await;
}

/// A failed call tells an anonymous caller the kind, plugin, version and a
/// request id, never the plugin's message or wasm backtrace; admins find
/// both in the plugin's log under that request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_keep_plugin_internals_for_admins() {
    let s = Served::new(TestKernel::sqlite().await, Default::default()).await;
    s.deploy(&s.k.package(plugin_dir("probe")).await).await;
    let a = s.get("/api/v1/plugins/probe/panic?site=CITY").await;
    assert_eq!(a.status, 500, "{}", a.body);
    assert_eq!(a.body["kind"], "panic");
    assert_eq!(a.body["plugin"], "probe");
    assert!(a.body.get("backtrace").is_none(), "{}", a.body);
    let text = a.body.to_string();
    assert!(!text.contains("asked to panic"), "{text}");
    assert!(!text.contains("probe::"), "{text}");
    let request_id = a.body["request_id"].as_str().unwrap().to_string();
    let logs = s.k.runtime.observatory().recent_logs("probe", 100);
    let line = logs
        .iter()
        .find(|l| l.request_id == request_id && l.level == "error")
        .expect("the failure is in the plugin's log");
    assert!(line.message.contains("asked to panic"), "{}", line.message);
    assert!(line.message.contains("wasm backtrace"), "{}", line.message);
    s.k.cleanup().await;
}

/// A plugin limited to one call at a time: a second call waits in its queue,
/// then is refused as busy (503, Retry-After); another plugin is served at
/// once meanwhile; once the first call ends, the plugin serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_over_its_share_waits_then_is_refused_alone() {
    let limits = RuntimeLimits {
        queue_wait: Duration::from_millis(100),
        ..Default::default()
    };
    let s = Served::new(TestKernel::sqlite_with(limits).await, Default::default()).await;
    let probe = s.k.package(plugin_dir("probe")).await;
    let one = variant(&probe, |t| {
        t.replacen("[limits]\n", "[limits]\nmax_concurrent_calls = 1\n", 1)
    });
    s.deploy(&one).await;
    s.deploy(&s.k.package(plugin_dir("other")).await).await;
    let s = std::sync::Arc::new(s);
    let spinning = tokio::spawn({
        let s = s.clone();
        async move { s.get("/api/v1/plugins/probe/loop?site=CITY").await.status }
    });
    crate::logged(&s.k, "probe", "looping", 1).await;
    let a = s.get("/api/v1/plugins/probe/ok?site=CITY").await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.body["kind"], "busy", "{}", a.body);
    assert_eq!(a.headers["retry-after"], "1");
    let a = s.get("/api/v1/plugins/other/receipts?site=CITY").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        spinning.await.unwrap(),
        503,
        "the loop ends at its deadline"
    );
    let a = s.get("/api/v1/plugins/probe/ok?site=CITY").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let metrics = s.k.runtime.observatory().render();
    assert!(
        metrics.contains(
            "lifelong_plugin_errors_total{plugin=\"probe\",version=\"1.0.0\",kind=\"busy\"} 1"
        ),
        "{metrics}"
    );
    Served::cleanup(s).await;
}

impl Served {
    async fn cleanup(s: std::sync::Arc<Served>) {
        s.k.cleanup().await;
    }
}

/// A call that loses a write race is re-run on a fresh instance and
/// succeeds; one that loses every attempt answers 503 and leaves nothing
/// written (no row, no event).
async fn conflicts_are_retried(k: TestKernel) {
    let s = Served::new(k, Default::default()).await;
    s.deploy(&s.k.package(plugin_dir("probe")).await).await;
    s.k.runtime.inject_conflicts("probe", 2);
    let a = s
        .post(
            "/api/v1/plugins/probe/notes/r?site=CITY",
            json!({ "body": "r" }),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = s.get("/api/v1/plugins/probe/notes/r?site=CITY").await;
    assert_eq!(a.body["count"], 1, "written once, not once per attempt");
    let metrics = s.k.runtime.observatory().render();
    assert!(
        metrics.contains("lifelong_plugin_retries_total{plugin=\"probe\",version=\"1.0.0\"} 2"),
        "{metrics}"
    );

    s.k.runtime.inject_conflicts("probe", u32::MAX);
    let a = s
        .post(
            "/api/v1/plugins/probe/notes/f?site=CITY",
            json!({ "body": "f" }),
        )
        .await;
    s.k.runtime.inject_conflicts("probe", 0);
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.body["kind"], "conflict", "{}", a.body);
    assert_eq!(a.headers["retry-after"], "1");
    let a = s.get("/api/v1/plugins/probe/notes/f?site=CITY").await;
    assert_eq!(a.body["count"], 0, "nothing written");
    let (events,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM plugin_outbox WHERE name = 'probe.touched'")
            .fetch_one(s.k.kernel.db.reader())
            .await
            .unwrap();
    assert_eq!(events, 1, "only the committed call's event");
    s.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_conflicts_are_retried_then_refused_sqlite() {
    conflicts_are_retried(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_conflicts_are_retried_then_refused_postgres() {
    conflicts_are_retried(TestKernel::postgres().await).await;
}

/// Optional columns hold NULL and values in turn, on every pooled
/// connection, and a handled duplicate key leaves the call's transaction
/// usable: a NULL bound with another parameter type than the value the
/// same statement binds next made PostgreSQL read an integer's bytes as text
/// ("invalid byte sequence for encoding UTF8: 0x00").
async fn nulls_and_values_in_turn(k: TestKernel) {
    let s = Served::new(k, Default::default()).await;
    s.deploy(&s.k.package(plugin_dir("probe")).await).await;
    for n in 0..40 {
        let a = s
            .post(
                &format!("/api/v1/plugins/probe/marks/{n}?site=CITY"),
                json!({}),
            )
            .await;
        assert_eq!(a.status, 201, "mark {n}: {}", a.body);
        let expected = if n % 2 == 0 { Value::Null } else { json!(n) };
        assert_eq!(a.body["score"], expected, "mark {n}");
    }
    // A duplicate key answered as a conflict leaves the call's transaction
    // usable, as on SQLite: the writes before and after it commit.
    let a = s
        .post(
            "/api/v1/plugins/probe/conflict-then-write/1007?site=CITY",
            json!({}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["duplicate_status"], 409, "{}", a.body);
    let (kept,): (i64,) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM plg_probe__receipts WHERE event_id = -1007) \
              + (SELECT COUNT(*) FROM plg_probe__marks WHERE score = 1007)",
    )
    .fetch_one(s.k.kernel.db.reader())
    .await
    .unwrap();
    assert_eq!(
        kept, 2,
        "the receipt and the mark written around the conflict"
    );
    // Text never holds NUL, on either backend (PostgreSQL cannot store it).
    let a = s
        .post(
            "/api/v1/plugins/probe/notes/nul?site=CITY",
            json!({ "body": "a\0b" }),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.to_string().contains("NUL"), "{}", a.body);
    s.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_columns_take_nulls_and_values_in_turn_sqlite() {
    nulls_and_values_in_turn(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_columns_take_nulls_and_values_in_turn_postgres() {
    nulls_and_values_in_turn(TestKernel::postgres().await).await;
}
