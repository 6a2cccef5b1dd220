//! The plugin test harness: a plugin author's `cargo test` builds their
//! plugin to a component and runs it against a real in-process kernel on a
//! temporary database.
//!
//! ```ignore
//! #[tokio::test]
//! async fn greets() {
//!     let k = lifelong_harness::TestKernel::sqlite().await;
//!     let hello = k.load(env!("CARGO_MANIFEST_DIR")).await;
//!     let (status, body) = hello.post("/greetings/ann", None, &k.anonymous()).await.unwrap();
//!     assert_eq!(status, 200);
//! }
//! ```

use kernel::plugins::runtime::{Caller, Request};
use kernel::plugins::{CallError, Loaded, Runtime, RuntimeLimits};
use kernel::storage::{Db, ScratchDb};
use kernel::{crypto::PiiKeys, Kernel};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub use kernel;

/// Build the plugin crate at `dir` for `wasm32-unknown-unknown` (release,
/// as a `cdylib`) and turn the module into a component. Returns the
/// component's bytes.
pub fn build(dir: impl AsRef<Path>) -> anyhow::Result<Vec<u8>> {
    // One build at a time: cargo would serialise them anyway, and the
    // component step reads what the build wrote.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = dir.as_ref();
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml"))?)?;
    let name = manifest["package"]["name"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("{} has no package.name", dir.display()))?
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
        .arg(dir.join("Cargo.toml"))
        // A 128 KiB stack instead of Rust's default 1 MiB: every call's fresh
        // instance starts with less memory to map and reset.
        .args(["--", "-C", "link-arg=-zstack-size=131072"])
        .output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("target may not be installed") {
            anyhow::bail!("the wasm32-unknown-unknown target is missing: run `rustup target add wasm32-unknown-unknown`");
        }
        anyhow::bail!("building {} failed:\n{stderr}", dir.display());
    }
    let target = target_dir(&cargo, dir)?;
    let module = std::fs::read(
        target
            .join("wasm32-unknown-unknown/release")
            .join(format!("{name}.wasm")),
    )?;
    componentize(&module)
}

/// Turn a core module built with the SDK into a component.
pub fn componentize(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)?
        .validate(true)
        .encode()
}

fn target_dir(cargo: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(dir.join("Cargo.toml"))
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

/// A kernel on a fresh temporary database, with a plugin runtime.
pub struct TestKernel {
    /// The kernel (for seeding data directly).
    pub kernel: Kernel,
    /// The plugin runtime.
    pub runtime: Runtime,
    url: String,
    pg: Option<ScratchDb>,
    /// Attempts before a failing delivery is parked (default 5).
    pub max_attempts: i64,
    /// Where compiled components are cached (next to a SQLite test database).
    cache: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl TestKernel {
    /// On a temporary SQLite file.
    pub async fn sqlite() -> TestKernel {
        TestKernel::sqlite_with(RuntimeLimits::default()).await
    }

    /// On a temporary SQLite file, with these runtime limits.
    pub async fn sqlite_with(limits: RuntimeLimits) -> TestKernel {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("plugin-test.db").display());
        TestKernel::open(&url, limits, None, Some(dir)).await
    }

    /// On a fresh PostgreSQL database at `LIFELONG_TEST_PG` (default
    /// `postgres://postgres@127.0.0.1:5432`), dropped by [`TestKernel::cleanup`].
    pub async fn postgres() -> TestKernel {
        let scratch = ScratchDb::create()
            .await
            .expect("PostgreSQL must run at LIFELONG_TEST_PG");
        TestKernel::open(
            &scratch.url(),
            RuntimeLimits::default(),
            Some(scratch),
            None,
        )
        .await
    }

    async fn open(
        url: &str,
        limits: RuntimeLimits,
        pg: Option<ScratchDb>,
        dir: Option<tempfile::TempDir>,
    ) -> TestKernel {
        let db = Db::open(url)
            .await
            .expect("open and migrate the test database");
        let kernel = Kernel {
            db,
            pii: PiiKeys::from_hex(&"42".repeat(32)).expect("key"),
            token_ttl_secs: 3600,
        };
        let runtime = Runtime::new(limits).expect("plugin runtime");
        TestKernel {
            kernel,
            runtime,
            url: url.to_string(),
            pg,
            max_attempts: 5,
            cache: dir.as_ref().map(|d| d.path().join("compiled")),
            _dir: dir,
        }
    }

    /// Build (if needed) and load the plugin crate at `dir`.
    pub async fn load(&self, dir: impl AsRef<Path>) -> TestPlugin {
        let dir = dir.as_ref().to_path_buf();
        let wasm = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || build(&dir)
        })
        .await
        .expect("build thread")
        .unwrap_or_else(|e| panic!("{e:#}"));
        let manifest = std::fs::read_to_string(dir.join("plugin.toml"))
            .expect("plugin.toml next to Cargo.toml");
        let loaded = kernel::plugins::load(
            &self.kernel,
            &self.runtime,
            &manifest,
            &wasm,
            self.cache.as_deref(),
        )
        .await
        .unwrap_or_else(|e| panic!("loading {}: {e:#}", dir.display()));
        TestPlugin {
            loaded,
            kernel: self.kernel.clone(),
            site: String::new(),
        }
    }

    /// Stop this kernel (its connections and runtime) and start a new one on
    /// the same database, as a process restart would. Plugins must be loaded again.
    pub async fn restart(self) -> TestKernel {
        self.kernel.db.close().await;
        let limits = RuntimeLimits::default();
        let TestKernel { url, pg, _dir, .. } = self;
        TestKernel::open(&url, limits, pg, _dir).await
    }

    /// Deliver every due event to the plugins in `subscribers` (one pass).
    pub async fn deliver(&self, subscribers: &[&TestPlugin]) -> kernel::plugins::events::Pass {
        kernel::plugins::events::fan_out(&self.kernel, |e| self.runtime.subscribers_of(e))
            .await
            .expect("fan-out pass");
        kernel::plugins::events::deliver_due(
            &self.kernel,
            |id| {
                subscribers
                    .iter()
                    .find(|p| p.loaded.manifest.id == id)
                    .map(|p| p.loaded.clone())
            },
            self.max_attempts,
        )
        .await
        .expect("delivery pass")
    }

    /// Where this kernel caches compiled components (SQLite test kernels only).
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache.as_deref()
    }

    /// A caller with no person and no roles.
    pub fn anonymous(&self) -> Caller {
        Caller {
            person_id: None,
            roles: vec![],
        }
    }

    /// A caller who is person `id` with `roles` as (role, site code).
    pub fn person(&self, id: i64, roles: &[(&str, &str)]) -> Caller {
        Caller {
            person_id: Some(id),
            roles: roles
                .iter()
                .map(|(r, s)| (r.to_string(), s.to_string()))
                .collect(),
        }
    }

    /// Drop the PostgreSQL database, if any.
    pub async fn cleanup(&self) {
        self.kernel.db.close().await;
        if let Some(scratch) = &self.pg {
            scratch.drop_database().await;
        }
    }
}

/// A loaded plugin under test.
#[derive(Clone)]
pub struct TestPlugin {
    /// The runtime's handle (for events and direct calls).
    pub loaded: Loaded,
    kernel: Kernel,
    site: String,
}

impl TestPlugin {
    /// The same plugin, called in the context of site `code`.
    pub fn at(&self, code: &str) -> TestPlugin {
        TestPlugin {
            site: code.to_string(),
            ..self.clone()
        }
    }

    /// Call a route; returns status and body (JSON, or a JSON string if not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        caller: &Caller,
    ) -> Result<(u16, serde_json::Value), CallError> {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let req = Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            caller: caller.clone(),
            site: self.site.clone(),
            request_id: format!("test-{}", rand::random::<u32>()),
        };
        let resp = self.loaded.request(&self.kernel, req).await?;
        let value = serde_json::from_slice(&resp.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&resp.body).into_owned())
        });
        Ok((resp.status, value))
    }

    /// GET.
    pub async fn get(
        &self,
        path: &str,
        caller: &Caller,
    ) -> Result<(u16, serde_json::Value), CallError> {
        self.call("GET", path, None, caller).await
    }

    /// POST with an optional JSON body.
    pub async fn post(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
        caller: &Caller,
    ) -> Result<(u16, serde_json::Value), CallError> {
        self.call("POST", path, body, caller).await
    }
}
