//! The elder-education plugin as it is served: packaged, installed through
//! the registry, granted and enabled at the city, called at an elder
//! university, on SQLite and PostgreSQL.

use chrono::Datelike;
use kernel::authz::Actor;
use lifelong_harness::{TestKernel, TestPlugin};
use serde_json::{json, Value};

const ID: &str = "elder-education";

fn sys() -> Actor {
    Actor::System("test")
}

struct City {
    k: TestKernel,
    p: TestPlugin,
    staff: i64,
    serial: std::sync::atomic::AtomicU32,
}

impl City {
    /// CITY → T1 (township) → U1 (elder university run with a social
    /// organisation), T2; the plugin enabled at CITY; a site admin at U1.
    async fn new(k: TestKernel) -> City {
        for (code, kind, parent, operator) in [
            ("CITY", "city", None, None),
            ("T1", "township", Some("CITY"), None),
            (
                "U1",
                "elder_university",
                Some("T1"),
                Some("social_organisation"),
            ),
            ("T2", "township", Some("CITY"), None),
        ] {
            kernel::sites::create(
                &k.kernel.db,
                &sys(),
                kernel::sites::NewSite {
                    code: code.into(),
                    name_zh: code.into(),
                    kind: kind.into(),
                    parent_code: parent.map(Into::into),
                    operator: operator.map(Into::into),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        let pkg = k.package(env!("CARGO_MANIFEST_DIR")).await;
        let p = k.install(&pkg).await.at("U1");
        k.enable(ID, "CITY").await;
        let mut city = City {
            k,
            p,
            staff: 0,
            serial: 0.into(),
        };
        city.staff = city.person(1970, "male", "U1").await;
        kernel::identity::grant(&city.k.kernel, &sys(), city.staff, "site_admin", "U1")
            .await
            .unwrap();
        city
    }

    /// A person born in `year` (mid-year, so the age is `this year - year - 1`
    /// or `this year - year`), homed at `home`.
    async fn person(&self, year: i32, sex: &str, home: &str) -> i64 {
        let n = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let born = chrono::NaiveDate::from_ymd_opt(year, 1 + (n % 12), 1 + (n % 28)).unwrap();
        let sex_ = if sex == "female" {
            kernel::idnumber::Sex::Female
        } else {
            kernel::idnumber::Sex::Male
        };
        kernel::identity::create(
            &self.k.kernel,
            &sys(),
            kernel::identity::NewPerson {
                name: format!("学员{n}"),
                id_number: kernel::idnumber::synthesize(350602, born, n, sex_),
                home_site: home.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id
    }

    async fn learners(&self, n: usize, year: i32) -> Vec<i64> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(self.person(year, "male", "U1").await);
        }
        v
    }

    fn as_(&self, person: i64) -> kernel::plugins::runtime::Caller {
        self.k.person(person, &[])
    }

    async fn post(&self, who: i64, path: &str, body: Value) -> (u16, Value) {
        self.p.post(path, Some(body), &self.as_(who)).await.unwrap()
    }

    async fn get(&self, who: i64, path: &str) -> (u16, Value) {
        self.p.get(path, &self.as_(who)).await.unwrap()
    }

    async fn setting(&self, name: &str, value: Value) {
        let m = self.k.registry.manifest(ID).unwrap();
        kernel::plugins::settings::set(&self.k.kernel, &sys(), &m, "U1", name, value)
            .await
            .unwrap();
    }

    async fn term(&self, code: &str) -> i64 {
        let (s, v) = self
            .post(self.staff, "/terms", json!({"code": code, "name": code, "starts_on": "2026-03-01", "ends_on": "2026-07-01"}))
            .await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_i64().unwrap()
    }

    async fn course(&self, term: i64, capacity: i64, extra: Value) -> i64 {
        let mut body = json!({
            "term_id": term, "title": "太极拳", "category": "health", "schedule": "Tue 09:00",
            "venue": "Hall 1", "capacity": capacity, "sessions": 4, "hours": 8.0,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, v) = self.post(self.staff, "/courses", body).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_i64().unwrap()
    }
}

fn this_year() -> i32 {
    chrono::Utc::now().year()
}

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
