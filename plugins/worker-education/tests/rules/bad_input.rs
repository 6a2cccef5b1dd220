use crate::common::{today, City};
use serde_json::json;

pub async fn bad_input(c: &City) {
    let (s, v) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            "/orders",
            json!({"provider": "CITY-OU", "colour": "red"}),
        )
        .await;
    assert_eq!(s, 400, "unknown fields: {v}");
    let (s, v) = c.call("T1-E1", c.hr1, "POST", "/orders", json!({"provider": "CITY-OU", "topic": "t", "category": "public", "cohort_size": 5, "hours": 8, "starts_on": "next week", "ends_on": today(), "price": 1})).await;
    assert_eq!(
        (s, v["type"].as_str()),
        (422, Some("urn:lifelong:problem:invalid")),
        "{v}"
    );
    assert!(v["detail"].as_str().unwrap().contains("starts_on"), "{v}");
    let (s, v) = c.call("T1-E1", c.hr1, "POST", "/orders", json!({"provider": "T1-V1", "topic": "t", "category": "public", "cohort_size": 5, "hours": 8, "starts_on": today(), "ends_on": today(), "price": 1})).await;
    assert_eq!(s, 422, "a village is no provider: {v}");
    let (s, _) = c.get("T1-E1", c.hr1, "/orders/abc").await;
    assert_eq!(s, 400);
    let (s, _) = c.get("T1-E1", c.hr1, "/orders/999999").await;
    assert_eq!(s, 404);
    let (s, _) =
        c.p.at("T1-E1")
            .post("/activities", Some(json!({})), &c.k.anonymous())
            .await
            .unwrap();
    assert_eq!(s, 401);
    let (s, v) = c.call("CITY", c.city_admin, "POST", "/rules", json!({"code": "r", "name": "r", "population": "employee", "total_hours": 90, "category": "public", "category_share": "3/2", "valid_from": "2026-01-01"})).await;
    assert_eq!(s, 422, "{v}");
    let (_, orders) = c.get("T1-E1", c.hr1, "/orders").await;
    assert!(
        !orders["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["topic"] == "t"),
        "nothing written: {orders}"
    );
}
