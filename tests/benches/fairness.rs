//! Fair share between plugins (reported, never asserted). Run:
//! `cargo bench -p tests --bench fairness`
//!
//! An innocent plugin (`tests/plugins/other`) makes a simple write (one
//! insert) over and over, alone and then while 16 calls of a spinning plugin
//! (`probe` `/loop`, until its 500 ms deadline) and 16 calls of a
//! memory-growing one (`probe` `/bomb`, to its 16 MiB cap) run at once, each
//! re-launched as soon as it ends. Both plugins installed, granted and
//! enabled at the city as served; calls routed by the registry. The same
//! run measures the kernel with the fair share (default limits) and without
//! it (a plugin may run 1,024 calls and occupy every worker), so the ratio
//! of each to its own idle p99 is comparable.

use kernel::plugins::runtime::Caller;
use kernel::plugins::RuntimeLimits;
use lifelong_harness::{TestKernel, TestPlugin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3
}

fn anonymous() -> Caller {
    Caller {
        person_id: None,
        roles: vec![],
    }
}

async fn innocent_writes(other: &TestPlugin, n: usize) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (s, _) = other.post("/secrets", None, &anonymous()).await.unwrap();
        assert_eq!(s, 201);
        lat.push(t.elapsed());
    }
    lat
}

/// Keep `n` calls of `path` running until `stop`.
fn flood(
    probe: &TestPlugin,
    path: &'static str,
    n: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..n)
        .map(|_| {
            let (probe, stop) = (probe.clone(), stop.clone());
            tokio::spawn(async move {
                let mut calls = 0;
                while !stop.load(Ordering::Relaxed) {
                    let _ = probe.call("GET", path, None, &anonymous()).await;
                    calls += 1;
                }
                calls
            })
        })
        .collect()
}

async fn scenario(name: &str, limits: RuntimeLimits) {
    let k = TestKernel::sqlite_with(limits).await;
    kernel::sites::create(
        &k.kernel.db,
        &kernel::authz::Actor::System("bench"),
        kernel::sites::NewSite {
            code: "CITY".into(),
            name_zh: "市".into(),
            kind: "city".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins");
    let probe = k
        .install(&k.package(dir.join("probe")).await)
        .await
        .at("CITY");
    k.enable("probe", "CITY").await;
    let other = k
        .install(&k.package(dir.join("other")).await)
        .await
        .at("CITY");
    k.enable("other", "CITY").await;
    innocent_writes(&other, 200).await;
    let mut idle = innocent_writes(&other, 1000).await;
    let (idle50, idle99) = (pct(&mut idle, 0.5), pct(&mut idle, 0.99));

    let stop = Arc::new(AtomicBool::new(false));
    let mut noisy = flood(&probe, "/loop", 16, stop.clone());
    noisy.extend(flood(&probe, "/bomb", 16, stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut busy = innocent_writes(&other, 1000).await;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut noisy_calls = 0;
    for h in noisy {
        noisy_calls += h.await.unwrap();
    }
    let (busy50, busy99) = (pct(&mut busy, 0.5), pct(&mut busy, 0.99));
    println!(
        "{name}: innocent write alone p50 {idle50:.2} ms, p99 {idle99:.2} ms; \
         beside 16 spinning + 16 memory-growing calls p50 {busy50:.2} ms, p99 {busy99:.2} ms \
         (p99 {:.2}x idle; {noisy_calls} noisy calls ended in {:.1} s)",
        busy99 / idle99,
        took.as_secs_f64()
    );
    k.cleanup().await;
}

#[tokio::main]
async fn main() {
    // The fair share as the kernel ships it.
    scenario("fair share (default limits)", RuntimeLimits::default()).await;
    // Without it: any number of calls, every worker thread for guest code.
    scenario(
        "no fair share (1,024 calls, 1,024 guest slices per plugin)",
        RuntimeLimits {
            max_concurrent_calls: 1024,
            cpu_share: 1024,
            node_cpu_slices: 1024,
            ..Default::default()
        },
    )
    .await;
}
