//! Teachers and completion, learning teams and reports, on SQLite and
//! PostgreSQL.

mod common;

use common::{sys, this_year, City};
use lifelong_harness::TestKernel;
use serde_json::json;

/// Teachers: part-timers need a certificate; an expired one blocks new
/// assignments and flags current ones. Attendance completes a course once.
async fn teachers_and_completion(k: TestKernel) {
    let c = City::new(k).await;
    let term = c.term("2026S").await;
    let course = c.course(term, 5, json!({})).await;
    let t_person = c.person(1975, "female", "U1").await;
    let (s, v) = c
        .post(
            c.staff,
            "/teachers",
            json!({"person_id": t_person, "name": "李老师", "kind": "part_time"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .starts_with("a part-time teacher must be registered with a certificate"));
    let (s, v) = c.post(c.staff, "/teachers", json!({"person_id": t_person, "name": "李老师", "kind": "part_time", "cert_number": "T-1", "cert_issuer": "市教育局", "cert_valid_until": "2020-01-01"})).await;
    assert_eq!(s, 201, "{v}");
    let teacher = v["id"].as_i64().unwrap();
    let (s, v) =
        c.p.call(
            "PUT",
            &format!("/courses/{course}/teacher"),
            Some(json!({"teacher_id": teacher})),
            &c.as_(c.staff),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, v["detail"].as_str()),
        (
            409,
            Some("this part-time teacher's certificate expired on 2020-01-01")
        )
    );
    let (s, _) = c.p.call("PUT", &format!("/teachers/{teacher}/certificate"), Some(json!({"cert_number": "T-2", "cert_issuer": "市教育局", "cert_valid_until": "2099-12-31"})), &c.as_(c.staff)).await.unwrap();
    assert_eq!(s, 200);
    let (s, _) =
        c.p.call(
            "PUT",
            &format!("/courses/{course}/teacher"),
            Some(json!({"teacher_id": teacher})),
            &c.as_(c.staff),
        )
        .await
        .unwrap();
    assert_eq!(s, 200);
    let (_, v) = c.get(c.staff, "/teachers").await;
    assert_eq!(v["items"][0]["flagged"], false);
    // The certificate turns out to have lapsed: flagged on the current course.
    c.p.call("PUT", &format!("/teachers/{teacher}/certificate"), Some(json!({"cert_number": "T-2", "cert_issuer": "市教育局", "cert_valid_until": "2021-06-30"})), &c.as_(c.staff)).await.unwrap();
    let (_, v) = c.get(c.staff, "/teachers").await;
    assert_eq!(
        (
            v["items"][0]["flagged"].as_bool(),
            v["items"][0]["courses"].clone()
        ),
        (Some(true), json!([course]))
    );

    let learners = c.learners(2, this_year() - 68).await;
    for l in &learners {
        c.post(*l, &format!("/courses/{course}/enrol"), json!({}))
            .await;
    }
    // The course's teacher takes attendance; 3 of 4 sessions complete it (75 %).
    for session in 1..=3 {
        let (s, v) = c
            .post(
                t_person,
                &format!("/courses/{course}/attendance"),
                json!({"session": session, "present": [learners[0]]}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let expect = if session == 3 {
            json!([learners[0]])
        } else {
            json!([])
        };
        assert_eq!(v["completed_now"], expect);
    }
    for _ in 0..2 {
        let (_, v) = c
            .post(
                t_person,
                &format!("/courses/{course}/attendance"),
                json!({"session": 3, "present": [learners[0]]}),
            )
            .await;
        assert_eq!(
            v["completed_now"],
            json!([]),
            "re-submitted attendance completes nothing again"
        );
    }
    let (s, _) = c
        .post(
            learners[1],
            &format!("/courses/{course}/attendance"),
            json!({"session": 4, "present": []}),
        )
        .await;
    assert_eq!(s, 403, "a learner cannot take attendance");
    let (_, record) = c.get(learners[0], "/me/record").await;
    assert_eq!(record["completed"].as_array().unwrap().len(), 1);
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_entries e JOIN accounts a ON a.id = e.account_id \
         WHERE a.person_id = $1 AND e.origin = 'plugin:elder-education' AND e.kind = 'non_formal_learning'",
    )
    .bind(learners[0])
    .fetch_one(c.k.kernel.db.reader())
    .await
    .unwrap();
    assert_eq!(n, 1, "one outcome in the learner's account");
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teachers_and_completion_sqlite() {
    teachers_and_completion(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teachers_and_completion_postgres() {
    teachers_and_completion(TestKernel::postgres().await).await;
}

/// Star ratings follow the team, with their history; reports over a subtree.
async fn teams_and_reports(k: TestKernel) {
    let c = City::new(k).await;
    c.setting("team_members_for_star", json!(3)).await;
    let (s, v) = c.post(c.staff, "/teams", json!({"name": "书法队"})).await;
    assert_eq!((s, v["stars"].as_i64()), (201, Some(1)));
    let team = v["id"].as_i64().unwrap();
    let members = c.learners(6, this_year() - 65).await;
    let mut stars = Vec::new();
    for m in &members {
        let (_, v) = c
            .post(
                c.staff,
                &format!("/teams/{team}/members"),
                json!({"person_id": m}),
            )
            .await;
        stars.push(v["stars"].as_i64().unwrap());
    }
    assert_eq!(stars, [1, 1, 2, 2, 2, 3]);
    let (_, v) = c.post(c.staff, &format!("/teams/{team}/activities"), json!({"on_date": chrono::Utc::now().format("%Y-%m-%d").to_string(), "kind": "showcase", "note": "汇演"})).await;
    assert_eq!(v["stars"], 4);
    for _ in 0..3 {
        c.post(c.staff, &format!("/teams/{team}/activities"), json!({"on_date": chrono::Utc::now().format("%Y-%m-%d").to_string(), "kind": "activity"})).await;
    }
    let (_, v) = c.get(c.staff, &format!("/teams/{team}")).await;
    assert_eq!(v["stars"], 5);
    let (s, v) =
        c.p.call(
            "DELETE",
            &format!("/teams/{team}/members/{}", members[0]),
            None,
            &c.as_(c.staff),
        )
        .await
        .unwrap();
    assert_eq!((s, v["stars"].as_i64()), (200, Some(4)));
    let (_, v) = c.get(c.staff, &format!("/teams/{team}")).await;
    let history: Vec<i64> = v["ratings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stars"].as_i64().unwrap())
        .collect();
    assert_eq!(history, [1, 2, 3, 4, 5, 4]);

    let term = c.term("2026S").await;
    let course = c
        .course(
            term,
            2,
            json!({"wants_assistants": true, "category": "digital_skills"}),
        )
        .await;
    let (s, v) = c
        .post(
            c.staff,
            "/scenarios",
            json!({"code": "S1", "name": "用手机挂号"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let scenario = v["id"].as_i64().unwrap();
    c.post(
        c.staff,
        &format!("/scenarios/{scenario}/courses"),
        json!({"course_id": course}),
    )
    .await;
    for l in c.learners(3, this_year() - 60).await {
        c.post(l, &format!("/courses/{course}/enrol"), json!({}))
            .await;
    }
    let (s, v) =
        c.p.call(
            "PUT",
            "/designation",
            Some(json!({"kind": "one_school_one_brand", "name": "翰墨书香"})),
            &c.as_(c.staff),
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    let (s, v) =
        c.p.call(
            "PUT",
            "/designation",
            Some(json!({"kind": "one_town_one_thing", "name": "x"})),
            &c.as_(c.staff),
        )
        .await
        .unwrap();
    assert_eq!(s, 422, "{v}");
    // A township admin reports over the township's subtree.
    let t1_admin = c.person(1972, "male", "T1").await;
    kernel::identity::grant(&c.k.kernel, &sys(), t1_admin, "site_admin", "T1")
        .await
        .unwrap();
    let (s, r) =
        c.p.at("T1")
            .get("/reports", &c.as_(t1_admin))
            .await
            .unwrap();
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["sites"], 2);
    assert_eq!(r["enrolments"], json!({"enrolled": 2, "waitlisted": 1}));
    assert_eq!(
        r["indicators"],
        json!({
            "1_elder_universities_with_social_organisations": 1,
            "5_smart_help_scenarios": 1,
            "8_brand_projects": 1,
            "9_learning_teams": 1,
        })
    );
    assert_eq!(r["teams_by_stars"], json!({"4": 1}));
    assert_eq!(r["brand_designations"], json!({"one_school_one_brand": 1}));
    let (s, _) =
        c.p.at("T2")
            .get("/reports", &c.as_(t1_admin))
            .await
            .unwrap();
    assert_eq!(s, 403, "not over another township");
    // The course wanting assistants told the volunteer module.
    let (n,): (i64,) = sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM plugin_outbox WHERE name = 'elder-education.assistants-wanted'")
        .fetch_one(c.k.kernel.db.reader())
        .await
        .unwrap();
    assert_eq!(n, 1);
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_and_reports_sqlite() {
    teams_and_reports(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_and_reports_postgres() {
    teams_and_reports(TestKernel::postgres().await).await;
}

/// A team founded with members counts them in its founding rating; who the
/// members are is shown to the members and the site's staff only, everyone
/// else sees how many there are.
async fn team_members_are_shown_to_members_and_staff(k: TestKernel) {
    let c = City::new(k).await;
    let founders = c.learners(4, this_year() - 66).await;
    let (s, v) = c
        .post(
            c.staff,
            "/teams",
            json!({"name": "合唱队", "members": [founders[3], founders[0], founders[1], founders[2], founders[0]]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let team = v["id"].as_i64().unwrap();
    let path = format!("/teams/{team}");
    let (s, v) = c.p.get(&path, &c.k.anonymous()).await.unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["member_count"], 4);
    assert!(
        v.get("members").is_none(),
        "no member ids for an anonymous caller: {v}"
    );
    assert_eq!(
        v["ratings"][0]["reason"],
        "founded: 4 members, 0 recent activities, 0 showcases"
    );
    let passer_by = c.person(this_year() - 66, "male", "U1").await;
    let (_, v) = c.get(passer_by, &path).await;
    assert_eq!(v["member_count"], 4);
    assert!(
        v.get("members").is_none(),
        "nor for someone not in the team: {v}"
    );
    let mut ids = founders.clone();
    ids.sort_unstable();
    for insider in [founders[2], c.staff] {
        let (_, v) = c.get(insider, &path).await;
        let mut seen: Vec<i64> = v["members"]
            .as_array()
            .unwrap_or_else(|| panic!("members shown to {insider}: {v}"))
            .iter()
            .map(|m| m.as_i64().unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, ids);
    }
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_members_are_shown_to_members_and_staff_sqlite() {
    team_members_are_shown_to_members_and_staff(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_members_are_shown_to_members_and_staff_postgres() {
    team_members_are_shown_to_members_and_staff(TestKernel::postgres().await).await;
}

/// An elder from another township who enrols at the school themselves is
/// credited there when they complete a course: the kernel lets the plugin
/// reach a person who has called it at the school.
async fn learners_from_elsewhere_are_credited(k: TestKernel) {
    let c = City::new(k).await;
    let term = c.term("2026S").await;
    let course = c.course(term, 5, json!({})).await;
    let visitor = c.person(this_year() - 68, "female", "T2").await;
    let (s, v) = c
        .post(visitor, &format!("/courses/{course}/enrol"), json!({}))
        .await;
    assert_eq!((s, v["status"].as_str()), (201, Some("enrolled")), "{v}");
    let mut completed = Vec::new();
    for session in 1..=3 {
        let (s, v) = c
            .post(
                c.staff,
                &format!("/courses/{course}/attendance"),
                json!({"session": session, "present": [visitor]}),
            )
            .await;
        assert_eq!((s, &v["not_recorded"]), (200, &json!([])), "{v}");
        completed.extend(v["completed_now"].as_array().unwrap().clone());
    }
    assert_eq!(completed, [json!(visitor)]);
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_entries e JOIN accounts a ON a.id = e.account_id \
         WHERE a.person_id = $1 AND e.origin = 'plugin:elder-education'",
    )
    .bind(visitor)
    .fetch_one(c.k.kernel.db.reader())
    .await
    .unwrap();
    assert_eq!(n, 1);
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learners_from_elsewhere_are_credited_sqlite() {
    learners_from_elsewhere_are_credited(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learners_from_elsewhere_are_credited_postgres() {
    learners_from_elsewhere_are_credited(TestKernel::postgres().await).await;
}
