//! The volunteer rules as served, on SQLite and PostgreSQL, in one test
//! city per backend: registration (active account, minors with consent,
//! numbers unique, the kernel's role, no ID numbers), requirements and
//! overlapping shifts, the cancel cut-off, hours (the checked interval, not
//! one's own, no overlapping verified hours, exactly one ledger entry),
//! a reversal in the account and the tier, the notice window and a
//! blocking objection, service proofs, reports and bad input.

mod common;

use common::{at, sys, today, City};
use lifelong_harness::TestKernel;
use serde_json::json;

fn this_year() -> i32 {
    today()[..4].parse().unwrap()
}

async fn registration(c: &City) {
    let no_account = c.person(1990, "T1-V1", false).await;
    let (s, v) = c.post(no_account, "/volunteers", json!({})).await;
    assert_eq!(s, 409, "an active account is needed: {v}");
    let minor = c.person(this_year() - 16, "T1-V1", true).await;
    let (s, v) = c.post(minor, "/volunteers", json!({})).await;
    assert_eq!(s, 422, "a minor needs consent: {v}");
    let (s, v) = c
        .post(minor, "/volunteers", json!({"guardian_consent": {"guardian_name": "母亲", "relation": "mother", "document": "consent/2026/17", "signed_on": today()}}))
        .await;
    assert_eq!((s, v["minor"].as_bool()), (201, Some(true)), "{v}");
    let child = c.person(this_year() - 10, "T1-V1", true).await;
    let (s, _) = c.post(child, "/volunteers", json!({"guardian_consent": {"guardian_name": "父亲", "relation": "father", "document": "d", "signed_on": today()}})).await;
    assert_eq!(s, 422, "below min_age");
    let (a, na) = c.volunteer().await;
    let (_, nb) = c.volunteer().await;
    assert_ne!(na, nb, "numbers are unique");
    let (s, _) = c.post(a, "/volunteers", json!({})).await;
    assert_eq!(s, 409, "once");
    let roles = kernel::identity::roles(&c.k.kernel, &sys(), a)
        .await
        .unwrap();
    assert!(
        roles
            .iter()
            .any(|g| g.role == "volunteer" && g.site_code == "T1"),
        "{roles:?}"
    );
    let (s, me) = c.get(a, "/me").await;
    assert_eq!(s, 200);
    let idno = kernel::identity::reveal_id_number(&c.k.kernel, &sys(), a)
        .await
        .unwrap();
    assert!(
        !me.to_string().contains(&idno[..6]) && !me.to_string().contains("id_number"),
        "{me}"
    );
}

async fn shifts(c: &City) {
    let (v, _) = c.volunteer().await;
    let a = c.need(2 * 1440, 2 * 1440 + 180, 5, json!({})).await;
    let overlapping = c.need(2 * 1440 + 60, 2 * 1440 + 240, 5, json!({})).await;
    let after = c.need(2 * 1440 + 180, 2 * 1440 + 300, 5, json!({})).await;
    let (s, r) = c.post(v, &format!("/needs/{a}/signups"), json!({})).await;
    assert_eq!((s, r["status"].as_str()), (201, Some("confirmed")), "{r}");
    let (s, r) = c
        .post(v, &format!("/needs/{overlapping}/signups"), json!({}))
        .await;
    assert_eq!(s, 409, "overlapping shifts refused: {r}");
    let (s, r) = c
        .post(
            c.staff,
            &format!("/needs/{overlapping}/signups"),
            json!({"person_id": v}),
        )
        .await;
    assert_eq!(s, 409, "also when a coordinator assigns: {r}");
    let (s, _) = c
        .post(v, &format!("/needs/{after}/signups"), json!({}))
        .await;
    assert_eq!(s, 201, "back to back is fine");
    // Requirements.
    let (minor, _) = {
        let m = c.person(this_year() - 16, "T1-V1", true).await;
        let (s, r) = c.post(m, "/volunteers", json!({"guardian_consent": {"guardian_name": "g", "relation": "mother", "document": "d", "signed_on": today()}})).await;
        assert_eq!(s, 201, "{r}");
        (m, r)
    };
    let adults = c
        .need(3 * 1440, 3 * 1440 + 60, 5, json!({"adult_only": true}))
        .await;
    let (s, _) = c
        .post(minor, &format!("/needs/{adults}/signups"), json!({}))
        .await;
    assert_eq!(s, 409, "adults only");
    let trained = c
        .need(
            4 * 1440,
            4 * 1440 + 60,
            5,
            json!({"requires_training": "急救"}),
        )
        .await;
    let (s, _) = c
        .post(v, &format!("/needs/{trained}/signups"), json!({}))
        .await;
    assert_eq!(s, 409, "training required");
    let (_, me) = c.get(v, "/me").await;
    let number = me["number"].as_str().unwrap();
    let (s, r) = c
        .post(
            c.staff,
            &format!("/volunteers/{number}/trainings"),
            json!({"course": "急救", "on_date": today(), "valid_until": "2099-12-31"}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let (s, _) = c
        .post(v, &format!("/needs/{trained}/signups"), json!({}))
        .await;
    assert_eq!(s, 201, "trained now");
    // The cut-off: a shift in an hour cannot be cancelled by the volunteer.
    let soon = c.need(60, 120, 5, json!({})).await;
    let (_, r) = c
        .post(v, &format!("/needs/{soon}/signups"), json!({}))
        .await;
    let sid = r["id"].as_i64().unwrap();
    let (s, _) = c
        .post(v, &format!("/signups/{sid}/cancel"), json!({}))
        .await;
    assert_eq!(s, 409, "past the cut-off");
    let (s, _) = c
        .post(c.staff, &format!("/signups/{sid}/cancel"), json!({}))
        .await;
    assert_eq!(s, 200, "a coordinator may");
}

/// A past shift the coordinator assigned `v` to, checked in and out:
/// returns the pending hours entry.
async fn served(c: &City, v: i64, from: i64, to: i64, minutes: Option<i64>) -> i64 {
    let need = c.need(from, to, 3, json!({})).await;
    let (s, r) = c
        .post(
            c.staff,
            &format!("/needs/{need}/signups"),
            json!({"person_id": v}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let sid = r["id"].as_i64().unwrap();
    let (s, r) = c
        .post(
            c.staff,
            &format!("/signups/{sid}/check-in"),
            json!({"at": at(from)}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = c
        .post(
            c.staff,
            &format!("/signups/{sid}/check-out"),
            json!({"at": at(to), "minutes": minutes}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    r["hours"]["id"].as_i64().unwrap()
}

async fn hours_and_reversal(c: &City) {
    c.setting("T1", "tier_hours", json!("2,5")).await;
    let (v, number) = c.volunteer().await;
    // Completed minutes above the checked interval: refused, nothing written.
    let need = c.need(-2 * 1440, -2 * 1440 + 180, 3, json!({})).await;
    let (_, r) = c
        .post(
            c.staff,
            &format!("/needs/{need}/signups"),
            json!({"person_id": v}),
        )
        .await;
    let sid = r["id"].as_i64().unwrap();
    c.post(
        c.staff,
        &format!("/signups/{sid}/check-in"),
        json!({"at": at(-2 * 1440)}),
    )
    .await;
    let (s, r) = c
        .post(
            c.staff,
            &format!("/signups/{sid}/check-out"),
            json!({"at": at(-2 * 1440 + 180), "minutes": 181}),
        )
        .await;
    assert_eq!(s, 422, "{r}");
    let (_, me) = c.get(v, "/me").await;
    assert!(me["hours"].as_array().unwrap().is_empty(), "{me}");
    assert_eq!(me["signups"][0]["check_out"], json!(null));
    let (s, r) = c
        .post(
            c.staff,
            &format!("/signups/{sid}/check-out"),
            json!({"at": at(-2 * 1440 + 180), "minutes": 150}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let h = r["hours"]["id"].as_i64().unwrap();
    let (s, r) = c
        .post(
            c.staff,
            &format!("/hours/{h}/verify"),
            json!({"minutes": 181}),
        )
        .await;
    assert_eq!(
        s, 422,
        "above the checked interval at verification too: {r}"
    );
    let (s, r) = c
        .post(c.staff, &format!("/hours/{h}/verify"), json!({}))
        .await;
    assert_eq!((s, r["status"].as_str()), (200, Some("verified")), "{r}");
    let (s, _) = c
        .post(c.staff, &format!("/hours/{h}/verify"), json!({}))
        .await;
    assert_eq!(s, 409, "once");
    assert_eq!(c.account_hours(v).await, (2.5, 1));
    let (_, view) = c.get(v, &format!("/volunteers/{number}")).await;
    assert_eq!(
        (view["verified_hours"].as_f64(), view["tier"].as_i64()),
        (Some(2.5), Some(1)),
        "{view}"
    );
    // Overlapping verified hours: a walk-in over the same interval.
    let window = c
        .need(
            -3 * 1440,
            -60,
            10,
            json!({"flexible": true, "duration_minutes": 120}),
        )
        .await;
    let (s, w) = c
        .post(
            v,
            &format!("/needs/{window}/hours"),
            json!({"check_in": at(-2 * 1440 + 60), "check_out": at(-2 * 1440 + 240)}),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let (s, r) = c
        .post(c.staff, &format!("/hours/{}/verify", w["id"]), json!({}))
        .await;
    assert_eq!(s, 409, "overlaps verified hours: {r}");
    // Nobody verifies their own hours: the coordinator volunteers too.
    let (s, r) = c.post(c.staff, "/volunteers", json!({})).await;
    assert_eq!(s, 201, "{r}");
    let (s, own) = c
        .post(
            c.staff,
            &format!("/needs/{window}/hours"),
            json!({"check_in": at(-2 * 1440), "check_out": at(-2 * 1440 + 60)}),
        )
        .await;
    assert_eq!(s, 201, "{own}");
    let (s, r) = c
        .post(c.staff, &format!("/hours/{}/verify", own["id"]), json!({}))
        .await;
    assert_eq!(s, 403, "{r}");
    assert_eq!(c.account_hours(c.staff).await, (0.0, 0));
    // A reversal with a reason: the account and the tier follow.
    let (s, _) = c
        .post(
            c.staff,
            &format!("/hours/{h}/reverse"),
            json!({"reason": ""}),
        )
        .await;
    assert_eq!(s, 422);
    let (s, r) = c
        .post(
            c.staff,
            &format!("/hours/{h}/reverse"),
            json!({"reason": "签到记录有误"}),
        )
        .await;
    assert_eq!((s, r["tier"].as_i64()), (200, Some(0)), "{r}");
    assert_eq!(
        c.account_hours(v).await,
        (0.0, 2),
        "the original stays, a reversal cancels it"
    );
    let (_, view) = c.get(v, &format!("/volunteers/{number}")).await;
    assert_eq!(
        (view["verified_hours"].as_f64(), view["tier"].as_i64()),
        (Some(0.0), Some(0))
    );
    let (s, _) = c
        .post(
            c.staff,
            &format!("/hours/{h}/reverse"),
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(s, 409, "reversed once");
    // The overlap is gone with the reversal: the walk-in can be verified.
    let (s, r) = c
        .post(c.staff, &format!("/hours/{}/verify", w["id"]), json!({}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(c.account_hours(v).await, (3.0, 3));
}

async fn recognition_and_proofs(c: &City) {
    // tier_hours is "2,5" at T1 (set above).
    let (v, number) = c.volunteer().await;
    let h = served(c, v, -5 * 1440, -5 * 1440 + 180, None).await;
    c.post(c.staff, &format!("/hours/{h}/verify"), json!({}))
        .await;
    let (s, r) = c
        .post(
            c.staff,
            "/commendations",
            json!({"number": number, "tier": 2}),
        )
        .await;
    assert_eq!(s, 409, "3 hours earn tier 1: {r}");
    let (s, cm) = c
        .post(
            c.staff,
            "/commendations",
            json!({"number": number, "tier": 1}),
        )
        .await;
    assert_eq!(s, 201, "{cm}");
    assert_eq!(
        cm["notice_until"],
        json!(volunteers::time::working_days_after(&today(), 5).unwrap())
    );
    let (s, r) = c
        .post(
            c.staff,
            &format!("/commendations/{}/confer", cm["id"]),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "the notice runs: {r}");
    let (_, board) = c.p.get("/notices", &c.k.anonymous()).await.unwrap();
    assert_eq!(board["items"][0]["number"], json!(number), "{board}");
    let objector = c.person(1980, "T1-V1", true).await;
    let (s, o) = c
        .post(
            objector,
            &format!("/commendations/{}/objections", cm["id"]),
            json!({"reason": "时长造假", "falsified_hours": true}),
        )
        .await;
    assert_eq!(s, 201, "{o}");
    let (s, r) = c
        .post(
            c.staff,
            &format!("/objections/{}/decide", o["id"]),
            json!({"upheld": true}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let blocked = volunteers::time::add_years(&today(), 2).unwrap();
    assert_eq!(r["blocked_until"], json!(blocked));
    assert_eq!(r["commendation"]["status"], "refused");
    let (s, r) = c
        .post(
            c.staff,
            "/commendations",
            json!({"number": number, "tier": 1}),
        )
        .await;
    assert_eq!(s, 409, "blocked: {r}");
    // No notice days at T1: conferred at once, when nobody objects.
    c.setting("T1", "notice_working_days", json!(0)).await;
    let (w, wnumber) = c.volunteer().await;
    let h = served(c, w, -6 * 1440, -6 * 1440 + 150, None).await;
    c.post(c.staff, &format!("/hours/{h}/verify"), json!({}))
        .await;
    let (_, cm) = c
        .post(
            c.staff,
            "/commendations",
            json!({"number": wnumber, "tier": 1}),
        )
        .await;
    let (s, r) = c
        .post(
            c.staff,
            &format!("/commendations/{}/confer", cm["id"]),
            json!({}),
        )
        .await;
    assert_eq!((s, r["status"].as_str()), (200, Some("conferred")), "{r}");
    let (_, view) = c.get(w, &format!("/volunteers/{wnumber}")).await;
    assert_eq!(view["conferred_tier"], 1);
    // A proof: name and number, never the ID number; anyone can check it.
    let (s, p) = c.post(c.staff, "/proofs", json!({"number": wnumber})).await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(
        (p["volunteer"]["number"].as_str(), p["hours_total"].as_f64()),
        (Some(wnumber.as_str()), Some(2.5))
    );
    let idno = kernel::identity::reveal_id_number(&c.k.kernel, &sys(), w)
        .await
        .unwrap();
    assert!(!p.to_string().contains(&idno[..10]));
    let cert = p["certificate_number"].as_str().unwrap();
    let (s, check) =
        c.p.get(&format!("/proofs/{cert}"), &c.k.anonymous())
            .await
            .unwrap();
    assert_eq!((s, check["genuine"].as_bool()), (200, Some(true)));
    let (s, html) =
        c.p.get(&format!("/proofs/{cert}/print"), &c.k.anonymous())
            .await
            .unwrap();
    assert!(
        s == 200
            && html.as_str().unwrap().contains("@media print")
            && html.as_str().unwrap().contains(&wnumber)
    );
    let (s, _) =
        c.p.get("/proofs/VSP-20260101-000001-00000000", &c.k.anonymous())
            .await
            .unwrap();
    assert_eq!(s, 404, "a made-up number is not genuine");
}

async fn reports_and_bad_input(c: &City) {
    let (s, r) = c.get(c.staff, "/reports").await;
    assert_eq!(s, 200, "{r}");
    assert!(r["volunteers"]["registered"].as_i64().unwrap() >= 8, "{r}");
    assert_eq!(r["verified_hours"].as_f64(), Some(3.0 + 3.0 + 2.5), "{r}");
    assert!(r["needs"]["open"].as_i64().unwrap() > 5);
    let (v, _) = c.volunteer().await;
    let (s, _) = c.get(v, "/reports").await;
    assert_eq!(s, 403, "coordinators only");
    let (s, _) = c.p.at("T2").get("/reports", &c.as_(c.staff)).await.unwrap();
    assert_eq!(s, 403, "not another township's");
    let (s, r) = c.post(c.staff, "/needs", json!({"role": "r", "title": "t", "starts_at": at(100), "ends_at": at(50), "max_wanted": 3})).await;
    assert_eq!(s, 422, "{r}");
    let (s, r) = c.post(c.staff, "/needs", json!({"role": "r", "title": "t", "starts_at": "tomorrow", "ends_at": at(50), "max_wanted": 3})).await;
    assert_eq!(
        (s, r["type"].as_str()),
        (422, Some("urn:lifelong:problem:invalid")),
        "{r}"
    );
    let (s, r) = c
        .post(c.staff, "/needs", json!({"role": "r", "colour": "red"}))
        .await;
    assert_eq!(s, 400, "{r}");
}

async fn rules(k: TestKernel) {
    let c = City::new(k).await;
    registration(&c).await;
    shifts(&c).await;
    hours_and_reversal(&c).await;
    recognition_and_proofs(&c).await;
    reports_and_bad_input(&c).await;
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
