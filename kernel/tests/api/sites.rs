//! Site registry over HTTP: happy paths and every refusal, with exact bodies.

use crate::both;
use crate::support::{codes, pretty, Env};
use axum::body::Body;
use axum::http::StatusCode;
use expect_test::expect;
use serde_json::json;

both!(
    create_get_children_ancestors_subtree,
    |env: Env| async move {
        let a = Some(env.admin.as_str());
        let (s, v) = env
        .call("POST", "/api/v1/sites", a, Some(json!({
            "code": "T1-V1-TP", "name_zh": "一村教学点", "kind": "community_teaching_point",
            "parent_code": "T1-V1", "latitude": 24.5, "longitude": 117.6, "opened_on": "2026-03-01"
        })))
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["level"], "village");
        assert_eq!(v["parent_code"], "T1-V1");
        assert_eq!(v["latitude"], 24.5);
        let (s, v) = env.get("/api/v1/sites/T1-V1-TP", a).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["name_zh"], "一村教学点");
        let (_, v) = env.get("/api/v1/sites/T1/children", a).await;
        assert_eq!(codes(&v), ["T1-V1"]);
        let (_, v) = env.get("/api/v1/sites/T1-V1-TP/ancestors", a).await;
        assert_eq!(codes(&v), ["CITY", "T1", "T1-V1"]);
        // Subtree paginates with a cursor and lists a parent before its children.
        let (_, p1) = env.get("/api/v1/sites/T1/subtree?limit=2", a).await;
        assert_eq!(codes(&p1["items"]), ["T1", "T1-V1"]);
        let cursor = p1["next_cursor"].as_str().unwrap();
        let (_, p2) = env
            .get(
                &format!("/api/v1/sites/T1/subtree?limit=2&cursor={cursor}"),
                a,
            )
            .await;
        assert_eq!(codes(&p2["items"]), ["T1-V1-TP"]);
        assert!(p2["next_cursor"].is_null());
        // Search by name and kind.
        let (_, v) = env
            .get(
                "/api/v1/sites?q=%E6%95%99%E5%AD%A6&kind=community_teaching_point",
                a,
            )
            .await;
        assert_eq!(v["items"].as_array().unwrap().len(), 1);
    }
);

both!(wrong_parent_level_is_refused, |env: Env| async move {
    let (s, v) = env
        .call(
            "POST",
            "/api/v1/sites",
            Some(&env.admin),
            Some(json!({
                "code": "V9", "name_zh": "九村", "kind": "village", "parent_code": "CITY"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    expect![[r#"
        {
          "type": "urn:lifelong:problem:invalid-input",
          "title": "Invalid input",
          "status": 422,
          "detail": "parent_code: a village must be under a township, but CITY is a city",
          "errors": [
            {
              "field": "parent_code",
              "message": "a village must be under a township, but CITY is a city"
            }
          ]
        }"#]]
    .assert_eq(&pretty(&v));
});

both!(a_cycle_is_refused, |env: Env| async move {
    let (s, v) = env
        .call(
            "PATCH",
            "/api/v1/sites/T1",
            Some(&env.admin),
            Some(json!({ "parent_code": "T1-V1" })),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    expect![[r#"
        {
          "type": "urn:lifelong:problem:conflict",
          "title": "Conflict",
          "status": 409,
          "detail": "moving T1 under T1-V1 would make a cycle",
          "errors": [
            {
              "field": "parent_code",
              "message": "moving T1 under T1-V1 would make a cycle"
            }
          ]
        }"#]]
    .assert_eq(&pretty(&v));
});

both!(duplicate_code_is_refused, |env: Env| async move {
    let (s, v) = env
        .call("POST", "/api/v1/sites", Some(&env.admin), Some(json!({ "code": "T1", "name_zh": "重复", "kind": "township", "parent_code": "CITY" })))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["detail"], "a site with code \"T1\" already exists");
    assert_eq!(v["errors"][0]["field"], "code");
});

both!(
    moving_a_village_rewrites_the_subtree,
    |env: Env| async move {
        let a = Some(env.admin.as_str());
        env.call("POST", "/api/v1/sites", a, Some(json!({ "code": "TP", "name_zh": "点", "kind": "community_teaching_point", "parent_code": "T1-V1" }))).await;
        let (s, v) = env
            .call(
                "PATCH",
                "/api/v1/sites/T1-V1",
                a,
                Some(json!({ "parent_code": "T2" })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (_, v) = env.get("/api/v1/sites/TP/ancestors", a).await;
        assert_eq!(codes(&v), ["CITY", "T2", "T1-V1"]);
    }
);

both!(
    close_keeps_history_and_needs_children_closed,
    |env: Env| async move {
        let a = Some(env.admin.as_str());
        let (s, v) = env.call("POST", "/api/v1/sites/T1/close", a, None).await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(
            v["detail"],
            "site T1 still has 1 active child sites; close them first"
        );
        let (s, v) = env
            .call(
                "POST",
                "/api/v1/sites/T2-V1/close",
                a,
                Some(json!({ "closed_on": "2026-05-01" })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "closed");
        assert_eq!(v["closed_on"], "2026-05-01");
        let (s, _) = env.get("/api/v1/sites/T2-V1", a).await;
        assert_eq!(s, StatusCode::OK, "closed sites are kept");
        let (s, v) = env.call("POST", "/api/v1/sites", a, Some(json!({ "code": "X", "name_zh": "x", "kind": "community_teaching_point", "parent_code": "T2-V1" }))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["detail"], "parent_code: parent T2-V1 is closed");
    }
);

both!(
    township_admin_is_confined_to_their_subtree,
    |env: Env| async move {
        let t1 = Some(env.t1_admin.as_str());
        let (s, _) = env.call("POST", "/api/v1/sites", t1, Some(json!({ "code": "T1-V2", "name_zh": "二村", "kind": "village", "parent_code": "T1" }))).await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, v) = env.call("POST", "/api/v1/sites", t1, Some(json!({ "code": "T2-V2", "name_zh": "二村", "kind": "village", "parent_code": "T2" }))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(
            v["detail"],
            "creating a site needs the site_admin role at this site or one above it"
        );
        let (s, v) = env.get("/api/v1/sites/T2-V1", t1).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(v["detail"], "site T2-V1 not found");
        let (s, _) = env
            .call(
                "PATCH",
                "/api/v1/sites/T2",
                t1,
                Some(json!({ "name_zh": "改" })),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // A township admin cannot close their own township (a structural change from above).
        let (s, _) = env
            .call("POST", "/api/v1/sites/T1-V2/close", t1, None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = env.call("POST", "/api/v1/sites/T1/close", t1, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        // Listing shows only the admin's subtree (plus nothing of T2).
        let (_, v) = env.get("/api/v1/sites?limit=500", t1).await;
        let listed = codes(&v["items"]);
        assert!(listed.iter().all(|c| c.starts_with("T1")), "{listed:?}");
        let (s, _) = env.get("/api/v1/sites/T2/subtree", t1).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
);

both!(malformed_and_oversized_bodies, |env: Env| async move {
    let (s, _, v) = env
        .raw(
            "POST",
            "/api/v1/sites",
            Some(&env.admin),
            Body::from("{\"code\": "),
            Some("application/json"),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["type"], "urn:lifelong:problem:malformed-request");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("EOF while parsing a value"),
        "{v}"
    );
    let (s, _, v) = env
        .raw(
            "POST",
            "/api/v1/sites",
            Some(&env.admin),
            Body::from("{\"code\": 5}"),
            Some("application/json"),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("invalid type: integer `5`, expected a string"),
        "{v}"
    );
    let big = format!("{{\"code\":\"{}\"}}", "x".repeat(2 << 20));
    let (s, h, v) = env
        .raw(
            "POST",
            "/api/v1/sites",
            Some(&env.admin),
            Body::from(big),
            Some("application/json"),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h["content-type"], "application/problem+json");
    expect![[r#"
        {
          "type": "urn:lifelong:problem:body-too-large",
          "title": "Request body too large",
          "status": 413,
          "detail": "the request body exceeds the server's limit"
        }"#]]
    .assert_eq(&pretty(&v));
});

both!(missing_and_wrong_tokens, |env: Env| async move {
    let (s, h, v) = env
        .raw("GET", "/api/v1/sites/T1", None, Body::empty(), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h["www-authenticate"], "Bearer");
    expect![[r#"
        {
          "type": "urn:lifelong:problem:unauthenticated",
          "title": "Authentication required",
          "status": 401,
          "detail": "send Authorization: Bearer <token>"
        }"#]]
    .assert_eq(&pretty(&v));
    let (s, v) = env.get("/api/v1/sites/T1", Some("llt_not-a-token")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["detail"], "the bearer token is not valid");
    // Logout revokes the token.
    let (s, _) = env
        .call("POST", "/api/v1/auth/logout", Some(&env.learner), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = env.get("/api/v1/me", Some(&env.learner)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["detail"], "the bearer token was revoked");
    let (s, v) = env
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({ "login": "learner1", "password": "nope" })),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["detail"], "wrong login or password");
});

both!(expired_token_is_refused, |env: Env| async move {
    // A kernel whose tokens live zero seconds issues tokens that are expired
    // the moment they are presented.
    let short = kernel::Kernel {
        token_ttl_secs: 0,
        ..env.kernel.clone()
    };
    let issued = kernel::identity::login(&short, "learner1", "password-123")
        .await
        .unwrap();
    let (s, h, v) = env
        .raw(
            "GET",
            "/api/v1/me",
            Some(&issued.token),
            Body::empty(),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h["www-authenticate"], "Bearer");
    assert_eq!(v["detail"], "the bearer token has expired");
    // The same login through the normal kernel still works.
    let (s, v) = env
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({ "login": "learner1", "password": "password-123" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let fresh = v["token"].as_str().unwrap().to_string();
    let (s, _) = env.get("/api/v1/me", Some(&fresh)).await;
    assert_eq!(s, StatusCode::OK);
});

both!(
    csv_import_is_all_or_nothing_with_row_errors,
    |env: Env| async move {
        let bad = "code,name_zh,kind,parent_code,latitude\nT1-V7,七村,village,T1,24.1\nT1-V8,八村,village,CITY,\nT1-V9,,village,T1,north\n";
        let (s, _, v) = env
            .raw(
                "POST",
                "/api/v1/sites/import",
                Some(&env.admin),
                Body::from(bad),
                Some("text/csv"),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        expect![[r#"
        {
          "type": "urn:lifelong:problem:invalid-input",
          "title": "Invalid input",
          "status": 422,
          "detail": "2 row error(s); nothing was imported",
          "errors": [
            {
              "field": "line 4: latitude",
              "message": "\"north\" is not a number"
            },
            {
              "field": "line 4: name_zh",
              "message": "must be 1-200 characters"
            }
          ]
        }"#]]
        .assert_eq(&pretty(&v));
        let (s, _) = env.get("/api/v1/sites/T1-V7", Some(&env.admin)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "nothing half-written");
        let bad2 =
            "code,name_zh,kind,parent_code\nT1-V7,七村,village,T1\nT1-V8,八村,village,CITY\n";
        let (s, _, v) = env
            .raw(
                "POST",
                "/api/v1/sites/import",
                Some(&env.admin),
                Body::from(bad2),
                Some("text/csv"),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["errors"][0]["field"], "line 3: parent_code");
        assert_eq!(
            v["errors"][0]["message"],
            "a village must be under a township, but CITY is a city"
        );
        // Children before parents in the file is fine; the export round-trips.
        let good = "code,name_zh,kind,parent_code\nT1-V7-TP,七村点,community_teaching_point,T1-V7\nT1-V7,七村,village,T1\n";
        let (s, _, v) = env
            .raw(
                "POST",
                "/api/v1/sites/import",
                Some(&env.admin),
                Body::from(good),
                Some("text/csv"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v, json!({ "created": 2, "updated": 0 }));
        let (s, _, v) = env
            .raw(
                "GET",
                "/api/v1/sites/export?within=T1-V7",
                Some(&env.admin),
                Body::empty(),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let text = v.as_str().unwrap();
        assert!(
            text.starts_with("code,name_zh,name_en,kind,parent_code,"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3);
        let (s, _, v) = env
            .raw(
                "POST",
                "/api/v1/sites/import",
                Some(&env.admin),
                Body::from(text.replace("七村点", "七村教学点")),
                Some("text/csv"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v, json!({ "created": 0, "updated": 2 }));
    }
);

both!(openapi_lists_only_real_routes, |env: Env| async move {
    let (s, doc) = env.get("/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>(),
        kernel::http::openapi::ROUTES.len()
    );
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{site}", "T1")
                .replace("{id}", "1")
                .replace("{grant}", "1")
                .replace("{action}", "activate");
            let (s, _, v) = env
                .raw(&method.to_uppercase(), &concrete, None, Body::empty(), None)
                .await;
            assert_ne!(
                v["type"], "urn:lifelong:problem:no-such-route",
                "{method} {path} is documented but not routed"
            );
            assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
    let (s, v) = env.get("/api/v1/nope", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["type"], "urn:lifelong:problem:no-such-route");
});
