use crate::common::{this_year, City};
use serde_json::json;

pub async fn funds(c: &City) {
    let prog = c
        .program("CITY-TTS", c.tts, 30, json!({"category": "public"}))
        .await;
    let (s, v) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            "/funds",
            json!({"name": "f", "year": this_year(), "budget": 100}),
        )
        .await;
    assert_eq!(s, 422, "the city or a township holds funds: {v}");
    let (s, v) = c.call("T1", c.t1_admin, "POST", "/funds", json!({"name": "东湖街道继续教育专项资金", "year": this_year(), "budget": 20000, "per_trainee_cap": 300, "categories": ["public", "professional"]})).await;
    assert_eq!(s, 201, "{v}");
    let f = v["id"].as_i64().unwrap();
    let (s, _) = c
        .call(
            "T1",
            c.hr1,
            "POST",
            &format!("/funds/{f}/spend"),
            json!({"program_id": prog, "amount": 100, "trainees": 1, "evidence": "e"}),
        )
        .await;
    assert_eq!(s, 403, "the fund's managers");
    let (s, v) = c
        .call(
            "T1",
            c.t1_admin,
            "POST",
            &format!("/funds/{f}/allocations"),
            json!({"program_id": prog, "amount": 25000}),
        )
        .await;
    assert_eq!(s, 409, "beyond the budget: {v}");
    let (s, v) = c
        .call(
            "T1",
            c.t1_admin,
            "POST",
            &format!("/funds/{f}/allocations"),
            json!({"program_id": prog, "amount": 5000}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = c
        .call(
            "T1",
            c.t1_admin,
            "POST",
            &format!("/funds/{f}/spend"),
            json!({"program_id": prog, "amount": 3100, "trainees": 10, "evidence": "发票 0001"}),
        )
        .await;
    assert_eq!(s, 422, "per-trainee cap: {v}");
    let (s, v) = c
        .call(
            "T1",
            c.t1_admin,
            "POST",
            &format!("/funds/{f}/spend"),
            json!({"program_id": prog, "amount": 3000, "trainees": 10, "evidence": "发票 0001"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let spend = v["id"].as_i64().unwrap();
    let (s, v) = c
        .call(
            "T1",
            c.t1_admin,
            "POST",
            &format!("/funds/{f}/spend"),
            json!({"program_id": prog, "amount": 2100, "trainees": 10, "evidence": "发票 0002"}),
        )
        .await;
    assert_eq!(s, 409, "beyond the allocation: {v}");
    let (s, v) = c
        .call(
            "T1",
            c.t1_admin,
            "POST",
            &format!("/movements/{spend}/reverse"),
            json!({"reason": "重复报销"}),
        )
        .await;
    assert_eq!((s, v["amount"].as_i64()), (201, Some(-3000)), "{v}");
    let (s, _) = c
        .call(
            "T1",
            c.t1_admin,
            "POST",
            &format!("/movements/{spend}/reverse"),
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(s, 409, "once");
    let (_, v) = c.get("T1", c.t1_admin, &format!("/funds/{f}")).await;
    assert_eq!(
        (
            v["spent"].as_i64(),
            v["movements"].as_array().unwrap().len()
        ),
        (Some(0), 2),
        "every movement kept: {v}"
    );
    let (s, _) = c.call("CITY", c.city_admin, "POST", "/funds", json!({"name": "市继续教育专项资金", "year": this_year(), "budget": 500000, "categories": ["job_skills"]})).await;
    assert_eq!(s, 201);
    let (_, rep) = c.get("CITY", c.city_admin, "/reports").await;
    assert_eq!(rep["funds"].as_array().unwrap().len(), 2, "{rep}");
}
