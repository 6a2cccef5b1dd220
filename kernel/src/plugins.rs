//! The plugin runtime: plugins are WebAssembly components that implement the
//! `lifelong:plugin` world (`sdk/wit/`) and run sandboxed, one fresh instance
//! per call, inside one database transaction per call.
//!
//! - `manifest.rs`: what a plugin declares (tables, events, settings, limits);
//! - `tables.rs`: index-checked queries over declared tables (`tables/schema.rs`
//!   the DDL and namespacing, `tables/access.rs` the index rule and cursors);
//! - `call.rs`: one call's state — its transaction, limits and error mapping;
//! - `host.rs`: every import the world offers, checked per call;
//! - `persons.rs`: which persons a call may see and record outcomes for,
//!   and which outcomes are plausible;
//! - `failure.rs`: what a failed call becomes (kind, message, backtrace);
//! - `runtime.rs`: the engine, pre-linking, the on-disk artifact cache, and
//!   running a call on a fresh instance;
//! - `events.rs`, `settings.rs`: event delivery and per-site settings;
//! - `package.rs`: the one-file signed package; `build.rs` builds one from a crate;
//! - `registry.rs`: install, upgrade, rollback, removal, trust store,
//!   per-site enablement and grants, and which version serves a call;
//! - `indicators.rs`: indicators plugins declare and provide (host API 1.4);
//! - `metrics.rs`: per-version counters for `/metrics` and recent logs.
//!
//! This module knows nothing about HTTP routing.

pub mod build;
pub mod call;
pub mod events;
pub mod failure;
pub mod host;
pub mod indicators;
pub mod manifest;
pub mod metrics;
pub mod package;
pub mod persons;
pub mod quota;
pub mod registry;
pub mod runtime;
pub mod settings;
pub mod tables;

pub use failure::{CallError, FailureKind};
pub use manifest::Manifest;
pub use runtime::{Loaded, Runtime, RuntimeLimits};

use crate::kernel::Kernel;

/// Load a plugin directly from its manifest text and component bytes, outside
/// the registry (the test harness and benchmarks): check the manifest,
/// create or extend its tables, compile (through the on-disk cache in
/// `cache`, if given) and pre-link it. A plugin loaded this way has every
/// capability it declares; serving goes through [`registry::Registry`].
pub async fn load(
    k: &Kernel,
    rt: &Runtime,
    manifest: &str,
    wasm: &[u8],
    cache: Option<&std::path::Path>,
) -> anyhow::Result<Loaded> {
    let manifest = manifest::parse(manifest)?;
    let component = match cache {
        Some(dir) => rt.compile_cached(wasm, dir)?,
        None => rt.compile(wasm)?,
    };
    let mut tx = k.db.begin().await?;
    tables::ensure(&mut tx, k.db.backend(), &manifest)
        .await
        .map_err(|e| anyhow::anyhow!("creating the tables of {}: {e}", manifest.id))?;
    tx.commit().await?;
    rt.subscribe(&manifest);
    rt.prepare(manifest, &component, k.db.backend())
}
