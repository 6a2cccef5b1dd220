//! Two `lifelong serve` nodes on one PostgreSQL database, as behind a load
//! balancer (each with its own data dir), the plugins served the way an
//! operator serves them: packages built and signed with the CLI, installed,
//! granted and enabled at the city through the registry's HTTP API.
//! - a registry change made through one node is served by the other;
//! - events published through both nodes, with both delivery loops
//!   running, reach each subscriber exactly once;
//! - an upgrade through one node while the other serves traffic fails no
//!   request and never serves a half-upgraded plugin;
//! - a node SIGKILLed in the middle of deliveries leaves them to the other,
//!   which delivers each once.

use reqwest::Method;
use serde_json::Value;
use sqlx::postgres::PgPool;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tests::cluster::{metric, packages, Cluster, Node};

/// How long a node may take to notice a change made through the other
/// (the design says one 250 ms loop pass plus loading the version).
const NOTICE: Duration = Duration::from_secs(5);

async fn pool(c: &Cluster) -> PgPool {
    PgPool::connect(c.dep.database_url.as_deref().unwrap())
        .await
        .unwrap()
}

/// The ids of every committed `probe.touched` event, in order.
async fn touched(pg: &PgPool) -> Vec<i64> {
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM plugin_outbox WHERE name = 'probe.touched' ORDER BY id")
            .fetch_all(pg)
            .await
            .unwrap();
    rows.into_iter().map(|(id,)| id).collect()
}

/// Deliveries of `probe.touched` not done yet.
async fn pending(pg: &PgPool) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM plugin_deliveries d JOIN plugin_outbox o ON o.id = d.event_id \
         WHERE o.name = 'probe.touched' AND d.delivered_at IS NULL AND d.dead_at IS NULL",
    )
    .fetch_one(pg)
    .await
    .unwrap();
    n
}

/// Wait (up to `limit`) until no `probe.touched` delivery is pending.
async fn all_delivered(pg: &PgPool, limit: Duration) {
    let start = Instant::now();
    loop {
        let left = pending(pg).await;
        if left == 0 {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{left} deliveries still pending after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A delivery row: event, subscriber, attempts, last error, delivered at, parked at.
type Delivery = (i64, String, i64, Option<String>, Option<i64>, Option<i64>);

/// Every `probe.touched` event was delivered to both subscribers by running
/// them: one delivery row per event and subscriber, each done, none
/// skipped ("not enabled at the event's site") and none parked. Failed
/// attempts before a success are reported, not refused: they rolled back.
async fn delivered_by_running(pg: &PgPool, events: &[i64]) {
    let rows: Vec<Delivery> = sqlx::query_as(
        "SELECT d.event_id, d.subscriber, d.attempts, d.last_error, d.delivered_at, d.dead_at \
         FROM plugin_deliveries d JOIN plugin_outbox o ON o.id = d.event_id \
         WHERE o.name = 'probe.touched' ORDER BY d.event_id, d.subscriber",
    )
    .fetch_all(pg)
    .await
    .unwrap();
    let bad: Vec<_> = rows
        .iter()
        .filter(|(_, _, _, error, done, dead)| {
            done.is_none()
                || dead.is_some()
                || error.as_deref().is_some_and(|e| e.starts_with("skipped"))
        })
        .take(5)
        .collect();
    assert!(
        bad.is_empty(),
        "deliveries not done by running the subscriber (event, subscriber, attempts, last error, delivered, parked): {bad:?}"
    );
    let retried: Vec<_> = rows.iter().filter(|r| r.2 > 0).take(5).collect();
    if !retried.is_empty() {
        eprintln!("deliveries that failed before they succeeded: {retried:?}");
    }
    let want: BTreeSet<(i64, String)> = events
        .iter()
        .flat_map(|e| [(*e, "other".to_string()), (*e, "probe".to_string())])
        .collect();
    let have: BTreeSet<(i64, String)> = rows.into_iter().map(|(e, s, ..)| (e, s)).collect();
    assert_eq!(have, want, "one delivery row per event and subscriber");
}

/// The event ids a subscriber recorded (its `receipts` table, whose key is
/// the event id), read through `node`.
async fn receipts(c: &Cluster, node: &Node, plugin: &str) -> Vec<i64> {
    let (s, v) = c.call(node, Method::GET, plugin, "/receipts").await;
    assert_eq!(s, 200, "{plugin} receipts: {v}");
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_i64().unwrap())
        .collect()
}

/// How many plugins `node` serves (`/readyz`).
async fn loaded(c: &Cluster, node: &Node) -> i64 {
    let v: Value = c
        .client
        .get(format!("{}/readyz", node.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["plugins"].as_i64().unwrap_or(0)
}

async fn metrics(c: &Cluster, node: &Node) -> String {
    c.client
        .get(format!("{}/metrics", node.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn delivered_metric(text: &str, plugin: &str) -> f64 {
    metric(
        text,
        &format!("lifelong_plugin_events_delivered_total{{plugin=\"{plugin}\",version=\"1.0.0\"}}"),
    )
}

/// Two nodes, the probe (publisher and subscriber) and `other` (subscriber)
/// installed through A and served by both.
async fn two_nodes_serving_probe_and_other() -> (Cluster, Node, Node) {
    packages();
    let mut c = Cluster::new();
    let (a, b) = (c.node(), c.node());
    c.login(&a).await;
    c.install_and_enable(&a, "other").await;
    c.install_and_enable(&a, "probe").await;
    for plugin in ["probe", "other"] {
        c.wait_for_status(&b, plugin, "/receipts", 200, NOTICE)
            .await
            .unwrap_or_else(|| panic!("node B never served {plugin}"));
    }
    (c, a, b)
}

/// Installed and enabled through A, the plugin is served by B; disabled
/// through B, it stops being served by A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_changes_made_through_one_node_reach_the_other() {
    packages();
    let mut c = Cluster::new();
    let (a, b) = (c.node(), c.node());
    c.login(&a).await;
    c.install(&a, "probe").await;
    // B loads (and compiles, into its own cache) the installed version
    // first: what follows measures how soon it notices the enablement.
    let start = Instant::now();
    while loaded(&c, &b).await < 1 {
        assert!(start.elapsed() < NOTICE, "node B never loaded the probe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "node B loaded the plugin installed through node A after {:?}",
        start.elapsed()
    );
    assert_eq!(
        c.call(&b, Method::GET, "probe", "/ok").await.0,
        404,
        "installed, granted, not enabled"
    );
    c.set_enabled(&a, "probe", true).await;
    assert_eq!(
        c.call(&a, Method::GET, "probe", "/ok").await.0,
        200,
        "the node that made the change serves it at once"
    );
    let seen = c
        .wait_for_status(&b, "probe", "/ok", 200, NOTICE)
        .await
        .expect("node B never served the plugin enabled through node A");
    eprintln!("node B served the plugin enabled through node A after {seen:?}");

    c.set_enabled(&b, "probe", false).await;
    let (s, v) = c.call(&b, Method::GET, "probe", "/ok").await;
    assert_eq!(s, 404, "disabled through B, B stops at once: {v}");
    let seen = c
        .wait_for_status(&a, "probe", "/ok", 404, NOTICE)
        .await
        .expect("node A kept serving the plugin disabled through node B");
    eprintln!("node A stopped serving the plugin disabled through node B after {seen:?}");
}

/// Events published through both nodes at once, with both nodes' delivery
/// loops running, reach each subscriber exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_through_both_nodes_are_delivered_once() {
    let (c, a, b) = two_nodes_serving_probe_and_other().await;
    let n = 40;
    let posts = (0..n).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        let c = &c;
        async move {
            c.call(node, Method::POST, "probe", &format!("/notes/t{i}"))
                .await
        }
    });
    for (s, v) in futures_util::future::join_all(posts).await {
        assert_eq!(s, 201, "{v}");
    }
    let pg = pool(&c).await;
    let events = touched(&pg).await;
    assert_eq!(events.len(), n, "one event per acknowledged note");
    all_delivered(&pg, Duration::from_secs(15)).await;
    delivered_by_running(&pg, &events).await;
    for plugin in ["probe", "other"] {
        assert_eq!(receipts(&c, &a, plugin).await, events, "{plugin}");
        assert_eq!(receipts(&c, &b, plugin).await, events, "{plugin}");
    }
    // Each node counts the deliveries it committed: together, each event
    // once per subscriber.
    let (ma, mb) = (metrics(&c, &a).await, metrics(&c, &b).await);
    for plugin in ["probe", "other"] {
        let (da, db) = (delivered_metric(&ma, plugin), delivered_metric(&mb, plugin));
        eprintln!("{plugin}: node A delivered {da}, node B {db}");
        assert_eq!(da + db, n as f64, "{plugin}: deliveries committed");
    }
}

/// Clients sending the upgrade traffic to node B at once.
const CLIENTS: usize = 4;

/// What one request of the upgrade traffic saw.
#[derive(Debug, Clone)]
struct Seen {
    task: usize,
    what: &'static str,
    status: u16,
    body: Value,
}

/// An upgrade through A while B serves a steady stream of reads and
/// writes to the tables it migrates (1.1.0 adds a column to `notes` and a
/// table `extra`): no request fails, and B serves each call either on
/// 1.0.0 or on 1.1.0 with its new table in place — never in between, and
/// never back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_through_one_node_while_the_other_serves() {
    let pkgs = packages();
    let mut c = Cluster::new();
    let (a, b) = (c.node(), c.node());
    c.login(&a).await;
    c.install_and_enable(&a, "probe").await;
    c.wait_for_status(&b, "probe", "/ok", 200, NOTICE)
        .await
        .expect("node B never served the probe");
    let c = Arc::new(c);
    let b = Arc::new(b);
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut traffic = Vec::new();
    for task in 0..CLIENTS {
        let (c, b, seen, stop) = (c.clone(), b.clone(), seen.clone(), stop.clone());
        traffic.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // `/reach/extra` reads the table only 1.1.0 declares: on
                // 1.0.0 a 404 naming it undeclared, on 1.1.0 a 200; a
                // half-upgraded plugin (the new manifest without its
                // table, say) would fail the call.
                for (what, method, path) in [
                    ("write", Method::POST, "/notes/up"),
                    ("extra", Method::GET, "/reach/extra"),
                ] {
                    let (status, body) = c.call(&b, method, "probe", path).await;
                    seen.lock().unwrap().push(Seen {
                        task,
                        what,
                        status,
                        body,
                    });
                }
            }
        }));
    }
    // Traffic is flowing on B before the upgrade: each client has answers.
    traffic_past(&seen, 2 * CLIENTS).await;
    let (s, v) = c
        .upload(&a, "/plugin-registry/probe/upgrade", &pkgs.probe_1_1)
        .await;
    assert_eq!(s, 200, "upgrade: {v}");
    assert_eq!(v["version"], "1.1.0");
    let upgraded = Instant::now();
    let on_new = |seen: &[Seen]| seen.iter().any(|s| s.what == "extra" && s.status == 200);
    while !on_new(&seen.lock().unwrap()) {
        assert!(upgraded.elapsed() < NOTICE, "node B never served 1.1.0");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "node B served 1.1.0 within {:?} of the upgrade",
        upgraded.elapsed()
    );
    // And it goes on after: more answers from every client on 1.1.0.
    let so_far = seen.lock().unwrap().len();
    traffic_past(&seen, so_far + 2 * CLIENTS).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in traffic {
        t.await.unwrap();
    }

    let seen = seen.lock().unwrap().clone();
    let failed: Vec<_> = seen
        .iter()
        .filter(|s| match s.what {
            "write" => s.status != 201,
            _ => {
                !(s.status == 200
                    || (s.status == 404
                        && s.body["detail"] == "plugin probe declares no table \"extra\""))
            }
        })
        .collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    for task in 0..CLIENTS {
        let versions: Vec<u16> = seen
            .iter()
            .filter(|s| s.task == task && s.what == "extra")
            .map(|s| s.status)
            .collect();
        let first_new = versions.iter().position(|s| *s == 200);
        if let Some(i) = first_new {
            assert!(
                versions[i..].iter().all(|s| *s == 200),
                "task {task} was served 1.0.0 after 1.1.0: {versions:?}"
            );
        }
    }
    let old = seen.iter().filter(|s| s.status == 404).count();
    let writes = seen.iter().filter(|s| s.what == "write").count();
    eprintln!(
        "{} requests to node B, {old} on 1.0.0, none failed",
        seen.len()
    );
    assert!(old > 0, "traffic ran on 1.0.0 before the upgrade");

    // Every acknowledged write is there, across the upgrade.
    let pg = pool(&c).await;
    let (notes,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM plg_probe__notes WHERE topic = 'up'")
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!(notes, writes as i64);
    let (tag,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM information_schema.columns \
         WHERE table_name = 'plg_probe__notes' AND column_name = 'tag'",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(tag, 1, "the upgrade's migration ran");
    // And node B counted no failed call on either version.
    let m = metrics(&c, &b).await;
    for version in ["1.0.0", "1.1.0"] {
        let label = format!("{{plugin=\"probe\",version=\"{version}\"");
        assert!(
            metric(&m, &format!("lifelong_plugin_calls_total{label}}}")) > 0.0,
            "{version} served calls on node B"
        );
        let errors: Vec<&str> = m
            .lines()
            .filter(|l| l.starts_with(&format!("lifelong_plugin_errors_total{label}")))
            .filter(|l| !l.ends_with(" 0"))
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
    drop((a, b));
}

/// Node A is SIGKILLed while events published through it are being
/// delivered (by both nodes' loops): node B delivers what was left, and
/// every event reaches each subscriber exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_survive_a_node_killed_mid_stream() {
    let (c, mut a, b) = two_nodes_serving_probe_and_other().await;
    let pg = pool(&c).await;
    let acked = Arc::new(Mutex::new(0usize));
    let c = Arc::new(c);
    let url = a.url.clone();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (c, url, acked) = (c.clone(), url.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..200 {
                let res = c
                    .client
                    .post(format!(
                        "{url}/api/v1/plugins/probe/notes/w{w}-{i}?site=CITY"
                    ))
                    .json(&serde_json::json!({ "body": "b" }))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 201 => *acked.lock().unwrap() += 1,
                    Ok(r) => panic!("publishing through A: {}", r.status()),
                    // A was killed.
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill A once deliveries are under way and more events are coming.
    let start = Instant::now();
    loop {
        let (done,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM plugin_deliveries WHERE delivered_at IS NOT NULL")
                .fetch_one(&pg)
                .await
                .unwrap();
        if done >= 20 && *acked.lock().unwrap() >= 60 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "deliveries never started ({done} done)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill(); // SIGKILL
    for w in writers {
        w.await.unwrap();
    }
    let left = pending(&pg).await;
    let acked = *acked.lock().unwrap();
    let events = touched(&pg).await;
    eprintln!(
        "killed node A with {} events committed ({acked} acknowledged), {left} deliveries pending",
        events.len()
    );
    assert!(events.len() >= acked);
    assert!(left > 0, "node A was killed with deliveries pending");

    all_delivered(&pg, Duration::from_secs(30)).await;
    delivered_by_running(&pg, &events).await;
    for plugin in ["probe", "other"] {
        assert_eq!(receipts(&c, &b, plugin).await, events, "{plugin}");
    }
    let m = metrics(&c, &b).await;
    for plugin in ["probe", "other"] {
        eprintln!(
            "{plugin}: node B delivered {}",
            delivered_metric(&m, plugin)
        );
    }
    assert!(
        delivered_metric(&m, "probe") + delivered_metric(&m, "other") >= left as f64,
        "node B delivered at least what was pending when A died"
    );
    drop((a, b));
}

/// Wait until the clients have recorded more than `n` answers.
async fn traffic_past(seen: &Mutex<Vec<Seen>>, n: usize) {
    let start = Instant::now();
    while seen.lock().unwrap().len() <= n {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the clients stopped getting answers"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
