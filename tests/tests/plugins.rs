//! The plugin runtime against plugins that misbehave: every limit fails
//! only its own call, a trap leaves nothing behind, tables stay private and
//! queries need an index. Seat-taking races run on both backends.

use kernel::plugins::FailureKind;
use lifelong_harness::{TestKernel, TestPlugin};
use serde_json::json;
use std::path::PathBuf;

fn plugin_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("plugins")
        .join(name)
}

async fn probe(k: &TestKernel) -> TestPlugin {
    k.load(plugin_dir("probe")).await
}

/// A city, two townships and a village in the first.
const TREE: &[(&str, &str, Option<&str>)] = &[
    ("CITY", "city", None),
    ("T1", "township", Some("CITY")),
    ("T2", "township", Some("CITY")),
    ("T1-V1", "village", Some("T1")),
];

/// Create sites (code, kind, parent code) in order.
async fn site_tree(k: &TestKernel, sites: &[(&str, &str, Option<&str>)]) {
    for (code, kind, parent) in sites {
        kernel::sites::create(
            &k.kernel.db,
            &kernel::authz::Actor::System("test"),
            kernel::sites::NewSite {
                code: code.to_string(),
                name_zh: code.to_string(),
                kind: kind.to_string(),
                parent_code: parent.map(Into::into),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
}

/// Register a person born on `born` (serial `n` keeps ID numbers apart) at `home`.
async fn person(
    k: &TestKernel,
    n: u32,
    born: (i32, u32, u32),
    sex: kernel::idnumber::Sex,
    home: &str,
) -> (i64, String) {
    let id_number = kernel::idnumber::synthesize(
        350602,
        chrono::NaiveDate::from_ymd_opt(born.0, born.1, born.2).unwrap(),
        n,
        sex,
    );
    let p = kernel::identity::create(
        &k.kernel,
        &kernel::authz::Actor::System("test"),
        kernel::identity::NewPerson {
            name: format!("学员{n}"),
            id_number: id_number.clone(),
            home_site: home.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (p.id, id_number)
}

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
    let p = probe(&k).await;
    let limits = kernel::config::Limits::default();
    let state = kernel::http::AppState::new(k.kernel.clone(), &limits);
    state.add_plugin(p.loaded.clone());
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
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("the probe was asked to panic"),
        "{v}"
    );
    assert!(!v["backtrace"].as_array().unwrap().is_empty());
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

/// Two subscribers, one delivered before a restart and one after: each
/// handles the event exactly once.
async fn exactly_once_across_restart(k: TestKernel) {
    let probe_p = probe(&k).await;
    let other = k.load(plugin_dir("other")).await;
    let anon = k.anonymous();
    let (s, _) = probe_p
        .post("/notes/x", Some(json!({ "body": "b" })), &anon)
        .await
        .unwrap();
    assert_eq!(s, 201);
    // Only `other` is delivered to before the "crash".
    let pass = k.deliver(&[&other]).await;
    assert_eq!(pass.delivered, 1);
    assert_eq!(
        other.get("/receipts", &anon).await.unwrap().1,
        json!({ "events": [1] })
    );
    let k = k.restart().await;
    let probe_p = probe(&k).await;
    let other = k.load(plugin_dir("other")).await;
    let pass = k.deliver(&[&probe_p, &other]).await;
    assert_eq!(
        pass.delivered, 1,
        "only the pending subscriber is delivered to"
    );
    assert_eq!(k.deliver(&[&probe_p, &other]).await.delivered, 0);
    assert_eq!(
        probe_p.get("/receipts", &anon).await.unwrap().1,
        json!({ "events": [1] })
    );
    assert_eq!(
        other.get("/receipts", &anon).await.unwrap().1,
        json!({ "events": [1] })
    );
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_each_subscriber_once_across_a_restart_sqlite() {
    exactly_once_across_restart(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_each_subscriber_once_across_a_restart_postgres() {
    exactly_once_across_restart(TestKernel::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_delivery_is_parked_and_can_be_replayed() {
    let mut k = TestKernel::sqlite().await;
    k.max_attempts = 1;
    let probe_p = probe(&k).await;
    let other = k.load(plugin_dir("other")).await;
    let anon = k.anonymous();
    assert_eq!(
        probe_p
            .post("/notes/fail", Some(json!({ "body": "b" })), &anon)
            .await
            .unwrap()
            .0,
        201
    );
    let pass = k.deliver(&[&probe_p, &other]).await;
    assert_eq!((pass.delivered, pass.failed, pass.parked), (1, 1, 1));
    let parked = kernel::plugins::events::parked(&k.kernel, 10)
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].subscriber.as_str(), parked[0].name.as_str()),
        ("other", "probe.touched")
    );
    assert_eq!(
        parked[0].last_error.as_deref(),
        Some("the handler returned an error: not ready for topic fail")
    );
    assert_eq!(
        other.get("/receipts", &anon).await.unwrap().1,
        json!({ "events": [] }),
        "the failed delivery wrote nothing"
    );
    assert_eq!(
        k.deliver(&[&other]).await,
        kernel::plugins::events::Pass::default(),
        "parked stays parked"
    );
    assert_eq!(other.post("/switch", None, &anon).await.unwrap().0, 201);
    assert!(
        kernel::plugins::events::replay(&k.kernel, parked[0].event_id, "other")
            .await
            .unwrap()
    );
    assert_eq!(k.deliver(&[&other]).await.delivered, 1);
    assert_eq!(
        other.get("/receipts", &anon).await.unwrap().1,
        json!({ "events": [parked[0].event_id] })
    );
    assert!(kernel::plugins::events::parked(&k.kernel, 10)
        .await
        .unwrap()
        .is_empty());
    k.cleanup().await;
}

/// A capability the plugin did not declare is refused with a typed error;
/// the plugin that declared it reads the site registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_need_the_declared_capability() {
    let k = TestKernel::sqlite().await;
    site_tree(
        &k,
        &[("CITY", "city", None), ("T1", "township", Some("CITY"))],
    )
    .await;
    let p = probe(&k).await;
    let other = k.load(plugin_dir("other")).await;
    let anon = k.anonymous();
    assert_eq!(
        p.get("/sites/CITY", &anon).await.unwrap(),
        (
            200,
            json!({ "code": "CITY", "level": "city", "children": ["T1"] })
        )
    );
    let (s, v) = p.get("/sites/NOPE", &anon).await.unwrap();
    assert_eq!(s, 404, "{v}");
    let (s, v) = other.get("/sites/CITY", &anon).await.unwrap();
    assert_eq!(s, 403);
    assert_eq!(v["type"], "urn:lifelong:problem:capability-denied");
    assert_eq!(
        v["detail"],
        "plugin other does not have the capability sites.read"
    );
    k.cleanup().await;
}

/// A learning outcome recorded by a plugin commits with the call: once per
/// idempotency key, never after a trap, and only with the capability.
async fn outcomes_commit_with_the_call(k: TestKernel) {
    site_tree(&k, &[("CITY", "city", None)]).await;
    let mut people = Vec::new();
    for n in 0..2u32 {
        let (id, _) = person(
            &k,
            n * 2 + 1,
            (1955, 3, 1),
            kernel::idnumber::Sex::Male,
            "CITY",
        )
        .await;
        people.push(id);
    }
    let p = probe(&k).await;
    let other = k.load(plugin_dir("other")).await;
    let anon = k.anonymous();
    let entries = |person: i64| {
        let db = k.kernel.db.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM ledger_entries e JOIN accounts a ON a.id = e.account_id WHERE a.person_id = $1",
            )
            .bind(person)
            .fetch_one(db.reader())
            .await
            .unwrap();
            n
        }
    };
    let (s, v) = p
        .post(&format!("/outcomes/{}", people[0]), None, &anon)
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["replayed"], false);
    let (s, v2) = p
        .post(&format!("/outcomes/{}", people[0]), None, &anon)
        .await
        .unwrap();
    assert_eq!(
        (s, &v2["replayed"], &v2["entry"]),
        (200, &json!(true), &v["entry"])
    );
    assert_eq!(entries(people[0]).await, 1, "the same key records once");
    let err = p
        .post(&format!("/outcomes/{}?trap", people[1]), None, &anon)
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Panic);
    assert_eq!(
        entries(people[1]).await,
        0,
        "a trapped call recorded nothing"
    );
    let (s, v) = other
        .post(&format!("/outcomes/{}", people[1]), None, &anon)
        .await
        .unwrap();
    assert_eq!(s, 403);
    assert_eq!(
        v["detail"],
        "plugin other does not have the capability accounts.record"
    );
    assert_eq!(entries(people[1]).await, 0);
    let report = kernel::accounts::ledger::verify(&k.kernel.db, 2)
        .await
        .unwrap();
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_commit_with_the_call_sqlite() {
    outcomes_commit_with_the_call(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_commit_with_the_call_postgres() {
    outcomes_commit_with_the_call(TestKernel::postgres().await).await;
}

/// Persons are visible to a plugin only as the caller or within the
/// subtree of the call's site, always masked; roles cover subtrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_is_scoped_to_the_call_site_and_masked() {
    let k = TestKernel::sqlite().await;
    let sys = kernel::authz::Actor::System("test");
    site_tree(&k, TREE).await;
    let mut ids = Vec::new();
    for (n, home) in [(1u32, "T1-V1"), (3, "T2")] {
        ids.push(
            person(&k, n, (1958, 5, 17), kernel::idnumber::Sex::Male, home)
                .await
                .0,
        );
    }
    kernel::identity::grant(&k.kernel, &sys, ids[0], "teacher", "T1")
        .await
        .unwrap();
    let p = probe(&k).await;
    let at_t1 = p.at("T1");
    let anon = k.anonymous();
    let (s, v) = at_t1
        .get(&format!("/people/{}", ids[0]), &anon)
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["birth_date"], "1958-05-17");
    assert_eq!(v["home"], "T1-V1");
    let masked = v["id_number"].as_str().unwrap();
    assert!(
        masked.contains("**********") && masked.len() == 18,
        "{masked}"
    );
    // The T2 resident is outside T1's subtree: not found, unless they are the caller.
    let (s, _) = at_t1
        .get(&format!("/people/{}", ids[1]), &anon)
        .await
        .unwrap();
    assert_eq!(s, 404);
    let (s, _) = at_t1
        .get(&format!("/people/{}", ids[1]), &k.person(ids[1], &[]))
        .await
        .unwrap();
    assert_eq!(s, 200);
    // A role at T1 covers T1-V1 but not T2.
    let (_, v) = at_t1
        .get(&format!("/people/{}/is/teacher/at/T1-V1", ids[0]), &anon)
        .await
        .unwrap();
    assert_eq!(v, json!({ "yes": true }));
    let (_, v) = at_t1
        .get(&format!("/people/{}/is/teacher/at/T2", ids[0]), &anon)
        .await
        .unwrap();
    assert_eq!(v, json!({ "yes": false }));
    let other = k.load(plugin_dir("other")).await.at("T1");
    let (s, v) = other
        .get(&format!("/people/{}", ids[0]), &anon)
        .await
        .unwrap();
    assert_eq!(s, 403);
    assert_eq!(
        v["detail"],
        "plugin other does not have the capability identity.read"
    );
    k.cleanup().await;
}

/// Kernel changes reach subscribing plugins as `kernel.<action>` events,
/// written with the change and carrying only masked personal data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_events_reach_subscribers() {
    let k = TestKernel::sqlite().await;
    let other = k.load(plugin_dir("other")).await;
    site_tree(&k, &[("CITY", "city", None)]).await;
    let (_, id_number) = person(&k, 7, (1950, 1, 1), kernel::idnumber::Sex::Female, "CITY").await;
    let pass = k.deliver(&[&other]).await;
    assert_eq!(
        pass.delivered, 1,
        "only person.create is subscribed; site.create is not"
    );
    assert_eq!(
        other.get("/receipt-names", &k.anonymous()).await.unwrap().1,
        json!({ "names": ["kernel.person.create"] })
    );
    let (payload,): (String,) =
        sqlx::query_as("SELECT payload FROM plugin_outbox WHERE name = 'kernel.person.create'")
            .fetch_one(k.kernel.db.reader())
            .await
            .unwrap();
    assert!(
        !payload.contains(&id_number),
        "the event must not carry the full ID number"
    );
    assert!(payload.contains("**********"), "{payload}");
    assert_eq!(k.deliver(&[&other]).await.delivered, 0);
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

/// Settings: the declared default, a value set at a township holding for
/// its villages, type-checked, and only by an admin over the site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_inherited_down_the_site_tree() {
    let k = TestKernel::sqlite().await;
    let sys = kernel::authz::Actor::System("test");
    site_tree(&k, TREE).await;
    let p = probe(&k).await;
    let anon = k.anonymous();
    let value_at = |site: &'static str| {
        let p = p.at(site);
        let anon = anon.clone();
        async move { p.get("/settings/min_age", &anon).await.unwrap() }
    };
    assert_eq!(
        value_at("T1-V1").await,
        (200, json!({ "value": 50 })),
        "the declared default"
    );
    kernel::plugins::settings::set(
        &k.kernel,
        &sys,
        &p.loaded.manifest,
        "T1",
        "min_age",
        json!(55),
    )
    .await
    .unwrap();
    assert_eq!(
        value_at("T1-V1").await,
        (200, json!({ "value": 55 })),
        "inherited from T1"
    );
    assert_eq!(
        value_at("T2").await,
        (200, json!({ "value": 50 })),
        "T2 keeps the default"
    );
    let err = kernel::plugins::settings::set(
        &k.kernel,
        &sys,
        &p.loaded.manifest,
        "T1",
        "min_age",
        json!("old"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "value: setting min_age of plugin probe is of type integer"
    );
    let (s, v) = p.at("T1").get("/settings/nope", &anon).await.unwrap();
    assert_eq!(s, 404);
    assert_eq!(v["detail"], "plugin probe declares no setting \"nope\"");
    k.cleanup().await;
}
