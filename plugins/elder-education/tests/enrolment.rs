//! Enrolment as it is served (installed through the registry, enabled at
//! the city, called at an elder university), on SQLite and PostgreSQL:
//! the 200-learner race, read-then-write races (a double-clicked
//! withdrawal, withdrawals at once, enrolments past the per-term limit at
//! once), eligibility and limits, the lottery.

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

/// The roster's `taken` against its enrolled rows.
async fn taken_and_enrolled(c: &City, course: i64) -> (i64, usize, Vec<i64>) {
    let (_, roster) = c.get(c.staff, &format!("/courses/{course}/roster")).await;
    let ids = |k: &str| -> Vec<i64> {
        roster[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["person_id"].as_i64().unwrap())
            .collect()
    };
    (
        roster["course"]["taken"].as_i64().unwrap(),
        ids("enrolled").len(),
        ids("waitlisted"),
    )
}

/// Plugin code that reads and then writes behaves as if calls ran one at
/// a time, on both backends: a learner double-clicking "withdraw" 20 times
/// withdraws once and frees one seat; three learners withdrawing at once
/// promote three different waitlisted learners, in waitlist order; one
/// learner enrolling in five courses at once gets the per-term limit's two.
async fn read_then_write_races(k: TestKernel) {
    let c = City::new(k).await;
    let term = c.term("2026S").await;
    let course = c.course(term, 6, json!({})).await;
    let learners = c.learners(10, this_year() - 66).await;
    for l in &learners {
        let (s, v) = c
            .post(*l, &format!("/courses/{course}/enrol"), json!({}))
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let withdraw = |who: i64| {
        let p = c.p.clone();
        let caller = c.as_(who);
        async move {
            p.post(
                &format!("/courses/{course}/withdraw"),
                Some(json!({})),
                &caller,
            )
            .await
            .unwrap()
        }
    };
    let clicks = futures_util::future::join_all((0..20).map(|_| withdraw(learners[0]))).await;
    let done: Vec<_> = clicks.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(done.len(), 1, "{clicks:?}");
    assert_eq!(done[0].1["promoted"], json!(learners[6]));
    assert!(
        clicks.iter().all(|(s, _)| *s == 200 || *s == 404),
        "{clicks:?}"
    );
    assert_eq!(
        taken_and_enrolled(&c, course).await,
        (6, 6, learners[7..].to_vec())
    );

    let at_once = futures_util::future::join_all(learners[1..4].iter().map(|l| withdraw(*l))).await;
    assert!(at_once.iter().all(|(s, _)| *s == 200), "{at_once:?}");
    let mut promoted: Vec<i64> = at_once
        .iter()
        .map(|(_, v)| v["promoted"].as_i64().unwrap())
        .collect();
    promoted.sort();
    assert_eq!(
        promoted,
        learners[7..].to_vec(),
        "each seat to a different learner"
    );
    assert_eq!(taken_and_enrolled(&c, course).await, (6, 6, vec![]));
    // Waitlist order: the learner who withdrew first promoted the head.
    let (_, mine) = c.get(learners[7], "/me/courses").await;
    assert_eq!(mine["items"][0]["status"], "enrolled");

    let courses =
        futures_util::future::join_all((0..5).map(|_| c.course(term, 5, json!({})))).await;
    let eager = c.person(this_year() - 66, "male", "U1").await;
    let tries = futures_util::future::join_all(courses.iter().map(|id| {
        let p = c.p.clone();
        let caller = c.as_(eager);
        async move {
            p.post(&format!("/courses/{id}/enrol"), Some(json!({})), &caller)
                .await
                .unwrap()
        }
    }))
    .await;
    let statuses: Vec<u16> = tries.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        2,
        "the per-term limit holds: {tries:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        3,
        "{tries:?}"
    );
    for id in courses {
        let (taken, enrolled, _) = taken_and_enrolled(&c, id).await;
        assert_eq!(taken as usize, enrolled);
    }
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_then_write_races_sqlite() {
    read_then_write_races(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_then_write_races_postgres() {
    read_then_write_races(TestKernel::postgres().await).await;
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
