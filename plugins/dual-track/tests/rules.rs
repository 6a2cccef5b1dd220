//! The dual-track rules as served, on SQLite and PostgreSQL, in one test
//! city per backend: training places approved by the authority above the
//! school, qualified mentors, signatures before practice, module records by
//! the right people only (not a mentor of another enterprise), committee
//! sides, waivers with evidence, no completion with an item missing,
//! completion into the credit bank once with the conversion (also when
//! eight completions race), a standard
//! change that leaves earlier agreements on their version, reports.

mod common;

use common::{standard, City};
use lifelong_harness::TestKernel;
use serde_json::json;

async fn places_and_mentors(c: &City) -> i64 {
    // The school's own admin cannot approve its training places.
    let (s, v) = c
        .post(c.school_admin, "/specialities", json!({
            "code": "ELEC-X", "name": "电气", "standard": standard(false), "partners": ["E1", "E3"]
        }))
        .await;
    assert_eq!(s, 201, "{v}");
    let x = v["id"].as_i64().unwrap();
    let (s, _) = c
        .post(
            c.school_admin,
            &format!("/specialities/{x}/partners/E1/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 403);
    // A speciality is offered by a school, not an enterprise or a township.
    let (s, _) = c
        .post_at(
            "E1",
            c.e1_admin,
            "/specialities",
            json!({"code": "NO", "name": "n", "standard": standard(false)}),
        )
        .await;
    assert!(s == 403 || s == 422, "{s}");
    // A plan without practice is refused.
    let mut theory_only = standard(false);
    theory_only["modules"] = json!([{"code": "T1", "name": "t", "place": "school", "hours": 10}]);
    let (s, v) = c
        .post(
            c.school_admin,
            "/specialities",
            json!({"code": "TH", "name": "t", "standard": theory_only}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let id = c.speciality("ELEC-1", false).await;
    let learner = c.person().await;
    // E3 was never proposed for ELEC-1, and proposed-only E3 is not a training place for ELEC-X.
    let (s, v) = c
        .post(c.school_admin, "/agreements", json!({"speciality_id": x, "learner_id": learner, "enterprise": "E3", "mentor_id": c.m1}))
        .await;
    assert_eq!(s, 409, "{v}");
    // An unqualified mentor (no record at E1) cannot be assigned; m2 mentors at E2.
    let stranger = c.person().await;
    for mentor in [stranger, c.m2] {
        let (s, v) = c
            .post(c.school_admin, "/agreements", json!({"speciality_id": id, "learner_id": learner, "enterprise": "E1", "mentor_id": mentor}))
            .await;
        assert_eq!(s, 409, "{v}");
    }
    // A lapsed qualification: the mentor cannot be assigned until renewed.
    let lapsed = c.mentor("E1", c.e1_admin).await;
    let mut tx = c.k.kernel.db.begin().await.unwrap();
    sqlx::query(
        "UPDATE plg_dual_track__mentors SET valid_until = '2020-01-01' WHERE person_id = $1",
    )
    .bind(lapsed)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (s, v) = c
        .post(c.school_admin, "/agreements", json!({"speciality_id": id, "learner_id": learner, "enterprise": "E1", "mentor_id": lapsed}))
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("lapsed"), "{v}");
    // A mentor's qualification must be valid; the role is the kernel's.
    let (s, _) = c
        .post_at(
            "E1",
            c.e1_admin,
            "/mentors",
            json!({"person_id": stranger, "qualification": "技师", "valid_until": "2020-01-01"}),
        )
        .await;
    assert_eq!(s, 422);
    let roles = kernel::identity::roles(&c.k.kernel, &common::sys(), c.m1)
        .await
        .unwrap();
    assert!(
        roles
            .iter()
            .any(|g| g.role == "enterprise_mentor" && g.site_code == "E1"),
        "{roles:?}"
    );
    // A committee needs both sides.
    let (s, v) = c
        .post(
            c.school_admin,
            &format!("/specialities/{id}/committee"),
            json!({"members": [{"person_id": c.teacher, "side": "school"}]}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    id
}

async fn agreements_and_records(c: &City, id: i64) {
    let learner = c.person().await;
    let (s, v) = c
        .post(c.school_admin, "/agreements", json!({"speciality_id": id, "learner_id": learner, "enterprise": "E1", "mentor_id": c.m1}))
        .await;
    assert_eq!(s, 201, "{v}");
    let a = v["id"].as_i64().unwrap();
    assert_eq!(v["version"], 1);
    // No practice before every party has signed.
    let (s, v) = c
        .post(c.m1, &format!("/agreements/{a}/modules/P1"), json!({}))
        .await;
    assert_eq!(s, 409, "{v}");
    // Nobody signs for another party.
    let (s, _) = c
        .post(
            c.e1_admin,
            &format!("/agreements/{a}/sign"),
            json!({"party": "learner"}),
        )
        .await;
    assert_eq!(s, 403);
    for (who, party) in [
        (learner, "learner"),
        (c.school_admin, "school"),
        (c.e1_admin, "enterprise"),
    ] {
        let (s, v) = c
            .post(
                who,
                &format!("/agreements/{a}/sign"),
                json!({"party": party}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let (_, v) = c.get(learner, &format!("/agreements/{a}")).await;
    assert_eq!(v["status"], "active");
    // A practice module recorded by a mentor of another enterprise is refused;
    // so is one by a school teacher, and a theory module by the mentor.
    let (s, v) = c
        .post(c.m2, &format!("/agreements/{a}/modules/P1"), json!({}))
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, _) = c
        .post(c.teacher, &format!("/agreements/{a}/modules/P1"), json!({}))
        .await;
    assert_eq!(s, 403);
    let (s, _) = c
        .post(c.m1, &format!("/agreements/{a}/modules/T1"), json!({}))
        .await;
    assert_eq!(s, 403);
    let (s, v) = c
        .post(c.m1, &format!("/agreements/{a}/modules/P1"), json!({}))
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, _) = c
        .post(c.m1, &format!("/agreements/{a}/modules/P1"), json!({}))
        .await;
    assert_eq!(s, 409, "once");
    let (s, v) = c
        .post(c.hired, &format!("/agreements/{a}/modules/T1"), json!({}))
        .await;
    assert_eq!(s, 201, "a hired teacher of the school teaches theory: {v}");
    // Committee sides: the practice item by an enterprise member only.
    let (s, _) = c
        .post(
            c.teacher,
            &format!("/agreements/{a}/results"),
            json!({"item": "F-P", "score": 90}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = c
        .post(
            c.m2,
            &format!("/agreements/{a}/results"),
            json!({"item": "F-P", "score": 90}),
        )
        .await;
    assert_eq!(s, 403, "not on the committee");
    let (s, v) = c
        .post(
            c.m1,
            &format!("/agreements/{a}/results"),
            json!({"item": "F-P", "score": 65}),
        )
        .await;
    assert_eq!((s, v["passed"].as_bool()), (200, Some(false)), "{v}");
    // Ending needs a reason; an ended agreement takes no more records.
    let (s, _) = c
        .post(
            c.school_admin,
            &format!("/agreements/{a}/end"),
            json!({"reason": " "}),
        )
        .await;
    assert_eq!(s, 422);
    let (s, v) = c
        .post(
            c.e1_admin,
            &format!("/agreements/{a}/end"),
            json!({"reason": "学员转岗"}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ended")), "{v}");
    let (s, _) = c
        .post(c.m1, &format!("/agreements/{a}/modules/P2"), json!({}))
        .await;
    assert_eq!(s, 409);
    // Waivers: with evidence, within the cap, never recorded afterwards.
    let other = c.person().await;
    let body = |w: serde_json::Value| json!({"speciality_id": id, "learner_id": other, "enterprise": "E1", "mentor_id": c.m1, "waivers": w});
    let (s, _) = c
        .post(
            c.school_admin,
            "/agreements",
            body(json!([{"module": "P2", "evidence": " "}])),
        )
        .await;
    assert_eq!(s, 422, "evidence needed");
    let (s, _) = c
        .post(
            c.school_admin,
            "/agreements",
            body(json!([{"module": "P1", "evidence": "e"}, {"module": "T1", "evidence": "e"}])),
        )
        .await;
    assert_eq!(s, 422, "more than half the hours");
    let (s, v) = c
        .post(
            c.school_admin,
            "/agreements",
            body(json!([{"module": "P2", "evidence": "证书 2024-017"}])),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["missing"]["modules"], json!(["T1", "P1"]));
}

async fn completion(c: &City, id: i64) {
    let learner = c.person().await;
    let a = c.agreement(id, learner).await;
    // Everything but one assessment item: no completion.
    c.finish(a, &["M-T", "F-T"]).await;
    let (s, v) = c
        .post(
            c.school_admin,
            &format!("/agreements/{a}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("F-P"), "{v}");
    assert!(c.entries(learner).await.is_empty());
    // Only the school's staff complete it.
    let (s, v) = c
        .post(
            c.m1,
            &format!("/agreements/{a}/results"),
            json!({"item": "F-P", "score": 75}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = c
        .post(c.teacher, &format!("/agreements/{a}/complete"), json!({}))
        .await;
    assert_eq!(s, 403);
    let (s, v) = c
        .post(
            c.school_admin,
            &format!("/agreements/{a}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["conversion"]["quantity"], 2.0, "{v}");
    // Once: a second completion is refused and writes nothing.
    let (s, _) = c
        .post(
            c.school_admin,
            &format!("/agreements/{a}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409);
    let entries = c.entries(learner).await;
    assert_eq!(
        entries,
        vec![
            ("skill_certificate".to_string(), 1.0, None),
            ("academic_credit".to_string(), 12.0, None),
            (
                "academic_credit".to_string(),
                2.0,
                Some("dual-cert-credit".to_string())
            ),
        ]
    );
    let st = kernel::accounts::ledger::statement(&c.k.kernel, &common::sys(), learner, 0, 10)
        .await
        .unwrap();
    assert_eq!(st.total_credits, 14.0);
    assert!(st.entries[2]
        .reference
        .as_deref()
        .unwrap()
        .contains(&st.entries[0].id.to_string()));
}

/// Eight completions of one agreement at once: one records, the others are
/// refused, and the account holds each outcome once.
async fn completion_race(c: &City, id: i64) {
    let learner = c.person().await;
    let a = c.agreement(id, learner).await;
    c.finish(a, &["M-T", "F-T", "F-P"]).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (p, who) = (c.p.clone(), c.as_(c.school_admin));
        let path = format!("/agreements/{a}/complete");
        tasks.push(tokio::spawn(async move {
            p.post(&path, Some(json!({})), &who).await.unwrap().0
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    codes.sort_unstable();
    assert_eq!(codes, [201, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(c.entries(learner).await.len(), 3);
}

async fn standard_versions(c: &City, id: i64) {
    let (old_l, new_l) = (c.person().await, c.person().await);
    let old = c.agreement(id, old_l).await;
    // Version 2 adds a required safety item; only the school's staff publish.
    let (s, _) = c
        .post(
            c.m1,
            &format!("/specialities/{id}/standards"),
            standard(true),
        )
        .await;
    assert_eq!(s, 403);
    let (s, v) = c
        .post(
            c.school_admin,
            &format!("/specialities/{id}/standards"),
            standard(true),
        )
        .await;
    assert_eq!((s, v["version"].as_i64()), (201, Some(2)), "{v}");
    let new = c.agreement(id, new_l).await;
    let (_, o) = c.get(old_l, &format!("/agreements/{old}")).await;
    let (_, n) = c.get(new_l, &format!("/agreements/{new}")).await;
    assert_eq!(
        (o["version"].as_i64(), n["version"].as_i64()),
        (Some(1), Some(2))
    );
    c.finish(old, &["M-T", "F-T", "F-P"]).await;
    c.finish(new, &["M-T", "F-T", "F-P"]).await;
    let (s, v) = c
        .post(
            c.school_admin,
            &format!("/agreements/{old}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(s, 201, "version 1 has no safety item: {v}");
    let (s, v) = c
        .post(
            c.school_admin,
            &format!("/agreements/{new}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("F-S"), "{v}");
    // F-S is assessed by the whole committee: a school member will do.
    let (s, _) = c
        .post(
            c.teacher,
            &format!("/agreements/{new}/results"),
            json!({"item": "F-S", "score": 85}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = c
        .post(
            c.school_admin,
            &format!("/agreements/{new}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

async fn reports(c: &City) {
    c.speciality("NET-1", true).await;
    let (s, r) =
        c.p.at("T1")
            .get("/reports", &c.as_(c.authority))
            .await
            .unwrap();
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["specialities"]["distance"], 1, "{r}");
    assert_eq!(r["specialities"]["new_distance"], 1, "{r}");
    assert_eq!(r["partner_enterprises"], 2, "{r}");
    assert_eq!(
        r["teachers"],
        json!({"enterprise_hired": 1, "full_time": 1})
    );
    assert_eq!(
        r["recognised"]["certificates"]["skill_certificate"], 4,
        "{r}"
    );
    assert_eq!(r["recognised"]["credits"], 48.0, "{r}");
    assert_eq!(r["recognised"]["conversions"], 4, "{r}");
    assert_eq!(r["job_types"]["维修电工"]["completed"], 4, "{r}");
    assert_eq!(r["job_types"]["维修电工"]["ended"], 1, "{r}");
    assert_eq!(r["learners_by_stage"]["ended"], 1, "{r}");
    let (s, _) =
        c.p.at("T2")
            .get("/reports", &c.as_(c.authority))
            .await
            .unwrap();
    assert_eq!(s, 403, "not another township's");
    let (s, _) = c.get(c.m1, "/reports").await;
    assert_eq!(s, 403, "staff only");
}

async fn rules(k: TestKernel) {
    let c = City::new(k).await;
    let id = places_and_mentors(&c).await;
    agreements_and_records(&c, id).await;
    completion(&c, id).await;
    completion_race(&c, id).await;
    standard_versions(&c, id).await;
    reports(&c).await;
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_sqlite() {
    rules(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_postgres() {
    rules(TestKernel::postgres().await).await;
}
