//! Each limit fails only its own call; a trap leaves nothing behind; tables
//! stay private and queries need an index; seat races; HTTP dispatch; the
//! compiled-artifact cache.

use crate::{plugin_dir, probe, site_tree, TREE};
use kernel::plugins::FailureKind;
use lifelong_harness::TestKernel;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_fails_only_its_own_call() {
    let k = TestKernel::sqlite().await;
    let p = probe(&k).await;
    let anon = k.anonymous();
    for (path, kind) in [
        ("/loop", FailureKind::Deadline),
        ("/bomb", FailureKind::Memory),
        ("/recurse", FailureKind::Stack),
        ("/panic", FailureKind::Panic),
    ] {
        let err = p.get(path, &anon).await.expect_err(path);
        assert_eq!(err.kind, kind, "{path}: {err}");
        assert_eq!(
            (err.plugin.as_str(), err.version.as_str()),
            ("probe", "1.0.0")
        );
        if kind == FailureKind::Panic {
            assert!(
                err.message.starts_with("the probe was asked to panic at "),
                "{}",
                err.message
            );
            assert!(
                !err.backtrace.is_empty(),
                "a panic carries the wasm backtrace"
            );
        }
        // The next call on the same plugin succeeds: nothing leaked.
        let (s, v) = p.get("/ok", &anon).await.unwrap();
        assert_eq!((s, v), (200, json!({ "ok": true })), "after {path}");
    }
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_after_writes_leaves_no_row_and_no_event() {
    let k = TestKernel::sqlite().await;
    let p = probe(&k).await;
    let anon = k.anonymous();
    let err = p.post("/notes/t/then-trap", None, &anon).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::Panic);
    assert_eq!(
        p.get("/notes/t", &anon).await.unwrap(),
        (200, json!({ "count": 0 }))
    );
    let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM plugin_outbox")
        .fetch_one(k.kernel.db.reader())
        .await
        .unwrap();
    assert_eq!(
        events, 0,
        "the published event was rolled back with the call"
    );
    // The same call without the trap commits both.
    let (s, _) = p
        .post("/notes/t", Some(json!({ "body": "kept" })), &anon)
        .await
        .unwrap();
    assert_eq!(s, 201);
    assert_eq!(
        p.get("/notes/t", &anon).await.unwrap(),
        (200, json!({ "count": 1 }))
    );
    let (events,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM plugin_outbox WHERE name = 'probe.touched'")
            .fetch_one(k.kernel.db.reader())
            .await
            .unwrap();
    assert_eq!(events, 1);
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_private_and_queries_need_an_index() {
    let k = TestKernel::sqlite().await;
    let p = probe(&k).await;
    let other = k.load(plugin_dir("other")).await;
    let anon = k.anonymous();
    assert_eq!(other.post("/secrets", None, &anon).await.unwrap().0, 201);
    // Another plugin's table, a kernel table and a stored name are all just unknown names here.
    for table in ["secrets", "persons", "plg_other__secrets", "ledger_entries"] {
        let (s, v) = p.get(&format!("/reach/{table}"), &anon).await.unwrap();
        assert_eq!(s, 404, "{table}: {v}");
        assert_eq!(
            v["detail"],
            format!("plugin probe declares no table \"{table}\"")
        );
    }
    let (s, v) = p.get("/unindexed", &anon).await.unwrap();
    assert_eq!(s, 500);
    assert_eq!(v["type"], "urn:lifelong:problem:missing-index");
    assert_eq!(
        v["detail"],
        "no declared index of notes serves this query; declare an index on (body)"
    );
    let (s, v) = p.get("/inject", &anon).await.unwrap();
    assert_eq!(s, 404, "{v}");
    assert_eq!(
        v["detail"],
        "table notes has no column \"at; DROP TABLE plg_probe__seats\""
    );
    let (s, v) = p.post("/duplicate-columns", None, &anon).await.unwrap();
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["detail"], "column notes.topic is given twice");
    let (s, v) = p
        .post("/seats", Some(json!({ "capacity": 1 })), &anon)
        .await
        .unwrap();
    assert_eq!(s, 201, "the seats table is still there: {v}");
    let (s, v) = p.get("/publish-undeclared", &anon).await.unwrap();
    assert_eq!(s, 403);
    assert_eq!(
        v["detail"],
        "plugin probe does not declare the event \"not-declared\" in publishes"
    );
    let (s, v) = p.get("/write-in-get", &anon).await.unwrap();
    assert_eq!(s, 405);
    assert_eq!(
        v["detail"],
        "insert needs a writing call; GET and HEAD requests are read-only"
    );
    k.cleanup().await;
}

async fn seats_race(k: TestKernel) {
    let p = probe(&k).await;
    let anon = k.anonymous();
    let (s, v) = p
        .post("/seats", Some(json!({ "capacity": 30 })), &anon)
        .await
        .unwrap();
    assert_eq!(s, 201);
    let id = v["id"].as_i64().unwrap();
    let calls = (0..200).map(|_| {
        let p = p.clone();
        let anon = anon.clone();
        tokio::spawn(async move { p.post(&format!("/seats/{id}/take"), None, &anon).await })
    });
    let mut taken = 0;
    let mut full = 0;
    for c in futures_util::future::join_all(calls).await {
        match c.unwrap().unwrap().0 {
            200 => taken += 1,
            409 => full += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!((taken, full), (30, 170));
    assert_eq!(
        p.get(&format!("/seats/{id}"), &anon).await.unwrap(),
        (200, json!({ "taken": 30, "capacity": 30 }))
    );
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_callers_take_exactly_thirty_seats_sqlite() {
    seats_race(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_callers_take_exactly_thirty_seats_postgres() {
    seats_race(TestKernel::postgres().await).await;
}

/// The HTTP surface: `/api/v1/plugins/{plugin}/…` reaches the handler, and a
/// failed call is problem+json naming plugin, version and kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_dispatch_reports_failures_as_problems() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let k = TestKernel::sqlite().await;
    site_tree(&k, TREE).await;
    k.install(&k.package(plugin_dir("probe")).await).await;
    k.enable("probe", "CITY").await;
    let limits = kernel::config::Limits::default();
    let state =
        kernel::http::AppState::new(k.kernel.clone(), &limits).with_registry(k.registry.clone());
    let app = kernel::http::app(state, &limits);
    let call = |method: &str, uri: &str| {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let app = app.clone();
        async move {
            let res = app.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let ct = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                ct,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or(json!(null)),
            )
        }
    };
    let (s, _, v) = call("GET", "/api/v1/plugins/probe/ok").await;
    assert_eq!((s, v), (200, json!({ "ok": true })));
    let (s, ct, v) = call("GET", "/api/v1/plugins/probe/loop").await;
    assert_eq!(s, 503);
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    assert_eq!(v["type"], "urn:lifelong:problem:plugin-deadline");
    assert_eq!(
        (
            v["plugin"].as_str(),
            v["version"].as_str(),
            v["kind"].as_str()
        ),
        (Some("probe"), Some("1.0.0"), Some("deadline"))
    );
    let (s, _, v) = call("GET", "/api/v1/plugins/probe/panic").await;
    assert_eq!(s, 500);
    assert_eq!(v["kind"], "panic");
    // The message and the wasm backtrace are for admins, in the plugin's log.
    assert!(!v.to_string().contains("asked to panic"), "{v}");
    assert!(v.get("backtrace").is_none(), "{v}");
    let logged = k.runtime.observatory().recent_logs("probe", 100);
    assert!(
        logged
            .iter()
            .any(|l| l.request_id == v["request_id"].as_str().unwrap()
                && l.message.contains("the probe was asked to panic")
                && l.message.contains("wasm backtrace")),
        "{logged:?}"
    );
    let (s, _, v) = call("GET", "/api/v1/plugins/probe/ok").await;
    assert_eq!(
        (s, v),
        (200, json!({ "ok": true })),
        "the kernel goes on after failures"
    );
    let (s, _, v) = call("GET", "/api/v1/plugins/nobody/ok").await;
    assert_eq!(s, 404);
    assert_eq!(v["detail"], "no plugin \"nobody\" is installed");
    let (s, _, v) = call("GET", "/api/v1/plugins/probe/ok?site=NOWHERE").await;
    assert_eq!(s, 404);
    assert_eq!(v["detail"], "no site has code \"NOWHERE\"");
    let (s, _, v) = call("GET", "/api/v1/plugins/probe/ok").await;
    assert_eq!(s, 200, "{v}");
    k.cleanup().await;
}

/// A component is compiled once: loading it again (as after a restart)
/// reads the artifact cached on disk under its content hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk() {
    let k = TestKernel::sqlite().await;
    let cached = || {
        std::fs::read_dir(k.cache_dir().unwrap())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(cached(), 0);
    let first = probe(&k).await;
    assert_eq!(cached(), 1);
    let again = probe(&k).await;
    assert_eq!(cached(), 1, "the second load used the cached artifact");
    for p in [&first, &again] {
        assert_eq!(
            p.get("/ok", &k.anonymous()).await.unwrap(),
            (200, json!({ "ok": true }))
        );
    }
    k.cleanup().await;
}

/// Guest code spinning until its deadline does not hold a worker thread:
/// with more looping calls in flight than the test runtime has workers, a
/// trivial call still completes before any of the loops is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_guests_do_not_starve_other_calls() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let k = TestKernel::sqlite().await;
    let p = probe(&k).await;
    let anon = k.anonymous();
    let stopped = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (p, anon, stopped) = (p.clone(), anon.clone(), stopped.clone());
            tokio::spawn(async move {
                let e = p.get("/loop", &anon).await.unwrap_err();
                stopped.fetch_add(1, Ordering::SeqCst);
                e.kind
            })
        })
        .collect();
    crate::logged(&k, "probe", "looping", 4).await;
    let (s, v) = p.get("/ok", &anon).await.unwrap();
    assert_eq!((s, v), (200, json!({ "ok": true })));
    assert_eq!(
        stopped.load(Ordering::SeqCst),
        0,
        "the trivial call did not wait for the loops' deadlines"
    );
    for l in loops {
        assert_eq!(l.await.unwrap(), FailureKind::Deadline);
    }
    k.cleanup().await;
}
