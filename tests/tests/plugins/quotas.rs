//! Quotas as a deployment serves them (the kernel's router in process, the
//! probe installed, granted and enabled at the city): each quota fires
//! alone, as a 429 problem of kind `quota` naming it, with nothing written,
//! and the next call after the window succeeds (the test moves the quota
//! clock a minute on instead of waiting); usage shows in `/metrics` and the
//! registry entry; a publisher's override raises a quota and a manifest
//! lowers one. One city per backend.

use crate::{plugin_dir, site_tree, variant};
use axum::body::Body;
use http_body_util::BodyExt;
use kernel::plugins::quota::QuotaLimits;
use kernel::plugins::RuntimeLimits;
use lifelong_harness::TestKernel;
use serde_json::{json, Value};
use std::time::Duration;
use tower::ServiceExt;

/// Small enough to reach in a test. A note the probe writes is 31 bytes
/// (id 8, topic "quota" 5, body 10, at 8).
fn limits() -> QuotaLimits {
    QuotaLimits {
        rows: 12,
        bytes: 2_000,
        site_rows: 8,
        site_bytes: 1_000,
        calls_per_minute: 40,
        events_per_minute: 5,
        log_lines_per_minute: 5,
        sync_ms: 1_000,
    }
}

struct City {
    k: TestKernel,
    app: axum::Router,
    token: String,
}

struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl City {
    async fn new(k: TestKernel) -> City {
        super::bootstrap_root(&k).await;
        site_tree(
            &k,
            &[
                ("T1", "township", Some("CITY")),
                ("T2", "township", Some("CITY")),
                ("T1-V1", "village", Some("T1")),
                ("T2-V1", "village", Some("T2")),
            ],
        )
        .await;
        let app = super::served_app(&k);
        let mut city = City {
            k,
            app,
            token: String::new(),
        };
        let a = city
            .send(
                "POST",
                "/api/v1/auth/login",
                json!({"login": "root", "password": "pw-12345678"}),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        city.token = a.body["token"].as_str().unwrap().to_string();
        city
    }

    async fn send(&self, method: &str, uri: &str, body: Value) -> Answer {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if !self.token.is_empty() {
            req = req.header("authorization", format!("Bearer {}", self.token));
        }
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
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
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    async fn post(&self, plugin: &str, path: &str, site: &str) -> Answer {
        self.send(
            "POST",
            &format!("/api/v1/plugins/{plugin}{path}?site={site}"),
            json!({}),
        )
        .await
    }

    async fn count(&self, sql: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(sql)
            .fetch_one(self.k.kernel.db.reader())
            .await
            .unwrap();
        n
    }

    async fn notes(&self) -> i64 {
        self.count("SELECT CAST(COUNT(*) AS BIGINT) FROM plg_probe__notes")
            .await
    }

    /// The next rate window (as if a minute had passed).
    fn next_minute(&self) {
        self.k.runtime.quotas().advance(Duration::from_secs(60));
    }
}

/// A 429 problem of kind `quota` naming `quota`.
fn refused(a: &Answer, quota: &str) {
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(
        a.headers["content-type"], "application/problem+json",
        "{}",
        a.body
    );
    assert_eq!(a.body["kind"], "quota", "{}", a.body);
    assert_eq!(
        a.body["type"], "urn:lifelong:problem:plugin-quota",
        "{}",
        a.body
    );
    assert_eq!(a.body["quota"], quota, "{}", a.body);
    let detail = a.body["detail"].as_str().unwrap();
    assert!(detail.contains(quota), "{detail}");
    assert!(detail.contains("nothing was written"), "{detail}");
}

async fn quotas_fire_alone(k: TestKernel) {
    let c = City::new(k).await;
    let pkg = c.k.package(plugin_dir("probe")).await;
    c.k.install(&pkg).await;
    c.k.enable("probe", "CITY").await;

    // site_rows: 8 notes written at a village, then one more is refused.
    let a = c.post("probe", "/quota/notes/8", "T1-V1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    let last = a.body["last"].as_i64().unwrap();
    refused(
        &c.post("probe", "/quota/notes/1", "T1-V1").await,
        "site_rows",
    );
    assert_eq!(c.notes().await, 8, "nothing written");
    // The same call several times is refused the same way; deleting is
    // always allowed, and frees room.
    refused(
        &c.post("probe", "/quota/notes/3", "T1-V1").await,
        "site_rows",
    );
    let a = c
        .post("probe", &format!("/quota/delete/{last}"), "T1-V1")
        .await;
    assert_eq!((a.status, &a.body["deleted"]), (200, &json!(true)));
    let a = c.post("probe", "/quota/notes/1", "T1-V1").await;
    assert_eq!(a.status, 201, "{}", a.body);

    // rows: 4 more at the other township's village make 12, the plugin's
    // quota; the 13th is refused there (its site holds only 4), and at the
    // city, where per-site quotas do not apply.
    let a = c.post("probe", "/quota/notes/4", "T2-V1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    refused(&c.post("probe", "/quota/notes/1", "T2-V1").await, "rows");
    refused(&c.post("probe", "/quota/notes/1", "CITY").await, "rows");
    assert_eq!(c.notes().await, 12, "nothing written");

    // bytes: 12 notes are 372 bytes; growing one body by 1,690 bytes at the
    // city passes the plugin's 2,000. site_bytes: by 1,090 at a township
    // (the township's own 1,000) — and the plugin's total stays below 2,000.
    let body_len = || async {
        c.count(&format!(
            "SELECT CAST(LENGTH(body) AS BIGINT) FROM plg_probe__notes WHERE id = {}",
            last - 1
        ))
        .await
    };
    refused(
        &c.post("probe", &format!("/quota/grow/{}/1700", last - 1), "CITY")
            .await,
        "bytes",
    );
    assert_eq!(body_len().await, 10, "nothing written");
    refused(
        &c.post("probe", &format!("/quota/grow/{}/1100", last - 1), "T2")
            .await,
        "site_bytes",
    );
    assert_eq!(body_len().await, 10, "nothing written");
    let a = c
        .post("probe", &format!("/quota/grow/{}/500", last - 1), "T2")
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(body_len().await, 500);

    // events_per_minute: 5 published, the 6th refused with nothing
    // published; the next minute it goes through.
    c.next_minute();
    let events = || {
        c.count("SELECT CAST(COUNT(*) AS BIGINT) FROM plugin_outbox WHERE name = 'probe.touched'")
    };
    let a = c.post("probe", "/quota/events/5", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(events().await, 5);
    let r = c.post("probe", "/quota/events/1", "T1").await;
    refused(&r, "events_per_minute");
    assert_eq!(r.headers["retry-after"], "60");
    assert_eq!(events().await, 5, "nothing published");
    c.next_minute();
    let a = c.post("probe", "/quota/events/1", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(events().await, 6);

    // log_lines_per_minute: 5 lines, then a call logging one more fails
    // and its line is not kept; the next minute it is.
    let lines = || {
        c.k.runtime
            .observatory()
            .recent_logs("probe", 1000)
            .iter()
            .filter(|l| l.message.starts_with("quota line"))
            .count()
    };
    let a = c.post("probe", "/quota/logs/5", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    refused(
        &c.post("probe", "/quota/logs/1", "T1").await,
        "log_lines_per_minute",
    );
    assert_eq!(lines(), 5, "the line past the quota is not kept");
    c.next_minute();
    let a = c.post("probe", "/quota/logs/1", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(lines(), 6);

    // calls_per_minute: 40 calls at a village this minute, the 41st is
    // refused there but not at another site; the next minute it is served.
    c.next_minute();
    let ok = |site: &'static str| {
        let c = &c;
        async move {
            c.send(
                "GET",
                &format!("/api/v1/plugins/probe/ok?site={site}"),
                Value::Null,
            )
            .await
        }
    };
    for _ in 0..40 {
        let a = ok("T2-V1").await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let r = ok("T2-V1").await;
    refused(&r, "calls_per_minute");
    assert_eq!(r.headers["retry-after"], "60");
    assert_eq!(ok("T1-V1").await.status, 200, "another site's calls");
    c.next_minute();
    assert_eq!(ok("T2-V1").await.status, 200);

    // Usage: the counters match the tables, and show in /metrics and in
    // the registry entry.
    let total = c.notes().await;
    assert_eq!(total, 12);
    let (rows, bytes): (i64, i64) = sqlx::query_as(
        "SELECT row_count, byte_count FROM plugin_usage WHERE plugin = 'probe' AND site = '*'",
    )
    .fetch_one(c.k.kernel.db.reader())
    .await
    .unwrap();
    assert_eq!((rows, bytes), (12, 11 * 31 + 8 + 5 + 500 + 8));
    let mut conn = c.k.kernel.db.reader().acquire().await.unwrap();
    let measured =
        c.k.registry
            .route_any("probe")
            .unwrap()
            .tables
            .measure(&mut conn)
            .await
            .unwrap();
    drop(conn);
    assert_eq!(
        measured,
        (rows, bytes),
        "exact, and rebuildable from the tables"
    );
    let m = c.send("GET", "/metrics", Value::Null).await;
    let text = m.body.as_str().unwrap().to_string();
    for line in [
        "lifelong_plugin_quota{plugin=\"probe\",quota=\"rows\"} 12",
        "lifelong_plugin_quota_used{plugin=\"probe\",quota=\"rows\"} 12",
        "lifelong_plugin_quota_used_ratio{plugin=\"probe\",quota=\"rows\"} 1",
        "lifelong_plugin_site_stored_rows{plugin=\"probe\",site=\"T1-V1\"} 8",
        "lifelong_plugin_site_stored_rows{plugin=\"probe\",site=\"T2-V1\"} 4",
        "lifelong_plugin_quota_refusals_total{plugin=\"probe\",quota=\"calls_per_minute\"} 1",
        "lifelong_plugin_quota_refusals_total{plugin=\"probe\",quota=\"site_rows\"} 2",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    assert!(
        text.contains(
            "lifelong_plugin_errors_total{plugin=\"probe\",version=\"1.0.0\",kind=\"quota\"} 9"
        ),
        "{text}"
    );
    let e = c
        .send("GET", "/api/v1/plugin-registry/probe", Value::Null)
        .await;
    assert_eq!(e.status, 200, "{}", e.body);
    let q = &e.body["quota"];
    assert_eq!(q["quotas"]["rows"], 12, "{q}");
    assert_eq!(q["stored"], json!({"rows": 12, "bytes": bytes}), "{q}");
    assert_eq!(q["top_sites"][0]["site"], "T1-V1", "{q}");
    assert_eq!(q["share"]["rows"], 1.0, "{q}");
    assert_eq!(q["this_minute"]["calls"][0]["site"], "T2-V1", "{q}");
    assert_eq!(q["publisher_override"], Value::Null, "{q}");

    // A publisher's override raises a quota (city admins; audited; bad
    // values refused with nothing changed).
    let bad = c
        .send(
            "PUT",
            "/api/v1/plugin-publishers/lifelong/quotas",
            json!({"rows": 0}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(
        bad.headers["content-type"], "application/problem+json",
        "{}",
        bad.body
    );
    let bad = c
        .send(
            "PUT",
            "/api/v1/plugin-publishers/lifelong/quotas",
            json!({"rowz": 5}),
        )
        .await;
    assert!(bad.status == 400 || bad.status == 422, "{}", bad.body);
    let set = c
        .send(
            "PUT",
            "/api/v1/plugin-publishers/lifelong/quotas",
            json!({"rows": 100}),
        )
        .await;
    assert_eq!(set.status, 204, "{}", set.body);
    let a = c.post("probe", "/quota/notes/1", "T2-V1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(c.notes().await, 13);
    let shown = c
        .send(
            "GET",
            "/api/v1/plugin-publishers/lifelong/quotas",
            Value::Null,
        )
        .await;
    assert_eq!(
        shown.body["override"],
        json!({"rows": 100}),
        "{}",
        shown.body
    );
    assert_eq!(shown.body["defaults"]["rows"], 12, "{}", shown.body);
    let audited = c
        .count("SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action = 'plugin.publisher.quotas'")
        .await;
    assert_eq!(audited, 1);
    let e = c
        .send("GET", "/api/v1/plugin-registry/probe", Value::Null)
        .await;
    assert_eq!(e.body["quota"]["quotas"]["rows"], 100, "{}", e.body);
    assert_eq!(
        e.body["quota"]["publisher_override"],
        json!({"rows": 100}),
        "{}",
        e.body
    );

    // Another node's writes (here: its counter, moved as if it had stored
    // 87 rows) are not in this node's last known usage, which a write
    // checks first; the commit-time check reads the counters and refuses.
    let mut tx = c.k.kernel.db.begin().await.unwrap();
    sqlx::query(
        "UPDATE plugin_usage SET row_count = row_count + 87 WHERE plugin = 'probe' AND site = '*'",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    refused(&c.post("probe", "/quota/notes/1", "T2-V1").await, "rows");
    assert_eq!(c.notes().await, 13, "nothing written");
    let mut tx = c.k.kernel.db.begin().await.unwrap();
    sqlx::query(
        "UPDATE plugin_usage SET row_count = row_count - 87 WHERE plugin = 'probe' AND site = '*'",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let a = c.post("probe", "/quota/notes/1", "T2-V1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(c.notes().await, 14);

    // A manifest lowers a quota, and cannot raise one: the same plugin as
    // `lowered` asks for 2 events a minute and for more rows than the
    // publisher's 100.
    let lowered = variant(&pkg, |t| {
        t.replacen("id = \"probe\"", "id = \"lowered\"", 1)
            .replacen(
                "[limits]",
                "[limits]\nevents_per_minute = 2\nrows = 1000000000",
                1,
            )
    });
    c.k.install(&lowered).await;
    c.k.enable("lowered", "CITY").await;
    let a = c.post("lowered", "/quota/events/2", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    refused(
        &c.post("lowered", "/quota/events/1", "T1").await,
        "events_per_minute",
    );
    let e = c
        .send("GET", "/api/v1/plugin-registry/lowered", Value::Null)
        .await;
    assert_eq!(
        e.body["quota"]["quotas"]["events_per_minute"], 2,
        "{}",
        e.body
    );
    assert_eq!(e.body["quota"]["quotas"]["rows"], 100, "{}", e.body);
    // A rollback restores the tables from the upgrade's snapshot, and the
    // plugin's stored usage is recounted with them.
    let a = c.post("lowered", "/quota/notes/2", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    c.k.registry
        .upgrade(
            &crate::system(),
            &crate::versioned(&lowered, "1.0.1").encode(),
        )
        .await
        .unwrap();
    let a = c.post("lowered", "/quota/notes/3", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    let usage = || async {
        let (rows,): (i64,) = sqlx::query_as(
            "SELECT row_count FROM plugin_usage WHERE plugin = 'lowered' AND site = '*'",
        )
        .fetch_one(c.k.kernel.db.reader())
        .await
        .unwrap();
        rows
    };
    assert_eq!(usage().await, 5);
    c.k.registry
        .rollback(&crate::system(), "lowered")
        .await
        .unwrap();
    assert_eq!(usage().await, 2, "recounted from the restored tables");
    // A quota of zero is refused at install.
    let zero = variant(&pkg, |t| {
        t.replacen("id = \"probe\"", "id = \"zero\"", 1).replacen(
            "[limits]",
            "[limits]\nrows = 0",
            1,
        )
    });
    let err =
        c.k.registry
            .install(&crate::system(), &zero.encode())
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("limits.rows"), "{err}");
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_quota_fires_alone_with_nothing_written_sqlite() {
    let k = TestKernel::sqlite_with(RuntimeLimits {
        quotas: limits(),
        ..Default::default()
    })
    .await;
    quotas_fire_alone(k).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_quota_fires_alone_with_nothing_written_postgres() {
    let k = TestKernel::postgres_with(RuntimeLimits {
        quotas: limits(),
        ..Default::default()
    })
    .await;
    quotas_fire_alone(k).await;
}

/// An event delivery past the subscriber's calls per minute at the
/// event's site fails as `quota` and is put off to the next window without
/// counting an attempt: refused many more times than the attempt limit, it
/// is never parked, and the next window delivers it.
async fn deliveries_past_a_quota_retry(k: TestKernel) {
    let c = City::new(k).await;
    c.k.install(&c.k.package(plugin_dir("probe")).await).await;
    c.k.enable("probe", "CITY").await;
    // The publishing call and 39 requests fill the minute's 40 calls at
    // T1, so the delivery (at the event's site, T1) finds no room.
    let a = c.post("probe", "/quota/events/1", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    for _ in 0..39 {
        let a = c
            .send("GET", "/api/v1/plugins/probe/ok?site=T1", Value::Null)
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    const MAX_ATTEMPTS: i64 = 3;
    let deliver = || async {
        kernel::plugins::events::fan_out(&c.k.kernel, |e| c.k.runtime.subscribers_of(e))
            .await
            .unwrap();
        kernel::plugins::events::deliver_due(
            &c.k.kernel,
            |p, site| c.k.registry.route_event(p, site),
            MAX_ATTEMPTS,
        )
        .await
        .unwrap()
    };
    // Due again at once (instead of waiting for the window).
    let due_now = || async {
        let mut tx = c.k.kernel.db.begin().await.unwrap();
        sqlx::query("UPDATE plugin_deliveries SET next_attempt_at = 0")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    };
    let receipts = || c.count("SELECT CAST(COUNT(*) AS BIGINT) FROM plg_probe__receipts");
    for _ in 0..4 * MAX_ATTEMPTS {
        let pass = deliver().await;
        assert_eq!(
            (pass.delivered, pass.deferred, pass.failed, pass.parked),
            (0, 1, 0, 0),
            "{pass:?}"
        );
        let (attempts, error, dead, next): (i64, String, Option<i64>, i64) = sqlx::query_as(
            "SELECT attempts, last_error, dead_at, next_attempt_at FROM plugin_deliveries WHERE subscriber = 'probe'",
        )
        .fetch_one(c.k.kernel.db.reader())
        .await
        .unwrap();
        assert_eq!(attempts, 0, "a rate quota's refusal counts no attempt");
        assert_eq!(dead, None, "never parked");
        assert!(
            next > kernel::storage::now_micros(),
            "put off to the next window"
        );
        assert!(
            error.contains("(quota)") && error.contains("calls_per_minute"),
            "{error}"
        );
        assert_eq!(receipts().await, 0, "nothing written");
        due_now().await;
    }
    let parked = kernel::plugins::events::parked(&c.k.kernel, 10)
        .await
        .unwrap();
    assert!(parked.is_empty(), "{parked:?}");
    c.next_minute();
    let pass = deliver().await;
    assert_eq!((pass.delivered, pass.failed), (1, 0), "{pass:?}");
    assert_eq!(receipts().await, 1);
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_past_a_quota_are_retried_sqlite() {
    let k = TestKernel::sqlite_with(RuntimeLimits {
        quotas: limits(),
        ..Default::default()
    })
    .await;
    deliveries_past_a_quota_retry(k).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_past_a_quota_are_retried_postgres() {
    let k = TestKernel::postgres_with(RuntimeLimits {
        quotas: limits(),
        ..Default::default()
    })
    .await;
    deliveries_past_a_quota_retry(k).await;
}

/// A plugin that held rows before its counters existed (migration 0008
/// started none) is recounted once at kernel start: its usage equals what
/// its tables hold, a second run changes nothing, and two nodes starting
/// at once recount it once between them.
async fn usage_backfilled_at_start(k: TestKernel) {
    let c = City::new(k).await;
    c.k.install(&c.k.package(plugin_dir("probe")).await).await;
    c.k.enable("probe", "CITY").await;
    for (n, site) in [(3, "T1"), (2, "T2-V1")] {
        let a = c.post("probe", &format!("/quota/notes/{n}"), site).await;
        assert_eq!(a.status, 201, "{}", a.body);
    }
    let usage = || async {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT row_count, byte_count FROM plugin_usage WHERE plugin = 'probe' AND site = '*'",
        )
        .fetch_optional(c.k.kernel.db.reader())
        .await
        .unwrap()
    };
    let counted = usage().await.unwrap();
    assert_eq!(counted.0, 5);
    let mut conn = c.k.kernel.db.reader().acquire().await.unwrap();
    let measured =
        c.k.registry
            .route_any("probe")
            .unwrap()
            .tables
            .measure(&mut conn)
            .await
            .unwrap();
    drop(conn);
    assert_eq!(measured, counted);
    // As a database migrated to 0008 with the plugin's data already there.
    let forget = || async {
        let mut tx = c.k.kernel.db.begin().await.unwrap();
        sqlx::query("DELETE FROM plugin_usage WHERE plugin = 'probe'")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    };
    forget().await;
    assert_eq!(usage().await, None);
    let done = kernel::plugins::quota::backfill(&c.k.kernel).await.unwrap();
    assert_eq!(done, vec!["probe".to_string()]);
    assert_eq!(usage().await, Some(measured), "recounted from the tables");
    let again = kernel::plugins::quota::backfill(&c.k.kernel).await.unwrap();
    assert!(again.is_empty(), "once: {again:?}");
    assert_eq!(usage().await, Some(measured));
    // Two nodes starting at once: one recounts, the other finds it done.
    forget().await;
    let (a, b) = tokio::join!(
        kernel::plugins::quota::backfill(&c.k.kernel),
        kernel::plugins::quota::backfill(&c.k.kernel)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 1, "{a:?} {b:?}");
    assert_eq!(usage().await, Some(measured));
    // And the counters go on from there: the quota (12 rows) holds.
    let a = c.post("probe", "/quota/notes/7", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    refused(&c.post("probe", "/quota/notes/1", "T2").await, "rows");
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_backfilled_at_start_sqlite() {
    let k = TestKernel::sqlite_with(RuntimeLimits {
        quotas: limits(),
        ..Default::default()
    })
    .await;
    usage_backfilled_at_start(k).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_backfilled_at_start_postgres() {
    let k = TestKernel::postgres_with(RuntimeLimits {
        quotas: limits(),
        ..Default::default()
    })
    .await;
    usage_backfilled_at_start(k).await;
}

/// Rows count at the site of the call that wrote them; a call at another
/// site deleting them does not take that site's count below 0 (which would
/// let it write past its quota): it stays at 0, and the site's quota holds.
async fn site_counts_never_negative(k: TestKernel) {
    let c = City::new(k).await;
    c.k.install(&c.k.package(plugin_dir("probe")).await).await;
    c.k.enable("probe", "CITY").await;
    let a = c.post("probe", "/quota/notes/3", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    let last = a.body["last"].as_i64().unwrap();
    let site = |s: &'static str| {
        let c = &c;
        async move {
            sqlx::query_as::<_, (i64, i64)>(
                "SELECT row_count, byte_count FROM plugin_usage WHERE plugin = 'probe' AND site = $1",
            )
            .bind(s)
            .fetch_optional(c.k.kernel.db.reader())
            .await
            .unwrap()
        }
    };
    assert_eq!(site("T1").await, Some((3, 93)));
    for id in last - 2..=last {
        let a = c.post("probe", &format!("/quota/delete/{id}"), "T2").await;
        assert_eq!((a.status, &a.body["deleted"]), (200, &json!(true)));
    }
    assert_eq!(site("T2").await, Some((0, 0)), "clamped at 0, not -3");
    assert_eq!(site("T1").await, Some((3, 93)), "attributed to the writer");
    assert_eq!(site("*").await, Some((0, 0)), "the total is exact");
    // T2 holds its 8 rows, not 11.
    let a = c.post("probe", "/quota/notes/8", "T2").await;
    assert_eq!(a.status, 201, "{}", a.body);
    refused(&c.post("probe", "/quota/notes/1", "T2").await, "site_rows");
    assert_eq!(c.notes().await, 8);
    // A count left below 0 by an earlier kernel is set to 0 at start.
    let mut tx = c.k.kernel.db.begin().await.unwrap();
    sqlx::query("UPDATE plugin_usage SET row_count = -3, byte_count = -93 WHERE plugin = 'probe' AND site = 'T2'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    kernel::plugins::quota::backfill(&c.k.kernel).await.unwrap();
    assert_eq!(site("T2").await, Some((0, 0)));
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_counts_never_go_below_zero_sqlite() {
    let k = TestKernel::sqlite_with(RuntimeLimits {
        quotas: limits(),
        ..Default::default()
    })
    .await;
    site_counts_never_negative(k).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_counts_never_go_below_zero_postgres() {
    let k = TestKernel::postgres_with(RuntimeLimits {
        quotas: limits(),
        ..Default::default()
    })
    .await;
    site_counts_never_negative(k).await;
}

/// A call re-run after a lost write race counts its events and log lines
/// once: the rolled-back attempts' counts are given back.
async fn retried_calls_count_once(k: TestKernel) {
    let c = City::new(k).await;
    c.k.install(&c.k.package(plugin_dir("probe")).await).await;
    c.k.enable("probe", "CITY").await;
    let a = c.post("probe", "/quota/events/0", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    // Two lost races, then the commit: three attempts of 5 events each,
    // within the 5 a minute because the first two are given back.
    c.k.runtime.inject_conflicts("probe", 2);
    let a = c.post("probe", "/quota/events/5", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    refused(
        &c.post("probe", "/quota/events/1", "T1").await,
        "events_per_minute",
    );
    c.k.runtime.inject_conflicts("probe", 2);
    let a = c.post("probe", "/quota/logs/5", "T1").await;
    assert_eq!(a.status, 201, "{}", a.body);
    refused(
        &c.post("probe", "/quota/logs/1", "T1").await,
        "log_lines_per_minute",
    );
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM plugin_outbox WHERE name LIKE '%touched'",
    )
    .fetch_one(c.k.kernel.db.reader())
    .await
    .unwrap();
    assert_eq!(n, 5, "the committed attempt's events only");
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_calls_count_their_rates_once_sqlite() {
    let k = TestKernel::sqlite_with(RuntimeLimits {
        quotas: limits(),
        ..Default::default()
    })
    .await;
    retried_calls_count_once(k).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_calls_count_their_rates_once_postgres() {
    let k = TestKernel::postgres_with(RuntimeLimits {
        quotas: limits(),
        ..Default::default()
    })
    .await;
    retried_calls_count_once(k).await;
}

/// Two nodes on one PostgreSQL (two quota counters, each syncing to the
/// shared rows as `serve` does every second): a rate quota holds across
/// them once they have synced, and each node refuses on the sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_quota_holds_across_nodes_postgres() {
    use kernel::plugins::quota::{QuotaValues, Quotas, Rate};
    let k = TestKernel::postgres().await;
    let limits = QuotaLimits {
        calls_per_minute: 40,
        ..limits()
    };
    let q = limits.effective(None, &QuotaValues::default());
    let (a, b) = (Quotas::new(limits.clone()), Quotas::new(limits));
    for _ in 0..30 {
        a.take("p", "T1", Rate::Calls, &q).unwrap();
    }
    a.sync(&k.kernel).await.unwrap();
    b.sync(&k.kernel).await.unwrap();
    for _ in 0..10 {
        b.take("p", "T1", Rate::Calls, &q).unwrap();
    }
    let e = b.take("p", "T1", Rate::Calls, &q).unwrap_err();
    assert_eq!((e.quota, e.limit), ("calls_per_minute", 40));
    b.take("p", "T2", Rate::Calls, &q).unwrap();
    // Node A learns of B's ten at its next sync.
    b.sync(&k.kernel).await.unwrap();
    a.sync(&k.kernel).await.unwrap();
    let e = a.take("p", "T1", Rate::Calls, &q).unwrap_err();
    assert_eq!(e.quota, "calls_per_minute");
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(SUM(count) AS BIGINT) FROM plugin_rate_windows WHERE plugin = 'p' AND site = 'T1'",
    )
    .fetch_one(k.kernel.db.reader())
    .await
    .unwrap();
    assert_eq!(n, 40, "each call counted once");
    k.cleanup().await;
}
