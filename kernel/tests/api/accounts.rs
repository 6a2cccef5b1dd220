//! Accounts and the credit bank over HTTP: idempotency under concurrency,
//! rules and their versions, reversals, statements, tamper evidence.

use crate::both;
use crate::support::Env;
use axum::http::StatusCode;
use serde_json::{json, Value};

fn entry(person: i64, key: &str) -> Value {
    json!({
        "person_id": person, "kind": "continuing_education", "title": "公需科目", "quantity": 24,
        "occurred_on": "2026-06-30", "source_site": "T1", "rule": "ce-hours", "idempotency_key": key
    })
}

async fn publish_rule(env: &Env, per_unit: f64, from: &str) -> Value {
    let (s, v) = env
        .call("POST", "/api/v1/rules", Some(&env.admin), Some(json!({
            "code": "ce-hours", "name": "继续教育学时转换", "outcome_kind": "continuing_education",
            "credits_per_unit": per_unit, "valid_from": from
        })))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

both!(
    fifty_concurrent_identical_writes_record_once,
    |env: Env| async move {
        publish_rule(&env, 0.1, "2026-01-01").await;
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let env = env.clone();
            let body = entry(env.learner_id, "cert-2026-0001");
            tasks.push(tokio::spawn(async move {
                env.call(
                    "POST",
                    "/api/v1/ledger/entries",
                    Some(&env.t1_admin),
                    Some(body),
                )
                .await
            }));
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut created = 0;
        for t in tasks {
            let (s, v) = t.await.unwrap();
            assert!(s == StatusCode::CREATED || s == StatusCode::OK, "{s} {v}");
            if s == StatusCode::CREATED {
                created += 1;
            }
            ids.insert(v["id"].as_i64().unwrap());
        }
        assert_eq!(created, 1);
        assert_eq!(ids.len(), 1, "every caller got the same entry");
        let (_, st) = env
            .get(
                &format!("/api/v1/persons/{}/account/statement", env.learner_id),
                Some(&env.learner),
            )
            .await;
        assert_eq!(st["account"]["entry_count"], 1);
        assert_eq!(
            st["totals"],
            json!([{ "kind": "continuing_education", "unit": "hour", "quantity": 24.0, "credits": 2.4, "entries": 1 }])
        );
        // Same key, different content: an error, nothing written.
        let mut other = entry(env.learner_id, "cert-2026-0001");
        other["quantity"] = json!(30);
        let (s, v) = env
            .call(
                "POST",
                "/api/v1/ledger/entries",
                Some(&env.t1_admin),
                Some(other),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(
            v["detail"],
            "idempotency key \"cert-2026-0001\" was already used for a different outcome"
        );
    }
);

both!(
    rules_are_versioned_and_history_is_kept,
    |env: Env| async move {
        publish_rule(&env, 0.1, "2026-01-01").await;
        let (s, first) = env
            .call(
                "POST",
                "/api/v1/ledger/entries",
                Some(&env.admin),
                Some(entry(env.learner_id, "a")),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{first}");
        assert_eq!(
            (first["credits"].clone(), first["rule_version"].clone()),
            (json!(2.4), json!(1))
        );
        let v2 = publish_rule(&env, 0.125, "2026-07-01").await;
        assert_eq!(v2["version"], 2);
        // An outcome dated after v2 starts uses v2; one before still uses v1.
        let mut later = entry(env.learner_id, "b");
        later["occurred_on"] = json!("2026-08-01");
        let (_, e2) = env
            .call(
                "POST",
                "/api/v1/ledger/entries",
                Some(&env.admin),
                Some(later),
            )
            .await;
        assert_eq!(
            (e2["credits"].clone(), e2["rule_version"].clone()),
            (json!(3.0), json!(2))
        );
        let (_, st) = env
            .get(
                &format!("/api/v1/persons/{}/account/statement", env.learner_id),
                Some(&env.admin),
            )
            .await;
        assert_eq!(
            st["entries"][0]["credits"], 2.4,
            "publishing v2 did not rewrite the first entry"
        );
        let (s, v) = env.call("POST", "/api/v1/rules", Some(&env.admin), Some(json!({
        "code": "ce-hours", "name": "x", "outcome_kind": "continuing_education", "credits_per_unit": 1, "valid_from": "2026-03-01"
    }))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            v["detail"],
            "valid_from: must be after version 2's valid_from 2026-07-01"
        );
        let (s, _) = env.call("POST", "/api/v1/rules", Some(&env.t1_admin), Some(json!({
        "code": "z", "name": "x", "outcome_kind": "continuing_education", "credits_per_unit": 1, "valid_from": "2026-03-01"
    }))).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
);

both!(reversal_is_the_only_correction, |env: Env| async move {
    let body = json!({
        "person_id": env.learner_id, "kind": "academic_credit", "title": "高等数学", "quantity": 4,
        "occurred_on": "2026-01-10", "source_site": "T1-V1", "idempotency_key": "k1"
    });
    let (s, e) = env
        .call(
            "POST",
            "/api/v1/ledger/entries",
            Some(&env.t1_admin),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let id = e["id"].as_i64().unwrap();
    let path = format!("/api/v1/ledger/entries/{id}/reverse");
    let (s, r) = env
        .call(
            "POST",
            &path,
            Some(&env.t1_admin),
            Some(json!({ "reason": "录入错误", "idempotency_key": "rev-1" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["quantity"], -4.0);
    assert_eq!(r["reverses_entry_id"], id);
    let (s, _) = env
        .call(
            "POST",
            &path,
            Some(&env.t1_admin),
            Some(json!({ "reason": "录入错误", "idempotency_key": "rev-1" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "a retried reversal replays");
    let (s, v) = env
        .call(
            "POST",
            &path,
            Some(&env.t1_admin),
            Some(json!({ "reason": "again", "idempotency_key": "rev-2" })),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["detail"], "this entry was already reversed");
    let (_, st) = env
        .get(
            &format!("/api/v1/persons/{}/account/statement", env.learner_id),
            Some(&env.learner),
        )
        .await;
    assert_eq!(st["totals"][0]["quantity"], 0.0);
    assert_eq!(st["totals"][0]["entries"], 2);
    // The database itself refuses edits.
    let res = sqlx::query("UPDATE ledger_entries SET quantity_milli = 1")
        .execute(env.kernel.db.reader())
        .await;
    assert!(res.unwrap_err().to_string().contains("append-only"));
});

both!(
    account_lifecycle_and_frozen_accounts,
    |env: Env| async move {
        let base = format!("/api/v1/persons/{}/account", env.learner_id);
        let (s, v) = env
            .call(
                "POST",
                &format!("{base}/activate"),
                Some(&env.learner),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "active");
        assert!(v["activated_on"].is_string());
        let (s, _) = env
            .call("POST", &format!("{base}/freeze"), Some(&env.learner), None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "owners cannot freeze");
        let (s, _) = env
            .call("POST", &format!("{base}/freeze"), Some(&env.t1_admin), None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = env.call("POST", "/api/v1/ledger/entries", Some(&env.admin), Some(json!({
        "person_id": env.learner_id, "kind": "volunteer_service", "title": "助学", "quantity": 3,
        "occurred_on": "2026-01-10", "source_site": "T1", "idempotency_key": "f1"
    }))).await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(v["detail"], "the account is frozen");
        let (s, v) = env
            .call(
                "POST",
                &format!("{base}/activate"),
                Some(&env.t1_admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(v["detail"], "cannot activate an account that is frozen");
        let (s, v) = env
            .call(
                "POST",
                &format!("{base}/explode"),
                Some(&env.t1_admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }
);

both!(
    a_tampered_entry_is_caught_by_verify,
    |env: Env| async move {
        for i in 0..3 {
            let (s, v) = env.call("POST", "/api/v1/ledger/entries", Some(&env.admin), Some(json!({
            "person_id": env.learner_id, "kind": "non_formal_learning", "title": format!("课程{i}"), "quantity": 10,
            "occurred_on": "2026-01-10", "source_site": "T1", "idempotency_key": format!("t{i}")
        }))).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
        let report = kernel::accounts::ledger::verify(&env.kernel.db, 2)
            .await
            .unwrap();
        assert!(report.broken.is_empty());
        assert_eq!(report.entries, 3);
        // Someone with database access bypasses the append-only trigger and edits entry 2.
        let (id,): (i64,) = sqlx::query_as("SELECT id FROM ledger_entries WHERE seq = 2")
            .fetch_one(env.kernel.db.reader())
            .await
            .unwrap();
        let mut tx = env.kernel.db.begin().await.unwrap();
        match env.kernel.db.backend() {
            kernel::storage::Backend::Sqlite => {
                sqlx::query("DROP TRIGGER ledger_entries_no_update")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            kernel::storage::Backend::Postgres => {
                sqlx::query(
                    "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only",
                )
                .execute(&mut *tx)
                .await
                .unwrap();
            }
        }
        sqlx::query("UPDATE ledger_entries SET quantity_milli = 99000 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let report = kernel::accounts::ledger::verify(&env.kernel.db, 2)
            .await
            .unwrap();
        assert_eq!(report.broken.len(), 1);
        let b = &report.broken[0];
        assert_eq!((b.entry_id, b.seq), (Some(id), 2));
        assert_eq!(
            b.reason,
            "entry content does not match its hash (the entry was altered)"
        );
    }
);

both!(audit_is_scoped_by_subtree_and_time, |env: Env| async move {
    env.call(
        "POST",
        "/api/v1/sites",
        Some(&env.admin),
        Some(json!({ "code": "T2-X", "name_zh": "x", "kind": "museum", "parent_code": "T2" })),
    )
    .await;
    env.call(
        "POST",
        "/api/v1/sites",
        Some(&env.admin),
        Some(json!({ "code": "T1-X", "name_zh": "x", "kind": "museum", "parent_code": "T1" })),
    )
    .await;
    let (s, v) = env
        .get("/api/v1/audit?limit=500", Some(&env.t1_admin))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let objects: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "site.create")
        .map(|e| e["after_json"].as_str().unwrap().to_string())
        .collect();
    assert!(objects.iter().any(|o| o.contains("T1-X")));
    assert!(
        !objects.iter().any(|o| o.contains("T2-X")),
        "a T1 admin sees only T1's audit"
    );
    let (s, _) = env.get("/api/v1/audit?site=T2", Some(&env.t1_admin)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = env
        .get("/api/v1/audit?from=4102444800000000", Some(&env.admin))
        .await;
    assert_eq!(v["items"], json!([]), "nothing happened after 2100");
    let (s, _) = env.get("/api/v1/audit", Some(&env.learner)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
});
