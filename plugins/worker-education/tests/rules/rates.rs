use crate::common::{sys, City};

pub async fn rates_and_report(c: &City) {
    let (s, v) = c.get("T1-E1", c.hr1, "/enterprises/T1-E1").await;
    assert_eq!(s, 200, "{v}");
    let r = &v["rates"];
    let (staff, trained) = (r["staff"].as_i64().unwrap(), r["trained"].as_i64().unwrap());
    assert!(staff > 5 && trained > 3 && trained < staff, "{v}");
    assert_eq!(
        r["training_rate"].as_f64().unwrap(),
        trained as f64 / staff as f64
    );
    assert!(r["compliance_rate"].as_f64().unwrap() > 0.0, "{v}");
    let (s, _) = c.get("T1-E2", c.hr1, "/enterprises/T1-E1").await;
    assert_eq!(s, 200, "HR of T1-E1 may ask at any site");
    let (s, _) = c.get("T1-E1", c.hr2, "/enterprises/T1-E1").await;
    assert_eq!(s, 403, "not another enterprise's HR");
    let (s, rep) = c.get("T1", c.t1_admin, "/reports").await;
    assert_eq!(s, 200, "{rep}");
    assert_eq!(
        rep["learning_enterprises"]["by_enterprise"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{rep}"
    );
    assert!(
        rep["verified_hours_by_category"]["professional"]
            .as_i64()
            .unwrap()
            >= 119 + 80,
        "{rep}"
    );
    assert!(rep["orders"]["completed"].as_i64().unwrap() >= 1, "{rep}");
    let (s, rep) = c.get("CITY", c.city_admin, "/reports").await;
    assert_eq!(s, 200);
    assert!(
        rep["programs"]["demonstration"].as_i64().unwrap() >= 1,
        "{rep}"
    );
    let (s, _) = c.get("T2", c.t1_admin, "/reports").await;
    assert_eq!(s, 403, "not another township's");
    let (s, _) = c.get("T1", c.hr1, "/reports").await;
    assert_eq!(s, 403, "site admins of the site");
    training_rate_indicator(c, staff, trained).await;
    let idno = kernel::identity::reveal_id_number(&c.k.kernel, &sys(), c.hr1)
        .await
        .unwrap();
    assert!(!rep.to_string().contains(&idno[..10]));
}

/// `worker-education.training_rate` as the kernel asks for it: T1-E1's
/// share today is the one its rates show (every activity of the story is
/// dated and verified by today); before any staff was registered there is
/// no value; T1 covers both of its enterprises, T2 its own.
async fn training_rate_indicator(c: &City, staff: i64, trained: i64) {
    const KEY: &str = "worker-education.training_rate";
    let today = kernel::sites::today();
    let e1 = c.p.at("T1-E1");
    assert_eq!(
        e1.indicator(KEY, &today).await,
        Ok(Some(trained as f64 / staff as f64))
    );
    assert_eq!(e1.indicator(KEY, "2025-12-31").await, Ok(None));
    let t1 = c.p.at("T1").indicator(KEY, &today).await.unwrap().unwrap();
    assert!(t1 > 0.0 && t1 < 1.0, "{t1}");
    let t2 = c.p.at("T2").indicator(KEY, &today).await;
    assert!(
        matches!(t2, Ok(Some(v)) if (0.0..=1.0).contains(&v)),
        "{t2:?}"
    );
}
