//! Executing plugins: one wasmtime engine, pre-linked components, and a fresh
//! instance per call under a deadline, a memory cap and a stack cap.
//!
//! **Invariants:**
//! - a call gets a new `Store` and instance from the pooling allocator and
//!   drops both when it returns: nothing a caller did is visible to the next;
//! - a call is one database transaction: it commits only if the handler
//!   returned normally (a response below 500 for requests, `ok` for events);
//!   a trap, a limit or an error result rolls back every table write and
//!   published event;
//! - the deadline covers the whole call, time in host calls included (the
//!   guest yields to the executor at every epoch tick, so the timer around
//!   the call stops guest code and host waits alike, and a spinning guest
//!   never holds a worker thread from other requests);
//! - a failing call is reported as a [`CallError`] and never takes anything
//!   else down.

use super::call::{CallState, Grants, Mode, Share, Shared};
use super::failure::{self, CallError, FailureKind};
use super::manifest::Manifest;
use super::metrics::{Observatory, PluginMetrics};
use super::tables::Tables;
use crate::kernel::Kernel;
use crate::storage::Backend;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

wasmtime::component::bindgen!({
    path: "../sdk/wit",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use exports::lifelong::plugin::handler::{Event, Request, Response};
pub use provider::exports::lifelong::plugin::indicators::Query as IndicatorQuery;

/// The `indicators` export (host API 1.4.0, world `provider`), bound on its
/// own: a component built for 1.0–1.3 does not have it and still links as
/// world `plugin`; a provider's export is looked up once, at prepare.
mod provider {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "provider",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}
pub use lifelong::plugin::types::Caller;
use provider::exports::lifelong::plugin::indicators::GuestIndices as IndicatorIndices;

/// The epoch tick: how often guest code yields to the executor.
const TICK: Duration = Duration::from_millis(2);

/// The kernel's caps; a plugin may ask for less.
#[derive(Debug, Clone)]
pub struct RuntimeLimits {
    /// Wall-clock time per call.
    pub deadline: Duration,
    /// Linear memory per instance.
    pub memory_bytes: usize,
    /// Wasm stack.
    pub stack_bytes: usize,
    /// Instances alive at once (the pool's size).
    pub max_instances: u32,
    /// Attempts of a call that hit a write conflict.
    pub max_attempts: u32,
    /// Calls holding a database transaction at once (half the PostgreSQL
    /// pool), so host imports always find a free connection.
    pub max_open_transactions: usize,
    /// Calls of one plugin running at once on a node (a manifest may ask for
    /// fewer). Further calls wait in that plugin's queue.
    pub max_concurrent_calls: usize,
    /// Requests of one plugin waiting in its queue at once; past that a
    /// request is refused as `busy` at once.
    pub max_queued_calls: usize,
    /// How long a request waits in its plugin's queue before it is refused
    /// as `busy` (HTTP 503 with Retry-After). Event deliveries, one at a
    /// time per node, take no place in the queue.
    pub queue_wait: Duration,
    /// Guest slices of one plugin executing at once (see `call::Share::cpu`).
    pub cpu_share: usize,
    /// Guest slices of all plugins executing at once on the node.
    pub node_cpu_slices: usize,
    /// The city's default quotas (`quota.rs`).
    pub quotas: super::quota::QuotaLimits,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        RuntimeLimits {
            deadline: Duration::from_secs(5),
            memory_bytes: 64 << 20,
            stack_bytes: 512 << 10,
            // Above the HTTP concurrency cap (256) plus event deliveries, so
            // the pool is never what turns a request away.
            max_instances: 1024,
            max_attempts: 3,
            max_open_transactions: 8,
            // An eighth of the HTTP concurrency cap: a plugin flooded with
            // slow calls leaves most of the node to the others.
            max_concurrent_calls: 32,
            // Running plus queued: 256, a quarter of the HTTP concurrency
            // cap (1024), so a flood of one plugin's requests leaves three
            // quarters of the node's request slots to the others, while a
            // burst such as 200 learners enrolling at once all get a place.
            max_queued_calls: 224,
            queue_wait: Duration::from_secs(5),
            // Half the cores: a plugin whose calls spin can keep at most
            // that many worker threads busy.
            cpu_share: std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            // One core fewer than the machine has: a worker thread is always
            // left for short calls and I/O.
            node_cpu_slices: std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1).max(1)),
            quotas: Default::default(),
        }
    }
}

/// The shared engine and the epoch ticker.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<CallState>>,
    limits: RuntimeLimits,
    subscriptions: Subscriptions,
    obs: Observatory,
    tx_slots: Arc<tokio::sync::Semaphore>,
    /// The node's guest slices (see `call::Shared::cpu_slots`).
    cpu_slots: Arc<tokio::sync::Semaphore>,
    /// Each plugin's fair share on this node, by plugin id (shared by its
    /// loaded versions, so an upgrade does not double a plugin's share).
    shares: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<Share>>>>,
    /// Quota counters of this node (`quota.rs`).
    quotas: super::quota::Quotas,
    _ticker: Arc<Ticker>,
}

/// Event name → subscribing plugin ids, shared by every loaded plugin.
pub type Subscriptions =
    Arc<std::sync::RwLock<std::collections::HashMap<String, std::collections::BTreeSet<String>>>>;

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .finish()
    }
}

struct Ticker(Arc<AtomicBool>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// An engine configured for fresh-instance-per-call execution.
    pub fn new(limits: RuntimeLimits) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.max_wasm_stack(limits.stack_bytes);
        // Each pool slot reserves this much address space (default ~4 GiB
        // plus guard): 1 GiB keeps a 1024-slot pool at ~1 TiB of virtual
        // space, at the cost of explicit bounds checks in guest code.
        config.memory_reservation(1 << 30);
        // Copy a plugin's small data segments into its (kept-resident) slot
        // instead of mapping a copy-on-write image per instance: mapping and
        // unmapping costs TLB shoot-downs across cores on every call.
        config.memory_init_cow(false);
        // Every trap is an explicit check in the compiled code (bounds checks
        // were already explicit with a 1 GiB reservation), never a fault on
        // a protected page. A slot then never needs its protections reset:
        // otherwise each instance `mprotect`s its heap open and the reset
        // closes it again — two syscalls and cross-core TLB shoot-downs per
        // call, which took ~20 % of all CPU under load and a third of a
        // fresh instance's time (p50 14.5 µs → 9.5 µs). Memory contents are
        // still reset between instances (below), and limits still hold.
        config.memory_guard_size(0);
        config.signals_based_traps(false);
        config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64));
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances * 2)
            .total_memories(limits.max_instances)
            .total_tables(limits.max_instances * 4)
            .max_memory_size(limits.memory_bytes)
            // Reset only the pages a call dirtied (PAGEMAP_SCAN, Linux 6.7+),
            // keeping them resident, so the next instance does not
            // page-fault its stack and heap back in.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        Plugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
        let quotas = super::quota::Quotas::new(limits.quotas.clone());
        let slots = limits.max_open_transactions.max(1);
        let node_slices = limits.node_cpu_slices.max(1);
        let stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })?;
        }
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            limits,
            subscriptions: Subscriptions::default(),
            obs: Observatory::default(),
            tx_slots: Arc::new(tokio::sync::Semaphore::new(slots)),
            cpu_slots: Arc::new(tokio::sync::Semaphore::new(node_slices)),
            shares: Arc::default(),
            quotas,
            _ticker: Arc::new(Ticker(stop)),
        })
    }

    /// The fair share of `plugin` allowing `max_calls` calls at once: the
    /// existing one, unless a version asking for a different number replaced it.
    fn share(&self, plugin: &str, max_calls: usize) -> Arc<Share> {
        let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
        match shares.get(plugin) {
            Some(s) if s.max_calls == max_calls => s.clone(),
            _ => {
                let s = Arc::new(Share::new(
                    plugin,
                    max_calls,
                    self.limits.max_queued_calls,
                    self.limits.cpu_share,
                    (self.limits.max_open_transactions / 2).max(1),
                ));
                shares.insert(plugin.to_string(), s.clone());
                s
            }
        }
    }

    /// Test hook: make the next `n` commits of `plugin`'s calls on this node
    /// fail as write conflicts (as a PostgreSQL serialization failure
    /// would), to exercise the retry path. Never used when serving.
    #[doc(hidden)]
    pub fn inject_conflicts(&self, plugin: &str, n: u32) {
        let shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = shares.get(plugin) {
            s.injected_conflicts
                .store(n, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// The kernel's caps.
    pub fn limits(&self) -> &RuntimeLimits {
        &self.limits
    }

    /// The node's quota counters and the city's default quotas.
    pub fn quotas(&self) -> &super::quota::Quotas {
        &self.quotas
    }

    /// Every plugin's counters and recent logs.
    pub fn observatory(&self) -> &Observatory {
        &self.obs
    }

    /// Make the plugin's current subscriptions those of `manifest` (the
    /// version that receives its events).
    pub fn subscribe(&self, manifest: &Manifest) {
        let mut subs = self
            .subscriptions
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for list in subs.values_mut() {
            list.remove(&manifest.id);
        }
        for event in &manifest.subscribes {
            subs.entry(event.clone())
                .or_default()
                .insert(manifest.id.clone());
        }
    }

    /// Forget a removed plugin's subscriptions.
    pub fn unsubscribe(&self, plugin: &str) {
        let mut subs = self
            .subscriptions
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for list in subs.values_mut() {
            list.remove(plugin);
        }
    }

    /// The plugins subscribed to `event`.
    pub fn subscribers_of(&self, event: &str) -> Vec<String> {
        let subs = self.subscriptions.read().unwrap_or_else(|e| e.into_inner());
        subs.get(event)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The engine (for precompiling).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile a component's bytes (at install or load; never per call).
    pub fn compile(&self, wasm: &[u8]) -> anyhow::Result<Component> {
        Ok(Component::new(&self.engine, wasm)?)
    }

    /// Compile through an on-disk cache in `dir`: the artifact is keyed by
    /// the component's SHA-256, the wasmtime version and this engine's
    /// settings, so a restart loads it in microseconds instead of compiling.
    pub fn compile_cached(&self, wasm: &[u8], dir: &std::path::Path) -> anyhow::Result<Component> {
        use sha2::{Digest, Sha256};
        use std::hash::{Hash, Hasher};
        let mut engine_key = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_key);
        let mut key = Sha256::new();
        key.update(wasm);
        key.update(env!("CARGO_PKG_VERSION").as_bytes());
        key.update(engine_key.finish().to_le_bytes());
        let path = dir.join(format!("{}.cwasm", hex::encode(key.finalize())));
        if path.exists() {
            match load_cached(&self.engine, &path) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring an unusable compiled plugin: {e}")
                }
            }
        }
        let component = self.compile(wasm)?;
        std::fs::create_dir_all(dir)?;
        // Write then rename, so a crash never leaves a half-written artifact.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, component.serialize()?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(component)
    }

    /// Link a compiled component once, so that each call only instantiates.
    pub fn prepare(
        &self,
        manifest: Manifest,
        component: &Component,
        backend: Backend,
    ) -> anyhow::Result<Loaded> {
        let pre = self.linker.instantiate_pre(component)?;
        // Present only in components built for the `provider` world (1.4+).
        let indicators = IndicatorIndices::new(&pre).ok().map(Arc::new);
        let pre = PluginPre::new(pre)?;
        let deadline = manifest
            .limits
            .deadline_ms
            .map(Duration::from_millis)
            .map_or(self.limits.deadline, |d| d.min(self.limits.deadline));
        let memory = manifest
            .limits
            .memory_mib
            .map(|m| (m as usize) << 20)
            .map_or(self.limits.memory_bytes, |m| {
                m.min(self.limits.memory_bytes)
            });
        let max_calls = manifest
            .limits
            .max_concurrent_calls
            .map_or(self.limits.max_concurrent_calls, |n| {
                (n as usize).min(self.limits.max_concurrent_calls)
            })
            .max(1);
        let share = self.share(&manifest.id, max_calls);
        let manifest = Arc::new(manifest);
        let tables = Tables::new(&manifest, backend);
        Ok(Loaded {
            metrics: self.obs.of(&manifest.id, &manifest.version),
            shared: Shared {
                manifest: manifest.clone(),
                tables: tables.clone(),
                subscriptions: self.subscriptions.clone(),
                memory,
                granted: None,
                obs: self.obs.clone(),
                tx_slots: self.tx_slots.clone(),
                share,
                cpu_slots: self.cpu_slots.clone(),
                quotas: self.quotas.clone(),
            },
            tables,
            manifest,
            pre,
            indicators,
            deadline,
            queue_wait: self.limits.queue_wait,
            max_attempts: self.limits.max_attempts.max(1),
            _ticker: self._ticker.clone(),
        })
    }
}

/// A plugin ready to be called.
#[derive(Clone)]
pub struct Loaded {
    pub manifest: Arc<Manifest>,
    pub tables: Tables,
    /// This version's counters.
    pub metrics: Arc<PluginMetrics>,
    shared: Shared,
    pre: PluginPre<CallState>,
    /// The `indicators` export, if the component has one.
    indicators: Option<Arc<IndicatorIndices>>,
    deadline: Duration,
    queue_wait: Duration,
    max_attempts: u32,
    /// Keeps the epoch ticker running while any loaded plugin exists.
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("plugin", &self.manifest.id)
            .field("version", &self.manifest.version)
            .finish()
    }
}

impl Loaded {
    /// The same plugin restricted to the capabilities in `granted` (those
    /// granted at the call's site); host calls needing any other are denied.
    pub fn with_grants(&self, granted: Grants) -> Loaded {
        let mut l = self.clone();
        l.shared.granted = Some(granted);
        l
    }

    /// Handle an HTTP request on a fresh instance, in one transaction
    /// (read-only for GET and HEAD) that commits if the status is below 500.
    pub async fn request(&self, k: &Kernel, req: Request) -> Result<Response, CallError> {
        let mode = if matches!(req.method.as_str(), "GET" | "HEAD") {
            Mode::Read
        } else {
            Mode::Write
        };
        self.count_call(k, &req.site)?;
        let _place = self.admit(self.queue_wait).await?;
        let taken = Arc::default();
        self.with_retries(&taken, || async {
            let mut state = self
                .begin(k, mode, req.site.clone(), req.request_id.clone(), &taken)
                .await?;
            state.store.data_mut().set_caller(req.caller.person_id);
            if let (Mode::Write, Some(person)) = (mode, req.caller.person_id) {
                // The caller becomes visible to this plugin at this site
                // (`persons.rs`); written with the call, never by a GET.
                super::persons::note_caller(state.store.data_mut(), person)
                    .await
                    .map_err(|e| self.kernel_error(e))?;
            }
            let resp = self.run(&mut state, Export::Request(&req)).await?;
            let Output::Response(resp) = resp else {
                unreachable!("handle-request answers with a response")
            };
            state
                .finish(resp.status < 500)
                .await
                .map_err(|e| self.kernel_error(e))?;
            Ok(resp)
        })
        .await
    }

    /// Deliver one event on a fresh instance, in one transaction that also
    /// marks the delivery done (so it commits at most once). Returns
    /// `Ok(Ok(false))` if another worker delivered it first.
    pub async fn event(&self, k: &Kernel, ev: Event) -> Result<Result<bool, String>, CallError> {
        // Deliveries take no place among the plugin's request calls: a
        // node's delivery loop runs them one at a time, and a plugin flooded
        // with requests must not hold up the loop for every other plugin.
        // They count among the calls at the event's site; a delivery past
        // that quota (or another rate quota) fails, and the delivery loop
        // puts it off to the next window without counting an attempt.
        self.count_call(k, ev.site.as_deref().unwrap_or_default())?;
        let taken = Arc::default();
        self.with_retries(&taken, || async {
            let site = ev.site.clone().unwrap_or_default();
            let mut state = self
                .begin(k, Mode::Write, site, format!("event-{}", ev.id), &taken)
                .await?;
            let due = state
                .store
                .data_mut()
                .delivery_due(ev.id)
                .await
                .map_err(|e| self.kernel_error(e))?;
            if !due {
                state
                    .finish(false)
                    .await
                    .map_err(|e| self.kernel_error(e))?;
                return Ok(Ok(false));
            }
            state.store.data_mut().mark_delivery(ev.id);
            let Output::Event(result) = self.run(&mut state, Export::Event(&ev)).await? else {
                unreachable!("handle-event answers with a result")
            };
            if result.is_err() {
                self.metrics.handler_error();
            }
            let committed = state
                .finish(result.is_ok())
                .await
                .map_err(|e| self.kernel_error(e))?;
            Ok(result.map(|()| committed))
        })
        .await
    }

    /// How long until the plugin's rate quotas start a new window.
    pub fn until_next_rate_window(&self) -> Duration {
        self.shared.quotas.until_next_window()
    }

    /// True if the component exports `indicators` (host API 1.4.0).
    pub fn provides_indicators(&self) -> bool {
        self.indicators.is_some()
    }

    /// Ask the plugin for an indicator's value, as a GET request runs: a
    /// place in the plugin's queue, a fresh instance under the deadline and
    /// memory cap, a read-only transaction, at `q.site`, with no caller
    /// (the kernel asks, not a person). `Ok(Err(message))` is the plugin's
    /// own refusal; a trap or a limit is a [`CallError`].
    pub async fn indicator(
        &self,
        k: &Kernel,
        q: IndicatorQuery,
    ) -> Result<Result<Option<f64>, String>, CallError> {
        let _place = self.admit(self.queue_wait).await?;
        let taken = Arc::default();
        self.with_retries(&taken, || async {
            let request_id = format!("indicator-{}-{}-{}", q.key, q.site, q.as_of);
            let mut state = self
                .begin(k, Mode::Read, q.site.clone(), request_id, &taken)
                .await?;
            state.store.data_mut().set_caller(None);
            let Output::Indicator(result) = self.run(&mut state, Export::Indicator(&q)).await?
            else {
                unreachable!("value answers with a result")
            };
            if result.is_err() {
                self.metrics.handler_error();
            }
            state
                .finish(result.is_ok())
                .await
                .map_err(|e| self.kernel_error(e))?;
            Ok(result)
        })
        .await
    }

    /// Count a call at `site` against the plugin's calls-per-minute quota
    /// there; past it the call fails as `quota` before it runs.
    fn count_call(&self, k: &Kernel, site: &str) -> Result<(), CallError> {
        let quotas = &self.shared.quotas;
        quotas.maybe_sync(k);
        let limits = quotas.effective(&self.manifest);
        quotas
            .take(&self.manifest.id, site, super::quota::Rate::Calls, &limits)
            .map_err(|e| {
                self.metrics.failure("quota");
                failure::quota(&self.manifest, &e)
            })
    }

    /// A place among the plugin's calls running at once, waiting at most
    /// `wait` in the plugin's FIFO queue. A request finding the queue full
    /// is refused at once, so one plugin's flood never holds more than its
    /// share of the node's request slots.
    async fn admit(&self, wait: Duration) -> Result<tokio::sync::OwnedSemaphorePermit, CallError> {
        let share = &self.shared.share;
        if let Ok(p) = share.calls.clone().try_acquire_owned() {
            return Ok(p);
        }
        let refuse = || {
            self.metrics.failure("busy");
            failure::busy(&self.manifest, share.max_calls, wait)
        };
        let Some(_queued) = share.enqueue() else {
            return Err(refuse());
        };
        match tokio::time::timeout(wait, share.calls.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(refuse()),
        }
    }

    /// Instantiate and call one export under the deadline; a trap, a limit
    /// or the deadline becomes a classified [`CallError`].
    async fn run(&self, state: &mut Running, export: Export<'_>) -> Result<Output, CallError> {
        let store = &mut state.store;
        store.data().set_phase("running guest code");
        let call = async {
            if let Export::Indicator(q) = export {
                let Some(indices) = &self.indicators else {
                    wasmtime::bail!(
                        "plugin {} {} does not export lifelong:plugin/indicators",
                        self.manifest.id,
                        self.manifest.version
                    );
                };
                let instance = self
                    .pre
                    .instance_pre()
                    .instantiate_async(&mut *store)
                    .await?;
                let guest = indices.load(&mut *store, &instance)?;
                return Ok(Output::Indicator(guest.call_value(&mut *store, q).await?));
            }
            let instance = self.pre.instantiate_async(&mut *store).await?;
            let handler = instance.lifelong_plugin_handler();
            Ok(match export {
                Export::Request(r) => {
                    Output::Response(handler.call_handle_request(&mut *store, r).await?)
                }
                Export::Event(e) => Output::Event(handler.call_handle_event(&mut *store, e).await?),
                Export::Indicator(_) => unreachable!("answered above"),
            })
        };
        let started = std::time::Instant::now();
        let out = match tokio::time::timeout(self.deadline, call).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(failure::classify(&self.manifest, state.store.data(), e)),
            Err(_) => Err(failure::deadline(&self.manifest, state.store.data())),
        };
        self.metrics.call(
            started.elapsed(),
            out.as_ref().err().map(|e| e.kind.as_str()),
            state.store.data().limits.peak,
        );
        out
    }

    fn detached_store(&self) -> Store<CallState> {
        self.store(CallState::detached(&self.shared))
    }

    /// A store for one call: its limiter, and guest code that yields to the
    /// executor at every epoch tick. Without the yield a guest spinning in a
    /// loop would hold a tokio worker thread until its deadline — with two
    /// workers, two such calls would stall every other request. The
    /// deadline itself is the timer around the call (`run`), which can fire
    /// because the guest yields.
    fn store(&self, state: CallState) -> Store<CallState> {
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            // Guest code has run through a tick: give back this plugin's
            // guest slice, go to the back of the executor's queue, and wait
            // for a slice again (FIFO among this plugin's busy calls).
            // The plugin's slice first, so each plugin has at most
            // `cpu_share` calls queued for the node's slices.
            let state = ctx.data();
            let (cell, own, node, phase) = (
                state.cpu.clone(),
                state.share.cpu.clone(),
                state.cpu_slots.clone(),
                state.phase.clone(),
            );
            Ok(wasmtime::UpdateDeadline::YieldCustom(
                1,
                Box::pin(async move {
                    let held = cell.lock().unwrap_or_else(|e| e.into_inner()).take();
                    drop(held);
                    *phase.lock().unwrap_or_else(|e| e.into_inner()) = "waiting for a guest slice";
                    tokio::task::yield_now().await;
                    let Ok(own) = own.acquire_owned().await else {
                        return;
                    };
                    let Ok(node) = node.acquire_owned().await else {
                        return;
                    };
                    *cell.lock().unwrap_or_else(|e| e.into_inner()) = Some([own, node]);
                    *phase.lock().unwrap_or_else(|e| e.into_inner()) = "running guest code";
                }),
            ))
        });
        store
    }

    /// Benchmark support: a fresh instance and one `handle-request` call
    /// with no database transaction (table calls fail). Not for serving.
    #[doc(hidden)]
    pub async fn bench_fresh_call(&self, req: &Request) -> wasmtime::Result<Response> {
        let mut store = self.detached_store();
        let instance = self.pre.instantiate_async(&mut store).await?;
        instance
            .lifelong_plugin_handler()
            .call_handle_request(&mut store, req)
            .await
    }

    /// Benchmark support: one live instance to call repeatedly (what the
    /// kernel never does when serving). Not for serving.
    #[doc(hidden)]
    pub async fn bench_live(&self) -> wasmtime::Result<LiveInstance> {
        let mut store = self.detached_store();
        let instance = self.pre.instantiate_async(&mut store).await?;
        Ok(LiveInstance { store, instance })
    }

    /// Re-run a call that hit a write conflict, each time on a fresh
    /// instance. `taken` holds the rate counts (events, log lines) of the
    /// attempt running (`begin` hands it to the call); a re-run attempt's
    /// are given back first, as nothing it did was kept, so a retried call
    /// counts once.
    async fn with_retries<T, F, Fut>(
        &self,
        taken: &Arc<super::quota::Taken>,
        mut f: F,
    ) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        let mut attempt = 1;
        loop {
            match f().await {
                Err(e)
                    if e.kind == FailureKind::Kernel
                        && e.message.contains(super::call::CONFLICT) =>
                {
                    if attempt >= self.max_attempts {
                        self.metrics.failure("conflict");
                        return Err(CallError {
                            kind: FailureKind::Conflict,
                            message: format!(
                                "the call lost a write race on each of its {attempt} attempts, and nothing it wrote was kept: {}",
                                e.message
                            ),
                            ..e
                        });
                    }
                    attempt += 1;
                    self.metrics.retry();
                    self.shared.quotas.refund(&self.manifest.id, taken);
                    // Jittered exponential backoff: 5-10 ms, 10-20 ms, …
                    let base = 5u64 << (attempt - 2).min(6);
                    let jitter = rand::random::<u64>() % (base + 1);
                    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                }
                other => return other,
            }
        }
    }

    async fn begin(
        &self,
        k: &Kernel,
        mode: Mode,
        site: String,
        request_id: String,
        taken: &Arc<super::quota::Taken>,
    ) -> Result<Running, CallError> {
        let mut state = CallState::begin(k, &self.shared, mode, site, request_id)
            .await
            .map_err(|e| self.kernel_error(e))?;
        state.taken = taken.clone();
        Ok(Running {
            store: self.store(state),
        })
    }

    fn kernel_error(&self, e: impl std::fmt::Display) -> CallError {
        failure::kernel_error(&self.manifest, e)
    }
}

/// Load a compiled component from the kernel's cache.
///
/// SAFETY: `Component::deserialize_file` trusts the file to be what
/// `Component::serialize` wrote. Only the kernel writes this directory (under
/// its data directory, named by the SHA-256 of the source component plus the
/// wasmtime version and engine settings, written atomically by rename), and
/// wasmtime itself refuses artifacts from another version or configuration.
/// Anyone able to replace these files can already replace the kernel binary.
#[allow(unsafe_code)]
fn load_cached(engine: &Engine, path: &std::path::Path) -> wasmtime::Result<Component> {
    unsafe { Component::deserialize_file(engine, path) }
}

/// A live instance kept for benchmarks.
#[doc(hidden)]
pub struct LiveInstance {
    store: Store<CallState>,
    instance: Plugin,
}

impl LiveInstance {
    /// Call `handle-request` on the live instance.
    pub async fn call(&mut self, req: &Request) -> wasmtime::Result<Response> {
        self.store.set_epoch_deadline(1_000_000);
        self.instance
            .lifelong_plugin_handler()
            .call_handle_request(&mut self.store, req)
            .await
    }
}

/// Which export a call runs, and what it answered.
enum Export<'a> {
    Request(&'a Request),
    Event(&'a Event),
    Indicator(&'a IndicatorQuery),
}

enum Output {
    Response(Response),
    Event(Result<(), String>),
    Indicator(Result<Option<f64>, String>),
}

/// A call in progress.
struct Running {
    store: Store<CallState>,
}

impl Running {
    /// Commit or roll back; true if the call's writes were committed.
    async fn finish(&mut self, commit: bool) -> Result<bool, sqlx::Error> {
        self.store.data_mut().finish(commit).await
    }
}
