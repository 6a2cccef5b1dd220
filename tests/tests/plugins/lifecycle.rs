//! A plugin's life through the registry: per-site enablement and grants,
//! upgrade with migration, rollback with data, removal with dependents, and
//! the races between them.

use crate::{
    path_of, plugin_dir, plugin_tables, refused, site_tree, system, township_admin, variant,
    versioned, TREE,
};
use kernel::plugins::registry::Refusal;
use lifelong_harness::TestKernel;
use serde_json::json;

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
        tokio::spawn(async move { probe.get("/clock/100000", &anon).await })
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
