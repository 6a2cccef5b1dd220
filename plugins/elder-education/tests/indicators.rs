//! The plan indicators elder education provides (1, 5, 8, 9), asked for as
//! the kernel asks (through the registry, at a site, as of a date), on
//! SQLite and PostgreSQL: levels over the subtree, a past date ignoring
//! what came later, nothing where the module is not enabled.

mod common;

use common::{sys, City, ID};
use lifelong_harness::TestKernel;
use serde_json::json;

/// Far enough ahead to include everything recorded today, whatever the
/// kernel's time zone.
const NOW: &str = "2099-12-31";

async fn indicators_as_of(k: TestKernel) {
    let c = City::new(k).await;
    // Two more elder universities in T2, opened early in 2025: one run with
    // a social organisation, one public. U1 (T1) opens today.
    for (code, operator) in [("U2", "social_organisation"), ("U3", "public")] {
        kernel::sites::create(
            &c.k.kernel.db,
            &sys(),
            kernel::sites::NewSite {
                code: code.into(),
                name_zh: code.into(),
                kind: "elder_university".into(),
                parent_code: Some("T2".into()),
                operator: Some(operator.into()),
                opened_on: Some("2025-02-01".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let city = c.p.at("CITY");
    assert_eq!(city.indicator("1", NOW).await, Ok(Some(2.0)));
    assert_eq!(city.indicator("1", "2025-06-30").await, Ok(Some(1.0)));
    assert_eq!(city.indicator("1", "2025-01-31").await, Ok(Some(0.0)));
    assert_eq!(c.p.at("T1").indicator("1", NOW).await, Ok(Some(1.0)));
    assert_eq!(c.p.at("T2").indicator("1", NOW).await, Ok(Some(1.0)));

    // Learning teams (9): one founded last year, one today; a future
    // founding date is refused and writes nothing.
    for body in [
        json!({"name": "书法队", "founded_on": "2025-03-01"}),
        json!({"name": "合唱队"}),
    ] {
        let (s, v) = c.post(c.staff, "/teams", body).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = c
        .post(
            c.staff,
            "/teams",
            json!({"name": "舞蹈队", "founded_on": "2098-01-01"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(city.indicator("9", NOW).await, Ok(Some(2.0)));
    assert_eq!(city.indicator("9", "2025-06-30").await, Ok(Some(1.0)));
    assert_eq!(city.indicator("9", "2025-02-28").await, Ok(Some(0.0)));
    assert_eq!(c.p.at("T2").indicator("9", NOW).await, Ok(Some(0.0)));

    // Smart-help scenarios (5).
    for body in [
        json!({"code": "pay", "name": "扫码支付", "created_on": "2025-01-10"}),
        json!({"code": "taxi", "name": "网约车"}),
    ] {
        let (s, v) = c.post(c.staff, "/scenarios", body).await;
        assert_eq!(s, 201, "{v}");
    }
    assert_eq!(city.indicator("5", NOW).await, Ok(Some(2.0)));
    assert_eq!(city.indicator("5", "2025-06-30").await, Ok(Some(1.0)));
    assert_eq!(city.indicator("5", "2025-01-09").await, Ok(Some(0.0)));

    // Brand projects (8): a designation held since a date.
    let (s, v) =
        c.p.call(
            "PUT",
            "/designation",
            Some(
                json!({"kind": "one_school_one_brand", "name": "银龄书院", "since": "2025-05-01"}),
            ),
            &c.as_(c.staff),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(city.indicator("8", "2025-04-30").await, Ok(Some(0.0)));
    assert_eq!(city.indicator("8", "2025-05-01").await, Ok(Some(1.0)));
    assert_eq!(c.p.at("U1").indicator("8", NOW).await, Ok(Some(1.0)));

    // Asking again for a past date gives the same answer after more data.
    let (s, _) = c.post(c.staff, "/teams", json!({"name": "太极队"})).await;
    assert_eq!(s, 201);
    assert_eq!(city.indicator("9", "2025-06-30").await, Ok(Some(1.0)));
    assert_eq!(city.indicator("9", NOW).await, Ok(Some(3.0)));

    // Not enabled at T2: no value there, nor below; still one at the city.
    c.k.registry
        .set_enabled(&sys(), ID, "T2", false)
        .await
        .unwrap();
    assert_eq!(c.p.at("T2").indicator("1", NOW).await, Ok(None));
    assert_eq!(c.p.at("U2").indicator("9", NOW).await, Ok(None));
    assert_eq!(city.indicator("9", NOW).await, Ok(Some(3.0)));

    // What it does not declare, or a date that is not one, is refused.
    let e = city.indicator("7", NOW).await.unwrap_err();
    assert_eq!(e, "indicator 7 of plugin elder-education not found");
    let e = city.indicator("1", "2025-02-30").await.unwrap_err();
    assert!(e.contains("not a date written YYYY-MM-DD"), "{e}");

    // The registry entry and the kernel's list show what it declares.
    let info = c.k.registry.info(ID).await.unwrap();
    let keys: Vec<_> = info.indicators.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["1", "5", "8", "9"]);
    assert!(info.indicators.iter().all(|i| i.formula_version == 1));
    let provided = c.k.registry.provided_indicators();
    assert_eq!(provided.len(), 4);
    assert!(provided.iter().all(|i| i.plugin == ID));
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicators_as_of_sqlite() {
    indicators_as_of(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicators_as_of_postgres() {
    indicators_as_of(TestKernel::postgres().await).await;
}
