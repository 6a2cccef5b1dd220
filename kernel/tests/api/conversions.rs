//! Conversion between kinds of outcome in the credit bank: published,
//! versioned standards (1:1, n:1, 1:n) with caps and validity dates; sources
//! consumed once, also under concurrency; reversals release them.

use crate::both;
use crate::support::Env;
use axum::http::StatusCode;
use serde_json::{json, Value};

async fn standard(env: &Env, body: Value) -> Value {
    let (s, v) = env
        .call(
            "POST",
            "/api/v1/conversion-standards",
            Some(&env.admin),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// Record a skill certificate for the learner; its entry id.
async fn certificate(env: &Env, key: &str) -> i64 {
    let (s, v) = env
        .call(
            "POST",
            "/api/v1/ledger/entries",
            Some(&env.t1_admin),
            Some(json!({
                "person_id": env.learner_id, "kind": "skill_certificate", "title": format!("电工证 {key}"),
                "quantity": 1, "occurred_on": "2026-03-01", "source_site": "T1", "idempotency_key": key
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_i64().unwrap()
}

async fn convert(env: &Env, standard: &str, sources: &[i64], key: &str) -> (StatusCode, Value) {
    env.call(
        "POST",
        "/api/v1/ledger/conversions",
        Some(&env.t1_admin),
        Some(json!({
            "person_id": env.learner_id, "standard": standard, "sources": sources,
            "source_site": "T1", "idempotency_key": key
        })),
    )
    .await
}

async fn reverse(env: &Env, id: i64, key: &str) -> (StatusCode, Value) {
    env.call(
        "POST",
        &format!("/api/v1/ledger/entries/{id}/reverse"),
        Some(&env.t1_admin),
        Some(json!({ "reason": "撤销", "idempotency_key": key })),
    )
    .await
}

fn pair() -> Value {
    json!({
        "code": "cert-pair", "name": "两证换学分", "cardinality": "n:1", "sources": 2,
        "source_kind": "skill_certificate", "target_kind": "academic_credit",
        "target_quantity": 4, "cap": 8, "valid_from": "2025-01-01"
    })
}

both!(
    n_to_one_consumes_two_certificates_once_and_a_reversal_releases_them,
    |env: Env| async move {
        let v = standard(&env, pair()).await;
        assert_eq!(v["version"], 1);
        assert_eq!(v["sources_per_conversion"], 2);
        let (a, b, c) = (
            certificate(&env, "c-a").await,
            certificate(&env, "c-b").await,
            certificate(&env, "c-c").await,
        );
        let (s, conv) = convert(&env, "cert-pair", &[b, a], "conv-1").await;
        assert_eq!(s, StatusCode::CREATED, "{conv}");
        assert_eq!(conv["kind"], "academic_credit");
        assert_eq!(conv["quantity"], 4.0);
        assert_eq!(conv["credits"], 4.0);
        assert_eq!(conv["rule_code"], "cert-pair");
        assert_eq!(conv["rule_version"], 1);
        assert_eq!(conv["reference"], format!("converts entries {a}, {b}"));
        // A retry replays; the same key for other sources is refused.
        let (s, again) = convert(&env, "cert-pair", &[a, b], "conv-1").await;
        assert_eq!(s, StatusCode::OK, "{again}");
        assert_eq!(again["id"], conv["id"]);
        // A third use of a consumed certificate is refused, whatever it is paired with.
        let (s, v) = convert(&env, "cert-pair", &[a, c], "conv-2").await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(
            v["detail"].as_str().unwrap().contains("already consumed"),
            "{v}"
        );
        let (s, v) = convert(&env, "cert-pair", &[c], "conv-3").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        // A consumed source cannot be reversed while the conversion stands.
        let (s, v) = reverse(&env, a, "rev-a").await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        // Reversing the conversion releases both certificates.
        let conv_id = conv["id"].as_i64().unwrap();
        let (s, v) = reverse(&env, conv_id, "rev-conv").await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = convert(&env, "cert-pair", &[a, c], "conv-4").await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = convert(&env, "cert-pair", &[b, c], "conv-5").await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        let (_, st) = env
            .get(
                &format!("/api/v1/persons/{}/account/statement", env.learner_id),
                Some(&env.learner),
            )
            .await;
        assert_eq!(st["total_credits"], 4.0, "{st}");
        // Links are released, never deleted.
        let del = sqlx::query("DELETE FROM conversion_links")
            .execute(env.kernel.db.reader())
            .await;
        assert!(del.is_err());
        let report = kernel::accounts::ledger::verify(&env.kernel.db, 2)
            .await
            .unwrap();
        assert!(report.broken.is_empty(), "{:?}", report.broken);
    }
);

both!(caps_validity_and_versions, |env: Env| async move {
    // Only admins read the standards; only city admins publish them.
    let (s, _) = env
        .call(
            "POST",
            "/api/v1/conversion-standards",
            Some(&env.t1_admin),
            Some(pair()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = env
        .get("/api/v1/conversion-standards", Some(&env.learner))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // 1:n: one certificate backs up to three conversions of 2 credits, capped at 4.
    standard(
        &env,
        json!({
            "code": "cert-spread", "name": "一证多课", "cardinality": "1:n", "uses": 3,
            "source_kind": "skill_certificate", "target_kind": "academic_credit",
            "target_quantity": 2, "cap": 4, "valid_from": "2025-01-01"
        }),
    )
    .await;
    let a = certificate(&env, "s-a").await;
    for key in ["s-1", "s-2"] {
        let (s, v) = convert(&env, "cert-spread", &[a], key).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = convert(&env, "cert-spread", &[a], "s-3").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("caps"), "{v}");
    // A source consumed under one standard is not consumed under another.
    standard(
        &env,
        json!({
            "code": "cert-one", "name": "一证一学分", "cardinality": "1:1",
            "source_kind": "skill_certificate", "target_kind": "academic_credit",
            "target_quantity": 1, "valid_from": "2025-01-01"
        }),
    )
    .await;
    let (s, v) = convert(&env, "cert-one", &[a], "o-1").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // Validity: an expired version, and one not yet in force.
    standard(
        &env,
        json!({
            "code": "old", "name": "旧标准", "cardinality": "1:1",
            "source_kind": "skill_certificate", "target_kind": "academic_credit",
            "target_quantity": 1, "valid_from": "2020-01-01", "valid_until": "2021-12-31"
        }),
    )
    .await;
    standard(
        &env,
        json!({
            "code": "future", "name": "未来标准", "cardinality": "1:1",
            "source_kind": "skill_certificate", "target_kind": "academic_credit",
            "target_quantity": 1, "valid_from": "2099-01-01"
        }),
    )
    .await;
    let b = certificate(&env, "s-b").await;
    for code in ["old", "future"] {
        let (s, v) = convert(&env, code, &[b], code).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }
    // A new version from a later day leaves today's conversions on version 1.
    let mut v2 = json!({
        "code": "cert-one", "name": "一证一学分(二版)", "cardinality": "1:1",
        "source_kind": "skill_certificate", "target_kind": "academic_credit",
        "target_quantity": 3, "valid_from": "2099-01-01"
    });
    assert_eq!(standard(&env, v2.clone()).await["version"], 2);
    let (s, v) = convert(&env, "cert-one", &[b], "o-2").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["rule_version"].clone(), v["quantity"].clone()),
        (json!(1), json!(1.0))
    );
    // A version cannot change what is converted into what.
    v2["target_kind"] = json!("continuing_education");
    v2["valid_from"] = json!("2100-01-01");
    let (s, _) = env
        .call(
            "POST",
            "/api/v1/conversion-standards",
            Some(&env.admin),
            Some(v2),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, all) = env
        .get("/api/v1/conversion-standards", Some(&env.t1_admin))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 5, "{all}");
});

both!(
    concurrent_conversions_of_the_same_certificates_one_succeeds,
    |env: Env| async move {
        standard(&env, pair()).await;
        let (a, b) = (
            certificate(&env, "r-a").await,
            certificate(&env, "r-b").await,
        );
        let mut tasks = Vec::new();
        for i in 0..16 {
            let env = env.clone();
            tasks.push(tokio::spawn(async move {
                convert(&env, "cert-pair", &[a, b], &format!("race-{i}")).await
            }));
        }
        let mut created = 0;
        for t in tasks {
            let (s, v) = t.await.unwrap();
            match s {
                StatusCode::CREATED => created += 1,
                StatusCode::CONFLICT => {}
                other => panic!("{other} {v}"),
            }
        }
        assert_eq!(created, 1);
        let (n,): (i64,) = sqlx::query_as(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM conversion_links WHERE released_by_entry_id IS NULL",
        )
        .fetch_one(env.kernel.db.reader())
        .await
        .unwrap();
        assert_eq!(n, 2);
    }
);
