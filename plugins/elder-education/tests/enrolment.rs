//! Enrolment as it is served (installed through the registry, enabled at
//! the city, called at an elder university), on SQLite and PostgreSQL:
//! the 200-learner race, eligibility and limits, the lottery.

mod common;

use common::{this_year, City};
use lifelong_harness::TestKernel;
use serde_json::json;

/// 200 learners enrol at once in a 30-seat first-come course: 30 seated,
/// 170 waitlisted in arrival order; a withdrawal seats the head of the list.
async fn race_for_seats(k: TestKernel) {
    let c = City::new(k).await;
    let term = c.term("2026S").await;
    let course = c.course(term, 30, json!({})).await;
    let learners = c.learners(200, this_year() - 66).await;
    let results = futures_util::future::join_all(learners.iter().map(|l| {
        let p = c.p.clone();
        let who = c.as_(*l);
        async move {
            p.post(&format!("/courses/{course}/enrol"), None, &who)
                .await
                .unwrap()
        }
    }))
    .await;
    let seated = results
        .iter()
        .filter(|(_, v)| v["status"] == "enrolled")
        .count();
    let waiting = results
        .iter()
        .filter(|(_, v)| v["status"] == "waitlisted")
        .count();
    assert!(results.iter().all(|(s, _)| *s == 201), "{results:?}");
    assert_eq!((seated, waiting), (30, 170));
    let (_, roster) = c.get(c.staff, &format!("/courses/{course}/roster")).await;
    assert_eq!(roster["course"]["taken"], 30);
    let waitlist: Vec<i64> = roster["waitlisted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["person_id"].as_i64().unwrap())
        .collect();
    assert_eq!(waitlist.len(), 170);
    // Arrival order: each learner's own view puts them where the roster does.
    for (place, person) in waitlist.iter().enumerate().step_by(17) {
        let (_, mine) = c.get(*person, "/me/courses").await;
        assert_eq!(
            mine["items"][0]["waitlist_position"],
            json!(place + 1),
            "person {person}"
        );
    }
    let first_seated = roster["enrolled"][0]["person_id"].as_i64().unwrap();
    let (s, v) = c
        .post(
            first_seated,
            &format!("/courses/{course}/withdraw"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["promoted"], json!(waitlist[0]));
    let (_, roster) = c.get(c.staff, &format!("/courses/{course}/roster")).await;
    assert_eq!(roster["course"]["taken"], 30, "capacity never exceeded");
    assert_eq!(roster["enrolled"].as_array().unwrap().len(), 30);
    assert_eq!(roster["waitlisted"][0]["person_id"], json!(waitlist[1]));
    // No queue-jumping: withdrawing and enrolling again goes to the back.
    let (_, v) = c
        .post(
            waitlist[5],
            &format!("/courses/{course}/withdraw"),
            json!({}),
        )
        .await;
    assert_eq!(v["status"], "withdrawn");
    let (_, v) = c
        .post(waitlist[5], &format!("/courses/{course}/enrol"), json!({}))
        .await;
    assert_eq!(
        (v["status"].as_str(), v["waitlist_position"].as_i64()),
        (Some("waitlisted"), Some(169))
    );
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_for_seats_sqlite() {
    race_for_seats(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_for_seats_postgres() {
    race_for_seats(TestKernel::postgres().await).await;
}

/// Age from the person record, per site and by sex; the per-term limit.
async fn eligibility_and_limits(k: TestKernel) {
    let c = City::new(k).await;
    let term = c.term("2026S").await;
    let other_term = c.term("2026A").await;
    let courses = [
        c.course(term, 5, json!({})).await,
        c.course(term, 5, json!({})).await,
        c.course(term, 5, json!({})).await,
    ];
    let young = c.person(this_year() - 40, "male", "U1").await;
    let (s, v) = c
        .post(young, &format!("/courses/{}/enrol", courses[0]), json!({}))
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["type"], "urn:lifelong:problem:not-eligible");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("learners here must be 50 to 80 years old; this learner is "),
        "{v}"
    );
    let old = c.person(this_year() - 90, "male", "U1").await;
    let (s, _) = c
        .post(old, &format!("/courses/{}/enrol", courses[0]), json!({}))
        .await;
    assert_eq!(s, 422);
    // A different window for women, set at the site.
    c.setting("min_age_female", json!(58)).await;
    let woman = c.person(this_year() - 55, "female", "U1").await;
    let man = c.person(this_year() - 55, "male", "U1").await;
    let (s, _) = c
        .post(woman, &format!("/courses/{}/enrol", courses[0]), json!({}))
        .await;
    assert_eq!(s, 422);
    let (s, v) = c
        .post(man, &format!("/courses/{}/enrol", courses[0]), json!({}))
        .await;
    assert_eq!((s, v["status"].as_str()), (201, Some("enrolled")));
    // Two courses per term (the default), a third refused, another term fine.
    let (s, _) = c
        .post(man, &format!("/courses/{}/enrol", courses[1]), json!({}))
        .await;
    assert_eq!(s, 201);
    let (s, v) = c
        .post(man, &format!("/courses/{}/enrol", courses[2]), json!({}))
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(
        v["detail"],
        "a learner may hold at most 2 course(s) per term here"
    );
    let later = c.course(other_term, 5, json!({})).await;
    let (s, _) = c
        .post(man, &format!("/courses/{later}/enrol"), json!({}))
        .await;
    assert_eq!(s, 201);
    let (s, v) = c
        .post(man, &format!("/courses/{}/enrol", courses[0]), json!({}))
        .await;
    assert_eq!(
        (s, v["detail"].as_str()),
        (409, Some("already enrolled in course 1"))
    );
    // A learner cannot enrol someone else; staff can.
    let (s, _) = c
        .post(
            man,
            &format!("/courses/{}/enrol", courses[2]),
            json!({"person_id": woman}),
        )
        .await;
    assert_eq!(s, 403);
    let fit = c.person(this_year() - 61, "female", "U1").await;
    let (s, v) = c
        .post(
            c.staff,
            &format!("/courses/{}/enrol", courses[2]),
            json!({"person_id": fit}),
        )
        .await;
    assert_eq!((s, v["person_id"].as_i64()), (201, Some(fit)));
    // Staff act for residents of the school's area (T1), not beyond it.
    let resident = c.person(this_year() - 66, "male", "T1").await;
    let (s, v) = c
        .post(
            c.staff,
            &format!("/courses/{}/enrol", courses[2]),
            json!({"person_id": resident}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (201, Some("enrolled")), "{v}");
    let outsider = c.person(this_year() - 66, "male", "T2").await;
    let (s, _) = c
        .post(
            c.staff,
            &format!("/courses/{}/enrol", courses[2]),
            json!({"person_id": outsider}),
        )
        .await;
    assert_eq!(s, 404, "a person outside the school's area is not visible");
    // Staff routes are refused to learners.
    let (s, _) = c
        .post(
            man,
            "/terms",
            json!({"code": "X", "name": "X", "starts_on": "2026-01-01", "ends_on": "2026-02-01"}),
        )
        .await;
    assert_eq!(s, 403);
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eligibility_and_limits_sqlite() {
    eligibility_and_limits(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eligibility_and_limits_postgres() {
    eligibility_and_limits(TestKernel::postgres().await).await;
}

/// A lottery: applications, a seeded draw anyone can re-run from what is
/// published, the returning learners' share never exceeded (also when a
/// seat is freed later).
async fn lottery(k: TestKernel) {
    let c = City::new(k).await;
    let before = c.term("2025A").await;
    let term = c.term("2026S").await;
    let old_course = c.course(before, 50, json!({})).await;
    let returning = c.learners(15, this_year() - 70).await;
    for r in &returning {
        let (s, _) = c
            .post(*r, &format!("/courses/{old_course}/enrol"), json!({}))
            .await;
        assert_eq!(s, 201);
    }
    let newcomers = c.learners(25, this_year() - 62).await;
    let course = c
        .course(
            term,
            10,
            json!({"mode": "lottery", "returning_percent": 20}),
        )
        .await;
    for p in returning.iter().chain(&newcomers) {
        let (s, v) = c
            .post(*p, &format!("/courses/{course}/enrol"), json!({}))
            .await;
        assert_eq!((s, v["status"].as_str()), (201, Some("applied")), "{v}");
    }
    let (s, _) = c
        .post(
            newcomers[0],
            &format!("/courses/{course}/draw"),
            json!({"seed": "x"}),
        )
        .await;
    assert_eq!(s, 403, "only staff draw");
    let (s, drawn) = c
        .post(
            c.staff,
            &format!("/courses/{course}/draw"),
            json!({"seed": "U1/2026S/course-2"}),
        )
        .await;
    assert_eq!(s, 200, "{drawn}");
    let seated: Vec<i64> = serde_json::from_value(drawn["seated"].clone()).unwrap();
    assert_eq!(seated.len(), 10);
    let returning_seated = seated.iter().filter(|p| returning.contains(p)).count();
    assert!(
        returning_seated <= 2,
        "{returning_seated} returning learners seated"
    );
    assert_eq!(drawn["applications_per_seat"], 4.0);

    // Anyone re-runs the draw from the published seed and applicant list.
    let (s, published) = c
        .get(newcomers[3], &format!("/courses/{course}/lottery"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(published["reproduced"], true);
    let applicants: Vec<elder_education::lottery::Applicant> = published["applicants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| elder_education::lottery::Applicant {
            person_id: a["person_id"].as_i64().unwrap(),
            returning: a["returning"].as_bool().unwrap(),
        })
        .collect();
    assert_eq!(applicants.iter().filter(|a| a.returning).count(), 15);
    let rerun =
        elder_education::lottery::draw(published["seed"].as_str().unwrap(), &applicants, 10, 20);
    assert_eq!(rerun.seated, seated);
    assert_eq!(
        serde_json::to_value(&rerun.order).unwrap(),
        published["order"]
    );

    // Freed seats go down the drawn waitlist, skipping returning learners
    // while their share is full.
    for p in seated.iter().filter(|p| !returning.contains(p)).take(5) {
        let (s, _) = c
            .post(*p, &format!("/courses/{course}/withdraw"), json!({}))
            .await;
        assert_eq!(s, 200);
    }
    let (_, roster) = c.get(c.staff, &format!("/courses/{course}/roster")).await;
    let now: Vec<i64> = roster["enrolled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["person_id"].as_i64().unwrap())
        .collect();
    assert_eq!(now.len(), 10);
    assert!(now.iter().filter(|p| returning.contains(p)).count() <= 2);
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lottery_sqlite() {
    lottery(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lottery_postgres() {
    lottery(TestKernel::postgres().await).await;
}
