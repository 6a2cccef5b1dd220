//! The plugin lifecycle through the registry: install checks and their
//! refusals, signatures and the trust store, per-site enablement and grants,
//! upgrade with migration, rollback with data, removal with dependents.

use crate::{plugin_dir, site_tree, TREE};
use kernel::authz::{Actor, Caller, Grant, Role};
use kernel::plugins::package::{Package, PublisherKey};
use kernel::plugins::registry::{Refusal, Registry};
use lifelong_harness::TestKernel;
use serde_json::json;

fn system() -> Actor {
    Actor::System("test")
}

/// The same component under an edited manifest.
fn variant(pkg: &Package, edit: impl Fn(String) -> String) -> Package {
    Package::new(edit(pkg.manifest_text.clone()), pkg.component.clone())
        .unwrap_or_else(|e| panic!("variant manifest: {e}"))
}

fn versioned(pkg: &Package, version: &str) -> Package {
    variant(pkg, |t| {
        t.replacen(
            "version = \"1.0.0\"",
            &format!("version = \"{version}\""),
            1,
        )
    })
}

async fn path_of(k: &TestKernel, code: &str) -> String {
    kernel::sites::fetch_by_code(k.kernel.db.reader(), code)
        .await
        .unwrap()
        .unwrap()
        .path
}

async fn plugin_tables(k: &TestKernel, prefix: &str) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE $1 ORDER BY name",
    )
    .bind(format!("{prefix}%"))
    .fetch_all(k.kernel.db.reader())
    .await
    .unwrap();
    rows.into_iter().map(|(n,)| n).collect()
}

fn refused(r: kernel::error::Result<impl std::fmt::Debug>) -> String {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// Every refusal names what is wrong, and a refused package leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_refusals_say_why_and_store_nothing() {
    let k = TestKernel::sqlite().await;
    let probe = k.package(plugin_dir("probe")).await;
    let sys = system();
    let install = |p: Package| {
        let r = k.registry.clone();
        async move { r.install(&Actor::System("test"), &p.encode()).await }
    };

    let e = refused(k.registry.install(&sys, b"not a package").await);
    assert!(e.contains("not a Lifelong plugin package"), "{e}");
    let bad_manifest = {
        let mut bytes = probe.encode();
        // Corrupt the version inside the manifest section.
        let text = probe.manifest_text.replacen("1.0.0", "1.0.x", 1);
        bytes = [
            &bytes[..8],
            &(text.len() as u32).to_le_bytes(),
            text.as_bytes(),
            &bytes[12 + probe.manifest_text.len()..],
        ]
        .concat();
        bytes
    };
    let e = refused(k.registry.install(&sys, &bad_manifest).await);
    assert_eq!(
        e,
        "manifest: version \"1.0.x\" is not a semantic version (MAJOR.MINOR.PATCH)"
    );
    // Manifest edits, each refused with its reason.
    let cases: [(&str, &str, &str); 3] = [
        (
            "host_api = \"^1.0\"",
            "host_api = \"^2.0\"",
            "host_api: plugin probe needs host API ^2.0, but this kernel serves 1.1.0",
        ),
        (
            "memory_mib = 16",
            "memory_mib = 100000",
            "limits.memory_mib: 100000 MiB is outside this kernel's range of 1 to 64 MiB",
        ),
        (
            "[[tables]]",
            "[dependencies]\nledger-extra = \"^1.2\"\n\n[[tables]]",
            "dependencies: plugin probe needs plugin ledger-extra ^1.2, which is not installed",
        ),
    ];
    for (from, to, expected) in cases {
        let e = refused(install(variant(&probe, |t| t.replacen(from, to, 1))).await);
        assert_eq!(e, expected);
    }
    let e = refused(
        install(
            Package::new(
                probe.manifest_text.clone(),
                b"\0asm\x0d\0\x01\0garbage".to_vec(),
            )
            .unwrap(),
        )
        .await,
    );
    assert!(
        e.starts_with("component: not a valid WebAssembly component"),
        "{e}"
    );

    assert!(k.registry.list().await.unwrap().is_empty());
    assert!(
        plugin_tables(&k, "plg_probe").await.is_empty(),
        "no tables for a refused package"
    );

    // An incompatible dependency: installed, but at a version the requirement refuses.
    install(probe.clone()).await.unwrap();
    let other = k.package(plugin_dir("other")).await;
    let e = refused(
        install(variant(&other, |t| {
            format!("{t}\n[dependencies]\nprobe = \"^2\"\n")
        }))
        .await,
    );
    assert_eq!(
        e,
        "dependencies: plugin other needs plugin probe ^2, but version 1.0.0 is installed"
    );
    install(variant(&other, |t| {
        format!("{t}\n[dependencies]\nprobe = \"^1\"\n")
    }))
    .await
    .unwrap();

    // Installing again is not an upgrade; going down is not either.
    let e = refused(install(probe.clone()).await);
    assert_eq!(
        e,
        "plugin probe is already installed (version 1.0.0); use upgrade"
    );
    let e = refused(k.registry.upgrade(&sys, &probe.encode()).await);
    assert_eq!(
        e,
        "plugin probe is at version 1.0.0; an upgrade must go to a higher version, not 1.0.0 (use rollback to go back)"
    );
    k.registry
        .upgrade(&sys, &versioned(&probe, "1.2.0").encode())
        .await
        .unwrap();
    let e = refused(
        k.registry
            .upgrade(&sys, &versioned(&probe, "1.1.0").encode())
            .await,
    );
    assert!(e.contains("must go to a higher version, not 1.1.0"), "{e}");
    // An upgrade that would break a dependent's requirement.
    let e = refused(
        k.registry
            .upgrade(&sys, &versioned(&probe, "2.0.0").encode())
            .await,
    );
    assert_eq!(
        e,
        "plugin other needs probe ^1, which version 2.0.0 does not meet"
    );
    k.cleanup().await;
}

/// Outside development mode only packages signed by a trusted publisher pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_checked_against_the_trust_store() {
    let k = TestKernel::sqlite().await;
    let strict = Registry::new(k.kernel.clone(), k.runtime.clone(), None, false);
    let sys = system();
    let mut pkg = k.package(plugin_dir("other")).await;

    let e = refused(strict.install(&sys, &pkg.encode()).await);
    assert!(e.starts_with("signature: the package is not signed"), "{e}");

    let key = PublisherKey::generate("lifelong").unwrap();
    pkg.sign(&key).unwrap();
    let e = refused(strict.install(&sys, &pkg.encode()).await);
    assert_eq!(
        e,
        "signature: publisher \"lifelong\" is not in the trust store; a city admin must add its public key first"
    );

    // A trusted publisher, but another key signed: refused.
    let impostor = PublisherKey::generate("lifelong").unwrap();
    strict
        .trust(&sys, "lifelong", &impostor.public_hex())
        .await
        .unwrap();
    let e = refused(strict.install(&sys, &pkg.encode()).await);
    assert!(
        e.contains("does not match publisher \"lifelong\"'s key"),
        "{e}"
    );

    // The right key, but one byte of the component changed after signing.
    strict
        .trust(&sys, "lifelong", &key.public_hex())
        .await
        .unwrap();
    let mut tampered = pkg.encode();
    let at = tampered.len() - 400;
    tampered[at] ^= 0x20;
    let e = refused(strict.install(&sys, &tampered).await);
    assert!(e.contains("does not match"), "{e}");

    let info = strict.install(&sys, &pkg.encode()).await.unwrap();
    assert!(info.signed);
    assert_eq!(
        info.sha256,
        kernel::plugins::package::sha256_hex(&pkg.component)
    );
    assert_eq!(strict.list().await.unwrap().len(), 1);

    // A township admin may not touch the trust store or install.
    site_tree(&k, TREE).await;
    let t1 = township_admin(&k, "T1").await;
    let e = refused(strict.trust(&t1, "acme", &key.public_hex()).await);
    assert_eq!(
        e,
        "changing the plugin trust store needs the city_admin role"
    );
    k.cleanup().await;
}

async fn township_admin(k: &TestKernel, code: &str) -> Actor {
    let site = kernel::sites::fetch_by_code(k.kernel.db.reader(), code)
        .await
        .unwrap()
        .unwrap();
    Actor::Person(Caller {
        person_id: 999,
        home_path: site.path.clone(),
        grants: vec![Grant {
            role: Role::SiteAdmin,
            site_id: site.id,
            site_path: site.path,
            site_code: site.code,
        }],
    })
}

/// Enablement is inherited down the tree unless overridden, needs the
/// capabilities granted, and a township admin acts only in their township.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enablement_is_inherited_and_scoped_to_the_admins_subtree() {
    let k = TestKernel::sqlite().await;
    site_tree(&k, TREE).await;
    let probe = k.install(&k.package(plugin_dir("probe")).await).await;
    let sys = system();
    let route = |code: &'static str| {
        let k = &k;
        async move {
            let path = path_of(k, code).await;
            k.registry
                .route("probe", Some(&path))
                .map(|l| l.manifest.version.clone())
        }
    };
    assert_eq!(
        route("T1").await,
        Err(Refusal::NotEnabled),
        "nothing is enabled by default"
    );

    // Enabling needs the capabilities granted first.
    let e = refused(k.registry.set_enabled(&sys, "probe", "CITY", true).await);
    assert_eq!(
        e,
        "plugin probe asks for sites.read, identity.read, accounts.record, accounts.read, not granted at site CITY; grant them first"
    );
    k.enable("probe", "CITY").await;
    for code in ["CITY", "T1", "T1-V1", "T2"] {
        assert_eq!(route(code).await, Ok("1.0.0".to_string()), "{code}");
    }
    let (s, v) = probe.at("T1-V1").get("/ok", &k.anonymous()).await.unwrap();
    assert_eq!((s, v), (200, json!({ "ok": true })));

    // Disabled at T1: T1 and its village lose it, T2 keeps it; data stays.
    k.registry
        .set_enabled(&sys, "probe", "T1", false)
        .await
        .unwrap();
    assert_eq!(route("T1").await, Err(Refusal::NotEnabled));
    assert_eq!(route("T1-V1").await, Err(Refusal::NotEnabled));
    assert_eq!(route("T2").await, Ok("1.0.0".to_string()));
    let (s, _) = probe.at("T1-V1").get("/ok", &k.anonymous()).await.unwrap();
    assert_eq!(s, 404);
    // Re-enabled below the override.
    k.registry
        .set_enabled(&sys, "probe", "T1-V1", true)
        .await
        .unwrap();
    assert_eq!(route("T1-V1").await, Ok("1.0.0".to_string()));
    assert_eq!(route("T1").await, Err(Refusal::NotEnabled));

    // A capability refused at T2 keeps the plugin from serving there.
    k.registry
        .grant(&sys, "probe", "T2", &["identity.read".to_string()], false)
        .await
        .unwrap();
    assert_eq!(
        route("T2").await,
        Err(Refusal::NotGranted(vec!["identity.read".into()]))
    );

    // The T1 admin administers T1 only.
    let t1 = township_admin(&k, "T1").await;
    k.registry
        .set_enabled(&t1, "probe", "T1", true)
        .await
        .unwrap();
    assert_eq!(route("T1").await, Ok("1.0.0".to_string()));
    let e = refused(k.registry.set_enabled(&t1, "probe", "T2", false).await);
    assert_eq!(e, "site T2 not found");
    let e = refused(k.registry.set_enabled(&t1, "probe", "CITY", false).await);
    assert_eq!(
        e,
        "disabling a module needs the site_admin role at this site or one above it"
    );
    assert_eq!(
        route("CITY").await,
        Ok("1.0.0".to_string()),
        "unchanged by the refusals"
    );

    // Every change was audited, and enabling published kernel events.
    let (audited,): (i64,) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action IN ('plugin.enable', 'plugin.disable', 'plugin.grant', 'plugin.revoke', 'plugin.install')",
    )
    .fetch_one(k.kernel.db.reader())
    .await
    .unwrap();
    assert_eq!(audited, 7);
    let (events,): (i64,) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM plugin_outbox WHERE name IN ('kernel.plugin.enable', 'kernel.plugin.disable')",
    )
    .fetch_one(k.kernel.db.reader())
    .await
    .unwrap();
    assert_eq!(events, 4);
    k.cleanup().await;
}

/// An upgrade asking for more capabilities serves a site only once that
/// site grants them; until then the site keeps the old version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_with_a_new_capability_waits_for_each_sites_grant() {
    let k = TestKernel::sqlite().await;
    site_tree(&k, TREE).await;
    let sys = system();
    let other = k.package(plugin_dir("other")).await;
    k.install(&other).await;
    k.enable("other", "CITY").await;
    let v2 = variant(&versioned(&other, "1.1.0"), |t| {
        t.replace(
            "host_api = \"^1.0\"",
            "host_api = \"^1.0\"\ncapabilities = [\"sites.read\"]",
        )
    });
    let info = k.registry.upgrade(&sys, &v2.encode()).await.unwrap();
    assert_eq!(
        (info.version.as_str(), info.previous.as_deref()),
        ("1.1.0", Some("1.0.0"))
    );
    let at = |code: &'static str| {
        let k = &k;
        async move {
            let path = path_of(k, code).await;
            k.registry
                .route("other", Some(&path))
                .map(|l| l.manifest.version.clone())
        }
    };
    assert_eq!(at("T1").await, Ok("1.0.0".into()));
    k.registry
        .grant(&sys, "other", "T1", &["sites.read".to_string()], true)
        .await
        .unwrap();
    assert_eq!(at("T1").await, Ok("1.1.0".into()));
    assert_eq!(
        at("T1-V1").await,
        Ok("1.1.0".into()),
        "the grant is inherited"
    );
    assert_eq!(at("T2").await, Ok("1.0.0".into()), "T2 has not granted it");
    // The routed handle runs under the site's grants only.
    let routed = k
        .registry
        .route("other", Some(&path_of(&k, "T1").await))
        .unwrap();
    assert_eq!(routed.manifest.capabilities, ["sites.read"]);
    k.cleanup().await;
}

/// A migration that cannot apply leaves the old version serving its data;
/// a good one carries data forward; rollback restores the data of the moment
/// of the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_migrates_or_leaves_everything_and_rollback_restores_data() {
    let k = TestKernel::sqlite().await;
    site_tree(&k, TREE).await;
    let sys = system();
    let probe_pkg = k.package(plugin_dir("probe")).await;
    let probe = k.install(&probe_pkg).await.at("CITY");
    k.enable("probe", "CITY").await;
    let caller = k.anonymous();
    for cap in [10, 20] {
        let (s, _) = probe
            .post("/seats", Some(json!({ "capacity": cap })), &caller)
            .await
            .unwrap();
        assert_eq!(s, 201);
    }
    let seats = |id: i64| {
        let probe = probe.clone();
        let caller = caller.clone();
        async move { probe.get(&format!("/seats/{id}"), &caller).await.unwrap() }
    };

    // A new NOT NULL column cannot be added to rows that exist.
    let broken = variant(&versioned(&probe_pkg, "1.1.0"), |t| {
        t.replace(
            "[[tables.columns]]\nname = \"capacity\"\ntype = \"integer\"\n",
            "[[tables.columns]]\nname = \"capacity\"\ntype = \"integer\"\n[[tables.columns]]\nname = \"room\"\ntype = \"text\"\n",
        )
    });
    let e = refused(k.registry.upgrade(&sys, &broken.encode()).await);
    assert_eq!(
        e,
        "migration: migrating the tables of probe to 1.1.0 failed, so version 1.0.0 stays active with its data untouched: column seats.room is new and must be nullable to be added to existing rows"
    );
    assert_eq!(k.registry.info("probe").await.unwrap().version, "1.0.0");
    assert_eq!(seats(2).await, (200, json!({ "taken": 0, "capacity": 20 })));
    assert!(
        plugin_tables(&k, "snp_").await.is_empty(),
        "no snapshot left behind"
    );

    // A good upgrade: a nullable column and a new table; data carried forward.
    let good = variant(&versioned(&probe_pkg, "1.1.0"), |t| {
        format!(
            "{}\n[[tables]]\nname = \"rooms\"\nprimary_key = [\"id\"]\n[[tables.columns]]\nname = \"id\"\ntype = \"integer\"\n",
            t.replace(
                "[[tables.columns]]\nname = \"capacity\"\ntype = \"integer\"\n",
                "[[tables.columns]]\nname = \"capacity\"\ntype = \"integer\"\n[[tables.columns]]\nname = \"room\"\ntype = \"text\"\nnullable = true\n",
            )
        )
    });
    k.registry.upgrade(&sys, &good.encode()).await.unwrap();
    assert_eq!(
        k.registry.route("probe", None).unwrap().manifest.version,
        "1.1.0"
    );
    assert_eq!(seats(2).await, (200, json!({ "taken": 0, "capacity": 20 })));
    // Written after the upgrade: a seat taken and a new row.
    let (s, _) = probe.post("/seats/1/take", None, &caller).await.unwrap();
    assert_eq!(s, 200);
    let (s, _) = probe
        .post("/seats", Some(json!({ "capacity": 30 })), &caller)
        .await
        .unwrap();
    assert_eq!(s, 201);
    assert_eq!(seats(1).await, (200, json!({ "taken": 1, "capacity": 10 })));
    assert!(plugin_tables(&k, "plg_probe__rooms").await.len() == 1);

    let info = k.registry.rollback(&sys, "probe").await.unwrap();
    assert_eq!((info.version.as_str(), info.previous), ("1.0.0", None));
    assert_eq!(
        k.registry.route("probe", None).unwrap().manifest.version,
        "1.0.0"
    );
    assert_eq!(
        seats(1).await,
        (200, json!({ "taken": 0, "capacity": 10 })),
        "as at the upgrade"
    );
    assert_eq!(
        seats(3).await.0,
        404,
        "the row written after the upgrade is gone"
    );
    assert!(
        plugin_tables(&k, "plg_probe__rooms").await.is_empty(),
        "the new table is gone"
    );
    assert!(plugin_tables(&k, "snp_").await.is_empty());
    let e = refused(k.registry.rollback(&sys, "probe").await);
    assert!(e.contains("has no earlier version to roll back to"), "{e}");
    // Upgrading again after a rollback works.
    k.registry.upgrade(&sys, &good.encode()).await.unwrap();
    assert_eq!(seats(2).await, (200, json!({ "taken": 0, "capacity": 20 })));
    k.cleanup().await;
}

/// Removal is refused while an enabled plugin depends on the plugin; data
/// is kept unless purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_respects_dependents_and_keeps_data_unless_purged() {
    let k = TestKernel::sqlite().await;
    site_tree(&k, TREE).await;
    let sys = system();
    let probe_pkg = k.package(plugin_dir("probe")).await;
    let probe = k.install(&probe_pkg).await.at("CITY");
    k.enable("probe", "CITY").await;
    let (s, _) = probe
        .post("/seats", Some(json!({ "capacity": 5 })), &k.anonymous())
        .await
        .unwrap();
    assert_eq!(s, 201);
    let other = variant(&k.package(plugin_dir("other")).await, |t| {
        format!("{t}\n[dependencies]\nprobe = \"^1.0\"\n")
    });
    k.install(&other).await;
    // A dependent can be enabled only where its dependency is.
    k.registry
        .set_enabled(&sys, "probe", "T2", false)
        .await
        .unwrap();
    let e = refused(k.registry.set_enabled(&sys, "other", "T2", true).await);
    assert_eq!(
        e,
        "plugin other needs plugin probe, which is not enabled at site T2"
    );
    k.registry
        .set_enabled(&sys, "other", "T1", true)
        .await
        .unwrap();

    let e = refused(k.registry.remove(&sys, "probe", false).await);
    assert_eq!(
        e,
        "plugin other depends on probe and is enabled at site T1; disable it first"
    );
    k.registry
        .set_enabled(&sys, "other", "T1", false)
        .await
        .unwrap();
    k.registry.remove(&sys, "probe", false).await.unwrap();
    assert_eq!(
        k.registry.route("probe", None).unwrap_err(),
        Refusal::NotInstalled
    );
    assert_eq!(
        plugin_tables(&k, "plg_probe__seats").await.len(),
        1,
        "data kept"
    );

    // Reinstalled, it finds its data again.
    let probe = k.install(&probe_pkg).await.at("CITY");
    k.enable("probe", "CITY").await;
    let (s, v) = probe.get("/seats/1", &k.anonymous()).await.unwrap();
    assert_eq!((s, v), (200, json!({ "taken": 0, "capacity": 5 })));

    k.registry.remove(&sys, "other", true).await.unwrap();
    assert!(plugin_tables(&k, "plg_other").await.is_empty(), "purged");
    k.cleanup().await;
}

/// The same lifecycle holds on PostgreSQL: install, enable, upgrade with
/// data, rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_and_rollback_on_postgres() {
    let k = TestKernel::postgres().await;
    site_tree(&k, TREE).await;
    let sys = system();
    let probe_pkg = k.package(plugin_dir("probe")).await;
    let probe = k.install(&probe_pkg).await.at("T1");
    k.enable("probe", "CITY").await;
    let caller = k.anonymous();
    let (s, _) = probe
        .post("/seats", Some(json!({ "capacity": 3 })), &caller)
        .await
        .unwrap();
    assert_eq!(s, 201);
    let good = variant(&versioned(&probe_pkg, "1.1.0"), |t| {
        t.replace(
            "[[tables.columns]]\nname = \"capacity\"\ntype = \"integer\"\n",
            "[[tables.columns]]\nname = \"capacity\"\ntype = \"integer\"\n[[tables.columns]]\nname = \"room\"\ntype = \"text\"\nnullable = true\n",
        )
    });
    k.registry.upgrade(&sys, &good.encode()).await.unwrap();
    let (s, _) = probe.post("/seats/1/take", None, &caller).await.unwrap();
    assert_eq!(s, 200);
    let (s, _) = probe
        .post("/seats", Some(json!({ "capacity": 4 })), &caller)
        .await
        .unwrap();
    assert_eq!(s, 201);
    k.registry.rollback(&sys, "probe").await.unwrap();
    assert_eq!(
        probe.get("/seats/1", &caller).await.unwrap(),
        (200, json!({ "taken": 0, "capacity": 3 }))
    );
    assert_eq!(probe.get("/seats/2", &caller).await.unwrap().0, 404);
    // New rows after the rollback do not collide with restored ids.
    let (s, v) = probe
        .post("/seats", Some(json!({ "capacity": 9 })), &caller)
        .await
        .unwrap();
    assert_eq!(s, 201, "{v}");
    k.cleanup().await;
}

/// The admin HTTP API end to end: install by upload, grant, enable, call,
/// then read metrics and the plugin's logs; unauthorised callers refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_plugins_over_http_and_read_metrics_and_logs() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let k = TestKernel::sqlite().await;
    let id_number = kernel::idnumber::synthesize(
        350602,
        chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap(),
        1,
        kernel::idnumber::Sex::Female,
    );
    kernel::demo::bootstrap(
        &k.kernel,
        "root",
        "管理员",
        &id_number,
        "pw-12345678",
        "CITY",
        "市",
    )
    .await
    .unwrap();
    let limits = kernel::config::Limits::default();
    let state =
        kernel::http::AppState::new(k.kernel.clone(), &limits).with_registry(k.registry.clone());
    let app = kernel::http::app(state, &limits);
    let send = |method: &str, uri: &str, token: Option<&str>, body: Body, ct: &str| {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", ct);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(body).unwrap();
        let app = app.clone();
        async move {
            let res = app.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8_lossy(&bytes).to_string();
            (
                status,
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            )
        }
    };
    let json_body = |v: serde_json::Value| Body::from(v.to_string());
    let (s, v) = send(
        "POST",
        "/api/v1/auth/login",
        None,
        json_body(json!({"login": "root", "password": "pw-12345678"})),
        "application/json",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let t = Some(token.as_str());

    let pkg = k.package(plugin_dir("probe")).await.encode();
    let (s, v) = send(
        "POST",
        "/api/v1/plugin-registry",
        None,
        Body::from(pkg.clone()),
        "application/octet-stream",
    )
    .await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = send(
        "POST",
        "/api/v1/plugin-registry",
        t,
        Body::from(b"junk".to_vec()),
        "application/octet-stream",
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(
        v["detail"],
        "package: not a Lifelong plugin package (bad magic bytes)"
    );
    let (s, v) = send(
        "POST",
        "/api/v1/plugin-registry",
        t,
        Body::from(pkg),
        "application/octet-stream",
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (
            v["id"].as_str(),
            v["version"].as_str(),
            v["signed"].as_bool()
        ),
        (Some("probe"), Some("1.0.0"), Some(false))
    );

    let (s, v) = send(
        "POST",
        "/api/v1/plugins/probe/seats?site=CITY",
        t,
        json_body(json!({"capacity": 2})),
        "application/json",
    )
    .await;
    assert_eq!(s, 404, "not enabled yet: {v}");
    assert_eq!(v["detail"], "plugin probe is not enabled at site CITY");
    let (s, v) = send(
        "PUT",
        "/api/v1/plugin-registry/probe/sites/CITY/enabled",
        t,
        json_body(json!({"enabled": true})),
        "application/json",
    )
    .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = send(
        "PUT",
        "/api/v1/plugin-registry/probe/sites/CITY/grants",
        t,
        json_body(json!({"capabilities": ["sites.read", "identity.read", "accounts.record", "accounts.read"]})),
        "application/json",
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = send(
        "PUT",
        "/api/v1/plugin-registry/probe/sites/CITY/enabled",
        t,
        json_body(json!({"enabled": true})),
        "application/json",
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = send(
        "POST",
        "/api/v1/plugins/probe/seats?site=CITY",
        t,
        json_body(json!({"capacity": 2})),
        "application/json",
    )
    .await;
    assert_eq!(s, 201, "{v}");

    let (s, v) = send(
        "GET",
        "/api/v1/plugin-registry",
        t,
        Body::empty(),
        "application/json",
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        v["items"][0]["sites"],
        json!([{"site": "CITY", "enabled": true}])
    );
    let (s, v) = send("GET", "/metrics", None, Body::empty(), "text/plain").await;
    assert_eq!(s, 200);
    let text = v.as_str().unwrap();
    assert!(
        text.contains("lifelong_plugin_calls_total{plugin=\"probe\",version=\"1.0.0\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "lifelong_plugin_call_duration_seconds_count{plugin=\"probe\",version=\"1.0.0\"} 1"
        ),
        "{text}"
    );
    let (s, v) = send(
        "GET",
        "/api/v1/plugin-registry/probe/logs",
        t,
        Body::empty(),
        "application/json",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let line = &v["items"][0];
    assert_eq!(
        (
            line["message"].as_str(),
            line["site"].as_str(),
            line["version"].as_str()
        ),
        (Some("seat row 1 created"), Some("CITY"), Some("1.0.0"))
    );
    assert!(!line["request_id"].as_str().unwrap().is_empty());
    let (s, v) = send("GET", "/readyz", None, Body::empty(), "application/json").await;
    assert_eq!(
        (s, v["dev_mode"].as_bool(), v["plugins"].as_u64()),
        (200, Some(true), Some(1))
    );
    // Malformed requests are problems too.
    let (s, v) = send(
        "DELETE",
        "/api/v1/plugin-registry/probe?purge=maybe",
        t,
        Body::empty(),
        "application/json",
    )
    .await;
    assert_eq!((s, v["status"].as_u64()), (422, Some(422)), "{v}");
    let (s, v) = send(
        "PUT",
        "/api/v1/plugin-registry/probe/sites/CITY/grants",
        t,
        json_body(json!({"capabilities": "sites.read"})),
        "application/json",
    )
    .await;
    assert_eq!((s, v["status"].as_u64()), (422, Some(422)), "{v}");
    let (s, v) = send(
        "POST",
        "/api/v1/plugin-registry/hello/upgrade",
        t,
        Body::from(k.package(plugin_dir("probe")).await.encode()),
        "application/octet-stream",
    )
    .await;
    assert_eq!(
        (s, v["detail"].as_str()),
        (422, Some("package: the package is plugin probe, not hello")),
        "{v}"
    );
    let (s, v) = send(
        "GET",
        "/api/v1/plugin-registry/nope",
        t,
        Body::empty(),
        "application/json",
    )
    .await;
    assert_eq!(
        (s, v["detail"].as_str()),
        (404, Some("plugin nope not found")),
        "{v}"
    );
    let (s, _) = send(
        "DELETE",
        "/api/v1/plugin-registry/probe",
        t,
        Body::empty(),
        "application/json",
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = send(
        "POST",
        "/api/v1/plugins/probe/seats?site=CITY",
        t,
        json_body(json!({"capacity": 2})),
        "application/json",
    )
    .await;
    assert_eq!(s, 404);
    k.cleanup().await;
}

/// The content hash pinned at install is checked whenever a node loads a
/// version: a component changed in the database is refused, and a node that
/// already serves the plugin keeps serving what it verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_changed_after_install_is_not_loaded() {
    let k = TestKernel::sqlite().await;
    site_tree(&k, TREE).await;
    let pkg = k.package(plugin_dir("probe")).await;
    k.install(&pkg).await;
    k.enable("probe", "CITY").await;
    let mut changed = pkg.component.clone();
    let at = changed.len() / 2;
    changed[at] ^= 0xff;
    let mut tx = k.kernel.db.begin().await.unwrap();
    sqlx::query("UPDATE plugin_versions SET component = $1 WHERE plugin = 'probe'")
        .bind(changed)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // This node keeps what it loaded and verified.
    assert!(k.registry.route("probe", None).is_ok());
    // A node starting now refuses the changed component.
    let fresh = Registry::new(k.kernel.clone(), k.runtime.clone(), None, true);
    fresh.refresh().await.unwrap();
    assert_eq!(
        fresh.route("probe", None).unwrap_err(),
        Refusal::NotInstalled
    );
    assert!(fresh.loaded().is_empty());
    k.cleanup().await;
}

/// Two admins upgrading one plugin at the same moment (PostgreSQL): the
/// registry row is locked, so the second sees the first; whatever the
/// interleaving, the history stays one coherent step and no data is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upgrades_stay_coherent_on_postgres() {
    let k = TestKernel::postgres().await;
    site_tree(&k, TREE).await;
    let probe_pkg = k.package(plugin_dir("probe")).await;
    let probe = k.install(&probe_pkg).await.at("CITY");
    k.enable("probe", "CITY").await;
    let (s, _) = probe
        .post("/seats", Some(json!({ "capacity": 7 })), &k.anonymous())
        .await
        .unwrap();
    assert_eq!(s, 201);
    let a = versioned(&probe_pkg, "1.1.0").encode();
    let b = versioned(&probe_pkg, "1.2.0").encode();
    let admin = system();
    let (ra, rb) = tokio::join!(
        k.registry.upgrade(&admin, &a),
        k.registry.upgrade(&admin, &b)
    );
    assert!(ra.is_ok() || rb.is_ok(), "{ra:?} {rb:?}");
    let info = k.registry.info("probe").await.unwrap();
    let expected_previous = match (&ra, &rb) {
        (Ok(_), Ok(_)) => "1.1.0", // 1.1.0 first, then 1.2.0 over it
        _ => "1.0.0",
    };
    assert_eq!(
        info.previous.as_deref(),
        Some(expected_previous),
        "{info:?}"
    );
    assert!(["1.1.0", "1.2.0"].contains(&info.version.as_str()));
    assert_eq!(
        probe.get("/seats/1", &k.anonymous()).await.unwrap(),
        (200, json!({ "taken": 0, "capacity": 7 }))
    );
    k.registry.rollback(&system(), "probe").await.unwrap();
    assert_eq!(
        k.registry.info("probe").await.unwrap().version,
        expected_previous
    );
    assert_eq!(
        probe.get("/seats/1", &k.anonymous()).await.unwrap(),
        (200, json!({ "taken": 0, "capacity": 7 }))
    );
    k.cleanup().await;
}

/// A component for `world evil` in `wit` (the host API's package is in
/// scope), with no code: enough for install to read its imports and exports.
fn hand_made_component(wit: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    resolve
        .push_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/wit"))
        .unwrap();
    let pkg = resolve.push_str("evil.wit", wit).unwrap();
    let world = resolve.select_world(&[pkg], Some("evil")).unwrap();
    let mut module = wit_component::dummy_module(
        &resolve,
        world,
        wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync),
    );
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}

/// Components that import anything but the host API (an environment, a
/// filesystem, a network), or do not export the handler, are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_outside_the_world_are_refused() {
    let k = TestKernel::sqlite().await;
    let manifest = k.package(plugin_dir("other")).await.manifest_text;
    let sys = system();
    let install = |component: Vec<u8>| {
        let pkg = Package::new(manifest.clone(), component).unwrap();
        let r = k.registry.clone();
        let sys = sys.clone();
        async move { r.install(&sys, &pkg.encode()).await }
    };
    let wasi_like = hand_made_component(
        "package evil:env;\ninterface environment { get-environment: func() -> list<tuple<string, string>>; }\nworld evil { import environment; export lifelong:plugin/handler@1.1.0; }\n",
    );
    let e = refused(install(wasi_like).await);
    assert_eq!(
        e,
        "component: the component imports \"evil:env/environment\", which is not a versioned lifelong:plugin interface"
    );
    let versioned_other = hand_made_component(
        "package evil:net@0.2.0;\ninterface socket { connect: func(host: string) -> bool; }\nworld evil { import socket; export lifelong:plugin/handler@1.1.0; }\n",
    );
    let e = refused(install(versioned_other).await);
    assert_eq!(
        e,
        "component: the component imports \"evil:net/socket@0.2.0\"; plugins may import only lifelong:plugin interfaces (no WASI, filesystem, network or environment)"
    );
    let no_handler = hand_made_component(
        "package evil:quiet;\nworld evil { import lifelong:plugin/clock@1.1.0; }\n",
    );
    let e = refused(install(no_handler).await);
    assert_eq!(
        e,
        "component: the component does not export lifelong:plugin/handler; build it with the Lifelong SDK's export macro"
    );
    assert!(k.registry.list().await.unwrap().is_empty());
    k.cleanup().await;
}

/// Removing a plugin while an admin enables a plugin that depends on it
/// (PostgreSQL, at the same moment): never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_and_enabling_a_dependent_never_both_succeed_on_postgres() {
    let k = TestKernel::postgres().await;
    site_tree(&k, TREE).await;
    k.install(&k.package(plugin_dir("probe")).await).await;
    k.enable("probe", "CITY").await;
    let other = variant(&k.package(plugin_dir("other")).await, |t| {
        format!("{t}\n[dependencies]\nprobe = \"^1.0\"\n")
    });
    k.install(&other).await;
    let admin = system();
    let (removed, enabled) = tokio::join!(
        k.registry.remove(&admin, "probe", false),
        k.registry.set_enabled(&admin, "other", "T1", true)
    );
    assert!(
        removed.is_ok() != enabled.is_ok(),
        "exactly one may win: {removed:?} {enabled:?}"
    );
    k.cleanup().await;
}

/// A call in flight when an upgrade lands finishes on the version it began
/// on; the next call runs on the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_finish_on_the_version_they_began_on() {
    let k = TestKernel::sqlite().await;
    site_tree(&k, TREE).await;
    let probe_pkg = k.package(plugin_dir("probe")).await;
    let probe = k.install(&probe_pkg).await.at("CITY");
    k.enable("probe", "CITY").await;
    let long = {
        let (probe, anon) = (probe.clone(), k.anonymous());
        // Many host calls: long enough to still be running when the
        // upgrade lands, well inside the probe's 500 ms deadline.
        tokio::spawn(async move { probe.get("/clock/300000", &anon).await })
    };
    crate::logged(&k, "probe", "clock started", 1).await;
    k.registry
        .upgrade(&system(), &versioned(&probe_pkg, "1.1.0").encode())
        .await
        .unwrap();
    let (s, _) = long.await.unwrap().unwrap();
    assert_eq!(s, 200, "the call in flight finished");
    let (s, _) = probe.get("/ok", &k.anonymous()).await.unwrap();
    assert_eq!(s, 200);
    let metrics = k.runtime.observatory().render();
    assert!(
        metrics.contains("lifelong_plugin_calls_total{plugin=\"probe\",version=\"1.0.0\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lifelong_plugin_calls_total{plugin=\"probe\",version=\"1.1.0\"} 1"),
        "{metrics}"
    );
    k.cleanup().await;
}
