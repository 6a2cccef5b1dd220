//! The plugin runtime against plugins that misbehave on purpose
//! (`tests/plugins/probe`, `tests/plugins/other`), on a real in-process
//! kernel through the harness:
//! - `plugins/sandbox.rs`: limits, rollback, private tables, the index rule,
//!   races, HTTP dispatch and the compiled-artifact cache;
//! - `plugins/events.rs`: exactly-once delivery, parking, kernel events;
//! - `plugins/host.rs`: the kernel interfaces (sites, identity, accounts,
//!   settings) and their capabilities;
//! - `plugins/indicators.rs`: the indicator contract (host API 1.4) as
//!   served, hostile indicators, and what install refuses;
//! - `plugins/trust.rs`: packages, signatures, install checks, what a
//!   component may import;
//! - `plugins/lifecycle.rs`: per-site enablement and grants, upgrade,
//!   rollback, removal, and their races;
//! - `plugins/admin.rs`: the admin HTTP API, metrics and logs;
//! - `plugins/publishers.rs`: institution publishers bound to a site, their
//!   ceiling, plugin-id ownership, revocation and the approval queue;
//! - `plugins/quotas.rs`: quotas as served (each firing alone, usage in
//!   `/metrics` and the registry entry, overrides, a manifest lowering one);
//! - `plugins/served.rs`: guarantees as a deployment serves them (events
//!   between plugins, the body cap, failure responses, fair share, retries).

use kernel::plugins::package::Package;
use lifelong_harness::{TestKernel, TestPlugin};
use std::path::PathBuf;

#[path = "plugins/admin.rs"]
mod admin;
#[path = "plugins/events.rs"]
mod events;
#[path = "plugins/host.rs"]
mod host;
#[path = "plugins/indicators.rs"]
mod indicators;
#[path = "plugins/lifecycle.rs"]
mod lifecycle;
#[path = "plugins/publishers.rs"]
mod publishers;
#[path = "plugins/quotas.rs"]
mod quotas;
#[path = "plugins/sandbox.rs"]
mod sandbox;
#[path = "plugins/served.rs"]
mod served;
#[path = "plugins/trust.rs"]
mod trust;

pub fn plugin_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("plugins")
        .join(name)
}

pub async fn probe(k: &TestKernel) -> TestPlugin {
    k.load(plugin_dir("probe")).await
}

/// A city, two townships and a village in the first.
pub const TREE: &[(&str, &str, Option<&str>)] = &[
    ("CITY", "city", None),
    ("T1", "township", Some("CITY")),
    ("T2", "township", Some("CITY")),
    ("T1-V1", "village", Some("T1")),
];

/// The city site `CITY` with its first admin, `root` / `pw-12345678` (a
/// synthesised ID number), as `lifelong bootstrap` makes them.
pub async fn bootstrap_root(k: &TestKernel) {
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
}

/// The whole HTTP application over `k`'s kernel and registry, as `serve`
/// mounts it (default limits).
pub fn served_app(k: &TestKernel) -> axum::Router {
    let limits = kernel::config::Limits::default();
    let state =
        kernel::http::AppState::new(k.kernel.clone(), &limits).with_registry(k.registry.clone());
    kernel::http::app(state, &limits)
}

/// Create sites (code, kind, parent code) in order.
pub async fn site_tree(k: &TestKernel, sites: &[(&str, &str, Option<&str>)]) {
    for (code, kind, parent) in sites {
        kernel::sites::create(
            &k.kernel.db,
            &kernel::authz::Actor::System("test"),
            kernel::sites::NewSite {
                code: code.to_string(),
                name_zh: code.to_string(),
                kind: kind.to_string(),
                parent_code: parent.map(Into::into),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
}

/// Register a person born on `born` (serial `n` keeps ID numbers apart) at `home`.
pub async fn person(
    k: &TestKernel,
    n: u32,
    born: (i32, u32, u32),
    sex: kernel::idnumber::Sex,
    home: &str,
) -> (i64, String) {
    let id_number = kernel::idnumber::synthesize(
        350602,
        chrono::NaiveDate::from_ymd_opt(born.0, born.1, born.2).unwrap(),
        n,
        sex,
    );
    let p = kernel::identity::create(
        &k.kernel,
        &kernel::authz::Actor::System("test"),
        kernel::identity::NewPerson {
            name: format!("学员{n}"),
            id_number: id_number.clone(),
            home_site: home.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (p.id, id_number)
}

/// Wait until the plugin `plugin` has written `count` log lines saying
/// `message` (how a test knows a call has got to a given point).
pub async fn logged(k: &TestKernel, plugin: &str, message: &str, count: usize) {
    let seen = || {
        k.runtime
            .observatory()
            .recent_logs(plugin, 1000)
            .iter()
            .filter(|l| l.message == message)
            .count()
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while seen() < count {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{plugin} never logged {message:?} {count} time(s)"));
}

// Shared by the registry tests (trust, lifecycle, admin).

pub fn system() -> kernel::authz::Actor {
    kernel::authz::Actor::System("test")
}

/// The same component under an edited manifest.
pub fn variant(pkg: &Package, edit: impl Fn(String) -> String) -> Package {
    Package::new(edit(pkg.manifest_text.clone()), pkg.component.clone())
        .unwrap_or_else(|e| panic!("variant manifest: {e}"))
}

pub fn versioned(pkg: &Package, version: &str) -> Package {
    variant(pkg, |t| {
        t.replacen(
            "version = \"1.0.0\"",
            &format!("version = \"{version}\""),
            1,
        )
    })
}

pub async fn path_of(k: &TestKernel, code: &str) -> String {
    kernel::sites::fetch_by_code(k.kernel.db.reader(), code)
        .await
        .unwrap()
        .unwrap()
        .path
}

pub async fn plugin_tables(k: &TestKernel, prefix: &str) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE $1 ORDER BY name",
    )
    .bind(format!("{prefix}%"))
    .fetch_all(k.kernel.db.reader())
    .await
    .unwrap();
    rows.into_iter().map(|(n,)| n).collect()
}

pub fn refused(r: kernel::error::Result<impl std::fmt::Debug>) -> String {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// A site admin at `code` (a township admin, for scope tests).
pub async fn township_admin(k: &TestKernel, code: &str) -> kernel::authz::Actor {
    let site = kernel::sites::fetch_by_code(k.kernel.db.reader(), code)
        .await
        .unwrap()
        .unwrap();
    use kernel::authz::{Actor, Caller, Grant, Role};
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
