//! Capacity under concurrency, on SQLite and PostgreSQL: 200 volunteers
//! sign up at once for a need of 30 — exactly 30 are confirmed, the rest
//! wait as applied, and a coordinator cannot confirm past the number wanted.

mod common;

use common::City;
use lifelong_harness::TestKernel;
use serde_json::json;

async fn two_hundred_for_thirty(k: TestKernel) {
    let c = City::new(k).await;
    let need = c
        .need(3 * 1440, 3 * 1440 + 120, 30, json!({"min_wanted": 10}))
        .await;
    let mut people = Vec::new();
    for _ in 0..200 {
        people.push(c.volunteer().await.0);
    }
    let results = futures_util::future::join_all(people.iter().map(|p| {
        let plugin = c.p.clone();
        let who = c.as_(*p);
        async move {
            plugin
                .post(&format!("/needs/{need}/signups"), None, &who)
                .await
                .unwrap()
        }
    }))
    .await;
    assert!(results.iter().all(|(s, _)| *s == 201), "{results:?}");
    let confirmed = results
        .iter()
        .filter(|(_, v)| v["status"] == "confirmed")
        .count();
    let applied = results
        .iter()
        .filter(|(_, v)| v["status"] == "applied")
        .count();
    assert_eq!((confirmed, applied), (30, 170));
    let (s, roster) = c.get(c.staff, &format!("/needs/{need}/signups")).await;
    assert_eq!(s, 200, "{roster}");
    assert_eq!(roster["need"]["confirmed"], 30);
    assert_eq!(roster["signups"]["confirmed"].as_array().unwrap().len(), 30);
    // A coordinator cannot confirm a 31st.
    let waiting = roster["signups"]["applied"][0]["id"].as_i64().unwrap();
    let (s, v) = c
        .post(c.staff, &format!("/signups/{waiting}/confirm"), json!({}))
        .await;
    assert_eq!(s, 409, "{v}");
    // A cancellation frees a place the coordinator can then fill.
    let first = roster["signups"]["confirmed"][0]["id"].as_i64().unwrap();
    let (s, _) = c
        .post(c.staff, &format!("/signups/{first}/cancel"), json!({}))
        .await;
    assert_eq!(s, 200);
    let (s, v) = c
        .post(c.staff, &format!("/signups/{waiting}/confirm"), json!({}))
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("confirmed")), "{v}");
    let (_, roster) = c.get(c.staff, &format!("/needs/{need}/signups")).await;
    assert_eq!(roster["need"]["confirmed"], 30);
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_for_thirty_sqlite() {
    two_hundred_for_thirty(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_for_thirty_postgres() {
    two_hundred_for_thirty(TestKernel::postgres().await).await;
}
