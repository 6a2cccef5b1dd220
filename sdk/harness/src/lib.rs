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

use kernel::plugins::package::Package;
use kernel::plugins::registry::{Refusal, Registry};
use kernel::plugins::runtime::{Caller, Request};
use kernel::plugins::{CallError, Loaded, Runtime, RuntimeLimits};
use kernel::storage::{Db, ScratchDb};
use kernel::{crypto::PiiKeys, Kernel};
use std::path::{Path, PathBuf};

pub use kernel;

/// Build the plugin crate at `dir` for `wasm32-unknown-unknown` (release,
/// as a `cdylib`) and turn the module into a component. Returns the
/// component's bytes. The same build as `lifelong plugin build`.
pub fn build(dir: impl AsRef<Path>) -> anyhow::Result<Vec<u8>> {
    kernel::plugins::build::build_component(dir.as_ref())
}

/// Build the plugin crate at `dir` into an (unsigned) package with its
/// `plugin.toml`, as `lifelong plugin build` does.
pub fn package(dir: impl AsRef<Path>) -> anyhow::Result<Package> {
    kernel::plugins::build::build(dir.as_ref())
}

pub use kernel::plugins::build::componentize;

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
    /// The plugin registry (in development mode: unsigned packages pass).
    pub registry: Registry,
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
        TestKernel::postgres_with(RuntimeLimits::default()).await
    }

    /// On a fresh PostgreSQL database, with these runtime limits.
    pub async fn postgres_with(limits: RuntimeLimits) -> TestKernel {
        let scratch = ScratchDb::create()
            .await
            .expect("PostgreSQL must run at LIFELONG_TEST_PG");
        TestKernel::open(&scratch.url(), limits, Some(scratch), None).await
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
            outcome_maxima: Default::default(),
        };
        let runtime = Runtime::new(limits).expect("plugin runtime");
        let cache = dir.as_ref().map(|d| d.path().join("compiled"));
        let registry = Registry::new(kernel.clone(), runtime.clone(), cache.clone(), true);
        registry.refresh().await.expect("registry view");
        TestKernel {
            kernel,
            runtime,
            url: url.to_string(),
            pg,
            max_attempts: 5,
            cache,
            registry,
            _dir: dir,
        }
    }

    /// Build the plugin crate at `dir` into a package (unsigned).
    pub async fn package(&self, dir: impl AsRef<Path>) -> Package {
        let dir = dir.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || package(&dir))
            .await
            .expect("build thread")
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Install a package through the registry as the system operator, and
    /// return a handle whose calls go through the registry's routing (the
    /// plugin must be enabled at the call's site, and runs with the
    /// capabilities granted there).
    pub async fn install(&self, pkg: &Package) -> TestPlugin {
        let system = kernel::authz::Actor::System("test");
        self.registry
            .install(&system, &pkg.encode())
            .await
            .unwrap_or_else(|e| panic!("installing {}: {e}", pkg.manifest.id));
        self.routed(&pkg.manifest.id)
    }

    /// A handle on installed plugin `id` whose calls go through the registry.
    pub fn routed(&self, id: &str) -> TestPlugin {
        // The active version as the handle's `loaded`; calls still go
        // through routing.
        let loaded = self
            .registry
            .route_any(id)
            .unwrap_or_else(|| panic!("plugin {id} is not installed"));
        TestPlugin {
            loaded,
            kernel: self.kernel.clone(),
            site: String::new(),
            registry: Some(self.registry.clone()),
        }
    }

    /// Grant every capability `id` asks for at site `code`, then enable it there.
    pub async fn enable(&self, id: &str, code: &str) {
        let system = kernel::authz::Actor::System("test");
        let caps = self
            .registry
            .manifest(id)
            .map(|m| m.capabilities.clone())
            .unwrap_or_default();
        if !caps.is_empty() {
            self.registry
                .grant(&system, id, code, &caps, true)
                .await
                .unwrap_or_else(|e| panic!("granting {id} at {code}: {e}"));
        }
        self.registry
            .set_enabled(&system, id, code, true)
            .await
            .unwrap_or_else(|e| panic!("enabling {id} at {code}: {e}"));
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
            registry: None,
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
            |id, site| match subscribers.iter().find(|p| p.loaded.manifest.id == id) {
                Some(p) if p.registry.is_some() => self.registry.route_event(id, site),
                Some(p) => kernel::plugins::events::Route::Deliver(Box::new(p.loaded.clone())),
                None => kernel::plugins::events::Route::Wait,
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

/// A plugin under test: loaded directly ([`TestKernel::load`], every
/// declared capability, no enablement) or installed through the registry
/// ([`TestKernel::install`], routed per site like a served call).
#[derive(Clone)]
pub struct TestPlugin {
    /// The runtime's handle (for events and direct calls).
    pub loaded: Loaded,
    kernel: Kernel,
    site: String,
    registry: Option<Registry>,
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
        let loaded = match &self.registry {
            None => self.loaded.clone(),
            Some(r) => {
                let path = match self.site.as_str() {
                    "" => None,
                    code => kernel::sites::fetch_by_code(self.kernel.db.reader(), code)
                        .await
                        .ok()
                        .flatten()
                        .map(|s| s.path),
                };
                match r.route(&self.loaded.manifest.id, path.as_deref()) {
                    Ok(l) => l,
                    Err(refusal) => {
                        return Ok((
                            match refusal {
                                Refusal::NotGranted(_) => 403,
                                _ => 404,
                            },
                            serde_json::json!({ "refused": format!("{refusal:?}") }),
                        ))
                    }
                }
            }
        };
        let resp = loaded.request(&self.kernel, req).await?;
        let value = serde_json::from_slice(&resp.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&resp.body).into_owned())
        });
        Ok((resp.status, value))
    }

    /// Ask for indicator `key` (as the manifest declares it) for the
    /// subtree of this handle's site as of `as_of` (`YYYY-MM-DD`), as the
    /// kernel asks: for an installed plugin through
    /// [`Registry::indicator_value`] (routing, grants, `Ok(None)` where the
    /// plugin is not enabled); for a loaded one on its export directly. Any
    /// failure — the plugin's error, a trap, a limit — is `Err(message)`.
    pub async fn indicator(&self, key: &str, as_of: &str) -> Result<Option<f64>, String> {
        match &self.registry {
            Some(r) => r
                .indicator_value(&self.loaded.manifest.id, key, &self.site, as_of)
                .await
                .map_err(|e| e.to_string()),
            None => self
                .loaded
                .indicator(
                    &self.kernel,
                    kernel::plugins::runtime::IndicatorQuery {
                        key: key.to_string(),
                        site: self.site.clone(),
                        as_of: as_of.to_string(),
                    },
                )
                .await
                .map_err(|e| e.to_string())?,
        }
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
