//! One plugin call's state, owned by its `Store`: its transaction (opened
//! lazily for reads, committed or rolled back once), its limits, and what
//! the runtime needs to report a failure.

use super::manifest::Manifest;
use super::runtime::lifelong::plugin::types;
use super::tables::{TableError, Tables};
use crate::kernel::Kernel;
use crate::storage::{now_micros, Tx};
use std::sync::Arc;

/// Marker in a kernel failure's message that makes the runtime retry the call.
pub const CONFLICT: &str = "write conflict";

/// Whether a call may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Read,
    Write,
}

/// One call's state, owned by its `Store`.
pub struct CallState {
    pub(super) limits: Limiter,
    pub(super) panic: Option<String>,
    /// Set when the kernel failed under the guest; the call is reported as a kernel failure.
    pub(super) kernel_failure: Option<String>,
    pub(super) kernel: Option<Kernel>,
    pub(super) tx: Option<Tx>,
    /// Set once the call has committed or rolled back.
    pub(super) ended: bool,
    pub(super) mode: Mode,
    pub(super) manifest: Arc<Manifest>,
    pub(super) tables: Tables,
    pub(super) subscriptions: super::runtime::Subscriptions,
    /// The delivery this call completes (event id), marked in its transaction.
    pub(super) delivery: Option<i64>,
    /// The person the call is made for, if any.
    pub(super) caller: Option<i64>,
    pub(super) log_lines: u32,
    pub(super) site: String,
    pub(super) request_id: String,
    /// Capabilities granted at the call's site (None: every declared one).
    pub(super) granted: Option<Grants>,
    /// Where the call's log lines are kept for admins.
    pub(super) obs: super::metrics::Observatory,
    /// Held while the call holds a database transaction (see `Shared::tx_slots`).
    pub(super) slot: Option<[tokio::sync::OwnedSemaphorePermit; 2]>,
    tx_slots: Arc<tokio::sync::Semaphore>,
    /// This plugin's fair share on this node.
    pub(super) share: Arc<Share>,
    /// The guest slice this call holds (its plugin's and the node's), once
    /// it has run past one epoch tick (see [`Share::cpu`]); shared with the
    /// yield future that replaces it.
    pub(super) cpu: Arc<std::sync::Mutex<Option<[tokio::sync::OwnedSemaphorePermit; 2]>>>,
    /// What the call is doing or waiting for, named in a deadline failure.
    pub(super) phase: Arc<std::sync::Mutex<&'static str>>,
    /// The node's guest slices (see `Shared::cpu_slots`).
    pub(super) cpu_slots: Arc<tokio::sync::Semaphore>,
    /// The node's quota counters, and the quotas in force for this call.
    pub(super) quotas: super::quota::Quotas,
    pub(super) quota: super::quota::Effective,
    /// The call's stored rows and bytes, once it has written (`quota.rs`).
    pub(super) usage: Option<super::quota::CallUsage>,
    /// Set when the call would pass a quota; the call fails as `quota`.
    pub(super) quota_exceeded: Option<super::quota::Exceeded>,
    /// The rate counts this attempt took, given back if it is re-run after
    /// a lost write race (`Loaded::with_retries`).
    pub(super) taken: Arc<super::quota::Taken>,
}

/// What every loaded version of one plugin shares on a node: its fair share
/// of the node (calls at once, guest CPU, transaction slots) and the key of
/// its write lock.
#[derive(Debug)]
pub struct Share {
    /// Calls of this plugin running at once; more wait in this queue (FIFO)
    /// for at most the runtime's `queue_wait`, then are refused as `busy`.
    pub(super) calls: Arc<tokio::sync::Semaphore>,
    pub(super) max_calls: usize,
    /// Requests waiting for a place now, and how many may.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    max_queued: usize,
    /// Guest slices of this plugin executing at once. A call whose guest
    /// code runs past an epoch tick gives its slice back at every tick,
    /// yields to the executor and queues for a slice again, so a plugin
    /// spinning in many calls occupies at most this many worker threads,
    /// and the executor's run queue holds at most this many of its calls:
    /// other plugins' calls are never queued behind a crowd of spinners.
    /// Calls that finish within a tick (nearly all) never touch it.
    pub(super) cpu: Arc<tokio::sync::Semaphore>,
    /// This plugin's share of the transaction slots (half of them), so one
    /// plugin's slow calls cannot take every slot from the others.
    pub(super) tx: Arc<tokio::sync::Semaphore>,
    /// PostgreSQL advisory-lock key of this plugin's write lock.
    pub(super) lock_key: i64,
    /// Test hook: the next this-many commits of this plugin fail as write
    /// conflicts (see `Runtime::inject_conflicts`).
    pub(super) injected_conflicts: std::sync::atomic::AtomicU32,
}

impl Share {
    pub(super) fn new(
        plugin: &str,
        max_calls: usize,
        max_queued: usize,
        cpu: usize,
        tx: usize,
    ) -> Share {
        Share {
            calls: Arc::new(tokio::sync::Semaphore::new(max_calls.max(1))),
            max_calls: max_calls.max(1),
            waiting: Default::default(),
            max_queued,
            cpu: Arc::new(tokio::sync::Semaphore::new(cpu.max(1))),
            tx: Arc::new(tokio::sync::Semaphore::new(tx.max(1))),
            lock_key: write_lock_key(plugin),
            injected_conflicts: Default::default(),
        }
    }

    /// A place in the queue (given back when dropped), if it is not full.
    pub(super) fn enqueue(&self) -> Option<Queued> {
        use std::sync::atomic::Ordering::SeqCst;
        self.waiting
            .fetch_update(SeqCst, SeqCst, |n| (n < self.max_queued).then_some(n + 1))
            .ok()
            .map(|_| Queued(self.waiting.clone()))
    }
}

/// A request's place in its plugin's queue.
pub(super) struct Queued(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A set of granted capabilities.
pub type Grants = Arc<std::collections::BTreeSet<String>>;

/// What every call of one loaded plugin version shares.
#[derive(Clone)]
pub(super) struct Shared {
    pub manifest: Arc<Manifest>,
    pub tables: Tables,
    pub subscriptions: super::runtime::Subscriptions,
    pub memory: usize,
    pub granted: Option<Grants>,
    pub obs: super::metrics::Observatory,
    /// Calls holding a transaction at once. Host imports read through the
    /// pool beside the call's own transaction, so if every pooled
    /// connection were held by a call's transaction, their reads would wait
    /// on each other until the deadlines fired: the slots keep connections
    /// free for them.
    pub tx_slots: Arc<tokio::sync::Semaphore>,
    /// The plugin's fair share on this node (shared by its versions).
    pub share: Arc<Share>,
    /// Guest slices of the whole node: one fewer than the cores (at least
    /// one), so guest code that runs past a tick never occupies every
    /// worker thread, whatever the number of plugins doing it.
    pub cpu_slots: Arc<tokio::sync::Semaphore>,
    /// The node's quota counters.
    pub quotas: super::quota::Quotas,
}

/// The PostgreSQL advisory-lock key of `plugin`'s write lock.
pub(super) fn write_lock_key(plugin: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("lifelong plugin write lock\0{plugin}").as_bytes());
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(key)
}

/// Begin a transaction on a task of its own. `BEGIN` is not cancel-safe in
/// sqlx: a call dropped at its deadline while `BEGIN` was in flight handed
/// the connection back to the pool inside a transaction nobody would end
/// (on a writer, holding the plugin's write lock), and the next user of the
/// connection found "a transaction in progress". On its own task the
/// `BEGIN` always completes, and a transaction nobody awaits any more is
/// dropped — rolled back — there.
///
/// A writing call on PostgreSQL then takes its plugin's write lock,
/// `pg_advisory_xact_lock(lock_key)`, on the same task: the plugin's writing
/// calls run one at a time across every node, as they do on SQLite's one
/// writer, so read-then-write code in a plugin is correct at READ COMMITTED
/// (each statement after the lock sees every earlier call's commit). The
/// lock is held to commit or rollback.
async fn begin_detached(k: &Kernel, mode: Mode, lock_key: i64) -> Result<Tx, sqlx::Error> {
    let db = k.db.clone();
    let task = tokio::spawn(async move {
        match mode {
            Mode::Read => db.begin_read().await,
            Mode::Write => {
                let mut tx = db.begin().await?;
                if db.backend() == crate::storage::Backend::Postgres {
                    sqlx::query(
                        "SELECT CAST(1 AS BIGINT) FROM (SELECT pg_advisory_xact_lock($1)) AS l",
                    )
                    .bind(lock_key)
                    .fetch_one(&mut *tx)
                    .await?;
                }
                Ok(tx)
            }
        }
    });
    task.await
        .map_err(|e| sqlx::Error::Protocol(format!("beginning a transaction: {e}")))?
}

/// Wait for this plugin's share, then for a slot of the whole runtime.
async fn acquire(
    plugin: &Arc<tokio::sync::Semaphore>,
    all: &Arc<tokio::sync::Semaphore>,
) -> Option<[tokio::sync::OwnedSemaphorePermit; 2]> {
    let own = plugin.clone().acquire_owned().await.ok()?;
    let shared = all.clone().acquire_owned().await.ok()?;
    Some([own, shared])
}

/// The per-call memory and table caps; remembers a refused growth and the
/// most memory the call asked for.
pub struct Limiter {
    pub(super) memory: usize,
    pub(super) denied: bool,
    pub(super) peak: usize,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.peak = self.peak.max(desired);
        if desired > self.memory {
            self.denied = true;
            wasmtime::bail!("memory cap of {} bytes reached", self.memory);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        8
    }

    fn memories(&self) -> usize {
        2
    }

    fn tables(&self) -> usize {
        8
    }
}

impl CallState {
    pub(super) async fn begin(
        k: &Kernel,
        shared: &Shared,
        mode: Mode,
        site: String,
        request_id: String,
    ) -> Result<CallState, sqlx::Error> {
        // A writing call takes its transaction (on SQLite, the one writer)
        // before its deadline starts; a read-only call opens its snapshot
        // only if it reads a table, so handlers that do not touch data cost
        // no database round trip.
        let mut state = CallState::detached(shared);
        let tx = match mode {
            Mode::Read => None,
            Mode::Write => {
                state.slot = acquire(&shared.share.tx, &shared.tx_slots).await;
                // The plugin's write lock (see `begin_detached`).
                let tx = begin_detached(k, Mode::Write, shared.share.lock_key).await?;
                Some(tx)
            }
        };
        state.kernel = Some(k.clone());
        state.tx = tx;
        state.mode = mode;
        state.site = site;
        state.request_id = request_id;
        Ok(state)
    }

    /// State with no transaction (benchmarks of bare instantiation; any
    /// table call fails).
    pub(super) fn detached(shared: &Shared) -> CallState {
        CallState {
            limits: Limiter {
                memory: shared.memory,
                denied: false,
                peak: 0,
            },
            panic: None,
            kernel_failure: None,
            kernel: None,
            tx: None,
            ended: false,
            mode: Mode::Read,
            manifest: shared.manifest.clone(),
            tables: shared.tables.clone(),
            subscriptions: shared.subscriptions.clone(),
            delivery: None,
            caller: None,
            log_lines: 0,
            site: String::new(),
            request_id: String::new(),
            granted: shared.granted.clone(),
            obs: shared.obs.clone(),
            slot: None,
            tx_slots: shared.tx_slots.clone(),
            share: shared.share.clone(),
            cpu: Default::default(),
            phase: Arc::new(std::sync::Mutex::new("starting")),
            cpu_slots: shared.cpu_slots.clone(),
            quotas: shared.quotas.clone(),
            quota: shared.quotas.effective(&shared.manifest),
            usage: None,
            quota_exceeded: None,
            taken: Default::default(),
        }
    }

    /// The person the call is made for.
    pub(super) fn set_caller(&mut self, person: Option<i64>) {
        self.caller = person;
    }

    /// Whether delivery of event `id` to this plugin is still to be done, as
    /// this call's transaction sees it. Asked after the plugin's write lock
    /// is held, so a delivery another node completed meanwhile is not run
    /// a second time only to be rolled back.
    pub(super) async fn delivery_due(&mut self, id: i64) -> Result<bool, sqlx::Error> {
        let Some(tx) = self.tx.as_mut() else {
            return Ok(false);
        };
        let row: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT delivered_at FROM plugin_deliveries WHERE event_id = $1 AND subscriber = $2 AND dead_at IS NULL",
        )
        .bind(id)
        .bind(&self.manifest.id)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(matches!(row, Some((None,))))
    }

    /// Make this call complete delivery of event `id` to this plugin.
    pub(super) fn mark_delivery(&mut self, id: i64) {
        self.delivery = Some(id);
    }

    /// Commit (or roll back) the call's transaction; true if it committed.
    /// A call completing an event delivery marks it done in the same
    /// transaction, and rolls back if another worker marked it first.
    pub(super) async fn finish(&mut self, commit: bool) -> Result<bool, sqlx::Error> {
        self.ended = true;
        // The commit waits on the database: not while holding a slice.
        self.release_cpu();
        let _slot = self.slot.take();
        let Some(mut tx) = self.tx.take() else {
            // A read-only call that never read a table: nothing to end.
            return Ok(commit && self.mode == Mode::Read && self.delivery.is_none());
        };
        if self.mode == Mode::Read {
            // A read snapshot has nothing to undo: dropping it queues the
            // ROLLBACK on its connection (run before the connection's next
            // use) instead of making the response wait for a round trip.
            drop(tx);
            return Ok(false);
        }
        if !commit {
            tx.rollback().await?;
            return Ok(false);
        }
        if self
            .share
            .injected_conflicts
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
        {
            tx.rollback().await?;
            return Err(sqlx::Error::Protocol(format!(
                "{CONFLICT}: could not serialize access (injected by a test)"
            )));
        }
        if let Some(event) = self.delivery {
            let marked = sqlx::query(
                "UPDATE plugin_deliveries SET delivered_at = $1 \
                 WHERE event_id = $2 AND subscriber = $3 AND delivered_at IS NULL",
            )
            .bind(now_micros())
            .bind(event)
            .bind(&self.manifest.id)
            .execute(&mut *tx)
            .await?;
            if marked.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        let mut committed_usage = None;
        if let Some(u) = &self.usage {
            match u
                .flush(&mut tx, &self.manifest.id, &self.site, &self.quota)
                .await?
            {
                Ok(usage) => committed_usage = usage,
                Err(e) => {
                    // Past a quota after all (another node wrote since this
                    // node last saw the usage): nothing is kept.
                    tx.rollback().await?;
                    self.quotas.refused(&self.manifest.id, e.quota);
                    let m = e.to_string();
                    self.quota_exceeded = Some(e);
                    return Err(sqlx::Error::Protocol(m));
                }
            }
        }
        tx.commit().await?;
        if let Some((total, at_site)) = committed_usage {
            self.quotas
                .remember(&self.manifest.id, &self.site, total, at_site);
        }
        Ok(true)
    }

    pub(super) async fn tx(&mut self) -> wasmtime::Result<&mut Tx> {
        // Every statement of the call may wait (on a row or table lock, the
        // write lock, a slot): never while holding a guest slice.
        self.release_cpu();
        if self.tx.is_none() {
            self.set_phase("waiting for a transaction slot");
            let k = match (&self.kernel, self.ended) {
                (Some(k), false) => k,
                _ => wasmtime::bail!("the call's transaction has ended"),
            };
            if self.slot.is_none() {
                self.slot = acquire(&self.share.tx, &self.tx_slots).await;
            }
            self.set_phase("beginning a read snapshot");
            match begin_detached(k, Mode::Read, 0).await {
                Ok(tx) => self.tx = Some(tx),
                Err(e) => {
                    self.kernel_failure = Some(e.to_string());
                    wasmtime::bail!("{e}")
                }
            }
        }
        self.set_phase("a database statement");
        self.tx
            .as_mut()
            .ok_or_else(|| wasmtime::format_err!("the call's transaction has ended"))
    }

    pub(super) fn writable(&self, what: &str) -> Result<(), types::Error> {
        match self.mode {
            Mode::Write => Ok(()),
            Mode::Read => Err(types::Error::ReadOnly(format!(
                "{what} needs a writing call; GET and HEAD requests are read-only"
            ))),
        }
    }

    /// Turn a table error into the plugin-facing error, or trap on a kernel failure.
    pub(super) fn table_result<T>(
        &mut self,
        r: Result<T, TableError>,
    ) -> wasmtime::Result<Result<T, types::Error>> {
        Ok(Err(match r {
            Ok(v) => return Ok(Ok(v)),
            Err(TableError::NotFound(m)) => types::Error::NotFound(m),
            Err(TableError::Invalid(m)) => types::Error::Invalid(m),
            Err(TableError::Conflict(m)) => types::Error::Conflict(m),
            Err(TableError::MissingIndex(m)) => types::Error::MissingIndex(m),
            Err(TableError::ReadOnly(m)) => types::Error::ReadOnly(m),
            Err(TableError::Internal(m)) => {
                let m = if is_conflict_text(&m) {
                    format!("{CONFLICT}: {m}")
                } else {
                    m
                };
                self.kernel_failure = Some(m.clone());
                wasmtime::bail!("{m}")
            }
        }))
    }
}

use super::failure::is_conflict_text;

impl CallState {
    /// Count a write's change to the plugin's stored rows and bytes (in
    /// the call's transaction, under the plugin's write lock); a change
    /// that grows usage past a quota makes the call fail as `quota`.
    pub(super) async fn count_stored(&mut self, rows: i64, bytes: i64) -> wasmtime::Result<()> {
        if (rows == 0 && bytes == 0) || !self.quotas.enforced() {
            return Ok(());
        }
        let (plugin, site) = (self.manifest.id.clone(), self.site.clone());
        if self.usage.is_none() {
            let k = self.kernel()?;
            let root = match self.quotas.root(&k).await {
                Ok(r) => r,
                Err(e) => return self.kernel_trap(e),
            };
            // This node's last committed values if it has them (exact on
            // one node; checked again when the call commits), else read.
            let (p, s, fresh) = match self.quotas.cached(&plugin, &site) {
                Some((p, s)) => (p, s, false),
                None => {
                    match super::quota::load_usage(&mut *self.tx().await?, &plugin, &site).await {
                        Ok((p, s)) => (p, s, true),
                        Err(e) => return self.kernel_trap(e),
                    }
                }
            };
            self.usage = Some(super::quota::CallUsage {
                plugin: p,
                site: s,
                delta: Default::default(),
                per_site: !site.is_empty() && site != root,
                fresh,
            });
        }
        let q = self.quota;
        let usage = self.usage.as_mut().expect("loaded above");
        usage.add(rows, bytes);
        let Err(e) = usage.check(rows > 0, bytes > 0, &q, &site) else {
            return Ok(());
        };
        if usage.fresh {
            return Err(self.exceeded(e));
        }
        // Refuse only on values read in this transaction: the node's last
        // known ones may be stale.
        let loaded = super::quota::load_usage(&mut *self.tx().await?, &plugin, &site).await;
        let (p, s) = match loaded {
            Ok(v) => v,
            Err(e) => return self.kernel_trap(e),
        };
        let usage = self.usage.as_mut().expect("loaded above");
        usage.plugin = p;
        usage.site = s;
        usage.fresh = true;
        match usage.check(rows > 0, bytes > 0, &q, &site) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.exceeded(e)),
        }
    }

    /// Count one of `rate` for this call's plugin; past its quota the call
    /// fails as `quota`.
    pub(super) fn take_rate(&mut self, rate: super::quota::Rate) -> wasmtime::Result<()> {
        let site = match rate {
            super::quota::Rate::Calls => self.site.as_str(),
            _ => super::quota::TOTAL,
        };
        match self
            .quotas
            .take_noted(&self.manifest.id, site, rate, &self.quota, &self.taken)
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.exceeded(e)),
        }
    }

    /// Record a passed quota; the returned error ends the call (a trap the
    /// guest cannot catch), which then fails as `quota` and rolls back.
    fn exceeded(&mut self, e: super::quota::Exceeded) -> wasmtime::Error {
        if !matches!(
            e.quota,
            "calls_per_minute" | "events_per_minute" | "log_lines_per_minute"
        ) {
            // Rates note their refusals where they count.
            self.quotas.refused(&self.manifest.id, e.quota);
        }
        let m = e.to_string();
        self.quota_exceeded = Some(e);
        wasmtime::format_err!("{m}")
    }

    fn kernel_trap(&mut self, e: sqlx::Error) -> wasmtime::Result<()> {
        let m = e.to_string();
        let m = if is_conflict_text(&m) {
            format!("{CONFLICT}: {m}")
        } else {
            m
        };
        self.kernel_failure = Some(m.clone());
        wasmtime::bail!("{m}")
    }
}

impl CallState {
    /// The capability check every non-table host call makes first.
    pub(super) fn capable(&self, capability: &str) -> Result<(), types::Error> {
        if !self.manifest.capabilities.iter().any(|c| c == capability) {
            return Err(types::Error::Denied(format!(
                "plugin {} does not declare the capability {capability}",
                self.manifest.id
            )));
        }
        if self
            .granted
            .as_ref()
            .is_some_and(|g| !g.contains(capability))
        {
            return Err(types::Error::Denied(format!(
                "plugin {} has not been granted the capability {capability} at this site",
                self.manifest.id
            )));
        }
        Ok(())
    }

    /// Give back the guest slice this call holds, if any: a call entering
    /// the kernel may wait there (for a transaction slot, a lock, the
    /// database), and a slice held while waiting could be the one that the
    /// call it waits for needs. The guest queues for a slice again at its
    /// next epoch tick.
    /// Record what the call is doing now.
    pub(super) fn set_phase(&self, what: &'static str) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = what;
    }

    pub(super) fn release_cpu(&self) {
        drop(self.cpu.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// The kernel handle, for imports that call into the registries.
    pub(super) fn kernel(&self) -> wasmtime::Result<Kernel> {
        self.release_cpu();
        self.set_phase("a kernel read (identity, sites, settings or accounts)");
        self.kernel
            .clone()
            .ok_or_else(|| wasmtime::format_err!("no kernel in this call"))
    }

    /// Turn a registry result into the plugin-facing error, or trap on a
    /// kernel failure (a lost write race keeps its "write conflict" marker,
    /// so the runtime re-runs the call).
    pub(super) fn kernel_result<T>(
        &mut self,
        r: crate::error::Result<T>,
    ) -> wasmtime::Result<Result<T, types::Error>> {
        use crate::error::Error;
        Ok(Err(match r {
            Ok(v) => return Ok(Ok(v)),
            Err(Error::NotFound(m)) => types::Error::NotFound(m),
            Err(Error::Invalid(f)) => types::Error::Invalid(
                f.iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Err(Error::Conflict { message, .. }) => types::Error::Conflict(message),
            Err(e) => {
                let m = match &e {
                    Error::Internal(inner) => format!("{inner:#}"),
                    other => other.to_string(),
                };
                self.kernel_failure = Some(m.clone());
                wasmtime::bail!("{m}")
            }
        }))
    }
}
