//! The volunteer invariants where they are easiest to break, on SQLite and
//! PostgreSQL: places and overlaps under concurrent requests (coordinators
//! confirming and assigning included), a shift already served still
//! counting for overlaps, verification racing itself, objections dismissed
//! and upheld, a conferred tier and a service proof after a reversal, and
//! a report's figures worked out by hand.

mod common;

use common::{at, today, City};
use lifelong_harness::TestKernel;
use serde_json::{json, Value};

/// A shift the coordinator assigned `v` to at `site`, checked in and out
/// (past times): returns (sign-up, pending hours entry).
async fn served(c: &City, site: &str, v: i64, from: i64, to: i64) -> (i64, i64) {
    let p = c.p.at(site);
    let staff = c.as_(c.staff);
    let (s, n) = p
        .post(
            "/needs",
            Some(json!({"role": "活动引导", "title": "学习活动", "starts_at": at(from), "ends_at": at(to), "max_wanted": 3})),
            &staff,
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{n}");
    let (s, r) = p
        .post(
            &format!("/needs/{}/signups", n["id"]),
            Some(json!({"person_id": v})),
            &staff,
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{r}");
    let sid = r["id"].as_i64().unwrap();
    let (s, r) = p
        .post(
            &format!("/signups/{sid}/check-in"),
            Some(json!({"at": at(from)})),
            &staff,
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{r}");
    let (s, r) = p
        .post(
            &format!("/signups/{sid}/check-out"),
            Some(json!({"at": at(to)})),
            &staff,
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{r}");
    (sid, r["hours"]["id"].as_i64().unwrap())
}

/// Run `calls` (method POST, path, body, caller) at once; their statuses
/// and bodies in order.
async fn at_once(c: &City, calls: Vec<(String, Value, i64)>) -> Vec<(u16, Value)> {
    futures_util::future::join_all(calls.into_iter().map(|(path, body, who)| {
        let p = c.p.clone();
        let who = c.as_(who);
        async move { p.post(&path, Some(body), &who).await.unwrap() }
    }))
    .await
}

/// Confirmed places never exceed the number wanted when coordinators
/// confirm and assign at once; one person racing into overlapping shifts
/// holds one; a shift already attended still counts for overlaps.
async fn places_and_overlaps(c: &City) {
    let need = c
        .need(2 * 1440, 2 * 1440 + 120, 5, json!({"auto_confirm": false}))
        .await;
    let mut calls = Vec::new();
    for _ in 0..12 {
        let (v, _) = c.volunteer().await;
        let (s, r) = c
            .post(v, &format!("/needs/{need}/signups"), json!({}))
            .await;
        assert_eq!((s, r["status"].as_str()), (201, Some("applied")), "{r}");
        calls.push((format!("/signups/{}/confirm", r["id"]), json!({}), c.staff));
    }
    for _ in 0..6 {
        let (v, _) = c.volunteer().await;
        calls.push((
            format!("/needs/{need}/signups"),
            json!({"person_id": v}),
            c.staff,
        ));
    }
    let results = at_once(c, calls).await;
    let won = results
        .iter()
        .filter(|(s, v)| (*s == 200 || *s == 201) && v["status"] == "confirmed")
        .count();
    let refused = results.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!((won, refused), (5, 13), "{results:?}");
    let (_, roster) = c.get(c.staff, &format!("/needs/{need}/signups")).await;
    assert_eq!(roster["need"]["confirmed"], 5);
    assert_eq!(roster["signups"]["confirmed"].as_array().unwrap().len(), 5);

    // One volunteer, six overlapping shifts, all at once: one is held.
    let (v, _) = c.volunteer().await;
    let mut calls = Vec::new();
    for k in 0..6 {
        let n = c
            .need(3 * 1440 + k * 10, 3 * 1440 + 120 + k * 10, 5, json!({}))
            .await;
        calls.push((format!("/needs/{n}/signups"), json!({}), v));
    }
    let results = at_once(c, calls).await;
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        (
            statuses.iter().filter(|s| **s == 201).count(),
            statuses.iter().filter(|s| **s == 409).count()
        ),
        (1, 5),
        "{results:?}"
    );

    // A shift served (attended) still holds its time: no overlapping
    // assignment afterwards.
    let (w, _) = c.volunteer().await;
    served(c, "T1", w, -3 * 1440, -3 * 1440 + 180).await;
    let overlapping = c.need(-3 * 1440 + 60, -3 * 1440 + 240, 3, json!({})).await;
    let (s, r) = c
        .post(
            c.staff,
            &format!("/needs/{overlapping}/signups"),
            json!({"person_id": w}),
        )
        .await;
    assert_eq!(s, 409, "overlaps the attended shift: {r}");
    let (_, me) = c.get(w, "/me").await;
    assert_eq!(me["signups"].as_array().unwrap().len(), 1, "{me}");
}

/// Verification racing itself: one ledger entry per hours entry, and of two
/// overlapping entries only one is verified.
async fn verification_races(c: &City) {
    let (v, _) = c.volunteer().await;
    let (_, h) = served(c, "T1", v, -4 * 1440, -4 * 1440 + 120).await;
    let results = at_once(
        c,
        (0..8)
            .map(|_| (format!("/hours/{h}/verify"), json!({}), c.staff))
            .collect(),
    )
    .await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let conflict = results.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!((ok, conflict), (1, 7), "{results:?}");
    assert_eq!(c.account_hours(v).await, (2.0, 1));

    let window = c
        .need(
            -6 * 1440,
            -60,
            10,
            json!({"flexible": true, "duration_minutes": 60}),
        )
        .await;
    let mut ids = Vec::new();
    for (from, to) in [
        (-5 * 1440, -5 * 1440 + 90),
        (-5 * 1440 + 30, -5 * 1440 + 120),
    ] {
        let (s, r) = c
            .post(
                v,
                &format!("/needs/{window}/hours"),
                json!({"check_in": at(from), "check_out": at(to)}),
            )
            .await;
        assert_eq!(s, 201, "{r}");
        ids.push(r["id"].as_i64().unwrap());
    }
    let results = at_once(
        c,
        ids.iter()
            .map(|id| (format!("/hours/{id}/verify"), json!({}), c.staff))
            .collect(),
    )
    .await;
    let mut statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{results:?}");
    assert_eq!(c.account_hours(v).await.1, 2);
}

/// Objections: a dismissed one puts the tier back on notice, an upheld one
/// not about falsified hours refuses without blocking. A reversal brings a
/// conferred tier down with the hours, and a service proof that certified
/// the reversed hours says so when checked.
async fn recognition_after_corrections(c: &City) {
    c.setting("T1", "tier_hours", json!("2,5")).await;
    c.setting("T1", "notice_working_days", json!(0)).await;
    let (v, number) = c.volunteer().await;
    let (_, h) = served(c, "T1", v, -8 * 1440, -8 * 1440 + 180).await;
    let (s, r) = c
        .post(c.staff, &format!("/hours/{h}/verify"), json!({}))
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, cm) = c
        .post(
            c.staff,
            "/commendations",
            json!({"number": number, "tier": 1}),
        )
        .await;
    assert_eq!(s, 201, "{cm}");
    let objector = c.person(1980, "T1-V1", true).await;
    let (s, o) = c
        .post(
            objector,
            &format!("/commendations/{}/objections", cm["id"]),
            json!({"reason": "不认识此人"}),
        )
        .await;
    assert_eq!(s, 201, "{o}");
    let (s, _) = c
        .post(
            c.staff,
            &format!("/commendations/{}/confer", cm["id"]),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "an objection is pending");
    let (s, r) = c
        .post(
            c.staff,
            &format!("/objections/{}/decide", o["id"]),
            json!({"upheld": false}),
        )
        .await;
    assert_eq!(
        (s, r["commendation"]["status"].as_str()),
        (200, Some("notice")),
        "{r}"
    );
    let (s, r) = c
        .post(
            c.staff,
            &format!("/commendations/{}/confer", cm["id"]),
            json!({}),
        )
        .await;
    assert_eq!((s, r["status"].as_str()), (200, Some("conferred")), "{r}");
    // Upheld, but not for falsified hours: refused, not blocked.
    let (_, named) = c
        .post(
            c.staff,
            "/commendations",
            json!({"number": number, "title": "优秀志愿者"}),
        )
        .await;
    let (_, o) = c
        .post(
            objector,
            &format!("/commendations/{}/objections", named["id"]),
            json!({"reason": "服务态度问题"}),
        )
        .await;
    let (s, r) = c
        .post(
            c.staff,
            &format!("/objections/{}/decide", o["id"]),
            json!({"upheld": true}),
        )
        .await;
    assert_eq!(
        (s, r["commendation"]["status"].as_str(), &r["blocked_until"]),
        (200, Some("refused"), &Value::Null),
        "{r}"
    );

    let (s, proof) = c.post(c.staff, "/proofs", json!({"number": number})).await;
    assert_eq!(
        (s, proof["hours_total"].as_f64()),
        (201, Some(3.0)),
        "{proof}"
    );
    let cert = proof["certificate_number"].as_str().unwrap().to_string();
    let (s, r) = c
        .post(
            c.staff,
            &format!("/hours/{h}/reverse"),
            json!({"reason": "重复登记"}),
        )
        .await;
    assert_eq!((s, r["tier"].as_i64()), (200, Some(0)), "{r}");
    let (_, view) = c.get(v, &format!("/volunteers/{number}")).await;
    assert_eq!(
        (view["tier"].as_i64(), view["conferred_tier"].as_i64()),
        (Some(0), Some(0)),
        "the conferred tier follows the hours down: {view}"
    );
    let (s, check) =
        c.p.get(&format!("/proofs/{cert}"), &c.k.anonymous())
            .await
            .unwrap();
    assert_eq!(s, 200, "{check}");
    assert_eq!(check["genuine"], true, "it was issued: {check}");
    assert_eq!(
        (
            check["hours_total"].as_f64(),
            check["hours_reversed_since"].as_f64(),
            check["current"].as_bool()
        ),
        (Some(3.0), Some(3.0), Some(false)),
        "the reversed hours are named: {check}"
    );
    let (_, html) =
        c.p.get(&format!("/proofs/{cert}/print"), &c.k.anonymous())
            .await
            .unwrap();
    assert!(html.as_str().unwrap().contains("撤销"), "{html}");
}

/// The report of a site nothing else uses (U1, the elder university),
/// every figure worked out by hand; "active" is the last twelve months,
/// the current one included, so hours from the same month last year do
/// not count.
async fn report_figures(c: &City) {
    let u1 = c.p.at("U1");
    let staff = c.as_(c.staff);
    let mut vs = Vec::new();
    for _ in 0..3 {
        let v = c.person(1990, "T1-V1", true).await;
        let (s, r) = u1
            .post("/volunteers", Some(json!({})), &c.as_(v))
            .await
            .unwrap();
        assert_eq!(s, 201, "{r}");
        vs.push(v);
    }
    // A past shift: one attended (3 h, verified), one no-show.
    let (_, h) = served(c, "U1", vs[0], -2 * 1440, -2 * 1440 + 180).await;
    let (s, r) = u1
        .post(&format!("/hours/{h}/verify"), None, &staff)
        .await
        .unwrap();
    assert_eq!(s, 200, "{r}");
    let (_, roster) = u1.get("/needs", &staff).await.unwrap();
    let past = roster["items"][0]["id"].as_i64().unwrap();
    let (s, r) = u1
        .post(
            &format!("/needs/{past}/signups"),
            Some(json!({"person_id": vs[1]})),
            &staff,
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{r}");
    let (s, r) = u1
        .post(&format!("/signups/{}/no-show", r["id"]), None, &staff)
        .await
        .unwrap();
    assert_eq!(s, 200, "{r}");
    // A shift to come with its one place taken.
    let (_, n) = u1
        .post(
            "/needs",
            Some(json!({"role": "导览", "title": "开放日", "starts_at": at(5 * 1440), "ends_at": at(5 * 1440 + 60), "max_wanted": 1})),
            &staff,
        )
        .await
        .unwrap();
    let (s, r) = u1
        .post(&format!("/needs/{}/signups", n["id"]), None, &c.as_(vs[2]))
        .await
        .unwrap();
    assert_eq!((s, r["status"].as_str()), (201, Some("confirmed")), "{r}");
    // Walk-in hours on the first day of this month last year.
    let (_, w) = u1
        .post(
            "/needs",
            Some(json!({"role": "助学", "title": "全年助学", "starts_at": at(-400 * 1440), "ends_at": at(-60), "max_wanted": 10, "flexible": true})),
            &staff,
        )
        .await
        .unwrap();
    let t = today();
    let last_year = format!("{}-{}-01", t[..4].parse::<i32>().unwrap() - 1, &t[5..7]);
    let (s, r) = u1
        .post(
            &format!("/needs/{}/hours", w["id"]),
            Some(json!({"person_id": vs[2], "check_in": format!("{last_year}T10:00"), "check_out": format!("{last_year}T12:00")})),
            &staff,
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{r}");
    let (s, r) = u1
        .post(&format!("/hours/{}/verify", r["id"]), None, &staff)
        .await
        .unwrap();
    assert_eq!(s, 200, "{r}");

    let (s, rep) = u1.get("/reports", &staff).await.unwrap();
    assert_eq!(s, 200, "{rep}");
    let recent = common::at(-2 * 1440)[..7].to_string();
    assert_eq!(
        rep["volunteers"],
        json!({"registered": 3, "active_last_12_months": 1})
    );
    assert_eq!(rep["needs"], json!({"open": 3, "filled": 1}));
    assert_eq!(
        rep["signups"],
        json!({"attended": 1, "no_show": 1, "confirmed": 1})
    );
    assert_eq!(rep["verified_hours"], json!(5.0));
    assert_eq!(
        rep["verified_hours_by_month"],
        json!({ last_year[..7].to_string(): 2.0, recent: 3.0 })
    );
    assert_eq!(
        rep["tiers"],
        json!({"0": 3, "1": 0, "2": 0, "3": 0, "4": 0, "5": 0})
    );
    assert_eq!(rep["no_show_rate"], json!(0.5));
}

/// `volunteers.verified_hours` as the kernel asks for it: the report's
/// figure today, nothing as of a date before any verification, and a
/// reversal taking hours off from its day on only.
async fn verified_hours_indicator(c: &City) {
    const KEY: &str = "volunteers.verified_hours";
    const NOW: &str = "2099-12-31";
    let u1 = c.p.at("U1");
    let staff = c.as_(c.staff);
    let (s, rep) = u1.get("/reports", &staff).await.unwrap();
    assert_eq!(s, 200, "{rep}");
    assert_eq!(u1.indicator(KEY, NOW).await, Ok(Some(5.0)));
    assert_eq!(rep["verified_hours"], json!(5.0));
    assert_eq!(u1.indicator(KEY, "2025-12-31").await, Ok(Some(0.0)));
    let t1 = c.p.at("T1").indicator(KEY, NOW).await.unwrap().unwrap();
    assert!(t1 > 5.0, "T1's subtree holds U1 and more: {t1}");
    assert_eq!(c.p.at("T2").indicator(KEY, NOW).await, Ok(Some(0.0)));
    let (s, list) = u1.get("/hours?status=verified", &staff).await.unwrap();
    assert_eq!(s, 200, "{list}");
    let three = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["minutes"] == 180)
        .expect("the 3-hour entry");
    let (s, r) = u1
        .post(
            &format!("/hours/{}/reverse", three["id"]),
            Some(json!({"reason": "登记错误"})),
            &staff,
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{r}");
    assert_eq!(u1.indicator(KEY, NOW).await, Ok(Some(2.0)));
    assert_eq!(u1.indicator(KEY, "2025-12-31").await, Ok(Some(0.0)));
    assert_eq!(c.p.at("T1").indicator(KEY, NOW).await, Ok(Some(t1 - 3.0)));
}

async fn integrity(k: TestKernel) {
    let c = City::new(k).await;
    places_and_overlaps(&c).await;
    verification_races(&c).await;
    // Before tier_hours changes at T1 (U1 is below it).
    report_figures(&c).await;
    recognition_after_corrections(&c).await;
    verified_hours_indicator(&c).await;
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_sqlite() {
    integrity(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_postgres() {
    integrity(TestKernel::postgres().await).await;
}
