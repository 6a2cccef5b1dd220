//! Elder education asks, volunteers answer, on SQLite and PostgreSQL: a
//! redelivered `assistants-wanted` opens one need; and end to end, elder
//! education packaged and enabled at the city publishes it when a course
//! wants assistants, and the delivery pass `serve` runs opens the need at
//! the course's school.

mod common;

use common::City;
use lifelong_harness::TestKernel;
use serde_json::json;

async fn open_needs(c: &City, site: &str) -> Vec<serde_json::Value> {
    let (s, v) = c.p.at(site).get("/needs", &c.as_(c.staff)).await.unwrap();
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

/// Put an `assistants-wanted` event for course 41 at U1 in the outbox, due
/// to the volunteers plugin, as elder education's publish would.
async fn publish(c: &City) -> i64 {
    let payload =
        json!({"course_id": 41, "site": "U1", "title": "智能手机应用", "schedule": "周四 14:30"});
    let mut tx = c.k.kernel.db.begin().await.unwrap();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO plugin_outbox (name, payload, site, published_at) \
         VALUES ('elder-education.assistants-wanted', $1, (SELECT path FROM sites WHERE code = 'U1'), 0) RETURNING id",
    )
    .bind(payload.to_string())
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO plugin_deliveries (event_id, subscriber, attempts, next_attempt_at) VALUES ($1, 'volunteers', 0, 0)")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn redelivery_opens_one_need(k: TestKernel) {
    let c = City::new(k).await;
    let first = publish(&c).await;
    let pass = c.k.deliver(&[&c.p]).await;
    assert!(format!("{pass:?}").contains('1'), "{pass:?}");
    let needs = open_needs(&c, "U1").await;
    assert_eq!(needs.len(), 1, "{needs:?}");
    assert_eq!(needs[0]["source"], "elder-education/course/41");
    assert_eq!(needs[0]["role"], "teaching_assistant");
    assert_eq!(needs[0]["flexible"], true);
    assert_eq!(needs[0]["max_wanted"], 2);
    // The same event delivered again, and the same course published again.
    let mut tx = c.k.kernel.db.begin().await.unwrap();
    sqlx::query("UPDATE plugin_deliveries SET delivered_at = NULL WHERE event_id = $1")
        .bind(first)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    publish(&c).await;
    c.k.deliver(&[&c.p]).await;
    let (delivered,): (i64,) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM plugin_deliveries WHERE subscriber = 'volunteers' AND delivered_at IS NOT NULL AND last_error IS NULL",
    )
    .fetch_one(c.k.kernel.db.reader())
    .await
    .unwrap();
    assert_eq!(delivered, 2, "both deliveries succeeded");
    assert_eq!(open_needs(&c, "U1").await.len(), 1, "still one need");
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_opens_one_need_sqlite() {
    redelivery_opens_one_need(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_opens_one_need_postgres() {
    redelivery_opens_one_need(TestKernel::postgres().await).await;
}

async fn elder_education_end_to_end(k: TestKernel) {
    let c = City::new(k).await;
    let elder_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../elder-education");
    let pkg = c.k.package(elder_dir).await;
    let elder = c.k.install(&pkg).await.at("U1");
    c.k.enable("elder-education", "CITY").await;
    let staff = c.as_(c.staff);
    let (s, term) = elder
        .post("/terms", Some(json!({"code": "2026A", "name": "2026秋", "starts_on": "2026-09-01", "ends_on": "2027-01-15"})), &staff)
        .await
        .unwrap();
    assert_eq!(s, 201, "{term}");
    let course = json!({"term_id": term["id"], "title": "智能手机应用", "category": "digital_skills",
        "schedule": "周四 14:30", "venue": "电脑室", "capacity": 20, "sessions": 4, "hours": 8.0,
        "wants_assistants": true});
    let (s, course) = elder.post("/courses", Some(course), &staff).await.unwrap();
    assert_eq!(s, 201, "{course}");
    let plain = json!({"term_id": term["id"], "title": "太极拳", "category": "health",
        "schedule": "周二", "venue": "操场", "capacity": 20, "sessions": 4, "hours": 8.0});
    let (s, _) = elder.post("/courses", Some(plain), &staff).await.unwrap();
    assert_eq!(s, 201);
    assert!(
        open_needs(&c, "U1").await.is_empty(),
        "nothing before delivery"
    );
    c.k.deliver(&[&c.p]).await;
    let needs = open_needs(&c, "U1").await;
    assert_eq!(
        needs.len(),
        1,
        "one need, for the course that wants assistants: {needs:?}"
    );
    assert_eq!(needs[0]["site"], "U1");
    assert_eq!(
        needs[0]["source"],
        json!(format!("elder-education/course/{}", course["id"]))
    );
    assert!(needs[0]["title"].as_str().unwrap().contains("智能手机应用"));
    // A second pass delivers nothing new; the need is open for sign-up.
    c.k.deliver(&[&c.p]).await;
    assert_eq!(open_needs(&c, "U1").await.len(), 1);
    let (v, _) = c.volunteer().await;
    let (s, r) =
        c.p.at("U1")
            .post(
                &format!("/needs/{}/signups", needs[0]["id"]),
                None,
                &c.as_(v),
            )
            .await
            .unwrap();
    assert_eq!((s, r["status"].as_str()), (201, Some("applied")), "{r}");
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elder_education_end_to_end_sqlite() {
    elder_education_end_to_end(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elder_education_end_to_end_postgres() {
    elder_education_end_to_end(TestKernel::postgres().await).await;
}
