//! Building a plugin crate into a component and a package: what `lifelong
//! plugin build`, the demo and the test harness all use, so they produce the
//! same component.

use super::manifest;
use super::package::Package;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the plugin crate at `dir` for `wasm32-unknown-unknown` (release,
/// as a `cdylib`) and turn the module into a component. Returns the
/// component's bytes. Needs `cargo` and the wasm target.
pub fn build_component(dir: &Path) -> anyhow::Result<Vec<u8>> {
    // One build at a time in this process: cargo would serialise them
    // anyway, and the component step reads what the build wrote.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let cargo_toml = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&cargo_toml)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cargo_toml.display()))?;
    let manifest: toml::Value = toml::from_str(&text)?;
    let name = manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| anyhow::anyhow!("{} has no package.name", cargo_toml.display()))?
        .replace('-', "_");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        // The crate stays a plain library for native builds (tests, clippy);
        // only this build makes it a cdylib, the shape a wasm module needs.
        .args([
            "rustc",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--lib",
            "--crate-type",
            "cdylib",
            "--manifest-path",
        ])
        .arg(&cargo_toml)
        // A 128 KiB stack instead of Rust's default 1 MiB: every call's fresh
        // instance starts with less memory to map and reset.
        // DWARF stripped (function names stay, for backtraces): a tenth of the size.
        .args([
            "--",
            "-C",
            "link-arg=-zstack-size=131072",
            "-C",
            "strip=debuginfo",
        ])
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {cargo}: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("target may not be installed") {
            anyhow::bail!("the wasm32-unknown-unknown target is missing: run `rustup target add wasm32-unknown-unknown`");
        }
        anyhow::bail!("building {} failed:\n{stderr}", dir.display());
    }
    let module_path = target_dir(&cargo, &cargo_toml)?
        .join("wasm32-unknown-unknown/release")
        .join(format!("{name}.wasm"));
    let module = std::fs::read(&module_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", module_path.display()))?;
    componentize(&module)
}

/// Turn a core module built with the SDK into a component.
pub fn componentize(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)?
        .validate(true)
        .encode()
}

fn target_dir(cargo: &str, cargo_toml: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(cargo_toml)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(PathBuf::from(
        meta["target_directory"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no target_directory"))?,
    ))
}

/// Build the crate at `dir` and package it with its `plugin.toml`.
pub fn build(dir: &Path) -> anyhow::Result<Package> {
    let manifest_path = dir.join("plugin.toml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", manifest_path.display()))?;
    // Check the manifest before spending a build on it.
    manifest::parse(&manifest).map_err(|e| anyhow::anyhow!("{}: {e}", manifest_path.display()))?;
    let component = build_component(dir)?;
    Ok(Package::new(manifest, component)?)
}
