//! Per-plugin, per-version counters (served at `/metrics` in Prometheus
//! text format) and each plugin's recent log lines (read by admins).
//!
//! Counters live in memory and start at zero with the process, as
//! Prometheus expects; they are lock-free on the call path.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Log lines kept per plugin.
const LOG_KEEP: usize = 1000;

/// Failure kinds counted separately (see `FailureKind::as_str`), plus
/// `handler` for an event handler that returned an error.
const KINDS: &[&str] = &[
    "deadline", "memory", "stack", "panic", "trap", "kernel", "conflict", "busy", "quota",
    "handler",
];

/// The counters of one plugin version.
#[derive(Debug, Default)]
pub struct PluginMetrics {
    calls: AtomicU64,
    errors: [AtomicU64; 10],
    buckets: [AtomicU64; 15],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    peak_memory: AtomicU64,
    retries: AtomicU64,
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
}

impl PluginMetrics {
    /// One finished call: how long it took, its failure kind if it failed,
    /// and the most linear memory it used.
    pub fn call(&self, took: Duration, failure: Option<&str>, memory: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(kind) = failure {
            let i = KINDS.iter().position(|k| *k == kind).unwrap_or(4);
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.peak_memory.fetch_max(memory as u64, Ordering::Relaxed);
    }

    /// A call that failed before or after running the guest (refused for
    /// lack of a place, or out of attempts at a write race).
    pub fn failure(&self, kind: &str) {
        let i = KINDS.iter().position(|k| *k == kind).unwrap_or(4);
        self.errors[i].fetch_add(1, Ordering::Relaxed);
    }

    /// An event handler that returned an error (the call itself succeeded).
    pub fn handler_error(&self) {
        self.errors[KINDS.len() - 1].fetch_add(1, Ordering::Relaxed);
    }

    /// A call re-run after a write conflict.
    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// An event delivered.
    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// A delivery parked after its last attempt.
    pub fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
}

/// One log line written by a plugin.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    /// Microseconds since the epoch.
    pub at: i64,
    pub level: &'static str,
    pub plugin: String,
    pub version: String,
    pub site: String,
    pub request_id: String,
    pub message: String,
}

/// Counters by (plugin, version).
type ByVersion = BTreeMap<(String, String), Arc<PluginMetrics>>;

/// Every plugin version's counters and every plugin's recent logs.
#[derive(Debug, Clone, Default)]
pub struct Observatory {
    metrics: Arc<RwLock<ByVersion>>,
    logs: Arc<Mutex<BTreeMap<String, VecDeque<LogLine>>>>,
}

impl Observatory {
    /// The counters of `plugin` at `version` (created on first use).
    pub fn of(&self, plugin: &str, version: &str) -> Arc<PluginMetrics> {
        let key = (plugin.to_string(), version.to_string());
        if let Some(m) = self
            .metrics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return m.clone();
        }
        self.metrics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }

    /// Keep a log line (the oldest of a plugin's lines beyond 1000 go).
    pub fn log(&self, line: LogLine) {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let q = logs.entry(line.plugin.clone()).or_default();
        if q.len() >= LOG_KEEP {
            q.pop_front();
        }
        q.push_back(line);
    }

    /// A plugin's most recent log lines, oldest first.
    pub fn recent_logs(&self, plugin: &str, limit: usize) -> Vec<LogLine> {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.get(plugin)
            .map(|q| {
                q.iter()
                    .skip(q.len().saturating_sub(limit))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One plugin's counters per loaded version, as JSON for
    /// `GET /api/v1/plugin-registry/{plugin}/metrics` (the console's health page).
    pub fn snapshot(&self, plugin: &str) -> Vec<serde_json::Value> {
        let metrics = self.metrics.read().unwrap_or_else(|e| e.into_inner());
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        metrics
            .iter()
            .filter(|((p, _), _)| p == plugin)
            .map(|((_, version), m)| {
                let errors: serde_json::Map<String, serde_json::Value> = KINDS
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (k.to_string(), load(&m.errors[i]).into()))
                    .collect();
                let count = load(&m.latency_count);
                let buckets: Vec<serde_json::Value> = BUCKETS
                    .iter()
                    .enumerate()
                    .map(|(i, b)| serde_json::json!({"le_seconds": b, "calls": load(&m.buckets[i])}))
                    .collect();
                serde_json::json!({
                    "version": version,
                    "calls": load(&m.calls),
                    "errors": errors,
                    "latency": {
                        "count": count,
                        "sum_seconds": load(&m.latency_micros) as f64 / 1e6,
                        "mean_ms": if count == 0 { 0.0 } else { load(&m.latency_micros) as f64 / count as f64 / 1e3 },
                        "buckets": buckets,
                    },
                    "peak_memory_bytes": load(&m.peak_memory),
                    "retries": load(&m.retries),
                    "delivered": load(&m.delivered),
                    "dead_lettered": load(&m.dead_lettered),
                })
            })
            .collect()
    }

    /// Every counter in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let metrics = self.metrics.read().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let each = |out: &mut String,
                    name: &str,
                    help: &str,
                    ty: &str,
                    f: &dyn Fn(&mut String, &str, &PluginMetrics)| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {ty}");
            for ((plugin, version), m) in metrics.iter() {
                let labels = format!("plugin=\"{plugin}\",version=\"{version}\"");
                f(out, &labels, m);
            }
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        each(
            &mut out,
            "lifelong_plugin_calls_total",
            "Plugin calls (requests and event deliveries).",
            "counter",
            &|o, l, m| {
                let _ = writeln!(o, "lifelong_plugin_calls_total{{{l}}} {}", load(&m.calls));
            },
        );
        each(
            &mut out,
            "lifelong_plugin_errors_total",
            "Failed plugin calls by kind.",
            "counter",
            &|o, l, m| {
                for (i, kind) in KINDS.iter().enumerate() {
                    let _ = writeln!(
                        o,
                        "lifelong_plugin_errors_total{{{l},kind=\"{kind}\"}} {}",
                        load(&m.errors[i])
                    );
                }
            },
        );
        each(
            &mut out,
            "lifelong_plugin_call_duration_seconds",
            "Plugin call latency, instantiation to commit.",
            "histogram",
            &|o, l, m| {
                let mut cumulative = 0;
                for (i, b) in BUCKETS.iter().enumerate() {
                    cumulative += load(&m.buckets[i]);
                    let _ = writeln!(o, "lifelong_plugin_call_duration_seconds_bucket{{{l},le=\"{b}\"}} {cumulative}");
                }
                let count = load(&m.latency_count);
                let _ = writeln!(
                    o,
                    "lifelong_plugin_call_duration_seconds_bucket{{{l},le=\"+Inf\"}} {count}"
                );
                let _ = writeln!(
                    o,
                    "lifelong_plugin_call_duration_seconds_sum{{{l}}} {}",
                    load(&m.latency_micros) as f64 / 1e6
                );
                let _ = writeln!(
                    o,
                    "lifelong_plugin_call_duration_seconds_count{{{l}}} {count}"
                );
            },
        );
        each(
            &mut out,
            "lifelong_plugin_peak_memory_bytes",
            "Most linear memory one call of the plugin used.",
            "gauge",
            &|o, l, m| {
                let _ = writeln!(
                    o,
                    "lifelong_plugin_peak_memory_bytes{{{l}}} {}",
                    load(&m.peak_memory)
                );
            },
        );
        each(
            &mut out,
            "lifelong_plugin_retries_total",
            "Calls re-run on a fresh instance after a write conflict.",
            "counter",
            &|o, l, m| {
                let _ = writeln!(
                    o,
                    "lifelong_plugin_retries_total{{{l}}} {}",
                    load(&m.retries)
                );
            },
        );
        each(
            &mut out,
            "lifelong_plugin_events_delivered_total",
            "Events delivered to the plugin.",
            "counter",
            &|o, l, m| {
                let _ = writeln!(
                    o,
                    "lifelong_plugin_events_delivered_total{{{l}}} {}",
                    load(&m.delivered)
                );
            },
        );
        each(
            &mut out,
            "lifelong_plugin_events_dead_lettered_total",
            "Event deliveries parked after their last attempt.",
            "counter",
            &|o, l, m| {
                let _ = writeln!(
                    o,
                    "lifelong_plugin_events_dead_lettered_total{{{l}}} {}",
                    load(&m.dead_lettered)
                );
            },
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let o = Observatory::default();
        let m = o.of("hello", "1.0.0");
        m.call(Duration::from_micros(50), None, 65536);
        m.call(Duration::from_millis(3), Some("deadline"), 131072);
        m.retry();
        let text = o.render();
        assert!(text.contains("lifelong_plugin_calls_total{plugin=\"hello\",version=\"1.0.0\"} 2"));
        assert!(text.contains(
            "lifelong_plugin_errors_total{plugin=\"hello\",version=\"1.0.0\",kind=\"deadline\"} 1"
        ));
        assert!(text.contains("lifelong_plugin_call_duration_seconds_bucket{plugin=\"hello\",version=\"1.0.0\",le=\"0.0001\"} 1"));
        assert!(text.contains("lifelong_plugin_call_duration_seconds_bucket{plugin=\"hello\",version=\"1.0.0\",le=\"0.005\"} 2"));
        assert!(text.contains(
            "lifelong_plugin_peak_memory_bytes{plugin=\"hello\",version=\"1.0.0\"} 131072"
        ));
        assert!(
            text.contains("lifelong_plugin_retries_total{plugin=\"hello\",version=\"1.0.0\"} 1")
        );
    }

    #[test]
    fn keeps_the_most_recent_log_lines() {
        let o = Observatory::default();
        for i in 0..1005 {
            o.log(LogLine {
                at: i,
                level: "info",
                plugin: "p".into(),
                version: "1.0.0".into(),
                site: String::new(),
                request_id: String::new(),
                message: format!("line {i}"),
            });
        }
        let recent = o.recent_logs("p", 3);
        let msgs: Vec<_> = recent.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(msgs, ["line 1002", "line 1003", "line 1004"]);
        assert_eq!(o.recent_logs("p", 5000).len(), 1000);
    }
}
