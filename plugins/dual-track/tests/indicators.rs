//! Plan indicator 2 (new distance-education specialities), asked for as the
//! kernel asks (through the registry, at a site, as of a date), on SQLite
//! and PostgreSQL: a level over the subtree; a past date ignores what was
//! created later; nothing where the module is not enabled.

mod common;

use common::{standard, sys, City, ID};
use lifelong_harness::TestKernel;
use serde_json::json;

const NOW: &str = "2099-12-31";

async fn distance_specialities_as_of(k: TestKernel) {
    let c = City::new(k).await;
    for (code, distance, created_on) in [
        ("D-OLD", true, Some("2025-03-01")),
        ("D-NEW", true, None),
        ("F-OLD", false, Some("2025-03-01")),
    ] {
        let mut body =
            json!({"code": code, "name": code, "distance": distance, "standard": standard(false)});
        if let Some(d) = created_on {
            body["created_on"] = json!(d);
        }
        let (s, v) = c.post(c.school_admin, "/specialities", body).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = c
        .post(
            c.school_admin,
            "/specialities",
            json!({"code": "D-FUT", "name": "x", "distance": true, "standard": standard(false), "created_on": "2098-01-01"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let city = c.p.at("CITY");
    assert_eq!(city.indicator("2", NOW).await, Ok(Some(2.0)));
    assert_eq!(city.indicator("2", "2025-06-30").await, Ok(Some(1.0)));
    assert_eq!(city.indicator("2", "2025-02-28").await, Ok(Some(0.0)));
    assert_eq!(c.p.at("T1").indicator("2", NOW).await, Ok(Some(2.0)));
    assert_eq!(c.p.at("T2").indicator("2", NOW).await, Ok(Some(0.0)));
    // One more today: the past date's answer does not move.
    let (s, v) = c
        .post(
            c.school_admin,
            "/specialities",
            json!({"code": "D-NEW2", "name": "x", "distance": true, "standard": standard(false)}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(city.indicator("2", "2025-06-30").await, Ok(Some(1.0)));
    assert_eq!(city.indicator("2", NOW).await, Ok(Some(3.0)));
    // Not enabled at T2: no value there.
    c.k.registry
        .set_enabled(&sys(), ID, "T2", false)
        .await
        .unwrap();
    assert_eq!(c.p.at("T2").indicator("2", NOW).await, Ok(None));
    assert_eq!(
        c.p.at("CITY").indicator("1", NOW).await,
        Err("indicator 1 of plugin dual-track not found".to_string())
    );
    let keys: Vec<_> =
        c.k.registry
            .provided_indicators()
            .into_iter()
            .map(|i| (i.plugin, i.key))
            .collect();
    assert_eq!(keys, [(ID.to_string(), "2".to_string())]);
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distance_specialities_as_of_sqlite() {
    distance_specialities_as_of(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distance_specialities_as_of_postgres() {
    distance_specialities_as_of(TestKernel::postgres().await).await;
}
