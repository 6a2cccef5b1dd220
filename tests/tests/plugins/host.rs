//! The kernel interfaces plugins import, each behind its capability.

use crate::{person, plugin_dir, probe, site_tree, TREE};
use kernel::plugins::FailureKind;
use lifelong_harness::TestKernel;
use serde_json::json;

/// A capability the plugin did not declare is refused with a typed error;
/// the plugin that declared it reads the site registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_need_the_declared_capability() {
    let k = TestKernel::sqlite().await;
    site_tree(
        &k,
        &[("CITY", "city", None), ("T1", "township", Some("CITY"))],
    )
    .await;
    let p = probe(&k).await;
    let other = k.load(plugin_dir("other")).await;
    let anon = k.anonymous();
    assert_eq!(
        p.get("/sites/CITY", &anon).await.unwrap(),
        (
            200,
            json!({ "code": "CITY", "level": "city", "children": ["T1"] })
        )
    );
    let (s, v) = p.get("/sites/NOPE", &anon).await.unwrap();
    assert_eq!(s, 404, "{v}");
    let (s, v) = other.get("/sites/CITY", &anon).await.unwrap();
    assert_eq!(s, 403);
    assert_eq!(v["type"], "urn:lifelong:problem:capability-denied");
    assert_eq!(
        v["detail"],
        "plugin other does not declare the capability sites.read"
    );
    k.cleanup().await;
}

/// A learning outcome recorded by a plugin commits with the call: once per
/// idempotency key, never after a trap, and only with the capability.
async fn outcomes_commit_with_the_call(k: TestKernel) {
    site_tree(&k, &[("CITY", "city", None)]).await;
    let mut people = Vec::new();
    for n in 0..2u32 {
        let (id, _) = person(
            &k,
            n * 2 + 1,
            (1955, 3, 1),
            kernel::idnumber::Sex::Male,
            "CITY",
        )
        .await;
        people.push(id);
    }
    // At the city, whose residents they are.
    let p = probe(&k).await.at("CITY");
    let other = k.load(plugin_dir("other")).await.at("CITY");
    let anon = k.anonymous();
    let entries = |person: i64| entries(&k, person);
    let (s, v) = p
        .post(&format!("/outcomes/{}", people[0]), None, &anon)
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["replayed"], false);
    let (s, v2) = p
        .post(&format!("/outcomes/{}", people[0]), None, &anon)
        .await
        .unwrap();
    assert_eq!(
        (s, &v2["replayed"], &v2["entry"]),
        (200, &json!(true), &v["entry"])
    );
    assert_eq!(entries(people[0]).await, 1, "the same key records once");
    let err = p
        .post(&format!("/outcomes/{}?trap", people[1]), None, &anon)
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Panic);
    assert_eq!(
        entries(people[1]).await,
        0,
        "a trapped call recorded nothing"
    );
    let (s, v) = other
        .post(&format!("/outcomes/{}", people[1]), None, &anon)
        .await
        .unwrap();
    assert_eq!(s, 403);
    assert_eq!(
        v["detail"],
        "plugin other does not declare the capability accounts.record"
    );
    assert_eq!(entries(people[1]).await, 0);
    let report = kernel::accounts::ledger::verify(&k.kernel.db, 2)
        .await
        .unwrap();
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_commit_with_the_call_sqlite() {
    outcomes_commit_with_the_call(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_commit_with_the_call_postgres() {
    outcomes_commit_with_the_call(TestKernel::postgres().await).await;
}

/// Persons are visible to a plugin only as the caller or within the
/// subtree of the call's site, always masked; roles cover subtrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_is_scoped_to_the_call_site_and_masked() {
    let k = TestKernel::sqlite().await;
    let sys = kernel::authz::Actor::System("test");
    site_tree(&k, TREE).await;
    let mut ids = Vec::new();
    for (n, home) in [(1u32, "T1-V1"), (3, "T2")] {
        ids.push(
            person(&k, n, (1958, 5, 17), kernel::idnumber::Sex::Male, home)
                .await
                .0,
        );
    }
    kernel::identity::grant(&k.kernel, &sys, ids[0], "teacher", "T1")
        .await
        .unwrap();
    let p = probe(&k).await;
    let at_t1 = p.at("T1");
    let anon = k.anonymous();
    let (s, v) = at_t1
        .get(&format!("/people/{}", ids[0]), &anon)
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["birth_date"], "1958-05-17");
    assert_eq!(v["home"], "T1-V1");
    let masked = v["id_number"].as_str().unwrap();
    assert!(
        masked.contains("**********") && masked.len() == 18,
        "{masked}"
    );
    // The T2 resident is outside T1's subtree: not found, unless they are the caller.
    let (s, _) = at_t1
        .get(&format!("/people/{}", ids[1]), &anon)
        .await
        .unwrap();
    assert_eq!(s, 404);
    let (s, _) = at_t1
        .get(&format!("/people/{}", ids[1]), &k.person(ids[1], &[]))
        .await
        .unwrap();
    assert_eq!(s, 200);
    // A role at T1 covers T1-V1 but not T2.
    let (_, v) = at_t1
        .get(&format!("/people/{}/is/teacher/at/T1-V1", ids[0]), &anon)
        .await
        .unwrap();
    assert_eq!(v, json!({ "yes": true }));
    let (_, v) = at_t1
        .get(&format!("/people/{}/is/teacher/at/T2", ids[0]), &anon)
        .await
        .unwrap();
    assert_eq!(v, json!({ "yes": false }));
    let other = k.load(plugin_dir("other")).await.at("T1");
    let (s, v) = other
        .get(&format!("/people/{}", ids[0]), &anon)
        .await
        .unwrap();
    assert_eq!(s, 403);
    assert_eq!(
        v["detail"],
        "plugin other does not declare the capability identity.read"
    );
    k.cleanup().await;
}

/// Settings: the declared default, a value set at a township holding for
/// its villages, type-checked, and only by an admin over the site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_inherited_down_the_site_tree() {
    let k = TestKernel::sqlite().await;
    let sys = kernel::authz::Actor::System("test");
    site_tree(&k, TREE).await;
    let p = probe(&k).await;
    let anon = k.anonymous();
    let value_at = |site: &'static str| {
        let p = p.at(site);
        let anon = anon.clone();
        async move { p.get("/settings/min_age", &anon).await.unwrap() }
    };
    assert_eq!(
        value_at("T1-V1").await,
        (200, json!({ "value": 50 })),
        "the declared default"
    );
    kernel::plugins::settings::set(
        &k.kernel,
        &sys,
        &p.loaded.manifest,
        "T1",
        "min_age",
        json!(55),
    )
    .await
    .unwrap();
    assert_eq!(
        value_at("T1-V1").await,
        (200, json!({ "value": 55 })),
        "inherited from T1"
    );
    assert_eq!(
        value_at("T2").await,
        (200, json!({ "value": 50 })),
        "T2 keeps the default"
    );
    let err = kernel::plugins::settings::set(
        &k.kernel,
        &sys,
        &p.loaded.manifest,
        "T1",
        "min_age",
        json!("old"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "value: setting min_age of plugin probe is of type integer"
    );
    let (s, v) = p.at("T1").get("/settings/nope", &anon).await.unwrap();
    assert_eq!(s, 404);
    assert_eq!(v["detail"], "plugin probe declares no setting \"nope\"");
    k.cleanup().await;
}

/// Host API 1.1: the subtree of a site, whether the module is enabled at a
/// site, and a visible person's account and statement (`accounts.read`,
/// granted per site like every capability).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subtree_enablement_and_account_reads() {
    let k = TestKernel::sqlite().await;
    site_tree(&k, TREE).await;
    let (learner, _) = person(&k, 1, (1958, 5, 1), kernel::idnumber::Sex::Female, "T1-V1").await;
    let (stranger, _) = person(&k, 3, (1958, 5, 1), kernel::idnumber::Sex::Female, "T2").await;
    let p = k.install(&k.package(plugin_dir("probe")).await).await;
    k.enable("probe", "T1").await;
    let at_t1 = p.at("T1");
    let anon = k.anonymous();
    let (s, _) = at_t1
        .post(&format!("/outcomes/{learner}"), None, &anon)
        .await
        .unwrap();
    assert_eq!(s, 200);
    assert_eq!(
        at_t1.get("/subtree/T1", &anon).await.unwrap(),
        (200, json!({ "codes": ["T1", "T1-V1"], "enabled": true }))
    );
    assert_eq!(
        at_t1.get("/subtree/T2", &anon).await.unwrap(),
        (200, json!({ "codes": ["T2"], "enabled": false }))
    );
    let (s, v) = at_t1
        .get(&format!("/accounts/{learner}"), &anon)
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["entries"], 1);
    assert_eq!(v["origins"], json!(["plugin:probe"]));
    let (s, _) = at_t1
        .get(&format!("/accounts/{stranger}"), &anon)
        .await
        .unwrap();
    assert_eq!(
        s, 404,
        "a person homed outside the call's subtree is not visible"
    );
    // Refused at a village: the plugin no longer runs there at all.
    k.registry
        .grant(
            &kernel::authz::Actor::System("test"),
            "probe",
            "T1-V1",
            &["accounts.read".into()],
            false,
        )
        .await
        .unwrap();
    let (s, v) = p
        .at("T1-V1")
        .get(&format!("/accounts/{learner}"), &anon)
        .await
        .unwrap();
    assert_eq!(s, 403, "{v}");
    k.cleanup().await;
}

/// A component built against host API 1.0.0 (a package kept from before
/// 1.1.0 existed) installs and runs unchanged on this kernel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_for_host_api_1_0_runs_on_1_1() {
    let k = TestKernel::sqlite().await;
    site_tree(&k, TREE).await;
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/hello-host-api-1.0.0.llpkg"),
    )
    .unwrap();
    let pkg = kernel::plugins::package::Package::decode(&bytes).unwrap();
    let imports = kernel::plugins::package::check_component(
        k.runtime.engine(),
        &k.runtime.compile(&pkg.component).unwrap(),
    )
    .unwrap();
    assert_eq!(imports.to_string(), "1.0.0");
    let hello = k.install(&pkg).await;
    k.enable("hello", "CITY").await;
    let (s, v) = hello
        .at("T1")
        .post("/greetings/ann", None, &k.anonymous())
        .await
        .unwrap();
    assert_eq!((s, v), (200, json!({ "hello": "ann" })));
    let (s, v) = hello
        .at("T1")
        .get("/greetings/ann", &k.anonymous())
        .await
        .unwrap();
    assert_eq!((s, v), (200, json!({ "name": "ann", "count": 1 })));
    k.cleanup().await;
}

/// `identity.read` narrowed by its arguments: a plugin that declares only
/// the fields it needs gets the others empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_fields_are_narrowed_to_what_the_plugin_declares() {
    let k = TestKernel::sqlite().await;
    site_tree(&k, TREE).await;
    let (id, _) = person(&k, 1, (1958, 5, 17), kernel::idnumber::Sex::Female, "T1-V1").await;
    let pkg = k.package(plugin_dir("probe")).await;
    let narrowed = kernel::plugins::package::Package::new(
        pkg.manifest_text.replace(
            "\"identity.read\"",
            "{ name = \"identity.read\", fields = [\"birth_date\", \"sex\"] }",
        ),
        pkg.component.clone(),
    )
    .unwrap();
    let p = k.install(&narrowed).await;
    k.enable("probe", "T1").await;
    let info = k.registry.info("probe").await.unwrap();
    assert_eq!(
        info.identity_fields,
        Some(vec!["birth_date".to_string(), "sex".to_string()])
    );
    let (s, v) = p
        .at("T1")
        .get(&format!("/people/{id}"), &k.anonymous())
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({ "name": "", "id_number": "", "birth_date": "1958-05-17", "sex": "female", "home": "" })
    );
    let bad = pkg.manifest_text.replace(
        "\"identity.read\"",
        "{ name = \"identity.read\", fields = [\"phone\"] }",
    );
    let e = kernel::plugins::package::Package::new(bad, pkg.component.clone())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "manifest: identity.read has no field \"phone\"; its fields are name, id_number_masked, birth_date, sex, home_site"
    );
    k.cleanup().await;
}

/// Ledger entries in `person`'s account.
async fn entries(k: &TestKernel, person: i64) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_entries e JOIN accounts a ON a.id = e.account_id \
         WHERE a.person_id = $1",
    )
    .bind(person)
    .fetch_one(k.kernel.db.reader())
    .await
    .unwrap();
    n
}

/// The refused record-outcome attempts audited for `person`, once there
/// are `count` of them (on SQLite the entry is written once the refused
/// call lets go of the writer): (site path, actor, after).
async fn denials(
    k: &TestKernel,
    person: i64,
    count: usize,
) -> Vec<(Option<String>, String, serde_json::Value)> {
    let read = || async {
        let rows: Vec<(Option<String>, String, Option<String>)> = sqlx::query_as(
            "SELECT site_path, actor, after_json FROM audit_log \
             WHERE action = 'plugin.outcome.denied' AND object_type = 'person' AND object_id = $1 ORDER BY id",
        )
        .bind(person.to_string())
        .fetch_all(k.kernel.db.reader())
        .await
        .unwrap();
        rows.into_iter()
            .map(|(p, a, j)| (p, a, serde_json::from_str(&j.unwrap_or_default()).unwrap()))
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rows = read().await;
        if rows.len() >= count || std::time::Instant::now() > deadline {
            assert_eq!(
                rows.len(),
                count,
                "audited refusals of person {person}: {rows:?}"
            );
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn callers_noted(k: &TestKernel, person: i64) -> i64 {
    let (n,): (i64,) =
        sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM plugin_callers WHERE person_id = $1")
            .bind(person)
            .fetch_one(k.kernel.db.reader())
            .await
            .unwrap();
    n
}

/// Record-outcome reaches the persons identity.get reaches: a call at T1
/// may not write into the account of a T2 resident (denied, and audited
/// even when the call then rolls back) — until that person has called the
/// plugin at T1 themselves with a writing call; then there, and only there.
async fn outcomes_are_scoped_like_identity(k: TestKernel) {
    site_tree(&k, TREE).await;
    let (resident, _) = person(&k, 1, (1958, 5, 17), kernel::idnumber::Sex::Female, "T1-V1").await;
    let (stranger, _) = person(&k, 3, (1958, 5, 17), kernel::idnumber::Sex::Male, "T2").await;
    let p = probe(&k).await;
    let at_t1 = p.at("T1");
    let anon = k.anonymous();
    let them = k.person(stranger, &[]);
    let (s, v) = at_t1
        .post(&format!("/outcomes/{resident}"), None, &anon)
        .await
        .unwrap();
    assert_eq!(s, 200, "a resident of the area T1 serves: {v}");

    let (s, v) = at_t1
        .post(&format!("/outcomes/{stranger}"), None, &anon)
        .await
        .unwrap();
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["type"], "urn:lifelong:problem:capability-denied");
    assert_eq!(
        v["detail"],
        format!(
            "plugin probe may not record outcomes for person {stranger} at T1: only for the caller, \
             residents of the area the site serves and persons who have called the plugin at this site"
        )
    );
    let (s, _) = at_t1
        .get(&format!("/people/{stranger}"), &anon)
        .await
        .unwrap();
    assert_eq!(s, 404, "identity.get does not see them either");
    let audited = denials(&k, stranger, 1).await;
    assert_eq!(audited[0].0, Some(crate::path_of(&k, "T1").await));
    assert_eq!(audited[0].1, "system:plugin");
    assert_eq!(
        (
            &audited[0].2["plugin"],
            &audited[0].2["site"],
            &audited[0].2["caller"],
            &audited[0].2["kind"]
        ),
        (
            &json!("probe"),
            &json!("T1"),
            &serde_json::Value::Null,
            &json!("non_formal_learning")
        )
    );
    // The call traps after the refusal and rolls back; the entry stays.
    let err = at_t1
        .post(&format!("/outcomes/{stranger}?trap"), None, &anon)
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Panic);
    denials(&k, stranger, 2).await;

    // Reading calls by the stranger at T1 note nothing.
    let (s, _) = at_t1.get("/ok", &them).await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(callers_noted(&k, stranger).await, 0);
    let (s, _) = at_t1
        .post(&format!("/outcomes/{stranger}"), None, &anon)
        .await
        .unwrap();
    assert_eq!(s, 403, "a GET does not widen the scope");
    denials(&k, stranger, 3).await;

    // The stranger acts with the plugin at T1: from then on it may record
    // outcomes for them there (and see them) ...
    let (s, v) = at_t1
        .post("/notes/joined", Some(json!({"body": "hello"})), &them)
        .await
        .unwrap();
    assert_eq!(s, 201, "{v}");
    assert_eq!(callers_noted(&k, stranger).await, 1);
    let (s, v) = at_t1
        .post(&format!("/outcomes/{stranger}"), None, &anon)
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    let (s, _) = at_t1
        .get(&format!("/people/{stranger}"), &anon)
        .await
        .unwrap();
    assert_eq!(s, 200);
    // ... but not at another site.
    let (s, _) = p
        .at("T1-V1")
        .post(
            &format!("/outcomes/{stranger}"),
            Some(json!({"key": "elsewhere"})),
            &anon,
        )
        .await
        .unwrap();
    assert_eq!(s, 403, "only at the site where they called it");
    denials(&k, stranger, 4).await;
    assert_eq!(entries(&k, stranger).await, 1);
    assert_eq!(entries(&k, resident).await, 1);
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_scoped_like_identity_sqlite() {
    outcomes_are_scoped_like_identity(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_scoped_like_identity_postgres() {
    outcomes_are_scoped_like_identity(TestKernel::postgres().await).await;
}

/// A recorded outcome must be plausible: not in the future, not before the
/// person's birth, no more than the configured maximum for its kind; each
/// refusal is `invalid` and names the field.
async fn outcomes_must_be_plausible(mut k: TestKernel) {
    k.kernel.outcome_maxima.non_formal_learning = 40.0;
    site_tree(&k, TREE).await;
    let (learner, _) = person(&k, 1, (1958, 5, 17), kernel::idnumber::Sex::Female, "T1-V1").await;
    let p = probe(&k).await.at("T1");
    let anon = k.anonymous();
    let record = |body: serde_json::Value| {
        let p = p.clone();
        let anon = anon.clone();
        async move {
            p.post(&format!("/outcomes/{learner}"), Some(body), &anon)
                .await
                .unwrap()
        }
    };
    let later = (chrono::Utc::now() + chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let (s, v) = record(json!({"occurred_on": later, "key": "a"})).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("occurred_on: {later} is in the future (today is ")),
        "{v}"
    );
    let (s, v) = record(json!({"occurred_on": "1958-05-16", "key": "b"})).await;
    assert_eq!(
        (s, v["detail"].as_str()),
        (
            400,
            Some("occurred_on: 1958-05-16 is before the person was born")
        )
    );
    let (s, v) = record(json!({"quantity": 40.5, "key": "c"})).await;
    assert_eq!(
        (s, v["detail"].as_str()),
        (
            400,
            Some("quantity: 40.5 is more than one non_formal_learning outcome may hold: at most 40 hour(s) (outcome_maxima.non_formal_learning)")
        )
    );
    // The default for another kind: a day of volunteer service.
    let (s, v) = record(json!({"kind": "volunteer_service", "quantity": 25, "key": "d"})).await;
    assert_eq!(
        (s, v["detail"].as_str()),
        (
            400,
            Some("quantity: 25 is more than one volunteer_service outcome may hold: at most 24 hour(s) (outcome_maxima.volunteer_service)")
        )
    );
    let (s, v) = record(json!({"occurred_on": "1900-01-01", "quantity": 1000, "key": "e"})).await;
    let detail = v["detail"].as_str().unwrap();
    assert_eq!(s, 400);
    assert!(
        detail.starts_with("occurred_on: ") && detail.contains("; quantity: "),
        "both fields named: {detail}"
    );
    assert_eq!(
        entries(&k, learner).await,
        0,
        "nothing implausible recorded"
    );
    let (s, v) = record(json!({"quantity": 40, "occurred_on": "1958-05-17", "key": "f"})).await;
    assert_eq!(s, 200, "at the limits: {v}");
    assert_eq!(entries(&k, learner).await, 1);
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_must_be_plausible_sqlite() {
    outcomes_must_be_plausible(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_must_be_plausible_postgres() {
    outcomes_must_be_plausible(TestKernel::postgres().await).await;
}

/// The probe's package with `identity.grant` declared for `roles` (a TOML
/// list) besides its other capabilities.
fn granting(
    pkg: &kernel::plugins::package::Package,
    roles: &str,
) -> kernel::plugins::package::Package {
    crate::variant(pkg, |t| {
        t.replace(
            "\"accounts.read\"]",
            &format!("\"accounts.read\", {{ name = \"identity.grant\", roles = {roles} }}]"),
        )
    })
}

/// The role grants audited for `person`: (site path, actor, after).
async fn grants_audited(
    k: &TestKernel,
    person: i64,
) -> Vec<(Option<String>, String, serde_json::Value)> {
    let rows: Vec<(Option<String>, String, Option<String>)> = sqlx::query_as(
        "SELECT site_path, actor, after_json FROM audit_log \
         WHERE action = 'role.grant' AND object_type = 'person' AND object_id = $1 ORDER BY id",
    )
    .bind(person.to_string())
    .fetch_all(k.kernel.db.reader())
    .await
    .unwrap();
    rows.into_iter()
        .map(|(p, a, j)| (p, a, serde_json::from_str(&j.unwrap_or_default()).unwrap()))
        .collect()
}

/// Host API 1.2 `identity.grant-role`: a role the manifest names, at the
/// call's site or below, for a person the call may see, through the
/// kernel's grant path in the call's transaction, audited with the plugin
/// and the caller; every other request is refused and writes nothing.
async fn roles_are_granted_through_the_kernel(k: TestKernel) {
    site_tree(&k, TREE).await;
    let (resident, _) = person(&k, 1, (1990, 5, 17), kernel::idnumber::Sex::Female, "T1-V1").await;
    let (stranger, _) = person(&k, 3, (1990, 5, 17), kernel::idnumber::Sex::Male, "T2").await;
    let pkg = k.package(plugin_dir("probe")).await;
    let p = k.install(&granting(&pkg, "[\"volunteer\"]")).await;
    k.enable("probe", "T1").await;
    let at_t1 = p.at("T1");
    let them = k.person(resident, &[]);
    let anon = k.anonymous();
    let grant = |who: i64, role: &str, site: &str| format!("/grants/{who}/{role}/at/{site}");
    let held = |who: i64| {
        let k = &k;
        async move {
            kernel::identity::roles(&k.kernel, &crate::system(), who)
                .await
                .unwrap()
                .into_iter()
                .map(|g| (g.role, g.site_code))
                .collect::<Vec<_>>()
        }
    };

    // Granted at a site below the call's, once; audited with who asked.
    let (s, v) = at_t1
        .post(&grant(resident, "volunteer", "T1-V1"), None, &them)
        .await
        .unwrap();
    assert_eq!((s, v), (200, json!({ "granted": true })));
    let (s, v) = at_t1
        .post(&grant(resident, "volunteer", "T1-V1"), None, &them)
        .await
        .unwrap();
    assert_eq!(
        (s, v),
        (200, json!({ "granted": false })),
        "already held: nothing written"
    );
    assert_eq!(held(resident).await, [("volunteer".into(), "T1-V1".into())]);
    let audited = grants_audited(&k, resident).await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].0, Some(crate::path_of(&k, "T1-V1").await));
    assert_eq!(audited[0].1, "system:plugin");
    assert_eq!(
        (
            &audited[0].2["role"],
            &audited[0].2["site_code"],
            &audited[0].2["plugin"],
            &audited[0].2["caller"]
        ),
        (
            &json!("volunteer"),
            &json!("T1-V1"),
            &json!("probe"),
            &json!(resident)
        )
    );
    // Every refusal below leaves nothing behind.
    let refused = |path: String, status: u16, detail: &'static str| {
        let at_t1 = at_t1.clone();
        let anon = anon.clone();
        async move {
            let (s, v) = at_t1.post(&path, None, &anon).await.unwrap();
            assert_eq!(s, status, "{path}: {v}");
            if !detail.is_empty() {
                assert_eq!(v["detail"], detail, "{path}");
            }
        }
    };
    // A role the manifest does not name, including the administrative ones.
    refused(
        grant(resident, "teacher", "T1"),
        403,
        "plugin probe may grant only volunteer (identity.grant roles), not \"teacher\"",
    )
    .await;
    refused(
        grant(resident, "site_admin", "T1"),
        403,
        "plugin probe may grant only volunteer (identity.grant roles), not \"site_admin\"",
    )
    .await;
    // Only at the call's site or below it.
    for site in ["T2", "CITY", "NOPE"] {
        let (s, v) = at_t1
            .post(&grant(resident, "volunteer", site), None, &anon)
            .await
            .unwrap();
        assert_eq!(s, 403, "{site}: {v}");
        assert_eq!(
            v["detail"],
            format!(
                "plugin probe may grant roles only at the call's site or below it, not at \"{site}\""
            )
        );
    }
    // Only for a person the call may see.
    refused(grant(stranger, "volunteer", "T1"), 404, "").await;
    // Not from a reading call.
    let (s, v) = at_t1
        .get(&grant(resident, "volunteer", "T1"), &anon)
        .await
        .unwrap();
    assert_eq!(
        (s, v["type"].as_str()),
        (405, Some("urn:lifelong:problem:read-only")),
        "{v}"
    );
    // Not where the site has not granted identity.grant: the version that
    // asks for it does not serve there at all.
    k.registry
        .grant(
            &crate::system(),
            "probe",
            "T1-V1",
            &["identity.grant".into()],
            false,
        )
        .await
        .unwrap();
    let (s, v) = p
        .at("T1-V1")
        .post(&grant(resident, "volunteer", "T1-V1"), None, &them)
        .await
        .unwrap();
    assert_eq!(s, 403, "{v}");
    // And not by a plugin that does not declare it.
    let undeclared = probe(&k).await.at("T1");
    let (s, v) = undeclared
        .post(&grant(resident, "volunteer", "T1"), None, &anon)
        .await
        .unwrap();
    assert_eq!(s, 403);
    assert_eq!(
        v["detail"],
        "plugin probe does not declare the capability identity.grant"
    );
    assert_eq!(held(resident).await, [("volunteer".into(), "T1-V1".into())]);
    assert!(held(stranger).await.is_empty());
    assert_eq!(grants_audited(&k, resident).await.len(), 1);
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_granted_through_the_kernel_sqlite() {
    roles_are_granted_through_the_kernel(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_granted_through_the_kernel_postgres() {
    roles_are_granted_through_the_kernel(TestKernel::postgres().await).await;
}

/// `identity.grant` names the roles it grants, never an administrative
/// one: such a manifest is refused at install with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_grant_never_names_an_admin_role() {
    let k = TestKernel::sqlite().await;
    let pkg = k.package(plugin_dir("probe")).await;
    for role in ["site_admin", "city_admin", "pii_reader"] {
        let text = pkg.manifest_text.replace(
            "\"accounts.read\"]",
            &format!("\"accounts.read\", {{ name = \"identity.grant\", roles = [\"volunteer\", \"{role}\"] }}]"),
        );
        let e = kernel::plugins::package::Package::new(text, pkg.component.clone())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("manifest: identity.grant cannot grant \"{role}\"; it grants learner, teacher, volunteer, enterprise_mentor")
        );
    }
    let text = pkg.manifest_text.replace(
        "\"accounts.read\"]",
        "{ name = \"accounts.read\", roles = [\"volunteer\"] }]",
    );
    let e = kernel::plugins::package::Package::new(text, pkg.component.clone())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "manifest: capability accounts.read takes no roles; only identity.grant names roles"
    );
    // Through the registry too, before anything is stored.
    let bad = pkg.manifest_text.replace(
        "\"accounts.read\"]",
        "\"accounts.read\", { name = \"identity.grant\", roles = [\"city_admin\"] }]",
    );
    let mut tampered = pkg.clone();
    tampered.manifest_text = bad;
    let e = k
        .registry
        .install(&crate::system(), &tampered.encode())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("identity.grant cannot grant \"city_admin\""),
        "{e}"
    );
    assert!(k.registry.info("probe").await.is_err(), "nothing installed");
    k.cleanup().await;
}

/// Host API 1.2 `accounts.reverse-outcome`: a plugin reverses an outcome it
/// recorded, by its idempotency key, with a reason, in the call's
/// transaction, once (a second call returns the first reversal); it needs
/// `accounts.record` and cannot reach another plugin's entries.
async fn outcomes_are_reversed_once_by_their_plugin(k: TestKernel) {
    site_tree(&k, TREE).await;
    let (learner, _) = person(&k, 1, (1958, 5, 17), kernel::idnumber::Sex::Female, "T1-V1").await;
    let pkg = k.package(plugin_dir("probe")).await;
    let p = k.install(&pkg).await.at("T1");
    k.enable("probe", "T1").await;
    let anon = k.anonymous();
    let (s, v) = p
        .post(
            &format!("/outcomes/{learner}"),
            Some(json!({"key": "k1"})),
            &anon,
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    let original = v["entry"].as_i64().unwrap();
    let reverse = |body: serde_json::Value| {
        let p = p.clone();
        let anon = anon.clone();
        async move { p.post("/reversals", Some(body), &anon).await.unwrap() }
    };
    // A reason is needed; an unknown key is not found; a GET cannot.
    let (s, v) = reverse(json!({"key": "k1", "reason": " "})).await;
    assert_eq!(
        (s, v["detail"].as_str()),
        (400, Some("reason: must be 1-500 characters"))
    );
    let (s, _) = reverse(json!({"key": "nope", "reason": "r"})).await;
    assert_eq!(s, 404);
    let (s, v) = p.get("/reversals", &anon).await.unwrap();
    assert_eq!(s, 405, "{v}");
    // A call that fails after reversing reverses nothing.
    let err = p
        .post(
            "/reversals?trap",
            Some(json!({"key": "k1", "reason": "r"})),
            &anon,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Panic);
    assert_eq!(entries(&k, learner).await, 1);

    let (s, first) = reverse(json!({"key": "k1", "reason": "recorded twice by mistake"})).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["replayed"], false);
    let reversal = first["entry"].as_i64().unwrap();
    assert_ne!(reversal, original);
    let (s, again) = reverse(json!({"key": "k1", "reason": "once more"})).await;
    assert_eq!(
        (s, &again["replayed"], &again["entry"]),
        (200, &json!(true), &first["entry"]),
        "the first reversal, nothing new"
    );
    assert_eq!(entries(&k, learner).await, 2);
    let st = kernel::accounts::ledger::statement(&k.kernel, &crate::system(), learner, 0, 10)
        .await
        .unwrap();
    let rev = st.entries.iter().find(|e| e.id == reversal).unwrap();
    assert_eq!(rev.quantity, -24.0);
    assert_eq!(rev.origin, "plugin:probe");
    assert!(
        rev.title.contains("recorded twice by mistake"),
        "{}",
        rev.title
    );
    assert_eq!(st.entries.iter().map(|e| e.quantity).sum::<f64>(), 0.0);
    // A reversal is not itself reversed.
    let (s, v) = reverse(json!({"key": "k1/reversal", "reason": "r"})).await;
    assert_eq!(
        (s, v["detail"].as_str()),
        (400, Some("entry: a reversal cannot itself be reversed"))
    );

    // Another plugin, with accounts.record, cannot reach probe's key.
    let (s, v) = p
        .post(
            &format!("/outcomes/{learner}"),
            Some(json!({"key": "k2"})),
            &anon,
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    let twin = k
        .install(&crate::variant(&pkg, |t| {
            t.replacen("id = \"probe\"", "id = \"probe-twin\"", 1)
        }))
        .await
        .at("T1");
    k.enable("probe-twin", "T1").await;
    let (s, v) = twin
        .post(
            "/reversals",
            Some(json!({"key": "k2", "reason": "not mine"})),
            &anon,
        )
        .await
        .unwrap();
    assert_eq!(s, 404, "{v}");
    assert_eq!(
        v["detail"],
        "no ledger entry recorded by plugin:probe-twin under \"k2\""
    );
    // And without accounts.record, nothing at all.
    let unrecorded = k
        .install(&crate::variant(&pkg, |t| {
            t.replacen("id = \"probe\"", "id = \"probe-reader\"", 1)
                .replace("\"accounts.record\", ", "")
        }))
        .await
        .at("T1");
    k.enable("probe-reader", "T1").await;
    let (s, v) = unrecorded
        .post(
            "/reversals",
            Some(json!({"key": "k2", "reason": "r"})),
            &anon,
        )
        .await
        .unwrap();
    assert_eq!(s, 403, "{v}");
    assert_eq!(
        v["detail"],
        "plugin probe-reader does not declare the capability accounts.record"
    );
    assert_eq!(entries(&k, learner).await, 3);
    let report = kernel::accounts::ledger::verify(&k.kernel.db, 2)
        .await
        .unwrap();
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_reversed_once_by_their_plugin_sqlite() {
    outcomes_are_reversed_once_by_their_plugin(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_reversed_once_by_their_plugin_postgres() {
    outcomes_are_reversed_once_by_their_plugin(TestKernel::postgres().await).await;
}

/// Host API 1.3 `accounts.convert`: a plugin with `accounts.convert` asks
/// the credit bank to convert outcomes of a person it may see under a
/// published standard, in the call's transaction; the kernel consumes each
/// source once (a second use is a conflict), a replayed key converts once,
/// and reversing the conversion by its key releases the sources.
async fn outcomes_are_converted_under_published_standards(k: TestKernel) {
    site_tree(&k, TREE).await;
    let (learner, _) = person(&k, 1, (1990, 5, 17), kernel::idnumber::Sex::Female, "T1-V1").await;
    let (stranger, _) = person(&k, 2, (1991, 6, 18), kernel::idnumber::Sex::Male, "T2").await;
    let standard = serde_json::from_value(json!({
        "code": "cert-pair", "name": "两证换学分", "cardinality": "n:1", "sources": 2,
        "source_kind": "skill_certificate", "target_kind": "academic_credit",
        "target_quantity": 4, "valid_from": "2025-01-01"
    }))
    .unwrap();
    kernel::accounts::conversion::publish(&k.kernel, &crate::system(), standard)
        .await
        .unwrap();
    let pkg = k.package(plugin_dir("probe")).await;
    let p = k
        .install(&crate::variant(&pkg, |t| {
            t.replacen(
                "\"accounts.read\"]",
                "\"accounts.read\", \"accounts.convert\"]",
                1,
            )
        }))
        .await
        .at("T1");
    k.enable("probe", "T1").await;
    let anon = k.anonymous();
    let mut certs = Vec::new();
    for key in ["c1", "c2", "c3"] {
        let body = json!({"key": key, "kind": "skill_certificate", "quantity": 1});
        let (s, v) = p
            .post(&format!("/outcomes/{learner}"), Some(body), &anon)
            .await
            .unwrap();
        assert_eq!(s, 200, "{v}");
        certs.push(v["entry"].as_i64().unwrap());
    }
    let convert = |sources: Vec<i64>, key: &str, whom: i64| {
        let (p, anon) = (p.clone(), anon.clone());
        let body = json!({"person": whom, "standard": "cert-pair", "sources": sources, "key": key});
        async move { p.post("/conversions", Some(body), &anon).await.unwrap() }
    };
    let (s, first) = convert(vec![certs[0], certs[1]], "conv-1", learner).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(
        (
            &first["kind"],
            &first["quantity"],
            &first["credits"],
            &first["version"],
            &first["replayed"]
        ),
        (
            &json!("academic_credit"),
            &json!(4.0),
            &json!(4.0),
            &json!(1),
            &json!(false)
        )
    );
    let (s, again) = convert(vec![certs[0], certs[1]], "conv-1", learner).await;
    assert_eq!(
        (s, &again["entry"], &again["replayed"]),
        (200, &first["entry"], &json!(true))
    );
    let (s, v) = convert(vec![certs[0], certs[2]], "conv-2", learner).await;
    assert_eq!(s, 409, "{v}");
    // Someone the call may not see is not found.
    let (s, v) = convert(vec![certs[0], certs[2]], "conv-x", stranger).await;
    assert_eq!(s, 404, "{v}");
    // Reversing the conversion by its key releases both certificates.
    let (s, v) = p
        .post(
            "/reversals",
            Some(json!({"key": "conv-1", "reason": "wrong speciality"})),
            &anon,
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    let (s, v) = convert(vec![certs[0], certs[2]], "conv-3", learner).await;
    assert_eq!(s, 200, "{v}");
    let st = kernel::accounts::ledger::statement(&k.kernel, &crate::system(), learner, 0, 20)
        .await
        .unwrap();
    assert_eq!(st.total_credits, 4.0);
    // Without accounts.convert, nothing.
    let plain = k
        .install(&crate::variant(&pkg, |t| {
            t.replacen("id = \"probe\"", "id = \"probe-plain\"", 1)
        }))
        .await
        .at("T1");
    k.enable("probe-plain", "T1").await;
    let body = json!({"person": learner, "standard": "cert-pair", "sources": [certs[1], certs[2]], "key": "p"});
    let (s, v) = plain.post("/conversions", Some(body), &anon).await.unwrap();
    assert_eq!(s, 403, "{v}");
    assert_eq!(
        v["detail"],
        "plugin probe-plain does not declare the capability accounts.convert"
    );
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_converted_under_published_standards_sqlite() {
    outcomes_are_converted_under_published_standards(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_converted_under_published_standards_postgres() {
    outcomes_are_converted_under_published_standards(TestKernel::postgres().await).await;
}
