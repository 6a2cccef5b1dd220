use crate::common::{today, City};
use serde_json::json;

pub async fn programs_and_orders(c: &City) {
    let (s, v) = c.call("T1", c.t1_admin, "POST", "/programs", json!({"title": "t", "category": "public", "mode": "online", "hours": 3, "starts_on": today(), "ends_on": today(), "capacity": 3})).await;
    assert_eq!(s, 422, "a township is no provider: {v}");
    let prog = c
        .program(
            "CITY-OU",
            c.ou,
            2,
            json!({"demonstration": true, "mode": "blended"}),
        )
        .await;
    let (x, y, z) = (
        c.staff("employee", "", "").await,
        c.staff("employee", "", "").await,
        c.staff("employee", "", "").await,
    );
    for p in [x, y] {
        let (s, v) = c
            .call(
                "CITY-OU",
                p,
                "POST",
                &format!("/programs/{prog}/enrolments"),
                json!({}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, _) = c
        .call(
            "CITY-OU",
            z,
            "POST",
            &format!("/programs/{prog}/enrolments"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "full");
    let (s, _) = c
        .call(
            "CITY-OU",
            x,
            "POST",
            &format!("/programs/{prog}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(s, 403, "only the provider");
    let (s, v) = c
        .call(
            "CITY-OU",
            c.ou,
            "POST",
            &format!("/programs/{prog}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["activities"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(c.account_hours(x).await, (24.0, 1));
    let (s, _) = c
        .call(
            "CITY-OU",
            c.ou,
            "POST",
            &format!("/programs/{prog}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "again: nothing more");
    assert_eq!(c.account_hours(x).await, (24.0, 1));
    // A provider records hours only for persons in the area it serves;
    // otherwise nothing at all is completed.
    let near = c.program("T1-E2", c.hr2, 5, json!({})).await;
    let far = c.person("T2-V1").await;
    let (s, v) = c
        .call(
            "T2-E1",
            c.city_admin,
            "POST",
            "/staff",
            json!({"person_id": far, "population": "employee"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    for p in [z, far] {
        let (s, v) = c
            .call(
                "T1-E2",
                c.city_admin,
                "POST",
                &format!("/programs/{near}/enrolments"),
                json!({"person_id": p}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = c
        .call(
            "T1-E2",
            c.hr2,
            "POST",
            &format!("/programs/{near}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains(&far.to_string()),
        "{v}"
    );
    assert_eq!(c.account_hours(z).await, (0.0, 0), "nothing half-written");
    let (s, v) = c
        .call(
            "T1-E2",
            c.hr2,
            "POST",
            &format!("/programs/{near}/complete"),
            json!({"person_ids": [z]}),
        )
        .await;
    assert_eq!(
        (s, v["activities"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{v}"
    );
    assert_eq!(c.account_hours(z).await, (24.0, 1));
    let (_, list) = c
        .get("CITY", c.city_admin, "/programs?demonstration=true")
        .await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == prog),
        "{list}"
    );

    // An order through its states.
    let (s, v) = c.call("T1-E1", c.hr1, "POST", "/orders", json!({"provider": "T1-E2", "topic": "x", "category": "job_skills", "cohort_size": 2, "hours": 16, "starts_on": today(), "ends_on": today(), "price": 9000})).await;
    assert_eq!(s, 201, "an enterprise centre may provide too: {v}");
    let (s, v) = c.call("T1-E1", c.hr1, "POST", "/orders", json!({"provider": "CITY-TTS", "topic": "安全生产管理定制班", "category": "job_skills", "cohort_size": 2, "hours": 16, "starts_on": today(), "ends_on": today(), "price": 8000})).await;
    assert_eq!(s, 201, "{v}");
    let o = v["id"].as_i64().unwrap();
    let (s, _) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            &format!("/orders/{o}/accept"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "no quote yet");
    let (s, _) = c
        .call(
            "CITY-TTS",
            c.hr1,
            "POST",
            &format!("/orders/{o}/quote"),
            json!({"price": 8500}),
        )
        .await;
    assert_eq!(s, 403, "the provider quotes");
    let (s, v) = c
        .call(
            "CITY-TTS",
            c.tts,
            "POST",
            &format!("/orders/{o}/quote"),
            json!({"price": 8500}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("quoted")), "{v}");
    let (s, v) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            &format!("/orders/{o}/accept"),
            json!({}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("accepted")), "{v}");
    let other = c.call("T1-E2", c.hr2, "GET", "/staff", json!(null)).await.1["items"][0]
        ["person_id"]
        .as_i64()
        .unwrap();
    let (s, v) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            &format!("/orders/{o}/roster"),
            json!({"person_ids": [x, other]}),
        )
        .await;
    assert_eq!(s, 422, "only the enterprise's own staff: {v}");
    let (s, v) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            &format!("/orders/{o}/roster"),
            json!({"person_ids": [x, y, z]}),
        )
        .await;
    assert_eq!(s, 409, "above the cohort: {v}");
    let (s, v) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            &format!("/orders/{o}/roster"),
            json!({"person_ids": [x, y]}),
        )
        .await;
    assert_eq!((s, v["roster"].as_i64()), (200, Some(2)), "{v}");
    let (s, _) = c
        .call(
            "CITY-TTS",
            c.tts,
            "POST",
            &format!("/orders/{o}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "not delivered yet");
    let (s, _) = c
        .call(
            "CITY-TTS",
            c.tts,
            "POST",
            &format!("/orders/{o}/deliver"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = c
        .call(
            "CITY-TTS",
            c.tts,
            "POST",
            &format!("/orders/{o}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str(), v["activities"].as_i64()),
        (200, Some("completed"), Some(2)),
        "{v}"
    );
    assert_eq!(c.account_hours(y).await, (40.0, 2));
    let (s, _) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            &format!("/orders/{o}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "a completed order stays completed");
}
