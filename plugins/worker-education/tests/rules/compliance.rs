use crate::common::{this_year, today, City};
use serde_json::json;

pub async fn compliance(c: &City) {
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
