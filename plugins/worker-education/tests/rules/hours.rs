use crate::common::{sys, today, City};
use serde_json::json;

pub async fn hours(c: &City) {
    // HR's own hours: HR is staff too, and cannot verify them.
    let (s, v) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            "/staff",
            json!({"person_id": c.hr1, "population": "employee"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = c.call("T1-E1", c.hr1, "POST", "/activities", json!({"title": "远程课程", "category": "public", "kind": "distance", "hours": 8, "on_date": today(), "evidence": "证书 A-1"})).await;
    assert_eq!(s, 201, "{v}");
    let own = v["id"].as_i64().unwrap();
    let (s, v) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            &format!("/activities/{own}/verify"),
            json!({}),
        )
        .await;
    assert_eq!(s, 403, "never by the person themself: {v}");
    assert_eq!(c.account_hours(c.hr1).await, (0.0, 0));
    let (s, _) = c
        .call(
            "T1-E2",
            c.hr2,
            "POST",
            &format!("/activities/{own}/verify"),
            json!({}),
        )
        .await;
    assert_eq!(s, 403, "not by another enterprise's HR");
    // Verified once, however often verification is repeated, even at once.
    let path = format!("/activities/{own}/verify");
    let results = futures_util::future::join_all(
        (0..4).map(|_| c.call("T1-E1", c.city_admin, "POST", &path, json!({}))),
    )
    .await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    assert_eq!(
        results
            .iter()
            .filter(|(_, v)| v["replayed"] == false)
            .count(),
        1
    );
    assert_eq!(c.account_hours(c.hr1).await, (8.0, 1));
    let st = kernel::accounts::ledger::statement(&c.k.kernel, &sys(), c.hr1, 0, 200)
        .await
        .unwrap();
    assert!(
        (st.entries[0].credits - 0.8).abs() < 1e-9,
        "through the rule: {:?}",
        st.entries[0]
    );
    // One category per activity; bad submissions are refused.
    let p = c.staff("employee", "", "").await;
    for bad in [
        json!({"title": "t", "category": ["public", "professional"], "kind": "conference", "hours": 8, "on_date": today(), "evidence": "e"}),
        json!({"title": "t", "category": "cooking", "kind": "conference", "hours": 8, "on_date": today(), "evidence": "e"}),
        json!({"title": "t", "category": "public", "kind": "conference", "hours": 300, "on_date": today(), "evidence": "e"}),
        json!({"title": "t", "category": "public", "kind": "conference", "hours": 8, "on_date": "2999-01-01", "evidence": "e"}),
        json!({"title": "t", "category": "public", "kind": "conference", "hours": 8, "on_date": today(), "evidence": " "}),
    ] {
        let (s, v) = c.call("T1-E1", p, "POST", "/activities", bad.clone()).await;
        assert!(s == 400 || s == 422, "{bad} → {s} {v}");
    }
    let (_, mine) = c.get("T1-E1", p, "/activities?mine=true").await;
    assert_eq!(
        mine["items"].as_array().unwrap().len(),
        0,
        "nothing half-written"
    );
    // A reversal with a reason reverses the ledger entry.
    let a = c.hours(p, "public", 10, &today()).await;
    let (s, _) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            &format!("/activities/{a}/reverse"),
            json!({"reason": ""}),
        )
        .await;
    assert_eq!(s, 422);
    let (s, v) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            &format!("/activities/{a}/reverse"),
            json!({"reason": "证明材料不实"}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("reversed")), "{v}");
    assert_eq!(c.account_hours(p).await, (0.0, 2));
    let (_, me) = c.get("T1-E1", p, "/me").await;
    assert_eq!(me["hours"], 0, "{me}");
}
