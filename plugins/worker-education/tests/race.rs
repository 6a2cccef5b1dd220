//! Limits under concurrency, on SQLite and PostgreSQL, in one test city per
//! backend: 50 spends at once against a fund with room for 10 — exactly 10
//! succeed and the fund is spent to the yuan; 20 roster additions at once
//! for a cohort of 5 — exactly 5 are on the roster.

mod common;

use common::{this_year, today, City};
use lifelong_harness::TestKernel;
use serde_json::json;

async fn fifty_spends_for_ten(c: &City) {
    let prog = c.program("CITY-OU", c.ou, 100, json!({})).await;
    let (s, v) = c
        .call(
            "CITY",
            c.city_admin,
            "POST",
            "/funds",
            json!({"name": "市专项", "year": this_year(), "budget": 1000}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let f = v["id"].as_i64().unwrap();
    let path = format!("/funds/{f}/spend");
    let results = futures_util::future::join_all((0..50).map(|n| {
        c.call("CITY", c.city_admin, "POST", &path, json!({"program_id": prog, "amount": 100, "trainees": 1, "evidence": format!("发票 {n}")}))
    }))
    .await;
    let ok = results.iter().filter(|(s, _)| *s == 201).count();
    let refused = results.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!((ok, refused), (10, 40), "{results:?}");
    let (_, v) = c.get("CITY", c.city_admin, &format!("/funds/{f}")).await;
    assert_eq!(
        (
            v["spent"].as_i64(),
            v["movements"].as_array().unwrap().len()
        ),
        (Some(1000), 10),
        "{v}"
    );
}

async fn roster_within_cohort(c: &City) {
    let (s, v) = c.call("T1-E1", c.hr1, "POST", "/orders", json!({"provider": "CITY-OU", "topic": "数字化转型定制班", "category": "professional", "cohort_size": 5, "hours": 12, "starts_on": today(), "ends_on": today(), "price": 5000})).await;
    assert_eq!(s, 201, "{v}");
    let o = v["id"].as_i64().unwrap();
    c.call(
        "CITY-OU",
        c.ou,
        "POST",
        &format!("/orders/{o}/quote"),
        json!({"price": 5000}),
    )
    .await;
    let (s, _) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            &format!("/orders/{o}/accept"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let mut people = Vec::new();
    for _ in 0..20 {
        people.push(c.staff("employee", "", "").await);
    }
    let path = format!("/orders/{o}/roster");
    let results = futures_util::future::join_all(
        people
            .iter()
            .map(|p| c.call("T1-E1", c.hr1, "POST", &path, json!({"person_ids": [p]}))),
    )
    .await;
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 200).count(),
        5,
        "{results:?}"
    );
    let (_, v) = c.get("T1-E1", c.hr1, &format!("/orders/{o}")).await;
    assert_eq!(v["roster"], 5, "{v}");
}

async fn race(k: TestKernel) {
    let c = City::new(k).await;
    fifty_spends_for_ten(&c).await;
    roster_within_cohort(&c).await;
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_sqlite() {
    race(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_postgres() {
    race(TestKernel::postgres().await).await;
}
