use crate::common::{sys, uscc, City};
use serde_json::json;

pub async fn enterprises_and_staff(c: &City) {
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
