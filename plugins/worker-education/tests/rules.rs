//! The worker-education rules as served, on SQLite and PostgreSQL, in one
//! test city per backend: enterprises and their credit codes, staff by hand
//! and by CSV (all or nothing), programs and an order through its states,
//! hours (never verified by the person, recorded once in the credit bank,
//! reversed with a reason), compliance (59 vs 60 professional hours at 90,
//! cadre rules, a rule change that leaves a closed year alone), rates, the
//! report, funds, bad input and no ID numbers.

mod common;

use common::{sys, this_year, today, uscc, City};
use lifelong_harness::TestKernel;
use serde_json::json;

async fn enterprises_and_staff(c: &City) {
    // The credit code is checked by its check character.
    let mut bad = uscc(77);
    bad.replace_range(17.., if bad.ends_with('0') { "1" } else { "0" });
    let (s, v) = c
        .call(
            "T2-E1",
            c.city_admin,
            "POST",
            "/enterprises",
            json!({"uscc": bad}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("check character"),
        "{v}"
    );
    let (s, v) = c
        .call(
            "T2-E1",
            c.city_admin,
            "POST",
            "/enterprises",
            json!({"uscc": uscc(1)}),
        )
        .await;
    assert_eq!(s, 409, "a code belongs to one enterprise: {v}");
    let (s, v) = c
        .call(
            "CITY-OU",
            c.ou,
            "POST",
            "/enterprises",
            json!({"uscc": uscc(78)}),
        )
        .await;
    assert_eq!(
        s, 422,
        "an enterprise is an enterprise_training_centre: {v}"
    );
    let (s, _) = c
        .call(
            "T2-E1",
            c.hr1,
            "POST",
            "/enterprises",
            json!({"uscc": uscc(78)}),
        )
        .await;
    assert_eq!(s, 403, "HR of another enterprise");
    let (s, v) = c
        .call(
            "T2-E1",
            c.city_admin,
            "POST",
            "/enterprises",
            json!({"uscc": uscc(78).to_lowercase()}),
        )
        .await;
    assert_eq!(
        (s, v["uscc"].as_str()),
        (201, Some(uscc(78).as_str())),
        "{v}"
    );

    // By hand.
    let p = c.person("T1-V1").await;
    let (s, v) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            "/staff",
            json!({"person_id": p, "population": "cadre", "profession": "x"}),
        )
        .await;
    assert_eq!(s, 422, "a cadre needs a level: {v}");
    let (s, v) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            "/staff",
            json!({"person_id": p, "population": "cadre", "cadre_level": "township"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = c
        .call(
            "T1-E2",
            c.hr2,
            "POST",
            "/staff",
            json!({"person_id": p, "population": "employee"}),
        )
        .await;
    assert_eq!(s, 409, "one enterprise at a time: {v}");
    let (s, _) = c
        .call(
            "T1-E1",
            c.hr2,
            "POST",
            "/staff",
            json!({"person_id": p, "population": "employee"}),
        )
        .await;
    assert_eq!(s, 403);
    let far = c.person("T2-V1").await;
    let (s, v) = c
        .call(
            "T1-E1",
            c.hr1,
            "POST",
            "/staff",
            json!({"person_id": far, "population": "employee"}),
        )
        .await;
    assert_eq!(s, 422, "only persons the enterprise's area holds: {v}");

    // CSV: one bad row and nothing is stored; every bad row is named.
    let (a, b2, d) = (
        c.person("T1-V1").await,
        c.person("T1-V1").await,
        c.person("T1-V1").await,
    );
    let csv = format!(
        "person_id,population,cadre_level,profession,title\n{a},professional_technician,,engineering,工程师\n{b2},astronaut,,,\n{d},employee,,,\n"
    );
    let (s, v) = c
        .call(
            "T1-E2",
            c.hr2,
            "POST",
            "/staff/import",
            json!({ "csv": csv }),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["errors"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["errors"][0]["line"], 3, "{v}");
    let (_, list) = c.get("T1-E2", c.hr2, "/staff").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing stored: {list}"
    );
    let csv = csv.replace("astronaut", "employee");
    let (s, v) = c
        .call(
            "T1-E2",
            c.hr2,
            "POST",
            "/staff/import",
            json!({ "csv": csv }),
        )
        .await;
    assert_eq!((s, v["imported"].as_i64()), (201, Some(3)), "{v}");
    let (s, v) = c
        .call(
            "T1-E2",
            c.hr2,
            "POST",
            "/staff/import",
            json!({ "csv": csv }),
        )
        .await;
    assert_eq!(s, 422, "already registered: {v}");
    let (_, list) = c.get("T1-E2", c.hr2, "/staff").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    // ID numbers never appear.
    let idno = kernel::identity::reveal_id_number(&c.k.kernel, &sys(), a)
        .await
        .unwrap();
    assert!(!list.to_string().contains(&idno[..10]), "{list}");
    assert!(!list.to_string().contains("id_number"), "{list}");
}

async fn programs_and_orders(c: &City) {
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

async fn hours(c: &City) {
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

async fn compliance(c: &City) {
    let y = this_year();
    let (s, _) = c.call("CITY", c.hr1, "POST", "/rules", json!({"code": "x", "name": "x", "population": "employee", "total_hours": 1, "valid_from": "2000-01-01"})).await;
    assert_eq!(s, 403, "city admins publish rules");
    let (s, v) = c.call("CITY", c.city_admin, "POST", "/rules", json!({"code": "tech", "name": "专业技术人员继续教育", "population": "professional_technician", "total_hours": 90, "category": "professional", "category_share": "2/3", "valid_from": "2000-01-01"})).await;
    assert_eq!(
        (s, v["category_min_hours"].as_i64()),
        (201, Some(60)),
        "{v}"
    );
    // Exactly 90 hours: 59 professional is not enough, 60 is.
    let a = c.staff("professional_technician", "", "medicine").await;
    let b = c.staff("professional_technician", "", "medicine").await;
    c.hours(a, "public", 31, &today()).await;
    c.hours(a, "professional", 59, &today()).await;
    c.hours(b, "public", 30, &today()).await;
    c.hours(b, "professional", 60, &today()).await;
    let (s, ra) = c.get("T1-E1", a, "/me").await;
    assert_eq!(s, 200, "{ra}");
    assert_eq!(
        (ra["hours"].as_i64(), ra["compliant"].as_bool()),
        (Some(90), Some(false)),
        "{ra}"
    );
    assert_eq!(
        (
            ra["missing_hours"].as_i64(),
            ra["missing_category_hours"].as_i64()
        ),
        (Some(0), Some(1)),
        "{ra}"
    );
    let (_, rb) = c.get("T1-E1", c.hr1, &format!("/compliance/{b}")).await;
    assert_eq!(
        (rb["hours"].as_i64(), rb["compliant"].as_bool()),
        (Some(90), Some(true)),
        "{rb}"
    );
    let (s, _) = c.get("T1-E1", a, &format!("/compliance/{b}")).await;
    assert_eq!(s, 403, "not another's");
    // The enterprise sees who is behind, with the hours missing.
    let (_, behind) = c.get("T1-E1", c.hr1, "/enterprises/T1-E1/behind").await;
    let items = behind["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|r| r["person_id"] == a && r["missing_category_hours"] == 1),
        "{behind}"
    );
    assert!(!items.iter().any(|r| r["person_id"] == b), "{behind}");

    // Cadres: township 90 a year; county 550 over five years.
    for (code, level, total, years) in [
        ("cadre-township", "township", 90, 1),
        ("cadre-county", "county", 550, 5),
    ] {
        let (s, v) = c.call("CITY", c.city_admin, "POST", "/rules", json!({"code": code, "name": code, "population": "cadre", "cadre_level": level, "total_hours": total, "period_years": years, "valid_from": "2000-01-01"})).await;
        assert_eq!(s, 201, "{v}");
    }
    let county = c.staff("cadre", "county", "").await;
    c.hours(county, "political_theory", 100, &today()).await;
    let (_, r) = c.get("T1-E1", county, "/me").await;
    assert_eq!(
        (r["compliant"].as_bool(), r["missing_hours"].as_i64()),
        (Some(false), Some(450)),
        "{r}"
    );
    assert_eq!(
        r["period"]["to"].as_i64().unwrap() - r["period"]["from"].as_i64().unwrap(),
        4,
        "{r}"
    );
    let township = c.staff("cadre", "township", "").await;
    c.hours(township, "political_theory", 90, &today()).await;
    let (_, r) = c.get("T1-E1", township, "/me").await;
    assert_eq!(
        (r["compliant"].as_bool(), r["rule"]["code"].as_str()),
        (Some(true), Some("cadre-township")),
        "{r}"
    );

    // A rule change never rewrites a closed year.
    let (s, _) = c.call("CITY", c.city_admin, "POST", "/rules", json!({"code": "eng", "name": "工程技术人员", "population": "professional_technician", "profession": "engineering", "region": "T1", "total_hours": 90, "valid_from": "2000-01-01"})).await;
    assert_eq!(s, 201);
    let e = c.staff("professional_technician", "", "engineering").await;
    let last = format!("{}-06-30", y - 1);
    c.hours(e, "professional", 80, &last).await;
    c.hours(e, "professional", 80, &today()).await;
    let (_, r) = c.get("T1-E1", e, &format!("/me?year={}", y - 1)).await;
    assert_eq!(
        (r["rule"]["code"].as_str(), r["compliant"].as_bool()),
        (Some("eng"), Some(false)),
        "the most specific rule: {r}"
    );
    let (s, _) = c
        .call(
            "CITY",
            c.hr1,
            "POST",
            &format!("/years/{}/close", y - 1),
            json!({}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, v) = c
        .call(
            "CITY",
            c.city_admin,
            "POST",
            &format!("/years/{}/close", y - 1),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = c.call("CITY", c.city_admin, "POST", "/rules", json!({"code": "eng", "name": "工程技术人员（修订）", "population": "professional_technician", "profession": "engineering", "region": "T1", "total_hours": 72, "valid_from": format!("{}-01-01", y - 1)})).await;
    assert_eq!((s, v["version"].as_i64()), (201, Some(2)), "{v}");
    let (_, r) = c.get("T1-E1", e, &format!("/me?year={}", y - 1)).await;
    assert_eq!(
        (
            r["compliant"].as_bool(),
            r["rule"]["version"].as_i64(),
            r["closed"].as_bool()
        ),
        (Some(false), Some(1), Some(true)),
        "{r}"
    );
    let (_, r) = c.get("T1-E1", e, "/me").await;
    assert_eq!(
        (r["compliant"].as_bool(), r["rule"]["version"].as_i64()),
        (Some(true), Some(2)),
        "{r}"
    );
    let (s, _) = c.call("T1-E1", e, "POST", "/activities", json!({"title": "t", "category": "public", "kind": "conference", "hours": 8, "on_date": last, "evidence": "e"})).await;
    assert_eq!(s, 409, "a closed year takes no more hours");
}

async fn rates_and_report(c: &City) {
    let (s, v) = c.get("T1-E1", c.hr1, "/enterprises/T1-E1").await;
    assert_eq!(s, 200, "{v}");
    let r = &v["rates"];
    let (staff, trained) = (r["staff"].as_i64().unwrap(), r["trained"].as_i64().unwrap());
    assert!(staff > 5 && trained > 3 && trained < staff, "{v}");
    assert_eq!(
        r["training_rate"].as_f64().unwrap(),
        trained as f64 / staff as f64
    );
    assert!(r["compliance_rate"].as_f64().unwrap() > 0.0, "{v}");
    let (s, _) = c.get("T1-E2", c.hr1, "/enterprises/T1-E1").await;
    assert_eq!(s, 200, "HR of T1-E1 may ask at any site");
    let (s, _) = c.get("T1-E1", c.hr2, "/enterprises/T1-E1").await;
    assert_eq!(s, 403, "not another enterprise's HR");
    let (s, rep) = c.get("T1", c.t1_admin, "/reports").await;
    assert_eq!(s, 200, "{rep}");
    assert_eq!(
        rep["learning_enterprises"]["by_enterprise"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{rep}"
    );
    assert!(
        rep["verified_hours_by_category"]["professional"]
            .as_i64()
            .unwrap()
            >= 119 + 80,
        "{rep}"
    );
    assert!(rep["orders"]["completed"].as_i64().unwrap() >= 1, "{rep}");
    let (s, rep) = c.get("CITY", c.city_admin, "/reports").await;
    assert_eq!(s, 200);
    assert!(
        rep["programs"]["demonstration"].as_i64().unwrap() >= 1,
        "{rep}"
    );
    let (s, _) = c.get("T2", c.t1_admin, "/reports").await;
    assert_eq!(s, 403, "not another township's");
    let (s, _) = c.get("T1", c.hr1, "/reports").await;
    assert_eq!(s, 403, "site admins of the site");
    let idno = kernel::identity::reveal_id_number(&c.k.kernel, &sys(), c.hr1)
        .await
        .unwrap();
    assert!(!rep.to_string().contains(&idno[..10]));
}

async fn funds(c: &City) {
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

async fn bad_input(c: &City) {
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

async fn rules(k: TestKernel) {
    let c = City::new(k).await;
    enterprises_and_staff(&c).await;
    programs_and_orders(&c).await;
    hours(&c).await;
    compliance(&c).await;
    rates_and_report(&c).await;
    funds(&c).await;
    bad_input(&c).await;
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
