//! Identity over HTTP: registration, masking, look-up, full reads, roles.

use crate::both;
use crate::support::{new_id, pretty, Env};
use axum::http::StatusCode;
use expect_test::expect;
use kernel::idnumber::Sex;
use serde_json::json;

both!(
    register_masks_and_finds_by_id_number,
    |env: Env| async move {
        let id = new_id(Sex::Male);
        let (s, v) = env
            .call(
                "POST",
                "/api/v1/persons",
                Some(&env.t1_admin),
                Some(json!({
                    "name": "张三", "id_number": id, "phone": "13812345678", "home_site": "T1-V1"
                })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let body = v.to_string();
        assert!(
            !body.contains(&id),
            "the ID number must never appear unmasked: {body}"
        );
        assert_eq!(
            v["id_number"],
            format!("{}**********{}", &id[..4], &id[14..])
        );
        assert_eq!(v["phone"], "138****5678");
        assert_eq!(v["sex"], "male");
        let pid = v["id"].as_i64().unwrap();
        let (s, v) = env
            .call(
                "POST",
                "/api/v1/persons/lookup",
                Some(&env.t1_admin),
                Some(json!({ "id_number": id })),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["id"], pid);
        // The ciphertext at rest is not the number.
        let (raw,): (Vec<u8>,) = sqlx::query_as("SELECT id_cipher FROM persons WHERE id = $1")
            .bind(pid)
            .fetch_one(env.kernel.db.reader())
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains(&id));
        // Duplicate registration is refused, masked.
        let (s, v) = env
            .call(
                "POST",
                "/api/v1/persons",
                Some(&env.admin),
                Some(json!({ "name": "李四", "id_number": id, "home_site": "T2" })),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(
            v["detail"],
            format!(
                "a person with ID number {}**********{} is already registered",
                &id[..4],
                &id[14..]
            )
        );
        // The audit log holds only the masked form.
        let (_, v) = env.get("/api/v1/audit?site=T1", Some(&env.admin)).await;
        assert!(v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "person.create"));
        assert!(!v.to_string().contains(&id));
    }
);

both!(bad_id_number_checksum, |env: Env| async move {
    let mut id = new_id(Sex::Female);
    let last = if id.ends_with('1') { '2' } else { '1' };
    id.pop();
    id.push(last);
    let (s, v) = env
        .call(
            "POST",
            "/api/v1/persons",
            Some(&env.admin),
            Some(json!({ "name": "王五", "id_number": id, "home_site": "T1" })),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let masked = format!("{}**********{}", &id[..4], &id[14..]);
    assert_eq!(
        pretty(&v),
        pretty(&json!({
            "type": "urn:lifelong:problem:invalid-input",
            "title": "Invalid input",
            "status": 422,
            "detail": format!("id_number: {masked} fails the GB 11643 check digit"),
            "errors": [{ "field": "id_number", "message": format!("{masked} fails the GB 11643 check digit") }]
        }))
    );
    assert!(!v.to_string().contains(&id));
    // Birth date and sex are checked against the number.
    let id = new_id(Sex::Female);
    let (s, v) = env.call("POST", "/api/v1/persons", Some(&env.admin), Some(json!({
        "name": "赵六", "id_number": id, "home_site": "T1", "birth_date": "1901-01-01", "sex": "male", "phone": "123"
    }))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    expect![[r#"
        [
          {
            "field": "birth_date",
            "message": "1901-01-01 does not match the birth date in the ID number"
          },
          {
            "field": "sex",
            "message": "male does not match the sex in the ID number"
          },
          {
            "field": "phone",
            "message": "must be an 11-digit mainland mobile number starting with 13-19"
          }
        ]"#]]
    .assert_eq(&pretty(&v["errors"]));
});

both!(
    learners_see_only_themselves_and_admins_only_their_subtree,
    |env: Env| async move {
        let (s, v) = env
            .get(
                &format!("/api/v1/persons/{}", env.learner_id),
                Some(&env.learner),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, _) = env
            .get(
                &format!("/api/v1/persons/{}", env.t1_admin_id),
                Some(&env.learner),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (t2, t2_id) = env.person("t2admin", "T2", "site_admin").await;
        let (s, _) = env
            .get(&format!("/api/v1/persons/{}", env.learner_id), Some(&t2))
            .await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "a T2 admin cannot read a T1 resident"
        );
        let (s, _) = env
            .get(
                &format!("/api/v1/persons/{}", env.learner_id),
                Some(&env.t1_admin),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = env.get("/api/v1/persons?site=T1", Some(&t2)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        let (s, v) = env.get("/api/v1/persons?site=T2&limit=10", Some(&t2)).await;
        assert_eq!(s, StatusCode::OK);
        let ids: Vec<i64> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [t2_id]);
        // A T2 admin cannot grant roles in T1.
        let (s, _) = env
            .call(
                "POST",
                &format!("/api/v1/persons/{}/roles", t2_id),
                Some(&t2),
                Some(json!({ "role": "teacher", "site": "T1" })),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        // Nor make themselves city admin.
        let (s, v) = env
            .call(
                "POST",
                &format!("/api/v1/persons/{}/roles", t2_id),
                Some(&t2),
                Some(json!({ "role": "city_admin", "site": "CITY" })),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    }
);

both!(
    full_id_reads_need_pii_reader_and_are_audited,
    |env: Env| async move {
        let path = format!("/api/v1/persons/{}/id-number", env.learner_id);
        let (s, v) = env.get(&path, Some(&env.t1_admin)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(
            v["detail"],
            "reading a full ID number needs the pii_reader role over the person's home site"
        );
        let (s, v) = env
            .call(
                "POST",
                &format!("/api/v1/persons/{}/roles", env.t1_admin_id),
                Some(&env.admin),
                Some(json!({ "role": "pii_reader", "site": "T1" })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let grant = v["id"].as_i64().unwrap();
        let (s, v) = env.get(&path, Some(&env.t1_admin)).await;
        assert_eq!(s, StatusCode::OK);
        let full = v["id_number"].as_str().unwrap();
        assert_eq!(full.len(), 18);
        kernel::idnumber::ResidentId::parse(full).unwrap();
        let (_, v) = env.get("/api/v1/audit?site=T1-V1", Some(&env.admin)).await;
        let reads: Vec<_> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "person.id_number.read")
            .collect();
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0]["actor_id"], env.t1_admin_id);
        // Revoked: no more reads.
        let (s, _) = env
            .call(
                "DELETE",
                &format!("/api/v1/persons/{}/roles/{grant}", env.t1_admin_id),
                Some(&env.admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = env.get(&path, Some(&env.t1_admin)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
);

both!(me_roles_and_rules_listings, |env: Env| async move {
    let (s, v) = env.get("/api/v1/me", Some(&env.learner)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["person"]["id"], env.learner_id);
    assert_eq!(v["roles"][0]["role"], "learner");
    assert_eq!(v["roles"][0]["site_code"], "T1-V1");
    let (s, v) = env
        .get(
            &format!("/api/v1/persons/{}/roles", env.t1_admin_id),
            Some(&env.admin),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["role"], "site_admin");
    let (s, v) = env.get("/api/v1/rules", Some(&env.learner)).await;
    assert_eq!((s, v), (StatusCode::OK, json!([])));
});
