//! Trusting a package: install checks and their refusals, signatures and
//! the trust store, the pinned content hash, and what a component may import.

use crate::{
    plugin_dir, plugin_tables, refused, site_tree, system, township_admin, variant, versioned, TREE,
};
use kernel::authz::Actor;
use kernel::plugins::package::{Package, PublisherKey};
use kernel::plugins::registry::{Refusal, Registry};
use lifelong_harness::TestKernel;

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
            "host_api: plugin probe needs host API ^2.0, but this kernel serves 1.4.0",
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
        "package evil:env;\ninterface environment { get-environment: func() -> list<tuple<string, string>>; }\nworld evil { import environment; export lifelong:plugin/handler@1.4.0; }\n",
    );
    let e = refused(install(wasi_like).await);
    assert_eq!(
        e,
        "component: the component imports \"evil:env/environment\", which is not a versioned lifelong:plugin interface"
    );
    let versioned_other = hand_made_component(
        "package evil:net@0.2.0;\ninterface socket { connect: func(host: string) -> bool; }\nworld evil { import socket; export lifelong:plugin/handler@1.4.0; }\n",
    );
    let e = refused(install(versioned_other).await);
    assert_eq!(
        e,
        "component: the component imports \"evil:net/socket@0.2.0\"; plugins may import only lifelong:plugin interfaces (no WASI, filesystem, network or environment)"
    );
    let no_handler = hand_made_component(
        "package evil:quiet;\nworld evil { import lifelong:plugin/clock@1.4.0; }\n",
    );
    let e = refused(install(no_handler).await);
    assert_eq!(
        e,
        "component: the component does not export lifelong:plugin/handler; build it with the Lifelong SDK's export macro"
    );
    assert!(k.registry.list().await.unwrap().is_empty());
    k.cleanup().await;
}
