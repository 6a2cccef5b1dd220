//! Plugin runtime benchmark (reported, never asserted). Run:
//! `cargo bench -p tests --bench plugins`
//!
//! In one run: a fresh-instance call to a trivial handler, a call into a live
//! instance, a host-import round trip, memory per live instance, and HTTP
//! throughput of plugin routes against native axum routes doing the same
//! work behind the same authentication.

use kernel::plugins::runtime::{Caller, Request};
use lifelong_harness::TestKernel;
use std::time::{Duration, Instant};

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e6
}

fn req(path: &str) -> Request {
    Request {
        method: "GET".into(),
        path: path.into(),
        query: String::new(),
        headers: vec![],
        body: vec![],
        caller: Caller {
            person_id: None,
            roles: vec![],
        },
        site: String::new(),
        request_id: "bench".into(),
    }
}

fn cpu_secs() -> f64 {
    // utime + stime of this process, from /proc (Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    // Quotas count as when serving, but high enough never to refuse a
    // benchmark's calls (section 6 measures what counting costs).
    let k = TestKernel::sqlite_with(kernel::plugins::RuntimeLimits {
        quotas: kernel::plugins::quota::QuotaLimits {
            rows: 1 << 40,
            bytes: 1 << 50,
            site_rows: 1 << 40,
            site_bytes: 1 << 50,
            calls_per_minute: 1 << 40,
            events_per_minute: 1 << 40,
            log_lines_per_minute: 1 << 40,
            sync_ms: 1_000,
        },
        ..Default::default()
    })
    .await;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins/probe");
    let probe = k.load(&dir).await;
    let ok = req("/ok");
    // `LIFELONG_BENCH_ONLY=quotas`: only section 6 (what quotas cost).
    let quotas_only = std::env::var("LIFELONG_BENCH_ONLY").as_deref() == Ok("quotas");
    if !quotas_only {
        micro(&k, &probe, &ok).await;
    }
    if std::env::var("LIFELONG_BENCH_ONLY").as_deref() == Ok("fresh") {
        return;
    }
    // 5. HTTP: plugin routes vs native routes doing the same work, same auth.
    http(&k, &probe, &dir, quotas_only).await;
}

/// Sections 1-4: one plugin's calls without HTTP.
async fn micro(k: &TestKernel, probe: &lifelong_harness::TestPlugin, ok: &Request) {
    let ok = ok.clone();
    // 1. Fresh instance per call, trivial handler, no database transaction.
    for _ in 0..2000 {
        probe.loaded.bench_fresh_call(&ok).await.unwrap();
    }
    let mut lat = Vec::new();
    for _ in 0..20_000 {
        let t = Instant::now();
        probe.loaded.bench_fresh_call(&ok).await.unwrap();
        lat.push(t.elapsed());
    }
    let (fresh50, fresh99) = (pct(lat.clone(), 0.5), pct(lat, 0.99));
    println!("fresh instance + trivial call: p50 {fresh50:.1} µs, p99 {fresh99:.1} µs");
    // For profiling instantiation alone: `LIFELONG_BENCH_ONLY=fresh perf record …`.
    if std::env::var("LIFELONG_BENCH_ONLY").as_deref() == Ok("fresh") {
        for _ in 0..300_000 {
            probe.loaded.bench_fresh_call(&ok).await.unwrap();
        }
        return;
    }

    // 1b. The same through the serving path (read-only transaction included).
    let mut lat = Vec::new();
    for _ in 0..5_000 {
        let t = Instant::now();
        probe.loaded.request(&k.kernel, ok.clone()).await.unwrap();
        lat.push(t.elapsed());
    }
    println!(
        "serving path (fresh instance; a read snapshot opens only if a table is read): p50 {:.1} µs, p99 {:.1} µs",
        pct(lat.clone(), 0.5),
        pct(lat, 0.99)
    );

    // 2. A call into a live instance.
    let mut live = probe.loaded.bench_live().await.unwrap();
    let mut lat = Vec::new();
    for _ in 0..20_000 {
        let t = Instant::now();
        live.call(&ok).await.unwrap();
        lat.push(t.elapsed());
    }
    println!(
        "call into a live instance: p50 {:.2} µs, p99 {:.2} µs",
        pct(lat.clone(), 0.5),
        pct(lat, 0.99)
    );

    // 3. Host import round trip: 10,000 clock calls in one handler, minus a trivial call.
    let n = 10_000;
    let clock = req(&format!("/clock/{n}"));
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        live.call(&clock).await.unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "host import round trip (clock.now-micros): {:.3} µs",
        best * 1e6 / n as f64
    );

    // 4. Memory per live instance.
    let before = rss_kib();
    let mut keep = Vec::new();
    for _ in 0..100 {
        let mut l = probe.loaded.bench_live().await.unwrap();
        l.call(&ok).await.unwrap();
        keep.push(l);
    }
    println!(
        "memory per live instance (RSS growth over 100): {} KiB",
        (rss_kib().saturating_sub(before)) / 100
    );
    drop(keep);
    drop(live);
}

/// Sections 5 and 6: plugin routes against native ones, and quotas off
/// against on.
async fn http(
    k: &TestKernel,
    probe: &lifelong_harness::TestPlugin,
    dir: &std::path::Path,
    quotas_only: bool,
) {
    let (row_id, token) = setup_http(k, probe).await;
    let limits = kernel::config::Limits {
        max_concurrent_requests: 10_000,
        ..Default::default()
    };
    // Served as in production: installed, granted and enabled at the city.
    k.install(&k.package(dir).await).await;
    k.enable("probe", "CITY").await;
    let state =
        kernel::http::AppState::new(k.kernel.clone(), &limits).with_registry(k.registry.clone());
    // The native baselines are mounted under /api/v1 beside the plugin
    // routes, so both pass the same middleware (limits, body cap).
    let native = axum::Router::new()
        .route(
            "/native/ok",
            axum::routing::get(
                |axum::extract::State(st): axum::extract::State<kernel::http::AppState>,
                 h: axum::http::HeaderMap| async move {
                    auth(&st.kernel, &h).await;
                    axum::Json(serde_json::json!({ "ok": true }))
                },
            ),
        )
        .route(
            "/native/seats/{id}",
            axum::routing::get(
                |axum::extract::State(st): axum::extract::State<kernel::http::AppState>,
                 h: axum::http::HeaderMap,
                 axum::extract::Path(id): axum::extract::Path<i64>| async move {
                    auth(&st.kernel, &h).await;
                    let (taken, capacity): (i64, i64) = sqlx::query_as(
                        "SELECT taken, capacity FROM plg_probe__seats WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_one(st.kernel.db.reader())
                    .await
                    .unwrap();
                    axum::Json(serde_json::json!({ "taken": taken, "capacity": capacity }))
                },
            ),
        );
    let app = kernel::http::app_with(state, &limits, native);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let site = "?site=CITY";
    let cases = [
        (
            "trivial",
            format!("/api/v1/native/ok{site}"),
            format!("/api/v1/plugins/probe/ok{site}"),
        ),
        (
            "one-row read",
            format!("/api/v1/native/seats/{row_id}{site}"),
            format!("/api/v1/plugins/probe/seats/{row_id}{site}"),
        ),
    ];
    // For profiling one plugin route alone: `LIFELONG_BENCH_ONLY=http-ok` (or
    // `http-row`) `perf record …`.
    let only = std::env::var("LIFELONG_BENCH_ONLY").unwrap_or_default();
    if let Some(case) = match only.as_str() {
        "http-ok" => Some(0),
        "http-row" => Some(1),
        _ => None,
    } {
        for _ in 0..3 {
            throughput(&format!("http://{addr}{}", cases[case].2), &token).await;
        }
        return;
    }
    for (name, native, plugin) in cases.clone().into_iter().filter(|_| !quotas_only) {
        let (n_rps, n_cpu) = throughput(&format!("http://{addr}{native}"), &token).await;
        let (p_rps, p_cpu) = throughput(&format!("http://{addr}{plugin}"), &token).await;
        println!(
            "http {name}: native {n_rps:.0} req/s ({n_cpu:.0} µs CPU/req), plugin {p_rps:.0} req/s ({p_cpu:.0} µs CPU/req), ratio {:.2}",
            p_rps / n_rps
        );
    }

    // 6. Quotas: the same plugin routes, and one writing a row, with quota
    // counting switched off and on in turn (four rounds each, same run).
    let quotas = k.runtime.quotas().clone();
    for (name, method, path) in [
        ("trivial", "GET", cases[0].2.clone()),
        ("one-row read", "GET", cases[1].2.clone()),
        (
            "one-row insert",
            "POST",
            format!("/api/v1/plugins/probe/quota/notes/1{site}"),
        ),
    ] {
        let url = format!("http://{addr}{path}");
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            quotas.set_enforced(false);
            off.push(throughput_with(method, &url, &token).await.0);
            quotas.set_enforced(true);
            on.push(throughput_with(method, &url, &token).await.0);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "quotas, http {name}: off {:.0} req/s, on {:.0} req/s, ratio {:.3}",
            mean(&off),
            mean(&on),
            mean(&on) / mean(&off)
        );
    }
    k.cleanup().await;
}

/// The same authentication the API does for every plugin request.
async fn auth(k: &kernel::Kernel, h: &axum::http::HeaderMap) {
    let token = h["authorization"]
        .to_str()
        .unwrap()
        .trim_start_matches("Bearer ");
    kernel::identity::authenticate(k, token).await.unwrap();
}

async fn setup_http(k: &TestKernel, probe: &lifelong_harness::TestPlugin) -> (i64, String) {
    use kernel::authz::Actor;
    let sys = Actor::System("bench");
    kernel::sites::create(
        &k.kernel.db,
        &sys,
        kernel::sites::NewSite {
            code: "CITY".into(),
            name_zh: "市".into(),
            kind: "city".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let id = kernel::idnumber::synthesize(
        110101,
        chrono::NaiveDate::from_ymd_opt(1960, 1, 1).unwrap(),
        1,
        kernel::idnumber::Sex::Male,
    );
    let p = kernel::identity::create(
        &k.kernel,
        &sys,
        kernel::identity::NewPerson {
            name: "bench".into(),
            id_number: id,
            home_site: "CITY".into(),
            login: Some("bench".into()),
            password: Some("bench-password".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    kernel::identity::grant(&k.kernel, &sys, p.id, "learner", "CITY")
        .await
        .unwrap();
    let token = kernel::identity::login(&k.kernel, "bench", "bench-password")
        .await
        .unwrap()
        .token;
    let (_, v) = probe
        .post(
            "/seats",
            Some(serde_json::json!({ "capacity": 30 })),
            &k.anonymous(),
        )
        .await
        .unwrap();
    (v["id"].as_i64().unwrap(), token)
}

/// Requests/s over 3 s with 32 keep-alive clients, and process CPU per request.
async fn throughput(url: &str, token: &str) -> (f64, f64) {
    throughput_with("GET", url, token).await
}

/// The same with `method` (a POST sends an empty JSON object).
async fn throughput_with(method: &str, url: &str, token: &str) -> (f64, f64) {
    let post = method == "POST";
    let client = reqwest::Client::new();
    let dur = Duration::from_secs(3);
    let cpu0 = cpu_secs();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, url, token) = (client.clone(), url.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < dur {
                let req = if post {
                    client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body("{}")
                } else {
                    client.get(&url)
                };
                let res = req.bearer_auth(&token).send().await.unwrap();
                assert!(res.status().is_success(), "{url}: {}", res.status());
                res.bytes().await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    (
        total as f64 / secs,
        (cpu_secs() - cpu0) * 1e6 / total as f64,
    )
}
