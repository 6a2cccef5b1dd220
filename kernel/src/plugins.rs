//! The plugin runtime: plugins are WebAssembly components that implement the
//! `lifelong:plugin` world (`sdk/wit/`) and run sandboxed, one fresh instance
//! per call, inside one database transaction per call.
//!
//! - `manifest.rs`: what a plugin declares (tables, events, limits);
//! - `tables.rs`: declared tables — DDL, namespacing, index-checked queries;
//! - `host.rs`: every import the world offers, checked per call;
//! - `runtime.rs`: the engine, pre-linking, limits and the call itself.
//!
//! This module knows nothing about HTTP routing or packages.

pub mod call;
pub mod events;
pub mod host;
pub mod manifest;
pub mod runtime;
pub mod settings;
pub mod tables;

pub use manifest::Manifest;
pub use runtime::{CallError, FailureKind, Loaded, Runtime, RuntimeLimits};

use crate::kernel::Kernel;

/// Load a plugin from its manifest text and component bytes: check the
/// manifest, create or extend its tables, compile (through the on-disk
/// cache in `cache`, if given) and pre-link it.
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
    rt.prepare(manifest, &component, k.db.backend())
}
