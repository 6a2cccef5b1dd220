//! Scaling out (reported, never asserted): requests per second of one
//! `lifelong serve` node against two nodes on the same PostgreSQL
//! database, measured side by side in one run. Run:
//! `cargo build --release -p kernel && cargo bench -p tests --bench nodes`
//! (the bench starts `target/release/lifelong`; `LIFELONG_TEST_PG` as for
//! the tests).
//!
//! Both nodes are real processes with their own data dirs; the plugin
//! probe is built and signed with the CLI, installed, granted and enabled
//! at the city through node A. For each workload and round, 32 keep-alive
//! clients in this process run for a few seconds against node A alone, then
//! spread over A and B (client i on node i mod n, as a connection-level load
//! balancer would). Rounds alternate one and two nodes so drift in the
//! machine's speed hits both alike. Everything — both nodes, PostgreSQL
//! and the clients — shares this machine's cores.
//! `LIFELONG_BENCH_SECS` (default 3), `LIFELONG_BENCH_ROUNDS` (default 3),
//! `LIFELONG_BENCH_CLIENTS` (default 32), `LIFELONG_BENCH_ONLY` (one
//! workload: 0 kernel route, 1 plugin read, 2 plugin write).

use std::time::{Duration, Instant};
use tests::cluster::{packages, Cluster, Node};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One measured window: successful requests/s (a failed request is counted
/// and reported, not fatal), the nodes' CPU (µs) per request, and
/// how busy the whole machine was (PostgreSQL and the clients included).
struct Window {
    rps: f64,
    failed: u64,
    node_cpu_us: f64,
    machine_busy: f64,
}

/// `clients` keep-alive clients for `dur`, client i on `nodes[i % n]`.
async fn throughput(
    clients: usize,
    c: &Cluster,
    nodes: &[&Node],
    method: reqwest::Method,
    path: &str,
    auth: bool,
    dur: Duration,
) -> Window {
    let cpu0: f64 = nodes.iter().map(|n| n.cpu_secs()).sum();
    let m0 = machine_jiffies();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let client = reqwest::Client::new();
        let url = format!("{}{path}", nodes[i % nodes.len()].url);
        let (method, token) = (method.clone(), auth.then(|| c.token.clone()));
        tasks.push(tokio::spawn(async move {
            let (mut n, mut failed) = (0u64, 0u64);
            while start.elapsed() < dur {
                let mut r = client.request(method.clone(), &url);
                if let Some(t) = &token {
                    r = r.bearer_auth(t);
                }
                if method == reqwest::Method::POST {
                    r = r.json(&serde_json::json!({ "capacity": 1 }));
                }
                let res = r.send().await.unwrap();
                let ok = res.status().is_success();
                res.bytes().await.unwrap();
                n += 1;
                failed += u64::from(!ok);
            }
            (n, failed)
        }));
    }
    let (mut total, mut failed) = (0, 0);
    for t in tasks {
        let (n, f) = t.await.unwrap();
        total += n;
        failed += f;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu: f64 = nodes.iter().map(|n| n.cpu_secs()).sum::<f64>() - cpu0;
    let m1 = machine_jiffies();
    Window {
        rps: (total - failed) as f64 / secs,
        failed,
        node_cpu_us: cpu * 1e6 / total as f64,
        machine_busy: (m1.0 - m0.0) / (m1.1 - m0.1).max(1.0),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[tokio::main]
async fn main() {
    let dur = Duration::from_secs(env_num("LIFELONG_BENCH_SECS", 3));
    let rounds = env_num("LIFELONG_BENCH_ROUNDS", 3).max(1);
    let clients = env_num("LIFELONG_BENCH_CLIENTS", 32).max(1) as usize;
    // One workload alone (0, 1 or 2), e.g. for profiling.
    let only = std::env::var("LIFELONG_BENCH_ONLY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    packages();
    let mut c = Cluster::new();
    let (a, b) = (c.node(), c.node());
    c.login(&a).await;
    c.install_and_enable(&a, "probe").await;
    c.wait_for_status(&b, "probe", "/ok", 200, Duration::from_secs(10))
        .await
        .expect("node B never served the probe");
    let v: serde_json::Value = c
        .client
        .post(format!("{}/api/v1/plugins/probe/seats?site=CITY", a.url))
        .json(&serde_json::json!({ "capacity": 30 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seat = v["id"].as_i64().expect("a seat row");
    let cases = [
        (
            "kernel route: GET /api/v1/sites/CITY, bearer token",
            reqwest::Method::GET,
            "/api/v1/sites/CITY".to_string(),
            true,
        ),
        (
            "plugin route reading one row: GET probe /seats/{id}, bearer token",
            reqwest::Method::GET,
            format!("/api/v1/plugins/probe/seats/{seat}?site=CITY"),
            true,
        ),
        (
            "plugin route writing one row: POST probe /seats, anonymous",
            reqwest::Method::POST,
            "/api/v1/plugins/probe/seats?site=CITY".to_string(),
            false,
        ),
    ];
    println!(
        "{rounds} round(s) of {}s per figure, {clients} keep-alive clients, {} cores",
        dur.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (i, (name, method, path, auth)) in cases.into_iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let (mut one, mut two, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut cpu1, mut cpu2) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which goes first, so drift hits both alike.
            let (w1, w2) = if round % 2 == 0 {
                let w1 = throughput(clients, &c, &[&a], method.clone(), &path, auth, dur).await;
                let w2 = throughput(clients, &c, &[&a, &b], method.clone(), &path, auth, dur).await;
                (w1, w2)
            } else {
                let w2 = throughput(clients, &c, &[&a, &b], method.clone(), &path, auth, dur).await;
                let w1 = throughput(clients, &c, &[&a], method.clone(), &path, auth, dur).await;
                (w1, w2)
            };
            println!(
                "  {name}, round {}: one node {:.0} req/s (machine {:.0} % busy, {} failed), two nodes {:.0} req/s ({:.0} % busy, {} failed), ratio {:.2}",
                round + 1,
                w1.rps,
                w1.machine_busy * 100.0,
                w1.failed,
                w2.rps,
                w2.machine_busy * 100.0,
                w2.failed,
                w2.rps / w1.rps
            );
            ratios.push(w2.rps / w1.rps);
            one.push(w1.rps);
            two.push(w2.rps);
            cpu1.push(w1.node_cpu_us);
            cpu2.push(w2.node_cpu_us);
        }
        println!(
            "{name}: one node {:.0} req/s ({:.0} µs node CPU/req), two nodes {:.0} req/s ({:.0} µs node CPU/req), two/one {:.2} (median of {rounds}; rounds {:.2}–{:.2})",
            median(one),
            median(cpu1),
            median(two),
            median(cpu2),
            median(ratios.clone()),
            ratios.iter().cloned().fold(f64::MAX, f64::min),
            ratios.iter().cloned().fold(0.0, f64::max),
        );
    }
    drop((a, b));
}

/// (busy, total) jiffies of the whole machine, from /proc/stat (Linux).
fn machine_jiffies() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}
