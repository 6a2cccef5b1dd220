//! Per-plugin quotas: stored rows and bytes (per plugin, and per site), and
//! calls per minute per site, published events per minute and log lines per
//! minute (ARCHITECTURE.md "Quotas").
//!
//! **Invariants:**
//! - the quota in force for a plugin is the city's default (`[quotas]`),
//!   replaced by its publisher's override if the city set one, lowered by
//!   the plugin's manifest (`[limits]`) if it asks for less; a manifest
//!   never raises a quota;
//! - a call past a quota fails as `quota` naming it, and nothing it wrote
//!   is kept (the call's transaction rolls back);
//! - stored rows and bytes are exact: counted in the writing call's own
//!   transaction, under the plugin's write lock, by the site the call was
//!   made at and in total, and checked before the call commits; only a
//!   write that grows usage past a quota is refused, so deleting is always
//!   possible;
//! - rates count per fixed minute window. Each node counts its own calls in
//!   memory; on PostgreSQL a node adds its counts to a shared row about
//!   once a second (`sync_ms`) and reads the other nodes' sums back, so a
//!   rate quota is exact on one node and holds across nodes to within what
//!   the others counted since their last sync. SQLite serves one node: its
//!   counts never leave memory.

use super::manifest::{AskedLimits, Manifest};
use crate::kernel::Kernel;
use crate::storage::{now_micros, Backend};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Length of a rate window.
pub const WINDOW_MS: i64 = 60_000;

/// Quota names, as failures, metrics and the API name them.
pub const ROWS: &str = "rows";
pub const BYTES: &str = "bytes";
pub const SITE_ROWS: &str = "site_rows";
pub const SITE_BYTES: &str = "site_bytes";
pub const CALLS_PER_MINUTE: &str = "calls_per_minute";
pub const EVENTS_PER_MINUTE: &str = "events_per_minute";
pub const LOG_LINES_PER_MINUTE: &str = "log_lines_per_minute";

/// Every quota's name.
pub const ALL: [&str; 7] = [
    ROWS,
    BYTES,
    SITE_ROWS,
    SITE_BYTES,
    CALLS_PER_MINUTE,
    EVENTS_PER_MINUTE,
    LOG_LINES_PER_MINUTE,
];

/// Whether `quota` is a rate quota (calls, events or log lines per minute):
/// one that the next window heals, unlike stored rows and bytes.
pub fn is_rate(quota: &str) -> bool {
    matches!(
        quota,
        CALLS_PER_MINUTE | EVENTS_PER_MINUTE | LOG_LINES_PER_MINUTE
    )
}

/// The site key of a plugin's totals (and of its plugin-wide rates).
pub const TOTAL: &str = "*";

/// The city's default quotas (`[quotas]`; env `LIFELONG_QUOTA_*`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaLimits {
    /// Rows stored in all of a plugin's tables (default 1,000,000).
    pub rows: u64,
    /// Bytes of values stored in all of a plugin's tables (default 1 GiB).
    pub bytes: u64,
    /// Rows written by calls at any one site below the city (default
    /// 100,000: a tenth of the plugin's), so one institution of a plugin
    /// enabled at many sites cannot fill the plugin's quota for the rest.
    pub site_rows: u64,
    /// Bytes written by calls at any one site below the city (default 100 MiB).
    pub site_bytes: u64,
    /// Calls (requests and event deliveries) at one site per minute
    /// (default 6,000: 100 a second, sustained, at a single site).
    pub calls_per_minute: u64,
    /// Events a plugin publishes per minute (default 1,200).
    pub events_per_minute: u64,
    /// Log lines a plugin writes per minute (default 3,000).
    pub log_lines_per_minute: u64,
    /// How often a node adds its rate counts to the shared ones and reads
    /// the other nodes' back (PostgreSQL; default 1,000 ms).
    pub sync_ms: u64,
}

impl Default for QuotaLimits {
    fn default() -> Self {
        QuotaLimits {
            rows: 1_000_000,
            bytes: 1 << 30,
            site_rows: 100_000,
            site_bytes: 100 << 20,
            calls_per_minute: 6_000,
            events_per_minute: 1_200,
            log_lines_per_minute: 3_000,
            sync_ms: 1_000,
        }
    }
}

/// Quota values set for a publisher by the city, or asked for by a
/// manifest; an absent value leaves the one below it in force.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QuotaValues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_rows: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_lines_per_minute: Option<u64>,
}

impl QuotaValues {
    /// What a manifest's `[limits]` asks for.
    pub fn asked(l: &AskedLimits) -> QuotaValues {
        QuotaValues {
            rows: l.rows,
            bytes: l.bytes,
            site_rows: l.site_rows,
            site_bytes: l.site_bytes,
            calls_per_minute: l.calls_per_minute,
            events_per_minute: l.events_per_minute,
            log_lines_per_minute: l.log_lines_per_minute,
        }
    }

    fn all(&self) -> [(&'static str, Option<u64>); 7] {
        [
            (ROWS, self.rows),
            (BYTES, self.bytes),
            (SITE_ROWS, self.site_rows),
            (SITE_BYTES, self.site_bytes),
            (CALLS_PER_MINUTE, self.calls_per_minute),
            (EVENTS_PER_MINUTE, self.events_per_minute),
            (LOG_LINES_PER_MINUTE, self.log_lines_per_minute),
        ]
    }

    fn is_empty(&self) -> bool {
        self.all().iter().all(|(_, v)| v.is_none())
    }
}

/// A manifest's asked quotas are each above zero (a value above the city's
/// is allowed and changes nothing: a manifest can only lower a quota).
pub fn check_asked(l: &AskedLimits) -> crate::error::Result<()> {
    match QuotaValues::asked(l)
        .all()
        .into_iter()
        .find(|(_, v)| *v == Some(0))
    {
        Some((name, _)) => Err(crate::error::Error::invalid(
            format!("limits.{name}"),
            "a quota a plugin asks for must be above zero (leave it out for the city's)",
        )),
        None => Ok(()),
    }
}

/// The quotas in force for one plugin.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Effective {
    pub rows: u64,
    pub bytes: u64,
    pub site_rows: u64,
    pub site_bytes: u64,
    pub calls_per_minute: u64,
    pub events_per_minute: u64,
    pub log_lines_per_minute: u64,
}

impl Effective {
    fn all(&self) -> [(&'static str, u64); 7] {
        [
            (ROWS, self.rows),
            (BYTES, self.bytes),
            (SITE_ROWS, self.site_rows),
            (SITE_BYTES, self.site_bytes),
            (CALLS_PER_MINUTE, self.calls_per_minute),
            (EVENTS_PER_MINUTE, self.events_per_minute),
            (LOG_LINES_PER_MINUTE, self.log_lines_per_minute),
        ]
    }
}

impl QuotaLimits {
    /// Every quota is above zero (a zero quota would refuse every call).
    pub fn check(&self) -> Result<(), String> {
        let d = self.effective(None, &QuotaValues::default());
        for (name, v) in d.all().into_iter().chain([("sync_ms", self.sync_ms)]) {
            if v == 0 {
                return Err(format!("quotas.{name} must be above zero"));
            }
        }
        Ok(())
    }

    /// Defaults, replaced by `over` (the publisher's), lowered by `asked`
    /// (the manifest's).
    pub fn effective(&self, over: Option<&QuotaValues>, asked: &QuotaValues) -> Effective {
        let pick = |default: u64, o: Option<u64>, a: Option<u64>| {
            let base = o.unwrap_or(default);
            a.map_or(base, |a| a.min(base))
        };
        let o = over.cloned().unwrap_or_default();
        Effective {
            rows: pick(self.rows, o.rows, asked.rows),
            bytes: pick(self.bytes, o.bytes, asked.bytes),
            site_rows: pick(self.site_rows, o.site_rows, asked.site_rows),
            site_bytes: pick(self.site_bytes, o.site_bytes, asked.site_bytes),
            calls_per_minute: pick(
                self.calls_per_minute,
                o.calls_per_minute,
                asked.calls_per_minute,
            ),
            events_per_minute: pick(
                self.events_per_minute,
                o.events_per_minute,
                asked.events_per_minute,
            ),
            log_lines_per_minute: pick(
                self.log_lines_per_minute,
                o.log_lines_per_minute,
                asked.log_lines_per_minute,
            ),
        }
    }
}

/// A quota a call would pass: which, its value, and the usage it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub quota: &'static str,
    pub limit: u64,
    pub used: u64,
    /// The site the usage is counted at, for per-site quotas.
    pub site: Option<String>,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.quota {
            ROWS => "stored rows",
            BYTES => "stored bytes",
            SITE_ROWS => "stored rows written at this site",
            SITE_BYTES => "stored bytes written at this site",
            CALLS_PER_MINUTE => "calls this minute at this site",
            EVENTS_PER_MINUTE => "events published this minute",
            _ => "log lines this minute",
        };
        write!(
            f,
            "quota {} reached: at most {} {what} (this call would make {}{})",
            self.quota,
            self.limit,
            self.used,
            self.site
                .as_deref()
                .map(|s| format!(", site {}", if s.is_empty() { "(none)" } else { s }))
                .unwrap_or_default()
        )
    }
}

/// A counted rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Calls at a site.
    Calls = 0,
    /// Events the plugin published.
    Events = 1,
    /// Log lines the plugin wrote.
    Logs = 2,
}

impl Rate {
    const ALL: [Rate; 3] = [Rate::Calls, Rate::Events, Rate::Logs];

    /// As stored in `plugin_rate_windows.what`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rate::Calls => "calls",
            Rate::Events => "events",
            Rate::Logs => "log_lines",
        }
    }

    /// The quota that bounds it.
    pub fn quota(self) -> &'static str {
        match self {
            Rate::Calls => CALLS_PER_MINUTE,
            Rate::Events => EVENTS_PER_MINUTE,
            Rate::Logs => LOG_LINES_PER_MINUTE,
        }
    }

    fn limit(self, e: &Effective) -> u64 {
        match self {
            Rate::Calls => e.calls_per_minute,
            Rate::Events => e.events_per_minute,
            Rate::Logs => e.log_lines_per_minute,
        }
    }

    fn parse(s: &str) -> Option<Rate> {
        Rate::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One rate's count in the current window.
#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    /// Counted on this node.
    local: u64,
    /// Of `local`, what this node has added to the shared row.
    pushed: u64,
    /// Counted by the other nodes, as of this node's last sync.
    others: u64,
}

/// Counters of the current window: plugin → site → rate.
#[derive(Debug, Default)]
struct Window {
    start: i64,
    counts: HashMap<String, HashMap<String, [Counter; 3]>>,
}

impl Window {
    fn counter(&mut self, plugin: &str, site: &str, rate: Rate) -> &mut Counter {
        if !self.counts.contains_key(plugin) {
            self.counts.insert(plugin.to_string(), HashMap::new());
        }
        let sites = self.counts.get_mut(plugin).expect("inserted");
        if !sites.contains_key(site) {
            sites.insert(site.to_string(), Default::default());
        }
        &mut sites.get_mut(site).expect("inserted")[rate as usize]
    }
}

#[derive(Debug)]
struct Inner {
    limits: QuotaLimits,
    /// Per-publisher overrides, reloaded with the registry view.
    overrides: RwLock<Arc<HashMap<String, QuotaValues>>>,
    window: Mutex<Window>,
    /// Test hook: added to the clock that places calls in windows.
    offset_ms: AtomicI64,
    last_sync_ms: AtomicI64,
    syncing: Arc<AtomicBool>,
    /// The root site's code, once known (calls there are bounded by the
    /// plugin-wide storage quotas only).
    root: tokio::sync::OnceCell<String>,
    /// Refusals by (plugin, quota) since the process started.
    refusals: Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
    /// Bench hook: count nothing, refuse nothing.
    off: AtomicBool,
    /// Stored usage by (plugin, site) as this node last committed it, so a
    /// writing call need not read it first (`CallUsage::fresh`).
    stored: Mutex<HashMap<(String, String), Stored>>,
    syncs: AtomicU64,
}

/// Rate counts taken by one attempt of a call: (site key, rate, window
/// start) each.
#[derive(Debug, Default)]
pub struct Taken(Mutex<Vec<(String, Rate, i64)>>);

/// The node's quota state, shared by the runtime and every call.
#[derive(Debug, Clone)]
pub struct Quotas(Arc<Inner>);

impl Quotas {
    pub fn new(limits: QuotaLimits) -> Quotas {
        Quotas(Arc::new(Inner {
            limits,
            overrides: RwLock::default(),
            window: Mutex::default(),
            offset_ms: AtomicI64::new(0),
            last_sync_ms: AtomicI64::new(0),
            syncing: Arc::new(AtomicBool::new(false)),
            root: tokio::sync::OnceCell::new(),
            refusals: Mutex::default(),
            off: AtomicBool::new(false),
            stored: Mutex::default(),
            syncs: AtomicU64::new(0),
        }))
    }

    /// The city's defaults.
    pub fn defaults(&self) -> &QuotaLimits {
        &self.0.limits
    }

    /// The quotas in force for the plugin of `m`.
    pub fn effective(&self, m: &Manifest) -> Effective {
        let overrides = self
            .0
            .overrides
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.0
            .limits
            .effective(overrides.get(&m.publisher), &QuotaValues::asked(&m.limits))
    }

    /// Test hook: move the clock that places calls in rate windows (a test
    /// moves it a minute on instead of waiting one). Never used when serving.
    #[doc(hidden)]
    pub fn advance(&self, by: std::time::Duration) {
        self.0
            .offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// Bench hook: switch counting off (`false`) or back on, to measure
    /// what quotas cost in one run. Never used when serving.
    #[doc(hidden)]
    pub fn set_enforced(&self, on: bool) {
        self.0.off.store(!on, Ordering::SeqCst);
    }

    pub(super) fn enforced(&self) -> bool {
        !self.0.off.load(Ordering::Relaxed)
    }

    /// How long until the next rate window starts (on the clock that places
    /// calls in windows).
    pub fn until_next_window(&self) -> std::time::Duration {
        let left = WINDOW_MS - self.now_ms().rem_euclid(WINDOW_MS);
        std::time::Duration::from_millis(left as u64)
    }

    fn now_ms(&self) -> i64 {
        now_micros() / 1000 + self.0.offset_ms.load(Ordering::Relaxed)
    }

    /// Count one of `rate` for `plugin` at `site` (`TOTAL` for plugin-wide
    /// rates) if that stays within `limit`; otherwise count nothing and
    /// say which quota it would pass.
    pub fn take(
        &self,
        plugin: &str,
        site: &str,
        rate: Rate,
        limits: &Effective,
    ) -> Result<(), Exceeded> {
        self.take_in(plugin, site, rate, limits).map(|_| ())
    }

    /// As [`Quotas::take`], returning the start of the window counted in
    /// (None if counting is off).
    fn take_in(
        &self,
        plugin: &str,
        site: &str,
        rate: Rate,
        limits: &Effective,
    ) -> Result<Option<i64>, Exceeded> {
        if !self.enforced() {
            return Ok(None);
        }
        let limit = rate.limit(limits);
        let start = self.now_ms().div_euclid(WINDOW_MS) * WINDOW_MS;
        let mut w = self.0.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.start != start {
            w.start = start;
            w.counts.clear();
        }
        let c = w.counter(plugin, site, rate);
        let used = c.local + c.others;
        if used >= limit {
            drop(w);
            let e = Exceeded {
                quota: rate.quota(),
                limit,
                used: used + 1,
                site: (rate == Rate::Calls).then(|| site.to_string()),
            };
            self.refused(plugin, e.quota);
            return Err(e);
        }
        c.local += 1;
        Ok(Some(start))
    }

    /// As [`Quotas::take`], noting the count in `taken` (one attempt of a
    /// call), so [`Quotas::refund`] can give it back.
    pub(super) fn take_noted(
        &self,
        plugin: &str,
        site: &str,
        rate: Rate,
        limits: &Effective,
        taken: &Taken,
    ) -> Result<(), Exceeded> {
        if let Some(start) = self.take_in(plugin, site, rate, limits)? {
            taken
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((site.to_string(), rate, start));
        }
        Ok(())
    }

    /// Give back what one attempt of a call took (it lost a write race, was
    /// rolled back, and is re-run: the re-run counts again), if its window
    /// is still this node's current one. A count already synced stays in
    /// the shared row, so other nodes may still count it until the window
    /// ends.
    pub(super) fn refund(&self, plugin: &str, taken: &Taken) {
        let noted = std::mem::take(&mut *taken.0.lock().unwrap_or_else(|e| e.into_inner()));
        if noted.is_empty() {
            return;
        }
        let mut w = self.0.window.lock().unwrap_or_else(|e| e.into_inner());
        for (site, rate, start) in noted {
            if w.start == start {
                let c = w.counter(plugin, &site, rate);
                c.local = c.local.saturating_sub(1);
            }
        }
    }

    /// Note a refusal (for `/metrics`).
    pub(super) fn refused(&self, plugin: &str, quota: &'static str) {
        *self
            .0
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((plugin.to_string(), quota))
            .or_default() += 1;
    }

    /// Start a sync of the rate counts if one is due (PostgreSQL only:
    /// SQLite serves one node). Runs on a task of its own; a call never
    /// waits for it.
    pub(super) fn maybe_sync(&self, k: &Kernel) {
        if k.db.backend() != Backend::Postgres || !self.enforced() {
            return;
        }
        let now = now_micros() / 1000;
        let last = self.0.last_sync_ms.load(Ordering::Relaxed);
        if now - last < self.0.limits.sync_ms as i64 {
            return;
        }
        if self
            .0
            .syncing
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        self.0.last_sync_ms.store(now, Ordering::Relaxed);
        let (q, k) = (self.clone(), k.clone());
        tokio::spawn(async move {
            if let Err(e) = q.sync(&k).await {
                tracing::warn!("plugin quota sync failed: {e}");
            }
            q.0.syncing.store(false, Ordering::SeqCst);
        });
    }

    /// Add this node's counts since its last sync to the shared rows, and
    /// read every node's sums for the current window back.
    pub async fn sync(&self, k: &Kernel) -> Result<(), sqlx::Error> {
        type Key = (String, String, Rate);
        let (start, deltas): (i64, Vec<(Key, u64)>) = {
            let mut w = self.0.window.lock().unwrap_or_else(|e| e.into_inner());
            let start = self.now_ms().div_euclid(WINDOW_MS) * WINDOW_MS;
            if w.start != start {
                w.start = start;
                w.counts.clear();
            }
            let mut out = Vec::new();
            for (plugin, sites) in w.counts.iter_mut() {
                for (site, counters) in sites.iter_mut() {
                    for rate in Rate::ALL {
                        let c = &mut counters[rate as usize];
                        if c.local > c.pushed {
                            out.push(((plugin.clone(), site.clone(), rate), c.local - c.pushed));
                            c.pushed = c.local;
                        }
                    }
                }
            }
            // A fixed order, so two nodes' upserts never deadlock.
            out.sort_by(|a, b| {
                (&a.0 .0, &a.0 .1, a.0 .2 as u8).cmp(&(&b.0 .0, &b.0 .1, b.0 .2 as u8))
            });
            (w.start, out)
        };
        let pushed = async {
            let mut tx = k.db.begin().await?;
            for ((plugin, site, rate), n) in &deltas {
                sqlx::query(
                    "INSERT INTO plugin_rate_windows (plugin, site, what, window_start, count) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (window_start, plugin, site, what) \
                     DO UPDATE SET count = plugin_rate_windows.count + excluded.count",
                )
                .bind(plugin)
                .bind(site)
                .bind(rate.as_str())
                .bind(start)
                .bind(*n as i64)
                .execute(&mut *tx)
                .await?;
            }
            // Windows older than an hour are of no use to anyone.
            sqlx::query("DELETE FROM plugin_rate_windows WHERE window_start < $1")
                .bind(start - 60 * WINDOW_MS)
                .execute(&mut *tx)
                .await?;
            let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
                "SELECT plugin, site, what, count FROM plugin_rate_windows WHERE window_start = $1",
            )
            .bind(start)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(rows)
        }
        .await;
        let mut w = self.0.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.start != start {
            return pushed.map(|_| ());
        }
        let rows = match pushed {
            Ok(rows) => rows,
            Err(e) => {
                // Not added: add it at the next sync.
                for ((plugin, site, rate), n) in &deltas {
                    let c = w.counter(plugin, site, *rate);
                    c.pushed = c.pushed.saturating_sub(*n);
                }
                return Err(e);
            }
        };
        for (plugin, site, what, count) in rows {
            if let Some(rate) = Rate::parse(&what) {
                let c = w.counter(&plugin, &site, rate);
                c.others = (count.max(0) as u64).saturating_sub(c.pushed);
            }
        }
        self.0.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The stored usage of `plugin` in total and at `site` as this node
    /// last saw it committed, if it has.
    pub(super) fn cached(&self, plugin: &str, site: &str) -> Option<(Stored, Stored)> {
        let c = self.0.stored.lock().unwrap_or_else(|e| e.into_inner());
        let get = |s: &str| c.get(&(plugin.to_string(), s.to_string())).copied();
        Some((get(TOTAL)?, get(site)?))
    }

    /// Remember usage a call committed.
    pub(super) fn remember(&self, plugin: &str, site: &str, total: Stored, at_site: Stored) {
        let mut c = self.0.stored.lock().unwrap_or_else(|e| e.into_inner());
        c.insert((plugin.to_string(), TOTAL.to_string()), total);
        c.insert((plugin.to_string(), site.to_string()), at_site);
    }

    /// This window's counts of `plugin`, as this node knows them: per site
    /// for calls, and plugin-wide for events and log lines.
    fn this_minute(&self, plugin: &str) -> (Vec<(String, u64)>, u64, u64) {
        let start = self.now_ms().div_euclid(WINDOW_MS) * WINDOW_MS;
        let w = self.0.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.start != start {
            return (vec![], 0, 0);
        }
        let Some(sites) = w.counts.get(plugin) else {
            return (vec![], 0, 0);
        };
        let n = |c: &Counter| c.local + c.others;
        let mut calls: Vec<(String, u64)> = sites
            .iter()
            .filter(|(s, _)| s.as_str() != TOTAL)
            .map(|(s, c)| (s.clone(), n(&c[Rate::Calls as usize])))
            .filter(|(_, n)| *n > 0)
            .collect();
        calls.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let total = sites.get(TOTAL);
        (
            calls,
            total.map_or(0, |c| n(&c[Rate::Events as usize])),
            total.map_or(0, |c| n(&c[Rate::Logs as usize])),
        )
    }

    /// Reload the per-publisher overrides (with the registry view).
    pub async fn reload_overrides(&self, k: &Kernel) -> Result<(), sqlx::Error> {
        let rows = overrides(k).await?;
        *self.0.overrides.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(rows.into_iter().collect());
        Ok(())
    }

    /// The root site's code (cached once found).
    pub(super) async fn root(&self, k: &Kernel) -> Result<String, sqlx::Error> {
        if let Some(r) = self.0.root.get() {
            return Ok(r.clone());
        }
        let row: Option<(String,)> =
            sqlx::query_as("SELECT code FROM sites WHERE parent_id IS NULL ORDER BY id LIMIT 1")
                .fetch_optional(k.db.reader())
                .await?;
        match row {
            Some((code,)) => Ok(self.0.root.get_or_init(|| async { code }).await.clone()),
            None => Ok(String::new()),
        }
    }
}

/// Rows and bytes, as stored in `plugin_usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stored {
    pub rows: i64,
    pub bytes: i64,
}

/// One call's stored usage: what the plugin and the call's site held when
/// the call first wrote, and what the call has changed since.
#[derive(Debug, Clone, Default)]
pub struct CallUsage {
    pub(super) plugin: Stored,
    pub(super) site: Stored,
    pub(super) delta: Stored,
    /// Whether the per-site quotas apply (not at the root site or without one).
    pub(super) per_site: bool,
    /// Whether `plugin` and `site` were read in this call's transaction
    /// (else they are this node's last known values, which another node's
    /// or process's writes may have made stale).
    pub(super) fresh: bool,
}

/// Read the plugin's and the site's stored usage in the call's transaction.
pub(super) async fn load_usage(
    conn: &mut sqlx::AnyConnection,
    plugin: &str,
    site: &str,
) -> Result<(Stored, Stored), sqlx::Error> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT site, row_count, byte_count FROM plugin_usage WHERE plugin = $1 AND site IN ($2, '*')",
    )
    .bind(plugin)
    .bind(site)
    .fetch_all(&mut *conn)
    .await?;
    let get = |s: &str| {
        rows.iter()
            .find(|(x, _, _)| x == s)
            .map(|(_, rows, bytes)| Stored {
                rows: *rows,
                bytes: *bytes,
            })
            .unwrap_or_default()
    };
    Ok((get(TOTAL), get(site)))
}

impl CallUsage {
    /// Add a write's change.
    pub(super) fn add(&mut self, rows: i64, bytes: i64) {
        self.delta.rows += rows;
        self.delta.bytes += bytes;
    }

    /// The quota usage is past, among those the change grows (`rows`,
    /// `bytes`: whether it grows rows, bytes).
    pub(super) fn check(
        &self,
        rows: bool,
        bytes: bool,
        q: &Effective,
        site: &str,
    ) -> Result<(), Exceeded> {
        let total = |base: Stored| Stored {
            rows: base.rows + self.delta.rows,
            bytes: base.bytes + self.delta.bytes,
        };
        let (p, s) = (total(self.plugin), total(self.site));
        let over = |used: i64, limit: u64| used > 0 && used as u64 > limit;
        let check = [
            (rows && over(p.rows, q.rows), ROWS, q.rows, p.rows, None),
            (
                bytes && over(p.bytes, q.bytes),
                BYTES,
                q.bytes,
                p.bytes,
                None,
            ),
            (
                self.per_site && rows && over(s.rows, q.site_rows),
                SITE_ROWS,
                q.site_rows,
                s.rows,
                Some(site),
            ),
            (
                self.per_site && bytes && over(s.bytes, q.site_bytes),
                SITE_BYTES,
                q.site_bytes,
                s.bytes,
                Some(site),
            ),
        ];
        match check.into_iter().find(|c| c.0) {
            Some((_, quota, limit, used, site)) => Err(Exceeded {
                quota,
                limit,
                used: used as u64,
                site: site.map(str::to_string),
            }),
            None => Ok(()),
        }
    }

    /// Write the call's change to `plugin_usage` (before the call commits,
    /// under the plugin's write lock); the usage as it then stands, checked
    /// exactly against the quotas the change grows (the per-write checks may
    /// have used this node's last known values).
    pub(super) async fn flush(
        &self,
        conn: &mut sqlx::AnyConnection,
        plugin: &str,
        site: &str,
        q: &Effective,
    ) -> Result<Result<Option<(Stored, Stored)>, Exceeded>, sqlx::Error> {
        if self.delta == Stored::default() {
            return Ok(Ok(None));
        }
        // A site's count is clamped at 0: rows are attributed to the site
        // of the call that wrote them, so a call at one site deleting rows
        // another site's calls wrote would otherwise take its own site's
        // count below 0 and let it write past its quota. The total is not
        // clamped (it is exact).
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "INSERT INTO plugin_usage (plugin, site, row_count, byte_count) VALUES ($1, $2, $5, $6), ($1, '*', $3, $4) \
             ON CONFLICT (plugin, site) DO UPDATE SET \
             row_count = CASE WHEN plugin_usage.site <> '*' AND plugin_usage.row_count + $3 < 0 \
                 THEN 0 ELSE plugin_usage.row_count + $3 END, \
             byte_count = CASE WHEN plugin_usage.site <> '*' AND plugin_usage.byte_count + $4 < 0 \
                 THEN 0 ELSE plugin_usage.byte_count + $4 END \
             RETURNING site, row_count, byte_count",
        )
        .bind(plugin)
        .bind(site)
        .bind(self.delta.rows)
        .bind(self.delta.bytes)
        .bind(self.delta.rows.max(0))
        .bind(self.delta.bytes.max(0))
        .fetch_all(&mut *conn)
        .await?;
        let get = |s: &str| {
            rows.iter()
                .find(|(x, _, _)| x == s)
                .map(|(_, rows, bytes)| Stored {
                    rows: *rows,
                    bytes: *bytes,
                })
                .unwrap_or_default()
        };
        let (p, s) = (get(TOTAL), get(site));
        let before = |now: Stored| Stored {
            rows: now.rows - self.delta.rows,
            bytes: now.bytes - self.delta.bytes,
        };
        let exact = CallUsage {
            plugin: before(p),
            site: before(s),
            fresh: true,
            ..self.clone()
        };
        match exact.check(self.delta.rows > 0, self.delta.bytes > 0, q, site) {
            Ok(()) => Ok(Ok(Some((p, s)))),
            Err(e) => Ok(Err(e)),
        }
    }
}

/// Set a plugin's total stored usage to what its tables (as `m` declares
/// them) hold, in `conn`'s transaction: after a rollback restored them from
/// the upgrade's snapshot. Per-site counts are kept (the tables do not say
/// which site wrote a row); nodes' last known usage corrects itself at their
/// next commit-time check.
pub async fn recount(
    conn: &mut sqlx::AnyConnection,
    m: &Manifest,
    backend: Backend,
) -> crate::error::Result<Stored> {
    let (rows, bytes) = super::tables::Tables::new(m, backend)
        .measure(&mut *conn)
        .await
        .map_err(|e| crate::error::Error::Internal(anyhow::anyhow!("recounting usage: {e:?}")))?;
    sqlx::query(
        "INSERT INTO plugin_usage (plugin, site, row_count, byte_count) VALUES ($1, '*', $2, $3) \
         ON CONFLICT (plugin, site) DO UPDATE SET row_count = excluded.row_count, byte_count = excluded.byte_count",
    )
    .bind(&m.id)
    .bind(rows)
    .bind(bytes)
    .execute(&mut *conn)
    .await?;
    Ok(Stored { rows, bytes })
}

/// Recount, once, the stored usage of every installed plugin that has no
/// plugin-wide usage row: data written before migration 0008 (which
/// started every counter at 0) counts from then on. Run at kernel start,
/// before serving (`lifelong serve`). Idempotent, and safe with several
/// nodes starting at once: each plugin is recounted in a transaction
/// holding its write lock (so no writing call runs meanwhile) after
/// checking again that the row is still missing. Per-site counts are not
/// backfilled (the tables do not say which site wrote a row). Returns the
/// plugins recounted.
pub async fn backfill(k: &Kernel) -> crate::error::Result<Vec<String>> {
    let missing: Vec<(String, String)> = sqlx::query_as(
        "SELECT v.plugin, v.manifest FROM plugin_registry r JOIN plugin_versions v \
         ON v.plugin = r.plugin AND v.version = r.active \
         WHERE NOT EXISTS (SELECT 1 FROM plugin_usage u WHERE u.plugin = r.plugin AND u.site = '*') \
         ORDER BY r.plugin",
    )
    .fetch_all(k.db.reader())
    .await?;
    // Per-site counts a kernel before the clamp in `CallUsage::flush` took
    // below 0 (a call deleting rows another site's calls wrote).
    let mut tx = k.db.begin().await?;
    sqlx::query(
        "UPDATE plugin_usage SET row_count = CASE WHEN row_count < 0 THEN 0 ELSE row_count END, \
         byte_count = CASE WHEN byte_count < 0 THEN 0 ELSE byte_count END \
         WHERE site <> '*' AND (row_count < 0 OR byte_count < 0)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut done = Vec::new();
    for (plugin, text) in missing {
        let m = super::manifest::parse(&text).map_err(|e| {
            crate::error::Error::Internal(anyhow::anyhow!("stored manifest of {plugin}: {e}"))
        })?;
        let mut tx = k.db.begin().await?;
        if k.db.backend() == Backend::Postgres {
            sqlx::query("SELECT CAST(1 AS BIGINT) FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(super::call::write_lock_key(&plugin))
                .fetch_one(&mut *tx)
                .await?;
        }
        let there: Option<(i64,)> = sqlx::query_as(
            "SELECT CAST(1 AS BIGINT) FROM plugin_usage WHERE plugin = $1 AND site = '*'",
        )
        .bind(&plugin)
        .fetch_optional(&mut *tx)
        .await?;
        if there.is_none() {
            let s = recount(&mut tx, &m, k.db.backend()).await?;
            tracing::info!(plugin = %plugin, rows = s.rows, bytes = s.bytes, "stored usage recounted from the plugin's tables");
            done.push(plugin);
        }
        tx.commit().await?;
    }
    Ok(done)
}

/// Every publisher's override.
pub async fn overrides(k: &Kernel) -> Result<Vec<(String, QuotaValues)>, sqlx::Error> {
    type Row = (
        String,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT publisher, row_count, byte_count, site_rows, site_bytes, calls_per_minute, \
         events_per_minute, log_lines_per_minute FROM plugin_publisher_quotas ORDER BY publisher",
    )
    .fetch_all(k.db.reader())
    .await?;
    let u = |v: Option<i64>| v.map(|v| v.max(0) as u64);
    Ok(rows
        .into_iter()
        .map(|(p, a, b, c, d, e, f, g)| {
            (
                p,
                QuotaValues {
                    rows: u(a),
                    bytes: u(b),
                    site_rows: u(c),
                    site_bytes: u(d),
                    calls_per_minute: u(e),
                    events_per_minute: u(f),
                    log_lines_per_minute: u(g),
                },
            )
        })
        .collect())
}

/// One publisher's override (None: the city defaults apply).
pub async fn publisher_override(
    k: &Kernel,
    publisher: &str,
) -> crate::error::Result<Option<QuotaValues>> {
    Ok(overrides(k)
        .await?
        .into_iter()
        .find(|(p, _)| p == publisher)
        .map(|(_, v)| v))
}

/// Set (replace) a publisher's override (city admins; audited). Values
/// left out take the city defaults; an empty override removes it. Every
/// node picks it up with its next registry reload.
pub async fn set_override(
    k: &Kernel,
    actor: &crate::authz::Actor,
    publisher: &str,
    values: &QuotaValues,
) -> crate::error::Result<()> {
    use crate::error::Error;
    actor.require_city_admin("setting a publisher's plugin quotas")?;
    if !super::manifest::ident(publisher, &['-']) {
        return Err(Error::invalid(
            "publisher",
            "a publisher is lower-case letters, digits and '-'",
        ));
    }
    for (name, v) in values.all() {
        if let Some(v) = v {
            if v == 0 || v > i64::MAX as u64 {
                return Err(Error::invalid(
                    name,
                    format!("a quota is a whole number above zero, not {v}"),
                ));
            }
        }
    }
    let before = publisher_override(k, publisher).await?;
    let mut tx = k.db.begin().await?;
    let n = |v: Option<u64>| v.map(|v| v as i64);
    if values.is_empty() {
        sqlx::query("DELETE FROM plugin_publisher_quotas WHERE publisher = $1")
            .bind(publisher)
            .execute(&mut *tx)
            .await?;
    } else {
        sqlx::query(
            "INSERT INTO plugin_publisher_quotas (publisher, row_count, byte_count, site_rows, site_bytes, \
             calls_per_minute, events_per_minute, log_lines_per_minute, set_at, set_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (publisher) DO UPDATE SET \
             row_count = excluded.row_count, byte_count = excluded.byte_count, site_rows = excluded.site_rows, \
             site_bytes = excluded.site_bytes, calls_per_minute = excluded.calls_per_minute, \
             events_per_minute = excluded.events_per_minute, log_lines_per_minute = excluded.log_lines_per_minute, \
             set_at = excluded.set_at, set_by = excluded.set_by",
        )
        .bind(publisher)
        .bind(n(values.rows))
        .bind(n(values.bytes))
        .bind(n(values.site_rows))
        .bind(n(values.site_bytes))
        .bind(n(values.calls_per_minute))
        .bind(n(values.events_per_minute))
        .bind(n(values.log_lines_per_minute))
        .bind(now_micros())
        .bind(actor.label())
        .execute(&mut *tx)
        .await?;
    }
    // Every node reloads its registry view, and with it the overrides.
    sqlx::query("UPDATE plugin_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    crate::audit::record(
        &mut tx,
        actor,
        crate::audit::Change {
            action: "plugin.publisher.quotas",
            site: None,
            object_type: "plugin_publisher",
            object_id: publisher.to_string(),
            before: before.map(|b| serde_json::json!(b)),
            after: Some(serde_json::json!(values)),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A plugin's usage against its quotas, for its registry entry.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// The quotas in force.
    pub quotas: Effective,
    /// The publisher's override, if the city set one.
    pub publisher_override: Option<QuotaValues>,
    /// Stored rows and bytes in all the plugin's tables.
    pub stored: Stored,
    /// The sites with the most stored rows (at most five).
    pub top_sites: Vec<SiteUsage>,
    /// This minute, as this node counts it (every node's counts on
    /// PostgreSQL, as of its last sync).
    pub this_minute: Minute,
    /// Usage over quota, per quota (1.0: the quota is reached); per-site
    /// and per-minute quotas by their busiest site.
    pub share: std::collections::BTreeMap<&'static str, f64>,
}

/// One site's stored usage.
#[derive(Debug, Clone, Serialize)]
pub struct SiteUsage {
    /// The site's code ("" for calls made without a site).
    pub site: String,
    pub rows: i64,
    pub bytes: i64,
}

/// Rates of the current minute.
#[derive(Debug, Clone, Serialize)]
pub struct Minute {
    /// Calls per site, busiest first (at most five).
    pub calls: Vec<SiteCalls>,
    pub events: u64,
    pub log_lines: u64,
}

/// Calls at one site this minute.
#[derive(Debug, Clone, Serialize)]
pub struct SiteCalls {
    pub site: String,
    pub calls: u64,
}

/// Stored usage of every plugin: plugin → (totals, sites by rows).
async fn stored_all(
    k: &Kernel,
    plugin: Option<&str>,
) -> Result<HashMap<String, (Stored, Vec<SiteUsage>)>, sqlx::Error> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT plugin, site, row_count, byte_count FROM plugin_usage WHERE $1 = '' OR plugin = $1 \
         ORDER BY plugin, row_count DESC, site",
    )
    .bind(plugin.unwrap_or(""))
    .fetch_all(k.db.reader())
    .await?;
    let mut out: HashMap<String, (Stored, Vec<SiteUsage>)> = HashMap::new();
    for (p, site, rows, bytes) in rows {
        let e = out.entry(p).or_default();
        if site == TOTAL {
            e.0 = Stored { rows, bytes };
        } else {
            e.1.push(SiteUsage { site, rows, bytes });
        }
    }
    Ok(out)
}

/// `m`'s usage against its quotas.
pub async fn usage(k: &Kernel, quotas: &Quotas, m: &Manifest) -> crate::error::Result<Usage> {
    let mut all = stored_all(k, Some(&m.id)).await?;
    let (stored, sites) = all.remove(&m.id).unwrap_or_default();
    Ok(build_usage(
        quotas,
        m,
        stored,
        sites,
        publisher_override(k, &m.publisher).await?,
    ))
}

fn build_usage(
    quotas: &Quotas,
    m: &Manifest,
    stored: Stored,
    mut sites: Vec<SiteUsage>,
    publisher_override: Option<QuotaValues>,
) -> Usage {
    let q = quotas.effective(m);
    let (calls, events, log_lines) = quotas.this_minute(&m.id);
    let (site_rows, site_bytes) = (
        sites.iter().map(|s| s.rows).max().unwrap_or(0),
        sites.iter().map(|s| s.bytes).max().unwrap_or(0),
    );
    let ratio = |used: f64, limit: u64| {
        if limit == 0 {
            0.0
        } else {
            (used / limit as f64 * 1000.0).round() / 1000.0
        }
    };
    let share = [
        (ROWS, ratio(stored.rows as f64, q.rows)),
        (BYTES, ratio(stored.bytes as f64, q.bytes)),
        (SITE_ROWS, ratio(site_rows as f64, q.site_rows)),
        (SITE_BYTES, ratio(site_bytes as f64, q.site_bytes)),
        (
            CALLS_PER_MINUTE,
            ratio(calls.first().map_or(0, |c| c.1) as f64, q.calls_per_minute),
        ),
        (EVENTS_PER_MINUTE, ratio(events as f64, q.events_per_minute)),
        (
            LOG_LINES_PER_MINUTE,
            ratio(log_lines as f64, q.log_lines_per_minute),
        ),
    ]
    .into_iter()
    .collect();
    sites.truncate(5);
    Usage {
        quotas: q,
        publisher_override,
        stored,
        top_sites: sites,
        this_minute: Minute {
            calls: calls
                .into_iter()
                .take(5)
                .map(|(site, calls)| SiteCalls { site, calls })
                .collect(),
            events,
            log_lines,
        },
        share,
    }
}

/// Every loaded plugin's quotas and usage, in Prometheus text format.
pub async fn render(
    k: &Kernel,
    quotas: &Quotas,
    manifests: &[Arc<Manifest>],
) -> Result<String, sqlx::Error> {
    use std::fmt::Write as _;
    let mut stored = stored_all(k, None).await?;
    let mut out = String::new();
    let usages: Vec<(String, Usage)> = manifests
        .iter()
        .map(|m| {
            let (s, sites) = stored.remove(&m.id).unwrap_or_default();
            (m.id.clone(), build_usage(quotas, m, s, sites, None))
        })
        .collect();
    let head = |out: &mut String, name: &str, help: &str, ty: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {ty}");
    };
    head(
        &mut out,
        "lifelong_plugin_quota",
        "The quota in force for the plugin (rows, bytes, per site, per minute).",
        "gauge",
    );
    for (p, u) in &usages {
        for (quota, v) in u.quotas.all() {
            let _ = writeln!(
                out,
                "lifelong_plugin_quota{{plugin=\"{p}\",quota=\"{quota}\"}} {v}"
            );
        }
    }
    head(
        &mut out,
        "lifelong_plugin_quota_used",
        "Usage against each quota: stored rows and bytes, the busiest site's, and this minute's counts (calls at the busiest site).",
        "gauge",
    );
    for (p, u) in &usages {
        let busiest = |f: fn(&SiteUsage) -> i64| u.top_sites.iter().map(f).max().unwrap_or(0);
        let used = [
            (ROWS, u.stored.rows.max(0) as u64),
            (BYTES, u.stored.bytes.max(0) as u64),
            (SITE_ROWS, busiest(|s| s.rows).max(0) as u64),
            (SITE_BYTES, busiest(|s| s.bytes).max(0) as u64),
            (
                CALLS_PER_MINUTE,
                u.this_minute.calls.first().map_or(0, |c| c.calls),
            ),
            (EVENTS_PER_MINUTE, u.this_minute.events),
            (LOG_LINES_PER_MINUTE, u.this_minute.log_lines),
        ];
        for (quota, v) in used {
            let _ = writeln!(
                out,
                "lifelong_plugin_quota_used{{plugin=\"{p}\",quota=\"{quota}\"}} {v}"
            );
        }
    }
    head(
        &mut out,
        "lifelong_plugin_quota_used_ratio",
        "Usage over quota (1 = the quota is reached).",
        "gauge",
    );
    for (p, u) in &usages {
        for (quota, v) in &u.share {
            let _ = writeln!(
                out,
                "lifelong_plugin_quota_used_ratio{{plugin=\"{p}\",quota=\"{quota}\"}} {v}"
            );
        }
    }
    head(
        &mut out,
        "lifelong_plugin_site_stored_rows",
        "Rows stored by calls at a site (the five busiest sites per plugin).",
        "gauge",
    );
    for (p, u) in &usages {
        for s in &u.top_sites {
            let _ = writeln!(
                out,
                "lifelong_plugin_site_stored_rows{{plugin=\"{p}\",site=\"{}\"}} {}",
                s.site, s.rows
            );
        }
    }
    head(
        &mut out,
        "lifelong_plugin_quota_refusals_total",
        "Calls failed for passing a quota, by quota.",
        "counter",
    );
    for ((p, quota), n) in quotas
        .0
        .refusals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        let _ = writeln!(
            out,
            "lifelong_plugin_quota_refusals_total{{plugin=\"{p}\",quota=\"{quota}\"}} {n}"
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publisher_override_replaces_and_a_manifest_only_lowers() {
        let d = QuotaLimits::default();
        let over = QuotaValues {
            rows: Some(5_000_000),
            events_per_minute: Some(10),
            ..Default::default()
        };
        let asked = QuotaValues {
            rows: Some(10_000_000),
            events_per_minute: Some(5),
            log_lines_per_minute: Some(100),
            ..Default::default()
        };
        let e = d.effective(Some(&over), &asked);
        assert_eq!(e.rows, 5_000_000, "a manifest never raises");
        assert_eq!(e.events_per_minute, 5);
        assert_eq!(e.log_lines_per_minute, 100);
        assert_eq!(e.bytes, d.bytes);
        assert_eq!(d.effective(None, &QuotaValues::default()).rows, 1_000_000);
    }

    #[test]
    fn a_rate_counts_to_its_limit_then_refuses_until_the_next_window() {
        let q = Quotas::new(QuotaLimits::default());
        let e = QuotaLimits {
            calls_per_minute: 2,
            ..Default::default()
        }
        .effective(None, &QuotaValues::default());
        assert!(q.take("p", "T1", Rate::Calls, &e).is_ok());
        assert!(q.take("p", "T1", Rate::Calls, &e).is_ok());
        let x = q.take("p", "T1", Rate::Calls, &e).unwrap_err();
        assert_eq!((x.quota, x.limit), (CALLS_PER_MINUTE, 2));
        assert!(q.take("p", "T2", Rate::Calls, &e).is_ok(), "per site");
        q.advance(std::time::Duration::from_millis(WINDOW_MS as u64));
        assert!(q.take("p", "T1", Rate::Calls, &e).is_ok());
    }
}
